"""ldem.block_transform: the KLT of 8×8 RGB blocks is orthonormal, exactly invertible
without quantization, computed in strips that give the whole image's result, and refuses
bad bases, configs, levels and shapes with ValueError."""
import numpy as np
import pytest

from ldem.block_transform import CHANNELS, BlockTransform, check_block_config, med_reconstruct, med_residuals
from ldem.block_transform import _STRIP_BLOCKS


def image(h, w, seed=0, smooth=True):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (3, h, w)).astype(np.float64)
    if smooth:  # correlated like a photo, so the KLT has structure to find
        x = np.cumsum(np.cumsum(x - 127.5, axis=1), axis=2)
        x = 255 * (x - x.min()) / max(np.ptp(x), 1)
    return (np.round(x) / 255).astype(np.float32)


def pixels(x):
    return np.round(x * 255).astype(np.uint8).transpose(1, 2, 0)


@pytest.fixture(scope="module")
def fitted():
    return BlockTransform.fit([image(64, 96, s) for s in range(3)], steps=[20.0, 4.0, 1e-4])


def test_fit_is_orthonormal_deterministic_and_sorted(fitted):
    U = fitted.basis
    assert np.abs(U.T @ U - np.eye(CHANNELS)).max() < 1e-9
    again = BlockTransform.fit([image(64, 96, s) for s in range(3)], steps=[20.0, 4.0, 1e-4])
    assert np.array_equal(again.basis, U)
    # strongest first: the coefficients' energy falls along the channels
    y = fitted.analysis(image(64, 96, 7), 2).astype(np.float64)
    energy = (y ** 2).mean(axis=(1, 2))
    assert energy[:8].mean() > 10 * energy[-64:].mean()


