"""ldem.testing: the JPEG-like DCT latent and the synthetic latents."""
import numpy as np
import pytest

from ldem.testing import (
    DCT_MATRIX,
    JPEG_LUMA_TABLE,
    dct_latent,
    dct_reconstruct,
    psnr,
    quant_tables,
    rgb_to_ycbcr,
    synthetic_latent,
    ycbcr_to_rgb,
)


def smooth_image(h=64, w=96, seed=0):
    """A smooth synthetic RGB image: low-frequency sinusoids plus a gradient."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    planes = []
    for _ in range(3):
        fy, fx, ph = rng.uniform(0.01, 0.06), rng.uniform(0.01, 0.06), rng.uniform(0, 6.3)
        planes.append(128 + 70 * np.sin(fy * yy + fx * xx + ph) + 0.4 * (xx - w / 2))
    return np.clip(np.rint(np.stack(planes, axis=-1)), 0, 255).astype(np.uint8)


def test_dct_matrix_is_orthonormal():
    assert np.allclose(DCT_MATRIX @ DCT_MATRIX.T, np.eye(8), atol=1e-12)


def test_color_conversion_round_trip():
    rgb = np.random.default_rng(1).integers(0, 256, (50, 3)).astype(np.float64)
    assert np.allclose(ycbcr_to_rgb(rgb_to_ycbcr(rgb)), rgb, atol=1e-3)


def test_quant_tables():
    q = quant_tables(1.0)
    assert q.shape == (3, 8, 8)
    assert np.array_equal(q[0], JPEG_LUMA_TABLE)
    assert q[1, 0, 0] == 17 and q[2, 7, 7] == 99
    assert (quant_tables(1e-6) == 1).all()
    assert np.array_equal(quant_tables(2.0)[0], 2 * JPEG_LUMA_TABLE)


def test_round_trip_psnr_small_step():
    img = smooth_image()
    y = dct_latent(img, step=0.05)
    rec = dct_reconstruct(y, step=0.05, size=img.shape[:2])
    assert rec.shape == img.shape and rec.dtype == np.uint8
    assert psnr(img, rec) > 40


def test_round_trip_psnr_falls_with_step():
    img = smooth_image(seed=3)
    values = [psnr(img, dct_reconstruct(dct_latent(img, s), s, img.shape[:2]))
              for s in (0.05, 0.5, 2.0)]
    assert values[0] > values[1] > values[2]


def test_shape_dtype_and_channel_order():
    img = smooth_image(40, 56)
    y = dct_latent(img)
    assert y.shape == (192, 5, 7) and y.dtype == np.int32
    # a flat image has only the three DC channels (0, 64, 128) non-zero
    flat = np.empty((16, 16, 3), np.uint8)
    flat[:] = (200, 50, 120)
    yf = dct_latent(flat, step=0.01)
    nonzero = sorted(set(np.nonzero(yf)[0].tolist()))
    assert nonzero == [0, 64, 128]
    ycc = rgb_to_ycbcr(np.array([200.0, 50.0, 120.0])) - 128
    assert np.allclose(yf[[0, 64, 128], 0, 0], np.rint(8 * ycc), atol=1)
    # a horizontal cosine lands in channel u=0, v=1 of the luma plane
    x = np.arange(8)
    row = 128 + 60 * np.cos((2 * x + 1) * np.pi / 16)
    img = np.rint(np.tile(row, (8, 1)))[..., None].repeat(3, 2).astype(np.uint8)
    yc = dct_latent(img, step=0.01)[:64, 0, 0].reshape(8, 8)
    assert abs(yc[0, 1]) == np.abs(yc).max() and yc[0, 1] > 200


@pytest.mark.parametrize("h,w", [(1, 1), (7, 9), (17, 23), (8, 8), (33, 1)])
def test_odd_sizes(h, w):
    img = np.random.default_rng(h * 100 + w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    y = dct_latent(img, step=0.01)
    assert y.shape == (192, -(-h // 8), -(-w // 8))
    rec = dct_reconstruct(y, 0.01, (h, w))
    assert rec.shape == (h, w, 3)
    assert np.abs(rec.astype(int) - img).max() <= 2


def test_padded_size_when_size_is_none():
    y = dct_latent(np.zeros((9, 10, 3), np.uint8))
    assert dct_reconstruct(y).shape == (16, 16, 3)


def test_grayscale_inputs_agree():
    gray = smooth_image()[..., 0]
    y2 = dct_latent(gray)
    assert np.array_equal(y2, dct_latent(gray[..., None]))
    assert np.array_equal(y2, dct_latent(np.repeat(gray[..., None], 3, 2)))
    assert not y2[64:].any()  # no chroma


def test_pil_inputs():
    Image = pytest.importorskip("PIL.Image")
    img = smooth_image(24, 40)
    y = dct_latent(img)
    assert np.array_equal(dct_latent(Image.fromarray(img)), y)
    assert np.array_equal(dct_latent(Image.fromarray(img).convert("RGBA")), y)
    gray = Image.fromarray(img[..., 1])
    assert np.array_equal(dct_latent(gray), dct_latent(img[..., 1]))


def test_bad_inputs():
    with pytest.raises(TypeError):
        dct_latent(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(TypeError):
        dct_latent([[1, 2], [3, 4]])
    with pytest.raises(ValueError):
        dct_latent(np.zeros((8, 8, 4), np.uint8))
    with pytest.raises(ValueError):
        dct_latent(np.zeros((8,), np.uint8))
    with pytest.raises(ValueError):
        dct_latent(np.zeros((0, 8, 3), np.uint8))
    for step in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            dct_latent(np.zeros((8, 8, 3), np.uint8), step=step)
    with pytest.raises(TypeError):
        dct_latent(np.zeros((8, 8, 3), np.uint8), step="1")
    y = dct_latent(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(TypeError):
        dct_reconstruct(y.astype(np.float32))
    with pytest.raises(ValueError):
        dct_reconstruct(y[:64])
    with pytest.raises(ValueError):
        dct_reconstruct(y, size=(9, 8))
    with pytest.raises(ValueError):
        psnr(np.zeros(3), np.zeros(4))


def test_synthetic_latent_kinds():
    shape = (6, 40, 36)
    for kind in ("zeros", "laplace", "regimes"):
        a = synthetic_latent(kind, shape, seed=5)
        assert a.shape == shape and a.dtype == np.int32
        assert np.array_equal(a, synthetic_latent(kind, shape, seed=5))
        assert np.abs(a).max() <= 32
    assert not synthetic_latent("zeros", shape).any()
    a, b = synthetic_latent("laplace", shape, 1), synthetic_latent("laplace", shape, 2)
    assert not np.array_equal(a, b)


def test_synthetic_regimes_change_per_region():
    y = synthetic_latent("regimes", (8, 64, 64), seed=0, region=16)
    tiles = y.reshape(8, 4, 16, 4, 16).transpose(0, 1, 3, 2, 4).reshape(8 * 16, 256)
    spread = np.abs(tiles).mean(axis=1)
    assert (spread == 0).sum() > 10          # all-zero regions
    assert (spread > 2).sum() > 10           # large-scale regions
    assert ((spread > 0) & (spread < 1)).sum() > 10  # small-scale regions


def test_synthetic_bad_arguments():
    with pytest.raises(ValueError):
        synthetic_latent("nope", (1, 1, 1))
    with pytest.raises(ValueError):
        synthetic_latent("zeros", (1, 1))
    with pytest.raises(ValueError):
        synthetic_latent("regimes", (1, 4, 4), region=0)
