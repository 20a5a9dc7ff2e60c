"""Image quality and rate–distortion metrics: PSNR, MS-SSIM and the Bjøntegaard delta
rate (BD-rate) with PCHIP or cubic interpolation.

* **PSNR** (:func:`psnr`) is over every channel of two images of one shape, peak 255 by
  default.
* **MS-SSIM** (:func:`ms_ssim`) is :func:`pytorch_msssim.ms_ssim` on the RGB image
  (float32, data range 255, the mean over the three channels), with its five scales when
  the shorter side is more than 160 pixels. Smaller images use the most scales that fit
  (side > 10·2^(k−1) for k scales) with the first k standard weights rescaled to sum to
  one. Images under 11 pixels on a side get NaN. :func:`msssim_db` gives it in dB:
  −10·log10(1 − MS-SSIM). It needs torch (the ``codec`` extra) and, for five scales,
  ``pytorch_msssim`` (the ``eval`` extra).
* **BD-rate** (:func:`bd_rate`) is the Bjøntegaard delta rate in percent of the test
  codec against the anchor: negative means fewer bits for the same quality. Log-rate is
  interpolated as a function of quality with monotone piecewise-cubic Hermite
  interpolation (PCHIP, the JCT-VC/JVET common-test-conditions variant) or, as an
  option, with the classic cubic polynomial fit of VCEG-M33, and integrated over the
  quality interval both curves cover. :func:`bd_quality` is the quality delta.

>>> import numpy as np
>>> round(bd_rate([0.5, 1, 2], [30, 34, 38], [0.45, 0.9, 1.8], [30, 34, 38]), 6)
-10.0
"""
from __future__ import annotations

import math

import numpy as np

from ldem._optional import require

__all__ = ["psnr", "ms_ssim", "msssim_db", "bd_rate", "bd_quality", "pchip_slopes", "pchip_interpolate",
           "pchip_integral"]

_MSSSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_MSSSIM_WIN = 11


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """PSNR in dB between two images of one shape (inf when they are equal); RGB uint8
    images with the default ``peak`` of 255.

    >>> import numpy as np
    >>> round(psnr(np.zeros((2, 2, 3), np.uint8), np.full((2, 2, 3), 1, np.uint8)), 2)
    48.13
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(peak ** 2 / mse)


# ---------------------------------------------------------------------------------------
# PCHIP and BD-rate
# ---------------------------------------------------------------------------------------
def _check_xy(x, y):
    x = np.asarray(x, np.float64).ravel()
    y = np.asarray(y, np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y differ in length ({x.size} vs {y.size})")
    if x.size < 2:
        raise ValueError("need at least 2 points")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("points must be finite")
    if not (np.diff(x) > 0).all():
        raise ValueError("x must be strictly increasing")
    return x, y


def _end_slope(h0, h1, m0, m1):
    """Three-point end slope, bounded so that the end stays shape-preserving."""
    d = ((2 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
    if np.sign(d) != np.sign(m0):
        return 0.0
    if np.sign(m0) != np.sign(m1) and abs(d) > abs(3 * m0):
        return 3.0 * m0
    return d


def pchip_slopes(x, y) -> np.ndarray:
    """Node slopes of the monotone piecewise-cubic Hermite interpolant (PCHIP).

    Fritsch–Carlson monotone interpolation with the weighted harmonic mean of
    Fritsch–Butland at interior nodes (zero at a local extremum) and the
    shape-preserving three-point formula at the ends; these are the slopes of MATLAB's
    ``pchip``, SciPy's ``PchipInterpolator`` and the JCT-VC BD-rate spreadsheet. Two
    points give a straight line. ``x`` must be strictly increasing.

    >>> pchip_slopes([0, 1, 2], [0, 1, 2]).tolist()
    [1.0, 1.0, 1.0]
    >>> pchip_slopes([0, 1, 2], [0, 1, 0]).tolist()    # flat at the peak
    [2.0, 0.0, -2.0]
    """
    x, y = _check_xy(x, y)
    h = np.diff(x)
    m = np.diff(y) / h
    n = x.size
    if n == 2:
        return np.full(2, m[0])
    d = np.zeros(n)
    w1 = 2 * h[1:] + h[:-1]
    w2 = h[1:] + 2 * h[:-1]
    same = m[:-1] * m[1:] > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        d[1:-1] = np.where(same, (w1 + w2) / (w1 / m[:-1] + w2 / m[1:]), 0.0)
    d[0] = _end_slope(h[0], h[1], m[0], m[1])
    d[-1] = _end_slope(h[-1], h[-2], m[-1], m[-2])
    return d


def _segment(x, s):
    return np.clip(np.searchsorted(x, s, side="right") - 1, 0, x.size - 2)


def pchip_interpolate(x, y, xq) -> np.ndarray:
    """PCHIP interpolant through (x, y) evaluated at ``xq`` (the end cubics extend it).

    >>> pchip_interpolate([0, 1, 2, 3], [0, 1, 1, 2], [0.5, 1.5]).round(4).tolist()   # no bump on the flat
    [0.6875, 1.0]
    """
    x, y = _check_xy(x, y)
    d = pchip_slopes(x, y)
    s = np.asarray(xq, np.float64)
    k = _segment(x, s)
    h = x[k + 1] - x[k]
    t = (s - x[k]) / h
    t2, t3 = t * t, t * t * t
    return (y[k] * (2 * t3 - 3 * t2 + 1) + h * d[k] * (t3 - 2 * t2 + t)
            + y[k + 1] * (-2 * t3 + 3 * t2) + h * d[k + 1] * (t3 - t2))


def _pchip_antiderivative(x, y, d, s):
    """Integral of the interpolant from x[0] to s (exact: the pieces are cubics)."""
    h = np.diff(x)
    whole = h * (y[:-1] + y[1:]) / 2 + h * h * (d[:-1] - d[1:]) / 12
    before = np.concatenate([[0.0], np.cumsum(whole)])
    k = _segment(x, s)
    hk = h[k]
    t = (s - x[k]) / hk
    t2, t3, t4 = t * t, t ** 3, t ** 4
    return before[k] + hk * (y[k] * (t - t3 + t4 / 2) + hk * d[k] * (t2 / 2 - 2 * t3 / 3 + t4 / 4)
                             + y[k + 1] * (t3 - t4 / 2) + hk * d[k + 1] * (t4 / 4 - t3 / 3))


def pchip_integral(x, y, a: float, b: float) -> float:
    """Exact integral from ``a`` to ``b`` of the PCHIP interpolant through (x, y).

    >>> round(pchip_integral([0, 1, 2], [0, 1, 2], 0.5, 2.0), 6)   # a line: (4 - 0.25) / 2
    1.875
    """
    x, y = _check_xy(x, y)
    d = pchip_slopes(x, y)
    return float(_pchip_antiderivative(x, y, d, float(b)) - _pchip_antiderivative(x, y, d, float(a)))


def _sorted_points(x, y, name, x_name):
    """x, y as float arrays sorted by x; x distinct, all finite."""
    x = np.asarray(x, np.float64).ravel()
    y = np.asarray(y, np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"{name}: rates and qualities differ in length ({x.size} vs {y.size})")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError(f"{name}: rates and qualities must be finite (rates > 0)")
    if x.size < 2:
        raise ValueError(f"{name}: need at least 2 rate–quality points, got {x.size}")
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    if not (np.diff(x) > 0).all():
        raise ValueError(f"{name}: {x_name} must be distinct")
    return x, y


def _log_rate(rate, name):
    r = np.asarray(rate, np.float64)
    if (r <= 0).any():
        raise ValueError(f"{name}: rates must be positive")
    return np.log(r)


def _integrals(y_a, x_a, y_b, x_b, lo, hi, method):
    """Integrals over [lo, hi] of the two interpolated curves y(x)."""
    if method == "pchip":
        return pchip_integral(x_a, y_a, lo, hi), pchip_integral(x_b, y_b, lo, hi)
    if method == "cubic":
        out = []
        for x, y in ((x_a, y_a), (x_b, y_b)):
            p = np.polyint(np.polyfit(x, y, min(3, x.size - 1)))
            out.append(float(np.polyval(p, hi) - np.polyval(p, lo)))
        return tuple(out)
    raise ValueError(f"method must be 'pchip' or 'cubic', got {method!r}")


def bd_rate(rate_anchor, quality_anchor, rate_test, quality_test, method: str = "pchip") -> float:
    """Bjøntegaard delta rate (%) of the test curve against the anchor: negative = fewer bits.

    Each curve is its rate–quality points (any order; qualities distinct, rates > 0).
    The natural log of the rate is interpolated as a function of quality, by PCHIP
    (``method="pchip"``, :func:`pchip_slopes`) or by the least-squares cubic polynomial
    of VCEG-M33 (``method="cubic"``; with fewer than 4 points, the polynomial through
    them). The mean log-rate difference over the overlapping quality interval gives
    ``100·(exp(mean) − 1)``. Raises ValueError when a curve has fewer than 2 points or
    the curves do not overlap in quality.

    A codec that needs 0.8× the rate at every quality saves exactly 20 %:

    >>> rates, psnrs = [0.25, 0.5, 1.0, 2.0], [30.0, 33.0, 36.5, 40.0]
    >>> round(bd_rate(rates, psnrs, [0.8 * r for r in rates], psnrs), 9)
    -20.0
    """
    q_a, lr_a = _sorted_points(quality_anchor, _log_rate(rate_anchor, "anchor"), "anchor", "qualities")
    q_b, lr_b = _sorted_points(quality_test, _log_rate(rate_test, "test"), "test", "qualities")
    lo, hi = max(q_a[0], q_b[0]), min(q_a[-1], q_b[-1])
    if not hi > lo:
        raise ValueError(f"the curves do not overlap in quality (anchor {q_a[0]:.4g}..{q_a[-1]:.4g}, "
                         f"test {q_b[0]:.4g}..{q_b[-1]:.4g})")
    int_a, int_b = _integrals(lr_a, q_a, lr_b, q_b, lo, hi, method)
    return float(100.0 * math.expm1((int_b - int_a) / (hi - lo)))


def bd_quality(rate_anchor, quality_anchor, rate_test, quality_test, method: str = "pchip") -> float:
    """Bjøntegaard delta quality (BD-PSNR for PSNR): mean quality gain of the test curve
    at equal rate, over the overlapping log-rate interval (same interpolation choices as
    :func:`bd_rate`, with the axes swapped).

    >>> rates = [0.25, 0.5, 1.0, 2.0]
    >>> round(bd_quality(rates, [30, 33, 36, 39], rates, [30.5, 33.5, 36.5, 39.5]), 9)
    0.5
    """
    lr_a, q_a = _sorted_points(_log_rate(rate_anchor, "anchor"), quality_anchor, "anchor", "rates")
    lr_b, q_b = _sorted_points(_log_rate(rate_test, "test"), quality_test, "test", "rates")
    lo, hi = max(lr_a[0], lr_b[0]), min(lr_a[-1], lr_b[-1])
    if not hi > lo:
        raise ValueError("the curves do not overlap in rate")
    int_a, int_b = _integrals(q_a, lr_a, q_b, lr_b, lo, hi, method)
    return float((int_b - int_a) / (hi - lo))


# ---------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------
def msssim_db(value) -> float:
    """MS-SSIM on a dB scale: −10·log10(1 − MS-SSIM) (inf for 1, NaN for NaN).

    >>> round(msssim_db(0.99), 9)
    20.0
    """
    v = float(value)
    if math.isnan(v):
        return math.nan
    if v >= 1.0:
        return math.inf
    return -10.0 * math.log10(1.0 - v)


def _msssim_scales(short_side: int) -> int:
    """Most MS-SSIM scales (≤ 5) whose coarsest level still holds one 11-tap window."""
    k = 0
    while k < len(_MSSSIM_WEIGHTS) and short_side > (_MSSSIM_WIN - 1) * 2 ** k:
        k += 1
    return k


def _ms_ssim_scales(X, Y, scales: int, data_range: float = 255.0) -> float:
    """MS-SSIM over ``scales`` levels, computed like :func:`pytorch_msssim.ms_ssim`
    (11-tap Gaussian window, σ = 1.5, K = (0.01, 0.03), valid filtering, 2×2 average
    pooling) with the first ``scales`` standard weights, rescaled to sum to one when
    fewer than five."""
    torch, F = require("ldem.metrics.ms_ssim", "torch", "torch.nn.functional")
    C = X.shape[1]
    c = torch.arange(_MSSSIM_WIN, dtype=torch.float32) - _MSSSIM_WIN // 2  # window built in float32, as
    g = torch.exp(-(c ** 2) / (2 * 1.5 ** 2))                               # pytorch_msssim does
    g = (g / g.sum()).to(X.dtype).reshape(1, 1, 1, -1).repeat(C, 1, 1, 1)

    def blur(t):  # separable, valid: along the height, then along the width
        t = F.conv2d(t, g.transpose(2, 3), groups=C)
        return F.conv2d(t, g, groups=C)

    C1, C2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    w = torch.tensor(_MSSSIM_WEIGHTS[:scales], dtype=X.dtype)
    if scales < len(_MSSSIM_WEIGHTS):
        w = w / w.sum()
    factors = []
    for level in range(scales):
        mu1, mu2 = blur(X), blur(Y)
        s11 = blur(X * X) - mu1 * mu1
        s22 = blur(Y * Y) - mu2 * mu2
        s12 = blur(X * Y) - mu1 * mu2
        cs_map = (2 * s12 + C2) / (s11 + s22 + C2)
        if level < scales - 1:
            factors.append(torch.relu(cs_map.flatten(2).mean(-1)))
            pad = [s % 2 for s in X.shape[2:]]
            X = F.avg_pool2d(X, kernel_size=2, padding=pad)
            Y = F.avg_pool2d(Y, kernel_size=2, padding=pad)
        else:
            ssim_map = (2 * mu1 * mu2 + C1) / (mu1 * mu1 + mu2 * mu2 + C1) * cs_map
            factors.append(torch.relu(ssim_map.flatten(2).mean(-1)))
    value = torch.prod(torch.stack(factors) ** w.view(-1, 1, 1), dim=0)
    return float(value.mean())


def ms_ssim(reference: np.ndarray, decoded: np.ndarray):
    """(MS-SSIM, number of scales) of two uint8 H×W×3 images; see the module docs.

    >>> import numpy as np
    >>> img = np.random.default_rng(0).integers(0, 256, (24, 30, 3), dtype=np.uint8)
    >>> ms_ssim(img, img)          # a 24-pixel side fits 2 scales
    (1.0, 2)
    >>> ms_ssim(img[:8], img[:8])  # too small for one window
    (nan, 0)
    """
    a = np.asarray(reference)
    b = np.asarray(decoded)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    scales = _msssim_scales(min(a.shape[:2]))
    if scales == 0:
        return math.nan, 0
    torch = require("ldem.metrics.ms_ssim", "torch")
    X = torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1), dtype=np.float32))[None]
    Y = torch.from_numpy(np.ascontiguousarray(b.transpose(2, 0, 1), dtype=np.float32))[None]
    with torch.inference_mode():
        if scales == len(_MSSSIM_WEIGHTS):
            from pytorch_msssim import ms_ssim as _lib_ms_ssim
            value = float(_lib_ms_ssim(X, Y, data_range=255, size_average=True))
        else:
            value = _ms_ssim_scales(X, Y, scales)
    return value, scales
