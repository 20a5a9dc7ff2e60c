"""Block-wise entropy coding of int32 tensors over a model dictionary."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ldem import _args, _core
from ldem import cuda as _cuda
from ldem._args import (check_block, check_dictionaries, check_models, check_shape, check_symbols,
                        check_threads)
from ldem.dictionary import Dictionary

__all__ = ["encode", "decode", "encode_batch", "decode_batch", "block_costs", "block_grid", "build_info", "cuda_available"]


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


def _per_item_models(models, n: int) -> list:
    """One model map per item: a list or tuple holds one per item, else one array serves all."""
    if isinstance(models, (list, tuple)) or getattr(_args.as_array(models, "models"), "ndim", 0) == 4:
        maps = _args.batch_items(models, "models")
        if len(maps) != n:
            raise ValueError(f"models must be one array for all items or one per item ({n}), got {len(maps)}")
        return maps
    return [models] * n


def encode_batch(latents, models, dictionary: Dictionary, *, block=(1, 1), threads: Optional[int] = None,
                 checksum: bool = False, lanes: Optional[int] = None,
                 segment_size: Optional[int] = None) -> list[bytes]:
    """:func:`encode` of each latent in one call, the items spread over ``threads`` threads.

    ``latents`` is a list of int32 ``[C, H, W]`` arrays (or CPU torch tensors, read in
    place) or one ``[N, C, H, W]`` array. ``models`` is one model map for every item, or
    a list (or ``[N, ...]`` array) of one map per item. Each returned stream is exactly
    ``encode(latents[i], models[i], dictionary, block, ...)``'s bytes, for any ``threads``.
    Each item is coded by one thread (a batch with fewer items than threads codes them in
    turn over all threads), so many small latents run as fast as one large one.

    >>> import numpy as np, ldem
    >>> d = ldem.Dictionary.from_pmfs([[0.1, 0.8, 0.1]], offsets=[-1])
    >>> ys = [np.full((1, 4, 4), v, np.int32) for v in (0, 1, -1)]
    >>> models = np.zeros((1, 1, 1), np.int32)               # one map for all items
    >>> streams = ldem.encode_batch(ys, models, d, block=(4, 4))
    >>> streams[1] == ldem.encode(ys[1], models, d, block=(4, 4))
    True
    >>> [int(y[0, 0, 0]) for y in ldem.decode_batch(streams, models, d, (1, 4, 4), block=(4, 4))]
    [0, 1, -1]
    """
    lanes = 4 if lanes is None else lanes
    segment_size = 2**17 if segment_size is None else segment_size
    d = _handles(dictionary)
    ys = [check_symbols(y, name=f"latents[{i}]") for i, y in enumerate(_args.batch_items(latents, "latents"))]
    bh, bw = check_block(block)
    maps = _per_item_models(models, len(ys))
    ms = [check_models(m, block_grid(y.shape, (bh, bw)), name=f"models[{i}]") for i, (y, m) in enumerate(zip(ys, maps))]
    lanes_log2, segment_shift = _args.check_lanes(lanes), _args.check_segment_size(segment_size)
    return _core.encode_batch(ys, ms, d, bh, bw, check_threads(threads), bool(checksum), lanes_log2,
                              segment_shift)


def decode_batch(streams, models, dictionary: Dictionary, shapes, *, block=(1, 1),
                 threads: Optional[int] = None) -> list[np.ndarray]:
    """:func:`decode` of each stream in one call, the streams spread over ``threads`` threads.

    ``models`` is one model map for every stream or a list of one per stream; ``shapes``
    is one ``(C, H, W)`` for every stream or a list of one per stream. Returns a list of
    int32 arrays. A stream that fails raises :class:`ldem.DecodeError` naming its index
    (``item 2: ...``); every stream's header is checked before any output is allocated.

    >>> import numpy as np, ldem
    >>> d = ldem.Dictionary.from_pmfs([[0.25, 0.5, 0.25]], offsets=[-1])
    >>> ys = [np.ones((1, 2, 3), np.int32), np.zeros((1, 1, 2), np.int32)]
    >>> maps = [np.zeros(y.shape, np.int32) for y in ys]
    >>> streams = ldem.encode_batch(ys, maps, d)
    >>> [y.tolist() for y in ldem.decode_batch(streams, maps, d, [y.shape for y in ys])]
    [[[[1, 1, 1], [1, 1, 1]]], [[[0, 0]]]]
    >>> try:
    ...     ldem.decode_batch([streams[0], b"junk"], maps, d, [y.shape for y in ys])
    ... except ldem.DecodeError as e:
    ...     print(e)
    item 1: not an ldem stream (bad magic)
    """
    d = _handles(dictionary)
    if not isinstance(streams, (list, tuple)):
        raise TypeError(f"streams must be a list or tuple of bytes, got {type(streams).__name__}")
    for i, data in enumerate(streams):
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"streams[{i}] must be bytes, got {type(data).__name__}")
    n = len(streams)
    if _is_one_shape(shapes):
        shape_list = [check_shape(shapes)] * n
    else:
        if not isinstance(shapes, (list, tuple)):
            raise TypeError(f"shapes must be one (C, H, W) or a list of them, got {shapes!r}")
        if len(shapes) != n:
            raise ValueError(f"shapes must be one (C, H, W) or one per stream ({n}), got {len(shapes)}")
        shape_list = [check_shape(s, name=f"shapes[{i}]") for i, s in enumerate(shapes)]
    bh, bw = check_block(block)
    maps = _per_item_models(models, n)
    ms = [check_models(m, block_grid(s, (bh, bw)), name=f"models[{i}]")
          for i, (s, m) in enumerate(zip(shape_list, maps))]
    return _core.decode_batch(list(streams), ms, d, shape_list, bh, bw, check_threads(threads))


def _is_one_shape(shapes) -> bool:
    """Whether ``shapes`` is a single (C, H, W) rather than a list of them."""
    try:
        return len(shapes) == 3 and all(isinstance(v, (int, np.integer)) for v in shapes)
    except TypeError:
        return False


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
