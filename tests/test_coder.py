"""ldem.encode / decode / block_costs: exact round trips, size bounds, stream format,
thread independence, damaged streams and argument errors."""
import math
import re
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ldem

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- helpers -------------------------------------------------------------------------------------

def parse_header(data: bytes, N: int):
    """Reads the stream header of coder.h and checks it is well formed.

    Returns (checksum, lanes, segment_shift, S, header_bytes, segment_lengths)."""
    assert data[:2] == b"LD"
    assert data[2] >> 4 == 1 and data[2] & 0x0E == 0
    checksum = bool(data[2] & 1)
    lanes, shift = 1 << (data[3] >> 5), data[3] & 31
    S = 0 if N == 0 else max(1, N >> shift)
    pos, lengths = 4, []
    for _ in range(max(0, S - 1)):
        v, k = 0, 0
        while True:
            b = data[pos]
            pos += 1
            v |= (b & 0x7F) << (7 * k)
            k += 1
            if not b & 0x80:
                break
        assert k == max(1, -(-v.bit_length() // 7)), "varints are minimal"
        lengths.append(v)
    pos += 4 * checksum
    payload = len(data) - pos
    if S:
        lengths.append(payload - sum(lengths))
    else:
        assert payload == 0
    for n in lengths:
        assert n % 4 == 0 and n >= 8 * lanes, "each segment holds its lanes' states and whole words"
    return checksum, lanes, shift, S, pos, lengths


# Size bound (derived from the format in coder.h and the rANS maths in rans.h).
#
# A stream is: 4 fixed header bytes, S - 1 varint segment lengths, 4 CRC bytes if
# checksummed, then per segment 8 * lanes bytes of lane states plus 4 bytes per word.
# Per lane let Phi = log2(x) + 32 * w (state x, w words written so far); Phi starts at
# log2(L) = 31 and the final state is >= L = 2^31, so 32 * w <= Phi_final - 31.
#  - Coding a slot of frequency f at M = 2^P: x' = floor(x / f) M + (x mod f) + c
#    <= x M / f + (M - f) <= (M / f)(x + f), so Phi grows by at most
#    cost + log2(1 + f / x). Renormalisation leaves x >= f 2^(31 - P), hence
#    f / x <= 2^(P - 31) <= 2^-15 and the excess is below DELTA = log2(1 + 2^-15) bits.
#  - Raw escape bits (n <= 16 per push): x' = x 2^n + bits < (x + 1) 2^n with
#    x >= 2^(31 - n): the same DELTA bound. An escape does at most 3 raw pushes.
#  - Emitting a word (x -> floor(x / 2^32), w += 1) never increases Phi.
# Summing over lanes: 4 * sum(w) <= (cost + ops * DELTA) / 8 with ops <= 4 N, so
#   bytes <= cost / 8 + header_bytes + 8 * lanes * S + 4 N DELTA / 8.
# The test allows the 1.0005 factor on top (it also absorbs float summation).
# Symmetrically (x' >= x M / f - M = (x M / f)(1 - f / x); x >= 2^47 whenever a word is
# emitted, so floor(x / 2^32) >= (x / 2^32)(1 - 2^-15); the final x < 2^63) the stream is at
# least cost / 8 + 4 + 4 * lanes * S - (N + words) DELTA_LO / 8, DELTA_LO = -log2(1 - 2^-15).
DELTA = math.log2(1 + 2.0**-15)
DELTA_LO = -math.log2(1 - 2.0**-15)


def check_size(data: bytes, cost_bits: float, N: int):
    checksum, lanes, shift, S, header, lengths = parse_header(data, N)
    const = header + 8 * lanes * S + 4 * N * DELTA / 8
    assert len(data) <= cost_bits * 1.0005 / 8 + const, (len(data), cost_bits / 8, const)
    assert len(data) <= cost_bits / 8 + const + 1e-9 * cost_bits  # the derivation itself
    words = (len(data) - header) / 4
    lower = cost_bits * (1 - 1e-12) / 8 + 4 + 4 * checksum + 4 * lanes * S - (N + words) * DELTA_LO / 8
    assert len(data) >= lower - 1e-9, (len(data), lower)


def chosen_cost(y, models, d, block) -> float:
    c = ldem.block_costs(y, d, block)
    if c.size == 0:
        return 0.0
    return float(np.take_along_axis(c, models[..., None].astype(np.int64), axis=3).sum())


def decode_or_error(data, models, d, shape, block, **kw):
    """decode() must either raise DecodeError or return int32 of the right shape; anything else fails."""
    try:
        out = ldem.decode(data, models, d, shape, block, **kw)
    except ldem.DecodeError:
        return None
    assert isinstance(out, np.ndarray) and out.dtype == np.int32 and out.shape == tuple(shape)
    return out


def make_dictionary(rng, precision, specs):
    """specs: list of (kind, n, offset). Each model is built alone, then all are concatenated."""
    parts = []
    for kind, n, offset in specs:
        if kind == "dirichlet":
            parts.append(ldem.Dictionary.from_pmfs([rng.dirichlet(np.full(n, 0.5))], [offset], precision))
        elif kind == "laplace":
            p = np.exp(-np.abs(np.arange(n) - rng.integers(n)) / rng.uniform(0.2, 8))
            parts.append(ldem.Dictionary.from_pmfs([p / p.sum()], [offset], precision, escape=1e-4))
        elif kind == "peaked":  # p(mode) ~ 1: the mode gets 2^P - n
            p = np.full(n, 1e-12)
            p[rng.integers(n)] = 1.0
            parts.append(ldem.Dictionary.from_pmfs([p], [offset], precision))
        elif kind == "single":  # one support symbol (plus the escape)
            parts.append(ldem.Dictionary.from_pmfs([[1.0]], [offset], precision,
                                                   escape=float(rng.choice([0.0, 1e-3, 0.5]))))
        else:  # integer counts, some zero
            counts = rng.integers(0, 50, size=n) * (rng.random(n) < 0.7)
            parts.append(ldem.Dictionary.from_frequencies([counts], [offset], precision,
                                                          escape=int(rng.integers(0, 3))))
    return ldem.Dictionary.concat(parts)


def sample_symbols(rng, d, shape, block, models, wide, extreme, near):
    """Mostly draws each block's symbols from its own model (escapes become arbitrary
    out-of-support values), or uniformly near the supports; then mixes in arbitrary
    int32 values and the extremes."""
    C, H, W = shape
    per_symbol = np.repeat(np.repeat(models, block[0], axis=1), block[1], axis=2)[:, :H, :W]
    y = np.zeros(shape, np.int64)
    lo = min(d.support(k)[0] for k in range(d.num_models))
    hi = max(d.support(k)[1] for k in range(d.num_models))
    if near:
        y = rng.integers(lo - 3, hi + 3, size=shape)
    else:
        for k in range(d.num_models):
            sel = per_symbol == k
            cnt = int(sel.sum())
            if not cnt:
                continue
            f = d.frequencies(k).astype(np.float64)
            idx = rng.choice(len(f), size=cnt, p=f / f.sum())
            a, b = d.support(k)
            esc = np.where(rng.random(cnt) < 0.5, a - 1 - rng.integers(0, 40, cnt), b + rng.integers(0, 40, cnt))
            y[sel] = np.where(idx == len(f) - 1, esc, a + idx)
    u = rng.random(shape)
    y = np.where(u < wide, rng.integers(INT32_MIN, INT32_MAX, size=shape, endpoint=True), y)
    y = np.where(u > 1 - extreme, np.where(rng.random(shape) < 0.5, INT32_MIN, INT32_MAX), y)
    return np.clip(y, INT32_MIN, INT32_MAX).astype(np.int32)


KINDS = ["dirichlet", "laplace", "peaked", "single", "counts"]


@st.composite
def cases(draw, max_c=4, max_hw=40, max_models=8):
    precision = draw(st.integers(12, 16))
    K = draw(st.integers(1, max_models))
    specs = [(draw(st.sampled_from(KINDS)), draw(st.integers(1, 100)), draw(st.integers(-50, 50)))
             for _ in range(K)]
    C = draw(st.integers(1, max_c))
    H = draw(st.integers(1, max_hw))
    W = draw(st.integers(1, max_hw))
    empty = draw(st.sampled_from([None] * 9 + [0, 1, 2]))  # ~1 in 4: one dimension is 0
    if empty is not None:
        C, H, W = [0 if i == empty else v for i, v in enumerate((C, H, W))]
    bh = draw(st.one_of(st.just(1), st.integers(1, max(1, H)), st.just(max(1, H)), st.integers(1, 64)))
    bw = draw(st.one_of(st.just(1), st.integers(1, max(1, W)), st.just(max(1, W)), st.integers(1, 64)))
    wide = draw(st.sampled_from([0.0, 0.0, 0.01, 0.2]))
    extreme = draw(st.sampled_from([0.0, 0.0, 0.005, 0.05]))
    near = draw(st.booleans())
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    d = make_dictionary(rng, precision, specs)
    block = (bh, bw)
    grid = ldem.block_grid((C, H, W), block)
    models = rng.integers(0, K, size=grid, dtype=np.int32)
    y = sample_symbols(rng, d, (C, H, W), block, models, wide, extreme, near)
    return d, y, models, block


def fixed_case(seed=0, shape=(3, 37, 29), block=(8, 5), precision=14, K=4, wide=0.02, extreme=0.002,
               kinds=None):
    rng = np.random.default_rng(seed)
    kinds = kinds or [KINDS[k % len(KINDS)] for k in range(K)]
    d = make_dictionary(rng, precision, [(kind, int(rng.integers(1, 60)), int(rng.integers(-50, 51)))
                                         for kind in kinds])
    models = rng.integers(0, d.num_models, size=ldem.block_grid(shape, block), dtype=np.int32)
    y = sample_symbols(rng, d, shape, block, models, wide, extreme, near=False)
    return d, y, models, block


# -- round trips, size, format ------------------------------------------------------------------

@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases(), checksum=st.booleans(), threads=st.sampled_from([1, 2, None]),
       layout=st.sampled_from([(4, 2**17)] * 4 + [(1, 256), (8, 2**17), (32, 256), (2, 512)]))
def test_round_trip_and_size_bound(case, checksum, threads, layout):
    d, y, models, block = case
    lanes, segment_size = layout
    data = ldem.encode(y, models, d, block, threads=threads, checksum=checksum, lanes=lanes,
                       segment_size=segment_size)
    assert isinstance(data, bytes)
    assert data[:4] == b"LD" + bytes([0x10 | checksum, (lanes.bit_length() - 1) << 5 | (segment_size.bit_length() - 1)])
    out = ldem.decode(data, models, d, y.shape, block, threads=threads)
    assert out.dtype == np.int32 and out.shape == y.shape
    np.testing.assert_array_equal(out, y)
    check_size(data, chosen_cost(y, models, d, block), y.size)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases(), lanes=st.sampled_from([1, 4, 8, 32]), checksum=st.booleans())
