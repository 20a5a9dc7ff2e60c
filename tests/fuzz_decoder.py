"""Throws damaged streams at ldem.decode and checks that it only ever raises DecodeError.

Not part of the default test run (pytest collects ``test_*.py`` only). Run it as::

    python tests/fuzz_decoder.py --streams 100000 [--seed S]

It builds a handful of valid streams (escapes and int32 extremes, several segments,
1/4/8/32 lanes, checksum on and off, 1x1 and larger blocks, precisions 12..16), then
decodes at least ``--streams`` damaged variants in-process: truncations, bit flips,
byte overwrites, splices of two streams, appended junk, random bodies behind a valid
header, headers with huge or unterminated varint lengths, and header field changes.
Every outcome is counted: ``DecodeError``, another ``ValueError``, or a clean decode
(which must return an int32 array of the requested shape), split into decodes that give
back the original symbols and decodes that give other symbols (possible without a
checksum: a flip in the raw bits of an escaped value changes only that value). Any other
exception, a wrong result type, other symbols from a checksummed stream, or a case
slower than ``--case-seconds`` is a failure; a watchdog
thread aborts the process if one decode call hangs for ``--hang-seconds``. The summary
line gives the counts; the exit status is 1 if anything failed.

Besides those classes it grows crafted cases for the hostile-input bugs found so far:

* narrow blocks (1x1, 1x2, 1x3, 2x1) with alternating models, so model runs are 1-3
  symbols long, and their truncations and splices; streams of valid lane states
  followed by zeros or junk words (the reader must stop at the end of the data);
* segment-length varints whose sum would wrap, and huge declared counts;
* :class:`ldem.LocalEntropyCoder` streams (checksum off, so damage reaches the parser,
  and on, with the CRC recomputed after a field is changed): damaged headers, shapes,
  block sizes, image-model counts, side tables, block maps of both codecs; each is also
  given to ``describe``. These coders use ``max_symbols=2**20`` to keep cases fast;
* version-2 local streams: context-coded data (context families learned on other
  latents), quadtree partitions of 2-3 levels, and context-free v2 streams; damaged
  features bytes and partition depths, flags and leaves;
* context-coded core streams (``_core.decode_context``) under random families, with
  image models as context-free families;
* serialised dictionaries (``Dictionary.from_bytes``) with fields changed and the CRC
  recomputed;
* coder streams also decoded by the CPU emulation of the CUDA kernels
  (``_core.cuda_emulate_decode``), which must refuse exactly what the CPU decoder refuses
  and otherwise give the same symbols.

For sanitizer runs (.ci/sanitizers.sh) the same script runs against a module built
with AddressSanitizer and UBSan, where any read past a buffer aborts the process.
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import zlib
from collections import Counter

import numpy as np

import ldem
from ldem import _core

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def _varint(v: int) -> bytes:
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


class Base:
    """One valid stream and everything needed to decode it."""

    def __init__(self, name, symbols, models, dictionary, block, checksum=False, lanes=4,
                 segment_size=2**17):
        self.name = name
        self.symbols = symbols
        self.models = models
        self.dictionary = dictionary
        self.block = block
        self.shape = symbols.shape
        self.checksum = checksum
        self.data = ldem.encode(symbols, models, dictionary, block, threads=None,
                                checksum=checksum, lanes=lanes, segment_size=segment_size)
        back = ldem.decode(self.data, models, dictionary, self.shape, block)
        if not np.array_equal(back, symbols):
            raise AssertionError(f"{name}: the undamaged stream does not round-trip")
        n = symbols.size
        shift = segment_size.bit_length() - 1
        self.segments = 0 if n == 0 else max(1, n >> shift)
        # Header: 4 fixed bytes, S - 1 varints, optional CRC.
        pos = 4
        for _ in range(max(0, self.segments - 1)):
            while self.data[pos] & 0x80:
                pos += 1
            pos += 1
        self.varints_at = 4
        self.varints_end = pos
        self.payload_at = pos + (4 if checksum else 0)
        self.lanes = lanes

    kind = "coder"

    def decode(self, data, threads):
        return ldem.decode(data, self.models, self.dictionary, self.shape, self.block, threads=threads)


class EmulatedBase(Base):
    """A coder stream also decoded by the CPU emulation of the CUDA kernels, which must
    refuse exactly the streams the CPU decoder refuses and otherwise return its symbols."""

    def decode(self, data, threads):
        try:
            cpu = super().decode(data, threads)
        except ldem.DecodeError as e:
            cpu = e
        try:
            gpu = _core.cuda_emulate_decode(data, self.models, self.dictionary._impl, *self.shape, *self.block)
        except ldem.DecodeError as e:
            if not isinstance(cpu, Exception):
                raise AssertionError(f"the emulated GPU decoder refused a stream the CPU decoded: {e}") from None
            raise
        if isinstance(cpu, Exception):
            raise AssertionError(f"the emulated GPU decoder accepted a stream the CPU refused: {cpu}")
        if not np.array_equal(cpu, gpu):
            raise AssertionError("the emulated GPU decoder and the CPU decoded different symbols")
        return gpu


class LocalBase:
    """One valid LocalEntropyCoder stream (decoded with coder.decode, also described)."""

    kind = "local"

    def __init__(self, name, coder, symbols, mode="local"):
        self.name = name
        self.coder = coder
        self.symbols = symbols
        self.shape = symbols.shape
        self.checksum = coder.checksum
        self.data = coder.encode(symbols, mode=mode)
        if not np.array_equal(coder.decode(self.data), symbols):
            raise AssertionError(f"{name}: the undamaged stream does not round-trip")
        self.payload_at = len(self.data)  # only the generic mutations know no better
        self.varints_at = self.varints_end = 3

    def decode(self, data, threads):
        info = self.coder.describe(data)
        if not isinstance(info, dict):
            raise AssertionError("describe did not return a dict")
        return self.coder.decode(data)


class ContextBase:
    """One context-coded core stream (_core.decode_context) under random families."""

    kind = "context"

    def __init__(self, name, symbols, families, dicts, contextual, block, segment_shift=17):
        self.name, self.symbols, self.shape = name, symbols, symbols.shape
        self.families, self.dicts, self.contextual, self.block = families, dicts, contextual, block
        self.checksum = False
        self.data = _core.encode_context(symbols, families, dicts, contextual, *block, threads=2,
                                         segment_shift=segment_shift)
        self.payload_at = len(self.data)
        self.varints_at = self.varints_end = 4
        if not np.array_equal(self.decode(self.data, 1), symbols):
            raise AssertionError(f"{name}: the undamaged stream does not round-trip")

    def decode(self, data, threads):
        return _core.decode_context(data, self.families, self.dicts, self.contextual, *self.shape, *self.block,
                                    threads=threads)


class DictBase:
    """One serialised dictionary (Dictionary.from_bytes); CRC-protected."""

    kind = "dictionary"

    def __init__(self, name, dictionary):
        self.name = name
        self.data = dictionary.to_bytes()
        self.symbols = self.data
        self.shape = None
        self.checksum = True
        self.payload_at = len(self.data)
        self.varints_at = self.varints_end = 4

    def decode(self, data, threads):
        return ldem.Dictionary.from_bytes(data).to_bytes()


def _dictionary(rng, precision, K, n_max=40, peaked=False):
    pmfs, offsets = [], []
    for _ in range(K):
        n = int(rng.integers(1, n_max + 1))
        if peaked:
            p = np.full(n, 1e-9)
            p[rng.integers(n)] = 1.0
        else:
            p = rng.dirichlet(np.full(n, 0.5)) + 1e-6
        pmfs.append(p)
        offsets.append(int(rng.integers(-20, 21)) - n // 2)
    return ldem.Dictionary.from_pmfs(pmfs, offsets, precision=precision)


def _symbols(rng, shape, dictionary, wide=0.02):
    lo = min(dictionary.support(k)[0] for k in range(dictionary.num_models))
    hi = max(dictionary.support(k)[1] for k in range(dictionary.num_models))
    y = rng.integers(lo - 2, hi + 2, size=shape, dtype=np.int64)
    u = rng.random(shape)
    y = np.where(u < wide, rng.integers(INT32_MIN, INT32_MAX, size=shape, dtype=np.int64, endpoint=True), y)
    y = np.where(u < wide / 10, INT32_MIN, y)
    y = np.where((u >= wide / 10) & (u < wide / 5), INT32_MAX, y)
    return y.astype(np.int32)


def _models(rng, shape, block, K):
    grid = ldem.block_grid(shape, block)
    return rng.integers(0, K, size=grid, dtype=np.int32)


def make_bases(rng):
    bases = []

    def add(name, shape, block, precision, K, checksum=False, lanes=4, segment_size=2**17,
            peaked=False, wide=0.02):
        d = _dictionary(rng, precision, K, peaked=peaked)
        y = _symbols(rng, shape, d, wide)
        m = _models(rng, shape, block, K)
        bases.append(Base(name, y, m, d, block, checksum, lanes, segment_size))

    add("small-escapes-p12", (2, 9, 13), (3, 5), 12, 3, wide=0.2)
    add("tiny", (1, 1, 3), (1, 1), 16, 1)
    add("per-symbol-map", (3, 17, 11), (1, 1), 14, 5)
    add("whole-plane-p16-peaked", (2, 24, 24), (24, 24), 16, 2, peaked=True)
    add("segments-256", (3, 20, 30), (4, 7), 13, 4, segment_size=256)
    add("segments-256-1x1", (2, 20, 30), (1, 1), 15, 3, segment_size=256)
    add("lanes1", (2, 16, 16), (5, 5), 16, 2, lanes=1, segment_size=256)
    add("lanes8", (2, 16, 16), (8, 3), 12, 3, lanes=8)
    add("lanes32", (4, 16, 16), (16, 16), 14, 2, lanes=32, segment_size=256)
    add("checksum", (2, 12, 12), (4, 4), 16, 2, checksum=True)
    add("checksum-segments", (2, 20, 20), (6, 6), 12, 2, checksum=True, segment_size=256)
    add("int32-extremes", (1, 8, 8), (2, 2), 12, 2, wide=0.6)
    # Several default-size segments (N > 2**18); decoded rarely, it is the slow one.
    add("default-segments", (3, 300, 300), (16, 16), 16, 4, wide=0.001)

    # Narrow blocks with alternating models: runs of 1-3 symbols (every decoder path).
    def narrow(name, shape, block, precision, lanes=4, segment_size=2**17):
        d = _dictionary(rng, precision, 3)
        y = _symbols(rng, shape, d, 0.02)
        grid = ldem.block_grid(shape, block)
        m = (np.arange(int(np.prod(grid))) % 3).astype(np.int32).reshape(grid)
        m[..., ::5] = rng.integers(0, 3, size=m[..., ::5].shape, dtype=np.int32)
        bases.append(Base(name, y, m, d, block, False, lanes, segment_size))

    narrow("narrow-1x1", (2, 7, 33), (1, 1), 12)
    narrow("narrow-1x2", (2, 9, 40), (1, 2), 13)
    narrow("narrow-1x3", (1, 12, 31), (1, 3), 16)
    narrow("narrow-2x1", (3, 6, 17), (2, 1), 14)
    narrow("narrow-1x2-segments", (2, 16, 40), (1, 2), 12, segment_size=256)
    narrow("narrow-1x3-lanes1", (2, 8, 30), (1, 3), 15, lanes=1, segment_size=256)
    narrow("narrow-2x1-lanes8", (2, 10, 20), (2, 1), 16, lanes=8)
    narrow("narrow-1x2-long", (1, 1, 2**15), (1, 2), 12)  # long enough to run far past the end

    # LocalEntropyCoder streams (small max_symbols keeps damaged headers cheap to decode).
    def local(name, shape, with_static, checksum, mode="local", map_codecs=("rans", "deflate"),
              block_sizes=((4, 4), (8, 8)), precision=16):
        C = shape[0]
        g = _dictionary(rng, precision, C, n_max=12)
        static = _dictionary(rng, precision, 3, n_max=12) if with_static else None
        coder = ldem.LocalEntropyCoder(g, static, block_sizes=block_sizes, max_image_models=4,
                                       lloyd_iterations=1, map_codecs=map_codecs, checksum=checksum,
                                       max_symbols=2**20, max_blocks=2**14)
        lo, hi = g.support(0)
        y = rng.integers(lo, hi + 1, size=shape).astype(np.int32)
        y[:, : shape[1] // 2] = 0  # two regimes: local models pay off
        y.flat[rng.integers(y.size, size=3)] = 1000
        bases.append(LocalBase(name, coder, y, mode))

    local("local-rans-map", (3, 16, 24), False, False, map_codecs=("rans",))
    local("local-deflate-map", (2, 16, 16), True, False, map_codecs=("deflate",))
    local("local-static", (2, 12, 20), True, False, mode="static", block_sizes=((1, 2), (2, 2)))
    local("local-global", (2, 8, 8), False, False, mode="global")
    local("local-narrow-1x1", (2, 6, 9), True, False, block_sizes=((1, 1),), precision=12)
    local("local-checksum", (2, 16, 16), True, True)

    # Version-2 local streams: context families and quadtree partitions.
    def local_contexts(name, shape, checksum, mode="local", effort=2, block_sizes=((4, 4), (8, 8), (16, 16))):
        def latent(seed_shape):  # 16x16 regions of very different scales, some 4x4 tiles apart
            C, H, W = seed_shape
            coarse = rng.choice([0.02, 4.0], size=(C, -(-H // 16), -(-W // 16)))
            scale = np.repeat(np.repeat(coarse, 4, 1), 4, 2)[:, :-(-H // 4), :-(-W // 4)]
            odd = rng.random(scale.shape) < 0.15
            scale = np.where(odd, 4.02 - scale, scale)
            scale = np.repeat(np.repeat(scale, 4, 1), 4, 2)[:, :H, :W]
            return rng.laplace(0, scale).round().astype(np.int32)
        want_partition = mode != "global" and effort > 0
        for _ in range(50):  # latents are random: draw until the stream has what the base is for
            train = [latent(shape) for _ in range(3)]
            g = ldem.fit_global_models(train)
            cg = ldem.fit_context_models(train)
            cs = ldem.learn_context_dictionary(train, 3, cg, block=(4, 4))
            coder = ldem.LocalEntropyCoder(g, None, block_sizes=block_sizes, max_image_models=4,
                                           lloyd_iterations=1, checksum=checksum, max_symbols=2**20,
                                           max_blocks=2**14, context_models=cg, context_static=cs, effort=effort)
            y = latent(shape)
            y.flat[rng.integers(y.size, size=3)] = [INT32_MIN, INT32_MAX, 5000]
            info = coder.describe(coder.encode(y, mode=mode))
            if info["contexts"] and (not want_partition or info["partition_depth"]):
                bases.append(LocalBase(name, coder, y, mode))
                return
        raise AssertionError(f"{name}: no latent gave a context-coded (partitioned) stream")

    local_contexts("v2-contexts-partition", (4, 32, 32), False)
    local_contexts("v2-contexts-partition-crc", (3, 32, 28), True)
    local_contexts("v2-contexts-global", (3, 12, 12), False, mode="global")

    # Context-coded core streams under random families (image models context-free).
    def context(name, shape, block, precision, F, segment_shift=17):
        K = _core.NUM_CONTEXTS
        fams = _dictionary(rng, precision, F * K, n_max=10)
        image = _dictionary(rng, precision, 2, n_max=10)
        y = _symbols(rng, shape, fams, 0.05)
        m = _models(rng, shape, block, F + 2)
        bases.append(ContextBase(name, y, m, [fams._impl, image._impl], [True, False], block, segment_shift))

    context("context-families", (3, 12, 16), (4, 4), 14, 2)
    context("context-segments", (4, 16, 16), (1, 3), 12, 2, segment_shift=8)

    # Serialised dictionaries.
    bases.append(DictBase("dictionary-p12", _dictionary(rng, 12, 4)))
    bases.append(DictBase("dictionary-p16", _dictionary(rng, 16, 2, n_max=300)))

    # Streams the emulated GPU decoder reads too (its kernels' per-warp code on the CPU).
    def emulated(name, shape, block, precision, K, checksum=False, lanes=4, segment_size=2**17):
        d = _dictionary(rng, precision, K)
        y = _symbols(rng, shape, d, 0.05)
        m = _models(rng, shape, block, K)
        bases.append(EmulatedBase(name, y, m, d, block, checksum, lanes, segment_size))

    emulated("emulated-lanes32", (2, 16, 24), (4, 5), 14, 3, lanes=32, segment_size=256)
    emulated("emulated-lanes4-1x1", (2, 9, 30), (1, 1), 12, 3, segment_size=256)
    emulated("emulated-checksum", (3, 10, 11), (2, 3), 16, 2, checksum=True, lanes=8)
    return bases


# -- mutations -------------------------------------------------------------------------------

def m_truncate(rng, b, bases):
    return b.data[: int(rng.integers(0, len(b.data)))]


def m_bitflip(rng, b, bases):
    d = bytearray(b.data)
    for _ in range(int(rng.integers(1, 9)) if rng.random() < 0.5 else 1):
        i = int(rng.integers(len(d)))
        d[i] ^= 1 << int(rng.integers(8))
    return bytes(d)


def m_payload_bitflip(rng, b, bases):
    d = bytearray(b.data)
    if len(d) <= b.payload_at:
        return bytes(d)
    i = int(rng.integers(b.payload_at, len(d)))
    d[i] ^= 1 << int(rng.integers(8))
    return bytes(d)


def m_overwrite(rng, b, bases):
    d = bytearray(b.data)
    for _ in range(int(rng.integers(1, 5))):
        i = int(rng.integers(len(d)))
        k = int(rng.integers(1, 9))
        d[i:i + k] = rng.integers(0, 256, size=min(k, len(d) - i), dtype=np.uint8).tobytes()
    return bytes(d)


def m_zero_or_ff(rng, b, bases):
    d = bytearray(b.data)
    i = int(rng.integers(len(d)))
    k = int(rng.integers(1, 33))
    fill = 0 if rng.random() < 0.5 else 0xFF
    d[i:i + k] = bytes([fill]) * len(d[i:i + k])
    return bytes(d)


def m_splice(rng, b, bases):
    other = bases[int(rng.integers(len(bases)))].data
    i = int(rng.integers(0, len(b.data) + 1))
    j = int(rng.integers(0, len(other) + 1))
    if rng.random() < 0.5:
        return b.data[:i] + other[j:]
    # Cut a random slice out of the stream, or duplicate one.
    k = int(rng.integers(i, len(b.data) + 1))
    return b.data[:i] + b.data[k:] if rng.random() < 0.5 else b.data[:k] + b.data[i:k] + b.data[k:]


def m_append(rng, b, bases):
    k = int(rng.integers(1, 65))
    junk = rng.integers(0, 256, size=k, dtype=np.uint8).tobytes()
    return b.data + (junk if rng.random() < 0.7 else b.data[-k:])


def m_random_body(rng, b, bases):
    n = int(rng.integers(0, 2 * len(b.data) + 16))
    body = rng.integers(0, 256, size=n, dtype=np.uint8).tobytes()
    head = b.data[:b.payload_at] if rng.random() < 0.5 else b.data[:4]
    return head + body


def m_random_bytes(rng, b, bases):
    n = int(rng.integers(0, 200))
    return rng.integers(0, 256, size=n, dtype=np.uint8).tobytes()


def m_huge_varint(rng, b, bases):
    choice = rng.random()
    if choice < 0.3:
        v = _varint(int(rng.integers(0, 2**63, dtype=np.uint64)) | (1 << int(rng.integers(20, 64))))
    elif choice < 0.5:
        v = b"\xff" * int(rng.integers(1, 16))  # unterminated / over-long varint
    elif choice < 0.7:
        v = _varint(4 * int(rng.integers(0, 2**40)))  # word-aligned, far too long
    else:
        v = _varint(4 * int(rng.integers(0, len(b.data) // 4 + 3)))  # plausible but wrong
    tail = b.data[b.varints_end:] if rng.random() < 0.5 else b.data[b.varints_at:]
    return b.data[:4] + v + tail


def m_header_fields(rng, b, bases):
    d = bytearray(b.data)
    i = int(rng.integers(0, 4))
    if i == 2:
        d[2] = (int(rng.integers(0, 16)) << 4) | int(rng.integers(0, 16))  # version, flags
    elif i == 3:
        d[3] = int(rng.integers(0, 256))  # lanes, segment shift
    else:
        d[i] = int(rng.integers(0, 256))
    return bytes(d)


def m_states_then_junk(rng, b, bases):
    """A header for one segment, valid lane states, then zero, 0xFF or random words: the
    reader must stop at the end of the data whatever the symbols' run lengths."""
    if b.kind != "coder":
        return m_bitflip(rng, b, bases)
    lanes_log2 = int(rng.integers(0, 6)) if rng.random() < 0.3 else b.lanes.bit_length() - 1
    head = b"LD\x10" + bytes([lanes_log2 << 5 | 31])
    states = b"".join(int(rng.integers(2**31, 2**63, dtype=np.uint64)).to_bytes(8, "little")
                      if rng.random() < 0.5 else (2**31).to_bytes(8, "little") for _ in range(1 << lanes_log2))
    n = 4 * int(rng.integers(0, 64 if rng.random() < 0.7 else 4096))
    r = rng.random()
    body = bytes(n) if r < 0.4 else b"\xff" * n if r < 0.6 else rng.integers(0, 256, n, dtype=np.uint8).tobytes()
    return head + states + body


