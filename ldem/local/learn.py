"""Learning the fixed models of local entropy coding from training latents:
per-channel global models (:func:`fit_global_models`) and a static dictionary of
block models (:func:`learn_dictionary`).

>>> import numpy as np
>>> from ldem.local.learn import fit_global_models
>>> y = np.zeros((2, 8, 8), np.int32)
>>> fit_global_models([y], precision=12).num_models
2
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ldem import _core
from ldem.dictionary import Dictionary
from ldem.local.search import histograms, window_half

__all__ = ["fit_global_models", "learn_dictionary"]


def _latent_list(latents) -> list[np.ndarray]:
    if isinstance(latents, np.ndarray):
        latents = [latents] if latents.ndim == 3 else list(latents)
    out = []
    for i, y in enumerate(latents):
        if not isinstance(y, np.ndarray) or y.dtype != np.int32 or y.ndim != 3:
            raise TypeError(f"latents[{i}] must be an int32 array [C, H, W]")
        out.append(np.ascontiguousarray(y))
    if not out:
        raise ValueError("latents must not be empty")
    return out


def _smoothed_table(row: np.ndarray, lo: int, margin: int, alpha: float):
    """(offset, counts, escape) with every symbol of the widened support kept cheap."""
    nz = np.flatnonzero(row)
    if len(nz) == 0:
        return None
    a, b = max(int(nz[0]) - margin, 0), min(int(nz[-1]) + margin, len(row) - 1)
    c = row[a:b + 1].astype(np.float64)
    total = c.sum()
    scale = 2**40 / total
    w = np.floor(c * scale + alpha * scale * total / len(c)).astype(np.uint64)
    return lo + a, w, int(max(1, alpha * 2**40 / 16))


def fit_global_models(latents, precision: int = 16, margin: int = 2, alpha: float = 1e-4) -> Dictionary:
    """Per-channel models (the fixed global entropy model) from training latents.

    Model ``c`` covers the values seen in channel ``c`` widened by ``margin``; a small
    ``alpha`` floor keeps unseen symbols cheap and the escape covers the rest.

    >>> import numpy as np, ldem
    >>> y = np.random.default_rng(0).laplace(0, 2, (3, 16, 16)).round().astype(np.int32)
    >>> g = ldem.fit_global_models([y]); g.num_models
    3
    """
    ys = _latent_list(latents)
    C = ys[0].shape[0]
    if any(y.shape[0] != C for y in ys):
        raise ValueError("all latents must have the same number of channels")
    offsets, weights, escapes = [], [], []
    for c in range(C):
        half = window_half(precision, margin)
        v = np.concatenate([y[c].reshape(-1) for y in ys])
        v = v[(v >= -half) & (v < half)]
        if len(v) == 0:
            v = np.zeros(1, np.int64)
        lo = int(v.min())
        row = np.bincount(v - lo)
        o, w, e = _smoothed_table(row, lo, margin, alpha)
        offsets.append(o)
        weights.append(w)
        escapes.append(e)
    return Dictionary.from_frequencies(weights, offsets, precision, escape=np.asarray(escapes))


def learn_dictionary(latents, num_models: int, block=(16, 16), seed: int = 0, *, iterations: int = 10,
                     precision: int = 16, global_models: Optional[Dictionary] = None, margin: int = 2,
                     alpha: float = 1e-4, threads: Optional[int] = None, progress: bool = True) -> Dictionary:
    """Learns a static dictionary of ``num_models`` block models from training latents.

    k-means++ seeding on coding cost, then Lloyd iterations: blocks go to the model
    with the fewest exact bits, centres are count-averaged histograms. With
    ``global_models``, blocks that their channel's global model codes best do not pull
    the centres, so the dictionary complements the global models. Deterministic for a
    ``seed``; smoothed so unseen symbols stay cheap.

    >>> import numpy as np, ldem
    >>> rng = np.random.default_rng(0)
    >>> ys = [rng.laplace(0, s, (4, 32, 32)).round().astype(np.int32) for s in (0.3, 3.0)]
    >>> d = ldem.learn_dictionary(ys, num_models=4, block=(8, 8), progress=False)
    >>> d.num_models <= 4
    True
    """
    if not isinstance(num_models, (int, np.integer)) or num_models < 1:
        raise ValueError("num_models must be a positive int")
    ys = _latent_list(latents)
    th = 0 if threads is None else int(threads)
    h = _core.BlockHistograms.concat([histograms(y, block, th) for y in ys])
    B = h.num_blocks
    if B == 0:
        raise ValueError("latents have no blocks")
    lo, V = h.window(window_half(precision))
    rng = np.random.default_rng(seed)
    own = h.self_costs()
    if global_models is not None:
        base = h.channel_costs(global_models._impl, th)
    else:
        base = np.full(B, np.inf)
    bar = None
    if progress:
        try:
            from tqdm.auto import tqdm
            bar = tqdm(total=num_models + iterations, desc="learn_dictionary", leave=False)
        except ImportError:
            bar = None

    def build(cluster, K):
        counts = h.cluster_counts(cluster, K, lo, V)
        tabs = [t for t in (_smoothed_table(r, lo, margin, alpha) for r in counts) if t]
        if not tabs:
            return None
        return Dictionary.from_frequencies([w for _, w, _ in tabs], [o for o, _, _ in tabs], precision,
                                           escape=np.asarray([e for _, _, e in tabs]))

    # k-means++ seeding: each new seed drawn with probability proportional to the bits
    # the current models waste on a block.
    seeds = [int(rng.integers(B))]
    current = np.minimum(base, h.costs(build(_one_hot(B, seeds), 1)._impl, th)[:, 0])
    if bar:
        bar.update(1)
    while len(seeds) < num_models:
        excess = np.maximum(current - own, 0.0)
        if excess.sum() <= 0:
            break
        b = int(rng.choice(B, p=excess / excess.sum()))
        seeds.append(b)
        one = np.full(B, -1, np.int64)
        one[b] = 0
        current = np.minimum(current, h.costs(build(one, 1)._impl, th)[:, 0])
        if bar:
            bar.update(1)
    cluster = np.full(B, -1, np.int64)
    cluster[seeds] = np.arange(len(seeds))
    d = build(cluster, len(seeds))
    for _ in range(iterations):
        costs = h.costs(d._impl, th)
        new = np.where(costs.min(axis=1) < base, costs.argmin(axis=1), -1)
        if bar:
            bar.update(1)
        if np.array_equal(new, cluster):
            break
        cluster = new
        nd = build(cluster, d.num_models)
        if nd is None:
            break
        d = nd
    if bar:
        bar.close()
    return d


def _one_hot(B: int, seeds: list[int]) -> np.ndarray:
    c = np.full(B, -1, np.int64)
    c[seeds] = np.arange(len(seeds))
    return c
