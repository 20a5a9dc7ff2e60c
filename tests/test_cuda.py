"""The CUDA engine (csrc/cuda, ldem.cuda).

Three groups:
- always: ``cuda_device_count()`` answers without raising when the build has CUDA.
- host emulation (in every build, with or without the CUDA engine): the kernels'
  per-warp algorithms (csrc/cuda/warp.h) run on the CPU with a simulated 32-lane
  warp, through the same header, CRC and cost code the kernels use, and must match
  the CPU coder byte for byte, accept and reject the same damaged streams, and give
  bit-identical block costs. With the CUDA engine built, also the stream planning
  rule and its rate overhead.
- GPU (skipped without a GPU, torch or a CUDA build): CPU == GPU bytes, round trips,
  CPU <-> GPU decoding, damaged streams raising ldem.DecodeError, batches, costs and
  selection, argument errors.
"""
import doctest
import zlib

import numpy as np
import pytest

import ldem
import ldem.cuda
from ldem import _core

HAS_BUILD = bool(ldem.build_info()["cuda"])
try:
    import torch
except ImportError:  # torch is optional
    torch = None
HAS_GPU = (HAS_BUILD and torch is not None and _core.cuda_device_count() > 0
           and torch.cuda.is_available())

needs_build = pytest.mark.skipif(not HAS_BUILD, reason="ldem was built without the CUDA engine")
needs_gpu = pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA GPU, torch and a CUDA build")

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


# -- helpers ------------------------------------------------------------------------------------
def laplace_pmf(scale, lo=-32, hi=32):
    v = np.arange(lo, hi + 1, dtype=np.float64)
    p = np.exp(-np.abs(v) / scale)
    return p / p.sum()


def make_case(seed, C=3, H=19, W=23, block=(4, 5), K=4, escapes=0.02, precision=16, scale=None):
    """Symbols with escapes and int32 extremes, a random model map and a K-model dictionary."""
    rng = np.random.default_rng(seed)
    scales = rng.uniform(0.2, 6, size=K) if scale is None else np.full(K, scale)
    pmfs = [laplace_pmf(s, -8, 8) for s in scales]
    d = ldem.Dictionary.from_pmfs(pmfs, offsets=[-8] * K, precision=precision, escape=1e-3)
    y = rng.laplace(0, 2, size=(C, H, W)).round().astype(np.int32)
    wild = rng.random(y.shape) < escapes
    y[wild] = rng.integers(INT32_MIN, INT32_MAX, size=int(wild.sum()), endpoint=True, dtype=np.int64)
    if y.size >= 2:
        y.flat[0], y.flat[-1] = INT32_MIN, INT32_MAX
    grid = ldem.block_grid(y.shape, block)
    models = rng.integers(0, K, size=grid).astype(np.int32)
    return y, models, d


def lowrate_latent(seed=0, bits_per_symbol=0.267):
    """Workload A's shape at a low ideal rate (0.2 bpp for a 768 x 512 image)."""
    from ldem_bench.workloads import workload_lowrate
    y, p, offsets, models = workload_lowrate(seed, bits_per_symbol)
    return y, models, ldem.Dictionary.from_pmfs(p, offsets), y.shape[1:]


def damaged(data: bytes, rng, count):
    """Bit flips, truncations, appended junk and overwritten header bytes."""
    out = []
    for i in range(count):
        b = bytearray(data)
        kind = i % 4
        if kind == 0 and b:
            b[rng.integers(len(b))] ^= 1 << int(rng.integers(8))
        elif kind == 1:
            b = b[:int(rng.integers(len(b) + 1))]
        elif kind == 2:
            b += bytes(rng.integers(0, 256, size=int(rng.integers(1, 9)), dtype=np.uint8))
        elif b:
            b[int(rng.integers(min(len(b), 12)))] = int(rng.integers(256))
        out.append(bytes(b))
    return out


def cpu_decode(data, models, d, shape, block):
    try:
        return ldem.decode(data, models, d, shape, block=block)
    except ldem.DecodeError:
        return None


# -- always ------------------------------------------------------------------------------------
def test_cuda_available_is_a_bool():
    assert isinstance(ldem.cuda_available(), bool)
    if not HAS_BUILD:
        assert not hasattr(_core, "cuda_device_count") or _core.cuda_device_count() >= 0


@needs_build
def test_device_count_never_raises():
    n = _core.cuda_device_count()
    assert isinstance(n, int) and n >= 0


