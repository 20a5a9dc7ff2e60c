"""Image-dependent local entropy models (Minnen et al., ICIP 2018).

The latent ``y[C, H, W]`` is cut into ``bh x bw`` blocks per channel. Each block is
coded with the cheapest model among the channel's global model, a learned static
dictionary, and models built for this image (sent as side information). Costs are
exact bits under the integer tables the coder uses.

The package: :class:`LocalEntropyCoder` (here), the stream format
(:mod:`ldem.local.stream`), the encoder's per-image search (:mod:`ldem.local.search`)
and the learning of global models and static dictionaries (:mod:`ldem.local.learn`).

>>> import numpy as np
>>> from ldem.local import LocalEntropyCoder, fit_global_models
>>> y = np.zeros((2, 16, 16), np.int32)
>>> coder = LocalEntropyCoder(fit_global_models([y]))
>>> bool((coder.decode(coder.encode(y)) == y).all())
True
"""
from __future__ import annotations

import hashlib
import zlib
from typing import Iterable, Optional, Sequence

import numpy as np

from ldem import _core
from ldem._args import check_symbols
from ldem.coder import block_grid, decode, encode
from ldem.dictionary import Dictionary
from ldem.errors import DecodeError
from ldem.local import stream
from ldem.local.learn import (NUM_CONTEXTS, fit_context_models, fit_global_models, learn_context_dictionary,
                              learn_dictionary)
from ldem.local.search import Candidate, SearchSettings, candidate_block_sizes, find_candidates, histograms

__all__ = ["LocalEntropyCoder", "learn_dictionary", "fit_global_models", "fit_context_models",
           "learn_context_dictionary", "NUM_CONTEXTS", "EFFORTS", "DEFAULT_EFFORT", "check_effort"]

# Shown and documented under their public path.
for _f in (fit_global_models, learn_dictionary, fit_context_models, learn_context_dictionary):
    _f.__module__ = __name__


EFFORTS = (0, 1, 2, 3)
DEFAULT_EFFORT = 0  # the fastest: the one closest to the speed budget of the image codec (README)


def check_effort(effort) -> int:
    """The effort level as an int in :data:`EFFORTS`; ``ValueError`` otherwise.

    >>> check_effort(3)
    3
    """
    if isinstance(effort, bool) or not isinstance(effort, (int, np.integer)) or int(effort) not in EFFORTS:
        raise ValueError(f"effort must be an int in {EFFORTS[0]}..{EFFORTS[-1]}, got {effort!r}")
    return int(effort)