def m_wrapping_lengths(rng, b, bases):
    """Segment lengths that add up past 2^64 (or just past the data)."""
    if b.kind != "coder" or getattr(b, "segments", 0) < 2:
        return m_huge_varint(rng, b, bases)
    k = b.segments - 1
    v = [_varint(4 * int(rng.integers(2**59, 2**61))) for _ in range(k)]
    if rng.random() < 0.5:
        v[-1] = _varint(4 * int(rng.integers(0, 64)))
    return b.data[:4] + b"".join(v) + b.data[b.varints_end:]


def _local_fields(b):
    """The fields of a local stream (no checksum), or None if it does not parse."""
    data = b.data[:-4] if b.checksum else b.data
    r = ldem.bitio.ByteReader(data)
    try:
        magic, flags = r.take(2), r.u8()
        features = r.u8() if flags >> 4 >= 2 else None
        digest = r.take(4)
        shape = [r.varint(), r.varint(), r.varint()]
        f = dict(magic=magic, flags=flags, features=features, digest=digest, shape=shape)
        if (flags >> 1) & 3:
            f["block"] = [r.varint(), r.varint()]
            f["depth"] = r.varint() if features is not None else None
            f["I"] = r.varint()
            f["side"] = r.take(r.varint())
            f["map"] = r.take(r.varint())
        f["payload"] = data[r.pos:]
    except ldem.DecodeError:
        return None
    return f


