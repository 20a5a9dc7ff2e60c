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
from ldem.local.stream import CONTEXT_SEGMENT_SHIFT

__all__ = ["fit_global_models", "learn_dictionary", "fit_context_models", "learn_context_dictionary"]

NUM_CONTEXTS = _core.NUM_CONTEXTS


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


# ----------------------------------------------------------------------------------
# Context families (stream version 2): a family is NUM_CONTEXTS tables, one per causal
# context (see csrc/ldem/context.h); model k of a family codes the symbols whose context
# is k.

def _contexts(ys) -> list:
    """The context (uint8) of every symbol of each latent, as the coder cuts its streams."""
    return [_core.context_map(y, segment_shift=CONTEXT_SEGMENT_SHIFT) for y in ys]


def _value_counts(ys, ctxs, rows, num_rows: int, K: int, half: int):
    """(counts[num_rows, K, V], lo): counts[r, k, v - lo] of the values in [-half, half)
    (others are escapes), where ``ctxs[i]`` are latent i's contexts and ``rows(i, y)``
    gives each symbol's row (or -1 to skip it)."""
    lo = min(min(int(y.min()), 0) for y in ys if y.size) if any(y.size for y in ys) else 0
    hi = max(max(int(y.max()), 0) for y in ys if y.size) if any(y.size for y in ys) else 0
    lo, hi = max(min(lo, -1), -half), min(max(hi, 1), half - 1)
    V = hi - lo + 1
    total = np.zeros(num_rows * K * V, np.int64)
    for i, y in enumerate(ys):
        r = np.asarray(rows(i, y), np.int64).reshape(-1)
        ctx = ctxs[i].reshape(-1).astype(np.int64)
        v = y.reshape(-1).astype(np.int64)
        keep = (r >= 0) & (v >= lo) & (v <= hi)
        idx = (r[keep] * K + ctx[keep]) * V + (v[keep] - lo)
        total += np.bincount(idx, minlength=total.size)
    return total.reshape(num_rows, K, V), lo


def _family_tables(counts: np.ndarray, lo: int, precision: int, prior: float, margin: int,
                   alpha: float = 1e-4, tail: float = 1e-4) -> Dictionary:
    """Tables of families ``counts[F, K, V]``: each context's counts plus ``prior``
    pseudo-counts spread as the family's pooled counts (on the family's support widened by
    ``margin``, with an ``alpha`` floor so unseen symbols stay cheap). Each table keeps the
    shortest range around 0 that leaves at most ``tail`` of its mass outside; the escape
    codes the rest (weighted by that mass, at least ``alpha / 16``)."""
    F, K, V = counts.shape
    weights, offsets, escapes = [], [], []
    zero = -lo
    for f in range(F):
        pooled = counts[f].sum(0).astype(np.float64)
        nz = np.flatnonzero(pooled)
        a, b = (max(min(int(nz[0]), zero) - margin, 0), min(max(int(nz[-1]), zero) + margin, V - 1)) if len(nz) \
            else (max(zero - 1, 0), min(zero + 1, V - 1))
        base = pooled[a:b + 1] + alpha * max(pooled.sum(), 1.0) / (b - a + 1)
        base /= base.sum()
        for k in range(K):
            w = counts[f, k, a:b + 1].astype(np.float64) + prior * base
            p = w / w.sum()
            # Widen [i, j] around 0 towards the heavier side until the tails hold <= tail.
            i = j = zero - a
            left, right = p[:i].sum(), p[j + 1:].sum()
            while left + right > tail and (i > 0 or j + 1 < len(p)):
                if j + 1 < len(p) and (right >= left or i == 0):
                    j += 1
                    right -= p[j]
                else:
                    i -= 1
                    left -= p[i]
            left, right = p[:i].sum(), p[j + 1:].sum()
            keep = p[i:j + 1]
            weights.append(np.floor(keep * 2**40).astype(np.uint64) + 1)
            offsets.append(lo + a + i)
            escapes.append(int(max(alpha / 16, left + right) * 2**40))
    return Dictionary.from_frequencies(weights, offsets, precision, escape=np.asarray(escapes))


def fit_context_models(latents, precision: int = 16, prior: float = 16.0, margin: int = 2) -> Dictionary:
    """Per-channel context families (the global models of stream version 2): model
    ``c * NUM_CONTEXTS + k`` codes channel ``c``'s symbols of context ``k``.

    Each table is its context's counts plus ``prior`` pseudo-counts spread as the
    channel's counts over all contexts, so rare contexts fall back to the channel.

    >>> import numpy as np, ldem
    >>> y = np.random.default_rng(0).laplace(0, 1, (3, 16, 16)).round().astype(np.int32)
    >>> ldem.fit_context_models([y]).num_models == 3 * ldem.local.learn.NUM_CONTEXTS
    True
    """
    ys = _latent_list(latents)
    C = ys[0].shape[0]
    if any(y.shape[0] != C for y in ys):
        raise ValueError("all latents must have the same number of channels")
    K = NUM_CONTEXTS
    channel = [np.broadcast_to(np.arange(C, dtype=np.int64)[:, None, None], y.shape) for y in ys]
    counts, lo = _value_counts(ys, _contexts(ys), lambda i, y: channel[i], C, K, window_half(precision, margin))
    return _family_tables(counts, lo, precision, prior, margin)


