"""The part of the integrations that knows no framework: one kompress method, compressing texts."""

from __future__ import annotations

import asyncio
from typing import Any, Dict, List, NamedTuple, Optional, Sequence

from .._errors import InvalidInputError, InvalidOptionError

#: The methods, by the names ``method=`` takes.
METHODS = ("kompress", "llmlingua2", "ctxprune")

#: The model each method loads when ``model`` is not given.
LLMLINGUA2_MODEL = "microsoft/llmlingua-2-xlm-roberta-large-meetingbank"

#: The metadata keys the integrations add to each document or node.
METADATA_KEYS = ("kompress_method", "kompress_original_tokens", "kompress_compressed_tokens")


class Compressed(NamedTuple):
    text: str
    original_tokens: int
    compressed_tokens: int
    method: str

    def metadata(self) -> Dict[str, Any]:
        return dict(zip(METADATA_KEYS, (self.method, self.original_tokens, self.compressed_tokens)))


class Engine:
    """One kompress method with its options, loaded once: ``compress(texts, query)``.

    ``method``: ``"kompress"`` (``ratio``: the share of words to keep; ``target_tokens``: a token budget
    per text; ``options``: :meth:`kompress.KompressRunner.compress`'s further keywords) or
    ``"llmlingua2"`` (``ratio`` is llmlingua's ``rate``, ``target_tokens`` its ``target_token``, per
    text; ``options``: :meth:`kompress.llmlingua.PromptCompressor.compress_prompt_llmlingua2`'s) or
    ``"ctxprune"`` (``ratio`` is ctxprune's ``rate``, ``target_tokens`` kompress's cl100k budget; the
    counts are ctxprune's ``total`` and ``kept``, in its ``unit``; ``options``:
    :meth:`kompress.ctxprune.Compressor.compress`'s).
    ``query_aware``: compress with SuperCompress's eviction on the query instead (``ratio`` is its
    ``budget_ratio``, 0.35 by default; ``options``: :func:`kompress.compress_context`'s); no model is
    loaded then. ``model_config``: llmlingua's (``revision``, ``local_files_only``, ``torch_dtype``; and
    ``cache_dir`` for LLMLingua-2).
    """

    def __init__(
        self,
        method: str,
        model: Optional[str],
        ratio: Optional[float],
        target_tokens: Optional[int],
        device: str,
        dtype: str,
        threads: Optional[int],
        query_aware: bool,
        options: Dict[str, Any],
        model_config: Optional[Dict[str, Any]] = None,
    ) -> None:
        if method not in METHODS:
            raise InvalidOptionError(f"method: {method!r}: expected one of {', '.join(map(repr, METHODS))}")
        if not isinstance(query_aware, bool):
            raise InvalidOptionError(f"query_aware: must be True or False, not {type(query_aware).__name__}")
        self.method = "supercompress" if query_aware else method
        self.ratio = ratio
        self.target_tokens = target_tokens
        self.options = dict(options)
        self._backend: Any = None
        if query_aware:
            if target_tokens is not None:
                raise InvalidOptionError("target_tokens: not with query_aware=True (its budget is ratio)")
        elif method == "kompress":
            from .._runner import DEFAULT_MODEL, KompressRunner

            config = dict(model_config or {})
            if "torch_dtype" in config:
                from ..llmlingua import _dtype

                dtype = _dtype(config["torch_dtype"])
            self._backend = KompressRunner(
                model or DEFAULT_MODEL,
                device=device,
                dtype=dtype,
                threads=threads,
                offline=bool(config.get("local_files_only", False)),
                revision=config.get("revision"),
            )
        elif method == "ctxprune":
            from ..ctxprune import DEFAULT_MODEL as CTXPRUNE_MODEL
            from ..ctxprune import Compressor

            self._backend = Compressor(model or CTXPRUNE_MODEL, device=device, dtype=dtype, threads=threads)
        else:
            from ..llmlingua import PromptCompressor

            self._backend = PromptCompressor(
                model or LLMLINGUA2_MODEL,
                device_map=device,
                model_config=model_config,
                use_llmlingua2=True,
                dtype=None if dtype == "auto" else dtype,
                threads=threads,
            )

    def compress(self, texts: Sequence[str], query: Optional[str]) -> List[Compressed]:
        """Each text compressed (the query is used only by the query-aware mode)."""
        texts = list(texts)
        if self.method == "kompress":
            results = self._backend.compress_batch(
                texts, ratio=self.ratio, target_tokens=self.target_tokens, **self.options
            )
            return [Compressed(r.compressed, r.original_tokens, r.compressed_tokens, self.method) for r in results]
        if self.method == "llmlingua2":
            out = []
            for text in texts:
                r = self._backend.compress_prompt_llmlingua2(
                    text,
                    rate=0.5 if self.ratio is None else self.ratio,
                    target_token=-1 if self.target_tokens is None else self.target_tokens,
                    **self.options,
                )
                out.append(Compressed(r["compressed_prompt"], r["origin_tokens"], r["compressed_tokens"], self.method))
            return out
        if self.method == "ctxprune":
            out = []
            for text in texts:
                r = self._backend.compress(
                    text, rate=0.5 if self.ratio is None else self.ratio, target_tokens=self.target_tokens, **self.options
                )
                out.append(Compressed(r["text"], r["total"], r["kept"], self.method))
            return out
        if not isinstance(query, str) or not query.strip():
            raise InvalidInputError("query_aware=True needs the query: there is none to rank the text by")
        from .._evict import compress_context

        budget = 0.35 if self.ratio is None else self.ratio
        out = []
        for text in texts:
            r = compress_context(text, query, budget, **self.options)
            out.append(Compressed(r.compressed_text, r.original_tokens, r.output_tokens, self.method))
        return out

    async def acompress(self, texts: Sequence[str], query: Optional[str]) -> List[Compressed]:
        """:meth:`compress` on a worker thread: the event loop keeps running."""
        return await asyncio.to_thread(self.compress, list(texts), query)
