"""ldem.images: the one image loader, the conversion rules, listing images, and the one list of suffixes."""
import numpy as np
import pytest

Image = pytest.importorskip("PIL.Image")

from ldem import images  # noqa: E402
from ldem.images import (IMAGE_SUFFIXES, MAX_SIDE, declared_size, image_to_array, list_images, load_rgb,  # noqa: E402
                         open_image, sample_image_path)


@pytest.fixture(scope="module")
def small():
    with Image.open(sample_image_path()) as im:
        return np.ascontiguousarray(np.asarray(im.convert("RGB"))[40:88, 100:164])


def test_pil_modes(small):
    rgb = Image.fromarray(small)
    ref = image_to_array(rgb)
    assert ref.shape == (3, 48, 64) and ref.dtype == np.float32
    assert np.array_equal(ref, small.transpose(2, 0, 1) / np.float32(255))
    g = image_to_array(rgb.convert("L"))
    assert np.array_equal(g[0], g[1]) and np.array_equal(g[1], g[2])
    for mode in ("1", "P", "CMYK", "YCbCr", "LA", "RGBA", "F", "I"):
        a = image_to_array(rgb.convert(mode))
        assert a.shape == ref.shape and a.dtype == np.float32 and 0 <= a.min() and a.max() <= 1
    i16 = Image.fromarray((np.asarray(rgb.convert("L"), np.uint16) * 257).astype(np.uint16))
    assert i16.mode.startswith("I;16") and np.allclose(image_to_array(i16), g)
    rgba = np.dstack([small, np.zeros(small.shape[:2], np.uint8)])  # transparent pixels become white
    rgba[:, :10, 3] = 255
    a = image_to_array(rgba)
    assert np.all(a[:, :, 10:] == 1.0) and np.allclose(a[:, :, :10], ref[:, :, :10])
    p = rgb.convert("P")
    p.info["transparency"] = 0
    assert image_to_array(p).shape == ref.shape


@pytest.mark.parametrize("bad,exc", [
    (np.zeros((8, 8, 3), np.float32), TypeError), (np.zeros((8, 8, 5), np.uint8), ValueError),
    (np.zeros((0, 8, 3), np.uint8), ValueError), (np.zeros((8,), np.uint8), ValueError),
    (np.zeros((1, MAX_SIDE + 1), np.uint8), ValueError), ("image.png", TypeError),
])
def test_bad_inputs(bad, exc):
    with pytest.raises(exc, match="image"):
        image_to_array(bad)


def test_declared_size(small):
    assert declared_size(small) == (64, 48)
    assert declared_size(Image.fromarray(small)) == (64, 48)
    assert declared_size("x") is None and declared_size(np.zeros(3)) is None


def test_open_image_limits_and_errors(tmp_path, small):
    path = tmp_path / "a.png"
    Image.fromarray(small).save(path)
    with open_image(path) as im:
        assert im.size == (64, 48)
    with pytest.raises(ValueError, match="exceeds max_pixels=100"):
        open_image(path, max_pixels=100)
    with pytest.raises(FileNotFoundError, match="no such file"):
        open_image(tmp_path / "missing.png")
    with pytest.raises(IsADirectoryError):
        open_image(tmp_path)
    with pytest.raises(ValueError, match="junk.png: not an image"):
        open_image(b"\x89PNG junk", name="junk.png")
    with pytest.raises(ValueError, match="cut.png: not an image"):
        open_image(path.read_bytes()[:60], name="cut.png")


def test_load_rgb_follows_the_codec_rules(tmp_path, small):
    rgba = np.dstack([small, np.full(small.shape[:2], 255, np.uint8)])
    rgba[0, 0, 3] = 0
    Image.fromarray(rgba).save(tmp_path / "alpha.png")
    out = load_rgb(tmp_path / "alpha.png")
    assert out.dtype == np.uint8 and out.shape == (48, 64, 3)
    assert (out[0, 0] == 255).all() and np.array_equal(out[1:], small[1:])
    assert np.array_equal(out, np.rint(image_to_array(rgba).transpose(1, 2, 0) * 255).astype(np.uint8))
    with pytest.raises(ValueError, match="max_pixels"):
        load_rgb(tmp_path / "alpha.png", max_pixels=10)


def test_list_images_is_recursive_and_sorted(tmp_path):
    (tmp_path / "b").mkdir()
    for name in ("z.PNG", "b/a.jpg", "b/c.gif", "notes.txt", "b/d.ldem"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "x.png").mkdir()  # a folder named like an image is not one
    assert [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)] == ["b/a.jpg", "b/c.gif", "z.PNG"]
    with pytest.raises(FileNotFoundError, match="not a folder"):
        list_images(tmp_path / "none")


def test_one_list_of_suffixes():
    import ldem.evaluate
    assert ldem.evaluate.IMAGE_EXTENSIONS is IMAGE_SUFFIXES
    assert all(s == s.lower() and s.startswith(".") for s in IMAGE_SUFFIXES)


def test_one_image_loader():
    import ldem.codec
    assert ldem.codec.open_image is open_image and ldem.codec.image_to_array is image_to_array
    assert ldem.sample_image_path is images.sample_image_path
