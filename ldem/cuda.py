"""The CUDA engine: entropy coding of latents that already live on the GPU.

The GPU writes the CPU's stream format byte for byte (``ldem.encode`` with the same
``lanes`` and ``segment_size`` gives the same bytes), and either side decodes the
other's streams. Inputs are torch CUDA tensors (int32, contiguous); the work runs on
torch's current stream of the tensors' device and the results stay on the device.
Torch is imported only when a function here is called.

Parallelism follows the data: every lane of every segment ends in a 64-bit state
that costs about 50 bits of rate, so :func:`plan_stream` gives a stream as many
32-lane segments as keep that overhead within ``max_overhead`` (0.5 %) of its exact
coded size, which the GPU sums before encoding. Low-rate latents get one segment
(and fewer lanes when even one 32-lane segment would cost more than 0.5 %). Pass
``lanes`` / ``segment_size`` to trade rate for speed explicitly.

>>> import ldem.cuda
>>> ldem.cuda.plan_stream(192 * 32 * 48, coded_bits=898_000)   # workload A: 3 bits/symbol
(32, 131072)
>>> ldem.cuda.plan_stream(192 * 32 * 48, coded_bits=79_000)    # 0.2 bpp on a 768x512 image
(4, 262144)
"""
from __future__ import annotations

import math
import sys
import weakref
from typing import Optional

import numpy as np

from ldem import _core
from ldem._args import (block_grid, check_block, check_dictionaries, check_lanes, check_model_map_shape,
                        check_models, check_segment_size, check_shape)
from ldem.dictionary import _CoreTables

__all__ = [
    "available", "is_cuda_tensor", "plan_stream", "DeviceDictionary",
    "encode_cuda", "decode_cuda", "encode_batch", "decode_batch",
    "block_costs_cuda", "select_models_cuda",
]

_FX = 256  # coded sizes are counted in 1/256 bit on the device


# -- environment -------------------------------------------------------------------------------
def _built() -> bool:
    return bool(_core.build_info().get("cuda", False)) and hasattr(_core, "cuda_device_count")


def available() -> bool:
    """True when the CUDA engine is compiled in and a GPU is present.

    >>> import ldem.cuda
    >>> isinstance(ldem.cuda.available(), bool)
    True
    """
    return _built() and _core.cuda_device_count() > 0


def _torch():
    try:
        import torch
    except ImportError as e:  # torch is optional for the package
        raise ImportError("ldem's CUDA engine takes torch tensors; install PyTorch") from e
    return torch


def _require():
    if not _built():
        raise RuntimeError("ldem was built without the CUDA engine (no nvcc at build time, "
                           "or LDEM_WITH_CUDA=OFF)")
    if _core.cuda_device_count() == 0:
        raise RuntimeError("no CUDA device is available")
    return _torch()


def is_cuda_tensor(x) -> bool:
    """True if ``x`` is a torch tensor on a CUDA device (never imports torch).

    >>> import numpy as np, ldem.cuda
    >>> ldem.cuda.is_cuda_tensor(np.zeros(3))
    False
    """
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor) and x.is_cuda


# -- planning ----------------------------------------------------------------------------------
def plan_stream(num_symbols: int, coded_bits: float, *, lanes: int = 32,
                max_overhead: float = 0.005) -> tuple[int, int]:
    """``(lanes, segment_size)`` the GPU uses for a stream of this size and coded rate.

    The most parallel layout whose expected final-state overhead (about 50 bits per
    lane, 16 per extra segment, 32 for the header) stays within ``max_overhead`` of
    ``coded_bits``: 32-lane segments of the smallest size ``2**k >= 4096`` that fit,
    else a single segment with the most lanes (at most ``lanes``) that fit. A pure
    function: ``ldem.encode(..., lanes=l, segment_size=s)`` reproduces the GPU stream.

    >>> import ldem.cuda
    >>> ldem.cuda.plan_stream(192 * 32 * 48, coded_bits=2_000_000)
    (32, 65536)
    """
    if not _built():
        raise RuntimeError("ldem was built without the CUDA engine")
    lanes_log2 = check_lanes(lanes)
    ppm = _overhead_ppm(max_overhead)
    if num_symbols < 0 or coded_bits < 0:
        raise ValueError("num_symbols and coded_bits must be >= 0")
    l2, shift = _core.cuda_plan_stream(int(num_symbols), int(math.ceil(coded_bits * _FX)),
                                       lanes_log2, ppm)
    return 1 << l2, 1 << shift


