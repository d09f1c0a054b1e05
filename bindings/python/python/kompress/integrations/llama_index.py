"""LlamaIndex: :class:`KompressNodePostprocessor`, a llama-index-core ``BaseNodePostprocessor``.

::

    from kompress.integrations.llama_index import KompressNodePostprocessor

    postprocessor = KompressNodePostprocessor(ratio=0.5)                  # the Kompress pipeline
    postprocessor = KompressNodePostprocessor(query_aware=True, ratio=0.35)  # SuperCompress on the query
    engine = index.as_query_engine(node_postprocessors=[postprocessor])

Each text node's content is compressed on its own (other nodes pass unchanged); its metadata is kept,
with ``kompress_method``, ``kompress_original_tokens`` and ``kompress_compressed_tokens`` added and
left out of what the LLM and the embedding model see. Scores are kept.

This module imports without llama-index-core; the class raises ``ImportError`` (saying to
``pip install 'kompress-rs[llamaindex]'``) when used without it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["KompressNodePostprocessor"]

_MISSING = (
    "KompressNodePostprocessor needs llama-index-core, which is not installed: "
    "pip install 'kompress-rs[llamaindex]' (or pip install llama-index-core)"
)

try:
    from llama_index.core.postprocessor.types import BaseNodePostprocessor
    from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode
except ImportError as _error:  # the framework is optional
    _import_error: "ImportError | None" = _error
else:
    _import_error = None


if _import_error is None:
    from typing import Dict, List, Optional

    from pydantic import ConfigDict, Field, PrivateAttr

    from ._common import METADATA_KEYS, Engine

    class KompressNodePostprocessor(BaseNodePostprocessor):
        """Compresses each retrieved node's text with a kompress method.

        ``method``: ``"kompress"`` (the default: the Kompress token classifier, ``model`` defaulting
        to ``chopratejas/kompress-base``) or ``"llmlingua2"`` (LLMLingua-2, byte-identical to llmlingua;
        ``model`` defaulting to ``microsoft/llmlingua-2-xlm-roberta-large-meetingbank``). ``ratio``: the
        share to keep (Kompress: of words; LLMLingua-2: its ``rate``, of tokens); ``target_tokens``: a
        token budget per node instead. ``device``, ``dtype``, ``threads``: as
        :class:`kompress.KompressRunner`'s. ``compress_kwargs``: the method's further options.

        ``query_aware=True`` (off by default): SuperCompress's question-aware eviction on the query
        bundle's ``query_str`` keeps the lines of each node that matter to the query (``ratio`` is its
        token budget, 0.35 by default; no model is loaded); a call without a query raises
        :class:`kompress.InvalidInputError`.
        """

        model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", protected_namespaces=())

        model: Optional[str] = None
        method: str = "kompress"
        ratio: Optional[float] = None
        target_tokens: Optional[int] = None
        device: str = "auto"
        dtype: str = "auto"
        threads: Optional[int] = None
        query_aware: bool = False
        compress_kwargs: Dict[str, Any] = Field(default_factory=dict)

        _engine: Any = PrivateAttr(default=None)

        def __init__(self, **data: Any) -> None:
            super().__init__(**data)
            self._engine = Engine(
                self.method,
                self.model,
                self.ratio,
                self.target_tokens,
                self.device,
                self.dtype,
                self.threads,
                self.query_aware,
                self.compress_kwargs,
            )

        @classmethod
        def class_name(cls) -> str:
            return "KompressNodePostprocessor"

        def _postprocess_nodes(
            self, nodes: List[NodeWithScore], query_bundle: Optional[QueryBundle] = None
        ) -> List[NodeWithScore]:
            texts, query = _texts(nodes, query_bundle)
            return _replace(nodes, self._engine.compress(list(texts.values()), query), texts)

        async def _apostprocess_nodes(
            self, nodes: List[NodeWithScore], query_bundle: Optional[QueryBundle] = None
        ) -> List[NodeWithScore]:
            texts, query = _texts(nodes, query_bundle)
            return _replace(nodes, await self._engine.acompress(list(texts.values()), query), texts)

    def _texts(nodes: List[NodeWithScore], query_bundle: Optional[QueryBundle]) -> "tuple[Dict[int, str], Optional[str]]":
        """The text of each text node, by its index; the query's text."""
        texts = {
            i: n.node.get_content(metadata_mode=MetadataMode.NONE)
            for i, n in enumerate(nodes)
            if isinstance(n.node, TextNode)
        }
        return texts, None if query_bundle is None else query_bundle.query_str

    def _replace(nodes: List[NodeWithScore], results: List[Any], texts: Dict[int, str]) -> List[NodeWithScore]:
        out = list(nodes)
        for i, result in zip(texts, results):
            node = nodes[i].node
            hidden = lambda keys: list(keys) + [k for k in METADATA_KEYS if k not in keys]  # noqa: E731
            new = node.model_copy(
                update={
                    "text": result.text,
                    "metadata": {**node.metadata, **result.metadata()},
                    "excluded_llm_metadata_keys": hidden(node.excluded_llm_metadata_keys),
                    "excluded_embed_metadata_keys": hidden(node.excluded_embed_metadata_keys),
                }
            )
            out[i] = NodeWithScore(node=new, score=nodes[i].score)
        return out

else:

    class KompressNodePostprocessor:  # type: ignore[no-redef]
        """Stands in for the LlamaIndex postprocessor when llama-index-core is not installed."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise ImportError(_MISSING) from _import_error
