"""The image codec: learned transforms + local entropy models, and the ``.ldem`` file format.

>>> import ldem
>>> from PIL import Image
>>> codec = ldem.ImageCodec.pretrained(quality=2)
>>> image = Image.open(ldem.sample_image_path())
>>> data = codec.compress(image)
>>> codec.decompress(data).size == image.size
True

A ``.ldem`` file is, little-endian::

    magic      4 bytes   b"LDEM"
    version    1 byte    FORMAT_VERSION (2; version 1 files are still read)
    model id   8 bytes   digest of the model file (weights and integer tables)
    quality    1 byte    1..number of levels of that model
    width      varint    1..65535
    height     varint    1..65535
    header crc 4 bytes   CRC-32 of the bytes above (version 2 only)
    latent     rest      an ldem.LocalEntropyCoder stream (its own header, tables, map, CRC-32)

The two checksums cover every byte of a version 2 file: a changed width or height is
reported as damage instead of decoding to an image of another size. Version 1 files
have no header checksum.

Limits: ``max_pixels`` (2^25 by default) bounds the image on both sides: ``compress``
refuses a larger image and ``decompress`` refuses a file that declares one, before it
allocates anything, so every file ``compress`` writes is read back at the same settings.
The latent coder's ``max_symbols`` follows from it. The transforms run in tiles (see
:mod:`ldem.tiling`), so their memory grows with the tile, not the image.

Decoding uses only the integer tables stored in the model file and the synthesis
transform, so the bitstream is fully determined by the encoder.

Input conversion (``compress``): RGB is coded as is. Grayscale (``L``, ``1``, 16-bit
``I;16``/``I`` scaled to 8 bits, float ``F`` clipped to 0..255) is replicated to three
channels. Palette images are expanded. Alpha (``LA``, ``RGBA``, ``PA``, palette
transparency, H×W×4 arrays) is composited over white, because the codec stores no alpha.
Other modes (CMYK, YCbCr, LAB, HSV) go through Pillow's ``convert("RGB")``. The decoded
image is always an 8-bit RGB ``PIL.Image``.
"""
from __future__ import annotations

import io
import math
import zlib
from struct import error as struct_error
from importlib import resources
from pathlib import Path
from typing import Optional, Union

import numpy as np

from ldem.bitio import ByteReader, put_varint
from ldem.errors import DecodeError
from ldem.local import LocalEntropyCoder
from ldem.model_file import DEFAULT_MAX_BYTES, MODEL_FILE_FORMAT, ModelBundle, _bundle, pretrained_path  # noqa: F401
from ldem.tiling import DEFAULT_TILE, analysis_tiled, check_tile, synthesis_tiled

__all__ = ["ImageCodec", "FORMAT_VERSION", "MAGIC", "read_header", "sample_image_path", "pretrained_path",
           "image_to_array"]

MAGIC = b"LDEM"
FORMAT_VERSION = 2
READ_VERSIONS = (1, 2)  # version 1: the same header without its CRC-32
DEFAULT_MAX_PIXELS = 2**25
MAX_SIDE = 65535
_ENTROPY = ("global", "static", "local")


def sample_image_path() -> Path:
    """Path of the small bundled sample photo (see ``ldem/data/README.md`` for its source and licence)."""
    return Path(str(resources.files("ldem") / "data" / "sample.png"))


# ---------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------
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
    try:
        from PIL import Image
        is_pil = isinstance(image, Image.Image)
    except ImportError:  # pragma: no cover
        is_pil = False
    if is_pil:
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
        try:
            import torch
        except ImportError:  # pragma: no cover
            torch = None
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
    import warnings
    from PIL import Image
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


def _declared_size(image):
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


def pad_to_16(x):
    """Pads a tensor ``[B, C, H, W]`` on the bottom and right, by edge replication, to
    multiples of 16 (the transforms' total stride)."""
    import torch.nn.functional as F
    H, W = x.shape[-2:]
    ph, pw = -H % 16, -W % 16
    return F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x


def _check_size(h: int, w: int):
    if h < 1 or w < 1:
        raise ValueError(f"image: empty image ({w}×{h})")
    if h > MAX_SIDE or w > MAX_SIDE:
        raise ValueError(f"image: {w}×{h} exceeds the largest side of {MAX_SIDE}")


