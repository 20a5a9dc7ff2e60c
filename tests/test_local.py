"""LocalEntropyCoder, learn_dictionary and fit_global_models."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ldem
from ldem.testing import synthetic_latent


def laplace_models(C, scales, support=16, precision=16):
    v = np.arange(-support, support + 1)
    pmfs = [np.exp(-np.abs(v) / s) for s in scales]
    pmfs = [p / p.sum() * 0.999 for p in pmfs]
    return ldem.Dictionary.from_pmfs(pmfs, [-support] * C, precision)


@pytest.fixture(scope="module")
def regimes():
    """Global models fitted on other seeds of the same regime latent."""
    train = [synthetic_latent("regimes", (64, 32, 48), seed=s) for s in (1, 2, 3)]
    return ldem.fit_global_models(train), synthetic_latent("regimes", (64, 32, 48), seed=0)


@pytest.mark.parametrize("mode", ["global", "static", "local"])
def test_round_trip_every_mode(regimes, mode):
    g, y = regimes
    static = ldem.learn_dictionary([synthetic_latent("regimes", (64, 32, 48), seed=7)], 8,
                                   block=(16, 16), progress=False)
    coder = ldem.LocalEntropyCoder(g, static)
    data, stats = coder.encode(y, mode=mode, return_stats=True)
    assert np.array_equal(coder.decode(data), y)
    assert stats["bytes"] == len(data)
    assert stats["requested_mode"] == mode
    # The parts add up to the stream (side bits are padded to whole bytes).
    total = stats["bits_header"] + stats["bits_tables"] + stats["bits_map"] + stats["bits_data"]
    assert 8 * len(data) <= total + 8 and total <= 8 * len(data)


def test_local_beats_global_on_changing_statistics(regimes):
    g, y = regimes
    coder = ldem.LocalEntropyCoder(g)
    local, stats = coder.encode(y, return_stats=True)
    glob = coder.encode(y, mode="global")
    assert stats["mode"] == "local" and stats["num_image_models"] >= 2
    assert len(local) <= 0.75 * len(glob), (len(local), len(glob))


def test_all_zero_latent_is_nearly_free():
    C = 16
    g = laplace_models(C, np.geomspace(0.3, 4, C))
    y = np.zeros((C, 64, 64), np.int32)
    coder = ldem.LocalEntropyCoder(g)
    local, glob = coder.encode(y), coder.encode(y, mode="global")
    assert np.array_equal(coder.decode(local), y)
    assert len(local) <= 0.05 * len(glob), (len(local), len(glob))


def test_stats_map_matches_stream(regimes):
    g, y = regimes
    coder = ldem.LocalEntropyCoder(g, block_sizes=[(8, 8), (16, 16)])
    data, stats = coder.encode(y, return_stats=True)
    bh, bw = stats["block"]
    assert (bh, bw) in [(8, 8), (16, 16)]
    assert stats["model_map"].shape == ldem.block_grid(y.shape, (bh, bw))
    # Decoding the data part with the reported map reproduces the latent.
    assert stats["model_map"].min() >= 0
    assert stats["map_codec"] in ("rans", "deflate")
    assert {c["block"] for c in stats["candidates"]} == {(8, 8), (16, 16)}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(C=st.integers(1, 4), H=st.integers(0, 40), W=st.integers(0, 40), seed=st.integers(0, 2**31),
       kind=st.sampled_from(["zeros", "laplace", "wide", "regimes"]),
       with_static=st.booleans(), precision=st.sampled_from([12, 14, 16]))
def test_local_never_exceeds_global_by_16_bytes(C, H, W, seed, kind, with_static, precision):
    rng = np.random.default_rng(seed)
    g = laplace_models(C, rng.uniform(0.2, 6, C), support=8, precision=precision)
    static = None
    if with_static:
        static = ldem.Dictionary.from_pmfs([[0.0] * 8 + [1.0] + [0.0] * 8, [1 / 17] * 17], [-8, -8], precision)
    if kind == "zeros":
        y = np.zeros((C, H, W), np.int32)
    elif kind == "laplace":
        y = rng.laplace(0, rng.uniform(0.1, 5), (C, H, W)).round().astype(np.int32)
    elif kind == "wide":
        y = rng.integers(-2**31, 2**31, (C, H, W), dtype=np.int64).astype(np.int32)
        y[..., :1] = [-(2**31), 2**31 - 1][seed % 2]
    else:
        y = np.zeros((C, H, W), np.int32)
        y[:, : H // 2] = rng.laplace(0, 4, (C, H // 2, W)).round()
    coder = ldem.LocalEntropyCoder(g, static, block_sizes=[(4, 4), (8, 8)], max_image_models=4)
    glob = coder.encode(y, mode="global")
    for mode in ("static", "local"):
        data = coder.encode(y, mode=mode)
        assert len(data) <= len(glob) + 16
        assert np.array_equal(coder.decode(data), y)
    assert np.array_equal(coder.decode(glob), y)


def test_damaged_streams_raise_decode_error(regimes):
    g, y = regimes
    coder = ldem.LocalEntropyCoder(g)
    data = coder.encode(y)
    rng = np.random.default_rng(0)
    for cut in list(range(0, 40)) + list(rng.integers(40, len(data), 40)):
        with pytest.raises(ldem.DecodeError):
            coder.decode(data[:cut])
    with pytest.raises(ldem.DecodeError):
        coder.decode(data + b"\x00")
    for _ in range(200):
        bad = bytearray(data)
        i = int(rng.integers(len(bad)))
        bad[i] ^= 1 << int(rng.integers(8))
        try:
            out = coder.decode(bytes(bad))
        except ldem.DecodeError:
            continue
        assert out.shape == y.shape and out.dtype == np.int32


def test_other_dictionaries_are_rejected(regimes):
    g, y = regimes
    data = ldem.LocalEntropyCoder(g).encode(y)
    other = ldem.fit_global_models([synthetic_latent("regimes", (64, 8, 8), seed=9)])
    with pytest.raises(ldem.DecodeError, match="other dictionaries"):
        ldem.LocalEntropyCoder(other).decode(data)
    static = ldem.Dictionary.from_pmfs([[1.0]], [0])
    with pytest.raises(ldem.DecodeError):
        ldem.LocalEntropyCoder(g, static).decode(data)


def test_header_fields_are_bounded(regimes):
    g, y = regimes
    coder = ldem.LocalEntropyCoder(g, max_symbols=1000)
    with pytest.raises(ValueError, match="max_symbols"):
        coder.encode(y)
    data = ldem.LocalEntropyCoder(g).encode(y)
    with pytest.raises(ldem.DecodeError, match="max_symbols"):
        coder.decode(data)


def test_argument_errors(regimes):
    g, y = regimes
    coder = ldem.LocalEntropyCoder(g)
    with pytest.raises(TypeError):
        coder.encode(y.astype(np.int64))
    with pytest.raises(ValueError, match="channels"):
        coder.encode(y[:3])
    with pytest.raises(ValueError, match="mode"):
        coder.encode(y, mode="best")
    with pytest.raises(TypeError):
        coder.decode("text")
    with pytest.raises(TypeError):
        ldem.LocalEntropyCoder("not a dictionary")
    with pytest.raises(ValueError):
        ldem.LocalEntropyCoder(g, block_sizes=[(0, 4)])
    with pytest.raises(ValueError):
        ldem.LocalEntropyCoder(g, max_image_models=-1)
    with pytest.raises(ValueError, match="precision"):
        ldem.LocalEntropyCoder(g, ldem.Dictionary.from_pmfs([[1.0]], [0], precision=12))


def test_learn_dictionary_is_deterministic_and_smoothed():
    rng = np.random.default_rng(0)
    ys = [rng.laplace(0, s, (8, 32, 32)).round().astype(np.int32) for s in (0.2, 1.0, 5.0)]
    a = ldem.learn_dictionary(ys, 6, block=(8, 8), seed=3, progress=False)
    b = ldem.learn_dictionary(ys, 6, block=(8, 8), seed=3, progress=False)
    assert a == b
    assert 1 <= a.num_models <= 6
    # Unseen values stay affordable: every model codes any int32 in bounded bits.
    for k in range(a.num_models):
        costs = a.costs(k)
        assert np.all(np.isfinite(costs)) and costs.max() <= 40
    # The learned models fit the data better than a single pooled model.
    pooled = ldem.learn_dictionary(ys, 1, block=(8, 8), seed=3, progress=False)
    y = np.concatenate(ys)
    ca = ldem.block_costs(y, a, block=(8, 8)).min(axis=-1).sum()
    cp = ldem.block_costs(y, pooled, block=(8, 8)).min(axis=-1).sum()
    assert ca < 0.9 * cp


def test_learn_dictionary_with_global_models_complements_them():
    rng = np.random.default_rng(1)
    ys = [rng.laplace(0, 2, (4, 32, 32)).round().astype(np.int32) for _ in range(2)]
    for y in ys:
        y[:, :16] = 0
    g = ldem.fit_global_models(ys)
    d = ldem.learn_dictionary(ys, 4, block=(16, 16), global_models=g, progress=False)
    coder = ldem.LocalEntropyCoder(g, d)
    y = ys[0]
    assert len(coder.encode(y, mode="static")) < len(coder.encode(y, mode="global"))


def test_fit_global_models_covers_each_channel():
    rng = np.random.default_rng(2)
    y = np.stack([rng.laplace(0, s, (32, 32)).round() for s in (0.5, 3, 9)]).astype(np.int32)
    g = ldem.fit_global_models([y])
    assert g.num_models == 3
    lo0, hi0 = g.support(0)
    lo2, hi2 = g.support(2)
    assert hi2 - lo2 > hi0 - lo0
    assert lo2 <= y[2].min() and hi2 > y[2].max()
    with pytest.raises(TypeError):
        ldem.fit_global_models([y.astype(np.float32)])
    with pytest.raises(ValueError):
        ldem.fit_global_models([])


def test_checksum_catches_escape_payload_damage():
    g = ldem.Dictionary.from_pmfs([[0.5, 0.5]], [0], precision=12)
    y = np.array([[[1000000, 0, 1, 0]]], np.int32)
    coder = ldem.LocalEntropyCoder(g)
    data = coder.encode(y)
    assert np.array_equal(coder.decode(data), y)
    for i in range(len(data)):
        for bit in range(8):
            bad = bytearray(data)
            bad[i] ^= 1 << bit
            with pytest.raises(ldem.DecodeError):
                coder.decode(bytes(bad))
    plain = ldem.LocalEntropyCoder(g, checksum=False)
    assert len(plain.encode(y)) == len(data) - 4


@pytest.mark.parametrize("checksum", [True, False])
def test_mutated_streams_raise_only_decode_error(checksum):
    rng = np.random.default_rng(1)
    g = ldem.fit_global_models([synthetic_latent("regimes", (16, 32, 48), seed=s) for s in (1, 2)])
    st = ldem.learn_dictionary([synthetic_latent("regimes", (16, 32, 48), seed=5)], 6, block=(16, 16),
                               progress=False)
    coder = ldem.LocalEntropyCoder(g, st, checksum=checksum)
    y = synthetic_latent("regimes", (16, 32, 48), seed=3)
    bases = [coder.encode(y, mode=m) for m in ("global", "static", "local")]
    for i in range(1500):
        b = bytearray(bases[i % 3])
        op = i % 4
        if op == 0:
            j = int(rng.integers(len(b)))
            b[j] ^= 1 << int(rng.integers(8))
        elif op == 1:
            j = int(rng.integers(len(b)))
            b[j:j + 4] = rng.integers(0, 256, 4, dtype=np.uint8).tobytes()
        elif op == 2:
            b += rng.integers(0, 256, int(rng.integers(1, 20)), dtype=np.uint8).tobytes()
        else:
            j = int(rng.integers(3, len(b)))
            b[j:j] = bytes(b[j:int(rng.integers(j, len(b)))])
        try:
            out = coder.decode(bytes(b))
        except ldem.DecodeError:
            continue
        assert out.shape == y.shape and out.dtype == np.int32
        if checksum:  # a changed stream that passes the CRC must still be the same latent
            assert np.array_equal(out, y)


def test_wide_values_at_precision_12():
    """Value ranges wider than 2^12 symbols still give valid tables at precision 12."""
    rng = np.random.default_rng(4)
    y = rng.integers(-3000, 3000, (2, 32, 32)).astype(np.int32)
    y[1, :16] = rng.integers(-2047, 2048, (16, 32))
    y[:, 0, :2] = [-2048, 2047]  # both ends of the dense window in every channel and block
    y[:, 16, :2] = [-2048, 2047]
    g = ldem.fit_global_models([y], precision=12)
    for n_support in range(g.num_models):
        assert len(g.frequencies(n_support)) <= 2**12
    static = ldem.learn_dictionary([y], 3, block=(16, 16), precision=12, progress=False)
    coder = ldem.LocalEntropyCoder(g, static, block_sizes=[(8, 8), (16, 16)])
    for mode in ("global", "static", "local"):
        assert np.array_equal(coder.decode(coder.encode(y, mode=mode)), y)


# -- block selection: the core's select_pooled against a numpy reference ---------------------------

def reference_pool(costs, grid, factors):
    """Block costs [C*nby*nbx, A] summed over (fy, fx) groups, in raster order."""
    C, nby, nbx = grid
    fy, fx = factors
    A = costs.shape[1]
    py, px = -(-nby // fy), -(-nbx // fx)
    pooled = np.zeros((C, py, px, A))
    src = costs.reshape(C, nby, nbx, A)
    for by in range(nby):
        for bx in range(nbx):
            pooled[:, by // fy, bx // fx] += src[:, by, bx]
    return pooled.reshape(C * py * px, A)


def reference_select(fixed, image, grid, factors, precision, rounds=3):
    """Pooled costs, then argmin of cost + index bits (first column on ties), with index
    bits re-estimated from the choices' counts quantized like the map coder's table."""
    from ldem import _core
    costs = fixed if image is None else np.hstack([fixed, image])
    A = costs.shape[1]
    pooled = reference_pool(costs, grid, factors)

    def index_bits(choice):
        counts = np.bincount(choice, minlength=A + 1).astype(np.uint64)  # + an empty escape slot
        return precision - np.log2(_core.quantize_counts(counts, precision)[:A].astype(np.float64))

    idx = np.full(A, np.log2(A))
    choice = np.argmin(pooled + idx, axis=1)
    for _ in range(rounds):
        idx = index_bits(choice)
        new = np.argmin(pooled + idx, axis=1)
        if np.array_equal(new, choice):
            break
        choice = new
    idx = index_bits(choice)
    rows = np.arange(len(choice))
    return choice, pooled[rows, choice].sum(), idx[choice].sum()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), C=st.integers(1, 4), nby=st.integers(1, 9), nbx=st.integers(1, 9),
       F=st.integers(1, 40), I=st.integers(0, 21), fy=st.integers(1, 4), fx=st.integers(1, 4),
       ties=st.booleans())
def test_select_pooled_matches_reference(seed, C, nby, nbx, F, I, fy, fx, ties):
    from ldem import _core
    rng = np.random.default_rng(seed)
    B = C * nby * nbx
    fixed = rng.uniform(0, 400, (B, F))
    image = rng.uniform(0, 400, (B, I)) if I else None
    if ties:  # integral costs from a few values: many exact ties between columns
        fixed = rng.integers(0, 4, (B, F)).astype(np.float64) * 16
        image = rng.integers(0, 4, (B, I)).astype(np.float64) * 16 if I else None
    categories, data_bits, map_bits = _core.select_pooled(fixed, image, C, nby, nbx, fy, fx, 12)
    ref_categories, ref_data, ref_map = reference_select(fixed, image, (C, nby, nbx), (fy, fx), 12)
    np.testing.assert_array_equal(categories, ref_categories)
    assert data_bits == pytest.approx(ref_data, rel=1e-12)
    assert map_bits == pytest.approx(ref_map, rel=1e-12)


@pytest.mark.parametrize("grid,factors", [((2, 5, 7), (2, 3)), ((1, 4, 4), (4, 4)), ((3, 1, 9), (1, 2)),
                                          ((1, 3, 3), (1, 1)), ((0, 2, 2), (2, 2))])
@pytest.mark.parametrize("A", [0, 1, 9])
def test_pool_costs_sums_groups_of_blocks(grid, factors, A):
    from ldem import _core
    C, nby, nbx = grid
    costs = np.random.default_rng(A).uniform(0, 100, (C * nby * nbx, A))
    got = _core.pool_costs(costs, C, nby, nbx, *factors)
    want = reference_pool(costs, grid, factors)
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_pool_costs_rejects_bad_grids():
    from ldem import _core
    costs = np.zeros((12, 3))
    with pytest.raises(ValueError, match="costs"):
        _core.pool_costs(costs, 1, 3, 5, 2, 2)
    with pytest.raises(ValueError, match="grid"):
        _core.pool_costs(costs, 1, 3, 4, 0, 2)


@pytest.mark.parametrize("threads", [1, 2, 0])  # 0: every core
def test_select_blocks_equals_one_select_per_grid(threads):
    from ldem import _core
    rng = np.random.default_rng(5)
    jobs = []
    for C, nby, nbx, F, I in [(3, 8, 6, 20, 0), (2, 4, 5, 9, 4), (1, 1, 1, 3, 2), (4, 2, 2, 7, 1)]:
        B = C * nby * nbx
        fixed = rng.uniform(0, 300, (B, F))
        image = rng.uniform(0, 300, (B, I)) if I else None
        jobs.append((fixed, image, C, nby, nbx, 1 + C % 2, 1 + nby % 3))
    got = _core.select_blocks(jobs, 14, threads=threads)
    assert len(got) == len(jobs)
    for (fixed, image, C, nby, nbx, fy, fx), (categories, data_bits, map_bits) in zip(jobs, got):
        ref_categories, ref_data, ref_map = _core.select_pooled(fixed, image, C, nby, nbx, fy, fx, 14)
        np.testing.assert_array_equal(categories, ref_categories)
        assert (data_bits, map_bits) == (ref_data, ref_map)


def test_select_blocks_argument_errors():
    from ldem import _core
    fixed = np.zeros((6, 3))
    with pytest.raises(ValueError, match="job"):
        _core.select_blocks([(fixed, None, 1, 2, 3)], 12)
    with pytest.raises(ValueError, match="fixed"):
        _core.select_blocks([(fixed, None, 1, 2, 4, 1, 1)], 12)
    with pytest.raises(ValueError, match="image"):
        _core.select_blocks([(fixed, np.zeros((5, 2)), 1, 2, 3, 1, 1)], 12)
    with pytest.raises(ValueError, match="precision"):
        _core.select_blocks([(fixed, None, 1, 2, 3, 1, 1)], 17)
    with pytest.raises(ValueError, match="grid"):
        _core.select_blocks([(fixed, None, 1, 2, 3, 0, 1)], 12)
    assert _core.select_blocks([], 12) == []


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape,block", [((3, 17, 23), (8, 8)), ((2, 5, 40), (5, 7)), ((1, 9, 9), (9, 9)),
                                         ((4, 3, 2), (1, 1))])
def test_block_histograms_match_numpy(shape, block, threads):
    from ldem import _core
    rng = np.random.default_rng(sum(shape))
    y = rng.laplace(0, 3, shape).round().astype(np.int32)
    y.flat[rng.integers(0, y.size, 6)] = [2**31 - 1, -2**31, 700, -700, 5000, -1]  # wide blocks: sorted path
    ptr, values, counts, channel = _core.BlockHistograms(y, *block, threads).arrays()
    C, H, W = shape
    bh, bw = block
    b = 0
    for c in range(C):
        for y0 in range(0, H, bh):
            for x0 in range(0, W, bw):
                v, n = np.unique(y[c, y0:y0 + bh, x0:x0 + bw], return_counts=True)
                np.testing.assert_array_equal(values[ptr[b]:ptr[b + 1]], v)
                np.testing.assert_array_equal(counts[ptr[b]:ptr[b + 1]], n)
                assert channel[b] == c
                b += 1
    assert b + 1 == len(ptr)


# -- hostile streams: limits on what a stream can make the decoder allocate ----------------------

def _forge(coder, mode, codec, shape, rest: bytes) -> bytes:
    """A local stream with the coder's header, `rest` after it, and its checksum."""
    import zlib
    out = bytes(coder._header(mode, codec, shape)) + rest
    return out + zlib.crc32(out).to_bytes(4, "little") if coder.checksum else out