def test_stream_is_independent_of_thread_count(case, lanes, checksum):
    d, y, models, block = case
    # 256-symbol segments: a few thousand symbols make many segments for the threads to share.
    streams = [ldem.encode(y, models, d, block, threads=t, checksum=checksum, lanes=lanes, segment_size=256)
               for t in (1, 2, 3, None)]
    assert all(s == streams[0] for s in streams[1:])
    for t in (1, 3, None):
        np.testing.assert_array_equal(ldem.decode(streams[0], models, d, y.shape, block, threads=t), y)


def test_large_tensor_several_segments():
    rng = np.random.default_rng(1)
    shape, block = (8, 256, 260), (16, 20)  # N = 532,480 > 2^18: S = N >> 17 = 4 segments
    d = make_dictionary(rng, 16, [("laplace", 65, -32), ("peaked", 9, -4), ("dirichlet", 30, -15)])
    models = rng.integers(0, 3, size=ldem.block_grid(shape, block), dtype=np.int32)
    y = sample_symbols(rng, d, shape, block, models, wide=1e-4, extreme=1e-5, near=False)
    data = ldem.encode(y, models, d, block, threads=1)
    _, _, _, S, _, lengths = parse_header(data, y.size)
    assert S == 4 and len(lengths) == 4
    assert ldem.encode(y, models, d, block, threads=2) == data
    assert ldem.encode(y, models, d, block) == data
    for t in (1, 2, None):
        np.testing.assert_array_equal(ldem.decode(data, models, d, shape, block, threads=t), y)
    check_size(data, chosen_cost(y, models, d, block), y.size)
    # Same with a checksum and a wide-lane layout (generic path).
    for kw in ({"checksum": True}, {"lanes": 32, "segment_size": 2**16}):
        a = ldem.encode(y, models, d, block, threads=1, **kw)
        assert ldem.encode(y, models, d, block, threads=2, **kw) == a
        np.testing.assert_array_equal(ldem.decode(a, models, d, shape, block, threads=2), y)
        check_size(a, chosen_cost(y, models, d, block), y.size)
    # A truncated last segment and a damaged middle of the payload are caught.
    with pytest.raises(ldem.DecodeError):
        ldem.decode(data[:-4], models, d, shape, block)
    bad = bytearray(data)
    bad[len(data) // 2] ^= 0x10  # among modelled symbols (escapes are 1e-4 of them)
    with pytest.raises(ldem.DecodeError):
        ldem.decode(bytes(bad), models, d, shape, block, threads=2)


@pytest.mark.parametrize("lanes", [1, 8, 32])
@pytest.mark.parametrize("segment_size", [256, 2**17])
def test_lanes_and_segment_size_variants(lanes, segment_size):
    d, y, models, block = fixed_case(seed=lanes + segment_size, shape=(2, 33, 41), block=(5, 7))
    data = ldem.encode(y, models, d, block, lanes=lanes, segment_size=segment_size)
    checksum, got_lanes, shift, S, _, _ = parse_header(data, y.size)
    assert (checksum, got_lanes, 1 << shift) == (False, lanes, segment_size)
    assert S == max(1, y.size // segment_size)
    np.testing.assert_array_equal(ldem.decode(data, models, d, y.shape, block), y)
    check_size(data, chosen_cost(y, models, d, block), y.size)
    # The layout changes the stream but never the decoded symbols.
    assert data != ldem.encode(y, models, d, block)


def test_checksum_round_trip_and_every_payload_bit_flip_is_caught():
    d, y, models, block = fixed_case(seed=3, shape=(2, 12, 14), block=(4, 4), wide=0.05)
    data = ldem.encode(y, models, d, block, checksum=True)
    plain = ldem.encode(y, models, d, block)
    assert data[2] & 1 and not plain[2] & 1
    assert len(data) == len(plain) + 4 and data[8:] == plain[4:]  # 1 segment: CRC right after the header
    np.testing.assert_array_equal(ldem.decode(data, models, d, y.shape, block), y)
    # The CRC covers the header bytes before it and the payload.
    assert int.from_bytes(data[4:8], "little") == zlib.crc32(data[8:], zlib.crc32(data[:4]))
    for i in range(len(data)):  # header, the CRC itself and every payload byte
        for bit in range(8):
            bad = bytearray(data)
            bad[i] ^= 1 << bit
            with pytest.raises(ldem.DecodeError):
                ldem.decode(bytes(bad), models, d, y.shape, block)


def test_without_escapes_every_payload_bit_flip_is_caught():
    # Every state change propagates to the final-state check when all symbols are
    # modelled (no raw escape bits), for each lane layout.
    for lanes, precision in ((1, 12), (4, 16), (32, 13)):
        rng = np.random.default_rng(lanes)
        d = ldem.Dictionary.from_pmfs([rng.dirichlet(np.ones(n)) for n in (5, 17, 40)], [-2, -8, -20],
                                      precision=precision)
        y = rng.integers(-2, 3, size=(2, 20, 20)).astype(np.int32)  # inside every support
        models = rng.integers(0, 3, size=(2, 5, 5), dtype=np.int32)
        data = ldem.encode(y, models, d, (4, 4), lanes=lanes)
        for i in range(4, len(data)):
            for bit in range(8):
                bad = bytearray(data)
                bad[i] ^= 1 << bit
                with pytest.raises(ldem.DecodeError):
                    ldem.decode(bytes(bad), models, d, y.shape, (4, 4))


def test_escape_bit_flips_only_change_escaped_values():
    # Raw escape bits carry no redundancy: a flip there may decode to another escaped
    # value (use checksum=True to detect it). Nothing else may change silently.
    d, y, models, block = fixed_case(seed=4, shape=(2, 10, 12), block=(3, 4), wide=0.2, extreme=0.05)
    data = ldem.encode(y, models, d, block)
    per_symbol = np.repeat(np.repeat(models, 3, axis=1), 4, axis=2)[:, :10, :12]
    lo = np.array([d.support(k)[0] for k in range(d.num_models)])[per_symbol]
    hi = np.array([d.support(k)[1] for k in range(d.num_models)])[per_symbol]
    escaped = (y < lo) | (y >= hi)
    assert escaped.any()
    raised = 0
    for i in range(4, len(data)):
        for bit in range(8):
            bad = bytearray(data)
            bad[i] ^= 1 << bit
            out = decode_or_error(bytes(bad), models, d, y.shape, block)
            if out is None:
                raised += 1
                continue
            changed = out != y
            assert not (changed & ~escaped).any()
            assert ((out[changed] < lo[changed]) | (out[changed] >= hi[changed])).all()
    assert raised > (len(data) - 4) * 8 // 2


@pytest.mark.parametrize("shape", [(0, 0, 0), (0, 5, 5), (3, 0, 7), (2, 6, 0), (1, 0, 0)])
@pytest.mark.parametrize("checksum", [False, True])
def test_empty_tensors(shape, checksum):
    d = ldem.Dictionary.from_pmfs([[0.5, 0.5]], [0])
    block = (2, 3)
    y = np.zeros(shape, np.int32)
    models = np.zeros(ldem.block_grid(shape, block), np.int32)
    data = ldem.encode(y, models, d, block, checksum=checksum)
    # No segment: the header, then (if checksummed) the CRC-32 of the header bytes.
    header = b"LD" + bytes([0x10 | checksum, 2 << 5 | 17])
    assert data == header + zlib.crc32(header).to_bytes(4, "little") * checksum
    out = ldem.decode(data, models, d, shape, block)
    assert out.shape == shape and out.dtype == np.int32
    for junk in (b"\x00", b"\x00" * 4, b"\x00" * 12):
        with pytest.raises(ldem.DecodeError):
            ldem.decode(data + junk, models, d, shape, block)
    with pytest.raises(ldem.DecodeError):
        ldem.decode(data[:3], models, d, shape, block)
    c = ldem.block_costs(y, d, block)
    assert c.shape == ldem.block_grid(shape, block) + (1,) and c.dtype == np.float64


def test_int32_extremes_and_single_symbol_models_round_trip():
    d = ldem.Dictionary.from_pmfs([[1.0], [1.0], [0.5, 0.5]], [INT32_MIN, INT32_MAX, 0], precision=12)
    vals = [INT32_MIN, INT32_MIN + 1, -1, 0, 1, 2, INT32_MAX - 1, INT32_MAX]
    y = np.array(vals * 3, np.int32).reshape(3, 1, len(vals))
    models = np.arange(3, dtype=np.int32).reshape(3, 1, 1)
    data = ldem.encode(y, models, d, (1, len(vals)))
    np.testing.assert_array_equal(ldem.decode(data, models, d, y.shape, (1, len(vals))), y)
    # The mode of a single-symbol model costs log2(4096 / 4095) bits.
    z = np.full((1, 64, 64), INT32_MIN, np.int32)
    c = ldem.block_costs(z, d, (64, 64))
    assert c[0, 0, 0, 0] == pytest.approx(4096 * (12 - math.log2(4095)), rel=1e-12)
    # Under model 1 (support [INT32_MAX]): escape slot (freq 1, 12 bits) + 7 + bit_length(2^32 - 1) - 1.
    assert c[0, 0, 0, 1] == 4096 * (12 + 7 + 31)
    data = ldem.encode(z, np.zeros((1, 1, 1), np.int32), d, (64, 64))
    assert len(data) == 4 + 8 * 4  # 1.45 bits of information: no word beyond the lane states
    np.testing.assert_array_equal(ldem.decode(data, np.zeros((1, 1, 1), np.int32), d, z.shape, (64, 64)), z)


# -- damaged streams ------------------------------------------------------------------------------

def _streams_for_damage():
    out = []
    for seed, kw, shape, block in [
        (10, {}, (2, 9, 13), (3, 5)),
        (11, {"checksum": True}, (1, 8, 8), (8, 8)),
        (12, {"segment_size": 256, "lanes": 8}, (2, 16, 24), (1, 1)),  # 3 segments
        (13, {"lanes": 1, "segment_size": 256}, (3, 10, 10), (4, 3)),
    ]:
        d, y, models, block = fixed_case(seed=seed, shape=shape, block=block, wide=0.05)
        out.append((ldem.encode(y, models, d, block, **kw), d, y, models, block))
    return out


DAMAGE = _streams_for_damage()


@pytest.mark.parametrize("which", range(len(DAMAGE)))
def test_every_truncation_raises_decode_error(which):
    data, d, y, models, block = DAMAGE[which]
    for cut in range(len(data)):
        with pytest.raises(ldem.DecodeError):
            ldem.decode(data[:cut], models, d, y.shape, block)


@pytest.mark.parametrize("which", range(len(DAMAGE)))
def test_appended_bytes_raise_decode_error(which):
    data, d, y, models, block = DAMAGE[which]
    rng = np.random.default_rng(which)
    for k in list(range(1, 13)) + [64, 1000]:
        for junk in (b"\x00" * k, rng.integers(0, 256, size=k, dtype=np.uint8).tobytes(), data[:k]):
            with pytest.raises(ldem.DecodeError):
                ldem.decode(data + junk, models, d, y.shape, block)


@pytest.mark.parametrize("which", range(len(DAMAGE)))
def test_single_bit_flips(which):
    data, d, y, models, block = DAMAGE[which]
    raised = 0
    for i in range(len(data)):
        for bit in range(8):
            bad = bytearray(data)
            bad[i] ^= 1 << bit
            raised += decode_or_error(bytes(bad), models, d, y.shape, block) is None
    assert raised > len(data) * 8 // 2


@FAST
@given(which=st.integers(0, len(DAMAGE) - 1), seed=st.integers(0, 2**32 - 1),
       flips=st.integers(2, 16), threads=st.sampled_from([1, 2]))
def test_multiple_bit_flips_and_overwrites(which, seed, flips, threads):
    data, d, y, models, block = DAMAGE[which]
    rng = np.random.default_rng(seed)
    bad = bytearray(data)
    for _ in range(flips):
        bad[int(rng.integers(len(bad)))] ^= 1 << int(rng.integers(8))
    decode_or_error(bytes(bad), models, d, y.shape, block, threads=threads)
    bad = bytearray(data)
    i = int(rng.integers(len(bad)))
    bad[i:i + flips] = rng.integers(0, 256, size=len(bad[i:i + flips]), dtype=np.uint8).tobytes()
    decode_or_error(bytes(bad), models, d, y.shape, block, threads=threads)


@FAST
@given(which=st.integers(0, len(DAMAGE) - 1), body=st.binary(max_size=300), keep_header=st.integers(0, 12))
def test_random_bytes(which, body, keep_header):
    data, d, y, models, block = DAMAGE[which]
    decode_or_error(body, models, d, y.shape, block)
    decode_or_error(data[:keep_header] + body, models, d, y.shape, block)  # valid header, random rest


def test_huge_and_unterminated_varint_lengths():
    data, d, y, models, block = DAMAGE[2]  # several segments: the header has varints
    _, _, _, S, header, _ = parse_header(data, y.size)
    assert S > 2
    for v in (b"\xff" * 9 + b"\x01", b"\xff" * 10, b"\xff" * 11, b"\x80" * 20, b"\xfc\xff\xff\xff\x0f",
              b"\xfc\xff\xff\xff\xff\xff\xff\xff\x7f", b"\x04", b"\x00"):
        for rest in (data[header:], data[5:], b""):
            with pytest.raises(ldem.DecodeError):
                ldem.decode(data[:4] + v + rest, models, d, y.shape, block)


def test_header_fields():
    data, d, y, models, block = DAMAGE[0]
    for b2 in [0x00, 0x20, 0xF0, 0x12, 0x14, 0x18]:  # versions 0, 2, 15; unknown flags
        with pytest.raises(ldem.DecodeError, match="version|flags"):
            ldem.decode(data[:2] + bytes([b2]) + data[3:], models, d, y.shape, block)
    for b3 in [2 << 5 | 7, 2 << 5 | 0, 6 << 5 | 17, 7 << 5 | 17]:  # segment shift < 8, lanes > 32
        with pytest.raises(ldem.DecodeError, match="parameters"):
            ldem.decode(data[:3] + bytes([b3]) + data[4:], models, d, y.shape, block)
    for magic in (b"ld", b"LE", b"\x00\x00", b"DL"):
        with pytest.raises(ldem.DecodeError, match="magic"):
            ldem.decode(magic + data[2:], models, d, y.shape, block)
    # Another lane count or checksum flag: never a clean decode of this stream.
    for b3 in [0 << 5 | 17, 1 << 5 | 17, 3 << 5 | 17, 5 << 5 | 17]:
        with pytest.raises(ldem.DecodeError):
            ldem.decode(data[:3] + bytes([b3]) + data[4:], models, d, y.shape, block)
    with pytest.raises(ldem.DecodeError):
        ldem.decode(data[:2] + bytes([0x11]) + data[3:], models, d, y.shape, block)


def test_stream_decoded_with_other_arguments():
    data, d, y, models, block = DAMAGE[0]
    C, H, W = y.shape
    rng = np.random.default_rng(0)
    # Another shape (same block): the symbol count or the model sequence changes.
    for shape in [(C, H + 1, W), (C, H, W - 1), (C + 1, H, W), (1, 1, 1), (C, H - 3, W + 2)]:
        m = rng.integers(0, d.num_models, size=ldem.block_grid(shape, block), dtype=np.int32)
        decode_or_error(data, m, d, shape, block)
    # Another model map.
    for _ in range(20):
        m = rng.integers(0, d.num_models, size=models.shape, dtype=np.int32)
        if (m != models).any():
            decode_or_error(data, m, d, y.shape, block)
    # Another dictionary: other tables, other precision, one model only.
    others = [fixed_case(seed=99, precision=p)[0] for p in (12, 14, 16)]
    others.append(ldem.Dictionary.from_pmfs([[1.0]] * d.num_models, [0] * d.num_models))
    for other in others:
        decode_or_error(data, np.minimum(models, other.num_models - 1), other, y.shape, block)
    # Another block size with the same grid shape.
    decode_or_error(data, models, d, y.shape, (block[0], block[1] + 1) if W > block[1] + 1 else block)
    # Examples where the mismatch is certainly detected (fixed seed, checked here):
    with pytest.raises(ldem.DecodeError):
        ldem.decode(data, models, d, (C, H - 1, W), block)  # same model map, fewer symbols
    with pytest.raises(ldem.DecodeError):
        ldem.decode(data, (models + 1) % d.num_models, d, y.shape, block)
    with pytest.raises(ldem.DecodeError):
        ldem.decode(data, models, others[0], y.shape, block)


# -- block costs -----------------------------------------------------------------------------------

def ref_block_costs(y, d, block):
    """Pure-numpy reference: per block, the sorted distinct values and their counts;
    a value costs costs(k)[v - lo] inside the support, else the escape slot plus
    7 + bit_length(dist + 1) - 1 raw bits (tables.h). Summed in ascending value order."""
    C, H, W = y.shape
    bh, bw = block
    _, nby, nbx = ldem.block_grid(y.shape, block)
    K = d.num_models
    out = np.zeros((C, nby, nbx, K))
    tables = [(d.support(k), d.costs(k)) for k in range(K)]
    for c in range(C):
        for by in range(nby):
            for bx in range(nbx):
                vals, cnts = np.unique(y[c, by * bh:(by + 1) * bh, bx * bw:(bx + 1) * bw], return_counts=True)
                for k, ((lo, hi), costs) in enumerate(tables):
                    bits = 0.0
                    for v, cnt in zip(vals.tolist(), cnts.tolist()):
                        if lo <= v < hi:
                            sc = float(costs[v - lo])
                        else:
                            dist = lo - 1 - v if v < lo else v - hi
                            sc = float(costs[hi - lo]) + (7 + (dist + 1).bit_length() - 1)
                        bits += cnt * sc
                    out[c, by, bx, k] = bits
    return out


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases(max_c=3, max_hw=14, max_models=5), threads=st.sampled_from([1, 2, None]))
def test_block_costs_match_reference(case, threads):
    d, y, models, block = case
    c = ldem.block_costs(y, d, block, threads=threads)
    assert c.dtype == np.float64
    assert c.shape == ldem.block_grid(y.shape, block) + (d.num_models,)
    np.testing.assert_array_equal(c, ref_block_costs(y, d, block))


def test_block_costs_escape_rule_by_hand():
    d = ldem.Dictionary.from_frequencies([[2048, 1024]], [10], precision=12, escape=1024)
    # support [10, 12): costs 1, 2; escape slot 2 bits.
    # distance d past the edge -> 7 + bit_length(d + 1) - 1 raw bits
    cases = {10: 1.0, 11: 2.0, 12: 2 + 7 + 0, 9: 2 + 7 + 0, 13: 2 + 7 + 1, 8: 2 + 7 + 1, 14: 2 + 7 + 1,
             15: 2 + 7 + 2, 5: 2 + 7 + 2, 4: 2 + 7 + 2, 3: 2 + 7 + 2, 2: 2 + 7 + 3,
             INT32_MAX: 2 + 7 + 30,   # d + 1 = 2^31 - 12
             INT32_MIN: 2 + 7 + 31}   # d + 1 = 2^31 + 10
    for v, bits in cases.items():
        y = np.array([[[v]]], np.int32)
        assert ldem.block_costs(y, d, (1, 1))[0, 0, 0, 0] == bits, v


def test_block_costs_layout_and_partial_blocks():
    d = ldem.Dictionary.from_frequencies([[2048, 2048], [1024, 3072]], [0, 0], precision=12, escape=[0, 0])
    # escape count 0 is re-quantized; read the real tables back
    y = np.zeros((2, 5, 7), np.int32)
    y[1, 4, 6] = 1
    c = ldem.block_costs(y, d, (2, 3))
    assert c.shape == (2, 3, 3, 2)
    zero = d.costs(0)[0], d.costs(1)[0]
    # Block (0, 2, 2) is the 1 x 1 corner: one symbol.
    assert c[0, 2, 2].tolist() == [zero[0], zero[1]]
    assert c[0, 0, 0].tolist() == [6 * zero[0], 6 * zero[1]]
    assert c[1, 2, 2].tolist() == [d.costs(0)[1], d.costs(1)[1]]
    assert c[0, 1, 2].tolist() == [2 * zero[0], 2 * zero[1]]  # 2 rows x 1 column


# -- argument errors -------------------------------------------------------------------------------

def _ok():
    d = ldem.Dictionary.from_pmfs([[0.2, 0.3, 0.5], [0.9, 0.1]], [-1, 0])
    y = np.zeros((2, 5, 7), np.int32)
    m = np.zeros((2, 3, 3), np.int32)
    return d, y, m, (2, 3)


@pytest.mark.parametrize("dtype", [np.int64, np.int16, np.uint32, np.float32, np.float64])
def test_symbols_dtype_is_a_type_error(dtype):
    d, y, m, block = _ok()
    with pytest.raises(TypeError, match="symbols"):
        ldem.encode(y.astype(dtype), m, d, block)
    with pytest.raises(TypeError, match="symbols"):
        ldem.block_costs(y.astype(dtype), d, block)


def test_symbols_not_an_array_or_wrong_ndim():
    d, y, m, block = _ok()
    with pytest.raises(TypeError, match="symbols"):
        ldem.encode(y.tolist(), m, d, block)
    for bad in (y[0], y[None], y.reshape(-1)):
        with pytest.raises(ValueError, match="symbols"):
            ldem.encode(bad, m, d, block)
        with pytest.raises(ValueError, match="symbols"):
            ldem.block_costs(bad, d, block)


def test_non_contiguous_symbols_are_coded_as_their_values():
    d, y, m, block = _ok()
    big = np.arange(2 * 10 * 14, dtype=np.int32).reshape(2, 10, 14) % 3 - 1
    view = big[:, ::2, ::2]
    data = ldem.encode(view, m, d, block)
    assert data == ldem.encode(np.ascontiguousarray(view), m, d, block)
    np.testing.assert_array_equal(ldem.decode(data, m, d, view.shape, block), view)


def test_models_errors():
    d, y, m, block = _ok()
    for bad in (m[:, :2], m[None], m[0], np.zeros((2, 3, 4), np.int32)):
        with pytest.raises(ValueError, match="models"):
            ldem.encode(y, bad, d, block)
        with pytest.raises(ValueError, match="models"):
            ldem.decode(b"LD\x10\x51", bad, d, y.shape, block)
    for bad_index in (2, -1, 1000, INT32_MAX, INT32_MIN):
        bad = m.copy()
        bad[1, 2, 0] = bad_index
        with pytest.raises(ValueError, match="models"):
            ldem.encode(y, bad, d, block)
        with pytest.raises(ValueError, match="models"):
            ldem.decode(ldem.encode(y, m, d, block), bad, d, y.shape, block)
    with pytest.raises(ValueError, match="models"):
        ldem.encode(y, m.astype(np.int64) + 2**40, d, block)
    with pytest.raises(TypeError, match="models"):
        ldem.encode(y, m.astype(np.float64), d, block)
    # Any integer dtype and nested lists name the same indices.
    ref = ldem.encode(y, m, d, block)
    assert ldem.encode(y, m.astype(np.uint8), d, block) == ref
    assert ldem.encode(y, m.tolist(), d, block) == ref


@pytest.mark.parametrize("block, exc", [
    ((0, 2), ValueError), ((2, -1), ValueError), ((1, 2, 3), TypeError), (2, TypeError),
    ((2.0, 2), TypeError), (None, TypeError), (("2", 2), TypeError), ((True, 2), TypeError),
])
def test_bad_block(block, exc):
    d, y, m, _ = _ok()
    with pytest.raises(exc, match="block"):
        ldem.encode(y, m, d, block)
    with pytest.raises(exc, match="block"):
        ldem.decode(b"LD\x10\x51", m, d, y.shape, block)
    with pytest.raises(exc, match="block"):
        ldem.block_costs(y, d, block)


@pytest.mark.parametrize("threads, exc", [
    (0, ValueError), (-1, ValueError), (1.0, TypeError), ("2", TypeError), (True, TypeError),
])
def test_bad_threads(threads, exc):
    d, y, m, block = _ok()
    data = ldem.encode(y, m, d, block)
    with pytest.raises(exc, match="threads"):
        ldem.encode(y, m, d, block, threads=threads)
    with pytest.raises(exc, match="threads"):
        ldem.decode(data, m, d, y.shape, block, threads=threads)
    with pytest.raises(exc, match="threads"):
        ldem.block_costs(y, d, block, threads=threads)


def test_more_threads_than_work_is_fine():
    d, y, m, block = _ok()
    data = ldem.encode(y, m, d, block, threads=64)
    assert data == ldem.encode(y, m, d, block, threads=1)
    np.testing.assert_array_equal(ldem.decode(data, m, d, y.shape, block, threads=64), y)


@pytest.mark.parametrize("data", ["LD\x10\x51", None, 123, [76, 68, 16, 81], np.frombuffer(b"LD\x10\x51", np.uint8)])
def test_data_must_be_bytes(data):
    d, y, m, block = _ok()
    with pytest.raises(TypeError, match="data"):
        ldem.decode(data, m, d, y.shape, block)


def test_bytes_like_data_is_accepted():
    d, y, m, block = _ok()
    data = ldem.encode(y, m, d, block)
    for form in (bytearray(data), memoryview(data)):
        np.testing.assert_array_equal(ldem.decode(form, m, d, y.shape, block), y)


@pytest.mark.parametrize("shape, exc", [((-1, 5, 7), ValueError), ((5, 7), TypeError), (None, TypeError),
                                        (("a", 5, 7), TypeError)])
def test_bad_shape(shape, exc):
    d, y, m, block = _ok()
    with pytest.raises(exc, match="shape"):
        ldem.decode(ldem.encode(y, m, d, block), m, d, shape, block)


def test_bad_dictionary():
    d, y, m, block = _ok()
    data = ldem.encode(y, m, d, block)
    for bad in ("d", None, d.to_bytes(), d._impl):
        with pytest.raises(TypeError, match="dictionary"):
            ldem.encode(y, m, bad, block)
        with pytest.raises(TypeError, match="dictionary"):
            ldem.decode(data, m, bad, y.shape, block)
        with pytest.raises(TypeError, match="dictionary"):
            ldem.block_costs(y, bad, block)


@pytest.mark.parametrize("lanes", [0, 3, 6, 64, -4, 2**40])
def test_bad_lanes(lanes):
    d, y, m, block = _ok()
    with pytest.raises(ValueError, match="lanes"):
        ldem.encode(y, m, d, block, lanes=lanes)


@pytest.mark.parametrize("segment_size", [0, 1, 128, 255, 1000, 2**32, -256])
def test_bad_segment_size(segment_size):
    d, y, m, block = _ok()
    with pytest.raises(ValueError, match="segment_size"):
        ldem.encode(y, m, d, block, segment_size=segment_size)


def test_oversized_shape_is_rejected_before_allocation():
    d, _, _, _ = _ok()
    m = np.zeros((1, 1, 1), np.int32)
    with pytest.raises(ValueError, match="shape"):
        ldem.decode(b"LD\x10\x51", m, d, (2**20, 2**20, 2**20), (2**20, 2**20))


# -- misc -----------------------------------------------------------------------------------------

def test_decode_error_type():
    assert issubclass(ldem.DecodeError, ValueError)
    from ldem.errors import DecodeError
    assert DecodeError is ldem.DecodeError
    d, y, m, block = _ok()
    with pytest.raises(ldem.DecodeError, match="magic"):
        ldem.decode(b"junk", m, d, y.shape, block)


def test_build_info_and_cuda_available():
    info = ldem.build_info()
    assert isinstance(info, dict)
    assert {"version", "compiler", "simd", "cpu_simd", "kernels", "cuda", "format_version", "hardware_threads",
            "lanes"} <= set(info)
    levels = ["scalar", "sse2", "avx2", "avx512"]
    assert levels.index(info["simd"]) <= levels.index(info["cpu_simd"])
    assert set(info["kernels"]) == {"encoder", "selection", "pooling", "histogram_counts", "histogram_costs"}
    assert (info["kernels"]["encoder"] == "avx512-paired") == (info["simd"] == "avx512")
    assert info["version"] == ldem.__version__
    assert isinstance(info["cuda"], bool)
    assert info["format_version"] == 1
    assert isinstance(info["compiler"], str) and info["compiler"]
    assert isinstance(info["hardware_threads"], int) and info["hardware_threads"] >= 1
    avail = ldem.cuda_available()
    assert isinstance(avail, bool)
    if not info["cuda"]:
        assert avail is False


def test_block_grid():
    assert ldem.block_grid((192, 32, 48), (16, 16)) == (192, 2, 3)
    assert ldem.block_grid((3, 0, 5), (2, 2)) == (3, 0, 3)
    assert ldem.block_grid((1, 7, 7), (8, 1)) == (1, 1, 7)
    with pytest.raises(ValueError, match="block"):
        ldem.block_grid((1, 1, 1), (0, 1))


def test_argument_types_are_checked_strictly():
    d = ldem.Dictionary.from_pmfs([[0.5, 0.5]], [0])
    y = np.zeros((1, 2, 2), np.int32)
    m = np.zeros((1, 1, 1), np.int32)
    data = ldem.encode(y, m, d, (2, 2))
    with pytest.raises(TypeError, match="shape"):
        ldem.decode(data, m, d, (1.0, 2, 2), (2, 2))
    with pytest.raises(ValueError, match="threads"):
        ldem.encode(y, m, d, (2, 2), threads=2**40)
    for lanes in (4.0, True):
        with pytest.raises(TypeError, match="lanes"):
            ldem.encode(y, m, d, (2, 2), lanes=lanes)


def test_huge_shape_with_short_stream_fails_before_allocating():
    d = ldem.Dictionary.from_pmfs([[0.5, 0.5]], [0])
    m = np.zeros((1, 1, 1), np.int32)
    with pytest.raises(ldem.DecodeError, match="too short"):
        ldem.decode(b"LD\x10\x51", m, d, (1, 2**20, 2**20), (2**20, 2**20))
    data = ldem.encode(np.zeros((1, 8, 8), np.int32), m, d, (8, 8))
    with pytest.raises(ldem.DecodeError, match="too short"):
        ldem.decode(data, m, d, (1, 2**20, 2**20), (2**20, 2**20))


def test_checksum_covers_the_header():
    d = ldem.Dictionary.from_pmfs([[0.5, 0.5]], [0])
    y = np.zeros((1, 4, 4), np.int32)
    m = np.zeros((1, 1, 1), np.int32)
    data = bytearray(ldem.encode(y, m, d, (4, 4), checksum=True))
    data[3] ^= 0x02  # segment size 2^17 -> 2^19: still one segment, caught by the CRC
    with pytest.raises(ldem.DecodeError, match="checksum"):
        ldem.decode(bytes(data), m, d, y.shape, (4, 4))


def test_threads_after_fork_do_not_hang():
    """A forked child (multiprocessing, data loaders) inherits no pool threads."""
    import multiprocessing as mp
    d = ldem.Dictionary.from_pmfs([[0.25, 0.5, 0.25]], [-1])
    y = np.random.default_rng(0).integers(-1, 2, (1, 700, 700)).astype(np.int32)
    m = np.zeros((1, 1, 1), np.int32)
    expected = ldem.encode(y, m, d, (700, 700), threads=2)  # starts the pool in this process
    ctx = mp.get_context("fork")
    with ctx.Pool(1) as pool:
        got = pool.apply_async(ldem.encode, (y, m, d, (700, 700)), {"threads": 2}).get(timeout=60)
    assert got == expected


def test_arrays_from_pickles_and_buffers_are_accepted():
    import pickle
    d = ldem.Dictionary.from_pmfs([[0.5, 0.5]], [0])
    y = pickle.loads(pickle.dumps(np.zeros((1, 3, 3), np.int32)))
    m = np.frombuffer(np.zeros(1, np.int32).tobytes(), dtype="<i4").reshape(1, 1, 1)
    data = ldem.encode(y, m, d, (3, 3))
    np.testing.assert_array_equal(ldem.decode(data, m, d, y.shape, (3, 3)), y)
    with pytest.raises(TypeError):  # non-native byte order is not int32 here
        ldem.encode(y.astype(">i4"), m, d, (3, 3))


# -- the AVX-512 encoder writes the scalar encoder's bytes ----------------------------------------

needs_vector_encoder = pytest.mark.skipif(
    ldem.build_info()["simd"] != "avx512",
    reason="no AVX-512 here (CPU or LDEM_SIMD): only the scalar encoder runs")


def scalar_then_vector(*args, **kwargs):
    """ldem.encode with the scalar encoder forced, then with the vector one."""
    from ldem import _core
    _core._set_vector_encoder(False)
    try:
        scalar = ldem.encode(*args, **kwargs)
    finally:
        _core._set_vector_encoder(True)
    return scalar, ldem.encode(*args, **kwargs)


@needs_vector_encoder
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases(max_hw=60), threads=st.sampled_from([1, 2]), checksum=st.booleans())
def test_vector_encoder_writes_the_scalar_bytes(case, threads, checksum):
    d, y, models, block = case
    # 256-symbol segments: pairs of segments (the vector encoder's unit) in small tensors.
    scalar, vector = scalar_then_vector(y, models, d, block, threads=threads, checksum=checksum, segment_size=256)
    assert vector == scalar
    np.testing.assert_array_equal(ldem.decode(vector, models, d, y.shape, block), y)


