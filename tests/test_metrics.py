"""ldem.metrics: PCHIP, BD-rate against worked examples, PSNR and MS-SSIM."""
import math

import numpy as np
import pytest

from ldem import metrics as m

@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Small tensors: one thread is fastest and keeps the run from competing for cores."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

# ---------------------------------------------------------------------------------------
# Worked examples with published answers
# ---------------------------------------------------------------------------------------
# JCTVC-E137 data as used by the Netflix VMAF BD-rate tests (python/test/bd_rate_calculator_test.py,
# class BDrateCalculatorJCTVCTest): (rate, PSNR) pairs, expected BD-rate as a fraction with
# places=4 there (here in %, so a tolerance of 0.005 percentage points).
JCTVC_E137 = [
    ([(108048.8736, 43.6471), (61279.976, 40.3953), (33905.6656, 37.247), (18883.6928, 34.2911)],
     [(108061.2784, 43.6768), (61299.9936, 40.4232), (33928.7472, 37.2761), (18910.912, 34.3147)],
     -0.465215420752807),
    ([(40433.8848, 37.5761), (7622.7456, 35.3756), (2394.488, 33.8977), (1017.6184, 32.0603)],
     [(40370.12, 37.5982), (7587.0024, 35.4025), (2390.0944, 33.9194), (1017.0984, 32.0822)],
     -1.8779823450567612),
]


def _split(points):
    return [r for r, _ in points], [q for _, q in points]


@pytest.mark.parametrize("anchor,test,expected", JCTVC_E137)
def test_bd_rate_pchip_matches_jctvc_e137(anchor, test, expected):
    got = m.bd_rate(*_split(anchor), *_split(test), method="pchip")
    assert got == pytest.approx(expected, abs=0.005)
    # the piecewise-cubic integral is exact here, so the agreement is much closer than that
    assert got == pytest.approx(expected, abs=1e-9)


def test_bd_rate_cubic_published_x264_x265_example():
    # videonerd.website/how-compute-bd-rate: x265 as anchor, x264 as test, VCEG-M33 cubic fit
    # (the Anserw/Bjontegaard_metric BD_RATE) prints -12.098.
    x264 = ([9.525, 14.27, 19.113, 24.393], [37.73, 39.07, 40.07, 40.95])
    x265 = ([8.914, 13.330, 17.880, 22.990], [37.02, 38.37, 39.42, 40.35])
    assert round(m.bd_rate(*x265, *x264, method="cubic"), 3) == -12.098


def test_bd_rate_cubic_published_overshoot_example():
    # Anserw/Bjontegaard_metric issue #3: the cubic fit of these SSIM-like curves (values near
    # 99.9) swings wildly and its BD_RATE printed 100421.22666772884; PCHIP stays sensible.
    ref = ([5012.39, 4012.23, 3014.7, 2014.65], [99.97751, 99.91607, 99.51432, 96.622])
    main = ([5096.02, 4000.03, 3067.89, 2054.35], [99.98146, 99.94996, 99.66744, 97.1181])
    assert m.bd_rate(*ref, *main, method="cubic") == pytest.approx(100421.22666772884, rel=1e-5)
    assert -10 < m.bd_rate(*ref, *main, method="pchip") < 0


# ---------------------------------------------------------------------------------------
# Exact synthetic cases
# ---------------------------------------------------------------------------------------
RATES = [0.12, 0.31, 0.55, 0.9, 1.6]
PSNRS = [27.0, 29.5, 31.8, 33.9, 36.7]


@pytest.mark.parametrize("method", ["pchip", "cubic"])
def test_bd_rate_constant_rate_ratio_is_exact(method):
    for k, expected in [(0.8, -20.0), (1.25, 25.0), (0.5, -50.0), (1.0, 0.0)]:
        got = m.bd_rate(RATES, PSNRS, [k * r for r in RATES], PSNRS, method=method)
        assert got == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("method", ["pchip", "cubic"])
def test_bd_rate_linear_log_rate_curves_at_other_points(method):
    # ln R_A = a + b·P; B uses 0.8x the rate (sampled at other PSNRs): exactly -20 %.
    a, b = -8.0, 0.25
    pa = np.array([28.0, 30.0, 33.0, 37.0])
    pb = np.array([27.0, 29.3, 31.1, 34.4, 38.0])
    got = m.bd_rate(np.exp(a + b * pa), pa, 0.8 * np.exp(a + b * pb), pb, method=method)
    assert got == pytest.approx(-20.0, abs=1e-9)
    # ln R_B = ln R_A + c·(P − 30): the mean log difference over [28, 37] is c·(32.5 − 30).
    c = 0.04
    got = m.bd_rate(np.exp(a + b * pa), pa, np.exp(a + b * pb + c * (pb - 30)), pb, method=method)
    assert got == pytest.approx(100 * math.expm1(c * 2.5), abs=1e-9)


def test_bd_rate_order_and_antisymmetry():
    rb = [0.11, 0.3, 0.6, 0.85, 1.7]
    pb = [27.2, 29.9, 32.3, 33.8, 36.9]
    forward = m.bd_rate(RATES, PSNRS, rb, pb)
    backward = m.bd_rate(rb, pb, RATES, PSNRS)
    assert (1 + forward / 100) * (1 + backward / 100) == pytest.approx(1.0, abs=1e-12)
    # point order does not matter
    assert m.bd_rate(RATES[::-1], PSNRS[::-1], rb, pb) == pytest.approx(forward, abs=1e-12)