# -- host emulation of the kernels -------------------------------------------------------------
PARAMS = [(0, 8), (2, 9), (3, 8), (5, 8), (5, 10), (5, 12), (4, 17), (1, 31)]


@pytest.mark.parametrize("lanes_log2,shift", PARAMS)
@pytest.mark.parametrize("block", [(1, 1), (4, 5), (19, 23), (64, 64)])
def test_emulated_encoder_writes_the_cpu_bytes(lanes_log2, shift, block):
    y, models, d = make_case(lanes_log2 * 100 + shift + block[0], block=block)
    for checksum in (False, True):
        cpu = ldem.encode(y, models, d, block, checksum=checksum, lanes=1 << lanes_log2,
                          segment_size=1 << shift)
        emu = _core.cuda_emulate_encode(y, models, d._impl, *block, lanes_log2, shift, checksum)
        assert emu == cpu
        out = _core.cuda_emulate_decode(cpu, models, d._impl, *y.shape, *block)
        np.testing.assert_array_equal(out, y)


@pytest.mark.parametrize("N", [1, 31, 32, 33, 255, 256, 257, 4095, 4096, 4097])
@pytest.mark.parametrize("lanes_log2", [0, 3, 5])
def test_emulation_at_segment_and_lane_boundaries(N, lanes_log2):
    y, models, d = make_case(N, C=1, H=1, W=N, block=(1, 7), escapes=0.05)
    for shift in (8, 12):
        cpu = ldem.encode(y, models, d, (1, 7), lanes=1 << lanes_log2, segment_size=1 << shift)
        assert _core.cuda_emulate_encode(y, models, d._impl, 1, 7, lanes_log2, shift) == cpu
        np.testing.assert_array_equal(_core.cuda_emulate_decode(cpu, models, d._impl, 1, 1, N, 1, 7), y)


@pytest.mark.parametrize("precision", [12, 14, 16])
def test_emulation_precisions_peaked_tables_and_dictionary_lists(precision):
    rng = np.random.default_rng(precision)
    peaked = ldem.Dictionary.from_pmfs([[0.0, 1.0, 0.0], [1.0]], offsets=[-1, 5], precision=precision)
    wide = ldem.Dictionary.from_pmfs([laplace_pmf(30, -200, 200)], offsets=[-200], precision=precision)
    y = rng.integers(-300, 300, size=(2, 40, 33)).astype(np.int32)
    y[0, :20] = 0
    models = rng.integers(0, 3, size=ldem.block_grid(y.shape, (8, 8))).astype(np.int32)
    for dicts in ([peaked, wide],):
        for lanes_log2 in (0, 5):
            cpu = ldem.encode(y, models, dicts, (8, 8), lanes=1 << lanes_log2, segment_size=256)
            impls = [x._impl for x in dicts]
            assert _core.cuda_emulate_encode(y, models, impls, 8, 8, lanes_log2, 8) == cpu
            np.testing.assert_array_equal(
                _core.cuda_emulate_decode(cpu, models, impls, *y.shape, 8, 8), y)


def test_emulated_decoder_reads_cpu_default_streams():
    y, models, d = make_case(7, C=4, H=64, W=80, block=(8, 8))
    for kwargs in ({}, {"checksum": True}, {"lanes": 32, "segment_size": 2**10}):
        data = ldem.encode(y, models, d, (8, 8), **kwargs)
        np.testing.assert_array_equal(_core.cuda_emulate_decode(data, models, d._impl, *y.shape, 8, 8), y)


def test_emulated_decoder_accepts_and_rejects_like_the_cpu():
    rng = np.random.default_rng(3)
    y, models, d = make_case(11, C=2, H=33, W=35, block=(5, 5), escapes=0.05)
    disagreements = []
    for lanes_log2, shift, checksum in [(5, 8, False), (2, 8, True), (0, 9, False), (5, 9, True)]:
        data = ldem.encode(y, models, d, (5, 5), checksum=checksum, lanes=1 << lanes_log2,
                           segment_size=1 << shift)
        for bad in damaged(data, rng, 300):
            ref = cpu_decode(bad, models, d, y.shape, (5, 5))
            try:
                got = _core.cuda_emulate_decode(bad, models, d._impl, *y.shape, 5, 5)
            except ldem.DecodeError:
                got = None
            if (ref is None) != (got is None) or (ref is not None and not np.array_equal(ref, got)):
                disagreements.append((lanes_log2, shift, checksum, bad[:16]))
    assert not disagreements