def learn_context_dictionary(latents, num_families: int, context_models: Dictionary, block=(16, 16),
                             seed: int = 0, *, iterations: int = 10, precision: int = 16,
                             prior: float = 16.0, margin: int = 2, clip: int = 8,
                             max_blocks: int = 200_000) -> Dictionary:
    """A static dictionary of ``num_families`` context families learned from training
    latents: k-means++ seeds and Lloyd iterations over ``block`` histograms of
    (context, value) (values clipped to ``[-clip, clip]`` while clustering). Blocks that
    their channel's family in ``context_models`` codes best do not pull the centres.

    >>> import numpy as np, ldem
    >>> rng = np.random.default_rng(0)
    >>> ys = [rng.laplace(0, s, (4, 32, 32)).round().astype(np.int32) for s in (0.3, 3.0)]
    >>> g = ldem.fit_context_models(ys)
    >>> d = ldem.learn_context_dictionary(ys, 3, g, block=(8, 8))
    >>> d.num_models % ldem.local.learn.NUM_CONTEXTS, d.num_models <= 3 * ldem.local.learn.NUM_CONTEXTS
    (0, True)
    """
    if not isinstance(num_families, (int, np.integer)) or num_families < 1:
        raise ValueError("num_families must be a positive int")
    ys = _latent_list(latents)
    K, Vc = NUM_CONTEXTS, 2 * clip + 1
    bh, bw = block
    # Dense clipped histograms of every block, and the channel family's cost table.
    hists, chans, shapes = [], [], []
    ctxs = _contexts(ys)
    for y, ctx in zip(ys, ctxs):
        C, H, W = y.shape
        nby, nbx = -(-H // bh), -(-W // bw)
        b = (np.arange(C)[:, None, None] * nby + (np.arange(H) // bh)[None, :, None]) * nbx \
            + (np.arange(W) // bw)[None, None, :]
        idx = (b * K + ctx.astype(np.int64)) * Vc + np.clip(y, -clip, clip) + clip
        hists.append(np.bincount(idx.ravel(), minlength=C * nby * nbx * K * Vc).reshape(-1, K * Vc))
        chans.append(np.repeat(np.arange(C), nby * nbx))
        shapes.append((nby, nbx))
    h = np.concatenate(hists).astype(np.float32)
    ch = np.concatenate(chans)
    v = np.arange(-clip, clip + 1)

    def cost_table(d: Dictionary, first: int, count: int) -> np.ndarray:
        out = np.empty((count, K * Vc), np.float32)
        for f in range(count):
            for k in range(K):
                m = (first + f) * K + k
                off, cst = d._impl.offset(m), d._impl.costs(m)
                i = np.clip(v - off, 0, len(cst) - 1)
                inside = (v >= off) & (v - off < len(cst) - 1)
                out[f, k * Vc:(k + 1) * Vc] = np.where(inside, cst[i], cst[-1] + 8)
        return out

    C = ys[0].shape[0]
    own_table = cost_table(context_models, 0, C)
    own = np.einsum("bj,bj->b", h, own_table[ch])
    rng = np.random.default_rng(seed)
    pick = np.flatnonzero(h.sum(1) > 0)
    if len(pick) > max_blocks:
        pick = np.sort(rng.choice(pick, max_blocks, replace=False))
    hs, owns = h[pick], own[pick]
    pooled = hs.sum(0).reshape(K, Vc) + 1e-3
    prior_t = prior * pooled / pooled.sum(1, keepdims=True)

    def centres(assign, F):
        cnt = np.zeros((F, K * Vc), np.float64)
        np.add.at(cnt, assign[assign >= 0], hs[assign >= 0])
        p = cnt.reshape(F, K, Vc) + prior_t[None]
        return (-np.log2(p / p.sum(-1, keepdims=True))).reshape(F, K * Vc).astype(np.float32)

    # k-means++ seeding by the bits the channel families waste on a block.
    seeds = [int(rng.choice(len(hs), p=owns / owns.sum()))] if owns.sum() > 0 else []
    if not seeds:
        raise ValueError("latents have no symbols to learn from")
    best = np.minimum(owns, hs @ centres(_one_hot(len(hs), seeds), 1)[0])
    while len(seeds) < num_families:
        gain = best
        if gain.sum() <= 0:
            break
        seeds.append(int(rng.choice(len(hs), p=gain / gain.sum())))
        one = np.full(len(hs), -1, np.int64)
        one[seeds[-1]] = 0
        best = np.minimum(best, hs @ centres(one, 1)[0])
    assign = _one_hot(len(hs), seeds)
    F = len(seeds)
    for _ in range(iterations):
        costs = hs @ centres(assign, F).T
        new = np.where(costs.min(1) < owns, costs.argmin(1), -1)
        if np.array_equal(new, assign):
            break
        assign = new
    used = np.unique(assign[assign >= 0])
    # Final tables from the full-range counts of each family's member blocks.
    family = np.full(len(h), -1, np.int64)
    family[pick] = np.where(assign >= 0, np.searchsorted(used, assign), -1)
    starts = np.cumsum([0] + [len(x) for x in hists])
    rows = []
    for i, y in enumerate(ys):
        nby, nbx = shapes[i]
        f = family[starts[i]:starts[i + 1]].reshape(y.shape[0], nby, nbx)
        rows.append(np.repeat(np.repeat(f, bh, axis=1), bw, axis=2)[:, :y.shape[1], :y.shape[2]])
    counts, lo = _value_counts(ys, ctxs, lambda i, y: rows[i], len(used), K, window_half(precision, margin))
    return _family_tables(counts, lo, precision, prior, margin)
