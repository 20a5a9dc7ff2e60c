"""Image-dependent local entropy models (Minnen et al., ICIP 2018).

The latent ``y[C, H, W]`` is cut into ``bh x bw`` blocks per channel. Each block is
coded with the cheapest model among the channel's global model, a learned static
dictionary, and models built for this image (sent as side information). Costs are
exact bits under the integer tables the coder uses.

Stream layout (little endian):

* ``b"LE"``, u8 ``version << 4 | checksum << 3 | mode << 1 | map_codec`` (mode 0
  global, 1 static, 2 local; map codec 0 rANS, 1 raw DEFLATE), 4-byte digest of the
  coder's dictionaries, varints ``C, H, W``.
* modes 1 and 2: varints ``bh, bw``, the number of image models ``I``, the length and
  bytes of the side bits (image tables; index counts for the rANS map codec), and the
  length and bytes of the coded block map.
* the data: an :func:`ldem.encode` stream.
* with the checksum flag (the default): the CRC-32 of everything before it, as u32.
  Without it, damage is still detected with high probability by the coder's
  final-state check, but not in the raw payload bits of escaped values.
"""
from __future__ import annotations

import hashlib
import math
import zlib
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

import numpy as np

from ldem import _core
from ldem._args import check_symbols
from ldem.bitio import ByteReader, put_varint
from ldem.coder import block_grid, decode, encode
from ldem.dictionary import Dictionary
from ldem.errors import DecodeError

__all__ = ["LocalEntropyCoder", "learn_dictionary", "fit_global_models"]

_MAGIC = b"LE"
_VERSION = 1
_MODES = {"global": 0, "static": 1, "local": 2}
_MODE_NAMES = {v: k for k, v in _MODES.items()}
_MAP_RANS, _MAP_DEFLATE = 0, 1
_WINDOW = 2048  # centres are dense over [-2048, 2048); rarer values are escapes


