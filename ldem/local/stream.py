"""The local-entropy stream format: header, fields, block-map codecs and side information.

Layout (little endian):

* ``b"LE"``, u8 ``version << 4 | checksum << 3 | mode << 1 | map_codec`` (mode 0
  global, 1 static, 2 local; map codec 0 rANS, 1 raw DEFLATE); version 2 then has u8
  ``features`` (bit 0: context-coded data; the other bits are 0); a 4-byte digest of
  the coder's dictionaries, varints ``C, H, W``.
* modes 1 and 2: varints ``bh, bw`` (the block size; with a partition, the leaf size),
  in version 2 the partition depth ``D`` (0: fixed blocks; else quadtrees of
  ``D`` levels over top blocks of ``bh << D, bw << D``, see :mod:`ldem.local.quadtree`),
  the number of image models ``I``, the length and bytes of the side bits (image
  tables; with a partition, two split-flag counts per level; category counts for the
  rANS map codec, see ``csrc/ldem/side_info.h``), and the length and bytes of the coded
  block map. With a partition, the map is, per level from the top, a varint length and
  the rANS-coded split flags of that level, then the leaves' categories (the map codec's
  bytes).
* the data: an :func:`ldem.encode` stream, or with the context feature a context-coded
  stream (``csrc/ldem/context.h``: the same layout, each symbol coded with its block's
  *family* of tables indexed by a causal context).
* with the checksum flag (the default): the CRC-32 of everything before it, as u32.
  Without it, damage is still detected with high probability by the coder's
  final-state check, but not in the raw payload bits of escaped values.

The block map holds one *category* per block: 0 for the channel's global model,
``1..S`` for the static dictionary, ``S+1..`` for the image models. The coder's
*model map* (:func:`model_map`) turns categories into model indices into
``[global models, static dictionary, image models]`` (with contexts: family indices
into ``[global families, static families, image models]``; an image model is
context-free, the same table for every context).

Version 1 (no features byte, never context-coded) is still read.

>>> import numpy as np
>>> from ldem.local import stream
>>> head = stream.write_header(b"1234", True, stream.MODES["local"], stream.MAP_RANS, (2, 16, 16), True)
>>> bytes(head[:2]), len(head)
(b'LE', 11)
>>> model_map(np.array([0, 1, 0, 2]), (2, 2, 2), (2, 1), num_channels=2).tolist()
[[[0, 2]], [[1, 3]]]
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ldem import _core
from ldem.bitio import ByteReader, put_varint
from ldem.coder import block_grid
from ldem.errors import DecodeError
from ldem.local import quadtree

MAGIC = b"LE"
VERSION = 2
READ_VERSIONS = (1, 2)
FEATURE_CONTEXTS = 1
# Context-coded data is cut into segments of 2^18 symbols (plain data: 2^17): contexts
# stop at segment edges, and fewer edges measured 1.9 % smaller on the low-complexity
# development images at quality 3 (tuning half), at no cost in parallel decoding of
# large latents (a 1080p image's latent still has 6 segments).
CONTEXT_SEGMENT_SHIFT = 18
MODES = {"global": 0, "static": 1, "local": 2}
MODE_NAMES = {v: k for k, v in MODES.items()}
MAP_RANS, MAP_DEFLATE = 0, 1
MAP_CODEC_NAMES = {MAP_RANS: "rans", MAP_DEFLATE: "deflate"}


def write_header(digest: bytes, checksum: bool, mode: int, map_codec: int, shape,
                 contexts: bool = False) -> bytearray:
    """The stream's first fields: magic, flags, features, dictionary digest and ``C, H, W``.

    >>> bytes(write_header(b"\\0" * 4, False, 0, 0, (1, 2, 3), contexts=True))
    b'LE \\x01\\x00\\x00\\x00\\x00\\x01\\x02\\x03'
    """
    out = bytearray(MAGIC)
    out.append(VERSION << 4 | bool(checksum) << 3 | mode << 1 | map_codec)
    out.append(FEATURE_CONTEXTS if contexts else 0)
    out += digest
    for v in shape:
        put_varint(out, int(v))
    return out


def write_local_fields(out: bytearray, block, depth: int, num_image_models: int, side: bytes,
                       map_bytes: bytes) -> int:
    """Appends the fields of modes 1 and 2 (block size, partition depth, ``I``, side bits,
    block map) to ``out``; returns the bytes of the fields other than the side bits and the map.

    >>> out = bytearray()
    >>> write_local_fields(out, (16, 16), 0, 0, b"", b"ab"), bytes(out)
    (6, b'\\x10\\x10\\x00\\x00\\x00\\x02ab')
    """
    start = len(out)
    for v in (block[0], block[1], depth, num_image_models, len(side)):
        put_varint(out, v)
    out += side
    put_varint(out, len(map_bytes))
    fields = len(out) - start - len(side)
    out += map_bytes
    return fields


@dataclass
class StreamFields:
    """The header fields of a stream, as :func:`parse` read them."""
    data: bytes  # the stream less its checksum
    total: int  # bytes of the whole stream
    checksum: bool
    mode: int
    codec: int
    shape: tuple
    block: Optional[tuple] = None
    num_image_models: int = 0
    side: bytes = b""
    map_bytes: bytes = b""
    payload_pos: int = 0  # where the ldem.encode data starts in ``data``
    version: int = VERSION
    contexts: bool = False  # the data is context-coded
    depth: int = 0  # partition levels (0: fixed blocks)




def parse(data, digests, num_channels: int, max_symbols: int, max_blocks: int) -> StreamFields:
    """Checks a stream's header (and checksum) against the coder's digests (``{(version,
    context-coded): digest}``) and limits; returns its fields. Raises
    :class:`ldem.DecodeError` on any mismatch.

    >>> f = parse(bytes(write_header(b"abcd", False, 0, 0, (1, 4, 4))), {(2, False): b"abcd"}, 1, 2**26, 2**22)
    >>> f.mode, f.shape, f.contexts
    (0, (1, 4, 4), False)
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    data = bytes(data)
    total = len(data)
    r = ByteReader(data)
    if r.take(2) != MAGIC:
        raise DecodeError("not an ldem local-entropy stream (bad magic)")
    flags = r.u8()
    version = flags >> 4
    if version not in READ_VERSIONS:
        raise DecodeError(f"unsupported local stream version {version} (this release reads "
                          f"{', '.join(map(str, READ_VERSIONS))})")
    mode, codec = (flags >> 1) & 3, flags & 1
    if flags & 8:
        if len(data) < 7 or zlib.crc32(data[:-4]) != int.from_bytes(data[-4:], "little"):
            raise DecodeError("checksum mismatch (corrupt or truncated stream)")
        data = data[:-4]
        r.data = data
    if mode not in MODE_NAMES:
        raise DecodeError("invalid mode in stream")
    features = r.u8() if version >= 2 else 0
    if features & ~FEATURE_CONTEXTS:
        raise DecodeError(f"unknown stream features {features:#x}")
    if r.take(4) != digests.get((version, bool(features & FEATURE_CONTEXTS))):
        raise DecodeError("stream was made with other dictionaries (digest mismatch)")
    C, H, W = r.varint(2**31), r.varint(2**31), r.varint(2**31)
    if C != num_channels:
        raise DecodeError(f"stream has {C} channels, the coder's global models have {num_channels}")
    if C * H * W > max_symbols:
        raise DecodeError(f"stream declares {C * H * W} symbols, more than max_symbols={max_symbols}")
    f = StreamFields(data=data, total=total, checksum=bool(flags & 8), mode=mode, codec=codec, shape=(C, H, W),
                     version=version, contexts=bool(features & FEATURE_CONTEXTS))
    if mode != 0:
        bh, bw = r.varint(max(H, 1)), r.varint(max(W, 1))
        if bh < 1 or bw < 1:
            raise DecodeError("invalid block size")
        f.depth = r.varint(quadtree.MAX_DEPTH) if version >= 2 else 0
        blocks = math.prod(block_grid((C, H, W), (bh, bw)))
        if blocks > max_blocks:
            raise DecodeError(f"stream declares a map of {blocks} blocks, more than max_blocks={max_blocks}")
        I = r.varint(64)
        if mode == 1 and I:
            raise DecodeError("static mode stream with image models")
        f.block, f.num_image_models = (bh, bw), I
        f.side = r.take(r.varint(r.remaining()))
        f.map_bytes = r.take(r.varint(r.remaining()))
    f.payload_pos = r.pos
    return f