def _bomb_payload(zero_bytes=4096) -> bytes:
    """An ldem.encode-style stream of one segment (2^31 symbols per segment), 4 lanes at
    state 2^31, then zeros: under a model that gives 0 a frequency of 65535/65536 it
    'decodes' about 1.4 M symbols per word read."""
    return b"LD\x10" + bytes([2 << 5 | 31]) + (1 << 31).to_bytes(8, "little") * 4 + bytes(zero_bytes)


def test_decompression_bomb_is_refused_before_allocating(peak_memory):
    """A 4 KB stream declaring 2^27 symbols (512 MiB) is refused at the defaults, without
    allocating; with the limit raised the same few KB would fill the whole output."""
    g = ldem.Dictionary.from_frequencies([[65535]], offsets=[0], precision=16, escape=1)
    coder = ldem.LocalEntropyCoder(g)
    assert coder.max_symbols == 2**26 and coder.max_blocks == 2**22
    data = _forge(coder, 0, 0, (1, 1, 2**27), _bomb_payload())
    assert len(data) < 5000

    def decode():
        with pytest.raises(ldem.DecodeError, match="max_symbols"):
            coder.decode(data)
    assert peak_memory(decode) < 1 << 20
    # The same stream passes the header checks once the limit is raised (the payload is
    # then found inconsistent, after the output is allocated).
    small = ldem.LocalEntropyCoder(g, max_symbols=2**27)
    with pytest.raises(ldem.DecodeError) as e:
        small.decode(_forge(small, 0, 0, (1, 1, 2**20), _bomb_payload()))
    assert "max_symbols" not in str(e.value)


