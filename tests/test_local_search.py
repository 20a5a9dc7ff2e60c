"""ldem.local.search and the core it drives: block histograms, pooling and selection."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ldem


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
    bits re-estimated from the categories' counts quantized like the map coder's table."""
    from ldem import _core
    costs = fixed if image is None else np.hstack([fixed, image])
    A = costs.shape[1]
    pooled = reference_pool(costs, grid, factors)

    def index_bits(categories):
        counts = np.bincount(categories, minlength=A + 1).astype(np.uint64)  # + an empty escape slot
        return precision - np.log2(_core.quantize_counts(counts, precision)[:A].astype(np.float64))

    idx = np.full(A, np.log2(A))
    categories = np.argmin(pooled + idx, axis=1)
    for _ in range(rounds):
        idx = index_bits(categories)
        new = np.argmin(pooled + idx, axis=1)
        if np.array_equal(new, categories):
            break
        categories = new
    idx = index_bits(categories)
    rows = np.arange(len(categories))
    return categories, pooled[rows, categories].sum(), idx[categories].sum()


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


# -- _core.BlockHistograms: the histograms stay in C++; every argument is checked once -------------

def test_block_histograms_costs_match_block_costs():
    from ldem import _core
    rng = np.random.default_rng(3)
    y = rng.laplace(0, 2, (3, 20, 12)).round().astype(np.int32)
    d = ldem.Dictionary.from_pmfs([[0.1, 0.2, 0.4, 0.2, 0.1], [0.5, 0.5], [1.0]], offsets=[-2, 0, 0])
    h = _core.BlockHistograms(y, 8, 4, 2)
    assert (h.num_blocks, h.num_channels) == (3 * 3 * 3, 3)
    want = ldem.block_costs(y, d, block=(8, 4)).reshape(h.num_blocks, 3)
    np.testing.assert_allclose(h.costs(d._impl, 1), want, rtol=1e-12)
    channel = np.repeat(np.arange(3, dtype=np.int32), 9)
    np.testing.assert_array_equal(h.assigned_costs(d._impl, channel), want[np.arange(27), channel])
    np.testing.assert_array_equal(h.channel_costs(d._impl), want[np.arange(27), channel])
    assert np.all(h.self_costs() <= want.min(axis=1) + 1e-9)  # the empirical entropy is a lower bound
    both = _core.BlockHistograms.concat([h, _core.BlockHistograms(y[:1], 8, 4)])
    assert both.num_blocks == h.num_blocks + 9
    np.testing.assert_array_equal(both.costs(d._impl)[:27], h.costs(d._impl))
    ptr, values, counts, channel = both.arrays()
    assert ptr[-1] == len(values) == len(counts) and channel[27:].tolist() == [0] * 9
    lo, V = h.window(2)
    assert lo == max(int(y.min()), -2) and lo + V - 1 == min(int(y.max()), 1)
    dense = h.cluster_counts(np.zeros(h.num_blocks, np.int64), 1, lo, V)
    inside = (y >= lo) & (y < lo + V)
    np.testing.assert_array_equal(dense[0], np.bincount(y[inside] - lo, minlength=V))


def test_block_histograms_reject_bad_arguments():
    from ldem import _core
    y = np.zeros((2, 8, 8), np.int32)
    with pytest.raises(TypeError, match="int32"):
        _core.BlockHistograms(y.astype(np.float32), 4, 4)
    with pytest.raises(TypeError, match="int32"):
        _core.BlockHistograms(y.astype(np.int64), 4, 4)
    with pytest.raises(ValueError, match="3 dimensions"):
        _core.BlockHistograms(y[0], 4, 4)
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.BlockHistograms(y[:, :, ::2], 4, 4)
    with pytest.raises(ValueError, match="block"):
        _core.BlockHistograms(y, 0, 4)
    with pytest.raises(TypeError):
        _core.BlockHistograms([[[0]]], 1, 1)
    with pytest.raises(TypeError):
        _core.BlockHistograms.concat([y])
    h = _core.BlockHistograms(y, 4, 4)  # 8 blocks
    d = ldem.Dictionary.from_pmfs([[0.5, 0.5]] * 2, offsets=[0, 0])
    with pytest.raises(TypeError, match="Dictionary"):
        h.costs("not a dictionary")
    with pytest.raises(TypeError, match="int32"):
        h.assigned_costs(d._impl, np.zeros(8, np.int64))
    with pytest.raises(ValueError, match="one entry per block"):
        h.assigned_costs(d._impl, np.zeros(7, np.int32))
    with pytest.raises(ValueError, match="out of range"):
        h.assigned_costs(d._impl, np.full(8, 2, np.int32))
    with pytest.raises(ValueError, match="channels"):
        h.channel_costs(ldem.Dictionary.from_pmfs([[1.0]], [0])._impl)
    with pytest.raises(TypeError, match="cluster"):
        h.cluster_counts(np.zeros(8), 1, 0, 4)
    with pytest.raises(ValueError, match="one entry per block"):
        h.cluster_counts(np.zeros(9, np.int64), 1, 0, 4)
    with pytest.raises(ValueError, match="out of range"):
        h.cluster_counts(np.ones(8, np.int64), 1, 0, 4)
    with pytest.raises(ValueError, match="too large"):
        h.cluster_counts(np.zeros(8, np.int64), 2**20, 0, 2**20)
    with pytest.raises(ValueError, match="too large"):  # K * V wraps around int64 to 0
        h.cluster_counts(np.zeros(8, np.int64), 2**62, 0, 4)
    fit = dict(cluster=np.zeros(8, np.int64), K=1, lo=0, V=4, table_bits=8, precision=16,
               fixed_best=np.full(8, 100.0), penalty=1.0, iterations=2)
    assert h.fit_image_models(**fit) is not None
    for bad, match in [(dict(table_bits=3), "table_bits"), (dict(precision=17), "precision"),
                       (dict(fixed_best=np.zeros(7)), "fixed_best"), (dict(V=0), "too large"), (dict(K=2**62), "too large"),
                       (dict(lo=2**31 - 2), "int32"), (dict(cluster=np.full(8, 1, np.int64)), "out of range")]:
        with pytest.raises(ValueError, match=match):
            h.fit_image_models(**{**fit, **bad})


def test_fit_image_models_groups_blocks_by_regime():
    from ldem import _core
    y = np.zeros((1, 16, 16), np.int32)
    y[:, 8:] = np.random.default_rng(0).choice([-20, 20], (8, 16))
    h = _core.BlockHistograms(y, 4, 4)
    cluster = np.full(16, -1, np.int64)
    cluster[[0, 15]] = [0, 1]
    lo, V = h.window(2047)
    tables, costs, cluster, best = h.fit_image_models(cluster, 2, lo, V, 8, 12, np.full(16, 128.0), 1.0, 3)
    assert len(tables) == 2 and costs.shape == (16, 2)
    assert cluster.tolist() == [0] * 8 + [1] * 8
    np.testing.assert_array_equal(best, np.minimum(128.0, costs.min(axis=1)))
    assert tables.bits > 0 and tables.dictionary.num_models == 2
    assert h.fit_image_models(np.full(16, -1, np.int64), 2, lo, V, 8, 12, np.full(16, 128.0), 1.0, 3) is None


def test_module_examples():
    import doctest

    import ldem.local.search as module
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
