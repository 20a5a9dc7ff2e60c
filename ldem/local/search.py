"""The encoder's search for one latent: block histograms, image models and selection.

Each block of ``y[C, H, W]`` takes the model with the fewest exact bits (data plus
its index in the block map) among its channel's global model, the static dictionary
and models built for this image. The search enters the C++ core once per stage: the
histograms, the fixed models' costs, one Lloyd fit per number of image models, and
one selection per stage over every block size.

>>> import numpy as np, ldem
>>> from ldem.local.search import SearchSettings, find_candidates
>>> g = ldem.Dictionary.from_pmfs([[0.1, 0.2, 0.4, 0.2, 0.1]] * 2, offsets=[-2] * 2)
>>> y = np.zeros((2, 16, 16), np.int32)
>>> cands, global_bits = find_candidates(y, [(8, 8)], SearchSettings(g), with_image_models=True)
>>> best = min(cands, key=lambda c: c.est_bits)
>>> best.block, best.num_image_models, best.est_bits < global_bits
((8, 8), 1, True)
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ldem import _core
from ldem.coder import block_grid
from ldem.dictionary import Dictionary
from ldem.local import quadtree
from ldem.local.stream import CONTEXT_SEGMENT_SHIFT

WINDOW = 2048  # centres are dense over [-2048, 2048); rarer values are escapes


def window_half(precision: int, margin: int = 0) -> int:
    """Half-width of the dense value window: a table of 2 * half + 2 * margin symbols
    plus the escape fits in 2^precision slots.

    >>> window_half(16), window_half(12), window_half(12, margin=2)
    (2048, 2047, 2045)
    """
    return min(WINDOW, ((1 << precision) - 1 - 2 * margin) // 2)


def histograms(y: np.ndarray, block, threads: int) -> "_core.BlockHistograms":
    """The block histograms of ``y`` (kept in C++: costs and clusters are computed there).

    >>> h = histograms(np.zeros((2, 4, 6), np.int32), (4, 3), threads=1)
    >>> h.num_blocks, h.num_channels
    (4, 2)
    """
    return _core.BlockHistograms(y, block[0], block[1], threads)


def candidate_block_sizes(block_sizes, shape, max_blocks: int) -> list:
    """The block sizes to try (clipped to the plane), less those whose block map would
    have more than ``max_blocks`` blocks.

    >>> candidate_block_sizes([(16, 16), (32, 32), (1, 1)], (1, 20, 8), max_blocks=100)
    [(16, 8), (20, 8)]
    """
    C, H, W = shape
    sizes = []
    for b in block_sizes:
        b = (max(1, min(b[0], H)), max(1, min(b[1], W)))
        if b not in sizes and math.prod(block_grid(shape, b)) <= max_blocks:
            sizes.append(b)
    return sizes


class ImageTables:
    """Image-dependent models: the integer dictionary and what is sent for it."""

    def __init__(self, tables: "_core.ImageTables"):
        self.tables = tables  # written to the side bits by stream.write_side_info
        self.dictionary = Dictionary(tables.dictionary)
        self.bits = int(tables.bits)  # exact size of the side bits that describe them

    def __len__(self) -> int:
        return len(self.tables)


@dataclass
class Candidate:
    """One coding of the latent: a block size (the leaf size of a partition), the image
    models and each block's category."""
    block: tuple
    image: Optional[ImageTables]
    categories: np.ndarray  # per block: 0 global, 1..S static, S+1.. image
    est_bits: float
    parts: dict = field(default_factory=dict)
    depth: int = 0  # partition levels over the blocks (0: fixed blocks)
    tree: Optional[quadtree.Tree] = None
    contexts: Optional[np.ndarray] = None  # the latent's context map, when context-coded

    @property
    def num_image_models(self) -> int:
        return 0 if self.image is None else len(self.image)


@dataclass(frozen=True)
class SearchSettings:
    """What the search uses of a :class:`ldem.LocalEntropyCoder`."""
    global_models: Dictionary
    static: Optional[Dictionary] = None
    max_image_models: int = 32
    table_bits: int = 8
    lloyd_iterations: int = 2
    threads: int = 1  # 0: every core
    seed: int = 0
    context_models: Optional[Dictionary] = None  # per-channel context families: the stream is context-coded
    context_static: Optional[Dictionary] = None  # static context families
    partitions: bool = True  # also try quadtree partitions when the block sizes nest by powers of 2

    @property
    def precision(self) -> int:
        return self.global_models.precision

    def fixed_costs(self, y: np.ndarray, h: "_core.BlockHistograms", level, ctx: Optional[np.ndarray]) -> np.ndarray:
        """Exact bits [B, 1 + S] of each block under its channel's global model (or
        context family) and under each static model (or family)."""
        if ctx is None:
            fixed = [h.channel_costs(self.global_models._impl, self.threads)[:, None]]
            if self.static is not None:
                fixed.append(h.costs(self.static._impl, self.threads))
            return np.hstack(fixed)
        fixed = [_core.context_block_costs(y, ctx, [self.context_models._impl], [True], level[0], level[1],
                                           own_channel=True, threads=self.threads)[:, None]]
        if self.context_static is not None:
            S = self.context_static.num_models // _core.NUM_CONTEXTS
            fixed.append(_core.context_block_costs(y, ctx, [self.context_static._impl], [True], level[0], level[1],
                                                   own_channel=False, first=0, count=S, threads=self.threads))
        return np.hstack(fixed)