@needs_vector_encoder
@pytest.mark.parametrize("precision", [12, 13, 16])
@pytest.mark.parametrize("shape,block,segment_size", [
    ((192, 32, 48), (32, 48), 2**17),   # workload A's layout: 2 segments, one model per plane
    ((6, 41, 77), (41, 77), 256),        # odd widths: quads straddle planes and runs; 47 segments
    ((5, 64, 64), (8, 8), 1024),         # small blocks: many short runs
    ((3, 50, 70), (50, 1), 512),         # column blocks: runs of one symbol
])
def test_vector_encoder_layouts(precision, shape, block, segment_size):
    from ldem import _core
    rng = np.random.default_rng(precision)
    # Peaked and flat tables (frequencies near 1 and near 2^P), escapes and int32 extremes.
    d = make_dictionary(rng, precision, [("peaked", 9, -4), ("laplace", 65, -32), ("single", 1, 0),
                                         ("dirichlet", 200, -100)])
    models = rng.integers(0, 4, size=ldem.block_grid(shape, block), dtype=np.int32)
    y = sample_symbols(rng, d, shape, block, models, wide=1e-3, extreme=1e-4, near=False)
    before = _core._vector_encoder_quads()
    for threads in (1, 2):
        scalar, vector = scalar_then_vector(y, models, d, block, threads=threads, segment_size=segment_size)
        assert vector == scalar
        np.testing.assert_array_equal(ldem.decode(vector, models, d, shape, block), y)
    if block[1] > 1:
        assert _core._vector_encoder_quads() > before, "the vector loop coded nothing"