def _window_half(precision: int, margin: int = 0) -> int:
    """Half-width of the dense value window: a table of 2 * half + 2 * margin symbols
    plus the escape fits in 2^precision slots."""
    return min(_WINDOW, ((1 << precision) - 1 - 2 * margin) // 2)


# --------------------------------------------------------------------------------------


def _histograms(y: np.ndarray, block, threads: int) -> "_core.BlockHistograms":
    """The block histograms of ``y`` (kept in C++: costs and clusters are computed there)."""
    return _core.BlockHistograms(y, block[0], block[1], threads)


class _ImageTables:
    """Image-dependent models: the integer dictionary and what is sent for it."""

    def __init__(self, tables: "_core.ImageTables"):
        self.tables = tables  # written to the side bits by _core.write_side_info
        self.dictionary = Dictionary(tables.dictionary)
        self.bits = int(tables.bits)  # exact size of the side bits that describe them

    def __len__(self) -> int:
        return len(self.tables)


# --------------------------------------------------------------------------------------


@dataclass
class _Candidate:
    block: tuple
    image: Optional[_ImageTables]
    categories: np.ndarray  # per block: 0 global, 1..S static, S+1.. image
    est_bits: float
    parts: dict = field(default_factory=dict)

    @property
    def num_image_models(self) -> int:
        return 0 if self.image is None else len(self.image)


class LocalEntropyCoder:
    """Codes int32 latents ``[C, H, W]`` with per-block models chosen from a dictionary.

    ``global_models`` has one model per channel (model ``c`` codes channel ``c``): the
    fixed global entropy model of a learned codec. ``static`` is an optional learned
    dictionary shared by all channels. ``mode="local"`` (the default) also builds up to
    ``max_image_models`` models for the image itself and sends them. The encoder tries
    each of ``block_sizes`` and keeps the cheapest; a stream is never more than a few
    bytes larger than ``mode="global"``.

    Limits (streams are untrusted input): :meth:`decode` refuses a stream that declares
    more than ``max_symbols`` symbols (default 2**26: the decoded int32 array takes
    256 MiB) or a block map of more than ``max_blocks`` blocks (default 2**22, about
    40 MiB of map arrays while decoding), before allocating for them; everything else
    it allocates is bounded by the stream's length. A hostile stream of a few KB thus
    costs at most about 300 MiB at the defaults; raise the limits to code larger latents.
    :meth:`encode` refuses latents over ``max_symbols`` and skips block sizes whose map
    would exceed ``max_blocks``, so it never writes a stream its decoder refuses.

    >>> import numpy as np, ldem
    >>> g = ldem.Dictionary.from_pmfs([[0.1, 0.2, 0.4, 0.2, 0.1]] * 4, offsets=[-2] * 4)
    >>> coder = ldem.LocalEntropyCoder(g)
    >>> y = np.zeros((4, 32, 32), np.int32)
    >>> y[:, :8] = np.random.default_rng(0).integers(-2, 3, size=(4, 8, 32))  # busy top, flat rest
    >>> data, stats = coder.encode(y, return_stats=True)
    >>> bool((coder.decode(data) == y).all()), len(data) < len(coder.encode(y, mode="global"))
    (True, True)
    """

    def __init__(self, global_models: Dictionary, static: Optional[Dictionary] = None, *,
                 block_sizes: Iterable[Sequence[int]] = ((16, 16), (32, 32)),
                 max_image_models: int = 32, table_bits: int = 8, lloyd_iterations: int = 2,
                 map_codecs: Iterable[str] = ("rans", "deflate"), threads: Optional[int] = 1,
                 seed: int = 0, max_symbols: int = 2**26, max_blocks: int = 2**22,
                 checksum: bool = True):
        if not isinstance(global_models, Dictionary):
            raise TypeError("global_models must be an ldem.Dictionary with one model per channel")
        if static is not None and not isinstance(static, Dictionary):
            raise TypeError("static must be an ldem.Dictionary or None")
        if static is not None and static.precision != global_models.precision:
            raise ValueError("static and global_models must share one precision")
        self.block_sizes = []
        for b in block_sizes:
            if len(b) != 2 or not all(isinstance(v, (int, np.integer)) and v >= 1 for v in b):
                raise ValueError(f"block_sizes must be pairs of positive ints, got {b!r}")
            self.block_sizes.append((int(b[0]), int(b[1])))
        if not self.block_sizes:
            raise ValueError("block_sizes must not be empty")
        if not isinstance(max_image_models, (int, np.integer)) or not 0 <= max_image_models <= 64:
            raise ValueError("max_image_models must be an int in [0, 64]")
        if not isinstance(table_bits, (int, np.integer)) or not 4 <= table_bits <= 16:
            raise ValueError("table_bits must be an int in [4, 16]")
        self.map_codecs = tuple(map_codecs)
        if not self.map_codecs or any(c not in ("rans", "deflate") for c in self.map_codecs):
            raise ValueError("map_codecs must name 'rans' and/or 'deflate'")
        if static is not None and 1 + static.num_models + max_image_models > 65535:
            raise ValueError("too many models for the block map")
        self.global_models = global_models
        self.static = static
        self.max_image_models = int(max_image_models)
        self.table_bits = int(table_bits)
        self.lloyd_iterations = int(lloyd_iterations)
        self.threads = 0 if threads is None else int(threads)
        self.seed = int(seed)
        for name, v in (("max_symbols", max_symbols), ("max_blocks", max_blocks)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        self.max_symbols = int(max_symbols)
        self.max_blocks = int(max_blocks)
        self.checksum = bool(checksum)
        self.precision = global_models.precision
        self._C = global_models.num_models
        self._S = static.num_models if static is not None else 0
        digest = hashlib.blake2b(digest_size=4)
        digest.update(global_models.to_bytes())
        if static is not None:
            digest.update(static.to_bytes())
        self._digest = digest.digest()

    # ---------------------------------------------------------------------------------
    def _fixed_dicts(self):
        return [self.global_models] + ([self.static] if self.static is not None else [])

    def _check_latent(self, y) -> np.ndarray:
        y = check_symbols(y, name="y")
        if y.shape[0] != self._C:
            raise ValueError(f"y has {y.shape[0]} channels but global_models has {self._C} models")
        if y.size > self.max_symbols:
            raise ValueError(f"y has {y.size} symbols, more than max_symbols={self.max_symbols}")
        return y

    def _header(self, mode: int, map_codec: int, shape) -> bytearray:
        out = bytearray(_MAGIC)
        out.append(_VERSION << 4 | self.checksum << 3 | mode << 1 | map_codec)
        out += self._digest
        for v in shape:
            put_varint(out, int(v))
        return out

    def _model_map(self, categories: np.ndarray, shape, block) -> np.ndarray:
        """Model indices into [global, static, image] from per-block categories.

        One int32 array and one mask per block (the decoder's memory bound counts on it).
        """
        C, nby, nbx = block_grid(shape, block)
        m = np.array(categories, dtype=np.int32).reshape(C, nby * nbx)  # a copy: categories are kept
        fixed = m == 0
        m += self._C - 1  # static, then image models follow the C global ones
        np.copyto(m, np.arange(C, dtype=np.int32)[:, None], where=fixed)  # category 0: own channel
        return m.reshape(C, nby, nbx)

    def _block_sizes(self, shape) -> list:
        """The block sizes to try (clipped to the plane), less those whose block map would
        have more than ``max_blocks`` blocks."""
        C, H, W = shape
        sizes = []
        for b in self.block_sizes:
            b = (max(1, min(b[0], H)), max(1, min(b[1], W)))
            if b not in sizes and math.prod(block_grid(shape, b)) <= self.max_blocks:
                sizes.append(b)
        return sizes

    # ---------------------------------------------------------------------------------
    def _image_models(self, h: "_core.BlockHistograms", fixed_best: np.ndarray, A_fixed: int):
        """Yields image models (an :class:`_ImageTables`) and their block costs [B, I]
        for growing numbers of models.

        Each stage adds k-means++ seeds (blocks drawn in proportion to the bits the
        current models waste on them), then runs Lloyd iterations in which a block
        joins the image model with the fewest exact bits, or none if a fixed model is
        cheaper, and each model becomes the count-averaged histogram of its blocks.
        """
        B = h.num_blocks
        lo, V = h.window(_window_half(self.precision))
        rng = np.random.default_rng(self.seed)
        own = h.self_costs()
        idx_guess = math.log2(A_fixed + self.max_image_models)
        current = fixed_best.copy()
        cluster = np.full(B, -1, np.int64)
        K_now = 0
        for K in [k for k in (1, 2, 4, 8, 16, 32, 64) if k <= self.max_image_models]:
            # A stage's seeds are drawn together, in proportion to excess bits, without repeats.
            excess = np.maximum(current - own - idx_guess, 0.0)
            cdf = np.cumsum(excess)
            seeds = []
            if cdf[-1] > 0:
                draws = np.searchsorted(cdf, rng.random(K - K_now) * cdf[-1], side="right")
                seeds = list(dict.fromkeys(int(min(b, B - 1)) for b in draws))
            if not seeds:
                return
            cluster[seeds] = K_now + np.arange(len(seeds))
            K_now += len(seeds)
            fit = h.fit_image_models(cluster, K_now, lo, V, self.table_bits, self.precision, fixed_best,
                                     idx_guess, self.lloyd_iterations, self.threads)
            if fit is None:
                return
            tables, costs, cluster, current = fit
            K_now = len(tables)
            yield _ImageTables(tables), costs

    def _search(self, y: np.ndarray, mode: int):
        """Candidates over block sizes and image-model counts, and the global data bits.

        Block costs are additive, so when every candidate block size is a multiple of
        the smallest one, costs are computed once at the smallest size and summed to
        the larger ones; image models are clustered at the smallest size.
        """
        sizes = self._block_sizes(y.shape)
        base = (min(b[0] for b in sizes), min(b[1] for b in sizes))
        nested = all(b[0] % base[0] == 0 and b[1] % base[1] == 0 for b in sizes)
        groups = [(base, sizes)] if nested else [(b, [b]) for b in sizes]
        cands = []
        global_bits = None
        for level, blocks in groups:
            h = _histograms(y, level, self.threads)
            grid = block_grid(y.shape, level)
            fixed = [h.channel_costs(self.global_models._impl, self.threads)[:, None]]
            if self.static is not None:
                fixed.append(h.costs(self.static._impl, self.threads))
            fixed = np.hstack(fixed)
            global_bits = float(fixed[:, 0].sum())
            factors = {b: (b[0] // level[0], b[1] // level[1]) for b in blocks}

            def consider(image, image_costs):
                # Every block size at once: costs at `level` are pooled to each size in C++.
                jobs = [(fixed, image_costs, *grid, *factors[b]) for b in blocks]
                best = math.inf
                selections = _core.select_blocks(jobs, self.precision, threads=self.threads)
                for b, (categories, data_bits, map_bits) in zip(blocks, selections):
                    tbits = 0 if image is None else image.bits
                    est = data_bits + map_bits + tbits
                    cands.append(_Candidate(b, image, categories.astype(np.int64), est,
                                            dict(data=data_bits, map=map_bits, tables=float(tbits))))
                    best = min(best, est)
                return best

            best_here = consider(None, None)
            if mode == _MODES["local"] and self.max_image_models > 0 and h.num_blocks > 1:
                worse = 0  # stop growing after two stages that do not help
                for image, image_costs in self._image_models(h, fixed.min(axis=1), fixed.shape[1]):
                    est = consider(image, image_costs)
                    if est < best_here:
                        best_here, worse = est, 0
                    else:
                        worse += 1
                        if worse == 2:
                            break
        return cands, global_bits

    def _code_map(self, categories: np.ndarray, A: int):
        """The smallest map coding: (codec, index counts to send or None, map bytes,
        {codec: bytes incl. its side bits} for every codec tried)."""
        options = []
        if "rans" in self.map_codecs:
            counts, data = _core.encode_block_map(categories.astype(np.int32), num_categories=A,
                                                  precision=self.precision)
            count_bits = sum(2 * int(v + 1).bit_length() - 1 for v in counts.tolist())
            options.append((count_bits / 8 + len(data), _MAP_RANS, counts, data))
        if "deflate" in self.map_codecs:
            raw = categories.astype(np.uint8 if A <= 256 else "<u2").tobytes()
            # Two raw-DEFLATE strategies, the smaller kept: run-length matches (the maps'
            # runs) and level 6 filtered. On the development photos' maps both together
            # are 3 % smaller than level 9 alone, and 5x faster.
            streams = []
            for level, strategy in ((9, zlib.Z_RLE), (6, zlib.Z_FILTERED)):
                comp = zlib.compressobj(level, zlib.DEFLATED, -15, 8, strategy)
                streams.append(comp.compress(raw) + comp.flush())
            data = min(streams, key=len)
            options.append((len(data), _MAP_DEFLATE, None, data))
        _, codec, counts, data = min(options, key=lambda o: o[0])
        sizes = {("rans" if o[1] == _MAP_RANS else "deflate"): o[0] for o in options}
        return codec, counts, data, sizes

    def _assemble(self, y, cand: _Candidate, mode: int):
        A = 1 + self._S + cand.num_image_models
        codec, counts, map_bytes, map_sizes = self._code_map(cand.categories, A)
        table_bits = cand.image.bits if cand.image is not None else 0
        side_bytes = _core.write_side_info(tables=cand.image.tables if cand.image is not None else None,
                                           map_counts=counts)
        out = self._header(mode, codec, y.shape)
        for v in (cand.block[0], cand.block[1], cand.num_image_models, len(side_bytes)):
            put_varint(out, v)
        out += side_bytes
        put_varint(out, len(map_bytes))
        head_bits = 8 * (len(out) - len(side_bytes))
        out += map_bytes
        dicts = self._fixed_dicts() + ([cand.image.dictionary] if cand.image is not None else [])
        models = self._model_map(cand.categories, y.shape, cand.block)
        data = encode(y, models, dicts, block=cand.block, threads=self.threads or None)
        stats = dict(mode=_MODE_NAMES[mode], block=cand.block, num_image_models=cand.num_image_models,
                     map_codec="rans" if codec == _MAP_RANS else "deflate",
                     bits_header=head_bits, bits_tables=table_bits,
                     bits_map=8 * len(side_bytes) - table_bits + 8 * len(map_bytes),
                     bits_data=8 * len(data), model_map=models, categories=cand.categories.reshape(models.shape),
                     map_bytes_by_codec=map_sizes)
        return bytes(out) + data, stats

    def _global_stream(self, y):
        C, H, W = y.shape
        out = self._header(0, 0, y.shape)
        block, models = _global_layout(y.shape)
        data = encode(y, models, self.global_models, block=block, threads=self.threads or None)
        stats = dict(mode="global", block=block, num_image_models=0, map_codec=None,
                     bits_header=8 * len(out), bits_tables=0, bits_map=0, bits_data=8 * len(data),
                     model_map=models, categories=np.zeros(models.shape, np.int64))
        return bytes(out) + data, stats

    # ---------------------------------------------------------------------------------
    def encode(self, y: np.ndarray, mode: str = "local", return_stats: bool = False):
        """Codes ``y`` (int32 ``[C, H, W]``) and returns the stream (and stats if asked).

        ``mode``: ``"global"`` (per-channel models only), ``"static"`` (global ∪ static)
        or ``"local"`` (also image-dependent models). The stats give the bits of header,
        image tables, block map and data, the block size, the number of image models,
        the map codec that won, and the block→model map.
        """
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {sorted(_MODES)}, got {mode!r}")
        y = self._check_latent(y)
        m = _MODES[mode]
        if m == _MODES["static"] and self.static is None:
            m = _MODES["global"]
        if m == 0 or y.size == 0 or not self._block_sizes(y.shape):
            data, stats = self._global_stream(y)
        else:
            cands, global_bits = self._search(y, m)
            best = min(cands, key=lambda c: c.est_bits)
            data, stats = self._assemble(y, best, m)
            stats["candidates"] = [dict(block=c.block, num_image_models=c.num_image_models,
                                        est_bits=c.est_bits, **{f"est_{k}": v for k, v in c.parts.items()})
                                   for c in cands]
            # Never larger than the global mode: unless the global stream is surely
            # bigger, build it and keep the smaller.
            if len(data) >= self._global_lower_bound(y, global_bits):
                gdata, gstats = self._global_stream(y)
                if len(gdata) <= len(data):
                    data, stats = gdata, gstats
        if self.checksum:
            data += zlib.crc32(data).to_bytes(4, "little")
            stats["bits_header"] += 32
        stats["requested_mode"] = mode
        stats["bytes"] = len(data)
        return (data, stats) if return_stats else data

    def _global_lower_bound(self, y, global_bits: float) -> float:
        """A lower bound on the global stream's size in bytes.

        The rANS payload holds the information plus each lane's final state, less at
        most 4.4e-5 bits per symbol of rounding (state >= 2^31 vs M <= 2^16); the
        bound subtracts 4 bytes per lane and 1e-5 bytes per symbol to be safe.
        """
        lanes = 4 * max(1, y.size >> 17)
        return len(self._header(0, 0, y.shape)) + 4 + global_bits / 8 - 4 * lanes - 1 - 1e-5 * y.size

    def _parse(self, data):
        """Checks the header (and checksum) of a stream; returns its fields."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be bytes, got {type(data).__name__}")
        data = bytes(data)
        total = len(data)
        r = ByteReader(data)
        if r.take(2) != _MAGIC:
            raise DecodeError("not an ldem local-entropy stream (bad magic)")
        flags = r.u8()
        if flags >> 4 != _VERSION:
            raise DecodeError(f"unsupported local stream version {flags >> 4}")
        mode, codec = (flags >> 1) & 3, flags & 1
        if flags & 8:
            if len(data) < 7 or zlib.crc32(data[:-4]) != int.from_bytes(data[-4:], "little"):
                raise DecodeError("checksum mismatch (corrupt or truncated stream)")
            data = data[:-4]
            r.data = data
        if mode not in _MODE_NAMES:
            raise DecodeError("invalid mode in stream")
        if r.take(4) != self._digest:
            raise DecodeError("stream was made with other dictionaries (digest mismatch)")
        C, H, W = r.varint(2**31), r.varint(2**31), r.varint(2**31)
        if C != self._C:
            raise DecodeError(f"stream has {C} channels, the coder's global models have {self._C}")
        if C * H * W > self.max_symbols:
            raise DecodeError(f"stream declares {C * H * W} symbols, more than max_symbols={self.max_symbols}")
        f = dict(data=data, total=total, checksum=bool(flags & 8), mode=mode, codec=codec, shape=(C, H, W),
                 block=None, num_image_models=0, side=b"", map_bytes=b"")
        if mode != 0:
            bh, bw = r.varint(max(H, 1)), r.varint(max(W, 1))
            if bh < 1 or bw < 1:
                raise DecodeError("invalid block size")
            blocks = math.prod(block_grid((C, H, W), (bh, bw)))
            if blocks > self.max_blocks:
                raise DecodeError(f"stream declares a map of {blocks} blocks, more than max_blocks={self.max_blocks}")
            I = r.varint(64)
            if mode == 1 and I:
                raise DecodeError("static mode stream with image models")
            f["block"], f["num_image_models"] = (bh, bw), I
            f["side"] = r.take(r.varint(r.remaining()))
            f["map_bytes"] = r.take(r.varint(r.remaining()))
        f["payload_pos"] = r.pos
        return f

    def describe(self, data: bytes) -> dict:
        """Header fields and the bytes of each part of a stream, without decoding it.

        >>> import numpy as np, ldem
        >>> g = ldem.Dictionary.from_pmfs([[0.25, 0.5, 0.25]] * 2, offsets=[-1] * 2)
        >>> coder = ldem.LocalEntropyCoder(g)
        >>> info = coder.describe(coder.encode(np.zeros((2, 16, 16), np.int32)))
        >>> info["shape"], info["mode"]
        ((2, 16, 16), 'local')
        """
        f = self._parse(data)
        payload = len(f["data"]) - f["payload_pos"]
        return {"mode": _MODE_NAMES[f["mode"]], "shape": f["shape"], "block": f["block"],
                "num_image_models": f["num_image_models"], "map_codec": ("rans", "deflate")[f["codec"]]
                if f["mode"] else None, "bytes": f["total"], "bytes_side_tables_and_map_counts": len(f["side"]),
                "bytes_block_map": len(f["map_bytes"]), "bytes_data": payload,
                "bytes_header": f["total"] - payload - len(f["side"]) - len(f["map_bytes"])}

    def decode(self, data: bytes) -> np.ndarray:
        """Decodes :meth:`encode` output; raises :class:`ldem.DecodeError` on damage or mismatch."""
        f = self._parse(data)
        data, mode, codec, shape = f["data"], f["mode"], f["codec"], f["shape"]
        C, H, W = shape
        if mode == 0:
            block, models = _global_layout(shape)
            return decode(data[f["payload_pos"]:], models, self.global_models, shape, block=block,
                          threads=self.threads or None)
        (bh, bw), I, side, map_bytes = f["block"], f["num_image_models"], f["side"], f["map_bytes"]
        A = 1 + self._S + I
        _, nby, nbx = block_grid(shape, (bh, bw))
        B = C * nby * nbx
        image, counts = _core.read_side_info(side, num_tables=I, num_map_counts=A if codec == _MAP_RANS else 0,
                                             precision=self.precision)
        if codec == _MAP_RANS:
            categories = _core.decode_block_map(map_bytes, counts=counts, num_blocks=B, precision=self.precision)
        else:
            dtype = np.uint8 if A <= 256 else np.dtype("<u2")
            item = np.dtype(dtype).itemsize
            try:
                dec = zlib.decompressobj(-15)
                raw = dec.decompress(map_bytes, B * item + 1)
            except zlib.error as e:
                raise DecodeError(f"corrupt block map: {e}") from None
            if len(raw) != B * item or not dec.eof or dec.unused_data:
                raise DecodeError("corrupt block map (wrong length)")
            categories = np.frombuffer(raw, dtype=dtype).astype(np.int32)
            if B and categories.max() >= A:
                raise DecodeError("block map index out of range")
        dicts = self._fixed_dicts() + ([Dictionary(image.dictionary)] if image is not None else [])
        models = self._model_map(categories, shape, (bh, bw))  # valid by construction
        return decode(memoryview(data)[f["payload_pos"]:], models, dicts, shape, block=(bh, bw),
                      threads=self.threads or None)


def _global_layout(shape):
    """Whole-plane blocks and the model map of the global mode (channel c uses model c)."""
    C, H, W = shape
    block = (max(H, 1), max(W, 1))
    grid = block_grid(shape, block)
    models = np.broadcast_to(np.arange(C, dtype=np.int32)[:, None, None], grid)
    return block, np.ascontiguousarray(models)


# --------------------------------------------------------------------------------------
# learning


def _latent_list(latents) -> list[np.ndarray]:
    if isinstance(latents, np.ndarray):
        latents = [latents] if latents.ndim == 3 else list(latents)
    out = []
    for i, y in enumerate(latents):
        if not isinstance(y, np.ndarray) or y.dtype != np.int32 or y.ndim != 3:
            raise TypeError(f"latents[{i}] must be an int32 array [C, H, W]")
        out.append(np.ascontiguousarray(y))
    if not out:
        raise ValueError("latents must not be empty")
    return out


def _smoothed_table(row: np.ndarray, lo: int, margin: int, alpha: float):
    """(offset, counts, escape) with every symbol of the widened support kept cheap."""
    nz = np.flatnonzero(row)
    if len(nz) == 0:
        return None
    a, b = max(int(nz[0]) - margin, 0), min(int(nz[-1]) + margin, len(row) - 1)
    c = row[a:b + 1].astype(np.float64)
    total = c.sum()
    scale = 2**40 / total
    w = np.floor(c * scale + alpha * scale * total / len(c)).astype(np.uint64)
    return lo + a, w, int(max(1, alpha * 2**40 / 16))


def fit_global_models(latents, precision: int = 16, margin: int = 2, alpha: float = 1e-4) -> Dictionary:
    """Per-channel models (the fixed global entropy model) from training latents.

    Model ``c`` covers the values seen in channel ``c`` widened by ``margin``; a small
    ``alpha`` floor keeps unseen symbols cheap and the escape covers the rest.

    >>> import numpy as np, ldem
    >>> y = np.random.default_rng(0).laplace(0, 2, (3, 16, 16)).round().astype(np.int32)
    >>> g = ldem.fit_global_models([y]); g.num_models
    3
    """
    ys = _latent_list(latents)
    C = ys[0].shape[0]
    if any(y.shape[0] != C for y in ys):
        raise ValueError("all latents must have the same number of channels")
    offsets, weights, escapes = [], [], []
    for c in range(C):
        half = _window_half(precision, margin)
        v = np.concatenate([y[c].reshape(-1) for y in ys])
        v = v[(v >= -half) & (v < half)]
        if len(v) == 0:
            v = np.zeros(1, np.int64)
        lo = int(v.min())
        row = np.bincount(v - lo)
        o, w, e = _smoothed_table(row, lo, margin, alpha)
        offsets.append(o)
        weights.append(w)
        escapes.append(e)
    return Dictionary.from_frequencies(weights, offsets, precision, escape=np.asarray(escapes))


def learn_dictionary(latents, num_models: int, block=(16, 16), seed: int = 0, *, iterations: int = 10,
                     precision: int = 16, global_models: Optional[Dictionary] = None, margin: int = 2,
                     alpha: float = 1e-4, threads: Optional[int] = None, progress: bool = True) -> Dictionary:
    """Learns a static dictionary of ``num_models`` block models from training latents.

    k-means++ seeding on coding cost, then Lloyd iterations: blocks go to the model
    with the fewest exact bits, centres are count-averaged histograms. With
    ``global_models``, blocks that their channel's global model codes best do not pull
    the centres, so the dictionary complements the global models. Deterministic for a
    ``seed``; smoothed so unseen symbols stay cheap.

    >>> import numpy as np, ldem
    >>> rng = np.random.default_rng(0)
    >>> ys = [rng.laplace(0, s, (4, 32, 32)).round().astype(np.int32) for s in (0.3, 3.0)]
    >>> d = ldem.learn_dictionary(ys, num_models=4, block=(8, 8), progress=False)
    >>> d.num_models <= 4
    True
    """
    if not isinstance(num_models, (int, np.integer)) or num_models < 1:
        raise ValueError("num_models must be a positive int")
    ys = _latent_list(latents)
    th = 0 if threads is None else int(threads)
    h = _core.BlockHistograms.concat([_histograms(y, block, th) for y in ys])
    B = h.num_blocks
    if B == 0:
        raise ValueError("latents have no blocks")
    lo, V = h.window(_window_half(precision))
    rng = np.random.default_rng(seed)
    own = h.self_costs()
    if global_models is not None:
        base = h.channel_costs(global_models._impl, th)
    else:
        base = np.full(B, np.inf)
    bar = None
    if progress:
        try:
            from tqdm.auto import tqdm
            bar = tqdm(total=num_models + iterations, desc="learn_dictionary", leave=False)
        except ImportError:
            bar = None

    def build(cluster, K):
        counts = h.cluster_counts(cluster, K, lo, V)
        tabs = [t for t in (_smoothed_table(r, lo, margin, alpha) for r in counts) if t]
        if not tabs:
            return None
        return Dictionary.from_frequencies([w for _, w, _ in tabs], [o for o, _, _ in tabs], precision,
                                           escape=np.asarray([e for _, _, e in tabs]))

    # k-means++ seeding: each new seed drawn with probability proportional to the bits
    # the current models waste on a block.
    seeds = [int(rng.integers(B))]
    current = np.minimum(base, h.costs(build(_one_hot(B, seeds), 1)._impl, th)[:, 0])
    if bar:
        bar.update(1)
    while len(seeds) < num_models:
        excess = np.maximum(current - own, 0.0)
        if excess.sum() <= 0:
            break
        b = int(rng.choice(B, p=excess / excess.sum()))
        seeds.append(b)
        one = np.full(B, -1, np.int64)
        one[b] = 0
        current = np.minimum(current, h.costs(build(one, 1)._impl, th)[:, 0])
        if bar:
            bar.update(1)
    cluster = np.full(B, -1, np.int64)
    cluster[seeds] = np.arange(len(seeds))
    d = build(cluster, len(seeds))
    for _ in range(iterations):
        costs = h.costs(d._impl, th)
        new = np.where(costs.min(axis=1) < base, costs.argmin(axis=1), -1)
        if bar:
            bar.update(1)
        if np.array_equal(new, cluster):
            break
        cluster = new
        nd = build(cluster, d.num_models)
        if nd is None:
            break
        d = nd
    if bar:
        bar.close()
    return d


def _one_hot(B: int, seeds: list[int]) -> np.ndarray:
    c = np.full(B, -1, np.int64)
    c[seeds] = np.arange(len(seeds))
    return c
