"""LangChain: :class:`KompressDocumentCompressor`, a langchain-core ``BaseDocumentCompressor``.

::

    from kompress.integrations.langchain import KompressDocumentCompressor

    compressor = KompressDocumentCompressor(ratio=0.5)                    # the Kompress pipeline
    compressor = KompressDocumentCompressor(method="llmlingua2", ratio=0.33, device="cpu")
    docs = compressor.compress_documents(docs, query)                     # or await acompress_documents

Each document's ``page_content`` is compressed on its own; its metadata is kept, with
``kompress_method``, ``kompress_original_tokens`` and ``kompress_compressed_tokens`` added. Use it as
``ContextualCompressionRetriever(base_compressor=compressor, base_retriever=...)`` or in a
``DocumentCompressorPipeline``.

This module imports without langchain-core; the class raises ``ImportError`` (saying to
``pip install 'kompress-rs[langchain]'``) when used without it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["KompressDocumentCompressor"]

_MISSING = (
    "KompressDocumentCompressor needs langchain-core, which is not installed: "
    "pip install 'kompress-rs[langchain]' (or pip install langchain-core)"
)

try:
    from langchain_core.documents import BaseDocumentCompressor, Document
except ImportError as _error:  # the framework is optional
    _import_error: "ImportError | None" = _error
else:
    _import_error = None


if _import_error is None:
    from typing import Dict, Optional, Sequence

    from pydantic import ConfigDict, Field, PrivateAttr

    from ._common import Engine

    class KompressDocumentCompressor(BaseDocumentCompressor):
        """Compresses each retrieved document's text with a kompress method.

        ``method``: ``"kompress"`` (the default: the Kompress token classifier, ``model`` defaulting
        to ``chopratejas/kompress-base``) or ``"llmlingua2"`` (LLMLingua-2, byte-identical to llmlingua;
        ``model`` defaulting to ``microsoft/llmlingua-2-xlm-roberta-large-meetingbank``). ``ratio``: the
        share to keep (Kompress: of words; LLMLingua-2: its ``rate``, of tokens); ``target_tokens``: a
        token budget per document instead. ``device``, ``dtype``, ``threads``: as
        :class:`kompress.KompressRunner`'s. ``compress_kwargs``: the method's further options
        (``KompressRunner.compress``'s or ``compress_prompt_llmlingua2``'s keywords).
        ``query_aware=True``: SuperCompress's eviction keeps the lines that matter to the query
        (``ratio`` is its token budget, 0.35 by default); no model is loaded.

        ``LLMLinguaCompressor``'s arguments are accepted where they make sense: ``model_name``
        (selects ``method="llmlingua2"`` unless a method is named), ``device_map``, ``target_token``
        (here per document) and ``model_config`` (``revision``, ``cache_dir``, ``local_files_only``,
        ``torch_dtype``, as :class:`kompress.llmlingua.PromptCompressor`). Its LLMLingua-1 options
        (``instruction``, ``rank_method``, ``open_api_config``, ``additional_compress_kwargs``) are not.
        """

        model_config = ConfigDict(
            arbitrary_types_allowed=True, extra="forbid", populate_by_name=True, protected_namespaces=()
        )

        model: Optional[str] = None
        method: Optional[str] = None
        ratio: Optional[float] = None
        target_tokens: Optional[int] = None
        device: str = "auto"
        dtype: str = "auto"
        threads: Optional[int] = None
        query_aware: bool = False
        compress_kwargs: Dict[str, Any] = Field(default_factory=dict)
        # LLMLinguaCompressor's names.
        model_name: Optional[str] = None
        device_map: Optional[str] = None
        target_token: Optional[int] = None
        model_configuration: Dict[str, Any] = Field(default_factory=dict, alias="model_config")

        _engine: Any = PrivateAttr(default=None)

        def __init__(self, **data: Any) -> None:
            super().__init__(**data)
            # After pydantic's validation, outside it: kompress's errors reach the caller as they are.
            self._engine = _engine(self)

        def compress_documents(
            self, documents: Sequence[Document], query: str, callbacks: Any = None
        ) -> Sequence[Document]:
            """The documents, each with its ``page_content`` compressed and the counts in its metadata."""
            documents = list(documents)
            results = self._engine.compress([d.page_content for d in documents], query)
            return [_with(d, r) for d, r in zip(documents, results)]

        async def acompress_documents(
            self, documents: Sequence[Document], query: str, callbacks: Any = None
        ) -> Sequence[Document]:
            """:meth:`compress_documents` on a worker thread: the event loop keeps running."""
            documents = list(documents)
            results = await self._engine.acompress([d.page_content for d in documents], query)
            return [_with(d, r) for d, r in zip(documents, results)]

    def _engine(c: "KompressDocumentCompressor") -> Engine:
        method = c.method or ("llmlingua2" if c.model_name is not None else "kompress")
        if c.model is not None and c.model_name is not None and c.model != c.model_name:
            from .._errors import InvalidOptionError

            raise InvalidOptionError("model_name: give model or model_name (LLMLinguaCompressor's name), not both")
        target = c.target_tokens if c.target_tokens is not None else c.target_token
        device = c.device
        if c.device_map is not None:
            from ..llmlingua import _device

            device = _device(c.device_map)
        return Engine(
            method,
            c.model or c.model_name,
            c.ratio,
            target,
            device,
            c.dtype,
            c.threads,
            c.query_aware,
            c.compress_kwargs,
            c.model_configuration,
        )

    def _with(document: Document, result: Any) -> Document:
        metadata = {**document.metadata, **result.metadata()}
        return document.model_copy(update={"page_content": result.text, "metadata": metadata})

else:

    class KompressDocumentCompressor:  # type: ignore[no-redef]
        """Stands in for the LangChain compressor when langchain-core is not installed."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise ImportError(_MISSING) from _import_error