def describe(f: StreamFields) -> dict:
    """Header fields and the bytes of each part of a parsed stream (see
    :meth:`ldem.LocalEntropyCoder.describe`)."""
    payload = len(f.data) - f.payload_pos
    return {"version": f.version, "contexts": f.contexts, "mode": MODE_NAMES[f.mode], "shape": f.shape,
            "block": f.block, "partition_depth": f.depth,
            "num_image_models": f.num_image_models,
            "map_codec": MAP_CODEC_NAMES[f.codec] if f.mode else None, "bytes": f.total,
            "bytes_side_tables_and_map_counts": len(f.side), "bytes_block_map": len(f.map_bytes),
            "bytes_data": payload, "bytes_header": f.total - payload - len(f.side) - len(f.map_bytes)}


def model_map(categories: np.ndarray, shape, block, num_channels: int) -> np.ndarray:
    """Model indices into [global, static, image] from per-block categories: category 0
    is the block's own channel's global model, category ``k >= 1`` is model
    ``num_channels + k - 1``.

    One int32 array and one mask per block (the decoder's memory bound counts on it).

    >>> model_map(np.array([0, 0, 3]), (3, 1, 1), (1, 1), num_channels=3).ravel().tolist()
    [0, 1, 5]
    """
    C, nby, nbx = block_grid(shape, block)
    m = np.array(categories, dtype=np.int32).reshape(C, nby * nbx)  # a copy: categories are kept
    fixed = m == 0
    m += num_channels - 1  # static, then image models follow the C global ones
    np.copyto(m, np.arange(C, dtype=np.int32)[:, None], where=fixed)  # category 0: own channel
    return m.reshape(C, nby, nbx)