def test_decoding_at_the_symbol_limit_allocates_about_the_output(peak_memory):
    g = ldem.Dictionary.from_frequencies([[65535]], offsets=[0], precision=16, escape=1)
    coder = ldem.LocalEntropyCoder(g)
    data = _forge(coder, 0, 0, (1, 1, 2**26), _bomb_payload())

    def decode():
        with pytest.raises(ldem.DecodeError):
            coder.decode(data)
    assert peak_memory(decode) < 4 * 2**26 + (16 << 20)


def test_block_map_limit(peak_memory):
    g = ldem.Dictionary.from_frequencies([[65535]], offsets=[0], precision=16, escape=1)
    coder = ldem.LocalEntropyCoder(g)
    rest = bytearray()
    for v in (1, 1, 0, 0, 0):  # bh, bw, I, no side bits, no map bytes
        ldem.bitio.put_varint(rest, v)
    data = _forge(coder, 2, 1, (1, 2048, 4096), bytes(rest) + _bomb_payload())  # 2^23 blocks

    def decode():
        with pytest.raises(ldem.DecodeError, match="max_blocks"):
            coder.decode(data)
    assert peak_memory(decode) < 1 << 20
    with pytest.raises(ValueError, match="max_blocks"):
        ldem.LocalEntropyCoder(g, max_blocks=0)
    with pytest.raises(ValueError, match="max_symbols"):
        ldem.LocalEntropyCoder(g, max_symbols=-1)