def test_bd_quality_shift():
    for method in ("pchip", "cubic"):
        assert m.bd_quality(RATES, PSNRS, RATES, [p + 0.7 for p in PSNRS], method=method) == pytest.approx(0.7)


def test_bd_rate_errors():
    with pytest.raises(ValueError, match="overlap"):
        m.bd_rate(RATES, PSNRS, RATES, [p + 20 for p in PSNRS])
    with pytest.raises(ValueError, match="at least 2"):
        m.bd_rate(RATES[:1], PSNRS[:1], RATES, PSNRS)
    with pytest.raises(ValueError, match="positive"):
        m.bd_rate([0.0, 1.0], [30, 31], RATES, PSNRS)
    with pytest.raises(ValueError, match="distinct"):
        m.bd_rate([0.5, 1.0], [30, 30], RATES, PSNRS)
    with pytest.raises(ValueError, match="method"):
        m.bd_rate(RATES, PSNRS, RATES, PSNRS, method="akima")


# ---------------------------------------------------------------------------------------
# PCHIP
# ---------------------------------------------------------------------------------------
def test_pchip_interpolates_and_reproduces_lines():
    x = np.array([0.0, 0.7, 1.5, 3.0, 3.2])
    y = np.array([1.0, 2.0, 2.2, 5.0, 5.1])
    assert np.allclose(m.pchip_interpolate(x, y, x), y)
    lx = np.linspace(-1, 4, 7)
    assert np.allclose(m.pchip_interpolate(lx, 2 * lx - 1, [0.1, 2.9]), [-0.8, 4.8])
    assert np.allclose(m.pchip_slopes(lx, 2 * lx - 1), 2.0)
    assert m.pchip_integral(lx, 2 * lx - 1, 0.0, 3.0) == pytest.approx(6.0)


def test_pchip_is_monotone_without_overshoot():
    # data where a cubic spline overshoots: a step
    x = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    y = np.array([0.0, 0.0, 0.1, 1.0, 1.0, 1.0])
    xs = np.linspace(0, 5, 2001)
    v = m.pchip_interpolate(x, y, xs)
    assert (np.diff(v) >= -1e-12).all()
    assert v.min() >= -1e-12 and v.max() <= 1 + 1e-12
    # decreasing data stay decreasing; a local maximum gets a flat slope
    assert (np.diff(m.pchip_interpolate(x, -y, xs)) <= 1e-12).all()
    assert m.pchip_slopes([0, 1, 2], [0, 1, 0])[1] == 0.0


def test_pchip_integral_matches_dense_quadrature():
    x = np.array([26.0, 28.5, 31.0, 33.2, 36.9])
    y = np.log([0.1, 0.22, 0.5, 0.9, 2.1])
    xs = np.linspace(27.3, 35.1, 200001)
    v = m.pchip_interpolate(x, y, xs)
    trapezoid = float(np.sum((v[1:] + v[:-1]) / 2 * np.diff(xs)))
    assert m.pchip_integral(x, y, 27.3, 35.1) == pytest.approx(trapezoid, abs=1e-8)
    assert m.pchip_integral(x, y, 35.1, 27.3) == pytest.approx(-trapezoid, abs=1e-8)


# ---------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------
def test_msssim_db():
    assert m.msssim_db(0.9) == pytest.approx(10.0)
    assert m.msssim_db(1.0) == math.inf
    assert math.isnan(m.msssim_db(float("nan")))


def test_ms_ssim_scales_match_pytorch_msssim():
    import torch
    from pytorch_msssim import ms_ssim as lib
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (170, 181, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-30, 31, a.shape), 0, 255).astype(np.uint8)
    X = torch.from_numpy(a.transpose(2, 0, 1).astype(np.float32))[None]
    Y = torch.from_numpy(b.transpose(2, 0, 1).astype(np.float32))[None]
    # the same computation as the library: 5 scales, and 3 scales with the rescaled weights
    assert m._ms_ssim_scales(X, Y, 5) == pytest.approx(float(lib(X, Y, data_range=255)), abs=1e-6)
    w = [0.0448, 0.2856, 0.3001]
    assert m._ms_ssim_scales(X, Y, 3) == pytest.approx(
        float(lib(X, Y, data_range=255, weights=[v / sum(w) for v in w])), abs=1e-6)
    v, scales = m.ms_ssim(a, b)
    assert scales == 5 and 0.9 < v < 1
    assert [m.ms_ssim(a[:n], b[:n])[1] for n in (161, 160, 81, 41, 21, 11)] == [5, 4, 4, 3, 2, 1]
    v, scales = m.ms_ssim(a[:10], b[:10])
    assert math.isnan(v) and scales == 0


def test_psnr():
    a = np.zeros((2, 3, 3), np.uint8)
    assert m.psnr(a, a) == math.inf
    assert m.psnr(a, np.full_like(a, 1)) == pytest.approx(10 * math.log10(255 ** 2))
    assert m.psnr(np.zeros((4, 4)), np.full((4, 4), 2.0), peak=2.0) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="shapes differ"):
        m.psnr(a, a[:1])


def test_one_psnr():
    import ldem.codec
    import ldem.testing
    assert ldem.codec.psnr is m.psnr and ldem.testing.psnr is m.psnr