def global_layout(shape):
    """Whole-plane blocks and the model map of the global mode (channel c uses model c).

    >>> block, models = global_layout((2, 3, 5)); block, models.ravel().tolist()
    ((3, 5), [0, 1])
    """
    C, H, W = shape
    block = (max(H, 1), max(W, 1))
    grid = block_grid(shape, block)
    models = np.broadcast_to(np.arange(C, dtype=np.int32)[:, None, None], grid)
    return block, np.ascontiguousarray(models)


def encode_block_map(categories: np.ndarray, num_categories: int, precision: int, codecs) -> tuple:
    """The smallest coding of the block map among ``codecs`` ("rans", "deflate"):
    (codec, category counts to send as side bits or None, map bytes,
    {codec name: bytes incl. its side bits} for every codec tried).

    >>> codec, counts, data, sizes = encode_block_map(np.zeros(64, np.int64), 3, 12, ("rans", "deflate"))
    >>> MAP_CODEC_NAMES[codec] in sizes, sorted(sizes)
    (True, ['deflate', 'rans'])
    """
    options = []
    if "rans" in codecs:
        counts, data = _core.encode_block_map(categories.astype(np.int32), num_categories=num_categories,
                                              precision=precision)
        count_bits = sum(2 * int(v + 1).bit_length() - 1 for v in counts.tolist())
        options.append((count_bits / 8 + len(data), MAP_RANS, counts, data))
    if "deflate" in codecs:
        raw = categories.astype(np.uint8 if num_categories <= 256 else "<u2").tobytes()
        # Two raw-DEFLATE strategies, the smaller kept: run-length matches (the maps'
        # runs) and level 6 filtered. On the development photos' maps both together
        # are 3 % smaller than level 9 alone, and 5x faster.
        streams = []
        for level, strategy in ((9, zlib.Z_RLE), (6, zlib.Z_FILTERED)):
            comp = zlib.compressobj(level, zlib.DEFLATED, -15, 8, strategy)
            streams.append(comp.compress(raw) + comp.flush())
        data = min(streams, key=len)
        options.append((len(data), MAP_DEFLATE, None, data))
    _, codec, counts, data = min(options, key=lambda o: o[0])
    sizes = {MAP_CODEC_NAMES[o[1]]: o[0] for o in options}
    return codec, counts, data, sizes