# ---------------------------------------------------------------------------------------
# Header
# ---------------------------------------------------------------------------------------
def read_header(data: bytes) -> dict:
    """Parses and checks the ``.ldem`` header: version, model id (hex), quality, width,
    height, header bytes. Raises :class:`ldem.DecodeError` on damage (including a header
    checksum mismatch in a version 2 file).

    >>> h = read_header(make_header(bytes(8), quality=2, width=16, height=8))
    >>> h["version"], h["quality"], h["width"], h["height"]
    (2, 2, 16, 8)
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    r = ByteReader(bytes(data[:64]))  # a header is at most 4 + 1 + 8 + 1 + 3 + 3 + 4 bytes
    if r.remaining() < 4 or r.take(4) != MAGIC:
        raise DecodeError("not an .ldem file (bad magic)")
    version = r.u8()
    if version not in READ_VERSIONS:
        raise DecodeError(f".ldem format version {version} is not supported (this ldem reads "
                          f"{', '.join(map(str, READ_VERSIONS))})")
    model_id = r.take(8)
    quality = r.u8()
    width, height = r.varint(MAX_SIDE), r.varint(MAX_SIDE)
    if version >= 2:
        end = r.pos
        if int.from_bytes(r.take(4), "little") != zlib.crc32(bytes(data[:end])):
            raise DecodeError("header checksum mismatch (corrupt .ldem header)")
    if quality < 1 or width < 1 or height < 1:
        raise DecodeError("invalid .ldem header (zero quality or size)")
    return {"version": version, "model_id": model_id.hex(), "quality": quality, "width": width,
            "height": height, "header_bytes": r.pos}


def make_header(model_id: bytes, quality: int, width: int, height: int) -> bytes:
    """The ``.ldem`` header of the current format version (the one definition of its layout
    besides :func:`read_header`).

    >>> make_header(bytes(8), 1, 300, 2)[:5]
    b'LDEM\\x02'
    """
    if len(model_id) != 8 or not 1 <= quality <= 255 or not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise ValueError(f"invalid header fields: model id of {len(model_id)} bytes, quality {quality}, "
                         f"size {width}×{height}")
    head = bytearray(MAGIC)
    head.append(FORMAT_VERSION)
    head += model_id
    head.append(quality)
    put_varint(head, width)
    put_varint(head, height)
    head += zlib.crc32(bytes(head)).to_bytes(4, "little")
    return bytes(head)


def max_latent_symbols(channels: int, max_pixels: int) -> int:
    """The most latent symbols (``channels × ceil(H/16) × ceil(W/16)``) of any image with
    at most ``max_pixels`` pixels and sides of at most 65535.

    >>> max_latent_symbols(1, 256)  # a 256×1 image has 16 latent positions
    16
    """
    # ceil(H/16)·ceil(W/16) <= (HW + 15(H + W) + 225) / 256. Under HW <= P and sides of at
    # most S, H + W is largest at an extreme: H = min(S, P), W = max(1, min(S, P // H)).
    side = min(MAX_SIDE, max_pixels)
    sides = side + max(1, min(MAX_SIDE, max_pixels // side))
    return channels * ((max_pixels + 15 * sides + 225) // 256)


# ---------------------------------------------------------------------------------------
# Codec
# ---------------------------------------------------------------------------------------
class ImageCodec:
    """Compresses RGB images to ``.ldem`` bytes at one quality of a model file.

    ``entropy`` picks the entropy model of :class:`ldem.LocalEntropyCoder`: ``"global"``
    (one fixed model per channel, the baseline), ``"static"`` (plus the learned
    dictionary) or ``"local"`` (plus models built for this image). The pixels decoded are
    the same in every mode; only the size changes. ``threads`` is the entropy coder's
    thread count (``None``: every core, like torch's transforms); the bytes do not
    depend on it. :attr:`net` and :attr:`level` are the transforms and their trained
    level behind the quality (a model file may hold several sets of transforms).
    ``max_pixels`` bounds the images it codes and the files it reads (see the module
    docs); ``tile`` is the side, in pixels, of the tiles the transforms run on (memory
    grows with the tile, not the image; an image within one tile is one call).

    >>> import ldem, numpy as np
    >>> codec = ldem.ImageCodec.pretrained(quality=1)
    >>> img = np.zeros((20, 30, 3), np.uint8)
    >>> out = codec.decompress(codec.compress(img, entropy="global"))
    >>> out.size, out.mode
    ((30, 20), 'RGB')
    """

    def __init__(self, bundle: ModelBundle, quality: int, *, threads: Optional[int] = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS, tile: int = DEFAULT_TILE):
        if not isinstance(quality, (int, np.integer)) or isinstance(quality, bool) or \
                not 1 <= quality <= bundle.num_qualities:
            raise ValueError(f"quality must be an int in 1..{bundle.num_qualities}, got {quality!r}")
        if not isinstance(max_pixels, (int, np.integer)) or isinstance(max_pixels, bool) or max_pixels < 1:
            raise ValueError(f"max_pixels must be a positive int, got {max_pixels!r}")
        self.bundle = bundle
        self.quality = int(quality)
        self.max_pixels = int(max_pixels)
        check_tile(tile)
        self.tile = tile
        self._transforms, self.level = bundle.level_of(self.quality)  # the trained level behind this quality
        self.latent_channels = int(bundle.configs[self._transforms]["M"])
        level = bundle.levels[self.quality - 1]
        g, s = bundle.tables[self.quality]
        self.coder = LocalEntropyCoder(
            g, s, block_sizes=[tuple(b) for b in level.get("block_sizes", [[16, 16], [32, 32]])],
            max_image_models=int(level.get("max_image_models", 32)), threads=threads,
            max_symbols=max_latent_symbols(self.latent_channels, self.max_pixels))

    # -- construction ------------------------------------------------------------------
    @classmethod
    def pretrained(cls, quality: int = 3, **kwargs) -> "ImageCodec":
        """The shipped model at ``quality`` (1 = smallest files; see :attr:`num_qualities`)."""
        return cls(_bundle(str(pretrained_path())), quality, **kwargs)

    @classmethod
    def load(cls, path: Union[str, Path], quality: int = 3, *, max_model_bytes: int = DEFAULT_MAX_BYTES,
             **kwargs) -> "ImageCodec":
        """A model file written by ``ldem export`` (``.npz``), at ``quality``.

        Any model file may be loaded, from any source: it is checked before use, and
        ``max_model_bytes`` (256 MiB by default) bounds the memory it may take (the file,
        its tables and its transforms). A file replaced on disk is read again."""
        return cls(_bundle(str(Path(path).resolve()), max_model_bytes), quality, **kwargs)

    @property
    def num_qualities(self) -> int:
        return self.bundle.num_qualities

    @property
    def model_id(self) -> str:
        return self.bundle.model_id.hex()

    @property
    def net(self):
        """The PyTorch transforms behind this quality (use with :attr:`level`)."""
        return self.bundle.net(self._transforms)

    # -- coding ------------------------------------------------------------------------
    def latent(self, image, progress=None):
        """The int32 latent ``[M, ceil(H/16), ceil(W/16)]`` of an image, and its (H, W).

        ``progress(done, total)``, if given, is called as the tiles of the analysis finish."""
        import torch
        size = _declared_size(image)
        if size is not None:  # before any conversion allocates the image
            self._check_pixels(*size)
        x = image_to_array(image)
        H, W = x.shape[1:]
        self._check_pixels(W, H)
        with torch.inference_mode():
            y = analysis_tiled(self.net, pad_to_16(torch.from_numpy(x)[None]), self.level, tile=self.tile,
                               progress=progress)[0].round()
        y = y.clamp(-2.0**31, 2.0**31 - 1).to(torch.int64).numpy().astype(np.int32)
        return y, (H, W)

    def compress(self, image, entropy: str = "local", return_stats: bool = False, progress=None):
        """Image -> ``.ldem`` bytes (with the entropy coder's stats if ``return_stats``).

        ``progress(done, total)``, if given, is called as the tiles of the analysis finish."""
        y, size = self.latent(image, progress=progress)
        return self.compress_latent(y, size, entropy, return_stats)

    def compress_latent(self, y, size, entropy: str = "local", return_stats: bool = False):
        """A latent from :meth:`latent` and the image's (H, W) -> ``.ldem`` bytes.

        Lets one analysis serve several entropy modes.
        """
        if entropy not in _ENTROPY:
            raise ValueError(f"entropy must be one of {_ENTROPY}, got {entropy!r}")
        H, W = size
        expect = (self.latent_channels, -(-H // 16), -(-W // 16))
        if np.shape(y) != expect:
            raise ValueError(f"y: latent of shape {np.shape(y)} does not fit a {W}×{H} image (expected {expect})")
        self._check_pixels(W, H)
        stream, stats = self.coder.encode(y, mode=entropy, return_stats=True)
        head = make_header(self.bundle.model_id, self.quality, W, H)
        data = head + stream
        if return_stats:
            stats = dict(stats, file_header_bytes=len(head), width=W, height=H, bpp=8 * len(data) / (W * H))
            return data, stats
        return data

    def _check_header(self, data) -> dict:
        h = read_header(data)
        if h["model_id"] != self.model_id or h["quality"] != self.quality:
            raise DecodeError(
                f"file was made by model {h['model_id']} at quality {h['quality']}; this codec is model "
                f"{self.model_id} at quality {self.quality} (use ImageCodec.for_file or the matching model)")
        if h["width"] * h["height"] > self.max_pixels:
            raise DecodeError(f"image of {h['width']}×{h['height']} pixels exceeds max_pixels={self.max_pixels} "
                              f"(raise it to read this file: ImageCodec(..., max_pixels=N), ldem --max-pixels N)")
        return h

    def _check_pixels(self, width: int, height: int):
        if width * height > self.max_pixels:
            raise ValueError(f"image: {width}×{height} = {width * height} pixels exceeds max_pixels={self.max_pixels} "
                             f"(raise it to code larger images: ImageCodec(..., max_pixels=N), ldem --max-pixels N)")

    def decode_latent(self, data: bytes):
        """``.ldem`` bytes -> (int32 latent, (H, W)); raises :class:`ldem.DecodeError` on any damage."""
        h = self._check_header(data)
        H, W = h["height"], h["width"]
        y = self.coder.decode(bytes(data)[h["header_bytes"]:])
        expect = (self.latent_channels, -(-H // 16), -(-W // 16))
        if y.shape != expect:
            raise DecodeError(f"latent shape {y.shape} does not match the image size {W}×{H} (expected {expect})")
        return y, (H, W)

    def decompress(self, data: bytes, progress=None):
        """``.ldem`` bytes -> 8-bit RGB ``PIL.Image``."""
        from PIL import Image
        return Image.fromarray(self.decompress_array(data, progress=progress))

    def decompress_array(self, data: bytes, progress=None) -> np.ndarray:
        """``.ldem`` bytes -> uint8 ``H×W×3`` array.

        ``progress(done, total)``, if given, is called as the tiles of the synthesis finish."""
        y, (H, W) = self.decode_latent(data)
        return synthesis_tiled(self.net, y[None], self.level, tile=self.tile, out_hw=(H, W), progress=progress)

    # -- files -------------------------------------------------------------------------
    @classmethod
    def for_file(cls, data: bytes, model: Optional[Union[str, Path]] = None, *,
                 max_model_bytes: int = DEFAULT_MAX_BYTES, **kwargs) -> "ImageCodec":
        """The codec that reads ``data``: the shipped model (or ``model``, see :meth:`load`)
        at the file's quality."""
        h = read_header(data)
        bundle = _bundle(str(Path(model).resolve() if model else pretrained_path()), max_model_bytes)
        if h["model_id"] != bundle.model_id.hex():
            raise DecodeError(f"file was made by model {h['model_id']}, not by "
                              f"{'the shipped model' if model is None else model} ({bundle.model_id.hex()})")
        if h["quality"] > bundle.num_qualities:
            raise DecodeError(f"file quality {h['quality']} does not exist in this model (1..{bundle.num_qualities})")
        return cls(bundle, h["quality"], **kwargs)

    def info(self, data: bytes) -> dict:
        """Header fields and the bytes of each part of a ``.ldem`` file (without decoding pixels)."""
        h = self._check_header(data)
        d = self.coder.describe(bytes(data)[h["header_bytes"]:])
        total = len(data)
        return {**h, **{f"latent_{k}": v for k, v in d.items()}, "bytes": total,
                "bpp": 8 * total / (h["width"] * h["height"])}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two uint8 images of one shape (RGB, peak 255).

    >>> import numpy as np
    >>> round(psnr(np.zeros((2, 2, 3), np.uint8), np.full((2, 2, 3), 1, np.uint8)), 2)
    48.13
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)