def _overhead_ppm(max_overhead) -> int:
    if not isinstance(max_overhead, (int, float)) or not 0 <= max_overhead <= 1:
        raise ValueError(f"max_overhead must be a fraction in [0, 1], got {max_overhead!r}")
    return int(round(max_overhead * 1e6))


# -- dictionaries on the device ----------------------------------------------------------------
class DeviceDictionary(_CoreTables):
    """The integer tables of a dictionary (or an ordered list of them) on one GPU.

    Built once per dictionary and device and cached; pass one explicitly to skip the
    cache lookup.

    >>> import ldem, ldem.cuda
    >>> d = ldem.Dictionary.from_pmfs([[0.25, 0.5, 0.25]], offsets=[-1])
    >>> dd = ldem.cuda.DeviceDictionary(d, device=0)   # doctest: +SKIP
    >>> dd.num_models                                  # doctest: +SKIP
    1
    """

    __slots__ = ("_impl", "device", "_sources")

    def __init__(self, dictionary, device: Optional[int] = None):
        torch = _require()
        impls = _impls(dictionary)
        dev = torch.cuda.current_device() if device is None else int(device)
        stream = torch.cuda.current_stream(dev).cuda_stream
        arg = impls[0] if len(impls) == 1 else list(impls)
        self._impl = _core.CudaDictionary(arg, dev, stream)
        self.device = dev
        self._sources = impls

    @property
    def nbytes(self) -> int:
        return self._impl.nbytes

    def __repr__(self):
        return f"DeviceDictionary(num_models={self.num_models}, device={self.device})"


def _impls(dictionary) -> tuple:
    return check_dictionaries(dictionary, also=", or a DeviceDictionary")


_cache: dict = {}


def _device_dictionary(dictionary, device: int) -> DeviceDictionary:
    if isinstance(dictionary, DeviceDictionary):
        if dictionary.device != device:
            raise ValueError(f"the DeviceDictionary lives on cuda:{dictionary.device}, the data on cuda:{device}")
        return dictionary
    impls = _impls(dictionary)
    key = (tuple(id(i) for i in impls), device)
    hit = _cache.get(key)
    if hit is not None and all(r() is i for r, i in zip(hit[0], impls)):
        return hit[1]
    dd = DeviceDictionary(dictionary, device)
    _cache[key] = ([weakref.ref(i) for i in impls], dd)
    for i in impls:
        weakref.finalize(i, _cache.pop, key, None)
    return dd


# -- argument checks ---------------------------------------------------------------------------
def _check_tensor(t, name: str, dtype, ndim=None, device=None):
    torch = _torch()
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch CUDA tensor, got {type(t).__name__}")
    if not t.is_cuda:
        raise ValueError(f"{name} must be on a CUDA device, got {t.device} (use .cuda())")
    if t.dtype != dtype:
        raise TypeError(f"{name} must have dtype {dtype}, got {t.dtype}")
    if ndim is not None and t.dim() != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(t.shape)}")
    if not t.is_contiguous():
        raise ValueError(f"{name} must be contiguous (call .contiguous())")
    if device is not None and t.device != device:
        raise ValueError(f"{name} is on {t.device}, but the data is on {device}")
    return t


def _models_on(models, grid, device):
    """The model map as a contiguous int32 CUDA tensor on `device` (host maps are uploaded)."""
    torch = _torch()
    if isinstance(models, torch.Tensor) and models.is_cuda:
        m = _check_tensor(models, "models", torch.int32, device=device)
        check_model_map_shape(m.shape, grid)
        return m
    return torch.from_numpy(check_models(models, grid)).to(device)


def _stream(torch, device):
    return torch.cuda.current_stream(device).cuda_stream


def _finish(torch, device, status, sizes, count):
    stream = _stream(torch, device)
    sizes_ptr = sizes.data_ptr() if sizes is not None else 0
    return _core.cuda_finish(device.index, status.data_ptr(), sizes_ptr, count, stream)


