"""ldem as the entropy coder of CompressAI models: one call, same reconstructions.

:func:`patch` swaps, in place, the coding of every ``EntropyBottleneck`` and
``GaussianConditional`` of a CompressAI model, so that ``model.compress(x)`` and
``model.decompress(strings, shape)`` code their latents with ldem: whole tensors at once
(no Python lists), over ldem's threads. CompressAI is imported only by the code that
needs it; ldem does not depend on it.

- The integer tables are the module's own (``_quantized_cdf``, ``_cdf_length`` and
  ``_offset``, built by ``model.update()``), converted exactly: CompressAI codes value
  ``v`` of table ``j`` as symbol ``v - offset[j]`` when ``0 <= v - offset[j] < n_j``
  (``n_j = cdf_length[j] - 2``) and every other value through its overflow slot; ldem's
  model ``j`` covers ``[offset[j], offset[j] + n_j)`` with the same frequencies and gives
  its escape slot the overflow slot's frequency. The symbols are quantized and
  dequantized by CompressAI's own code (with its means and medians), and ldem codes every
  int32 exactly, so the **decoded latents and the reconstruction are identical** to those
  of CompressAI's coder; the coded sizes are nearly the same.
- The strings are **ldem streams, not CompressAI's bytes**: decode them with a model
  patched the same way. Decoding reads the integer tables only; nothing is computed in
  floating point to rebuild them, so a stream decodes the same on every machine.
- ``GaussianConditional``: each element's table index is its model (block ``(1, 1)``).
  ``EntropyBottleneck``: one table per channel, one block per channel plane; with
  ``local=True`` its latents (the factorized prior's ``y``, a hyperprior's ``z``) are
  coded by :class:`ldem.LocalEntropyCoder` with the bottleneck's tables as the global
  models (and a learned ``static`` dictionary if given): image-dependent models, never
  more than a few bytes larger than the global ones.
- A batch of N images gives N strings per latent, as CompressAI returns them.
- Not covered: the autoregressive models (``mbt2018``, ``cheng2020-anchor``, …) code
  their ``y`` symbol by symbol with ``ans.BufferedRansEncoder`` and
  ``RansDecoder.decode_stream`` inside their own ``compress``/``decompress``. After
  :func:`patch` their ``y`` stays with CompressAI's coder and their hyperprior's ``z``
  goes through ldem; both directions keep working. Subclasses that replace the coding
  themselves (``GaussianMixtureConditional``) are left as they are.

Example (needs CompressAI; ``x`` is a float tensor ``[N, 3, H, W]`` in [0, 1], H and W
multiples of 64)::

    import torch
    from compressai.zoo import bmshj2018_hyperprior
    import ldem.compressai

    model = bmshj2018_hyperprior(quality=3, pretrained=True).eval()
    model.update()
    ldem.compressai.patch(model)
    with torch.no_grad():
        out = model.compress(x)
        x_hat = model.decompress(out["strings"], out["shape"])["x_hat"]
"""
from __future__ import annotations

import importlib
import math
from typing import Optional

import numpy as np

from ldem._args import check_threads
from ldem._optional import require
from ldem.coder import decode_batch, encode_batch
from ldem.dictionary import Dictionary
from ldem.errors import DecodeError
from ldem.local import LocalEntropyCoder, check_effort

__all__ = ["patch"]


def _compressai_entropy_models():
    try:
        return importlib.import_module("compressai.entropy_models")
    except ImportError as e:
        if e.name is not None and e.name.split(".")[0] != "compressai":
            raise  # CompressAI is there but one of its own imports failed: its message says which
        raise ImportError("ldem.compressai.patch needs CompressAI (pip install compressai)") from e


