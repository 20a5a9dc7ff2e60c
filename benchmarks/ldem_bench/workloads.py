"""The coder workloads of the design notes (§3), generated exactly from numpy seed 0.

Workload A: 192 x 32 x 48 symbols in [-32, 32]; channel c has one discretized Laplace
table, scale log-uniform in [0.2, 8]; symbols are drawn from that table.
Workload B: the same size; every symbol indexes one of 64 discretized Gaussians
(CompressAI's GaussianConditional scale table, exp(linspace(log 0.11, log 256, 64))),
index uniform, support [-L, L] per scale with tail mass ~1e-9.
"""
from __future__ import annotations

import math

import numpy as np

SHAPE = (192, 32, 48)


def _laplace_pmf(scale: float, lo: int, hi: int) -> np.ndarray:
    v = np.arange(lo, hi + 1, dtype=np.float64)
    cdf = lambda t: np.where(t < 0, 0.5 * np.exp(t / scale), 1 - 0.5 * np.exp(-t / scale))
    p = cdf(v + 0.5) - cdf(v - 0.5)
    return p / p.sum()


def _gauss_pmf(scale: float, lo: int, hi: int) -> np.ndarray:
    v = np.arange(lo, hi + 1, dtype=np.float64)
    erf = np.vectorize(math.erf)
    cdf = lambda t: 0.5 * (1 + erf(t / (scale * math.sqrt(2))))
    p = cdf(v + 0.5) - cdf(v - 0.5)
    return np.maximum(p, 0) / p.sum()


def workload_a(seed: int = 0):
    """Returns (symbols int32 [192,32,48], pmfs [192, 65], offsets [192], model map per channel)."""
    rng = np.random.default_rng(seed)
    C, H, W = SHAPE
    scales = np.exp(rng.uniform(np.log(0.2), np.log(8.0), size=C))
    pmfs = np.stack([_laplace_pmf(s, -32, 32) for s in scales])
    symbols = np.empty(SHAPE, np.int32)
    for c in range(C):
        symbols[c] = rng.choice(65, size=(H, W), p=pmfs[c]) - 32
    return symbols, pmfs, np.full(C, -32), np.arange(C, dtype=np.int32).reshape(C, 1, 1)


def workload_b(seed: int = 0):
    """Returns (symbols, list of 64 pmfs, offsets [64], per-symbol index map [192,32,48])."""
    rng = np.random.default_rng(seed)
    scales = np.exp(np.linspace(np.log(0.11), np.log(256.0), 64))
    pmfs, offsets = [], []
    for s in scales:
        L = max(1, int(math.ceil(s * 6.1)))  # tail mass < 1e-9
        pmfs.append(_gauss_pmf(s, -L, L))
        offsets.append(-L)
    index = rng.integers(0, 64, size=SHAPE).astype(np.int32)
    symbols = np.empty(SHAPE, np.int32)
    flat_i, flat_s = index.ravel(), symbols.reshape(-1)
    for k in range(64):
        sel = np.flatnonzero(flat_i == k)
        flat_s[sel] = rng.choice(len(pmfs[k]), size=sel.size, p=pmfs[k]) + offsets[k]
    return symbols, pmfs, np.asarray(offsets), index


def workload_lowrate(seed: int = 0, bits_per_symbol: float = 0.267):
    """Workload A's shape with the Laplace scales shrunk until the ideal rate is reached
    (0.267 bit/symbol is 0.2 bpp for a 768 x 512 image). Returns (symbols, pmfs,
    offsets, per-channel model map)."""
    rng = np.random.default_rng(seed)
    C, H, W = SHAPE
    u = rng.uniform(0, 1, size=C)

    def pmfs(alpha):
        scales = np.exp(np.log(0.05) + u * (np.log(8) - np.log(0.05))) * alpha
        with np.errstate(over="ignore"):
            return np.stack([_laplace_pmf(s, -32, 32) for s in scales])

    lo, hi = 1e-3, 1.0
    for _ in range(40):
        mid = (lo * hi) ** 0.5
        p = pmfs(mid)
        h = -(p * np.log2(np.maximum(p, 1e-300))).sum(1).mean()
        lo, hi = (mid, hi) if h < bits_per_symbol else (lo, mid)
    p = pmfs(lo)
    y = np.empty(SHAPE, np.int32)
    for c in range(C):
        y[c] = rng.choice(65, size=(H, W), p=p[c]) - 32
    return y, p, np.full(C, -32), np.arange(C, dtype=np.int32).reshape(C, 1, 1)