# -- encode ------------------------------------------------------------------------------------
def _plan_items(torch, dd, device, syms, maps, shapes, block, lanes, segment_size, max_overhead):
    """(lanes_log2, segment_shift) per item; sums the coded sizes on the GPU when needed."""
    if lanes is not None and segment_size is not None:
        return [(check_lanes(lanes), check_segment_size(segment_size))] * len(syms)
    ppm = _overhead_ppm(max_overhead)
    max_l2 = 5 if lanes is None else check_lanes(lanes)
    if segment_size is not None:  # lanes default to 32
        return [(max_l2, check_segment_size(segment_size))] * len(syms)
    items = [(s.data_ptr(), m.data_ptr(), *shape, *block, 0, 8, 1, 0)
             for s, m, shape in zip(syms, maps, shapes)]
    n = len(items)
    buf = torch.empty(2 * n, dtype=torch.int64, device=device)
    scratch = torch.empty(max(1, _core.cuda_estimate_scratch_bytes(items)), dtype=torch.uint8, device=device)
    _core.cuda_estimate_coded_bits(dd._impl, items, buf[:n].data_ptr(), buf[n:].data_ptr(),
                                   scratch.data_ptr(), scratch.numel(), _stream(torch, device), False)
    _finish(torch, device, buf[n:], None, n)
    bits = buf[:n].cpu().tolist()
    plans = []
    for b, shape in zip(bits, shapes):
        l2, shift = _core.cuda_plan_stream(shape[0] * shape[1] * shape[2], int(b) & (2**64 - 1), max_l2, ppm)
        if lanes is not None:
            l2 = max_l2  # the caller fixed the lanes: only the segment size follows the rate
        plans.append((l2, shift))
    return plans