def patch(model, *, local: bool = False, threads: Optional[int] = None,
          static: Optional[Dictionary] = None, effort: int = 2):
    """Makes ``model.compress``/``model.decompress`` code through ldem; returns ``model``.

    Every ``EntropyBottleneck`` and ``GaussianConditional`` among ``model.modules()``
    (the model itself included) gets ldem's ``compress``/``decompress`` on the instance;
    the tables are read from the module at each call and converted again only when
    ``update()`` changed them. ``local=True`` codes the bottlenecks' latents with
    :class:`ldem.LocalEntropyCoder` (``static``: its optional learned dictionary, at the
    tables' precision; ``effort``: its search effort, 2 by default: every block size,
    partitions and up to 32 image models, as a latent is coded once and read many times).
    ``threads``: ldem's threads per call (None: all cores). Calling
    it again re-patches with the new settings. Raises ``ValueError`` if a module has no
    tables yet (call ``model.update()`` first) or the model has no such module.

    Example (needs CompressAI, so it is run by ``tests/test_compressai.py``, not here)::

        model = compressai.zoo.bmshj2018_factorized(quality=1, pretrained=True).eval()
        model.update()
        out = ldem.compressai.patch(model).compress(x)   # out["strings"]: ldem streams
    """
    torch = require("ldem.compressai.patch", "torch")
    em = _compressai_entropy_models()
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a CompressAI model (a torch.nn.Module), got {type(model).__name__}")
    if not isinstance(local, bool):
        raise TypeError(f"local must be a bool, got {local!r}")
    check_threads(threads)
    if static is not None and not isinstance(static, Dictionary):
        raise TypeError(f"static must be an ldem.Dictionary or None, got {type(static).__name__}")
    if static is not None and not local:
        raise ValueError("static is the dictionary of local=True; it has no use with local=False")
    effort = check_effort(effort)
    found = []
    for name, module in model.named_modules():
        kind = _kind(module, em)
        if kind is None:
            continue
        where = f"{type(module).__name__} {name!r}" if name else type(module).__name__
        coding = _Coding(module, kind, where, local=local and kind == "bottleneck", threads=threads,
                         static=static, effort=effort)
        coding.dictionary()  # an un-updated module or a bad table is refused now, not at the first call
        found.append((module, coding))
    if not found:
        raise ValueError("model has no EntropyBottleneck or GaussianConditional to patch")
    for module, coding in found:
        module.compress = coding.compress
        module.decompress = coding.decompress
    return model


def _kind(module, em) -> Optional[str]:
    """"bottleneck", "conditional", or None for a module whose coding is not CompressAI's
    standard one (including subclasses that replace it)."""
    cls = type(module)
    if isinstance(module, em.EntropyBottleneck):
        same = (cls.compress, cls.decompress) == (em.EntropyBottleneck.compress, em.EntropyBottleneck.decompress)
        return "bottleneck" if same else None
    if isinstance(module, em.GaussianConditional):
        same = (cls.compress, cls.decompress) == (em.EntropyModel.compress, em.EntropyModel.decompress)
        return "conditional" if same else None
    return None


def _dictionary_of(cdf: np.ndarray, lengths: np.ndarray, offsets: np.ndarray, precision: int,
                   where: str) -> Dictionary:
    """The ldem models of CompressAI's tables, frequency for frequency (see the module doc)."""
    if cdf.ndim != 2 or lengths.shape != (cdf.shape[0],) or offsets.shape != (cdf.shape[0],):
        raise ValueError(f"{where}: tables of inconsistent shapes {cdf.shape}, {lengths.shape}, {offsets.shape}")
    counts, escapes = [], []
    for j, length in enumerate(lengths.tolist()):
        if not 3 <= length <= cdf.shape[1]:
            raise ValueError(f"{where}: table {j} has an invalid length {length}")
        freq = np.diff(cdf[j, :length].astype(np.int64))
        if cdf[j, 0] != 0 or cdf[j, length - 1] != 2**precision or freq.min() < 1:
            raise ValueError(f"{where}: table {j} is not a valid {precision}-bit table "
                             "(every frequency >= 1, summing to 2**precision)")
        counts.append(freq[:-1])
        escapes.append(int(freq[-1]))
    # Valid tables are kept exactly by from_frequencies (no quantization).
    return Dictionary.from_frequencies(counts, offsets.astype(np.int64), precision, escape=escapes)


def _plane_shape(per_image) -> tuple[int, int, int]:
    """``[C, H, W]`` for one image's latent ``[C, *spatial]``: 2-D planes as they are,
    any other number of spatial dimensions flattened to one row."""
    C, *spatial = per_image
    if len(spatial) == 2:
        return C, spatial[0], spatial[1]
    return C, 1, math.prod(spatial)


def _to_int32(tensor) -> np.ndarray:
    """A torch tensor as a C-contiguous int32 numpy array (on the CPU)."""
    return np.ascontiguousarray(tensor.detach().cpu().numpy(), dtype=np.int32)


def _channel_models(shape):
    """An EntropyBottleneck's model map and block for a ``[C, H, W]`` latent: table ``c`` codes
    channel ``c``, one block per channel plane."""
    return np.arange(shape[0], dtype=np.int32).reshape(shape[0], 1, 1), (max(shape[1], 1), max(shape[2], 1))


