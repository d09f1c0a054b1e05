from typing import Any, Dict, List, Optional

from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import NodeWithScore, QueryBundle

class KompressNodePostprocessor(BaseNodePostprocessor):
    model: Optional[str]
    method: str
    ratio: Optional[float]
    target_tokens: Optional[int]
    device: str
    dtype: str
    threads: Optional[int]
    query_aware: bool
    compress_kwargs: Dict[str, Any]
    def __init__(
        self,
        *,
        model: Optional[str] = None,
        method: str = "kompress",
        ratio: Optional[float] = None,
        target_tokens: Optional[int] = None,
        device: str = "auto",
        dtype: str = "auto",
        threads: Optional[int] = None,
        query_aware: bool = False,
        compress_kwargs: Dict[str, Any] = ...,
    ) -> None: ...
    def _postprocess_nodes(
        self, nodes: List[NodeWithScore], query_bundle: Optional[QueryBundle] = None
    ) -> List[NodeWithScore]: ...
