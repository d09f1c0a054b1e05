from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

DEFAULT_MODEL: str
UNITS: Tuple[str, ...]

@dataclass(frozen=True)
class Atom:
    ws: str
    text: str

class Compressor:
    max_len: int
    batch_size: int
    backend: str
    def __init__(
        self,
        model: str = ...,
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
    ) -> None: ...
    @property
    def device(self) -> str: ...
    @property
    def dtype(self) -> str: ...
    def atom_scores(self, text: str) -> Tuple[List[Atom], List[float], List[int]]: ...
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
    ) -> Dict[str, Any]: ...
    async def acompress(self, text: str, *args: Any, **kwargs: Any) -> Dict[str, Any]: ...

def prune(text: str, keep: float = 0.5, protect: bool = False) -> str: ...
