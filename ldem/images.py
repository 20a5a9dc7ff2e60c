"""Image input and output shared by the codec, training and evaluation: the one list of
image suffixes, the one image loader (:func:`open_image`, with its size limits) and the
one conversion to the codec's input (:func:`image_to_array`, :func:`load_rgb`).

Conversion rules: RGB is kept as is. Grayscale (``L``, ``1``, 16-bit ``I;16``/``I``
scaled to 8 bits, float ``F`` clipped to 0..255) is replicated to three channels.
Palette images are expanded. Alpha (``LA``, ``RGBA``, ``PA``, palette transparency,
H×W×4 arrays) is composited over white, because the codec stores no alpha. Other modes
(CMYK, YCbCr, LAB, HSV) go through Pillow's ``convert("RGB")``.

Reading files needs Pillow (the ``codec`` extra); converting numpy arrays does not.

>>> import numpy as np
>>> image_to_array(np.zeros((4, 6, 4), np.uint8)).shape  # RGBA over white
(3, 4, 6)
"""
from __future__ import annotations

import io
import sys
import warnings
from importlib import resources
from pathlib import Path
from struct import error as struct_error
from typing import Optional

import numpy as np

from ldem._optional import require
from ldem.container import MAX_SIDE

__all__ = ["IMAGE_SUFFIXES", "DEFAULT_MAX_PIXELS", "MAX_SIDE", "sample_image_path", "image_to_array",
           "open_image", "load_rgb", "list_images", "declared_size"]

#: File suffixes read as images (lower case), wherever ldem looks for images in a folder.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm", ".gif")
DEFAULT_MAX_PIXELS = 2**25  # the largest image ldem codes or reads by default


def sample_image_path() -> Path:
    """Path of the small bundled sample photo (see ``ldem/data/README.md`` for its source and licence).

    >>> sample_image_path().name
    'sample.png'
    """
    return Path(str(resources.files("ldem") / "data" / "sample.png"))


def _over_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha.astype(np.float32)[..., None] / 255.0
    return np.clip(np.rint(rgb.astype(np.float32) * a + 255.0 * (1.0 - a)), 0, 255).astype(np.uint8)


def _pil_to_array(im) -> np.ndarray:
    mode = im.mode
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        mode = im.mode
    if mode == "RGB":
        return np.asarray(im, dtype=np.uint8)
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        im = im.convert("RGBA")
        a = np.asarray(im, dtype=np.uint8)
        return _over_white(a[..., :3], a[..., 3])
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        g = np.asarray(im.convert("I"), dtype=np.int64)
        g = np.clip(np.rint(g / 257.0), 0, 255).astype(np.uint8) if g.max(initial=0) > 255 else \
            np.clip(g, 0, 255).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=2)
    if mode == "F":
        g = np.asarray(im, dtype=np.float32)
        g = np.clip(np.rint(np.nan_to_num(g)), 0, 255).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=2)
    if mode in ("L", "1"):
        g = np.asarray(im.convert("L"), dtype=np.uint8)
        return np.repeat(g[..., None], 3, axis=2)
    return np.asarray(im.convert("RGB"), dtype=np.uint8)


def image_to_array(image) -> np.ndarray:
    """Any supported input -> float32 ``[3, H, W]`` in [0, 1] (see the module docs for the rules).

    >>> import numpy as np
    >>> image_to_array(np.full((2, 5), 255, np.uint8)).shape
    (3, 2, 5)
    """
    pil = sys.modules.get("PIL.Image")  # an image from Pillow means Pillow is imported
    if pil is not None and isinstance(image, pil.Image):
        a = _pil_to_array(image)
    elif isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise TypeError(f"image: numpy arrays must be uint8 H×W×3 (or H×W, H×W×1, H×W×4), got {image.dtype}")
        if image.ndim == 2:
            image = image[..., None]
        if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
            raise ValueError(f"image: expected H×W×3 (or H×W, H×W×1, H×W×4), got shape {image.shape}")
        if image.shape[2] == 1:
            a = np.repeat(image, 3, axis=2)
        elif image.shape[2] == 4:
            a = _over_white(image[..., :3], image[..., 3])
        else:
            a = image
    else:
        torch = sys.modules.get("torch")  # a tensor means torch is imported
        if torch is None or not isinstance(image, torch.Tensor):
            raise TypeError(f"image must be a PIL.Image, a uint8 numpy array or a float torch tensor, "
                            f"got {type(image).__name__}")
        t = image.detach()
        if not t.is_floating_point():
            raise TypeError(f"image: tensors must be floating point in [0, 1], got {t.dtype}")
        if t.ndim == 4 and t.shape[0] == 1:
            t = t[0]
        if t.ndim != 3 or t.shape[0] != 3:
            raise ValueError(f"image: tensors must be [3, H, W] or [1, 3, H, W], got {tuple(image.shape)}")
        f = t.to("cpu", torch.float32).numpy()
        if not np.isfinite(f).all():
            raise ValueError("image: tensor has NaN or infinite values")
        out = np.clip(f, 0.0, 1.0)
        _check_size(out.shape[1], out.shape[2])
        return np.ascontiguousarray(out)
    _check_size(a.shape[0], a.shape[1])
    return np.ascontiguousarray(a.transpose(2, 0, 1), dtype=np.float32) / 255.0