@pytest.mark.parametrize("h, w", [(1, 1), (7, 9), (8, 8), (33, 17), (8 * _STRIP_BLOCKS + 3, 20)])
def test_tiny_step_reconstructs_exactly(fitted, h, w):
    x = image(h, w, seed=h * w, smooth=False)
    y = fitted.analysis(x, 2)
    assert y.shape == (CHANNELS, -(-h // 8), -(-w // 8)) and y.dtype == np.int32
    assert np.array_equal(fitted.synthesis(y, 2, (h, w)), pixels(x))


def test_strips_give_the_whole_image_result(fitted, monkeypatch):
    h, w = 8 * (2 * _STRIP_BLOCKS) + 5, 40
    x = image(h, w, 3)
    y = fitted.analysis(x, 0)
    calls = []
    assert np.array_equal(fitted.analysis(x, 0, progress=lambda d, t: calls.append((d, t))), y)
    assert calls == [(1, 3), (2, 3), (3, 3)]
    # each strip alone gives the same coefficients as the whole image
    top = fitted.analysis(x[:, :8 * _STRIP_BLOCKS], 0)
    assert np.array_equal(top, y[:, :_STRIP_BLOCKS])
    out = fitted.synthesis(y, 0, (h, w))
    # the deblocking filter crosses strip edges: strips decode with a block row of halo,
    # so the pixels are those of one pass over the whole image
    import ldem.block_transform as bt_module
    monkeypatch.setattr(bt_module, "_STRIP_BLOCKS", 10**6)
    assert np.array_equal(fitted.synthesis(y, 0, (h, w)), out)
    assert np.array_equal(fitted.analysis(x, 0), y)


def test_larger_steps_lose_more_and_quantize_with_a_dead_zone(fitted):
    x = image(64, 64, 11)
    errors = []
    for level in (0, 1):
        out = fitted.synthesis(fitted.analysis(x, level), level, (64, 64)).astype(float)
        errors.append(((out - pixels(x)) ** 2).mean())
    assert errors[0] > errors[1] > 0
    # dead zone: a coefficient of 0.6 steps rounds to 0 (0.6 + 0.5 - 0.15 < 1), 0.7 to 1
    bt = BlockTransform(np.eye(CHANNELS), steps=[10.0], deadzone=0.15)
    flat = np.zeros((3, 8, 8))
    flat[0, 0, 0] = (128 + 6) / 255
    assert bt.analysis(flat, 0)[0, 0, 0] == 0
    flat[0, 0, 0] = (128 + 7) / 255
    assert bt.analysis(flat, 0)[0, 0, 0] == 1
    flat[0, 0, 0] = (128 - 7) / 255
    assert bt.analysis(flat, 0)[0, 0, 0] == -1


def test_reconstruction_offsets_lower_the_error_on_the_images_they_were_fitted_on():
    xs = [image(64, 96, s) for s in range(3)]
    bt = BlockTransform.fit(xs, steps=[30.0, 12.0])
    assert bt.offsets.shape == (2, CHANNELS) and np.abs(bt.offsets).max() <= 0.5 and bt.offsets.any()
    plain = BlockTransform(bt.basis, bt.steps, bt.deadzone, deblock=bt.deblock)
    for level in (0, 1):
        err = [sum(((t.synthesis(t.analysis(x, level), level, (64, 96)).astype(float) - pixels(x)) ** 2).sum()
                   for x in xs) for t in (plain, bt)]
        assert err[1] < err[0]
    # offsets move values by r·step away from zero; zero stays zero
    unit = BlockTransform(np.eye(CHANNELS), [10.0], 0.15, np.full((1, CHANNELS), 0.2))
    y = np.zeros((CHANNELS, 1, 1), np.int32)
    y[0] = 1
    y[1] = -2
    out = unit.synthesis(y, 0, (8, 8)).astype(int)
    assert out[0, 0, 0] == 128 + 12 and out[0, 1, 0] == 128 - 22 and out[0, 2, 0] == 128  # red, row 0


@pytest.mark.parametrize("offsets", [np.full((1, CHANNELS), 0.51), np.zeros((2, CHANNELS)), np.full((1, CHANNELS), np.inf)])
def test_bad_offsets_are_refused(offsets):
    with pytest.raises(ValueError, match="offsets"):
        BlockTransform(np.eye(CHANNELS), [8.0], 0.15, offsets)


def test_extreme_images_stay_in_range(fitted):
    for v in (0.0, 1.0):
        x = np.full((3, 24, 24), v, np.float32)
        y = fitted.analysis(x, 2)  # the smallest step: the largest symbols
        assert np.abs(y).max() < 2**31 - 1
        assert np.array_equal(fitted.synthesis(y, 2, (24, 24)), pixels(x))
    # any int32 latent decodes to valid pixels (clipped), never an error
    y = np.random.default_rng(0).integers(-2**31, 2**31, (CHANNELS, 2, 3), dtype=np.int64).astype(np.int32)
    out = fitted.synthesis(y, 0, (16, 24))
    assert out.dtype == np.uint8 and out.shape == (16, 24, 3)


@pytest.mark.parametrize("basis, match", [
    (np.eye(CHANNELS) * 1.01, "orthonormal"),
    (np.eye(CHANNELS)[:, :100], "matrix"),
    (np.full((CHANNELS, CHANNELS), np.nan), "finite"),
])
def test_bad_bases_are_refused(basis, match):
    with pytest.raises(ValueError, match=match):
        BlockTransform(basis, steps=[8.0])


@pytest.mark.parametrize("cfg, match", [
    ({"M": 191, "steps": [8.0], "deadzone": 0.1}, "M must be"),
    ({"M": True, "steps": [8.0], "deadzone": 0.1}, "M must be"),
    ({"M": 192, "steps": [], "deadzone": 0.1}, "steps"),
    ({"M": 192, "steps": [1e-7], "deadzone": 0.1}, "steps"),
    ({"M": 192, "steps": [float("inf")], "deadzone": 0.1}, "steps"),
    ({"M": 192, "steps": [True], "deadzone": 0.1}, "steps"),
    ({"M": 192, "steps": [8.0] * 9, "deadzone": 0.1}, "steps"),
    ({"M": 192, "steps": [8.0], "deadzone": 0.6}, "deadzone"),
    ({"M": 192, "steps": [8.0], "deadzone": "0.1"}, "deadzone"),
    ({"M": 192, "steps": [8.0], "deadzone": 0.1, "predicted": -1}, "predicted"),
    ({"M": 192, "steps": [8.0], "deadzone": 0.1, "predicted": 193}, "predicted"),
    ({"M": 192, "steps": [8.0], "deadzone": 0.1, "predicted": True}, "predicted"),
])
def test_bad_configs_are_refused(cfg, match):
    with pytest.raises(ValueError, match=match):
        check_block_config(cfg, 8)


def test_bad_levels_and_shapes(fitted):
    x = image(16, 16)
    for level in (-1, 3, 1.0, True):
        with pytest.raises(ValueError, match="level"):
            fitted.analysis(x, level)
    with pytest.raises(ValueError, match="image"):
        fitted.analysis(x[:2], 0)
    y = fitted.analysis(x, 0)
    with pytest.raises(ValueError, match="does not fit"):
        fitted.synthesis(y, 0, (17, 16))
    with pytest.raises(ValueError, match="does not fit"):
        fitted.synthesis(y[:10], 0, (16, 16))


def test_fit_needs_images():
    with pytest.raises(ValueError, match="at least one"):
        BlockTransform.fit([], steps=[8.0])


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 1, 7), (3, 7, 1), (2, 5, 9), (3, 64, 96)])
def test_med_prediction_is_exactly_invertible_for_any_int32(shape):
    rng = np.random.default_rng(sum(shape))
    for q in (rng.integers(-50, 50, shape), rng.integers(-2**31, 2**31, shape, dtype=np.int64),
              np.full(shape, 2**31 - 1), np.full(shape, -2**31)):
        q = q.astype(np.int32)
        r = med_residuals(q)
        assert r.dtype == np.int32 and np.array_equal(med_reconstruct(r), q)
        # and every int32 residual has one reconstruction that predicts it back
        assert np.array_equal(med_residuals(med_reconstruct(q)), q)


