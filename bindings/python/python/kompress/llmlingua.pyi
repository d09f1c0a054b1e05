from typing import Any, Dict, List, Optional, Sequence, Union

class PromptCompressor:
    model_name: str
    use_llmlingua2: bool
    open_api_config: Dict[str, Any]
    max_batch_size: int
    max_force_token: int
    max_seq_len: int
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
        max_text_bytes: int = 16777216,
    ) -> None: ...
    @property
    def device(self) -> str: ...
    @property
    def dtype(self) -> str: ...
    def __call__(self, *args: Any, **kwargs: Any) -> Dict[str, Any]: ...
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
        word_sep: str = "\t\t|\t\t",
        label_sep: str = " ",
        token_to_word: str = "mean",
        force_tokens: Sequence[str] = (),
        force_reserve_digit: bool = False,
        drop_consecutive: bool = False,
        chunk_end_tokens: Sequence[str] = (".", "\n"),
        strict_preserve_uncompressed: bool = True,
    ) -> Dict[str, Any]: ...
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
        word_sep: str = "\t\t|\t\t",
        label_sep: str = " ",
        token_to_word: str = "mean",
        force_tokens: Sequence[str] = (),
        force_reserve_digit: bool = False,
        drop_consecutive: bool = False,
        chunk_end_tokens: Sequence[str] = (".", "\n"),
    ) -> Dict[str, Any]: ...
    async def acompress_prompt(self, context: Union[str, List[str]], *args: Any, **kwargs: Any) -> Dict[str, Any]: ...
    async def acompress_prompt_llmlingua2(
        self, context: Union[str, List[str]], *args: Any, **kwargs: Any
    ) -> Dict[str, Any]: ...
