"""Context-coded local streams (stream version 2): LocalEntropyCoder with context families,
the core context coder under random families and contexts, effort levels, and old streams."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ldem
from ldem import _core
from ldem.local import EFFORTS, NUM_CONTEXTS
from ldem.testing import synthetic_latent

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def _clustered(shape, seed):
    """A latent whose non-zeros cluster in space and across channels (what contexts model)."""
    rng = np.random.default_rng(seed)
    C, H, W = shape
    activity = rng.random((1, H, W)) < 0.15
    activity = np.maximum(activity, np.roll(activity, 1, 2)) | np.roll(activity, 1, 1)
    y = rng.laplace(0, 1.5, shape).round() * (rng.random(shape) < np.where(activity, 0.7, 0.03))
    return y.astype(np.int32)


@pytest.fixture(scope="module")
def trained():
    """Global models and context families learned on other seeds of the same source."""
    train = [_clustered((24, 32, 40), s) for s in range(1, 5)]
    g = ldem.fit_global_models(train)
    s = ldem.learn_dictionary(train, 8, block=(8, 8), progress=False)
    cg = ldem.fit_context_models(train)
    cs = ldem.learn_context_dictionary(train, 6, cg, block=(8, 8))
    coder = ldem.LocalEntropyCoder(g, s, block_sizes=[(8, 8), (16, 16)], context_models=cg, context_static=cs)
    return coder, _clustered((24, 32, 40), 0)


def test_contexts_beat_the_context_free_coder(trained):
    coder, y = trained
    for mode in ("global", "static", "local"):
        with_ctx, stats = coder.encode(y, mode=mode, return_stats=True)
        plain = coder.encode(y, mode=mode, contexts=False)
        assert stats["contexts"] and coder.describe(with_ctx)["contexts"]
        assert not coder.describe(plain)["contexts"]
        assert np.array_equal(coder.decode(with_ctx), y) and np.array_equal(coder.decode(plain), y)
        assert len(with_ctx) < 0.9 * len(plain), (mode, len(with_ctx), len(plain))


@pytest.mark.parametrize("effort", EFFORTS)
def test_every_effort_round_trips_and_more_effort_is_not_larger(trained, effort):
    coder, y = trained
    data, stats = coder.encode(y, effort=effort, return_stats=True)
    assert np.array_equal(coder.decode(data), y) and stats["effort"] == effort
    if effort > 0:
        assert len(data) <= len(coder.encode(y, effort=0)) + 16
    if effort == 3:  # the exhaustive search includes effort 2's
        assert len(data) <= len(coder.encode(y, effort=2))


def test_effort_is_checked(trained):
    coder, y = trained
    for bad in (-1, 4, 1.5, True, "2"):
        with pytest.raises(ValueError, match="effort"):
            coder.encode(y, effort=bad)
    with pytest.raises(ValueError, match="effort"):
        ldem.LocalEntropyCoder(coder.global_models, effort=9)


def test_bytes_do_not_depend_on_threads(trained):
    coder, y = trained
    one = ldem.LocalEntropyCoder(coder.global_models, coder.static, block_sizes=coder.block_sizes, threads=1,
                                 context_models=coder.context_models, context_static=coder.context_static)
    many = ldem.LocalEntropyCoder(coder.global_models, coder.static, block_sizes=coder.block_sizes, threads=3,
                                  context_models=coder.context_models, context_static=coder.context_static)
    tall = np.tile(y, (1, 8, 4))  # 24 x 256 x 160: 983,040 symbols, 3 segments of 2^18
    for lat in (y, tall):
        a, b = one.encode(lat), many.encode(lat)
        assert a == b
        assert np.array_equal(many.decode(a), lat) and np.array_equal(one.decode(b), lat)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(C=st.integers(1, 24), H=st.integers(0, 24), W=st.integers(0, 24), seed=st.integers(0, 2**31),
       kind=st.sampled_from(["zeros", "clustered", "wide", "extremes"]), effort=st.sampled_from(EFFORTS))
def test_any_int32_latent_round_trips_within_16_bytes_of_global(trained, C, H, W, seed, kind, effort):
    coder, _ = trained
    rng = np.random.default_rng(seed)
    y = np.zeros((24, H, W), np.int32)
    if kind == "clustered" and H and W:
        y = _clustered((24, H, W), seed)
    elif kind == "wide":
        y = rng.integers(INT32_MIN, INT32_MAX, (24, H, W), dtype=np.int64, endpoint=True).astype(np.int32)
    elif kind == "extremes" and y.size:
        y.reshape(-1)[rng.integers(0, y.size, max(1, y.size // 7))] = rng.choice([INT32_MIN, INT32_MAX, -1, 1])
    glob = coder.encode(y, mode="global")
    plain_glob = coder.encode(y, mode="global", contexts=False)
    for mode in ("static", "local"):
        data = coder.encode(y, mode=mode, effort=effort)
        assert np.array_equal(coder.decode(data), y)
        assert len(data) <= min(len(glob), len(plain_glob)) + 16
    assert np.array_equal(coder.decode(glob), y)


def _random_families(rng, F, precision):
    """F families of NUM_CONTEXTS random tables (some wide, some one-symbol)."""
    rows, offsets = [], []
    for _ in range(F * NUM_CONTEXTS):
        n = int(rng.integers(1, 12))
        rows.append(rng.integers(0, 50, n) + (rng.random(n) < 0.5) * 500)
        offsets.append(int(rng.integers(-8, 3)))
    return ldem.Dictionary.from_frequencies(rows, offsets, precision, escape=1)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31), C=st.integers(1, 6), H=st.integers(1, 20), W=st.integers(1, 20),
       bh=st.integers(1, 8), bw=st.integers(1, 8), precision=st.sampled_from([12, 16]),
       with_image=st.booleans(), threads=st.sampled_from([1, 2, 4]))
def test_core_context_coder_round_trips_random_partitions(seed, C, H, W, bh, bw, precision, with_image, threads):
    rng = np.random.default_rng(seed)
    fams = _random_families(rng, 3, precision)
    image = ldem.Dictionary.from_frequencies([rng.integers(1, 90, 7)], [-3], precision, escape=1)
    dicts, flags = [fams._impl] + ([image._impl] if with_image else []), [True] + ([False] if with_image else [])
    F = 3 + with_image
    y = rng.laplace(0, 2, (C, H, W)).round().astype(np.int32)
    y.reshape(-1)[rng.integers(0, y.size, 2)] = [INT32_MIN, INT32_MAX]
    grid = ldem.block_grid(y.shape, (bh, bw))
    fam = rng.integers(0, F, grid).astype(np.int32)
    data = _core.encode_context(y, fam, dicts, flags, bh, bw, threads=threads)
    assert data == _core.encode_context(y, fam, dicts, flags, bh, bw, threads=1)
    assert np.array_equal(_core.decode_context(data, fam, dicts, flags, C, H, W, bh, bw, threads=threads), y)
    # The costs the search uses are the coded bits: the stream is their sum plus the lane states.
    ctx = _core.context_map(y)
    assert ctx.max() < NUM_CONTEXTS
    costs = _core.context_block_costs(y, ctx, dicts, flags, bh, bw, own_channel=False, first=0, count=F)
    bits = np.take_along_axis(costs, fam.reshape(-1, 1).astype(np.int64), axis=1).sum()
    assert bits <= 8 * (len(data) - 4) <= bits + 8 * 8 * 4 + 32


def test_core_context_coder_argument_errors():
    rng = np.random.default_rng(1)
    fams = _random_families(rng, 2, 16)
    y = np.zeros((2, 4, 4), np.int32)
    ok = np.zeros((2, 1, 1), np.int32)
    with pytest.raises(ValueError, match="families"):
        _core.encode_context(y, ok + 2, [fams._impl], [True], 4, 4)
    with pytest.raises(ValueError, match="per family"):
        _core.encode_context(y, ok, [ldem.Dictionary.from_pmfs([[1.0]], [0])._impl], [True], 4, 4)
    with pytest.raises(ValueError, match="one flag per dictionary"):
        _core.encode_context(y, ok, [fams._impl], [True, False], 4, 4)
    with pytest.raises(TypeError):
        _core.encode_context(y.astype(np.int64), ok, [fams._impl], [True], 4, 4)
    with pytest.raises(ValueError, match="contexts must have the shape"):
        _core.encode_context(y, ok, [fams._impl], [True], 4, 4, contexts=np.zeros((2, 4, 3), np.uint8))
    with pytest.raises(ValueError):  # a context outside [0, NUM_CONTEXTS) is refused, not read past
        _core.encode_context(y, ok, [fams._impl], [True], 4, 4, contexts=np.full((2, 4, 4), 255, np.uint8))
    data = _core.encode_context(y, ok, [fams._impl], [True], 4, 4)
    for bad in (data[:-1], data[:5], b"LD" + data[2:3] + b"\xff" + data[4:]):
        with pytest.raises(ldem.DecodeError):
            _core.decode_context(bad, ok, [fams._impl], [True], 2, 4, 4, 4, 4)


def test_dictionaries_without_lookups_code_context_streams_only():
    d = ldem.Dictionary.from_pmfs([[0.25, 0.5, 0.25]] * NUM_CONTEXTS, [-1] * NUM_CONTEXTS)
    slim = ldem.Dictionary.from_bytes(d.to_bytes(), lookups=False)
    assert slim == d and not slim._impl.has_lookups
    y = np.ones((1, 3, 3), np.int32)
    models = np.zeros((1, 1, 1), np.int32)
    with pytest.raises(ValueError, match="lookup"):
        ldem.encode(y, models, slim, (3, 3))
    data = _core.encode_context(y, models, [slim._impl], [True], 3, 3)
    assert data == _core.encode_context(y, models, [d._impl], [True], 3, 3)


def test_context_streams_need_the_context_models(trained):
    coder, y = trained
    plain = ldem.LocalEntropyCoder(coder.global_models, coder.static)
    with pytest.raises(ValueError, match="context_models"):
        plain.encode(y, contexts=True)
    with pytest.raises(ldem.DecodeError):
        plain.decode(coder.encode(y))  # another digest: other dictionaries
    # A context-free stream names the plain dictionaries only: both coders read it.
    free = coder.encode(y, contexts=False)
    assert np.array_equal(coder.decode(free), y) and np.array_equal(plain.decode(free), y)


def test_context_model_arguments_are_checked(trained):
    coder, _ = trained
    g = coder.global_models
    with pytest.raises(ValueError, match="one family per channel"):
        ldem.LocalEntropyCoder(g, context_models=coder.context_static)
    with pytest.raises(ValueError, match="needs context_models"):
        ldem.LocalEntropyCoder(g, context_static=coder.context_static)
    with pytest.raises(TypeError):
        ldem.LocalEntropyCoder(g, context_models=b"tables")
    other = ldem.fit_context_models([synthetic_latent("laplace", (24, 8, 8))], precision=12)
    with pytest.raises(ValueError, match="precision"):
        ldem.LocalEntropyCoder(g, context_models=other)
