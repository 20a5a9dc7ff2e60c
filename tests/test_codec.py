"""ldem.codec: the image codec round trip, odd inputs, the .ldem header and damaged files."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
from PIL import Image  # noqa: E402

import ldem  # noqa: E402
from ldem.codec import ImageCodec, image_to_array, psnr, read_header, pretrained_path  # noqa: E402


@pytest.fixture(scope="module")
def sample():
    with Image.open(ldem.sample_image_path()) as im:
        return np.asarray(im.convert("RGB"))


@pytest.fixture(scope="module")
def codec():
    return ImageCodec.pretrained(quality=2)


@pytest.fixture(scope="module")
def small(sample):
    return np.ascontiguousarray(sample[40:88, 100:164])  # 48×64


def test_round_trip_sample_every_quality(sample):
    from ldem.reference import bpp_at_psnr, jpeg_curve
    n = ImageCodec.pretrained(1).num_qualities
    assert n >= 4
    jpeg = jpeg_curve(sample, range(2, 101, 2))
    sizes, quality = [], []
    for q in range(1, n + 1):
        c = ImageCodec.pretrained(q)
        data = c.compress(sample)
        out = c.decompress(data)
        assert out.size == (sample.shape[1], sample.shape[0]) and out.mode == "RGB"
        quality.append(psnr(sample, np.asarray(out)))
        sizes.append(len(data))
        bpp = 8 * len(data) / (sample.shape[0] * sample.shape[1])
        assert bpp < bpp_at_psnr(jpeg, quality[-1]), f"quality {q} is larger than JPEG at the same PSNR"
    assert sizes == sorted(sizes), "higher quality must not give smaller files"
    assert quality == sorted(quality) and quality[0] > 15, "higher quality must not give lower PSNR"


def test_deterministic(codec, small):
    a = codec.compress(small)
    assert a == codec.compress(small)
    assert np.array_equal(codec.decompress_array(a), codec.decompress_array(a))


def test_entropy_modes_same_pixels_local_not_larger(codec, small):
    data = {m: codec.compress(small, entropy=m) for m in ("global", "static", "local")}
    pixels = {m: codec.decompress_array(d) for m, d in data.items()}
    assert np.array_equal(pixels["global"], pixels["static"])
    assert np.array_equal(pixels["global"], pixels["local"])
    assert len(data["local"]) <= len(data["global"]) + 16
    assert len(data["static"]) <= len(data["global"]) + 16


def test_compress_latent_same_as_compress(codec, small):
    y, size = codec.latent(small)
    for mode in ("global", "local"):
        assert codec.compress_latent(y, size, entropy=mode) == codec.compress(small, entropy=mode)
    with pytest.raises(ValueError, match="does not fit"):
        codec.compress_latent(y, (small.shape[0] + 16, small.shape[1]))
    with pytest.raises(ValueError, match="entropy"):
        codec.compress_latent(y, size, entropy="best")


def test_latent_matches_decoded_latent(codec, small):
    y, _ = codec.latent(small)
    y2, hw = codec.decode_latent(codec.compress(small))
    assert np.array_equal(y, y2) and hw == small.shape[:2]
    assert y.shape == (codec.bundle.config["M"], 3, 4)


@pytest.mark.parametrize("h,w", [(1, 1), (1, 300), (300, 1), (17, 33), (16, 16), (15, 47)])
def test_any_size(codec, sample, h, w):
    img = np.ascontiguousarray(np.resize(sample, (h, w, 3)))
    out = codec.decompress_array(codec.compress(img))
    assert out.shape == (h, w, 3) and out.dtype == np.uint8


def test_very_wide(codec, sample):
    img = np.ascontiguousarray(np.tile(sample[:8], (1, 12, 1)))  # 8×4608
    assert codec.decompress_array(codec.compress(img)).shape == img.shape


def test_pil_modes(codec, small):
    rgb = Image.fromarray(small)
    ref = image_to_array(rgb)
    gray = rgb.convert("L")
    g = image_to_array(gray)
    assert np.array_equal(g[0], g[1]) and np.array_equal(g[1], g[2])
    for mode in ("1", "P", "CMYK", "YCbCr", "LA", "RGBA", "F", "I"):
        a = image_to_array(rgb.convert(mode))
        assert a.shape == ref.shape and a.dtype == np.float32 and 0 <= a.min() and a.max() <= 1
        codec.decompress(codec.compress(rgb.convert(mode)))
    i16 = Image.fromarray((np.asarray(gray, np.uint16) * 257).astype(np.uint16))
    assert i16.mode.startswith("I;16")
    assert np.allclose(image_to_array(i16), g)
    # fully transparent pixels become white; opaque ones keep their colour
    rgba = np.dstack([small, np.zeros(small.shape[:2], np.uint8)])
    rgba[:, :10, 3] = 255
    a = image_to_array(rgba)
    assert np.all(a[:, :, 10:] == 1.0) and np.allclose(a[:, :, :10], ref[:, :, :10])
    p = rgb.convert("P")
    p.info["transparency"] = 0
    assert image_to_array(p).shape == ref.shape


def test_array_and_tensor_inputs(codec, small):
    ref = codec.compress(small)
    t = torch.from_numpy(small).permute(2, 0, 1).float() / 255
    assert codec.compress(t) == ref
    assert codec.compress(t[None]) == ref
    assert codec.compress(t.double()) == ref
    assert codec.compress(Image.fromarray(small)) == ref
    codec.compress(small[..., 0])  # grayscale H×W
    codec.compress(small[..., :1])


@pytest.mark.parametrize("bad,exc", [
    (np.zeros((8, 8, 3), np.float32), TypeError),
    (np.zeros((8, 8, 5), np.uint8), ValueError),
    (np.zeros((0, 8, 3), np.uint8), ValueError),
    (np.zeros((8,), np.uint8), ValueError),
    ("image.png", TypeError),
])
def test_bad_inputs(codec, bad, exc):
    with pytest.raises(exc, match="image"):
        codec.compress(bad)


def test_bad_tensors(codec):
    with pytest.raises(TypeError, match="floating"):
        codec.compress(torch.zeros(3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="NaN"):
        codec.compress(torch.full((3, 8, 8), float("nan")))
    with pytest.raises(ValueError, match=r"\[3, H, W\]"):
        codec.compress(torch.zeros(2, 3, 8, 8))


def test_bad_arguments(codec, small):
    with pytest.raises(ValueError, match="entropy"):
        codec.compress(small, entropy="best")
    for q in (0, 99, "3", True, 2.0):
        with pytest.raises(ValueError, match="quality"):
            ImageCodec.pretrained(q)
    with pytest.raises(FileNotFoundError):
        ImageCodec.load("/nonexistent/model.npz")


def test_load_rejects_non_model(tmp_path):
    p = tmp_path / "junk.npz"
    p.write_bytes(b"not a model file")
    with pytest.raises(ValueError, match="not an ldem model file"):
        ImageCodec.load(p)


def test_load_same_as_pretrained(small):
    a = ImageCodec.load(pretrained_path(), quality=2)
    assert a.compress(small) == ImageCodec.pretrained(2).compress(small)


def test_header(codec, small):
    data = codec.compress(small)
    h = read_header(data)
    assert h["width"] == 64 and h["height"] == 48 and h["quality"] == 2 and h["version"] == 1
    assert h["model_id"] == codec.model_id
    info = codec.info(data)
    parts = ("header_bytes", "latent_bytes_header", "latent_bytes_side_tables_and_map_counts",
             "latent_bytes_block_map", "latent_bytes_data")
    assert sum(info[k] for k in parts) == len(data)


def test_other_quality_or_model_is_rejected(codec, small):
    data = codec.compress(small)
    with pytest.raises(ldem.DecodeError, match="quality 2"):
        ImageCodec.pretrained(3).decompress(data)
    assert ImageCodec.for_file(data).quality == 2
    other = bytearray(data)
    other[5] ^= 1  # model id
    with pytest.raises(ldem.DecodeError, match="model"):
        codec.decompress(bytes(other))
    with pytest.raises(ldem.DecodeError, match="model"):
        ImageCodec.for_file(bytes(other))
    newer = bytearray(data)
    newer[4] = 2
    with pytest.raises(ldem.DecodeError, match="version"):
        codec.decompress(bytes(newer))
    q99 = bytearray(data)
    q99[13] = 99
    with pytest.raises(ldem.DecodeError, match="quality"):
        ImageCodec.for_file(bytes(q99))


def test_damaged_files_raise_decode_error(codec, small):
    data = codec.compress(small)
    rng = np.random.default_rng(0)
    for n in list(range(0, 20)) + sorted(rng.integers(20, len(data), 30).tolist()):
        with pytest.raises(ldem.DecodeError):
            codec.decompress(data[:n])
    for _ in range(60):
        d = bytearray(data)
        i = int(rng.integers(0, len(d)))
        d[i] ^= 1 << int(rng.integers(0, 8))
        try:
            codec.decompress(bytes(d))
        except ldem.DecodeError:
            continue
        # only the size fields can change without the checksum noticing; the latent
        # shape check catches those, so nothing may decode
        raise AssertionError(f"flip at byte {i} decoded")
    with pytest.raises(ldem.DecodeError):
        codec.decompress(data + b"\0")
    with pytest.raises(ldem.DecodeError):
        codec.decompress(b"LDEM")
    with pytest.raises(TypeError):
        codec.decompress("LDEM")


def test_huge_declared_size_rejected_before_decoding(codec, small):
    data = bytearray(codec.compress(small))
    h = read_header(bytes(data))
    huge = bytes(data[:14]) + b"\xff\xff\x03\xff\xff\x03" + bytes(data[h["header_bytes"]:])
    with pytest.raises(ldem.DecodeError, match="max_pixels"):
        codec.decompress(huge)