class LocalEntropyCoder:
    """Codes int32 latents ``[C, H, W]`` with per-block models chosen from a dictionary.

    ``global_models`` has one model per channel (model ``c`` codes channel ``c``): the
    fixed global entropy model of a learned codec. ``static`` is an optional learned
    dictionary shared by all channels. ``mode="local"`` (the default) also builds up to
    ``max_image_models`` models for the image itself and sends them. The encoder tries
    each of ``block_sizes`` and keeps the cheapest; a stream is never more than a few
    bytes larger than ``mode="global"``.

    ``effort`` (0..3, default 0), as in zstd or cwebp ``-m``, trades encoding time for size;
    decoding time does not depend on it. 0: one block size (the middle of the sorted
    ``block_sizes``), up to 8 image models fitted with one Lloyd iteration; 1: every block
    size and quadtree partitions over them (when they nest by powers of two), the same
    image models; 2: as 1, with up to ``max_image_models`` image models fitted with
    ``lloyd_iterations``; 3 (exhaustive):
    also half the smallest and twice the largest block size, up to 64 image models, at
    least 4 Lloyd iterations, and effort 2's search, keeping the smaller stream. ``partitions=False`` leaves quadtree partitions out at
    every effort (the previous release's fixed-block search).

    With ``context_models`` (``C * NUM_CONTEXTS`` tables: a *family* per channel, see
    :func:`fit_context_models`) and optionally ``context_static`` (families learned by
    :func:`learn_context_dictionary`), streams are context-coded: each symbol is coded
    with its block's family's table for a causal context of already-coded neighbours
    (``csrc/ldem/context.h``). ``encode(..., contexts=False)`` writes a context-free
    stream with the plain models instead; the stream says which it is. Streams of
    version 1 (the release before contexts) still decode.

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
                 checksum: bool = True, context_models: Optional[Dictionary] = None,
                 context_static: Optional[Dictionary] = None, effort: int = DEFAULT_EFFORT,
                 partitions: bool = True):
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
        self.effort = check_effort(effort)
        self.partitions = bool(partitions)
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
        K = NUM_CONTEXTS
        for name, d, per in (("context_models", context_models, self._C), ("context_static", context_static, None)):
            if d is None:
                continue
            if not isinstance(d, Dictionary):
                raise TypeError(f"{name} must be an ldem.Dictionary or None")
            if d.precision != self.precision:
                raise ValueError(f"{name} must have the precision of global_models ({self.precision})")
            if d.num_models % K or (per is not None and d.num_models != per * K):
                raise ValueError(f"{name} must hold {NUM_CONTEXTS} models per family"
                                 + (f" and one family per channel ({per * K} models)" if per else ""))
        if context_static is not None and context_models is None:
            raise ValueError("context_static needs context_models")
        # Private copies without decoder lookup tables (the context coder does not use
        # them; at 4 KiB per table they would dominate the memory).
        self.context_models, self.context_static = (None if d is None else _context_copy(d)
                                                    for d in (context_models, context_static))
        self._S_ctx = 0 if context_static is None else context_static.num_models // K
        if self._S_ctx and 1 + self._S_ctx + max_image_models > 65535:
            raise ValueError("too many models for the block map")
        digest = hashlib.blake2b(digest_size=4)
        digest.update(global_models.to_bytes())
        if static is not None:
            digest.update(static.to_bytes())
        # A stream names the dictionaries its data uses: context-free streams (versions 1
        # and 2) the global and static models, context-coded ones the context families too.
        plain = digest.digest()
        for d in (context_models, context_static):
            if d is not None:
                digest.update(d.to_bytes())
        self._digests = {(1, False): plain, (2, False): plain, (2, True): digest.digest()}

    # ---------------------------------------------------------------------------------
    def _fixed_dicts(self, contexts: bool):
        if contexts:
            return [self.context_models] + ([self.context_static] if self.context_static is not None else [])
        return [self.global_models] + ([self.static] if self.static is not None else [])

    def _num_static(self, contexts: bool) -> int:
        return self._S_ctx if contexts else self._S

    def _code(self, y, models, dicts, block, contexts: bool, context_map=None) -> bytes:
        """The data part: an ldem.encode stream, or a context-coded one (image models,
        after the fixed families, are context-free). ``context_map``: the search's
        contexts of y (computed again if None)."""
        if not contexts:
            return encode(y, models, dicts, block=block, threads=self.threads or None)
        return _core.encode_context(y, models, [d._impl for d in dicts], self._contextual(dicts), block[0],
                                    block[1], threads=self.threads, segment_shift=stream.CONTEXT_SEGMENT_SHIFT,
                                    contexts=context_map)

    def _contextual(self, dicts) -> list:
        """Which of ``dicts`` hold context families (the others are context-free)."""
        return [d is self.context_models or d is self.context_static for d in dicts]

    def _decode_data(self, data, models, dicts, shape, block, contexts: bool) -> np.ndarray:
        if not contexts:
            return decode(data, models, dicts, shape, block=block, threads=self.threads or None)
        return _core.decode_context(data, models, [d._impl for d in dicts], self._contextual(dicts), *shape,
                                    block[0], block[1], threads=self.threads)

    def _check_latent(self, y) -> np.ndarray:
        y = check_symbols(y, name="y")
        if y.shape[0] != self._C:
            raise ValueError(f"y has {y.shape[0]} channels but global_models has {self._C} models")
        if y.size > self.max_symbols:
            raise ValueError(f"y has {y.size} symbols, more than max_symbols={self.max_symbols}")
        return y

    def _header(self, mode: int, map_codec: int, shape, contexts: bool = False) -> bytearray:
        return stream.write_header(self._digests[(stream.VERSION, contexts)], self.checksum, mode, map_codec,
                                   shape, contexts)

    def _block_sizes(self, shape, effort: int) -> list:
        sizes = sorted(self.block_sizes, key=lambda b: b[0] * b[1])
        if effort == 0:
            sizes = [sizes[(len(sizes) - 1) // 2]]
        elif effort == 3:
            small, large = sizes[0], sizes[-1]
            sizes = [(max(1, small[0] // 2), max(1, small[1] // 2))] + sizes + [(2 * large[0], 2 * large[1])]
        return candidate_block_sizes(sizes, shape, self.max_blocks)

    def _settings(self, contexts: bool, effort: int) -> SearchSettings:
        image_models, lloyd = {0: (min(8, self.max_image_models), 1), 1: (min(8, self.max_image_models), 1),
                               2: (self.max_image_models, self.lloyd_iterations),
                               3: (64, max(4, self.lloyd_iterations))}[effort]
        return SearchSettings(self.global_models, self.static, image_models, self.table_bits,
                              lloyd, self.threads, self.seed,
                              self.context_models if contexts else None, self.context_static if contexts else None,
                              partitions=self.partitions and effort >= 1)

    def _assemble(self, y, cand: Candidate, mode: int, contexts: bool):
        A = 1 + self._num_static(contexts) + cand.num_image_models
        if cand.tree is not None:
            codec, counts, map_bytes, map_sizes = stream.encode_partition(cand.tree, A, self.precision,
                                                                          self.map_codecs)
        else:
            codec, counts, map_bytes, map_sizes = stream.encode_block_map(cand.categories, A, self.precision,
                                                                          self.map_codecs)
        table_bits = cand.image.bits if cand.image is not None else 0
        side_bytes = stream.write_side_info(cand.image.tables if cand.image is not None else None, counts)
        out = self._header(mode, codec, y.shape, contexts)
        head_bits = 8 * len(out)
        head_bits += 8 * stream.write_local_fields(out, cand.block, cand.depth, cand.num_image_models, side_bytes,
                                                   map_bytes)
        dicts = self._fixed_dicts(contexts) + ([cand.image.dictionary] if cand.image is not None else [])
        models = stream.model_map(cand.categories, y.shape, cand.block, self._C)
        data = self._code(y, models, dicts, cand.block, contexts, cand.contexts)
        stats = dict(mode=stream.MODE_NAMES[mode], contexts=contexts, block=cand.block, partition_depth=cand.depth,
                     num_image_models=cand.num_image_models,
                     map_codec=stream.MAP_CODEC_NAMES[codec],
                     bits_header=head_bits, bits_tables=table_bits,
                     bits_map=8 * len(side_bytes) - table_bits + 8 * len(map_bytes),
                     bits_data=8 * len(data), model_map=models, categories=cand.categories.reshape(models.shape),
                     map_bytes_by_codec=map_sizes)
        return bytes(out) + data, stats

    def _global_stream(self, y, contexts: bool):
        out = self._header(0, 0, y.shape, contexts)
        block, models = stream.global_layout(y.shape)
        data = self._code(y, models, self._fixed_dicts(contexts)[:1], block, contexts)
        stats = dict(mode="global", contexts=contexts, partition_depth=0, block=block, num_image_models=0, map_codec=None,
                     bits_header=8 * len(out), bits_tables=0, bits_map=0, bits_data=8 * len(data),
                     model_map=models, categories=np.zeros(models.shape, np.int64))
        return bytes(out) + data, stats

    # ---------------------------------------------------------------------------------
    def encode(self, y: np.ndarray, mode: str = "local", return_stats: bool = False,
               contexts: Optional[bool] = None, effort: Optional[int] = None):
        """Codes ``y`` (int32 ``[C, H, W]``) and returns the stream (and stats if asked).

        ``mode``: ``"global"`` (per-channel models only), ``"static"`` (global ∪ static)
        or ``"local"`` (also image-dependent models). The stats give the bits of header,
        image tables, block map and data, the block size, the number of image models,
        the map codec that won, each block's category (``categories``: 0 global,
        1..S static, S+1.. image) and the coder's block→model map (``model_map``).
        ``contexts`` (default: whether the coder has context models) picks context-coded
        or context-free data; ``effort`` (default: the coder's) how hard the encoder
        searches (see the class).

        >>> import numpy as np, ldem
        >>> g = ldem.Dictionary.from_pmfs([[0.25, 0.5, 0.25]], offsets=[-1])
        >>> data, stats = ldem.LocalEntropyCoder(g).encode(np.zeros((1, 32, 32), np.int32), return_stats=True)
        >>> stats["mode"], stats["categories"].shape == stats["model_map"].shape
        ('local', True)
        """
        if mode not in stream.MODES:
            raise ValueError(f"mode must be one of {sorted(stream.MODES)}, got {mode!r}")
        if contexts is None:
            contexts = self.context_models is not None
        elif contexts and self.context_models is None:
            raise ValueError("contexts=True needs a coder made with context_models")
        contexts = bool(contexts)
        effort = self.effort if effort is None else check_effort(effort)
        y = self._check_latent(y)
        if effort == 3:  # exhaustive: the wider search, and effort 2's, whichever is smaller
            wide = self._encode(y, mode, contexts, 3)
            narrow = self._encode(y, mode, contexts, 2)
            data, stats = min((narrow, wide), key=lambda r: len(r[0]))
        else:
            data, stats = self._encode(y, mode, contexts, effort)
        stats["requested_mode"] = mode
        stats["effort"] = effort
        stats["bytes"] = len(data)
        return (data, stats) if return_stats else data

    def _encode(self, y, mode: str, contexts: bool, effort: int):
        """encode() at one effort level: (stream, stats)."""
        m = stream.MODES[mode]
        if m == stream.MODES["static"] and self._num_static(contexts) == 0:
            m = stream.MODES["global"]
        sizes = self._block_sizes(y.shape, effort)
        if m == 0 or y.size == 0 or not sizes:
            data, stats = self._global_stream(y, contexts)
        else:
            cands, global_bits = find_candidates(y, sizes, self._settings(contexts, effort),
                                                 with_image_models=m == stream.MODES["local"])
            best = min(cands, key=lambda c: c.est_bits)
            data, stats = self._assemble(y, best, m, contexts)
            stats["candidates"] = [dict(block=c.block, partition_depth=c.depth, num_image_models=c.num_image_models,
                                        est_bits=c.est_bits, **{f"est_{k}": v for k, v in c.parts.items()})
                                   for c in cands]
            # Never larger than the global mode: unless the global stream is surely
            # bigger, build it and keep the smaller. With contexts, the context-free
            # global stream is a candidate too (a latent unlike the training data).
            if len(data) >= self._global_lower_bound(y, global_bits):
                gdata, gstats = self._global_stream(y, contexts)
                if len(gdata) <= len(data):
                    data, stats = gdata, gstats
        if contexts and y.size and len(data) >= self._global_lower_bound(y, self._plain_global_bits(y)):
            gdata, gstats = self._global_stream(y, False)
            if len(gdata) < len(data):
                data, stats = gdata, gstats
        if self.checksum:
            data += zlib.crc32(data).to_bytes(4, "little")
            stats["bits_header"] += 32
        return data, stats

    def _plain_global_bits(self, y) -> float:
        """Exact data bits of y under the context-free global models."""
        h = histograms(y, (max(y.shape[1], 1), max(y.shape[2], 1)), self.threads)
        return float(h.channel_costs(self.global_models._impl, self.threads).sum())

    def _global_lower_bound(self, y, global_bits: float) -> float:
        """A lower bound on the global stream's size in bytes.

        The rANS payload holds the information plus each lane's final state, less at
        most 4.4e-5 bits per symbol of rounding (state >= 2^31 vs M <= 2^16); the
        bound subtracts 4 bytes per lane and 1e-5 bytes per symbol to be safe.
        """
        lanes = 4 * max(1, y.size >> 17)
        return len(self._header(0, 0, y.shape, False)) + 4 + global_bits / 8 - 4 * lanes - 1 - 1e-5 * y.size

    def _parse(self, data) -> stream.StreamFields:
        """Checks the header (and checksum) of a stream; returns its fields."""
        return stream.parse(data, self._digests, self._C, self.max_symbols, self.max_blocks)

    def describe(self, data: bytes) -> dict:
        """Header fields and the bytes of each part of a stream, without decoding it.

        >>> import numpy as np, ldem
        >>> g = ldem.Dictionary.from_pmfs([[0.25, 0.5, 0.25]] * 2, offsets=[-1] * 2)
        >>> coder = ldem.LocalEntropyCoder(g)
        >>> info = coder.describe(coder.encode(np.zeros((2, 16, 16), np.int32)))
        >>> info["shape"], info["mode"]
        ((2, 16, 16), 'local')
        """
        return stream.describe(self._parse(data))

    def decode(self, data: bytes) -> np.ndarray:
        """Decodes :meth:`encode` output; raises :class:`ldem.DecodeError` on damage or mismatch.

        >>> import numpy as np, ldem
        >>> g = ldem.Dictionary.from_pmfs([[0.25, 0.5, 0.25]], offsets=[-1])
        >>> coder = ldem.LocalEntropyCoder(g)
        >>> coder.decode(coder.encode(np.ones((1, 2, 3), np.int32))).tolist()
        [[[1, 1, 1], [1, 1, 1]]]
        """
        f = self._parse(data)
        data, shape, ctx = f.data, f.shape, f.contexts
        if ctx and self.context_models is None:
            raise DecodeError("stream is context-coded but the coder has no context models")
        if f.mode == 0:
            block, models = stream.global_layout(shape)
            return self._decode_data(memoryview(data)[f.payload_pos:], models, self._fixed_dicts(ctx)[:1], shape,
                                     block, ctx)
        C = shape[0]
        _, nby, nbx = block_grid(shape, f.block)
        A = 1 + self._num_static(ctx) + f.num_image_models
        image, counts = stream.read_side_info(f.side, f.num_image_models,
                                              2 * f.depth + (A if f.codec == stream.MAP_RANS else 0),
                                              self.precision)
        if f.depth:
            categories = stream.decode_partition(f.codec, f.map_bytes, counts, (C, nby, nbx), f.depth, A,
                                                 self.precision)
        else:
            categories = stream.decode_block_map(f.codec, f.map_bytes, counts, C * nby * nbx, A, self.precision)
        dicts = self._fixed_dicts(ctx) + ([Dictionary(image.dictionary)] if image is not None else [])
        models = stream.model_map(categories, shape, f.block, self._C)  # valid by construction
        return self._decode_data(memoryview(data)[f.payload_pos:], models, dicts, shape, f.block, ctx)


def _context_copy(d: Dictionary) -> Dictionary:
    """A copy of ``d`` without decoder lookup tables (it codes context streams only)."""
    if not d._impl.has_lookups:
        return d  # immutable already as it is needed
    return Dictionary.from_bytes(d.to_bytes(), max_bytes=2**62, lookups=False)  # d is already in memory
