"""CompressAI in the test and benchmark environment (never part of the ldem package).

CompressAI 1.2.8 imports torchvision, and PyPI's torchvision is a CUDA build whose compiled
ops do not load beside a CPU-only torch; its import then fails with ``operator
torchvision::nms does not exist``. CompressAI's image models use none of those ops, so
when they are missing :func:`import_compressai` registers placeholder schemas for the two
that torchvision's Python code refers to at import time (``nms`` and ``qnms``) before the
first import. Calling them would fail; nothing here does.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys

__all__ = ["import_compressai"]

_placeholder_library = None  # keeps the registration alive


def _import_torchvision(torch):
    """Imports torchvision, registering the placeholders if its compiled ops do not load."""
    global _placeholder_library
    try:
        importlib.import_module("torchvision")
        return
    except RuntimeError as e:
        if "torchvision::nms" not in str(e):
            raise
    for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
        del sys.modules[name]  # the half-imported package, imported again below
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _placeholder_library = lib
    importlib.import_module("torchvision")


def import_compressai():
    """``compressai`` with its ``zoo`` imported (ImportError if it is not installed).

    >>> compressai = import_compressai()   # doctest: +SKIP
    >>> compressai.__version__             # doctest: +SKIP
    '1.2.8'
    """
    import torch
    if importlib.util.find_spec("compressai") is None:
        raise ImportError("CompressAI is not installed", name="compressai")
    if "compressai" not in sys.modules:
        _import_torchvision(torch)
    compressai = importlib.import_module("compressai")
    importlib.import_module("compressai.zoo")
    return compressai