def test_emulated_decoder_rejects_wrong_shape_models_and_dictionary():
    y, models, d = make_case(5, C=2, H=16, W=16, block=(4, 4))
    data = ldem.encode(y, models, d, (4, 4), lanes=32, segment_size=256)
    other = models.copy()
    other.flat[0] = (other.flat[0] + 1) % 4
    with pytest.raises(ldem.DecodeError):
        _core.cuda_emulate_decode(data, models, d._impl, 2, 16, 15, 4, 4)
    with pytest.raises(ldem.DecodeError):
        _core.cuda_emulate_decode(data, other, d._impl, 2, 16, 16, 4, 4)
    with pytest.raises(ValueError):
        _core.cuda_emulate_decode(data, models + 10, d._impl, 2, 16, 16, 4, 4)


@pytest.mark.parametrize("block", [(1, 1), (3, 7), (16, 16), (40, 40)])
def test_emulated_block_costs_are_bit_identical(block):
    y, _, d = make_case(21, C=3, H=30, W=37, block=block, K=5)
    ref = ldem.block_costs(y, d, block)
    costs, choice = _core.cuda_emulate_block_costs(y, d._impl, *block)
    assert costs.tobytes() == ref.tobytes()
    np.testing.assert_array_equal(choice, ref.argmin(axis=-1))
    bias = np.array([0.5, 3.0, 0.0, 1.25, 7.0])
    _, choice_b = _core.cuda_emulate_block_costs(y, d._impl, *block, bias)
    np.testing.assert_array_equal(choice_b, (ref + bias).argmin(axis=-1))


def test_emulated_selection_breaks_ties_to_the_lower_index():
    d = ldem.Dictionary.from_pmfs([[0.5, 0.5], [0.5, 0.5], [0.9, 0.1]], offsets=[0, 0, 0])
    y = np.zeros((1, 4, 4), np.int32)
    y[0, 2:] = 1
    ref = ldem.block_costs(y, d, (2, 2))
    _, choice = _core.cuda_emulate_block_costs(y, d._impl, 2, 2)
    np.testing.assert_array_equal(choice, ref.argmin(axis=-1))
    assert choice[0, 1, 0] == 0  # the two equal models tie on the all-ones rows


def test_emulated_coded_bits_match_the_exact_costs():
    y, models, d = make_case(8, C=2, H=24, W=24, block=(6, 6))
    fx = _core.cuda_emulate_coded_bits(y, models, d._impl, 6, 6)
    costs = ldem.block_costs(y, d, (6, 6))
    exact = np.take_along_axis(costs, models[..., None], axis=-1).sum()
    assert exact <= fx / 256 <= exact + y.size / 256 + 1e-6


@pytest.mark.parametrize("chunk", [1, 3, 64, 4096])
def test_chunked_crc_matches_zlib(chunk):
    rng = np.random.default_rng(chunk)
    for n in (0, 1, 5, 4095, 4096, 4097, 20000):
        data = rng.integers(0, 256, size=n, dtype=np.uint8).tobytes()
        assert _core.cuda_emulate_crc32(data, chunk) == zlib.crc32(data)


