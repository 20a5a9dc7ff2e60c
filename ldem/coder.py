"""Block-wise entropy coding of int32 tensors over a model dictionary."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ldem import _args, _core
from ldem import cuda as _cuda
from ldem._args import (check_block, check_dictionaries, check_models, check_shape, check_symbols,
                        check_threads)
from ldem.dictionary import Dictionary

__all__ = ["encode", "decode", "block_costs", "block_grid", "build_info", "cuda_available"]


def _handles(dictionary):
    """The core handle of one Dictionary, or a list of handles for a sequence of them."""
    h = check_dictionaries(dictionary)
    return h[0] if isinstance(dictionary, Dictionary) else list(h)


def block_grid(shape: Sequence[int], block: Sequence[int]) -> tuple[int, int, int]:
    """Shape ``[C, ceil(H/bh), ceil(W/bw)]`` of the model map for ``shape`` and ``block``.

    >>> import ldem
    >>> ldem.block_grid((192, 32, 48), (16, 16))
    (192, 2, 3)
    """
    return _args.block_grid(shape, block)


def encode(symbols: np.ndarray, models, dictionary: Dictionary, block=(1, 1),
           threads: Optional[int] = None, checksum: bool = False, *,
           lanes: Optional[int] = None, segment_size: Optional[int] = None) -> bytes:
    """Entropy-codes an int32 ``[C, H, W]`` tensor, block ``(c, by, bx)`` with model ``models[c, by, bx]``.

    ``dictionary`` is a :class:`Dictionary` or a sequence of them whose models are
    numbered in order (no tables are rebuilt to join them).

    Any int32 value round-trips exactly: values outside a model's support are escaped.
    The stream is identical for every ``threads`` value. Without a checksum, damage is
    detected with high probability by the coder's final-state check, except in the raw
    payload bits of escaped values; ``checksum=True`` adds a CRC-32 (4 bytes) over the
    whole stream for data that crosses untrusted channels.
    ``lanes`` interleaved rANS states share each segment of ``segment_size`` symbols; the
    CPU defaults are 4 lanes and 2**17 symbols (each segment adds about ``4 * lanes``
    bytes). Any choice decodes with :func:`decode`, which reads it from the stream
    header. A torch CUDA tensor is coded on its GPU (see :mod:`ldem.cuda`), which picks
    its own layout unless given one, and the result is a uint8 CUDA tensor holding the
    same bytes the CPU writes for that layout.

    >>> import numpy as np, ldem
    >>> d = ldem.Dictionary.from_pmfs([[0.1, 0.8, 0.1], [0.5, 0.5]], offsets=[-1, 0])
    >>> y = np.zeros((2, 4, 4), np.int32); y[1, :2] = 1; y[0, 3, 3] = -7
    >>> models = np.array([[[0, 0]], [[1, 1]]])          # block (4, 2): grid [2, 1, 2]
    >>> data = ldem.encode(y, models, d, block=(4, 2))
    >>> bool((ldem.decode(data, models, d, y.shape, block=(4, 2)) == y).all())
    True
    """
    if _cuda.is_cuda_tensor(symbols):
        return _cuda.encode_cuda(symbols, models, dictionary, block, checksum=checksum,
                                 lanes=lanes, segment_size=segment_size)
    lanes = 4 if lanes is None else lanes
    segment_size = 2**17 if segment_size is None else segment_size
    d = _handles(dictionary)
    y = check_symbols(symbols)
    bh, bw = check_block(block)
    m = check_models(models, block_grid(y.shape, (bh, bw)))
    lanes_log2, segment_shift = _args.check_lanes(lanes), _args.check_segment_size(segment_size)
    return _core.encode(y, m, d, bh, bw, check_threads(threads), bool(checksum),
                        lanes_log2, segment_shift)


def decode(data, models, dictionary: Dictionary, shape, block=(1, 1),
           threads: Optional[int] = None) -> np.ndarray:
    """Decodes :func:`encode` output back to an int32 array of ``shape``.

    Raises :class:`ldem.DecodeError` if the stream is corrupt, truncated, or was made
    with another shape, model map or dictionary (detected by the coder's final-state check).
    ``data`` may also be a uint8 CUDA tensor, decoded on its GPU into an int32 CUDA tensor.

    >>> import numpy as np, ldem
    >>> d = ldem.Dictionary.from_pmfs([[0.25, 0.5, 0.25]], offsets=[-1])
    >>> y = np.array([[[0, 1, -1, 2**31 - 1]]], np.int32)
    >>> data = ldem.encode(y, np.zeros((1, 1, 4), np.int32), d)
    >>> ldem.decode(data, np.zeros((1, 1, 4), np.int32), d, y.shape).tolist()
    [[[0, 1, -1, 2147483647]]]
    """
    if _cuda.is_cuda_tensor(data):
        return _cuda.decode_cuda(data, models, dictionary, shape, block)
    d = _handles(dictionary)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    C, H, W = check_shape(shape)
    bh, bw = check_block(block)
    m = check_models(models, block_grid((C, H, W), (bh, bw)))
    return _core.decode(data, m, d, C, H, W, bh, bw, check_threads(threads))


def block_costs(symbols: np.ndarray, dictionary: Dictionary, block=(1, 1),
                threads: Optional[int] = None) -> np.ndarray:
    """Exact bits of coding each block under each model: float64 ``[C, nby, nbx, K]``.

    Computed from the integer tables (escapes included) without coding; the coded
    size of a model map is the sum of the chosen entries plus a few bytes of
    stream overhead.

    >>> import numpy as np, ldem
    >>> d = ldem.Dictionary.from_pmfs([[0.5, 0.5], [1.0, 0.0]], offsets=[0, 0])
    >>> y = np.zeros((1, 2, 2), np.int32)
    >>> ldem.block_costs(y, d, block=(2, 2)).round(3).tolist()
    [[[[4.0, 0.0]]]]
    """
    if _cuda.is_cuda_tensor(symbols):
        return _cuda.block_costs_cuda(symbols, dictionary, block)
    d = _handles(dictionary)
    y = check_symbols(symbols)
    bh, bw = check_block(block)
    return _core.block_costs(y, d, bh, bw, check_threads(threads))


def build_info() -> dict:
    """How the compiled core was built, and which SIMD code it runs.

    Keys: ``version``, ``compiler``, ``cuda`` (the CUDA engine is compiled in),
    ``format_version``, ``hardware_threads``, ``lanes`` (the default lane count),
    ``cpu_simd`` (the highest SIMD level this CPU supports), ``simd`` (the level in use)
    and ``kernels`` (the build of each kernel chosen at run time: ``encoder``,
    ``selection``, ``pooling``, ``histogram_counts``, ``histogram_costs``).

    SIMD levels, lowest first: ``scalar``, ``sse2``, ``avx2``, ``avx512`` (AVX-512 F, DQ
    and VL). The environment variable ``LDEM_SIMD`` set to a level caps the level in use
    (never above ``cpu_simd``); it is read once, when ldem is imported, and any other
    value than a level name (or empty: no cap) makes the import fail with an error naming
    the levels. Every level writes the same bytes and decodes to the same values; only
    speed differs. ``scalar`` turns off every SIMD kernel that ldem chooses at run time;
    the code is still compiled for the build's baseline (SSE2 on x86-64), which the
    compiler may use for plain loops, and the encoder's SSE2 quad loop (part of that
    baseline) still runs. For example ``LDEM_SIMD=avx2 python -m pytest tests`` runs the
    tests as on a CPU without AVX-512.

    >>> import ldem
    >>> sorted(ldem.build_info())[:3]
    ['compiler', 'cpu_simd', 'cuda']
    >>> levels = ["scalar", "sse2", "avx2", "avx512"]
    >>> info = ldem.build_info()
    >>> levels.index(info["simd"]) <= levels.index(info["cpu_simd"])
    True
    """
    return dict(_core.build_info())


def cuda_available() -> bool:
    """True when the CUDA engine was compiled in and a GPU is present.

    >>> import ldem
    >>> isinstance(ldem.cuda_available(), bool)
    True
    """
    return bool(build_info()["cuda"]) and bool(getattr(_core, "cuda_device_count", lambda: 0)())
