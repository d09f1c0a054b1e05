"""kompress: make LLM context smaller before it reaches the model, from Python.

The Rust library as a wheel (distribution ``kompress-rs``): results equal the ``kompress`` CLI's.

- :class:`KompressRunner`: the Kompress token classifier (``chopratejas/kompress-base`` and kin) dropping
  the words a model does not need (``compress``, ``compress_batch``, ``score``).
- :func:`compress_context` / :func:`compare_policies`: SuperCompress's question-aware eviction.
- :mod:`kompress.llmlingua`: ``PromptCompressor``, llmlingua 0.2.2's LLMLingua-2 API (a drop-in).
- :mod:`kompress.ctxprune`: ``Compressor``, ctxprune 0.2.1's API (a drop-in).
- :mod:`kompress.integrations`: LangChain's document compressor and LlamaIndex's node postprocessor.
- :class:`KompressError` and its subclasses: every failure, with a one-line message.
"""

from typing import Any

from ._errors import InvalidInputError, InvalidOptionError, InvalidOptionTypeError, KompressError, ModelNotFoundError
from ._evict import POLICIES, ContextResult, compare_policies, compress_context

# The runner's names load on first use (PEP 562), with numpy and asyncio: the `kompress` console
# script (kompress._cli) imports this package and needs neither, and they took most of its start-up.
_RUNNER_NAMES = ("DEFAULT_MODEL", "CompressResult", "KompressRunner", "TokenScores")


def __getattr__(name: str) -> Any:
    if name in _RUNNER_NAMES:
        from . import _runner

        value = getattr(_runner, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_RUNNER_NAMES))

__version__ = "0.1.0"

__all__ = [
    "KompressRunner",
    "CompressResult",
    "TokenScores",
    "DEFAULT_MODEL",
    "compress_context",
    "compare_policies",
    "ContextResult",
    "POLICIES",
    "KompressError",
    "ModelNotFoundError",
    "InvalidOptionError",
    "InvalidOptionTypeError",
    "InvalidInputError",
]
