"""Exceptions raised by ldem."""
from ldem._native import CoreNotBuiltError, core

DecodeError = core.DecodeError

DecodeError.__module__ = "ldem"
DecodeError.__doc__ = """A stream is corrupt, truncated, or does not match the arguments given to decode it.

Subclass of ``ValueError``.

>>> import ldem
>>> try:
...     ldem.decode(b"junk", [[[0]]], ldem.Dictionary.from_pmfs([[1.0]], [0]), shape=(1, 1, 1))
... except ldem.DecodeError as e:
...     print("rejected:", e)
rejected: not an ldem stream (bad magic)
"""

__all__ = ["CoreNotBuiltError", "DecodeError"]
