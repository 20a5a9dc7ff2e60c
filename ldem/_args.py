"""Argument checks shared by the CPU and GPU entry points: each names the argument."""
from __future__ import annotations

import numpy as np

from ldem.dictionary import Dictionary

__all__ = ["as_array", "batch_items", "check_block", "check_threads", "check_symbols", "check_shape",
           "block_grid", "check_models", "check_model_map_shape", "check_dictionaries", "check_lanes",
           "check_segment_size", "is_int", "short_repr"]


def is_int(v) -> bool:
    """Whether ``v`` is a Python int and not a bool (as JSON and config values are checked)."""
    return isinstance(v, int) and not isinstance(v, bool)


def short_repr(v) -> str:
    """``v`` named briefly for an error message: the repr of a plain value (at most 40
    characters), else its type's name, so a hostile value never floods the message.

    >>> short_repr(3), short_repr([1, 2]), short_repr("x" * 50)[-3:]
    ('3', 'list', '...')
    """
    r = repr(v) if isinstance(v, (int, float, str, type(None), bool)) else type(v).__name__
    return r if len(r) <= 40 else r[:37] + "..."


def _is_torch_tensor(x) -> bool:
    """Whether ``x`` is a torch tensor, by duck typing (torch is never imported here)."""
    return type(x).__module__.partition(".")[0] == "torch" and hasattr(x, "numpy") and hasattr(x, "device")


def as_array(x, name: str):
    """``x`` unchanged, or for a CPU torch tensor its numpy view (same memory, no copy).

    The view has the tensor's dtype, shape and strides, so the checks that follow treat a
    tensor exactly as a numpy array of that dtype. A tensor on another device, or of a
    dtype numpy lacks (bfloat16), raises TypeError.
    """
    if not _is_torch_tensor(x):
        return x
    if x.device.type != "cpu":
        raise TypeError(f"{name} must be a CPU tensor or a numpy array, got a tensor on {x.device}")
    try:
        return x.detach().resolve_conj().resolve_neg().numpy()
    except (TypeError, RuntimeError):
        raise TypeError(f"{name}: a tensor of dtype {x.dtype} has no numpy equivalent") from None


def batch_items(items, name: str) -> list:
    """A list from a sequence of items or from one array (or CPU tensor) [N, ...]."""
    items = as_array(items, name)
    if isinstance(items, np.ndarray):
        if items.ndim != 4:
            raise ValueError(f"{name} must be a sequence of [C, H, W] arrays or one [N, C, H, W] array, "
                             f"got shape {items.shape}")
        return list(items)  # views, no copies
    if isinstance(items, (list, tuple)):
        return list(items)
    raise TypeError(f"{name} must be a list or tuple (or one [N, C, H, W] array), got {type(items).__name__}")


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
    """A C-contiguous int32 [C, H, W] array (copied only if not contiguous).

    A CPU torch tensor is read through its numpy view (:func:`as_array`).
    """
    symbols = as_array(symbols, name)
    if not isinstance(symbols, np.ndarray):
        raise TypeError(f"{name} must be an int32 numpy array [C, H, W], got {type(symbols).__name__}")
    if symbols.dtype != np.int32:
        raise TypeError(f"{name} must have dtype int32, got {symbols.dtype}")
    if symbols.ndim != 3:
        raise ValueError(f"{name} must have shape [C, H, W], got {symbols.shape}")
    return np.ascontiguousarray(symbols)


def check_shape(shape, name: str = "shape") -> tuple[int, int, int]:
    try:
        values = tuple(shape)
    except TypeError:
        raise TypeError(f"{name} must be three ints (C, H, W), got {shape!r}") from None
    if len(values) != 3 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        raise TypeError(f"{name} must be three ints (C, H, W), got {shape!r}")
    C, H, W = (int(v) for v in values)
    if min(C, H, W) < 0:
        raise ValueError(f"{name} must be non-negative, got {shape!r}")
    return C, H, W


def block_grid(shape, block) -> tuple[int, int, int]:
    """Shape ``[C, ceil(H/bh), ceil(W/bw)]`` of the model map (checks both arguments)."""
    C, H, W = check_shape(shape)
    bh, bw = check_block(block)
    return C, -(-H // bh), -(-W // bw)


def check_model_map_shape(shape, grid, name: str = "models") -> None:
    if tuple(shape) != tuple(grid):
        raise ValueError(f"{name} must have shape [C, ceil(H/bh), ceil(W/bw)] = {list(grid)}, "
                         f"got {list(shape)}")


def check_models(models, grid, name: str = "models") -> np.ndarray:
    """The model map as a C-contiguous int32 array of shape ``grid`` (the core checks the
    index range against the dictionary). A CPU torch tensor is read through its numpy view."""
    m = np.asarray(as_array(models, name))
    if not np.issubdtype(m.dtype, np.integer):
        raise TypeError(f"{name} must hold integer model indices, got dtype {m.dtype}")
    check_model_map_shape(m.shape, grid, name)
    if m.dtype != np.int32 and m.size and (m.min() < -(2**31) or m.max() >= 2**31):
        raise ValueError(f"{name}: model index outside int32")
    return np.ascontiguousarray(m, dtype=np.int32)


def check_dictionaries(dictionary, also: str = "") -> tuple:
    """The core handles of a Dictionary or of a non-empty sequence of them (one precision).

    ``also`` names other accepted kinds for the error message (e.g. ", or a DeviceDictionary").
    """
    if isinstance(dictionary, Dictionary):
        return (dictionary._impl,)
    if isinstance(dictionary, (list, tuple)) and dictionary and all(isinstance(d, Dictionary) for d in dictionary):
        if len({d.precision for d in dictionary}) != 1:
            raise ValueError("dictionaries must share one precision")
        return tuple(d._impl for d in dictionary)
    raise TypeError(f"dictionary must be an ldem.Dictionary or a non-empty sequence of them{also}, "
                    f"got {type(dictionary).__name__}")


def _check_int(name: str, v) -> None:
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
        raise TypeError(f"{name} must be an int, got {v!r}")


def check_lanes(lanes) -> int:
    """log2 of ``lanes``, a power of two in [1, 32] (interleaved states per segment)."""
    _check_int("lanes", lanes)
    if lanes < 1 or lanes > 32 or lanes & (lanes - 1):
        raise ValueError(f"lanes must be a power of two in [1, 32], got {lanes!r}")
    return int(lanes).bit_length() - 1


def check_segment_size(segment_size) -> int:
    """log2 of ``segment_size``, a power of two in [2**8, 2**31] (symbols per segment)."""
    _check_int("segment_size", segment_size)
    if segment_size < 256 or segment_size > 2**31 or segment_size & (segment_size - 1):
        raise ValueError(f"segment_size must be a power of two in [2**8, 2**31], got {segment_size!r}")
    return int(segment_size).bit_length() - 1