# Stream layout of one image's latent. CompressAI's coder has one 32-bit state per string;
# each ldem segment ends with 8 bytes per lane, so per-image strings use one segment (the
# batch, not the segments, spreads over threads), 4 lanes (the fast path) and a single
# lane for tiny latents such as a hyperprior's z, where the states would dominate.
_ONE_SEGMENT = 1 << 31
_SMALL_LATENT = 1 << 12


def _encode_batch(symbols: np.ndarray, models: np.ndarray, dictionary: Dictionary, block,
                  threads: Optional[int]) -> list:
    """One stream per image of ``symbols[N, C, H, W]``, in one call over ``threads``;
    ``models`` is one map for all images or one per image (``[N, ...]``)."""
    if symbols.shape[0] == 0:
        return []
    lanes = 1 if symbols[0].size < _SMALL_LATENT else 4
    return encode_batch(symbols, models, dictionary, block=block, threads=threads, lanes=lanes,
                        segment_size=_ONE_SEGMENT)


def _decode_batch(strings, models: np.ndarray, dictionary: Dictionary, shape, block,
                  threads: Optional[int]) -> np.ndarray:
    """The int32 ``[N, *shape]`` latents of ``strings`` (the inverse of :func:`_encode_batch`)."""
    out = np.empty((len(strings), *shape), np.int32)
    for i, y in enumerate(decode_batch(strings, models, dictionary, shape, block=block, threads=threads)):
        out[i] = y
    return out


def _check_strings(strings, count: Optional[int] = None) -> list:
    if not isinstance(strings, (list, tuple)):
        raise TypeError(f"strings must be a list of bytes (one per image), got {type(strings).__name__}")
    for i, s in enumerate(strings):
        if not isinstance(s, (bytes, bytearray, memoryview)):
            raise TypeError(f"strings[{i}] must be bytes, got {type(s).__name__}")
    if count is not None and len(strings) != count:
        raise ValueError(f"{len(strings)} strings for {count} images")
    return list(strings)