@needs_vector_encoder
@pytest.mark.parametrize("precision", [12, 13, 16])
def test_vector_encoder_ignores_the_floating_point_rounding_mode(precision):
    import ctypes
    import ctypes.util
    libm = ctypes.CDLL(ctypes.util.find_library("m"))
    rng = np.random.default_rng(precision)
    d = make_dictionary(rng, precision, [("laplace", 65, -32), ("peaked", 9, -4), ("dirichlet", 120, -60)])
    shape, block = (6, 96, 80), (96, 80)  # 46,080 symbols in 256-symbol segments: many pairs
    models = rng.integers(0, 3, size=ldem.block_grid(shape, block), dtype=np.int32)
    y = sample_symbols(rng, d, shape, block, models, wide=1e-3, extreme=0, near=False)
    want, _ = scalar_then_vector(y, models, d, block, threads=1, segment_size=256)
    for mode in (0x400, 0x800, 0xC00):  # x86 FE_DOWNWARD, FE_UPWARD, FE_TOWARDZERO
        assert libm.fesetround(mode) == 0
        try:
            got = ldem.encode(y, models, d, block, threads=1, segment_size=256)
        finally:
            libm.fesetround(0)
        assert got == want


# -- hostile input: bounded reads, models written during a call ------------------------------------