def open_image(source, *, max_pixels: int = DEFAULT_MAX_PIXELS, name: Optional[str] = None):
    """Opens and decodes an image file (a path, or its bytes) with Pillow, refusing more than
    ``max_pixels`` pixels or a side over 65535 before the pixels are decoded.

    Every failure is a ``ValueError`` (``OSError`` for a missing or unreadable path) with
    the file's name; Pillow's own exceptions (``UnidentifiedImageError``,
    ``DecompressionBombError``, ``SyntaxError`` of a damaged header) do not escape.

    >>> im = open_image(sample_image_path())
    >>> im.mode, im.size[0] > 0
    ('RGB', True)
    >>> open_image(b"not an image", name="x.png")
    Traceback (most recent call last):
    ...
    ValueError: x.png: not an image Pillow can read (cannot identify image file ...)
    """
    Image = require("ldem.images.open_image", "PIL.Image")
    if isinstance(source, (bytes, bytearray, memoryview)):
        name = name or "image"
        fp = io.BytesIO(bytes(source))
    else:
        name = name or str(source)
        p = Path(source)
        if not p.exists():
            raise FileNotFoundError(f"{name}: no such file")
        if p.is_dir():
            raise IsADirectoryError(f"{name}: is a folder")
        fp = p
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(fp)
        w, h = im.size
        if w < 1 or h < 1 or w > MAX_SIDE or h > MAX_SIDE or w * h > max_pixels:
            im.close()
            raise ValueError(f"{name}: image of {w}×{h} pixels exceeds max_pixels={max_pixels} or the largest "
                             f"side of {MAX_SIDE} (raise max_pixels to code it: ldem --max-pixels N)")
        im.load()
        return im
    except Image.DecompressionBombError as e:
        raise ValueError(f"{name}: image larger than max_pixels={max_pixels} and than Pillow's "
                         f"decompression-bomb limit ({e}; ldem --max-pixels N raises the first)") from None
    except ValueError:
        raise
    except (OSError, SyntaxError, EOFError, MemoryError, struct_error, IndexError, KeyError, TypeError) as e:
        if isinstance(e, (FileNotFoundError, PermissionError)):
            raise
        raise ValueError(f"{name}: not an image Pillow can read ({e})") from None


def declared_size(image):
    """(width, height) of a PIL image, numpy array or tensor without converting it; None
    for other objects (which :func:`image_to_array` rejects)."""
    if isinstance(image, np.ndarray):
        return (int(image.shape[1]), int(image.shape[0])) if image.ndim >= 2 else None
    size = getattr(image, "size", None)
    if isinstance(size, tuple) and len(size) == 2 and all(isinstance(v, int) for v in size):
        return size  # PIL.Image
    shape = getattr(image, "shape", None)
    if shape is not None and len(shape) >= 2:
        return int(shape[-1]), int(shape[-2])  # torch tensor [.., H, W]
    return None


def _check_size(h: int, w: int):
    if h < 1 or w < 1:
        raise ValueError(f"image: empty image ({w}×{h})")
    if h > MAX_SIDE or w > MAX_SIDE:
        raise ValueError(f"image: {w}×{h} exceeds the largest side of {MAX_SIDE}")


def load_rgb(path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """An image file as uint8 H×W×3, converted by the codec's rules (:func:`image_to_array`:
    alpha over white, grayscale replicated), read by :func:`open_image` (so with its limits
    and errors).

    >>> load_rgb(sample_image_path()).shape
    (256, 384, 3)
    """
    with open_image(path, max_pixels=max_pixels) as im:
        x = image_to_array(im)
    return np.ascontiguousarray(np.rint(x.transpose(1, 2, 0) * 255.0).astype(np.uint8))


def list_images(folder) -> list:
    """Image files (by suffix, :data:`IMAGE_SUFFIXES`) anywhere under ``folder``, sorted.
    Raises FileNotFoundError when ``folder`` is not a folder.

    >>> import tempfile
    >>> list_images(tempfile.mkdtemp())
    []
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"not a folder: {folder}")
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
