from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import numpy.typing as npt

__version__: str
DEFAULT_MODEL: str
POLICIES: Tuple[str, ...]

class KompressError(Exception): ...
class ModelNotFoundError(KompressError, FileNotFoundError): ...
class InvalidOptionError(KompressError, ValueError): ...
class InvalidOptionTypeError(InvalidOptionError, TypeError): ...
class InvalidInputError(KompressError, ValueError): ...

class CompressResult:
    compressed: str
    compression_ratio: float
    tokens_saved: int
    original_tokens: int
    compressed_tokens: int
    original_words: int
    kept_words: int
    token_counter: str
    chunks: int
    unscored_words: int
    scored_words: int
    unscored_reason: Optional[str]
    passthrough: bool
    passthrough_reason: Optional[str]
    over_budget: bool
    min_ratio: Optional[float]
    min_target_tokens: Optional[int]
    time_budget_ms: Optional[int]
    mode: str
    model: str
    device: str
    dtype: str
    compat: Optional[str]
    words: Optional[List[Dict[str, Any]]]
    def to_dict(self) -> Dict[str, Any]: ...
    def to_json(self) -> str: ...

class TokenScores:
    input_ids: npt.NDArray[np.uint32]
    word_ids: npt.NDArray[np.int64]
    offsets: npt.NDArray[np.int64]
    logits: npt.NDArray[np.float32]
    token_prob: npt.NDArray[np.float32]
    span_score: Optional[npt.NDArray[np.float32]]
    score: npt.NDArray[np.float32]
    def __len__(self) -> int: ...
    def to_dict(self) -> Dict[str, Any]: ...
    def to_json(self) -> str: ...

class KompressRunner:
    def __init__(
        self,
        model: str = ...,
        device: str = "auto",
        dtype: str = "auto",
        threads: Optional[int] = None,
        offline: bool = False,
        *,
        revision: Optional[str] = None,
        max_text_bytes: int = 16777216,
    ) -> None: ...
    @property
    def model(self) -> str: ...
    @property
    def device(self) -> str: ...
    @property
    def dtype(self) -> str: ...
    @property
    def threads(self) -> Optional[int]: ...
    @property
    def max_tokens(self) -> int: ...
    def compress(
        self,
        text: str,
        mode: Optional[str] = None,
        threshold: Optional[float] = None,
        ratio: Optional[float] = None,
        target_tokens: Optional[int] = None,
        compat: Optional[str] = None,
        protect: bool = True,
        *,
        count_tokens: Optional[str] = ...,
        chunk_words: Optional[int] = ...,
        chunk_tokens: Optional[int] = ...,
        batch_size: Optional[int] = ...,
        min_words: Optional[int] = ...,
        protect_words: Optional[bool] = ...,
        protect_tables: Optional[bool] = ...,
        protect_code: Optional[bool] = ...,
        protect_code_lines: Optional[bool] = ...,
        protect_markdown: Optional[bool] = ...,
        protect_json: Optional[bool] = ...,
        explain: Optional[bool] = ...,
        time_budget_ms: Optional[int] = ...,
    ) -> CompressResult: ...
    def compress_batch(
        self,
        texts: Sequence[str],
        mode: Optional[str] = None,
        threshold: Optional[float] = None,
        ratio: Optional[float] = None,
        target_tokens: Optional[int] = None,
        compat: Optional[str] = None,
        protect: bool = True,
        progress: Optional[Callable[[int, int], Any]] = None,
        *,
        count_tokens: Optional[str] = ...,
        chunk_words: Optional[int] = ...,
        chunk_tokens: Optional[int] = ...,
        batch_size: Optional[int] = ...,
        min_words: Optional[int] = ...,
        protect_words: Optional[bool] = ...,
        protect_tables: Optional[bool] = ...,
        protect_code: Optional[bool] = ...,
        protect_code_lines: Optional[bool] = ...,
        protect_markdown: Optional[bool] = ...,
        protect_json: Optional[bool] = ...,
        explain: Optional[bool] = ...,
        time_budget_ms: Optional[int] = ...,
    ) -> List[CompressResult]: ...
    async def acompress(self, text: str, *args: Any, **options: Any) -> CompressResult: ...
    async def acompress_batch(self, texts: Sequence[str], *args: Any, **options: Any) -> List[CompressResult]: ...
    def score(self, text: str) -> TokenScores: ...

class ContextResult:
    original_text: str
    question: str
    budget_ratio: float
    metrics: Optional[Dict[str, Any]]
    compressed_text: str
    policy: str
    kept_positions: List[int]
    kept_lines: List[int]
    original_tokens: int
    kept_tokens: int
    kv_savings_pct: float
    output_tokens: int
    text_savings_pct: float
    original_chars: int
    output_chars: int
    annotations: List[Dict[str, Any]]
    @property
    def policy_name(self) -> str: ...
    @property
    def kept_line_ratio(self) -> float: ...
    @property
    def compression_ratio(self) -> float: ...
    def to_dict(self) -> Dict[str, Any]: ...
    def to_json(self) -> str: ...

def compress_context(
    context: str,
    question: str,
    budget_ratio: float = 0.35,
    policy: str = "learned",
    *,
    seed: int = 0,
    checkpoint: Optional[str] = None,
    annotate: bool = False,
) -> ContextResult: ...
def compare_policies(
    context: str,
    question: str,
    budget_ratio: float = 0.35,
    policies: Optional[Iterable[str]] = None,
    *,
    seed: int = 0,
    checkpoint: Optional[str] = None,
) -> Dict[str, ContextResult]: ...