def _encode(torch, syms, maps, dictionary, block, checksum, lanes, segment_size, max_overhead):
    device = syms[0].device
    dd = _device_dictionary(dictionary, device.index)
    shapes = [tuple(int(v) for v in s.shape) for s in syms]
    plans = _plan_items(torch, dd, device, syms, maps, shapes, block, lanes, segment_size, max_overhead)
    caps = [_core.max_compressed_size(*shape, l2, sh) for shape, (l2, sh) in zip(shapes, plans)]
    offsets = np.concatenate([[0], np.cumsum([(c + 255) // 256 * 256 for c in caps])]).astype(np.int64)
    out = torch.empty(int(offsets[-1]), dtype=torch.uint8, device=device)
    base = out.data_ptr()
    items = [(s.data_ptr(), m.data_ptr(), *shape, *block, l2, sh, base + int(o), cap)
             for s, m, shape, (l2, sh), o, cap in zip(syms, maps, shapes, plans, offsets[:-1], caps)]
    n = len(items)
    buf = torch.empty(2 * n, dtype=torch.int64, device=device)
    nbytes = _core.cuda_encode_scratch_bytes(items, bool(checksum))
    scratch = torch.empty(max(1, nbytes), dtype=torch.uint8, device=device)
    _core.cuda_encode(dd._impl, items, bool(checksum), buf[:n].data_ptr(), buf[n:].data_ptr(),
                      scratch.data_ptr(), scratch.numel(), _stream(torch, device), False)
    sizes = _finish(torch, device, buf[n:], buf[:n], n)
    if n == 1:
        return [out[:sizes[0]].clone()]
    packed = torch.cat([out[int(o):int(o) + s] for o, s in zip(offsets[:-1], sizes)])
    return list(torch.split(packed, sizes))


def encode_cuda(symbols, models, dictionary, block=(1, 1), *, checksum: bool = False,
                lanes: Optional[int] = None, segment_size: Optional[int] = None,
                max_overhead: float = 0.005):
    """Entropy-codes an int32 ``[C, H, W]`` CUDA tensor; returns the stream as a uint8 CUDA tensor.

    Block ``(c, by, bx)`` is coded with model ``models[c, by, bx]`` (a CUDA int32
    tensor, or a host array that is uploaded). The bytes are those of
    ``ldem.encode(symbols, models, dictionary, block, checksum=checksum, lanes=l,
    segment_size=s)`` with ``(l, s)`` from :func:`plan_stream` on the exact coded size
    (or the ``lanes`` / ``segment_size`` given). Waits for the stream once to learn the
    size. Raises ValueError for a model index outside the dictionary.

    >>> import ldem, ldem.cuda
    >>> import torch                                   # doctest: +SKIP
    >>> d = ldem.Dictionary.from_pmfs([[0.1, 0.8, 0.1]], offsets=[-1])
    >>> y = torch.randint(-1, 2, (4, 16, 16), dtype=torch.int32, device="cuda")  # doctest: +SKIP
    >>> m = torch.zeros((4, 1, 1), dtype=torch.int32, device="cuda")             # doctest: +SKIP
    >>> data = ldem.cuda.encode_cuda(y, m, d, block=(16, 16))                    # doctest: +SKIP
    >>> bool((ldem.cuda.decode_cuda(data, m, d, y.shape, block=(16, 16)) == y).all())  # doctest: +SKIP
    True
    """
    torch = _require()
    _check_tensor(symbols, "symbols", torch.int32, ndim=3)
    blk = check_block(block)
    grid = block_grid(tuple(symbols.shape), blk)
    m = _models_on(models, grid, symbols.device)
    with torch.cuda.device(symbols.device):
        return _encode(torch, [symbols], [m], dictionary, blk, checksum, lanes, segment_size,
                       max_overhead)[0]


def encode_batch(latents, models, dictionary, block=(1, 1), *, checksum: bool = False,
                 lanes: Optional[int] = None, segment_size: Optional[int] = None,
                 max_overhead: float = 0.005) -> list:
    """Encodes many latents in one launch; returns one uint8 CUDA tensor (stream) per latent.

    ``latents`` is a ``[B, C, H, W]`` int32 CUDA tensor or a list of ``[C, H, W]`` ones
    (shapes may differ); ``models`` likewise (``[B, C, nby, nbx]`` or a list). Every
    latent is its own stream, planned as in :func:`encode_cuda`.

    >>> ys = torch.randint(-2, 3, (16, 192, 32, 48), dtype=torch.int32, device="cuda")  # doctest: +SKIP
    >>> ms = torch.zeros((16, 192, 1, 1), dtype=torch.int32, device="cuda")           # doctest: +SKIP
    >>> streams = ldem.cuda.encode_batch(ys, ms, d, block=(32, 48))                   # doctest: +SKIP
    >>> len(streams)                                                                   # doctest: +SKIP
    16
    """
    torch = _require()
    syms = _as_list(torch, latents, "latents", 3)
    if not syms:
        return []
    device = syms[0].device
    blk = check_block(block)
    for i, s in enumerate(syms):
        _check_tensor(s, f"latents[{i}]", torch.int32, ndim=3, device=device)
    maps = _as_list(torch, models, "models", 3, allow_host=True)
    if len(maps) != len(syms):
        raise ValueError(f"got {len(syms)} latents but {len(maps)} model maps")
    maps = [_models_on(mm, block_grid(tuple(s.shape), blk), device) for mm, s in zip(maps, syms)]
    with torch.cuda.device(device):
        return _encode(torch, syms, maps, dictionary, blk, checksum, lanes, segment_size, max_overhead)


def _as_list(torch, x, name, ndim, allow_host=False):
    if isinstance(x, torch.Tensor):
        if x.dim() != ndim + 1:
            raise ValueError(f"{name} must be a {ndim + 1}-D tensor or a list of {ndim}-D tensors, "
                             f"got shape {tuple(x.shape)}")
        return list(x.unbind(0))
    if isinstance(x, np.ndarray) and allow_host:
        if x.ndim != ndim + 1:
            raise ValueError(f"{name} must be a {ndim + 1}-D array or a list")
        return list(x)
    if isinstance(x, (list, tuple)):
        return list(x)
    raise TypeError(f"{name} must be a tensor or a list of tensors, got {type(x).__name__}")


# -- decode ------------------------------------------------------------------------------------
def _stream_on(torch, data, device, name="data"):
    if isinstance(data, torch.Tensor):
        if data.is_cuda:
            return _check_tensor(data, name, torch.uint8, ndim=1, device=device)
        data = data.numpy()
    if isinstance(data, (bytes, bytearray, memoryview)):
        a = np.frombuffer(bytes(data), dtype=np.uint8).copy()  # writable for torch
    elif isinstance(data, np.ndarray):
        if data.dtype != np.uint8 or data.ndim != 1:
            raise TypeError(f"{name} must be 1-D uint8, got {data.dtype} with shape {data.shape}")
        a = data
    else:
        raise TypeError(f"{name} must be a uint8 CUDA tensor or bytes, got {type(data).__name__}")
    return torch.from_numpy(np.array(a, copy=True)).to(device)


def _decode(torch, streams, maps, dictionary, shapes, block, device):
    dd = _device_dictionary(dictionary, device.index)
    total = sum(C * H * W for C, H, W in shapes)
    out = torch.empty(total, dtype=torch.int32, device=device)
    outs, items, at = [], [], 0
    for data, m, shape in zip(streams, maps, shapes):
        n = shape[0] * shape[1] * shape[2]
        o = out[at:at + n].view(shape)
        at += n
        outs.append(o)
        items.append((data.data_ptr(), data.numel(), m.data_ptr(), *shape, *block, o.data_ptr()))
    count = len(items)
    status = torch.empty(count, dtype=torch.int64, device=device)
    scratch = torch.empty(max(1, _core.cuda_decode_scratch_bytes(items)), dtype=torch.uint8, device=device)
    _core.cuda_decode(dd._impl, items, status.data_ptr(), scratch.data_ptr(), scratch.numel(),
                      _stream(torch, device), False)
    _finish(torch, device, status, None, count)
    return outs


def _default_device(torch, *candidates):
    for c in candidates:
        if isinstance(c, torch.Tensor) and c.is_cuda:
            return c.device
    return torch.device("cuda", torch.cuda.current_device())


def decode_cuda(data, models, dictionary, shape, block=(1, 1), *, device=None):
    """Decodes a stream (uint8 CUDA tensor, or bytes that are uploaded) to an int32 CUDA tensor.

    Reads any valid ldem stream, whatever its lanes and segment size (CPU streams
    too; 4-lane CPU defaults use few GPU threads and decode slowly). Raises
    :class:`ldem.DecodeError` if the stream is corrupt, truncated, or was made with
    another shape, model map or dictionary; ValueError for a bad model index.

    >>> y2 = ldem.cuda.decode_cuda(ldem.encode(y.cpu().numpy(), m.cpu().numpy(), d, (16, 16)),
    ...                            m, d, (4, 16, 16), block=(16, 16))            # doctest: +SKIP
    """
    torch = _require()
    shp = check_shape(shape)
    blk = check_block(block)
    dev = torch.device(device) if device is not None else _default_device(torch, data, models)
    if dev.type != "cuda":
        raise ValueError(f"device must be a CUDA device, got {dev}")
    if dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    with torch.cuda.device(dev):
        d = _stream_on(torch, data, dev)
        m = _models_on(models, block_grid(shp, blk), dev)
        return _decode(torch, [d], [m], dictionary, [shp], blk, dev)[0]


def decode_batch(streams, models, dictionary, shapes, block=(1, 1), *, device=None) -> list:
    """Decodes many streams in one launch; returns one int32 CUDA tensor per stream.

    ``shapes`` is one ``(C, H, W)`` for all streams or a list; ``models`` is a
    ``[B, C, nby, nbx]`` tensor or a list. Raises :class:`ldem.DecodeError` naming the
    first bad item.

    >>> ys2 = ldem.cuda.decode_batch(streams, ms, d, (192, 32, 48), block=(32, 48))  # doctest: +SKIP
    """
    torch = _require()
    if not isinstance(streams, (list, tuple)):
        raise TypeError("streams must be a list of uint8 CUDA tensors or bytes")
    if not streams:
        return []
    blk = check_block(block)
    if isinstance(shapes, (list, tuple)) and shapes and isinstance(shapes[0], (list, tuple)):
        shps = [check_shape(s) for s in shapes]
    else:
        shps = [check_shape(shapes)] * len(streams)
    if len(shps) != len(streams):
        raise ValueError(f"got {len(streams)} streams but {len(shps)} shapes")
    maps = _as_list(torch, models, "models", 3, allow_host=True)
    if len(maps) != len(streams):
        raise ValueError(f"got {len(streams)} streams but {len(maps)} model maps")
    dev = torch.device(device) if device is not None else _default_device(torch, *streams, *maps)
    if dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    with torch.cuda.device(dev):
        ds = [_stream_on(torch, s, dev, f"streams[{i}]") for i, s in enumerate(streams)]
        ms = [_models_on(mm, block_grid(s, blk), dev) for mm, s in zip(maps, shps)]
        return _decode(torch, ds, ms, dictionary, shps, blk, dev)


# -- block costs and selection -----------------------------------------------------------------
def _costs(symbols, dictionary, block, bias, want_costs, want_choice):
    torch = _require()
    blk = check_block(block)
    batched = isinstance(symbols, torch.Tensor) and symbols.dim() == 4
    _check_tensor(symbols, "symbols", torch.int32, ndim=4 if batched else 3)
    device = symbols.device
    syms = list(symbols.unbind(0)) if batched else [symbols]
    with torch.cuda.device(device):
        dd = _device_dictionary(dictionary, device.index)
        K = dd.num_models
        grid = block_grid(tuple(syms[0].shape) if syms else (0, 0, 0), blk)
        B = len(syms)
        costs = torch.empty((B, *grid, K), dtype=torch.float64, device=device) if want_costs else None
        choice = torch.empty((B, *grid), dtype=torch.int32, device=device) if want_choice else None
        b = None
        if bias is not None:
            b = torch.as_tensor(bias, dtype=torch.float64).to(device).contiguous()
            if b.shape != (K,):
                raise ValueError(f"bias must have one entry per model ({K}), got shape {tuple(b.shape)}")
            if not bool(torch.isfinite(b).all()):
                raise ValueError("bias must be finite")
        items = [(s.data_ptr(), *s.shape, *blk,
                  costs[i].data_ptr() if want_costs else 0,
                  choice[i].data_ptr() if want_choice else 0) for i, s in enumerate(syms)]
        if items:
            nbytes = _core.cuda_costs_scratch_bytes(dd._impl, items)
            scratch = torch.empty(max(1, nbytes), dtype=torch.uint8, device=device)
            _core.cuda_block_costs(dd._impl, items, b.data_ptr() if b is not None else 0,
                                   scratch.data_ptr(), scratch.numel(), _stream(torch, device), False)
        if not batched:
            costs = costs[0] if costs is not None else None
            choice = choice[0] if choice is not None else None
        return costs, choice


def block_costs_cuda(symbols, dictionary, block=(1, 1)):
    """Exact bits of each block under each model: float64 CUDA tensor ``[C, nby, nbx, K]``.

    Bit-identical to :func:`ldem.block_costs` on the same data. ``symbols`` may also
    be ``[B, C, H, W]`` (one launch; result ``[B, C, nby, nbx, K]``).

    >>> c = ldem.cuda.block_costs_cuda(y, d, block=(16, 16))   # doctest: +SKIP
    >>> c.shape                                                # doctest: +SKIP
    torch.Size([4, 1, 1, 1])
    """
    return _costs(symbols, dictionary, block, None, True, False)[0]


def select_models_cuda(symbols, dictionary, block=(1, 1), *, bias=None, return_costs: bool = False):
    """Per-block model choice: ``argmin_k costs[..., k] + bias[k]`` as an int32 CUDA tensor.

    Ties go to the lower index, exactly like ``np.argmin(ldem.block_costs(...) + bias,
    axis=-1)``. ``bias`` (K floats, e.g. the bits of signalling each model) is
    optional. With ``return_costs=True`` returns ``(choice, costs)``.

    >>> choice = ldem.cuda.select_models_cuda(y, d, block=(16, 16))   # doctest: +SKIP
    >>> data = ldem.cuda.encode_cuda(y, choice, d, block=(16, 16))    # doctest: +SKIP
    """
    costs, choice = _costs(symbols, dictionary, block, bias, bool(return_costs), True)
    return (choice, costs) if return_costs else choice
