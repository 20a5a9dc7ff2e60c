"""The compiled core, ``ldem._core``, imported in one place.

Every module of ldem reaches the core through this import (``ldem.errors`` imports it
first, and ``import ldem`` imports ``ldem.errors`` first). Run from the root of a
source clone, the ``ldem/`` folder there shadows the installed package; without a core
built in place, the import fails with :class:`CoreNotBuiltError`, which says what to
do instead of ``No module named 'ldem._core'``.
"""
from __future__ import annotations

import importlib
import importlib.machinery
from pathlib import Path

__all__ = ["CoreNotBuiltError", "core"]

_PACKAGE = Path(__file__).absolute().parent  # the folder imported from (links not followed)


class CoreNotBuiltError(ImportError):
    """ldem's compiled core is missing from the ``ldem`` package being imported."""


def _built_core_files() -> list:
    return [p for s in importlib.machinery.EXTENSION_SUFFIXES for p in _PACKAGE.glob("_core" + s)]


try:
    core = importlib.import_module("ldem._core")
except ModuleNotFoundError as e:
    if e.name != "ldem._core" or _built_core_files():
        raise
    raise CoreNotBuiltError(
        f"ldem's compiled core is not built in this source tree ({_PACKAGE}): run from outside the "
        f"clone to use the installed package, or build in place with `pip install -e .`") from None