def _local_join(f, checksum):
    out = bytearray(f["magic"] + bytes([f["flags"]]))
    if f["features"] is not None:
        out.append(f["features"] & 255)
    out += f["digest"]
    for v in f["shape"]:
        out += _varint(v)
    if "block" in f:
        for v in f["block"] + ([f["depth"]] if f["depth"] is not None else []) + [f["I"]]:
            out += _varint(v)
        out += _varint(len(f["side"])) + f["side"] + _varint(len(f["map"])) + f["map"]
    out += f["payload"]
    return bytes(out) + (zlib.crc32(out).to_bytes(4, "little") if checksum else b"")


def _big(rng):
    r = rng.random()
    return int(rng.integers(0, 8)) if r < 0.3 else int(2 ** rng.uniform(0, 34)) if r < 0.9 else 2**31 + int(rng.integers(0, 4))


def m_local_fields(rng, b, bases):
    """One field of a local stream changed, the rest (and the CRC) kept consistent."""
    if b.kind != "local":
        return m_overwrite(rng, b, bases)
    f = _local_fields(b)
    if f is None:
        return m_bitflip(rng, b, bases)
    which = rng.choice(["shape", "block", "I", "side", "map", "payload", "flags", "swap", "features", "depth"])
    if which == "shape":
        f["shape"][int(rng.integers(3))] = _big(rng)
    elif which == "block" and "block" in f:
        f["block"][int(rng.integers(2))] = _big(rng) if rng.random() < 0.5 else 1
    elif which == "features" and f["features"] is not None:
        f["features"] ^= 1 << int(rng.integers(0, 8))
    elif which == "depth" and f.get("depth") is not None:
        f["depth"] = int(rng.integers(0, 9)) if rng.random() < 0.8 else _big(rng)
    elif which == "I" and "block" in f:
        f["I"] = int(rng.integers(0, 70))
    elif which in ("side", "map") and "block" in f:
        part = bytearray(f[which])
        r = rng.random()
        if r < 0.3 and part:
            part = part[: int(rng.integers(len(part)))]
        elif r < 0.6:
            part = bytearray(rng.integers(0, 256, int(rng.integers(0, 64)), dtype=np.uint8).tobytes())
        elif part:
            part[int(rng.integers(len(part)))] ^= 1 << int(rng.integers(8))
        f[which] = bytes(part)
    elif which == "payload":
        f["payload"] = m_states_then_junk(rng, bases[0], bases) if rng.random() < 0.5 else f["payload"][: int(rng.integers(len(f["payload"]) + 1))]
    elif which == "flags":
        f["flags"] ^= 1 << int(rng.integers(0, 3))  # map codec, mode bits
    else:  # a part of another local stream
        other = [o for o in bases if o.kind == "local" and o is not b]
        g = _local_fields(other[int(rng.integers(len(other)))])
        if g:
            for k in ("side", "map", "payload", "block", "I", "depth", "features"):
                if k in g and k in f and rng.random() < 0.5:
                    f[k] = g[k]
    return _local_join(f, b.checksum)


