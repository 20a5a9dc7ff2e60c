"""ldem.codec: the image codec round trip, odd inputs, the .ldem header and damaged files."""
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from PIL import Image  # noqa: E402

import ldem  # noqa: E402
from ldem.codec import ImageCodec, make_header, psnr, read_header, pretrained_path  # noqa: E402


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
    """Every PIL mode codes (the conversion rules themselves are tested in test_images.py)."""
    rgb = Image.fromarray(small)
    for mode in ("1", "P", "CMYK", "YCbCr", "LA", "RGBA", "F", "I"):
        out = codec.decompress_array(codec.compress(rgb.convert(mode)))
        assert out.shape == small.shape and out.dtype == np.uint8


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
    assert h["width"] == 64 and h["height"] == 48 and h["quality"] == 2 and h["version"] == 2
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
    h = read_header(data)
    other = make_header(bytes(8), 2, h["width"], h["height"]) + data[h["header_bytes"]:]  # another model id
    with pytest.raises(ldem.DecodeError, match="model"):
        codec.decompress(other)
    with pytest.raises(ldem.DecodeError, match="model"):
        ImageCodec.for_file(other)
    newer = bytearray(data)
    newer[4] = 3
    with pytest.raises(ldem.DecodeError, match="version"):
        codec.decompress(bytes(newer))
    q99 = _with_header(data, quality=99)
    with pytest.raises(ldem.DecodeError, match="quality"):
        ImageCodec.for_file(q99)


def _with_header(data, **fields):
    """``data`` with its header rewritten (and re-checksummed) with other fields."""
    h = read_header(data)
    f = {"quality": h["quality"], "width": h["width"], "height": h["height"], **fields}
    return make_header(bytes.fromhex(h["model_id"]), f["quality"], f["width"], f["height"]) + \
        bytes(data[h["header_bytes"]:])


@pytest.mark.parametrize("quality", [2, 8], ids=["learned", "block-transform"])
def test_damaged_files_raise_decode_error(quality, small):
    codec = ImageCodec.pretrained(quality)
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


@pytest.mark.parametrize("quality", [2, 8], ids=["learned", "block-transform"])
def test_huge_declared_size_rejected_before_decoding(quality, small):
    codec = ImageCodec.pretrained(quality)
    huge = _with_header(codec.compress(small), width=65535, height=65535)
    with pytest.raises(ldem.DecodeError, match="max_pixels"):
        codec.decompress(huge)


def test_header_is_covered_by_its_checksum(codec, small):
    """Any change of the header (a width or height that still parses included) is damage."""
    data = codec.compress(small)
    n = read_header(data)["header_bytes"]
    for i in range(n):
        for bit in range(8):
            d = bytearray(data)
            d[i] ^= 1 << bit
            with pytest.raises(ldem.DecodeError):
                codec.decompress(bytes(d))
    for w, h in [(63, 48), (64, 47), (65, 48), (48, 64), (1, 1)]:  # same latent shape or not
        bad = bytearray(data)
        bad[14:n - 4] = make_header(bytes(8), 1, w, h)[14:-4]
        with pytest.raises(ldem.DecodeError):
            codec.decompress(bytes(bad))


FIXTURES = Path(__file__).parent / "data" / "ldem-v1"


@pytest.mark.parametrize("name", sorted(json.loads((FIXTURES / "manifest.json").read_text())))
def test_version_1_files_still_decode(name):
    """Files of format version 1 (no header checksum), written by an earlier ldem, decode to
    the latent they held; their pixels are those of the same latent in a version 2 file."""
    expect = json.loads((FIXTURES / "manifest.json").read_text())[name]
    data = (FIXTURES / name).read_bytes()
    h = read_header(data)
    assert (h["version"], h["quality"], h["width"], h["height"]) == \
        (1, expect["quality"], expect["width"], expect["height"])
    codec = ImageCodec.for_file(data)
    y, size = codec.decode_latent(data)
    assert hashlib.sha256(np.ascontiguousarray(y, "<i4").tobytes()).hexdigest() == expect["latent_sha256"]
    pixels = codec.decompress_array(data)
    assert pixels.shape == (expect["height"], expect["width"], 3)
    again = codec.compress_latent(y, size, entropy=expect["entropy"])
    assert read_header(again)["version"] == 2
    assert np.array_equal(codec.decompress_array(again), pixels)
    # The container gained a header checksum (4 bytes) and the latent stream is now
    # version 2 (context-coded when the model has context families): never larger than
    # the version-1 stream of the same latent by more than those bytes and the features byte.
    assert len(again) <= expect["bytes"] + 4 + 1