def image_models(h: "_core.BlockHistograms", fixed_best: np.ndarray, A_fixed: int, s: SearchSettings):
    """Yields image models (an :class:`ImageTables`) and their block costs [B, I]
    for growing numbers of models.

    Each stage adds k-means++ seeds (blocks drawn in proportion to the bits the
    current models waste on them), then runs Lloyd iterations in which a block
    joins the image model with the fewest exact bits, or none if a fixed model is
    cheaper, and each model becomes the count-averaged histogram of its blocks.
    """
    B = h.num_blocks
    lo, V = h.window(window_half(s.precision))
    rng = np.random.default_rng(s.seed)
    own = h.self_costs()
    idx_guess = math.log2(A_fixed + s.max_image_models)
    current = fixed_best.copy()
    cluster = np.full(B, -1, np.int64)
    K_now = 0
    for K in [k for k in (1, 2, 4, 8, 16, 32, 64) if k <= s.max_image_models]:
        # A stage's seeds are drawn together, in proportion to excess bits, without repeats.
        excess = np.maximum(current - own - idx_guess, 0.0)
        cdf = np.cumsum(excess)
        seeds = []
        if cdf[-1] > 0:
            draws = np.searchsorted(cdf, rng.random(K - K_now) * cdf[-1], side="right")
            seeds = list(dict.fromkeys(int(min(b, B - 1)) for b in draws))
        if not seeds:
            return
        cluster[seeds] = K_now + np.arange(len(seeds))
        K_now += len(seeds)
        fit = h.fit_image_models(cluster, K_now, lo, V, s.table_bits, s.precision, fixed_best, idx_guess,
                                 s.lloyd_iterations, s.threads)
        if fit is None:
            return
        tables, costs, cluster, current = fit
        K_now = len(tables)
        yield ImageTables(tables), costs


def _partition_depth(level, blocks) -> int:
    """Levels of the quadtree from ``level`` to the largest of ``blocks`` when every size
    is ``level`` times a power of two (the same in both directions) and there are at
    least two sizes; else 0."""
    ks = []
    for b in blocks:
        fy, fx = b[0] // level[0], b[1] // level[1]
        if fy != fx or fy & (fy - 1) or b[0] % level[0] or b[1] % level[1]:
            return 0
        ks.append(fy.bit_length() - 1)
    return min(max(ks), quadtree.MAX_DEPTH) if len(blocks) > 1 else 0


def find_candidates(y: np.ndarray, sizes: list, s: SearchSettings, with_image_models: bool):
    """Candidates over the block ``sizes`` and image-model counts, and the global data bits.

    With ``s.context_models``, the global and static costs are those of the context
    families (image models stay context-free). Block costs are additive, so when every candidate block size is a multiple of
    the smallest one, costs are computed once at the smallest size and summed to
    the larger ones; image models are clustered at the smallest size.
    """
    base = (min(b[0] for b in sizes), min(b[1] for b in sizes))
    nested = all(b[0] % base[0] == 0 and b[1] % base[1] == 0 for b in sizes)
    groups = [(base, sizes)] if nested else [(b, [b]) for b in sizes]
    cands = []
    global_bits = None
    ctx = _core.context_map(y, s.threads, segment_shift=CONTEXT_SEGMENT_SHIFT) if s.context_models is not None else None
    fit_images = with_image_models and s.max_image_models > 0
    for level, blocks in groups:
        # The block histograms serve the context-free costs and the image models only.
        h = histograms(y, level, s.threads) if ctx is None or fit_images else None
        grid = block_grid(y.shape, level)
        fixed = s.fixed_costs(y, h, level, ctx)
        global_bits = float(fixed[:, 0].sum())
        factors = {b: (b[0] // level[0], b[1] // level[1]) for b in blocks}
        depth = _partition_depth(level, blocks) if s.partitions else 0

        def consider(image, image_costs):
            # Every block size at once: costs at `level` are pooled to each size in C++.
            jobs = [(fixed, image_costs, *grid, *factors[b]) for b in blocks]
            best = math.inf
            selections = _core.select_blocks(jobs, s.precision, threads=s.threads)
            tbits = 0 if image is None else image.bits
            for b, (categories, data_bits, map_bits) in zip(blocks, selections):
                est = data_bits + map_bits + tbits
                cands.append(Candidate(b, image, categories.astype(np.int64), est,
                                       dict(data=data_bits, map=map_bits, tables=float(tbits)), contexts=ctx))
                best = min(best, est)
            if depth:
                tree = quadtree.select(fixed.reshape(*grid, -1), depth, s.precision, image=image_costs,
                                       threads=s.threads)
                est = tree.data_bits + tree.map_bits + tbits + 2 * depth  # + the flag counts
                cands.append(Candidate(level, image, tree.leaf_map.reshape(-1), est,
                                       dict(data=tree.data_bits, map=tree.map_bits, tables=float(tbits)),
                                       depth, tree, ctx))
                best = min(best, est)
            return best

        best_here = consider(None, None)
        if fit_images and h.num_blocks > 1:
            worse = 0  # stop growing after two stages that do not help
            for image, image_costs in image_models(h, fixed.min(axis=1), fixed.shape[1], s):
                est = consider(image, image_costs)
                if est < best_here:
                    best_here, worse = est, 0
                else:
                    worse += 1
                    if worse == 2:
                        break
    return cands, global_bits
