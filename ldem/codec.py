"""The image codec: learned transforms + local entropy models, in ``.ldem`` files.

>>> import ldem
>>> from PIL import Image
>>> codec = ldem.ImageCodec.pretrained(quality=2)
>>> image = Image.open(ldem.sample_image_path())
>>> data = codec.compress(image)
>>> codec.decompress(data).size == image.size
True

The file layout is in :mod:`ldem.container`, the model files in :mod:`ldem.model_file`,
and the conversion of inputs (alpha over white, grayscale replicated, ...) in
:mod:`ldem.images`. The decoded image is always an 8-bit RGB ``PIL.Image``.

Limits: ``max_pixels`` (2^25 by default) bounds the image on both sides: ``compress``
refuses a larger image and ``decompress`` refuses a file that declares one, before it
allocates anything, so every file ``compress`` writes is read back at the same settings.
The latent coder's ``max_symbols`` follows from it. The transforms run in tiles (see
:mod:`ldem.tiling`), so their memory grows with the tile, not the image.

Decoding uses only the integer tables stored in the model file and the synthesis
transform, so the bitstream is fully determined by the encoder.

The codec needs the ``codec`` extra (torch, Pillow): without it, making an
:class:`ImageCodec` raises :class:`ldem._optional.MissingExtraError`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import numpy as np

from ldem._optional import require
from ldem.container import FORMAT_VERSION, MAGIC, MAX_SIDE, READ_VERSIONS, make_header, read_header  # noqa: F401
from ldem.errors import DecodeError
from ldem.images import (DEFAULT_MAX_PIXELS, declared_size, image_to_array, open_image,  # noqa: F401
                         sample_image_path)
from ldem.local import DEFAULT_EFFORT, LocalEntropyCoder
from ldem.metrics import psnr  # noqa: F401
from ldem.model_file import DEFAULT_MAX_BYTES, MODEL_FILE_FORMAT, ModelBundle, _bundle, pretrained_path  # noqa: F401
from ldem.tiling import DEFAULT_TILE, analysis_tiled, check_tile, pad_to_16, synthesis_tiled

__all__ = ["ImageCodec", "FORMAT_VERSION", "MAGIC", "read_header", "sample_image_path", "pretrained_path",
           "image_to_array"]

ENTROPY_MODES = ("global", "static", "local")  # the modes of ldem.LocalEntropyCoder, cheapest to decode first


def _require_codec():
    """Raises MissingExtraError, naming every missing module, unless torch and Pillow import."""
    require("ldem.ImageCodec", "torch", "PIL.Image")


def max_latent_symbols(channels: int, max_pixels: int, stride: int = 16) -> int:
    """The most latent symbols (``channels × ceil(H/s) × ceil(W/s)``, ``s`` = ``stride``)
    of any image with at most ``max_pixels`` pixels and sides of at most 65535.

    >>> max_latent_symbols(1, 256)  # a 256×1 image has 16 latent positions
    16
    >>> max_latent_symbols(1, 256, stride=8)
    32
    """
    # ceil(H/s)·ceil(W/s) <= (HW + (s-1)(H + W) + (s-1)^2) / s^2. Under HW <= P and sides
    # of at most S, H + W is largest at an extreme: H = min(S, P), W = max(1, min(S, P // H)).
    side = min(MAX_SIDE, max_pixels)
    sides = side + max(1, min(MAX_SIDE, max_pixels // side))
    s = stride
    return channels * ((max_pixels + (s - 1) * sides + (s - 1) ** 2) // (s * s))


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
    ``effort`` (0..3, default 0, the fastest) is the entropy coder's search effort
    (:class:`ldem.LocalEntropyCoder`): more effort, smaller files, slower compression;
    decompression time does not depend on it. ``model_id`` (default: the file's own)
    says whose quality numbering ``quality`` follows: a compatible model's id (see
    :meth:`ldem.model_file.ModelBundle.entry_for`) makes a codec that reads and writes
    that model's files, as :meth:`for_file` does for old files.

    A quality is served either by learned transforms (latent stride 16) or by the
    exactly invertible block transform of :mod:`ldem.block_transform` (stride 8), which
    lifts the high qualities past the learned transforms' ceiling; :attr:`stride` says
    which.

    >>> import ldem, numpy as np
    >>> codec = ldem.ImageCodec.pretrained(quality=1)
    >>> img = np.zeros((20, 30, 3), np.uint8)
    >>> out = codec.decompress(codec.compress(img, entropy="global"))
    >>> out.size, out.mode
    ((30, 20), 'RGB')
    """

    def __init__(self, bundle: ModelBundle, quality: int, *, threads: Optional[int] = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS, tile: int = DEFAULT_TILE, effort: int = DEFAULT_EFFORT,
                 model_id: Optional[bytes] = None):
        _require_codec()
        if not isinstance(quality, (int, np.integer)) or isinstance(quality, bool):
            raise ValueError(f"quality must be an int in 1..{bundle.num_qualities}, got {quality!r}")
        if model_id is None or model_id == bundle.model_id:
            if not 1 <= quality <= bundle.num_qualities:
                raise ValueError(f"quality must be an int in 1..{bundle.num_qualities}, got {quality!r}")
            self.entry = bundle.entry(int(quality))
            self._numbering = bundle.model_id
        else:
            if not isinstance(model_id, bytes) or not bundle.reads(model_id):
                raise ValueError(f"model_id must be this model's id or a compatible one, got {model_id!r}")
            self.entry = bundle.entry_for(model_id, int(quality))
            self._numbering = model_id
        if not isinstance(max_pixels, (int, np.integer)) or isinstance(max_pixels, bool) or max_pixels < 1:
            raise ValueError(f"max_pixels must be a positive int, got {max_pixels!r}")
        self.bundle = bundle
        self.quality = int(quality)
        self.max_pixels = int(max_pixels)
        check_tile(tile)
        self.tile = tile
        # the set of transforms (index into bundle.configs) and its level behind this quality
        self.transforms_set, self.level = bundle.level_of(self.quality, self.entry)
        self.latent_channels = int(bundle.configs[self.transforms_set]["M"])
        self.stride = bundle.stride(self.transforms_set)
        level = bundle.levels[self.entry - 1]
        g, s = bundle.tables[self.entry]
        cg, cs = bundle.context_tables(self.entry)
        self.coder = LocalEntropyCoder(
            g, s, block_sizes=[tuple(b) for b in level.get("block_sizes", [[16, 16], [32, 32]])],
            max_image_models=int(level.get("max_image_models", 32)), threads=threads,
            max_symbols=max_latent_symbols(self.latent_channels, self.max_pixels, self.stride),
            context_models=cg, context_static=cs, effort=effort)

    # -- construction ------------------------------------------------------------------
    @classmethod
    def pretrained(cls, quality: int = 3, **kwargs) -> "ImageCodec":
        """The shipped model at ``quality`` (1 = smallest files; see :attr:`num_qualities`)."""
        _require_codec()
        return cls(_bundle(str(pretrained_path())), quality, **kwargs)

    @classmethod
    def load(cls, path: Union[str, Path], quality: int = 3, *, max_model_bytes: int = DEFAULT_MAX_BYTES,
             **kwargs) -> "ImageCodec":
        """A model file written by ``ldem export`` (``.npz``), at ``quality``.

        Any model file may be loaded, from any source: it is checked before use, and
        ``max_model_bytes`` (768 MiB by default) bounds the memory it may take (the file,
        its tables and its transforms). A file replaced on disk is read again."""
        _require_codec()
        return cls(_bundle(str(Path(path).resolve()), max_model_bytes), quality, **kwargs)

    @property
    def num_qualities(self) -> int:
        return self.bundle.num_qualities

    @property
    def model_id(self) -> str:
        return self.bundle.model_id.hex()

    @property
    def net(self):
        """The transforms behind this quality (use with :attr:`level`): PyTorch
        transforms, or a :class:`ldem.block_transform.BlockTransform`."""
        return self.bundle.net(self.transforms_set)

    @property
    def is_block_transform(self) -> bool:
        """Whether this quality uses the block transform (:mod:`ldem.block_transform`)."""
        return self.bundle.is_block_transform(self.transforms_set)

    def _latent_shape(self, H: int, W: int) -> tuple:
        return (self.latent_channels, -(-H // self.stride), -(-W // self.stride))

    # -- coding ------------------------------------------------------------------------
    def latent(self, image, progress=None):
        """The int32 latent ``[M, ceil(H/s), ceil(W/s)]`` of an image (``s`` = :attr:`stride`), and its (H, W).

        ``progress(done, total)``, if given, is called as the tiles of the analysis finish."""
        size = declared_size(image)
        if size is not None:  # before any conversion allocates the image
            self._check_pixels(*size)
        x = image_to_array(image)
        H, W = x.shape[1:]
        self._check_pixels(W, H)
        if self.is_block_transform:
            return self.net.analysis(x, self.level, progress=progress), (H, W)
        torch = require("ldem.ImageCodec", "torch")
        with torch.inference_mode():
            y = analysis_tiled(self.net, pad_to_16(torch.from_numpy(x)[None]), self.level, tile=self.tile,
                               progress=progress)[0].round()
        y = y.clamp(-2.0**31, 2.0**31 - 1).to(torch.int64).numpy().astype(np.int32)
        return y, (H, W)

    def compress(self, image, entropy: str = "local", return_stats: bool = False, progress=None,
                 effort: Optional[int] = None):
        """Image -> ``.ldem`` bytes (with the entropy coder's stats if ``return_stats``).

        ``progress(done, total)``, if given, is called as the tiles of the analysis finish;
        ``effort`` overrides the codec's for this call."""
        y, size = self.latent(image, progress=progress)
        return self.compress_latent(y, size, entropy, return_stats, effort=effort)

    def compress_latent(self, y, size, entropy: str = "local", return_stats: bool = False,
                        effort: Optional[int] = None, contexts: Optional[bool] = None):
        """A latent from :meth:`latent` and the image's (H, W) -> ``.ldem`` bytes.

        Lets one analysis serve several entropy modes. ``contexts=False`` writes
        context-free data (default: context-coded when the model has context families).
        """
        if entropy not in ENTROPY_MODES:
            raise ValueError(f"entropy must be one of {ENTROPY_MODES}, got {entropy!r}")
        H, W = size
        expect = self._latent_shape(H, W)
        if np.shape(y) != expect:
            raise ValueError(f"y: latent of shape {np.shape(y)} does not fit a {W}×{H} image (expected {expect})")
        self._check_pixels(W, H)
        stream, stats = self.coder.encode(y, mode=entropy, return_stats=True, effort=effort, contexts=contexts)
        head = make_header(self._numbering, self.quality, W, H)
        data = head + stream
        if return_stats:
            stats = dict(stats, file_header_bytes=len(head), width=W, height=H, bpp=8 * len(data) / (W * H))
            return data, stats
        return data

    def _check_header(self, data) -> dict:
        h = read_header(data)
        made_by = bytes.fromhex(h["model_id"])
        # a file decodes here if it was coded with this entry's tables: of this model, or of
        # a compatible one whose quality names this entry
        if not self.bundle.reads(made_by) or self.bundle.entry_for(made_by, h["quality"]) != self.entry:
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
        expect = self._latent_shape(H, W)
        if y.shape != expect:
            raise DecodeError(f"latent shape {y.shape} does not match the image size {W}×{H} (expected {expect})")
        return y, (H, W)

    def decompress(self, data: bytes, progress=None):
        """``.ldem`` bytes -> 8-bit RGB ``PIL.Image``."""
        Image = require("ldem.ImageCodec", "PIL.Image")
        return Image.fromarray(self.decompress_array(data, progress=progress))

    def decompress_array(self, data: bytes, progress=None) -> np.ndarray:
        """``.ldem`` bytes -> uint8 ``H×W×3`` array.

        ``progress(done, total)``, if given, is called as the tiles of the synthesis finish."""
        y, (H, W) = self.decode_latent(data)
        if self.is_block_transform:
            return self.net.synthesis(y, self.level, (H, W), progress=progress)
        return synthesis_tiled(self.net, y[None], self.level, tile=self.tile, out_hw=(H, W), progress=progress)

    # -- files -------------------------------------------------------------------------
    @classmethod
    def for_file(cls, data: bytes, model: Optional[Union[str, Path]] = None, *,
                 max_model_bytes: int = DEFAULT_MAX_BYTES, **kwargs) -> "ImageCodec":
        """The codec that reads ``data``: the shipped model (or ``model``, see :meth:`load`)
        at the file's quality."""
        _require_codec()
        h = read_header(data)
        bundle = _bundle(str(Path(model).resolve() if model else pretrained_path()), max_model_bytes)
        made_by = bytes.fromhex(h["model_id"])
        if not bundle.reads(made_by):
            raise DecodeError(f"file was made by model {h['model_id']}, not by "
                              f"{'the shipped model' if model is None else model} ({bundle.model_id.hex()})")
        bundle.entry_for(made_by, h["quality"])  # DecodeError for a quality the model lacks
        return cls(bundle, h["quality"], model_id=made_by, **kwargs)

    def info(self, data: bytes) -> dict:
        """Header fields and the bytes of each part of a ``.ldem`` file (without decoding pixels)."""
        h = self._check_header(data)
        d = self.coder.describe(bytes(data)[h["header_bytes"]:])
        total = len(data)
        return {**h, **{f"latent_{k}": v for k, v in d.items()}, "bytes": total,
                "bpp": 8 * total / (h["width"] * h["height"])}