class _Coding:
    """ldem's compress/decompress of one CompressAI entropy module, with its converted tables."""

    def __init__(self, module, kind: str, where: str, *, local: bool, threads, static, effort: int = 2):
        self.module, self.kind, self.where = module, kind, where
        self.local, self.threads, self.static, self.effort = local, threads, static, effort
        self._tables = None     # copies of the CompressAI tables the cache was built from
        self._dictionary = None
        self._local_coder = None

    # -- tables ---------------------------------------------------------------------
    def dictionary(self) -> Dictionary:
        """The module's tables as a Dictionary, rebuilt only when they changed."""
        m = self.module
        if m._offset.numel() == 0 or m._quantized_cdf.numel() == 0 or m._cdf_length.numel() == 0:
            raise ValueError(f"{self.where} has no tables yet: call model.update() first")
        tables = tuple(t.detach().cpu().numpy() for t in (m._quantized_cdf, m._cdf_length, m._offset))
        if self._tables is None or not all(a.shape == b.shape and np.array_equal(a, b)
                                           for a, b in zip(tables, self._tables)):
            precision = int(m.entropy_coder_precision)
            if not 12 <= precision <= 16:
                raise ValueError(f"{self.where}: entropy_coder_precision {precision} is outside ldem's [12, 16]")
            cdf, lengths, offsets = tables[0], tables[1].reshape(-1), tables[2].reshape(-1)
            self._dictionary = _dictionary_of(cdf, lengths, offsets, precision, self.where)
            self._local_coder = None
            self._tables = tuple(t.copy() for t in tables)
        return self._dictionary

    def local_coder(self) -> LocalEntropyCoder:
        d = self.dictionary()
        if self._local_coder is None:
            self._local_coder = LocalEntropyCoder(d, self.static, threads=self.threads, effort=self.effort)
        return self._local_coder

    def _torch(self):
        return require("ldem.compressai", "torch")

    def _output(self, values: np.ndarray, size):
        """Decoded symbols as the int32 tensor CompressAI's decoder fills, on the tables' device."""
        torch = self._torch()
        return torch.from_numpy(values).reshape(size).to(self.module._quantized_cdf.device)

    # -- entry points (the signatures of CompressAI's) --------------------------------
    def compress(self, *args, **kwargs):
        if self.kind == "bottleneck":
            return self._compress_bottleneck(*args, **kwargs)
        return self._compress_conditional(*args, **kwargs)

    def decompress(self, *args, **kwargs):
        if self.kind == "bottleneck":
            return self._decompress_bottleneck(*args, **kwargs)
        return self._decompress_conditional(*args, **kwargs)

    def _check_tensor(self, x, name: str):
        torch = self._torch()
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() < 2:
            raise ValueError(f"{name} must have at least 2 dimensions [N, C, ...], got shape {tuple(x.shape)}")

    def _medians(self, n: int, spatial_dims: int):
        """The bottleneck's medians broadcast to ``[n, C, 1, ...]``, as CompressAI computes them."""
        m = self.module
        medians = m._extend_ndims(m._get_medians().detach(), spatial_dims)
        return medians.expand(n, *([-1] * (spatial_dims + 1)))

    def _compress_bottleneck(self, x):
        self._check_tensor(x, "x")
        d = self.dictionary()
        if x.size(1) != d.num_models:
            raise ValueError(f"x has {x.size(1)} channels but {self.where} has {d.num_models} tables")
        symbols = self.module.quantize(x, "symbols", self._medians(x.size(0), x.dim() - 2))
        shape = _plane_shape(tuple(symbols.shape[1:]))
        y = _to_int32(symbols).reshape(-1, *shape)
        if self.local:
            coder = self.local_coder()
            return [coder.encode(y[i]) for i in range(y.shape[0])]
        models, block = _channel_models(shape)
        return _encode_batch(y, models, d, block, self.threads)

    def _decompress_bottleneck(self, strings, size):
        strings = _check_strings(strings)
        try:
            size = tuple(int(v) for v in size)
        except (TypeError, ValueError):
            raise TypeError(f"size must be the latent's spatial size (ints), got {size!r}") from None
        if any(v < 0 for v in size):
            raise ValueError(f"size must be non-negative, got {size}")
        d = self.dictionary()
        output_size = (len(strings), d.num_models, *size)
        shape = _plane_shape(output_size[1:])
        if self.local:
            coder = self.local_coder()
            values = np.empty((len(strings), *shape), np.int32)
            for i, s in enumerate(strings):
                y = coder.decode(s)
                if y.shape != shape:
                    raise DecodeError(f"strings[{i}] holds a latent of shape {y.shape}, expected {shape}")
                values[i] = y
        else:
            models, block = _channel_models(shape)
            values = _decode_batch(strings, models, d, shape, block, self.threads)
        medians = self._medians(len(strings), len(size))
        return self.module.dequantize(self._output(values, output_size), medians, medians.dtype)

    def _compress_conditional(self, inputs, indexes, means=None):
        self._check_tensor(inputs, "inputs")
        self._check_tensor(indexes, "indexes")
        if inputs.size() != indexes.size():
            raise ValueError(f"inputs and indexes must have the same size, got {tuple(inputs.shape)} "
                             f"and {tuple(indexes.shape)}")
        d = self.dictionary()
        symbols = self.module.quantize(inputs, "symbols", means)
        shape = _plane_shape(tuple(symbols.shape[1:]))
        y = _to_int32(symbols).reshape(-1, *shape)
        models = self._indexes(indexes, shape, d)
        return _encode_batch(y, models, d, (1, 1), self.threads)

    def _decompress_conditional(self, strings, indexes, dtype=None, means=None):
        self._check_tensor(indexes, "indexes")
        strings = _check_strings(strings, indexes.size(0))
        torch = self._torch()
        dtype = torch.float if dtype is None else dtype
        if means is not None:
            self._check_tensor(means, "means")
            if means.size()[:2] != indexes.size()[:2] or (
                    means.size() != indexes.size() and any(v != 1 for v in means.size()[2:])):
                raise ValueError(f"means of shape {tuple(means.shape)} do not match indexes of shape "
                                 f"{tuple(indexes.shape)}")
        d = self.dictionary()
        shape = _plane_shape(tuple(indexes.shape[1:]))
        models = self._indexes(indexes, shape, d)
        values = _decode_batch(strings, models, d, shape, (1, 1), self.threads)
        return self.module.dequantize(self._output(values, indexes.size()), means, dtype)

    def _indexes(self, indexes, shape, d: Dictionary) -> np.ndarray:
        """The per-element table indexes as ldem's model maps ``[N, C, H, W]`` (range-checked)."""
        if indexes.dtype.is_floating_point or indexes.dtype.is_complex or indexes.dtype == self._torch().bool:
            raise TypeError(f"indexes must hold integers, got {indexes.dtype}")
        if indexes.numel() and (int(indexes.min()) < 0 or int(indexes.max()) >= d.num_models):
            raise ValueError(f"indexes must be in [0, {d.num_models}) (the tables of {self.where})")
        return _to_int32(indexes).reshape(-1, *shape)