# -- the planning rule ---------------------------------------------------------------------------
@needs_build
def test_plan_stream_rule():
    from ldem.cuda import plan_stream
    N = 192 * 32 * 48
    assert plan_stream(N, coded_bits=898_000) == (32, 2**17)
    assert plan_stream(N, coded_bits=79_000) == (4, 2**18)
    assert plan_stream(N, coded_bits=79_000, max_overhead=0.02) == (16, 2**18)
    assert plan_stream(0, 0)[0] in (1, 2, 4, 8, 16, 32)
    # More rate never means fewer parallel states.
    last = 0
    for bits in np.geomspace(1e3, 1e8, 40):
        lanes, seg = plan_stream(N, bits)
        states = lanes * max(1, N // seg)
        assert states >= last
        last = states
    with pytest.raises(ValueError):
        plan_stream(N, 1e6, lanes=3)
    with pytest.raises(ValueError):
        plan_stream(N, 1e6, max_overhead=2)


@needs_build
@pytest.mark.parametrize("bits_per_symbol", [0.133, 0.267, 1.0, 3.0])
def test_planned_streams_keep_the_final_state_overhead_near_half_a_percent(bits_per_symbol):
    y, models, d, block = lowrate_latent(1, bits_per_symbol)
    fx = _core.cuda_emulate_coded_bits(y, models, d._impl, *block)
    lanes, seg = ldem.cuda.plan_stream(y.size, fx / 256)
    data = ldem.encode(y, models, d, block, lanes=lanes, segment_size=seg)
    ideal = np.take_along_axis(ldem.block_costs(y, d, block), models[..., None], axis=-1).sum()
    overhead = len(data) * 8 / ideal - 1
    # The rule bounds the expected overhead (50 bits per lane); a stream's own final
    # states vary by a few bits per lane around it.
    assert overhead < 0.0065, (lanes, seg, overhead)


@needs_build
def test_ldem_cuda_doctests():
    import ldem.cuda
    result = doctest.testmod(ldem.cuda, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0


@needs_build
def test_host_side_argument_errors():
    with pytest.raises(ValueError):
        _core.cuda_plan_stream(-1, 0)
    with pytest.raises(ValueError):
        _core.cuda_plan_stream(100, 0, 6)
    item = (256, 512, 2, 3, 4, 1, 1, 5, 8, 1024, 1 << 20)  # pointers are not dereferenced
    assert _core.cuda_encode_scratch_bytes([item], False) > 0
    with pytest.raises(ValueError):  # lanes_log2 6
        _core.cuda_encode_scratch_bytes([item[:7] + (6, 8) + item[9:]], False)
    with pytest.raises(ValueError):  # segment shift 7
        _core.cuda_encode_scratch_bytes([item[:7] + (5, 7) + item[9:]], False)
    with pytest.raises(ValueError):  # capacity below max_compressed_size
        _core.cuda_encode_scratch_bytes([item[:10] + (10,)], False)
    with pytest.raises(ValueError):  # null symbols for a non-empty shape
        _core.cuda_encode_scratch_bytes([(0,) + item[1:]], False)
    with pytest.raises(ValueError):  # H * W >= 2^31
        _core.cuda_decode_scratch_bytes([(16, 10, 16, 1, 2**16, 2**15, 1, 1, 16)])
    with pytest.raises(ValueError):
        _core.cuda_decode_scratch_bytes([(16, 10, 16, 1, 2, -3, 1, 1, 16)])
    if not HAS_GPU:
        import ldem.cuda
        y = np.zeros((1, 2, 2), np.int32)
        with pytest.raises((RuntimeError, ImportError)):
            ldem.cuda.encode_cuda(y, np.zeros((1, 2, 2), np.int32), ldem.Dictionary.from_pmfs([[1.0]], [0]))


# -- GPU ---------------------------------------------------------------------------------------
def gpu(a):
    return torch.from_numpy(np.array(a, copy=True, order="C")).cuda()


def to_bytes(t):
    return t.cpu().numpy().tobytes()


@needs_gpu
@pytest.mark.parametrize("lanes,segment_size", [(32, 2**8), (32, 2**12), (32, 2**17), (16, 2**9),
                                                (4, 2**17), (1, 2**8)])
@pytest.mark.parametrize("block", [(1, 1), (4, 5), (64, 64)])
def test_gpu_writes_the_cpu_bytes(lanes, segment_size, block):
    import ldem.cuda
    y, models, d = make_case(lanes + segment_size, C=3, H=40, W=45, block=block)
    for checksum in (False, True):
        ref = ldem.encode(y, models, d, block, checksum=checksum, lanes=lanes, segment_size=segment_size)
        got = ldem.cuda.encode_cuda(gpu(y), gpu(models), d, block, checksum=checksum, lanes=lanes,
                                    segment_size=segment_size)
        assert got.is_cuda and got.dtype == torch.uint8
        assert to_bytes(got) == ref
        back = ldem.cuda.decode_cuda(got, gpu(models), d, y.shape, block)
        assert back.is_cuda and back.dtype == torch.int32
        np.testing.assert_array_equal(back.cpu().numpy(), y)


@needs_gpu
@pytest.mark.parametrize("N", [0, 1, 255, 256, 257, 4095, 4096, 4097, 70000])
def test_gpu_sizes_at_block_boundaries(N):
    import ldem.cuda
    y, models, d = make_case(N, C=1, H=1, W=N, block=(1, 3), escapes=0.03) if N else (
        np.zeros((1, 1, 0), np.int32), np.zeros((1, 1, 0), np.int32),
        ldem.Dictionary.from_pmfs([[0.5, 0.5]], [0]))
    for lanes, seg in ((32, 256), (8, 4096)):
        ref = ldem.encode(y, models, d, (1, 3), lanes=lanes, segment_size=seg)
        got = ldem.cuda.encode_cuda(gpu(y), gpu(models), d, (1, 3), lanes=lanes, segment_size=seg)
        assert to_bytes(got) == ref
        np.testing.assert_array_equal(ldem.cuda.decode_cuda(ref, gpu(models), d, y.shape, (1, 3)).cpu().numpy(), y)


@needs_gpu
def test_gpu_auto_plan_is_reproducible_on_the_cpu():
    import ldem.cuda
    for bps in (0.267, 3.0):
        y, models, d, block = lowrate_latent(2, bps)
        got = to_bytes(ldem.cuda.encode_cuda(gpu(y), gpu(models), d, block))
        lanes, shift = _core.stream_params(got)
        fx = _core.cuda_emulate_coded_bits(y, models, d._impl, *block)
        assert (lanes, 1 << shift) == ldem.cuda.plan_stream(y.size, fx / 256)
        assert got == ldem.encode(y, models, d, block, lanes=lanes, segment_size=1 << shift)


@needs_gpu
def test_cpu_and_gpu_decode_each_others_streams():
    import ldem.cuda
    y, models, d = make_case(4, C=8, H=32, W=48, block=(8, 8))
    for kwargs in ({}, {"checksum": True}, {"lanes": 32, "segment_size": 1024}):
        cpu_stream = ldem.encode(y, models, d, (8, 8), **kwargs)
        out = ldem.cuda.decode_cuda(gpu(np.frombuffer(cpu_stream, np.uint8)), gpu(models), d, y.shape, (8, 8))
        np.testing.assert_array_equal(out.cpu().numpy(), y)
        gpu_stream = ldem.cuda.encode_cuda(gpu(y), gpu(models), d, (8, 8), **kwargs)
        np.testing.assert_array_equal(ldem.decode(to_bytes(gpu_stream), models, d, y.shape, (8, 8)), y)


@needs_gpu
def test_gpu_decodes_unaligned_streams():
    import ldem.cuda
    y, models, d = make_case(9, C=2, H=32, W=32, block=(8, 8))
    data = ldem.encode(y, models, d, (8, 8), lanes=32, segment_size=256)
    for pad in range(4):
        buf = gpu(np.frombuffer(b"\0" * pad + data, np.uint8))[pad:]
        np.testing.assert_array_equal(ldem.cuda.decode_cuda(buf, gpu(models), d, y.shape, (8, 8)).cpu().numpy(), y)


@needs_gpu
def test_damaged_streams_on_the_gpu_raise_decode_error_like_the_cpu():
    import ldem.cuda
    rng = np.random.default_rng(5)
    y, models, d = make_case(12, C=2, H=33, W=35, block=(5, 5), escapes=0.05)
    gm = gpu(models)
    mismatches = 0
    for lanes, seg, checksum in [(32, 256, False), (4, 256, True), (1, 512, False)]:
        data = ldem.encode(y, models, d, (5, 5), checksum=checksum, lanes=lanes, segment_size=seg)
        for bad in damaged(data, rng, 120):
            ref = cpu_decode(bad, models, d, y.shape, (5, 5))
            try:
                got = ldem.cuda.decode_cuda(bad, gm, d, y.shape, (5, 5)).cpu().numpy()
            except ldem.DecodeError:
                got = None
            if (ref is None) != (got is None) or (ref is not None and not np.array_equal(ref, got)):
                mismatches += 1
    assert mismatches == 0
    torch.cuda.synchronize()  # the device is still healthy afterwards
    with pytest.raises(ldem.DecodeError):
        ldem.cuda.decode_cuda(b"junk", gm, d, y.shape, (5, 5))
    with pytest.raises(ldem.DecodeError):  # wrong shape: final-state check
        good = ldem.encode(y, models, d, (5, 5), lanes=32, segment_size=256)
        ldem.cuda.decode_cuda(good, gpu(models[:, :, :-1]), d, (2, 33, 30), (5, 5))


@needs_gpu
def test_batched_encode_and_decode_equal_single_calls():
    import ldem.cuda
    cases = [make_case(s, C=2 + s % 3, H=20 + s, W=17 + 2 * s, block=(4, 4)) for s in range(6)]
    d = cases[0][2]
    ys = [gpu(c[0]) for c in cases]
    ms = [gpu(c[1]) for c in cases]
    streams = ldem.cuda.encode_batch(ys, ms, d, (4, 4), lanes=32, segment_size=256)
    for (y, m, _), s in zip(cases, streams):
        assert to_bytes(s) == ldem.encode(y, m, d, (4, 4), lanes=32, segment_size=256)
    outs = ldem.cuda.decode_batch(streams, ms, d, [c[0].shape for c in cases], (4, 4))
    for (y, _, _), o in zip(cases, outs):
        np.testing.assert_array_equal(o.cpu().numpy(), y)
    # [B, C, H, W] tensors and automatic plans
    y4 = torch.randint(-3, 4, (5, 3, 16, 24), dtype=torch.int32, device="cuda")
    m4 = torch.zeros((5, 3, 1, 1), dtype=torch.int32, device="cuda")
    streams = ldem.cuda.encode_batch(y4, m4, d, (16, 24))
    outs = ldem.cuda.decode_batch(streams, m4, d, (3, 16, 24), (16, 24))
    assert torch.equal(torch.stack(outs), y4)
    # a damaged item is named
    bad = list(streams)
    bad[3] = bad[3][:-4]
    with pytest.raises(ldem.DecodeError, match="item 3"):
        ldem.cuda.decode_batch(bad, m4, d, (3, 16, 24), (16, 24))


@needs_gpu
@pytest.mark.parametrize("block", [(1, 1), (4, 4), (7, 9), (32, 48)])
def test_gpu_block_costs_and_selection_match_the_cpu(block):
    import ldem.cuda
    y, _, d = make_case(30, C=4, H=32, W=48, block=block, K=6)
    ref = ldem.block_costs(y, d, block)
    costs = ldem.cuda.block_costs_cuda(gpu(y), d, block)
    assert costs.cpu().numpy().tobytes() == ref.tobytes()
    bias = np.linspace(0, 3, 6)
    choice, c2 = ldem.cuda.select_models_cuda(gpu(y), d, block, bias=bias, return_costs=True)
    np.testing.assert_array_equal(choice.cpu().numpy(), (ref + bias).argmin(axis=-1))
    assert c2.cpu().numpy().tobytes() == ref.tobytes()
    batch = ldem.cuda.block_costs_cuda(gpu(np.stack([y, y[::-1].copy()])), d, block)
    assert batch[1].cpu().numpy().tobytes() == ldem.block_costs(y[::-1].copy(), d, block).tobytes()
    # the selection codes: GPU encode with the GPU's choice
    data = ldem.cuda.encode_cuda(gpu(y), choice, d, block)
    np.testing.assert_array_equal(ldem.cuda.decode_cuda(data, choice, d, y.shape, block).cpu().numpy(), y)


@needs_gpu
def test_gpu_argument_errors():
    import ldem.cuda
    y, models, d = make_case(1, C=2, H=8, W=8, block=(4, 4))
    gy, gm = gpu(y), gpu(models)
    with pytest.raises(TypeError):
        ldem.cuda.encode_cuda(gy.long(), gm, d, (4, 4))
    with pytest.raises(ValueError):
        ldem.cuda.encode_cuda(torch.from_numpy(y), gm, d, (4, 4))
    with pytest.raises(ValueError):
        ldem.cuda.encode_cuda(gpu(np.zeros((2, 8, 16), np.int32))[:, :, ::2], gm, d, (4, 4))
    with pytest.raises(ValueError):
        ldem.cuda.encode_cuda(gy, gm[:, :1], d, (4, 4))
    with pytest.raises(TypeError):
        ldem.cuda.encode_cuda(gy, gm.long(), d, (4, 4))
    with pytest.raises(ValueError):  # found on the device
        ldem.cuda.encode_cuda(gy, gm + 100, d, (4, 4))
    with pytest.raises(ValueError):
        ldem.cuda.decode_cuda(ldem.encode(y, models, d, (4, 4)), gm - 5, d, y.shape, (4, 4))
    with pytest.raises(TypeError):
        ldem.cuda.encode_cuda(gy, gm, "not a dictionary", (4, 4))
    with pytest.raises(ValueError):
        ldem.cuda.encode_cuda(gy, gm, d, (4, 4), lanes=3, segment_size=256)
    with pytest.raises(TypeError):
        ldem.cuda.decode_cuda(gpu(np.zeros(8, np.int32)), gm, d, y.shape, (4, 4))
    with pytest.raises(ValueError):
        ldem.cuda.select_models_cuda(gy, d, (4, 4), bias=[1.0])
    with pytest.raises(ValueError):  # raw pointer that is not device memory
        item = (y.ctypes.data, models.ctypes.data, *y.shape, 4, 4, 5, 8, 0, 0)
        _core.cuda_encode(ldem.cuda.DeviceDictionary(d)._impl, [item], False, 0, 0, 0, 0, 0)