def _run_isolated(code: str, cwd, timeout: int = 300):
    """Runs `code` in a fresh interpreter (a regression that crashes it cannot take the test
    run down); returns (returncode, output). `cwd` must not hold an ldem source tree: the
    child imports the same ldem as the tests (installed, or named by PYTHONPATH)."""
    import subprocess
    import sys
    p = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=timeout, cwd=cwd)
    return p.returncode, p.stdout


def test_runs_shorter_than_four_symbols_cannot_read_past_the_stream(tmp_path):
    """1x2 blocks with alternating models: runs of 2 symbols once skipped the decoder's
    bound check, and a few hundred KB of zeros walked the reader gigabytes past the buffer."""
    rc, out = _run_isolated("""
import numpy as np, ldem
N = 1 << 24
d = ldem.Dictionary.from_frequencies([[1] * 4095] * 2, offsets=[0, 0], precision=12, escape=1)
m = np.tile(np.int32([0, 1]), N // 4).reshape(1, 1, N // 2)
data = b"LD\\x10" + bytes([2 << 5 | 31]) + (1 << 31).to_bytes(8, "little") * 4 + bytes(262144)
try:
    ldem.decode(data, m, d, (1, 1, N), block=(1, 2), threads=1)
except ldem.DecodeError as e:
    print("DecodeError:", e)
""", tmp_path)
    assert rc == 0, out
    assert "DecodeError: stream truncated" in out