def decode_block_map(codec: int, map_bytes: bytes, counts, num_blocks: int, num_categories: int,
                     precision: int) -> np.ndarray:
    """The int32 categories of ``num_blocks`` blocks, each checked to be below
    ``num_categories``; ``counts`` (from the side bits) for the rANS codec. Raises
    :class:`ldem.DecodeError` on damage.

    >>> codec, counts, data, _ = encode_block_map(np.array([0, 2, 2, 1]), 3, 12, ("deflate",))
    >>> decode_block_map(codec, data, counts, 4, 3, 12).tolist()
    [0, 2, 2, 1]
    """
    B, A = num_blocks, num_categories
    if codec == MAP_RANS:
        return _core.decode_block_map(map_bytes, counts=counts, num_blocks=B, precision=precision)
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
    return categories


def write_side_info(tables: Optional["_core.ImageTables"], map_counts: Optional[np.ndarray]) -> bytes:
    """The side bits: the image tables (if any), then the rANS map's category counts (if any).

    >>> write_side_info(None, np.array([3, 0])).hex(), write_side_info(None, None)  # gamma(4), gamma(1)
    ('24', b'')
    """
    return _core.write_side_info(tables=tables, map_counts=map_counts)


def read_side_info(side: bytes, num_image_models: int, num_map_counts: int, precision: int):
    """(image tables or None, category counts) from the side bits; raises
    :class:`ldem.DecodeError` if they are truncated or invalid.

    >>> tables, counts = read_side_info(write_side_info(None, np.array([3, 0])), 0, 2, 12)
    >>> tables, counts.tolist()
    (None, [3, 0])
    """
    return _core.read_side_info(side, num_tables=num_image_models, num_map_counts=num_map_counts,
                                precision=precision)


def encode_partition(tree: "quadtree.Tree", num_categories: int, precision: int, codecs) -> tuple:
    """A partition's map, as :func:`encode_block_map` gives a block map: (the leaves'
    codec, the counts for the side bits, the map bytes, {codec: bytes incl. side bits}).
    The counts are two split-flag counts per level, then the leaves' category counts for
    the rANS codec; the map bytes are each level's varint-prefixed flags, then the leaves
    coded by :func:`encode_block_map`.

    >>> t = quadtree.select(np.zeros((1, 2, 2, 3)), depth=1, precision=12)
    >>> codec, counts, data, _ = encode_partition(t, 3, 12, ("rans",))
    >>> counts.tolist()  # one level: no split (1 flag 0), then 1 leaf of category 0
    [1, 0, 1, 0, 0]
    """
    out = bytearray()
    counts = []
    for flags in tree.flags:
        if len(flags):
            c, data = _core.encode_block_map(flags.astype(np.int32), num_categories=2, precision=precision)
        else:
            c, data = np.zeros(2, np.uint64), b""
        counts.append(np.asarray(c, np.uint64))
        put_varint(out, len(data))
        out += data
    codec, leaf_counts, leaf_bytes, sizes = encode_block_map(tree.leaves, num_categories, precision, codecs)
    if leaf_counts is not None:
        counts.append(np.asarray(leaf_counts, np.uint64))
    flag_bits = sum(2 * int(v + 1).bit_length() - 1 for c in counts[:len(tree.flags)] for v in c.tolist())
    sizes = {k: v + len(out) + flag_bits / 8 for k, v in sizes.items()}
    return codec, np.concatenate(counts) if counts else None, bytes(out) + leaf_bytes, sizes


def decode_partition(codec: int, map_bytes: bytes, counts, leaf_shape, depth: int, num_categories: int,
                     precision: int) -> np.ndarray:
    """The category of every leaf block (flattened ``[C, nby, nbx]``) of a partition's map;
    ``counts`` are the side counts of :func:`encode_partition`. Raises
    :class:`ldem.DecodeError` on damage."""
    r = ByteReader(bytes(map_bytes))

    def level_flags(level: int, n: int) -> np.ndarray:
        data = r.take(r.varint(r.remaining()))
        c = counts[2 * level: 2 * level + 2]
        if n == 0:
            if data or int(np.sum(c)):
                raise DecodeError("block partition: flags for a level without splittable blocks")
            return np.zeros(0, np.uint8)
        return _core.decode_block_map(data, counts=c, num_blocks=n, precision=precision).astype(np.uint8)

    _, per_level, masks = quadtree.read_flags(leaf_shape, depth, level_flags)
    leaves = decode_block_map(codec, r.take(r.remaining()), counts[2 * depth:] if counts is not None else None,
                              sum(per_level), num_categories, precision)
    return quadtree.place_leaves(leaf_shape, depth, per_level, masks, leaves).reshape(-1)
