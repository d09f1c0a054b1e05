"""SuperCompress's API: question-aware eviction of context lines by the built-in 5K-parameter network."""

from __future__ import annotations

import json
from typing import Any, Dict, Iterable, List, Optional

from . import _kompress

__all__ = ["compress_context", "compare_policies", "ContextResult", "POLICIES"]

#: The policies, by the names ``kompress evict --policy`` takes.
POLICIES = (
    "learned",
    "fifo",
    "lru",
    "sliding-window",
    "truncation",
    "summarization",
    "h2o",
    "snapkv",
    "attention",
    "random",
    "oracle",
)


class ContextResult:
    """One compressed context, with supercompress 0.5.0's ``CompressResult`` field names.

    From supercompress: ``original_text``, ``compressed_text``, ``original_tokens``, ``kept_tokens``,
    ``budget_ratio``, ``question``, ``kept_line_ratio``, ``policy_name``, ``compression_ratio``
    (original / kept tokens) and ``kv_savings_pct``. From ``kompress evict --json`` as well: ``policy``,
    ``kept_positions``, ``kept_lines`` (0-based), ``output_tokens``, ``text_savings_pct``,
    ``original_chars``, ``output_chars``, ``annotations`` (with ``annotate=True``) and, from
    :func:`compare_policies`, ``metrics``.
    """

    def __init__(
        self,
        fields: Dict[str, Any],
        original_text: str,
        question: str,
        budget_ratio: float,
        raw_json: Optional[str] = None,
        metrics: Optional[Dict[str, Any]] = None,
    ) -> None:
        self._fields = fields
        self._json = raw_json
        self.original_text = original_text
        self.question = question
        self.budget_ratio = budget_ratio
        self.metrics = metrics

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._fields[name]
        except KeyError:
            raise AttributeError(f"ContextResult has no field {name!r}") from None

    def __dir__(self) -> List[str]:
        return sorted(set(super().__dir__()) | set(self._fields))

    @property
    def policy_name(self) -> str:
        """The policy's display name (supercompress's field; ``policy`` in the JSON)."""
        return self._fields["policy"]

    @property
    def kept_line_ratio(self) -> float:
        """Lines returned over lines in the context (1.0 for a blank context), as supercompress."""
        if self._fields["original_tokens"] == 0:
            return 1.0
        lines = self.original_text.splitlines() or [self.original_text]
        return len(self._fields["kept_lines"]) / max(len(lines), 1)

    @property
    def compression_ratio(self) -> float:
        """``original_tokens / kept_tokens`` (0.0 when nothing was kept), as supercompress."""
        kept = self._fields["kept_tokens"]
        return 0.0 if kept == 0 else self._fields["original_tokens"] / kept

    def to_dict(self) -> Dict[str, Any]:
        """The fields as ``kompress evict --json`` prints them."""
        return json.loads(json.dumps(self._fields))

    def to_json(self) -> str:
        """The JSON ``kompress evict --json`` prints, byte for byte (less the final newline)."""
        return self._json if self._json is not None else json.dumps(self._fields, indent=2)

    def __str__(self) -> str:
        return self._fields["compressed_text"]

    def __repr__(self) -> str:
        f = self._fields
        return (
            f"ContextResult(policy={f['policy']!r}, {f['kept_tokens']} of {f['original_tokens']} tokens kept, "
            f"{len(f['kept_lines'])} lines)"
        )


def compress_context(
    context: str,
    question: str,
    budget_ratio: float = 0.35,
    policy: str = "learned",
    *,
    seed: int = 0,
    checkpoint: Optional[str] = None,
    annotate: bool = False,
) -> ContextResult:
    """Keeps ``budget_ratio`` of the context's tokens that matter to ``question`` and returns every line
    holding one, plus the first 2 and last 8 lines (supercompress 0.5.0's ``compress_context``; equal to
    ``kompress evict --json``).

    ``policy``: one of :data:`POLICIES` (``learned`` uses the built-in network, or ``checkpoint``: a
    safetensors file or PyTorch state_dict). ``seed``: the random policy's. ``annotate``: add every
    line's fate under ``annotations``.
    """
    raw = _kompress.evict(context, question, _ratio(budget_ratio), policy, seed, _path(checkpoint), annotate)
    return ContextResult(json.loads(raw), context, question, budget_ratio, raw)


def compare_policies(
    context: str,
    question: str,
    budget_ratio: float = 0.35,
    policies: Optional[Iterable[str]] = None,
    *,
    seed: int = 0,
    checkpoint: Optional[str] = None,
) -> Dict[str, ContextResult]:
    """Compresses the context with each policy (default: all of :data:`POLICIES`) and scores each
    result: ``{policy name: ContextResult}`` in order, each with its ``metrics`` (oracle recall, entity
    recall, answer quality), as ``kompress compare --json``."""
    names = None if policies is None else [p for p in policies]
    raw = _kompress.compare(context, question, _ratio(budget_ratio), names, seed, _path(checkpoint))
    return {
        row["policy"]: ContextResult(row["result"], context, question, budget_ratio, metrics=row["metrics"])
        for row in json.loads(raw)
    }


def _ratio(budget_ratio: Any) -> float:
    from ._errors import InvalidOptionError

    if isinstance(budget_ratio, bool) or not isinstance(budget_ratio, (int, float)):
        raise InvalidOptionError(f"budget_ratio: must be a number, not {type(budget_ratio).__name__}")
    return float(budget_ratio)


def _path(checkpoint: Any) -> Optional[str]:
    import os

    return None if checkpoint is None else os.fspath(checkpoint)
