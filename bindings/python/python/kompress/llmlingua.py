"""A drop-in for ``llmlingua.PromptCompressor`` (llmlingua 0.2.2) serving LLMLingua-2.

Switching is a one-line import change::

    # from llmlingua import PromptCompressor
    from kompress.llmlingua import PromptCompressor

    compressor = PromptCompressor(
        model_name="microsoft/llmlingua-2-xlm-roberta-large-meetingbank",
        use_llmlingua2=True,
        device_map="cpu",
    )
    result = compressor.compress_prompt(context, rate=0.33, force_tokens=["\\n", "?"])
    result["compressed_prompt"]

The constructor and the LLMLingua-2 methods take llmlingua's arguments and return its result dict,
byte for byte (the compressed text, the token counts, and the ``ratio``, ``rate`` and ``saving``
strings; docs/LLMLINGUA2.md lists the few inputs where llmlingua raises and kompress does not). The
algorithm is the Rust library's ``kompress::llmlingua2``; this module only maps arguments.

LLMLingua-1 and LongLLMLingua (``use_llmlingua2=False``, a causal LM such as Llama-2) are not served:
the constructor raises :class:`~kompress.InvalidOptionError` saying so.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import numbers
import os
import warnings
from typing import Any, Dict, List, Optional, Sequence, Union

from . import _kompress
from ._errors import InvalidInputError, InvalidOptionError, InvalidOptionTypeError
from ._runner import _load_args

__all__ = ["PromptCompressor"]

# llmlingua's LLMLingua-2 chunk end tokens and separators (its defaults).
_CHUNK_END_TOKENS = (".", "\n")
_WORD_SEP = "\t\t|\t\t"

# model_config keys that have no meaning here (transformers' loading switches): accepted silently.
_IGNORED_MODEL_CONFIG = frozenset(
    {"trust_remote_code", "pad_to_left", "low_cpu_mem_usage", "attn_implementation", "use_safetensors"}
)

# PyTorch dtype names (``torch_dtype="float16"`` or ``torch.float16``) as kompress's ``--dtype``.
_TORCH_DTYPES = {
    "auto": "auto",
    "float32": "f32",
    "float": "f32",
    "fp32": "f32",
    "float16": "f16",
    "half": "f16",
    "fp16": "f16",
    "bfloat16": "bf16",
    "bf16": "bf16",
}


def _device(device_map: Any) -> str:
    """llmlingua's ``device_map`` as a kompress device: ``cpu``, ``cuda``/``cuda:N``, ``mps`` (Metal);
    ``auto`` picks as kompress does. A GPU this wheel was not built for falls back to the CPU with a
    warning (llmlingua's default is ``cuda``; the PyPI wheel is CPU-only)."""
    if not isinstance(device_map, str):
        raise InvalidOptionError(
            f"device_map: must be \"cpu\", \"cuda\", \"cuda:N\", \"mps\" or \"auto\", not {type(device_map).__name__}"
        )
    name = device_map.strip().lower()
    if name == "mps":
        name = "metal"
    if name in ("cpu", "auto"):
        return name
    if name == "cuda" or name.startswith("cuda:") or name == "metal":
        backend = "metal" if name == "metal" else "cuda"
        if backend not in _kompress.GPU_BACKENDS:
            warnings.warn(
                f"device_map={device_map!r}: this kompress build has no {backend.upper()} support, so the "
                "model runs on the CPU (pass device_map=\"cpu\" to silence this warning)",
                RuntimeWarning,
                stacklevel=3,
            )
            return "cpu"
        return name
    raise InvalidOptionError(
        f"device_map: {device_map!r}: expected \"cpu\", \"cuda\", \"cuda:N\", \"mps\" or \"auto\""
    )


def _dtype(value: Any) -> str:
    """A ``torch_dtype`` (a string or a ``torch.dtype``) as kompress's dtype name."""
    name = str(value).lower()
    name = name[len("torch.") :] if name.startswith("torch.") else name
    try:
        return _TORCH_DTYPES[name]
    except KeyError:
        raise InvalidOptionError(
            f"model_config: torch_dtype {value!r}: expected float32, float16, bfloat16 or auto"
        ) from None


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidOptionTypeError(f"{name}: must be a number, not {type(value).__name__}")
    return float(value)


def _whole(name: str, value: Any) -> int:
    """An integer argument; llmlingua types some as float (``target_token: float = -1``), so whole
    floats are taken too."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidOptionTypeError(f"{name}: must be an int, not {type(value).__name__}")
    if not isinstance(value, numbers.Integral):
        value = float(value)
        if not math.isfinite(value) or value != int(value):
            raise InvalidOptionError(f"{name}: {value}: must be a whole number")
    return int(value)


def _flag(name: str, value: Any) -> bool:
    import numpy as np

    if not isinstance(value, (bool, np.bool_)):
        raise InvalidOptionTypeError(f"{name}: must be True or False, not {type(value).__name__}")
    return bool(value)


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidOptionTypeError(f"{name}: must be str, not {type(value).__name__}")
    return value


def _strings(name: str, value: Any) -> List[str]:
    """A list of str (a str is iterated by character, as llmlingua does)."""
    if value is None:
        return []
    try:
        items = list(value)
    except TypeError:
        raise InvalidOptionTypeError(f"{name}: must be a list of str, not {type(value).__name__}") from None
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise InvalidOptionTypeError(f"{name}[{i}]: must be str, not {type(item).__name__}")
    return items


def _contexts(context: Any) -> List[str]:
    if isinstance(context, str):
        return [context]
    if context is None or isinstance(context, (bytes, dict)):
        raise InvalidInputError(f"context must be a str or a list of str, not {type(context).__name__}")
    try:
        return list(context)
    except TypeError:
        raise InvalidInputError(
            f"context must be a str or a list of str, not {type(context).__name__}"
        ) from None


class PromptCompressor:
    """llmlingua 0.2.2's ``PromptCompressor`` for LLMLingua-2 models, on kompress's Rust engine.

    ``model_name``: an LLMLingua-2 checkpoint (a BERT or XLM-RoBERTa token classifier, such as
    ``microsoft/llmlingua-2-xlm-roberta-large-meetingbank`` or
    ``microsoft/llmlingua-2-bert-base-multilingual-cased-meetingbank``): a Hugging Face repo id or a
    local directory. ``device_map``: ``"cuda"`` (llmlingua's default), ``"cuda:N"``, ``"mps"``, ``"cpu"``
    or ``"auto"``; a GPU this wheel has no support for falls back to the CPU with a warning.
    ``model_config``: of transformers' loading arguments, ``revision``, ``cache_dir``,
    ``local_files_only`` (kompress's offline mode) and ``torch_dtype`` (``float32`` as llmlingua on the
    CPU; ``auto`` is float32 too) are honoured; ``trust_remote_code`` and ``pad_to_left`` mean nothing
    here; other keys warn and are ignored. ``open_api_config`` is accepted and unused (as llmlingua
    does for LLMLingua-2). ``use_llmlingua2`` must be True: LLMLingua-1 needs a causal LM, which
    kompress does not run. ``llmlingua2_config``: ``max_batch_size`` (chunks a forward pass, 50) and
    ``max_force_token`` (at most that many ``force_tokens``, 100; kompress allows up to 100).

    Beyond llmlingua, keyword-only: ``dtype`` (kompress's names, as :class:`~kompress.KompressRunner`'s;
    it overrides ``torch_dtype``), ``threads`` (this compressor's own worker pool), ``offline`` and
    ``max_text_bytes``.

    The methods release the GIL: threads sharing one compressor run in parallel, and the ``a``-prefixed
    coroutines (:meth:`acompress_prompt`, :meth:`acompress_prompt_llmlingua2`) keep an event loop free.
    """

    def __init__(
        self,
        model_name: str = "NousResearch/Llama-2-7b-hf",
        device_map: str = "cuda",
        model_config: Optional[Dict[str, Any]] = None,
        open_api_config: Optional[Dict[str, Any]] = None,
        use_llmlingua2: bool = False,
        llmlingua2_config: Optional[Dict[str, Any]] = None,
        *,
        dtype: Optional[str] = None,
        threads: Optional[int] = None,
        offline: bool = False,
        max_text_bytes: int = 16 << 20,
    ) -> None:
        if not use_llmlingua2:
            raise InvalidOptionError(
                "use_llmlingua2=False: kompress serves only LLMLingua-2 (a BERT or XLM-RoBERTa token "
                "classifier such as microsoft/llmlingua-2-xlm-roberta-large-meetingbank, with "
                "use_llmlingua2=True); LLMLingua-1 and LongLLMLingua need a causal LM, which kompress does not run"
            )
        if isinstance(model_name, os.PathLike):
            model_name = os.fspath(model_name)
        if not isinstance(model_name, str):
            raise InvalidOptionTypeError(f"model_name: must be a hub id or a directory (str), not {type(model_name).__name__}")
        config = dict(model_config or {})
        revision = config.pop("revision", None)
        cache_dir = config.pop("cache_dir", None)
        offline = bool(config.pop("local_files_only", False)) or bool(offline)
        form = "auto"
        for key in ("torch_dtype", "dtype"):
            if key in config:
                form = _dtype(config.pop(key))
        if dtype is not None:
            form = dtype
        unknown = sorted(k for k in config if k not in _IGNORED_MODEL_CONFIG)
        if unknown:
            warnings.warn(
                f"model_config: {', '.join(unknown)}: no meaning in kompress, ignored", UserWarning, stacklevel=2
            )
        lingua2 = dict(llmlingua2_config or {})
        batch_size = _whole("llmlingua2_config['max_batch_size']", lingua2.pop("max_batch_size", 50))
        self.max_force_token = _whole("llmlingua2_config['max_force_token']", lingua2.pop("max_force_token", 100))
        if lingua2:
            raise InvalidOptionError(
                f"llmlingua2_config: unknown key {sorted(lingua2)[0]!r} (expected max_batch_size, max_force_token)"
            )
        if batch_size < 1:
            raise InvalidOptionError(f"llmlingua2_config['max_batch_size']: {batch_size}: must be at least 1")
        self.model_name = model_name
        self.use_llmlingua2 = True
        self.open_api_config = open_api_config or {}
        self.max_batch_size = batch_size
        self.max_seq_len = 512
        _load_args(threads, max_text_bytes)
        self._runner = _kompress.LlmLingua2Runner(
            model_name,
            _device(device_map),
            form,
            None if threads is None else int(threads),
            offline,
            None if revision is None else str(revision),
            None if cache_dir is None else os.fspath(cache_dir),
            batch_size,
            max_text_bytes,
        )

    @property
    def device(self) -> str:
        """Where the model runs: ``cpu``, ``cuda:N`` or ``metal`` (llmlingua's attribute)."""
        return self._runner.device

    @property
    def dtype(self) -> str:
        """The weights' form: ``f32`` unless ``model_config['torch_dtype']`` asked otherwise."""
        return self._runner.dtype

    def __call__(self, *args: Any, **kwargs: Any) -> Dict[str, Any]:
        """``compress_prompt(*args, **kwargs)``, as llmlingua's ``__call__``."""
        return self.compress_prompt(*args, **kwargs)

    def compress_prompt(
        self,
        context: Union[str, List[str]],
        instruction: str = "",
        question: str = "",
        rate: float = 0.5,
        target_token: float = -1,
        iterative_size: int = 200,
        force_context_ids: Optional[List[int]] = None,
        force_context_number: Optional[int] = None,
        use_sentence_level_filter: bool = False,
        use_context_level_filter: bool = True,
        use_token_level_filter: bool = True,
        keep_split: bool = False,
        keep_first_sentence: int = 0,
        keep_last_sentence: int = 0,
        keep_sentence_number: int = 0,
        high_priority_bonus: int = 100,
        context_budget: str = "+100",
        token_budget_ratio: float = 1.4,
        condition_in_question: str = "none",
        reorder_context: str = "original",
        dynamic_context_compression_ratio: float = 0.0,
        condition_compare: bool = False,
        add_instruction: bool = False,
        rank_method: str = "llmlingua",
        concate_question: bool = True,
        context_segs: Optional[List[str]] = None,
        context_segs_rate: Optional[List[float]] = None,
        context_segs_compress: Optional[List[bool]] = None,
        target_context: int = -1,
        context_level_rate: float = 1.0,
        context_level_target_token: int = -1,
        return_word_label: bool = False,
        word_sep: str = _WORD_SEP,
        label_sep: str = " ",
        token_to_word: str = "mean",
        force_tokens: Sequence[str] = (),
        force_reserve_digit: bool = False,
        drop_consecutive: bool = False,
        chunk_end_tokens: Sequence[str] = _CHUNK_END_TOKENS,
        strict_preserve_uncompressed: bool = True,
    ) -> Dict[str, Any]:
        """llmlingua's ``compress_prompt`` with ``use_llmlingua2=True``: forwards the LLMLingua-2
        arguments to :meth:`compress_prompt_llmlingua2`, as llmlingua does (note its default
        ``use_context_level_filter=True`` here); the LLMLingua-1 arguments (``instruction``,
        ``question``, ``iterative_size``, ``rank_method``, ...) are ignored, as llmlingua ignores them."""
        return self.compress_prompt_llmlingua2(
            context,
            rate=rate,
            target_token=target_token,
            use_context_level_filter=use_context_level_filter,
            use_token_level_filter=use_token_level_filter,
            target_context=target_context,
            context_level_rate=context_level_rate,
            context_level_target_token=context_level_target_token,
            force_context_ids=force_context_ids,
            return_word_label=return_word_label,
            word_sep=word_sep,
            label_sep=label_sep,
            token_to_word=token_to_word,
            force_tokens=force_tokens,
            force_reserve_digit=force_reserve_digit,
            drop_consecutive=drop_consecutive,
            chunk_end_tokens=chunk_end_tokens,
        )

    def compress_prompt_llmlingua2(
        self,
        context: Union[str, List[str]],
        rate: float = 0.5,
        target_token: int = -1,
        use_context_level_filter: bool = False,
        use_token_level_filter: bool = True,
        target_context: int = -1,
        context_level_rate: float = 1.0,
        context_level_target_token: int = -1,
        force_context_ids: Optional[List[int]] = None,
        return_word_label: bool = False,
        word_sep: str = _WORD_SEP,
        label_sep: str = " ",
        token_to_word: str = "mean",
        force_tokens: Sequence[str] = (),
        force_reserve_digit: bool = False,
        drop_consecutive: bool = False,
        chunk_end_tokens: Sequence[str] = _CHUNK_END_TOKENS,
    ) -> Dict[str, Any]:
        """Compresses ``context`` (a str, or a list of str compressed as separate contexts) with
        llmlingua 0.2.2's LLMLingua-2 algorithm; the same arguments, the same result dict:
        ``compressed_prompt`` (the contexts joined by a blank line), ``compressed_prompt_list``,
        ``origin_tokens`` and ``compressed_tokens`` (GPT-4's cl100k tokens), ``ratio`` (``"2.9x"``),
        ``rate`` (``"35.0%"``), ``saving`` and, with ``return_word_label=True``,
        ``fn_labeled_original_prompt``.

        ``rate``: the share of tokens to keep (above 0); ``target_token`` (when positive) overrides it.
        ``use_context_level_filter`` (with several contexts) first drops whole contexts, by
        ``target_context``, ``context_level_rate`` or ``context_level_target_token``, never those in
        ``force_context_ids``. ``token_to_word``: ``"mean"`` or ``"first"``. ``force_tokens`` (at most
        ``max_force_token``) are always kept, digits too with ``force_reserve_digit``;
        ``drop_consecutive`` drops repeats of a force token with nothing kept between them.
        ``chunk_end_tokens`` end the 512-token chunks.

        A wrong type raises :class:`~kompress.InvalidOptionTypeError` (a ``TypeError``); a value llmlingua would reject (``rate`` <= 0 or NaN, more
        than 100 force tokens, ...) raises :class:`~kompress.InvalidOptionError`.
        """
        options = self._options(
            rate,
            target_token,
            use_context_level_filter,
            use_token_level_filter,
            target_context,
            context_level_rate,
            context_level_target_token,
            force_context_ids,
            return_word_label,
            word_sep,
            label_sep,
            token_to_word,
            force_tokens,
            force_reserve_digit,
            drop_consecutive,
            chunk_end_tokens,
        )
        return json.loads(self._runner.compress(_contexts(context), options))

    async def acompress_prompt(self, context: Union[str, List[str]], *args: Any, **kwargs: Any) -> Dict[str, Any]:
        """:meth:`compress_prompt` on a worker thread: awaiting it leaves the event loop free."""
        return await asyncio.to_thread(functools.partial(self.compress_prompt, context, *args, **kwargs))

    async def acompress_prompt_llmlingua2(
        self, context: Union[str, List[str]], *args: Any, **kwargs: Any
    ) -> Dict[str, Any]:
        """:meth:`compress_prompt_llmlingua2` on a worker thread: awaiting it leaves the event loop free."""
        return await asyncio.to_thread(functools.partial(self.compress_prompt_llmlingua2, context, *args, **kwargs))

    def _options(
        self,
        rate: Any,
        target_token: Any,
        use_context_level_filter: Any,
        use_token_level_filter: Any,
        target_context: Any,
        context_level_rate: Any,
        context_level_target_token: Any,
        force_context_ids: Any,
        return_word_label: Any,
        word_sep: Any,
        label_sep: Any,
        token_to_word: Any,
        force_tokens: Any,
        force_reserve_digit: Any,
        drop_consecutive: Any,
        chunk_end_tokens: Any,
    ) -> str:
        """The arguments, type-checked, as the JSON of the library's ``llmlingua2::Options``."""
        force = _strings("force_tokens", force_tokens)
        if len(force) > self.max_force_token:
            raise InvalidOptionError(
                f"force_tokens: {len(force)} tokens, more than llmlingua2_config['max_force_token'] "
                f"({self.max_force_token})"
            )
        ids = []
        for i, value in enumerate(force_context_ids or []):
            index = _whole(f"force_context_ids[{i}]", value)
            if index >= 0:  # a negative id never names a context in llmlingua either
                ids.append(index)
        if token_to_word not in ("mean", "first"):
            raise InvalidOptionError(f"token_to_word: {token_to_word!r}: expected \"mean\" or \"first\"")
        fields = {
            "rate": _number("rate", rate),
            "target_token": _whole("target_token", target_token),
            "use_context_level_filter": _flag("use_context_level_filter", use_context_level_filter),
            "use_token_level_filter": _flag("use_token_level_filter", use_token_level_filter),
            "target_context": _whole("target_context", target_context),
            "context_level_rate": _number("context_level_rate", context_level_rate),
            "context_level_target_token": _whole("context_level_target_token", context_level_target_token),
            "force_context_ids": ids,
            "return_word_label": _flag("return_word_label", return_word_label),
            "word_sep": _text("word_sep", word_sep),
            "label_sep": _text("label_sep", label_sep),
            "token_to_word": token_to_word,
            "force_tokens": force,
            "force_reserve_digit": _flag("force_reserve_digit", force_reserve_digit),
            "drop_consecutive": _flag("drop_consecutive", drop_consecutive),
            "chunk_end_tokens": _strings("chunk_end_tokens", chunk_end_tokens),
        }
        for name in ("rate", "context_level_rate"):
            if not math.isfinite(fields[name]):
                raise InvalidOptionError(f"{name}: {fields[name]}: must be a finite number above 0")
        # allow_nan=False: the checks above leave no NaN or infinity to serialize.
        return json.dumps(fields, allow_nan=False)

    def __repr__(self) -> str:
        return (
            f"PromptCompressor(model_name={self.model_name!r}, device={self.device!r}, "
            f"dtype={self.dtype!r}, use_llmlingua2=True)"
        )