def m_dictionary_fields(rng, b, bases):
    """A serialised dictionary with a field changed and its CRC recomputed."""
    if b.kind != "dictionary":
        return m_truncate(rng, b, bases)
    d = bytearray(b.data[:-4])
    r = rng.random()
    if r < 0.2:
        d[6:10] = int(_big(rng) % 2**32).to_bytes(4, "little")  # number of models
    elif r < 0.4:
        d[14:18] = int(_big(rng) % 2**32).to_bytes(4, "little")  # the first model's n
    elif r < 0.5:
        d[5] = int(rng.integers(0, 32))  # precision
    elif r < 0.8:
        i = int(rng.integers(len(d)))
        d[i:i + 2] = rng.integers(0, 256, 2, dtype=np.uint8).tobytes()
    else:
        d = d[: int(rng.integers(len(d)))]
    return bytes(d) + zlib.crc32(bytes(d)).to_bytes(4, "little")


# These recompute the CRC: a checksummed stream may then decode to other symbols.
m_local_fields.recomputes_crc = True
m_dictionary_fields.recomputes_crc = True

MUTATIONS = [
    (m_truncate, 3), (m_bitflip, 4), (m_payload_bitflip, 2), (m_overwrite, 2), (m_zero_or_ff, 1),
    (m_splice, 2), (m_append, 2), (m_random_body, 2), (m_random_bytes, 1), (m_huge_varint, 2),
    (m_header_fields, 2), (m_states_then_junk, 2), (m_wrapping_lengths, 1), (m_local_fields, 3),
    (m_dictionary_fields, 1),
]


