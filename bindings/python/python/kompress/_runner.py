"""KompressRunner: the Kompress token classifier (chopratejas/kompress-*) over the Rust library."""

from __future__ import annotations

import asyncio
import functools
import json
import math
import numbers
import os
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

import numpy as np

from . import _kompress

__all__ = ["KompressRunner", "CompressResult", "TokenScores", "DEFAULT_MODEL"]

DEFAULT_MODEL: str = _kompress.DEFAULT_MODEL

ProgressCallback = Callable[[int, int], Any]


# The fields ``kompress compress --json`` prints only when they are set: None when absent.
_OPTIONAL = (
    "passthrough_reason",
    "words",
    "compat",
    "unscored_reason",
    "min_ratio",
    "min_target_tokens",
    "time_budget_ms",
)


class CompressResult:
    """The outcome of compressing one text: the fields of ``kompress compress --json``.

    Attributes: ``compressed``, ``compression_ratio`` (compressed / original tokens), ``tokens_saved``,
    ``original_tokens``, ``compressed_tokens``, ``original_words``, ``kept_words``, ``token_counter``,
    ``chunks``, ``unscored_words``, ``scored_words`` (words whose chunk the model scored),
    ``unscored_reason`` (None, or ``"time_budget"`` when ``time_budget_ms`` ran out before every chunk
    was scored: the rest is kept as it is), ``passthrough``, ``passthrough_reason`` (None, ``"short"``,
    ``"nothing_kept"``, ``"structured"`` or ``"fits_budget"``), ``over_budget`` (the words kept whatever
    the model says exceed ``ratio`` or ``target_tokens``), ``min_ratio`` / ``min_target_tokens`` (when
    over budget: the smallest ratio or token budget they allow; else None), ``mode``, ``model``,
    ``device``, ``dtype``, ``time_budget_ms`` (None without one), and ``words`` with ``explain=True``.
    """

    __slots__ = ("_json", "_fields")

    def __init__(self, raw_json: str) -> None:
        self._json = raw_json
        self._fields: Dict[str, Any] = json.loads(raw_json)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        fields = self._fields
        if name in fields:
            return fields[name]
        if name in _OPTIONAL:
            return None
        raise AttributeError(f"CompressResult has no field {name!r}")

    def __dir__(self) -> List[str]:
        return sorted(set(super().__dir__()) | set(self._fields) | set(_OPTIONAL))

    def to_dict(self) -> Dict[str, Any]:
        """The fields as ``kompress compress --json`` prints them (less its ``input``)."""
        return json.loads(self._json)

    def to_json(self) -> str:
        """The JSON ``kompress compress --json`` prints for this text, byte for byte, less ``input``."""
        return self._json

    def __str__(self) -> str:
        return self._fields["compressed"]

    def __repr__(self) -> str:
        f = self._fields
        return (
            f"CompressResult({f['original_words']} -> {f['kept_words']} words, "
            f"{f['original_tokens']} -> {f['compressed_tokens']} {f['token_counter']} tokens, "
            f"ratio {f['compression_ratio']:.3f})"
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CompressResult) and self._fields == other._fields

    __hash__ = None  # type: ignore[assignment]


class TokenScores:
    """Every token's scores for one text (``kompress score --json``), as numpy arrays.

    ``input_ids`` (uint32), ``word_ids`` (int64, -1 for [CLS]/[SEP]), ``offsets`` (int64, shape (n, 2):
    the character span in the text of the token's word, (0, 0) for [CLS]/[SEP]), ``logits`` (float32,
    (n, 2)), ``token_prob`` (float32: the keep probability), ``span_score`` (float32, or None for a
    checkpoint without a span head) and ``score`` (float32: the final score).
    """

    __slots__ = ("input_ids", "word_ids", "offsets", "logits", "token_prob", "span_score", "score", "_json")

    def __init__(self, raw: Dict[str, Any]) -> None:
        self._json: str = raw["json"]
        self.input_ids = np.asarray(raw["input_ids"], dtype=np.uint32)
        self.word_ids = np.asarray(raw["word_ids"], dtype=np.int64)
        self.offsets = np.asarray(raw["offsets"], dtype=np.int64).reshape(-1, 2)
        self.logits = np.asarray(raw["logits"], dtype=np.float32).reshape(-1, 2)
        self.token_prob = np.asarray(raw["token_prob"], dtype=np.float32)
        span = raw["span_score"]
        self.span_score = None if span is None else np.asarray(span, dtype=np.float32)
        self.score = np.asarray(raw["score"], dtype=np.float32)

    def __len__(self) -> int:
        return len(self.input_ids)

    def to_json(self) -> str:
        """The JSON ``kompress score --json`` prints for this text, byte for byte."""
        return self._json

    def to_dict(self) -> Dict[str, Any]:
        """The fields of ``kompress score --json``."""
        return json.loads(self._json)

    def __repr__(self) -> str:
        return f"TokenScores({len(self)} tokens)"


