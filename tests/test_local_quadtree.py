"""ldem.local.quadtree: partition selection against brute force, the tree's coding order,
and the partition map in the stream (encode_partition / decode_partition)."""
import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ldem
from ldem.local import quadtree, stream


def _brute_force(costs, depth):
    """Fewest data bits over every partition of each top block (flags and indices free)."""
    C, ny, nx, A = costs.shape

    def best(c, k, y, x):
        y0, x0 = y << k, x << k
        y1, x1 = min((y + 1) << k, ny), min((x + 1) << k, nx)
        if y0 >= ny or x0 >= nx:
            return 0.0
        leaf = costs[c, y0:y1, x0:x1].sum(axis=(0, 1)).min()
        if k == 0 or (y1 - y0) * (x1 - x0) == 1:
            return leaf
        split = sum(best(c, k - 1, 2 * y + dy, 2 * x + dx) for dy, dx in itertools.product((0, 1), (0, 1)))
        return min(leaf, split)

    gy, gx = -(-ny // (1 << depth)), -(-nx // (1 << depth))
    return sum(best(c, depth, y, x) for c in range(C) for y in range(gy) for x in range(gx))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31), C=st.integers(1, 3), ny=st.integers(1, 9), nx=st.integers(1, 9),
       A=st.integers(1, 5), depth=st.integers(1, 3))
def test_partition_is_consistent_and_bounded_by_the_brute_force_optimum(seed, C, ny, nx, A, depth):
    rng = np.random.default_rng(seed)
    costs = rng.exponential(30, (C, ny, nx, A)) * (rng.random((C, ny, nx, A)) < 0.7)
    t = quadtree.select(costs, depth, precision=12)
    # The leaf map is what the flags and leaves say, and its data bits are the reported ones.
    assert np.array_equal(quadtree.leaf_map_from((C, ny, nx), depth, t.flags, t.leaves), t.leaf_map)
    assert t.data_bits == pytest.approx(np.take_along_axis(costs, t.leaf_map[..., None], -1).sum())
    # No partition codes the data in fewer bits than the optimum of data bits alone.
    assert t.data_bits >= _brute_force(costs, depth) - 1e-6
    # Flag counts per level follow from the flags above them.
    seen = []
    quadtree.read_flags((C, ny, nx), depth, lambda i, n: seen.append(n) or t.flags[i])
    assert seen == [len(f) for f in t.flags]


def test_free_side_bits_give_the_brute_force_optimum():
    rng = np.random.default_rng(3)
    costs = rng.exponential(50, (2, 8, 8, 3)) * 1000  # data bits dwarf the side bits
    t = quadtree.select(costs, 3, precision=16)
    assert t.data_bits <= _brute_force(costs, 3) * 1.001


def test_edge_nodes_split_only_over_blocks_inside_the_plane():
    can = quadtree.splittable((1, 3, 1), 2)
    assert can[0].all() == False and can[1][0].tolist() == [[True], [False]]  # noqa: E712
    assert can[2][0].tolist() == [[True]]


@pytest.mark.parametrize("codecs", [("rans",), ("deflate",), ("rans", "deflate")])
def test_partition_maps_round_trip_through_the_stream(codecs):
    rng = np.random.default_rng(5)
    for shape, depth, A in [((3, 7, 5), 2, 4), ((1, 1, 1), 1, 2), ((2, 16, 16), 3, 30)]:
        costs = rng.exponential(20, shape + (A,))
        t = quadtree.select(costs, depth, precision=14)
        codec, counts, data, sizes = stream.encode_partition(t, A, 14, codecs)
        assert stream.MAP_CODEC_NAMES[codec] in codecs and set(sizes) == set(codecs)
        side = stream.write_side_info(None, counts)
        _, back = stream.read_side_info(side, 0, 2 * depth + (A if codec == stream.MAP_RANS else 0), 14)
        out = stream.decode_partition(codec, data, back, shape, depth, A, 14)
        assert np.array_equal(out, t.leaf_map.reshape(-1))


def test_damaged_partition_maps_raise_decode_error():
    rng = np.random.default_rng(8)
    costs = rng.exponential(20, (4, 8, 8, 6))
    t = quadtree.select(costs, 3, precision=14)
    assert sum(len(f) for f in t.flags) > 3
    codec, counts, data, _ = stream.encode_partition(t, 6, 14, ("rans",))
    ok = 0
    for trial in range(300):
        bad, c = bytearray(data), counts.copy()
        if trial % 3 == 0:
            bad = bad[:int(rng.integers(len(bad)))]
        elif trial % 3 == 1:
            bad[int(rng.integers(len(bad)))] ^= 1 << int(rng.integers(8))
        else:
            c[int(rng.integers(len(c)))] += 1
        try:
            out = stream.decode_partition(codec, bytes(bad), c, (4, 8, 8), 3, 6, 14)
        except ldem.DecodeError:
            continue
        ok += 1
        assert out.shape == (256,) and out.min() >= 0 and out.max() < 6
    assert ok < 300


def test_select_quadtree_argument_errors():
    from ldem import _core
    fixed = np.zeros((12, 2))
    for kw, match in [(dict(depth=0), "depth"), (dict(depth=17), "depth"), (dict(C=-1), "grid"),
                      (dict(nbx=5), "fixed"), (dict(precision=20), "precision"), (dict(rounds=99), "rounds")]:
        args = dict(C=1, nby=3, nbx=4, depth=1, precision=12, rounds=1) | kw
        with pytest.raises(ValueError, match=match):
            _core.select_quadtree(fixed, None, args["C"], args["nby"], args["nbx"], args["depth"], args["precision"],
                                  rounds=args["rounds"])
    with pytest.raises(ValueError, match="image"):
        _core.select_quadtree(fixed, np.zeros((11, 1)), 1, 3, 4, 1, 12)
    with pytest.raises(ValueError, match="too many categories"):
        _core.select_quadtree(np.zeros((12, 4095)), np.zeros((12, 1)), 1, 3, 4, 1, 12)


def test_module_examples():
    import doctest
    assert doctest.testmod(quadtree).failed == 0
