"""Variable block partitions: a quadtree per top block of each channel plane.

Each channel plane is cut into top blocks of ``leaf << depth`` latent samples; each node
of a top block's quadtree either is a leaf (its samples take one category, as a fixed
block would) or splits into its four children, down to ``leaf`` blocks. A node splits
only when it covers more than one leaf block of the plane (edge nodes are clipped).

Node order (the stream's, and the decoder's): nodes of level ``k`` (size
``leaf << k``) form the grid ``[C, ceil(nby / 2^k), ceil(nbx / 2^k)]`` over the leaf
grid ``[C, nby, nbx]``; a node exists when it is a top node or its parent split. The
split flags are listed level by level from the top, each level in raster order of its
existing, splittable nodes; the leaves' categories follow, level by level from the top,
in raster order. The encoder chooses the partition bottom-up by exact data bits plus
estimated index and flag bits (:func:`select`).

>>> import numpy as np
>>> from ldem.local import quadtree
>>> costs = np.zeros((1, 2, 2, 2)); costs[0, 0, 0] = [0, 50]  # one corner wants category 0
>>> costs[..., 0] += 20; costs[0, 0, 0, 0] = 0
>>> t = quadtree.select(costs, depth=1, precision=12)
>>> t.flags, t.leaves.tolist(), t.leaf_map.tolist()
([array([1], dtype=uint8)], [0, 1, 1, 1], [[[0, 1], [1, 1]]])
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ldem import _core
from ldem.errors import DecodeError

MAX_DEPTH = 6


def _grid(shape, k: int):
    C, ny, nx = shape
    return C, -(-ny // (1 << k)), -(-nx // (1 << k))


def _expand(a: np.ndarray, shape) -> np.ndarray:
    """The parent value of every node of the child grid ``shape``."""
    return np.repeat(np.repeat(a, 2, axis=1), 2, axis=2)[:, :shape[1], :shape[2]]


def splittable(leaf_shape, depth: int) -> list:
    """Per level k (0..depth): which nodes cover more than one leaf block."""
    C, ny, nx = leaf_shape
    out = []
    for k in range(depth + 1):
        _, gy, gx = _grid(leaf_shape, k)
        h = np.minimum((np.arange(gy) + 1) << k, ny) - (np.arange(gy) << k)
        w = np.minimum((np.arange(gx) + 1) << k, nx) - (np.arange(gx) << k)
        out.append(np.broadcast_to((h[:, None] * w[None, :] > 1)[None], (C, gy, gx)))
    return out


@dataclass
class Tree:
    """A partition: split flags per level (top first), leaf categories (stream order),
    the category of every leaf block, and the estimated bits."""
    flags: list
    leaves: np.ndarray
    leaf_map: np.ndarray
    data_bits: float = 0.0
    map_bits: float = 0.0


def select(costs: np.ndarray, depth: int, precision: int, rounds: int = 1, image=None, threads: int = 1) -> Tree:
    """The partition of the leaf grid ``costs[C, nby, nbx, F]`` (exact bits of each leaf
    block under each fixed category; ``image[C * nby * nbx, I]`` adds image categories)
    into quadtrees of ``depth`` levels with the fewest bits: data, plus index bits of each
    leaf's category and flag bits of each split decision, under tables re-estimated
    ``rounds`` times from the counts (as the coder's tables). The search runs in C++
    (``csrc/ldem/quadtree.h``)."""
    C, ny, nx, F = costs.shape
    fixed = np.ascontiguousarray(costs.reshape(C * ny * nx, F), np.float64)
    if image is not None:
        image = np.ascontiguousarray(image, np.float64)
    flags, leaves, leaf_map, data_bits, map_bits = _core.select_quadtree(
        fixed, image, C, ny, nx, depth, precision, rounds=rounds, threads=threads)
    return Tree([np.asarray(f, np.uint8) for f in flags], np.asarray(leaves, np.int64),
                np.asarray(leaf_map, np.int64), float(data_bits), float(map_bits))


def read_flags(leaf_shape, depth: int, flags_of) -> tuple:
    """Walks a partition from the top: ``flags_of(i, n)`` gives the ``n`` split flags of
    level ``i`` (0 = the top), as the nodes above it make them; returns (the flags, the
    number of leaves per level from the top, their masks). Raises
    :class:`ldem.DecodeError` if a level has the wrong number of flags."""
    can = splittable(leaf_shape, depth)
    exists = np.ones(_grid(leaf_shape, depth), bool)
    flags, counts, masks = [], [], []
    for i, k in enumerate(range(depth, -1, -1)):
        split = np.zeros(exists.shape, bool)
        if k > 0:
            where = exists & can[k]
            f = np.asarray(flags_of(i, int(where.sum())))
            if len(f) != int(where.sum()):
                raise DecodeError("block partition: wrong number of split flags")
            split[where] = f.astype(bool)
            flags.append(f)
        is_leaf = exists & ~split
        counts.append(int(is_leaf.sum()))
        masks.append(is_leaf)
        if k > 0:
            exists = _expand(exists & split, _grid(leaf_shape, k - 1))
    return flags, counts, masks


def leaves_from_flags(leaf_shape, depth: int, flags: list) -> tuple:
    """(number of leaves per level from the top, existence masks) implied by the flags;
    raises :class:`ldem.DecodeError` if a level has the wrong number of flags."""
    return read_flags(leaf_shape, depth, lambda i, n: flags[i])[1:]


def place_leaves(leaf_shape, depth: int, counts: list, masks: list, leaves: np.ndarray) -> np.ndarray:
    """The category of every leaf block from the leaves of :func:`read_flags`' walk."""
    if len(leaves) != sum(counts):
        raise DecodeError("block partition: wrong number of leaves")
    out = np.full(masks[0].shape, -1, np.int64)
    pos = 0
    for i, k in enumerate(range(depth, -1, -1)):
        out[masks[i]] = leaves[pos:pos + counts[i]]
        pos += counts[i]
        if k > 0:
            out = _expand(out, _grid(leaf_shape, k - 1))
    return out


def leaf_map_from(leaf_shape, depth: int, flags: list, leaves: np.ndarray) -> np.ndarray:
    """The category of every leaf block from a partition's flags and leaf categories."""
    return place_leaves(leaf_shape, depth, *leaves_from_flags(leaf_shape, depth, flags), leaves)