@pytest.mark.parametrize("block", [(1, 1), (1, 2), (1, 3), (2, 1)])
@pytest.mark.parametrize("lanes", [4, 1, 8])
def test_narrow_blocks_truncated_and_spliced_streams(block, lanes):
    rng = np.random.default_rng(block[1] * 10 + lanes)
    d = ldem.Dictionary.from_pmfs([[0.1, 0.2, 0.4, 0.2, 0.1], [0.7, 0.2, 0.1], [0.05] * 20],
                                  offsets=[-2, 0, -10])
    shape = (2, 6, 41)
    y = rng.integers(-3, 4, shape).astype(np.int32)
    y.flat[rng.integers(y.size, size=5)] = 10**6  # escapes
    grid = ldem.block_grid(shape, block)
    m = (np.arange(math.prod(grid)) % 3).astype(np.int32).reshape(grid)  # alternating models
    data = ldem.encode(y, m, d, block, lanes=lanes, segment_size=256)
    assert (ldem.decode(data, m, d, shape, block) == y).all()
    other = ldem.encode(rng.integers(-3, 4, shape).astype(np.int32), m, d, block, lanes=lanes, segment_size=256)
    for cut in range(len(data)):
        with pytest.raises(ldem.DecodeError):
            ldem.decode(data[:cut], m, d, shape, block)
        spliced = data[:cut] + other[cut:]
        if spliced != data:
            decode_or_error(spliced, m, d, shape, block)