def test_encoder_skips_block_sizes_over_max_blocks():
    g = ldem.Dictionary.from_pmfs([[0.1, 0.2, 0.4, 0.2, 0.1]], offsets=[-2])
    y = np.zeros((1, 16, 16), np.int32)
    y[:, :4] = np.random.default_rng(0).integers(-2, 3, size=(1, 4, 16))
    coder = ldem.LocalEntropyCoder(g, block_sizes=((1, 1), (4, 4)), max_blocks=64)
    data, stats = coder.encode(y, return_stats=True)
    assert stats["mode"] == "global" or stats["block"] == (4, 4)
    assert (coder.decode(data) == y).all()
    data, stats = ldem.LocalEntropyCoder(g, block_sizes=((1, 1),), max_blocks=64).encode(y, return_stats=True)
    assert stats["mode"] == "global"
    local = ldem.LocalEntropyCoder(g, block_sizes=((4, 4),)).encode(y, mode="static")
    if ldem.LocalEntropyCoder(g).describe(local)["block"] is not None:
        with pytest.raises(ldem.DecodeError, match="max_blocks"):
            ldem.LocalEntropyCoder(g, max_blocks=8).decode(local)


def test_image_table_sizes_are_bounded_by_the_side_bits():
    from ldem import _core
    side = _core.gamma_pack(np.array([8, 1, 65535], np.uint64))  # one table of 65535 entries, no data
    with pytest.raises(ldem.DecodeError, match="truncated"):
        _core.read_side_info(side, num_tables=1, num_map_counts=0, precision=16)
