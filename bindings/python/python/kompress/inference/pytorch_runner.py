"""The model card's import path: ``from kompress.inference.pytorch_runner import KompressRunner``.

The runner is kompress's Rust one (candle), not PyTorch: the name is kept so that code written for the
model card runs unchanged.
"""

from .._runner import KompressRunner

__all__ = ["KompressRunner"]
