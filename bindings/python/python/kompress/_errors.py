"""The exceptions kompress raises. Each message is the library's one line, naming what was wrong."""

from __future__ import annotations

__all__ = ["KompressError", "ModelNotFoundError", "InvalidOptionError", "InvalidOptionTypeError", "InvalidInputError"]


class KompressError(Exception):
    """Base class of every kompress error (a bug inside kompress, a Rust panic, arrives as this too)."""


class ModelNotFoundError(KompressError, FileNotFoundError):
    """The model is neither a local directory with its files nor a hub model that can be fetched or is
    cached (offline)."""


class InvalidOptionError(KompressError, ValueError):
    """An option is unknown, of the wrong type, out of range, or contradicts another one."""


class InvalidOptionTypeError(InvalidOptionError, TypeError):
    """An option of the wrong type (``threads="2"``): an :class:`InvalidOptionError` and a ``TypeError``."""


class InvalidInputError(KompressError, ValueError):
    """A text is not a ``str``, holds lone surrogates, is larger than ``max_text_bytes``, or is longer
    than the model accepts."""
