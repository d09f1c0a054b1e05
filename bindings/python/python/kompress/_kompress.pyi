# The native module (Rust, PyO3); use the `kompress` package's API instead.
from typing import Any, Callable, Dict, List, Optional

DEFAULT_MODEL: str
GPU_BACKENDS: List[str]

class Runner:
    def __init__(
        self,
        model: str,
        device: str = "auto",
        dtype: str = "auto",
        threads: Optional[int] = None,
        offline: bool = False,
        revision: Optional[str] = None,
        max_text_bytes: int = 16777216,
    ) -> None: ...
    model: str
    device: str
    dtype: str
    threads: Optional[int]
    max_tokens: int
    max_text_bytes: int
    def compress(
        self, texts: List[Any], options: str = "{}", progress: Optional[Callable[[int, int], Any]] = None
    ) -> List[str]: ...
    def score(self, text: Any) -> Dict[str, Any]: ...

class LlmLingua2Runner:
    def __init__(
        self,
        model: str,
        device: str = "auto",
        dtype: str = "auto",
        threads: Optional[int] = None,
        offline: bool = False,
        revision: Optional[str] = None,
        cache_dir: Optional[str] = None,
        batch_size: int = 50,
        max_text_bytes: int = 16777216,
    ) -> None: ...
    model: str
    device: str
    dtype: str
    threads: Optional[int]
    batch_size: int
    max_text_bytes: int
    def compress(self, context: List[Any], options: str = "{}") -> str: ...

class CtxpruneRunner:
    def __init__(
        self,
        model: str,
        device: str = "auto",
        dtype: str = "auto",
        threads: Optional[int] = None,
        offline: bool = False,
        revision: Optional[str] = None,
        cache_dir: Optional[str] = None,
        max_len: int = 512,
        batch_size: int = 16,
        max_text_bytes: int = 16777216,
    ) -> None: ...
    model: str
    device: str
    dtype: str
    threads: Optional[int]
    max_len: int
    batch_size: int
    def compress(
        self,
        text: Any,
        options: str = "{}",
        unit: Optional[Callable[[List[str]], List[int]]] = None,
        measure: Optional[Callable[[str], float]] = None,
    ) -> str: ...
    def atom_scores(self, text: Any) -> Tuple[List[Tuple[str, str]], List[float], List[int]]: ...

def evict(
    context: Any,
    question: Any,
    budget_ratio: float = 0.35,
    policy: str = "learned",
    seed: int = 0,
    checkpoint: Optional[str] = None,
    annotate: bool = False,
) -> str: ...
def compare(
    context: Any,
    question: Any,
    budget_ratio: float = 0.35,
    policies: Optional[List[str]] = None,
    seed: int = 0,
    checkpoint: Optional[str] = None,
) -> str: ...
def _panic(message: str) -> None: ...
def _cli_main(argv: List[str]) -> int: ...
