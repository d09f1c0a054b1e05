from kompress import KompressRunner as KompressRunner

__all__ = ["KompressRunner"]