def test_med_matches_a_direct_loop():
    q = np.random.default_rng(3).integers(-9, 9, (1, 6, 7)).astype(np.int64)
    ref = np.zeros_like(q)
    for i in range(6):
        for j in range(7):
            if i == 0 and j == 0:
                p = 0
            elif i == 0:
                p = q[0, 0, j - 1]
            elif j == 0:
                p = q[0, i - 1, 0]
            else:
                W, N, NW = q[0, i, j - 1], q[0, i - 1, j], q[0, i - 1, j - 1]
                p = min(W, N) if NW >= max(W, N) else max(W, N) if NW <= min(W, N) else W + N - NW
            ref[0, i, j] = q[0, i, j] - p
    assert np.array_equal(med_residuals(q.astype(np.int32)), ref)


def test_prediction_shrinks_the_smooth_channels(fitted):
    x = image(64, 96, 5)
    plain = BlockTransform(fitted.basis, fitted.steps, fitted.deadzone, fitted.offsets, predicted=0,
                           deblock=fitted.deblock)
    y, y0 = fitted.analysis(x, 1), plain.analysis(x, 1)
    assert np.array_equal(y[3:], y0[3:]) and np.array_equal(med_reconstruct(y[:3]), y0[:3])
    assert np.abs(y[:3]).sum() < np.abs(y0[:3]).sum()
    assert np.array_equal(fitted.synthesis(y, 1, (64, 96)), plain.synthesis(y0, 1, (64, 96)))


def test_deblocking_lowers_the_error_and_is_checked():
    xs = [image(64, 96, s) for s in range(3)]
    bt = BlockTransform.fit(xs, steps=[40.0, 20.0])
    assert bt.deblock.shape == (2, 2, 15, 9, 4)
    raw = BlockTransform(bt.basis, bt.steps, bt.deadzone, bt.offsets)
    for level in (0, 1):
        err = [sum(((t.synthesis(t.analysis(x, level), level, (64, 96)).astype(float) - pixels(x)) ** 2).sum()
                   for x in xs) for t in (raw, bt)]
        assert err[1] < err[0]
    for bad in (np.zeros((1, 2, 15, 9, 4)), np.full((2, 2, 15, 9, 4), np.nan), np.full((2, 2, 15, 9, 4), 65.0)):
        with pytest.raises(ValueError, match="deblock"):
            BlockTransform(bt.basis, bt.steps, deblock=bad)
