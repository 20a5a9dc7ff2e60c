"""Tests import the installed ldem (with its compiled core), never the source tree,
even under ``python -m pytest`` (which puts the working directory on sys.path)."""
import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _ROOT]

import pytest  # noqa: E402


@pytest.fixture()
def peak_memory():
    """peak_memory(fn) runs fn() and returns the peak bytes Python allocators held
    (tracemalloc: numpy buffers included)."""
    import tracemalloc

    def measure(fn):
        tracemalloc.start()
        try:
            fn()
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        return peak
    return measure
