"""Argument checks shared by the CPU and GPU entry points: each names the argument."""
from __future__ import annotations

import numpy as np

__all__ = ["check_block", "check_threads", "check_symbols", "check_shape"]


def check_block(block) -> tuple[int, int]:
    try:
        bh, bw = block
    except (TypeError, ValueError):
        raise TypeError(f"block must be a pair (bh, bw), got {block!r}") from None
    for v in (bh, bw):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
            raise TypeError(f"block sizes must be ints, got {block!r}")
        if v < 1:
            raise ValueError(f"block sizes must be >= 1, got {block!r}")
    return int(bh), int(bw)


def check_threads(threads) -> int:
    if threads is None:
        return 0
    if not isinstance(threads, (int, np.integer)) or isinstance(threads, bool):
        raise TypeError("threads must be an int or None")
    if not 1 <= threads <= 4096:
        raise ValueError(f"threads must be in [1, 4096] (or None for all cores), got {threads}")
    return int(threads)


def check_symbols(symbols, name: str = "symbols") -> np.ndarray:
    """A C-contiguous int32 [C, H, W] array (copied only if not contiguous)."""
    if not isinstance(symbols, np.ndarray):
        raise TypeError(f"{name} must be an int32 numpy array [C, H, W], got {type(symbols).__name__}")
    if symbols.dtype != np.int32:
        raise TypeError(f"{name} must have dtype int32, got {symbols.dtype}")
    if symbols.ndim != 3:
        raise ValueError(f"{name} must have shape [C, H, W], got {symbols.shape}")
    return np.ascontiguousarray(symbols)


def check_shape(shape) -> tuple[int, int, int]:
    try:
        values = tuple(shape)
    except TypeError:
        raise TypeError(f"shape must be three ints (C, H, W), got {shape!r}") from None
    if len(values) != 3 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        raise TypeError(f"shape must be three ints (C, H, W), got {shape!r}")
    C, H, W = (int(v) for v in values)
    if min(C, H, W) < 0:
        raise ValueError(f"shape must be non-negative, got {shape!r}")
    return C, H, W