def test_models_written_by_another_thread_during_encode_and_decode(tmp_path):
    """The model map is validated, then read with the GIL released: another thread writing
    out-of-range indices into it must give an error (or a wrong result), never a crash."""
    rc, out = _run_isolated("""
import sys, threading, numpy as np, ldem
sys.setswitchinterval(1e-5)
d = ldem.Dictionary.from_pmfs([[0.25, 0.5, 0.25], [0.5, 0.5]], offsets=[-1, 0])
rng = np.random.default_rng(0)
results = {"ok": 0, "error": 0}
for block in [(1, 1), (1, 3), (4, 4)]:
    shape = (2, 128, 192)
    y = rng.integers(-1, 2, shape).astype(np.int32)
    grid = ldem.block_grid(shape, block)
    clean = (np.arange(np.prod(grid)) % 2).astype(np.int32).reshape(grid)
    data = ldem.encode(y, clean, d, block)
    m = clean.copy()
    stop = threading.Event()
    def mutate():  # one bad index at a time, put back at once: checks often pass
        i = 0
        while not stop.is_set():
            k = (i * 7919) % m.size
            m.flat[k] = 1 << 30 if i & 1 else -7
            m.flat[k] = clean.flat[k]
            i += 1
    t = threading.Thread(target=mutate)
    t.start()
    try:
        for _ in range(150):
            for call in (lambda: ldem.encode(y, m, d, block, threads=2),
                         lambda: ldem.decode(data, m, d, shape, block, threads=2)):
                try:
                    call()
                    results["ok"] += 1
                except ValueError:  # ldem.DecodeError is a ValueError
                    results["error"] += 1
    finally:
        stop.set()
        t.join()
print("calls", results)
""", tmp_path, timeout=600)
    assert rc == 0, out
    assert "calls" in out


# -- torch tensors ---------------------------------------------------------------------------------

def test_cpu_tensors_are_read_in_place():
    torch = pytest.importorskip("torch")
    from ldem._args import as_array, check_models, check_symbols
    d, y, m, block = fixed_case(seed=11)
    t, tm = torch.from_numpy(y.copy()), torch.from_numpy(m.copy())
    # The array the core is given is the tensor's own memory.
    assert np.shares_memory(check_symbols(t), t.numpy())
    assert np.shares_memory(check_models(tm, m.shape), tm.numpy())
    assert np.shares_memory(as_array(t.requires_grad_(False), "t"), t.numpy())
    data = ldem.encode(t, tm, d, block)
    assert data == ldem.encode(y, m, d, block)
    np.testing.assert_array_equal(ldem.decode(data, tm, d, y.shape, block), y)
    np.testing.assert_array_equal(ldem.block_costs(t, d, block), ldem.block_costs(y, d, block))
    assert ldem.encode_batch([t, t], tm, d, block=block) == [data, data]
    assert ldem.encode_batch(torch.stack([t, t]), torch.stack([tm, tm]), d, block=block) == [data, data]


def test_cpu_tensors_behave_as_arrays_of_their_dtype():
    torch = pytest.importorskip("torch")
    d, y, m, block = fixed_case(seed=12)
    for dtype in (torch.int64, torch.int16, torch.float32, torch.uint8, torch.bool):
        t = torch.from_numpy(y).to(dtype)
        with pytest.raises(TypeError, match="symbols must have dtype int32"):
            ldem.encode(t, m, d, block)
        with pytest.raises(TypeError, match="latents\\[0\\] must have dtype int32"):
            ldem.encode_batch([t], m, d, block=block)
    with pytest.raises(TypeError, match="symbols"):
        ldem.encode(torch.from_numpy(y).to(torch.bfloat16), m, d, block)
    # A model map of another integer dtype is converted, as numpy's is; floats are refused.
    data = ldem.encode(y, m, d, block)
    assert ldem.encode(y, torch.from_numpy(m).long(), d, block) == data
    with pytest.raises(TypeError, match="models must hold integer"):
        ldem.encode(y, torch.from_numpy(m).float(), d, block)
    # Non-contiguous tensors are coded as their values; gradient tracking changes nothing.
    wide = torch.from_numpy(np.repeat(y, 2, axis=2))
    assert ldem.encode(wide[:, :, ::2], m, d, block) == data
    with pytest.raises(TypeError, match="symbols must have dtype int32, got float32"):
        ldem.encode(torch.zeros(y.shape, requires_grad=True), m, d, block)


