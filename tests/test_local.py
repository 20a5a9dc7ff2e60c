"""ldem.local.LocalEntropyCoder: round trips in every mode, sizes, stats and argument checks."""
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
    coder = ldem.LocalEntropyCoder(g, block_sizes=[(8, 8), (16, 16)], effort=2, partitions=False)
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


def test_cpu_tensor_latents_are_coded_in_place(regimes):
    torch = pytest.importorskip("torch")
    from ldem._args import check_symbols
    g, y = regimes
    coder = ldem.LocalEntropyCoder(g)
    t = torch.from_numpy(y.copy())
    assert np.shares_memory(check_symbols(t, name="y"), t.numpy())
    for mode in ("global", "local"):
        data = coder.encode(t, mode=mode)
        assert data == coder.encode(y, mode=mode)
        np.testing.assert_array_equal(coder.decode(data), y)
    with pytest.raises(TypeError, match="y must have dtype int32, got int64"):
        coder.encode(t.long())