class Watchdog(threading.Thread):
    """Aborts the process if one decode call runs longer than `limit` seconds."""

    def __init__(self, limit: float):
        super().__init__(daemon=True)
        self.limit = limit
        self.started_at = None
        self.describe = ""

    def run(self):
        while True:
            time.sleep(min(1.0, self.limit / 4))
            t0 = self.started_at
            if t0 is not None and time.perf_counter() - t0 > self.limit:
                sys.stderr.write(f"HANG: decode ran > {self.limit:.0f} s on {self.describe}\n")
                sys.stderr.flush()
                os._exit(3)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--streams", type=int, default=100_000, help="damaged streams to decode")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--case-seconds", type=float, default=2.0,
                    help="a single decode slower than this counts as a failure")
    ap.add_argument("--hang-seconds", type=float, default=60.0,
                    help="abort the whole run if one decode runs this long")
    ap.add_argument("--show", type=int, default=10, help="failures to print in full")
    args = ap.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    t_start = time.perf_counter()
    bases = make_bases(rng)
    # The large base is decoded ~100x less often than the small ones.
    weights = np.array([0.01 if b.name == "default-segments" else 1.0 for b in bases])
    weights /= weights.sum()
    mut_fns = [m for m, _ in MUTATIONS]
    mut_w = np.array([w for _, w in MUTATIONS], np.float64)
    mut_w /= mut_w.sum()

    watchdog = Watchdog(args.hang_seconds)
    watchdog.start()
    counts = Counter()
    per_mutation = Counter()
    per_base = Counter()
    failures = []
    slowest = (0.0, "")
    for case in range(args.streams):
        b = bases[rng.choice(len(bases), p=weights)]
        mut = mut_fns[rng.choice(len(mut_fns), p=mut_w)]
        data = mut(rng, b, bases)
        threads = 1 if rng.random() < 0.8 else int(rng.integers(2, 4))
        desc = f"case {case} base={b.name} mutation={mut.__name__} threads={threads} len={len(data)}"
        watchdog.describe = desc
        watchdog.started_at = t0 = time.perf_counter()
        try:
            out = b.decode(data, threads)
        except ldem.DecodeError:
            outcome = "decode_error"
        except ValueError:
            outcome = "value_error"
        except BaseException as e:  # noqa: BLE001 - anything else is a bug
            outcome = "failure"
            failures.append(f"{desc}: {type(e).__name__}: {e} data={data[:64].hex()}")
        else:
            if b.kind == "dictionary":
                ok_type = isinstance(out, bytes)
            else:
                ok_type = isinstance(out, np.ndarray) and out.dtype == np.int32 and out.shape == tuple(b.shape)
            if not ok_type:
                outcome = "failure"
                failures.append(f"{desc}: returned {type(out).__name__} "
                                f"{getattr(out, 'dtype', None)} {getattr(out, 'shape', None)}")
            elif (out == b.symbols) if b.kind == "dictionary" else np.array_equal(out, b.symbols):
                outcome = "decoded"  # e.g. a header bit that does not matter for this shape
            elif data == b.data:
                outcome = "failure"
                failures.append(f"{desc}: the undamaged stream decoded wrongly")
            elif b.checksum and not getattr(mut, "recomputes_crc", False):
                outcome = "failure"
                failures.append(f"{desc}: a checksummed stream decoded to other symbols")
            else:
                outcome = "decoded_changed"  # raw escape bits carry no redundancy
        dt = time.perf_counter() - t0
        watchdog.started_at = None
        if dt > args.case_seconds:
            outcome = "failure"
            failures.append(f"{desc}: took {dt:.2f} s")
        if dt > slowest[0]:
            slowest = (dt, desc)
        counts[outcome] += 1
        per_mutation[(mut.__name__, outcome)] += 1
        per_base[(b.name.split("-")[0], outcome)] += 1

    wall = time.perf_counter() - t_start
    for f in failures[: args.show]:
        print("FAIL", f)
    by_mut = {}
    for (name, outcome), n in sorted(per_mutation.items()):
        by_mut.setdefault(name, []).append(f"{outcome}={n}")
    for name, parts in by_mut.items():
        print(f"  {name:18s} {' '.join(parts)}")
    by_base = {}
    for (name, outcome), n in sorted(per_base.items()):
        by_base.setdefault(name, []).append(f"{outcome}={n}")
    for name, parts in by_base.items():
        print(f"  bases {name + '-*':14s} {' '.join(parts)}")
    print(f"  slowest case: {slowest[0] * 1e3:.1f} ms ({slowest[1]})")
    print(f"fuzz_decoder: streams={args.streams} seed={args.seed} bases={len(bases)} "
          f"decode_error={counts['decode_error']} value_error={counts['value_error']} "
          f"decoded_same={counts['decoded']} decoded_changed={counts['decoded_changed']} "
          f"failures={counts['failure']} wall={wall:.1f}s")
    return 1 if counts["failure"] else 0


if __name__ == "__main__":
    sys.exit(main())