def _fields(
    mode: Optional[str],
    threshold: Optional[float],
    ratio: Optional[float],
    target_tokens: Optional[int],
    compat: Optional[str],
    protect: bool,
    extra: Dict[str, Any],
) -> str:
    """The options as the library's ``CompressFields`` JSON (the names of the CLI's flags)."""
    fields: Dict[str, Any] = {
        "mode": mode,
        "threshold": threshold,
        "ratio": ratio,
        "target_tokens": target_tokens,
        "compat": compat,
    }
    if protect is not True:
        if not isinstance(protect, bool):
            from ._errors import InvalidOptionError

            raise InvalidOptionError(f"protect: must be True or False, not {protect!r}")
        fields["no_protect"] = True
    for name in (
        "protect_words",
        "protect_tables",
        "protect_code",
        "protect_code_lines",
        "protect_markdown",
        "protect_json",
    ):
        value = extra.pop(name, None)
        if value is not None:
            fields["no_" + name] = not value if isinstance(value, bool) else value
    fields.update(extra)
    return json.dumps({k: _checked(k, v) for k, v in fields.items() if v is not None})


# The options that are numbers: fractions, and counts (0 or more).
_FRACTIONS = frozenset({"threshold", "ratio"})
_COUNTS = frozenset({"target_tokens", "chunk_words", "chunk_tokens", "batch_size", "min_words", "time_budget_ms"})


def _checked(name: str, value: Any) -> Any:
    """A numeric option checked here, so that its error names it in Python's words (a NaN would not
    even be JSON); the library checks the ranges."""
    from ._errors import InvalidOptionError, InvalidOptionTypeError

    if name in _FRACTIONS:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise InvalidOptionTypeError(f"{name}: must be a number, not {type(value).__name__}")
        if not math.isfinite(value):
            raise InvalidOptionError(f"{name}: {value}: must be a finite number")
        return float(value)
    if name in _COUNTS:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise InvalidOptionTypeError(f"{name}: must be an int, not {type(value).__name__}")
        if value < 0:
            raise InvalidOptionError(f"{name}: {value}: must be 0 or more")
        return int(value)
    return value


def _load_args(threads: Any, max_text_bytes: Any) -> None:
    """The constructors' ``threads`` and ``max_text_bytes``, type-checked (the library checks the
    thread count's range: at most 4 per core, as the CLI's ``--threads``)."""
    from ._errors import InvalidOptionError, InvalidOptionTypeError

    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, numbers.Integral)):
        raise InvalidOptionTypeError(f"threads: must be an int or None, not {type(threads).__name__}")
    if isinstance(max_text_bytes, bool) or not isinstance(max_text_bytes, numbers.Integral):
        raise InvalidOptionTypeError(f"max_text_bytes: must be an int, not {type(max_text_bytes).__name__}")
    if max_text_bytes < 0:
        raise InvalidOptionError(f"max_text_bytes: {max_text_bytes}: must be 0 or more")