def test_max_pixels_is_the_same_limit_on_both_sides(small):
    """An image over max_pixels is refused by compress, and a file is read back at the
    settings that wrote it."""
    tight = ImageCodec.pretrained(1, max_pixels=64 * 48 - 1)
    with pytest.raises(ValueError, match="max_pixels"):
        tight.compress(small)
    with pytest.raises(ValueError, match="max_pixels"):
        tight.compress(Image.fromarray(small))
    exact = ImageCodec.pretrained(1, max_pixels=64 * 48)
    data = exact.compress(small)
    assert exact.decompress_array(data).shape == small.shape
    with pytest.raises(ldem.DecodeError, match="max_pixels"):
        tight.decompress_array(data)
    with pytest.raises(ValueError, match="max_pixels"):
        ImageCodec.pretrained(1, max_pixels=0)


def test_tiled_transforms_match_the_whole_image(sample):
    """Small tiles give (nearly) the latent and pixels of one whole-image call, and both
    files decode with either codec."""
    img = np.ascontiguousarray(sample[:100, :150])
    whole, tiled = ImageCodec.pretrained(2), ImageCodec.pretrained(2, tile=32)
    calls = []
    y_whole, _ = whole.latent(img)
    y_tiled, _ = tiled.latent(img, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (20, 20) and len(calls) == 20  # 4×5 tiles of 32 pixels over 112×160
    assert np.mean(y_whole == y_tiled) > 0.999 and np.abs(y_whole - y_tiled).max() <= 1
    data = whole.compress_latent(y_whole, img.shape[:2])
    a = whole.decompress_array(data)
    b = tiled.decompress_array(data, progress=lambda d, t: calls.append((d, t)))
    assert a.shape == b.shape == img.shape and np.abs(a.astype(int) - b).max() <= 1
    assert np.mean(a == b) > 0.999
    with pytest.raises(ValueError, match="multiple of 16"):
        ImageCodec.pretrained(2, tile=40)


PREVIOUS_MODEL = Path(__file__).parent / "data" / "ldem-7f6fce76"


@pytest.mark.parametrize("name", sorted(json.loads((PREVIOUS_MODEL / "manifest.json").read_text())))
def test_files_of_the_previous_model_still_decode(name):
    """Files of the previous shipped model (7f6fce76f904fe4e, whose qualities 9–12 left the
    ladder when the block transform took the high qualities) decode to the latent and the
    pixels they held, through ImageCodec.for_file, and re-encode to the same bytes."""
    expect = json.loads((PREVIOUS_MODEL / "manifest.json").read_text())[name]
    data = (PREVIOUS_MODEL / name).read_bytes()
    h = read_header(data)
    assert (h["model_id"], h["quality"], h["width"], h["height"]) == \
        ("7f6fce76f904fe4e", expect["quality"], expect["width"], expect["height"])
    codec = ImageCodec.for_file(data)
    assert codec.bundle.model_id.hex() != h["model_id"] and not codec.is_block_transform
    y, size = codec.decode_latent(data)
    assert hashlib.sha256(np.ascontiguousarray(y, "<i4").tobytes()).hexdigest() == expect["latent_sha256"]
    pixels = codec.decompress_array(data)
    assert hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest() == expect["pixels_sha256"]
    assert codec.compress_latent(y, size, entropy=expect["entropy"]) == data
    # the shipped model's own quality of that number is another codec, which refuses the file
    own = ImageCodec.pretrained(expect["quality"])
    if own.entry != codec.entry:
        with pytest.raises(ldem.DecodeError, match="made by model"):
            own.decompress_array(data)
