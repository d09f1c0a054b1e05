from typing import Any, Dict, Optional, Sequence

from langchain_core.documents import BaseDocumentCompressor, Document

class KompressDocumentCompressor(BaseDocumentCompressor):
    model: Optional[str]
    method: Optional[str]
    ratio: Optional[float]
    target_tokens: Optional[int]
    device: str
    dtype: str
    threads: Optional[int]
    query_aware: bool
    compress_kwargs: Dict[str, Any]
    model_name: Optional[str]
    device_map: Optional[str]
    target_token: Optional[int]
    model_configuration: Dict[str, Any]
    def __init__(
        self,
        *,
        model: Optional[str] = None,
        method: Optional[str] = None,
        ratio: Optional[float] = None,
        target_tokens: Optional[int] = None,
        device: str = "auto",
        dtype: str = "auto",
        threads: Optional[int] = None,
        query_aware: bool = False,
        compress_kwargs: Dict[str, Any] = ...,
        model_name: Optional[str] = None,
        device_map: Optional[str] = None,
        target_token: Optional[int] = None,
        model_config: Dict[str, Any] = ...,
    ) -> None: ...
    def compress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Any = None
    ) -> Sequence[Document]: ...
    async def acompress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Any = None
    ) -> Sequence[Document]: ...