def test_tensors_on_another_device_are_refused_by_the_batch_api():
    torch = pytest.importorskip("torch")
    d, y, m, block = fixed_case(seed=13)
    t = torch.from_numpy(y).to("meta")
    with pytest.raises(TypeError, match="CPU tensor"):
        ldem.encode_batch([t], m, d, block=block)
    with pytest.raises(TypeError, match="CPU tensor"):
        ldem.block_costs(t, d, block)


# -- batches ---------------------------------------------------------------------------------------

def _batch(n=6, seed=20, block=(4, 3), K=5):
    rng = np.random.default_rng(seed)
    d = make_dictionary(rng, 14, [(KINDS[k % len(KINDS)], int(rng.integers(1, 60)), int(rng.integers(-30, 31)))
                                  for k in range(K)])
    ys, ms = [], []
    for _ in range(n):
        shape = (int(rng.integers(1, 5)), int(rng.integers(0, 40)), int(rng.integers(1, 40)))
        m = rng.integers(0, K, size=ldem.block_grid(shape, block), dtype=np.int32)
        ys.append(sample_symbols(rng, d, shape, block, m, 0.01, 0.002, near=False))
        ms.append(m)
    return d, ys, ms, block


@pytest.mark.parametrize("threads", [1, 2, 3, None])
@pytest.mark.parametrize("checksum", [False, True])
def test_encode_batch_writes_the_bytes_of_encode(threads, checksum):
    d, ys, ms, block = _batch()
    streams = ldem.encode_batch(ys, ms, d, block=block, threads=threads, checksum=checksum)
    assert streams == [ldem.encode(y, m, d, block, checksum=checksum) for y, m in zip(ys, ms)]
    back = ldem.decode_batch(streams, ms, d, [y.shape for y in ys], block=block, threads=threads)
    for a, y in zip(back, ys):
        assert a.dtype == np.int32
        np.testing.assert_array_equal(a, y)


def test_batch_of_large_latents_and_layouts():
    rng = np.random.default_rng(21)
    d = make_dictionary(rng, 16, [("laplace", 40, -20), ("peaked", 10, -5)])
    ys = [rng.integers(-8, 9, size=(8, 128, 160), dtype=np.int32) for _ in range(3)]  # 163,840 symbols: 2 segments
    m = np.zeros(ldem.block_grid(ys[0].shape, (16, 16)), np.int32)
    for lanes, segment_size in ((4, 2**17), (8, 256), (1, 2**12)):
        kw = dict(lanes=lanes, segment_size=segment_size)
        streams = ldem.encode_batch(np.stack(ys), m, d, block=(16, 16), **kw)
        assert streams == [ldem.encode(y, m, d, (16, 16), **kw) for y in ys]
        for a, y in zip(ldem.decode_batch(streams, m, d, ys[0].shape, block=(16, 16)), ys):
            np.testing.assert_array_equal(a, y)


def test_empty_batch():
    d, _, _, block = _batch()
    assert ldem.encode_batch([], np.zeros((1, 1, 1), np.int32), d, block=block) == []
    assert ldem.decode_batch([], [], d, [], block=block) == []


@pytest.mark.parametrize("threads", [1, 2, None])
def test_batch_damaged_or_truncation_names_the_stream(threads):
    d, ys, ms, block = _batch(n=5, seed=24)
    assert min(y.size for y in ys) > 0
    shapes = [y.shape for y in ys]
    streams = ldem.encode_batch(ys, ms, d, block=block, checksum=True)
    for i in range(len(streams)):
        for bad in (streams[i][: len(streams[i]) // 2], streams[i][:3], b"", b"junk" * 9,
                    streams[i][:-1] + bytes([streams[i][-1] ^ 1])):
            damaged = list(streams)
            damaged[i] = bad
            # As decode() of that stream alone, the item's index before its message.
            with pytest.raises(ldem.DecodeError) as alone:
                ldem.decode(bad, ms[i], d, shapes[i], block)
            with pytest.raises(ldem.DecodeError, match=f"^item {i}: {re.escape(str(alone.value))}$"):
                ldem.decode_batch(damaged, ms, d, shapes, block=block, threads=threads)
    # The lowest damaged index is named.
    damaged = [s[:-2] for s in streams]
    with pytest.raises(ldem.DecodeError, match="^item 0: "):
        ldem.decode_batch(damaged, ms, d, shapes, block=block, threads=threads)
    # A stream decoded with another item's model map or shape fails (or decodes to other values).
    swapped = [streams[1], streams[0]] + streams[2:]
    try:
        out = ldem.decode_batch(swapped, ms, d, shapes, block=block, threads=threads)
    except ldem.DecodeError as e:
        assert str(e).startswith(("item 0: ", "item 1: "))
    else:
        assert any(not np.array_equal(a, y) for a, y in zip(out, ys))


def test_batch_argument_errors():
    d, ys, ms, block = _batch(n=3, seed=23)
    shapes = [y.shape for y in ys]
    streams = ldem.encode_batch(ys, ms, d, block=block)
    with pytest.raises(ValueError, match="models must be one array for all items or one per item"):
        ldem.encode_batch(ys, ms[:2], d, block=block)
    with pytest.raises(ValueError, match=r"models\[2\] must have shape"):
        ldem.encode_batch(ys, ms[:2] + [ms[0]], d, block=block)
    with pytest.raises(TypeError, match=r"latents\[1\] must be an int32 numpy array"):
        ldem.encode_batch([ys[0], ys[1].tolist()], ms[0], d, block=block)
    with pytest.raises(ValueError, match=r"latents\[0\] must have shape"):
        ldem.encode_batch([ys[0][0]], ms[0], d, block=block)
    with pytest.raises(TypeError, match="latents must be a list"):
        ldem.encode_batch((y for y in ys), ms, d, block=block)
    with pytest.raises(ValueError, match="latents must be a sequence"):
        ldem.encode_batch(ys[0], ms[0], d, block=block)  # one [C, H, W] array is not a batch
    with pytest.raises(ValueError, match=r"^item 1: models: index \d+ at block 0 is outside"):
        ldem.encode_batch(ys, [ms[0], ms[1] + d.num_models, ms[2]], d, block=block)
    with pytest.raises(ValueError, match=r"^item 2: models: index -\d+ at block 0 is outside"):
        ldem.decode_batch(streams, ms[:2] + [ms[2] - 1 - ms[2].max()], d, shapes, block=block)
    with pytest.raises(TypeError, match="threads"):
        ldem.encode_batch(ys, ms, d, block=block, threads=1.5)
    with pytest.raises(ValueError, match="lanes"):
        ldem.encode_batch(ys, ms, d, block=block, lanes=3)
    with pytest.raises(ValueError, match="shapes must be one"):
        ldem.decode_batch(streams, ms, d, shapes[:2], block=block)
    with pytest.raises(ValueError, match="one per item"):
        ldem.decode_batch(streams, ms[:2], d, shapes, block=block)
    with pytest.raises(TypeError, match=r"shapes\[1\] must be three ints"):
        ldem.decode_batch(streams, ms, d, [shapes[0], (1, 2), shapes[2]], block=block)
    with pytest.raises(ValueError, match=r"shapes\[0\] must be non-negative"):
        ldem.decode_batch(streams, ms, d, [(-1, 2, 3)] + shapes[1:], block=block)
    with pytest.raises(TypeError, match=r"streams\[2\] must be bytes"):
        ldem.decode_batch(streams[:2] + ["text"], ms, d, shapes, block=block)
    with pytest.raises(TypeError, match="streams must be a list"):
        ldem.decode_batch(streams[0], ms, d, shapes, block=block)
    with pytest.raises(TypeError, match="dictionary"):
        ldem.decode_batch(streams, ms, "d", shapes, block=block)
    # bytearray and memoryview streams are accepted.
    out = ldem.decode_batch([bytearray(streams[0]), memoryview(streams[1]), streams[2]], ms, d, shapes, block=block)
    for a, y in zip(out, ys):
        np.testing.assert_array_equal(a, y)