class KompressRunner:
    """A Kompress model, loaded once, compressing and scoring texts.

    ``model`` is a Hugging Face repo id (downloaded into the HF cache) or a local directory with
    ``config.json``, ``tokenizer.json`` and ``model.safetensors`` (or ``merged.pt``, ``pytorch_model.bin``), exactly as the
    CLI's ``--model``. ``device``: ``auto`` (CUDA, then Metal, then CPU), ``cpu``, ``cuda``, ``cuda:N`` or
    ``metal``. ``dtype``: as the CLI's ``--dtype``: ``auto`` (on the CPU bf16 where it beats f32: AMX-BF16
    tiles, AMD Zen 4 and later; else f32; pass ``f32`` for Headroom's numbers with ``compat="headroom"``), ``f32``, ``f16``, ``bf16``, ``int8``, ``int8-wo`` or ``int8-wo-g128`` (docs/NUMERICS.md). ``threads``: this runner's own worker pool of that many threads (None: the process-wide
    pool, one thread per core); set it to the cores each process or Ray actor owns so that they do not
    oversubscribe. ``offline``: use only the local HF cache (``HF_HUB_OFFLINE`` also works).
    ``max_text_bytes``: larger texts raise ``InvalidInputError`` (16 MiB, as the HTTP service).

    A runner is safe to share between threads; the GIL is released while the model works, so threads
    compressing with one runner run in parallel.

    >>> runner = KompressRunner(model="tests/fixtures/models/v5")          # doctest: +SKIP
    >>> runner.compress(text, ratio=0.5).compressed                        # doctest: +SKIP
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        device: str = "auto",
        dtype: str = "auto",
        threads: Optional[int] = None,
        offline: bool = False,
        *,
        revision: Optional[str] = None,
        max_text_bytes: int = 16 << 20,
    ) -> None:
        if isinstance(model, os.PathLike):
            model = os.fspath(model)
        if not isinstance(model, str):
            from ._errors import InvalidOptionError

            raise InvalidOptionError(f"model: must be a hub id or a directory (str), not {type(model).__name__}")
        _load_args(threads, max_text_bytes)
        self._runner = _kompress.Runner(
            model, device, dtype, None if threads is None else int(threads), bool(offline), revision, int(max_text_bytes)
        )

    @property
    def model(self) -> str:
        """The model as given."""
        return self._runner.model

    @property
    def device(self) -> str:
        """Where the model runs: ``cpu``, ``cuda:N`` or ``metal``."""
        return self._runner.device

    @property
    def dtype(self) -> str:
        """``f32``, ``f16``, ``bf16`` or ``int8``."""
        return self._runner.dtype

    @property
    def threads(self) -> Optional[int]:
        """This runner's thread count, or None for the process-wide pool."""
        return self._runner.threads

    @property
    def max_tokens(self) -> int:
        """The longest sequence the model accepts, in tokens."""
        return self._runner.max_tokens

    def compress(
        self,
        text: str,
        mode: Optional[str] = None,
        threshold: Optional[float] = None,
        ratio: Optional[float] = None,
        target_tokens: Optional[int] = None,
        compat: Optional[str] = None,
        protect: bool = True,
        **options: Any,
    ) -> CompressResult:
        """Compresses one text; the result equals ``kompress compress --json`` with the same options.

        ``mode``: ``card`` (default: the model card's rule), ``threshold`` or ``ratio``. ``threshold``: a
        final-score cut in [0, 1] (implies threshold mode). ``ratio``: the share of words to keep, in
        (0, 1] (implies ratio mode). ``target_tokens``: fit the output in that many tokens. ``compat``:
        ``"headroom"`` for Headroom 0.42's output word for word. ``protect=False`` lets the model drop
        numbers, paths and identifiers, table rows and code, and compresses JSON.

        Further options, named as the CLI's flags: ``count_tokens`` (``cl100k``, ``o200k``, ``words``),
        ``chunk_words``, ``chunk_tokens``, ``batch_size``, ``min_words``, ``protect_words``,
        ``protect_tables``, ``protect_code``, ``protect_code_lines``, ``protect_markdown``,
        ``protect_json`` (False to turn one off), ``explain``, and ``time_budget_ms``: stop scoring
        that many milliseconds after the call starts (the clock is read before every forward pass, the
        first included; a pass already running finishes), keeping the words not scored yet as they are;
        the result's ``scored_words`` and ``unscored_reason`` say how far it got. Between 1 and
        86,400,000 (one day); over a batch, one budget for all its texts.
        """
        return self.compress_batch(
            [text], mode, threshold, ratio, target_tokens, compat, protect, **options
        )[0]

    def compress_batch(
        self,
        texts: Sequence[str],
        mode: Optional[str] = None,
        threshold: Optional[float] = None,
        ratio: Optional[float] = None,
        target_tokens: Optional[int] = None,
        compat: Optional[str] = None,
        protect: bool = True,
        progress: Optional[ProgressCallback] = None,
        **options: Any,
    ) -> List[CompressResult]:
        """Compresses several texts, sharing forward passes between them; one result per text, each
        equal to compressing that text alone. Options as :meth:`compress`.

        ``progress(words_done, words_total)``, if given, is called after every forward pass (an
        exception it raises stops the batch and propagates).
        """
        if isinstance(texts, (str, bytes)) or texts is None:
            from ._errors import InvalidInputError

            raise InvalidInputError(
                f"texts must be a list of str, not {type(texts).__name__} (use compress() for one text)"
            )
        texts = list(texts)
        fields = _fields(mode, threshold, ratio, target_tokens, compat, protect, dict(options))
        return [CompressResult(line) for line in self._runner.compress(texts, fields, progress)]

    async def acompress(self, text: str, *args: Any, **options: Any) -> CompressResult:
        """:meth:`compress` on a worker thread (``asyncio.to_thread``): the event loop keeps running
        while the model works, and several awaited calls run in parallel (the GIL is released)."""
        return await asyncio.to_thread(functools.partial(self.compress, text, *args, **options))

    async def acompress_batch(self, texts: Sequence[str], *args: Any, **options: Any) -> List[CompressResult]:
        """:meth:`compress_batch` on a worker thread; a ``progress`` callback is called on that thread."""
        return await asyncio.to_thread(functools.partial(self.compress_batch, texts, *args, **options))

    def score(self, text: str) -> TokenScores:
        """Every token's keep probability, span score and final score (``kompress score --json``) as
        numpy float32 arrays, with token ids, word ids and word offsets."""
        return TokenScores(self._runner.score(text))

    def __repr__(self) -> str:
        threads = "" if self.threads is None else f", threads={self.threads}"
        return f"KompressRunner(model={self.model!r}, device={self.device!r}, dtype={self.dtype!r}{threads})"
