"""ctxprune 0.2.1's API on kompress: switch with one import, ``from kompress.ctxprune import Compressor``.

``Compressor(model).compress(text, rate=0.5, threshold=None, force_protected=False, keep_structure=False,
unit="chars", measure=None)`` returns ctxprune's ``{"text", "kept", "total"}``, byte-identical to
ctxprune's own (its fp32 model; kompress runs the checkpoint's ``model.safetensors`` in f32 by default),
computed by the Rust library (``kompress::ctxprune``). ``atom_scores`` and :func:`prune` are ctxprune's
too. ``backend`` and ``onnx_file`` are accepted and ignored: kompress runs the model itself (``dtype="int8"``
is its counterpart of ctxprune's int8 ONNX file).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from . import _kompress
from ._errors import InvalidOptionError, InvalidOptionTypeError
from .llmlingua import _device

__all__ = ["Compressor", "Atom", "prune", "DEFAULT_MODEL"]

DEFAULT_MODEL = "darioooooo0o/ctxprune-small"

#: What ``unit`` may be besides a callable.
UNITS = ("chars", "tokens")


@dataclass(frozen=True)
class Atom:
    """ctxprune's atom: the whitespace before it in the source, and its text."""

    ws: str
    text: str


class Compressor:
    """ctxprune's ``Compressor``: scores every atom of a text with a token classifier and keeps the best.

    Beyond ctxprune, keyword-only: ``dtype`` (``auto`` is f32, ctxprune's exact form; ``bf16``, ``int8``,
    ``int8-wo``), ``threads``, ``offline``, ``revision``, ``cache_dir``.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        device: Optional[str] = None,
        max_len: int = 512,
        batch_size: int = 16,
        backend: str = "auto",
        onnx_file: Optional[str] = None,
        *,
        dtype: str = "auto",
        threads: Optional[int] = None,
        offline: bool = False,
        revision: Optional[str] = None,
        cache_dir: Optional[str] = None,
    ) -> None:
        if backend not in ("auto", "onnx", "torch"):
            raise InvalidOptionError(f"backend must be 'auto', 'onnx' or 'torch', not {backend!r}")
        for name, value in (("max_len", max_len), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidOptionTypeError(f"{name}: must be an int, not {type(value).__name__}")
            if value < 1:
                raise InvalidOptionError(f"{name}: {value}: must be at least 1")
        self._runner = _kompress.CtxpruneRunner(
            model,
            device=_device("auto" if device is None else device),
            dtype=dtype,
            threads=threads,
            offline=offline,
            revision=revision,
            cache_dir=cache_dir,
            max_len=max_len,
            batch_size=batch_size,
        )
        self.max_len = self._runner.max_len
        self.batch_size = batch_size
        self.backend = "kompress"

    @property
    def device(self) -> str:
        return self._runner.device

    @property
    def dtype(self) -> str:
        return self._runner.dtype

    def atom_scores(self, text: str) -> Tuple[List[Atom], List[float], List[int]]:
        """Every atom of ``text`` with its keep score (the mean probability of its tokens) and token count."""
        atoms, scores, counts = self._runner.atom_scores(text)
        return [Atom(ws, t) for ws, t in atoms], scores, counts

    def compress(
        self,
        text: str,
        rate: Optional[float] = 0.5,
        threshold: Optional[float] = None,
        force_protected: bool = False,
        keep_structure: bool = False,
        unit: Union[str, Callable[[List[str]], Any]] = "chars",
        measure: Union[None, str, Callable[[str], Any]] = None,
        *,
        target_tokens: Optional[int] = None,
    ) -> Dict[str, Any]:
        """Keeps the highest-scoring atoms until ``rate`` of the text is kept (ctxprune's arguments).

        ``measure`` may also name a token counter (``"cl100k"``, ``"o200k"``, ``"words"``), counted in
        Rust; ``target_tokens`` (kompress's) keeps the output within that many tokens of ``measure``
        (cl100k by default) instead of ``rate``.
        """
        options: Dict[str, Any] = {
            "rate": _share("rate", rate),
            "threshold": _share("threshold", threshold),
            "force_protected": _flag("force_protected", force_protected),
            "keep_structure": _flag("keep_structure", keep_structure),
        }
        unit_fn = None
        if callable(unit):
            unit_fn = lambda texts: [int(c) for c in unit(texts)]  # noqa: E731 (costs as whole numbers)
        elif unit in UNITS:
            options["unit"] = unit
        else:
            raise InvalidOptionError(f"unit must be 'chars' or 'tokens', not {unit!r}")
        measure_fn = None
        if callable(measure):
            measure_fn = measure
        elif isinstance(measure, str):
            options["measure"] = measure
        elif measure is not None:
            raise InvalidOptionTypeError(f"measure: a callable or a counter's name, not {type(measure).__name__}")
        if target_tokens is not None:
            if isinstance(target_tokens, bool) or not isinstance(target_tokens, int) or target_tokens < 0:
                raise InvalidOptionError(f"target_tokens: {target_tokens!r}: must be a whole number")
            options["target_tokens"] = target_tokens
        out = self._runner.compress(text, json.dumps(options), unit=unit_fn, measure=measure_fn)
        return json.loads(out)

    async def acompress(self, text: str, *args: Any, **kwargs: Any) -> Dict[str, Any]:
        """:meth:`compress` on a worker thread, not blocking the event loop."""
        return await asyncio.to_thread(self.compress, text, *args, **kwargs)

    def __repr__(self) -> str:
        return f"Compressor(model={self._runner.model!r}, device={self.device!r}, dtype={self.dtype!r})"


def _share(name: str, value: Any) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidOptionTypeError(f"{name}: must be a number, not {type(value).__name__}")
    return float(value)


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidOptionTypeError(f"{name}: must be True or False, not {type(value).__name__}")
    return value


_default: Optional[Compressor] = None


def prune(text: str, keep: float = 0.5, protect: bool = False) -> str:
    """ctxprune's ``prune``: ``text`` cut to about ``keep`` of its length with the default model (loaded
    once); ``protect=True`` never drops identifiers, numbers or paths."""
    global _default
    if _default is None:
        _default = Compressor()
    return _default.compress(text, rate=keep, force_protected=protect)["text"]
