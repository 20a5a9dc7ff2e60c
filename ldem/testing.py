"""Latents for tests and benchmarks that need no learned transform.

:func:`dct_latent` turns an image into a JPEG-like integer latent: the quantized 8x8 block DCT
of its YCbCr planes, arranged as a ``[C, H, W]`` tensor with one channel per (plane,
frequency). Its statistics resemble a learned codec's latent in the ways that matter for
entropy coding (a few busy low-frequency channels, many nearly-all-zero high-frequency
channels, flat image areas giving runs of zeros), so the local entropy models can be
measured on real images before any transform is trained. :func:`dct_reconstruct` inverts it,
so rate can be paired with PSNR.

:func:`synthetic_latent` makes seeded random latents whose statistics change from region to
region, for tests.

>>> import numpy as np
>>> img = np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (48, 1))[..., None].repeat(3, 2)
>>> y = dct_latent(img, step=1.0)
>>> y.shape, y.dtype
((192, 6, 8), dtype('int32'))
>>> rec = dct_reconstruct(y, step=1.0, size=img.shape[:2])
>>> rec.shape, rec.dtype
((48, 64, 3), dtype('uint8'))
>>> bool(psnr(img, rec) > 35)
True
"""
from __future__ import annotations

import numbers
from typing import Sequence

import numpy as np

from ldem.metrics import psnr  # noqa: F401  (one definition, kept importable here)

__all__ = [
    "JPEG_LUMA_TABLE",
    "JPEG_CHROMA_TABLE",
    "DCT_MATRIX",
    "quant_tables",
    "rgb_to_ycbcr",
    "ycbcr_to_rgb",
    "dct_latent",
    "dct_reconstruct",
    "psnr",
    "synthetic_latent",
    "SYNTHETIC_KINDS",
]

#: JPEG standard luminance quantization table (ITU-T T.81 Annex K, Table K.1), row = vertical
#: frequency u, column = horizontal frequency v.
JPEG_LUMA_TABLE = np.array([
    [16, 11, 10, 16, 24, 40, 51, 61],
    [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56],
    [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77],
    [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101],
    [72, 92, 95, 98, 112, 100, 103, 99],
], dtype=np.float64)
JPEG_LUMA_TABLE.flags.writeable = False

#: JPEG standard chrominance quantization table (ITU-T T.81 Annex K, Table K.2).
JPEG_CHROMA_TABLE = np.array([
    [17, 18, 24, 47, 99, 99, 99, 99],
    [18, 21, 26, 66, 99, 99, 99, 99],
    [24, 26, 56, 99, 99, 99, 99, 99],
    [47, 66, 99, 99, 99, 99, 99, 99],
    [99, 99, 99, 99, 99, 99, 99, 99],
    [99, 99, 99, 99, 99, 99, 99, 99],
    [99, 99, 99, 99, 99, 99, 99, 99],
    [99, 99, 99, 99, 99, 99, 99, 99],
], dtype=np.float64)
JPEG_CHROMA_TABLE.flags.writeable = False


def _dct_matrix(n: int = 8) -> np.ndarray:
    # Orthonormal DCT-II: D[u, x] = c(u) cos((2x + 1) u pi / 2n), c(0) = sqrt(1/n), else sqrt(2/n)
    u = np.arange(n)[:, None]
    x = np.arange(n)[None, :]
    d = np.cos((2 * x + 1) * u * np.pi / (2 * n)) * np.sqrt(2.0 / n)
    d[0] /= np.sqrt(2.0)
    return d


#: The orthonormal 8-point DCT-II matrix: ``coeffs = D @ block @ D.T``, ``block = D.T @ c @ D``.
DCT_MATRIX = _dct_matrix(8)
DCT_MATRIX.flags.writeable = False


def quant_tables(step: float = 1.0) -> np.ndarray:
    """Quantization steps, shape ``(3, 8, 8)``: the JPEG tables times ``step``, at least 1.

    Plane 0 (Y) uses the luminance table, planes 1 and 2 (Cb, Cr) the chrominance table.
    ``step=1.0`` gives the tables as printed in the standard (about JPEG quality 50); every
    entry is clipped to ``>= 1``, so any ``step <= 1/99`` gives unit steps everywhere.

    >>> q = quant_tables(0.5)
    >>> q.shape, float(q[0, 0, 0]), float(q[1, 7, 7])
    ((3, 8, 8), 8.0, 49.5)
    >>> float(quant_tables(0.001).max())
    1.0
    """
    step = _check_step(step)
    tables = np.stack([JPEG_LUMA_TABLE, JPEG_CHROMA_TABLE, JPEG_CHROMA_TABLE])
    return np.maximum(tables * step, 1.0)


def _check_step(step) -> float:
    if isinstance(step, (bool, np.bool_)) or not isinstance(step, numbers.Real):
        raise TypeError(f"step must be a real number, got {type(step).__name__}")
    step = float(step)
    if not np.isfinite(step) or step <= 0:
        raise ValueError(f"step must be finite and > 0, got {step}")
    return step


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """JPEG (JFIF, BT.601 full-range) RGB -> YCbCr, float64, no rounding. Shape ``(..., 3)``.

    >>> rgb_to_ycbcr(np.array([255, 0, 0])).round(3).tolist()
    [76.245, 84.972, 255.5]
    """
    rgb = np.asarray(rgb, dtype=np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = 128.0 - 0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 128.0 + 0.5 * r - 0.418688 * g - 0.081312 * b
    return np.stack([y, cb, cr], axis=-1)


def ycbcr_to_rgb(ycc: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_ycbcr` (float64, not clipped).

    >>> ycbcr_to_rgb(rgb_to_ycbcr(np.array([10, 200, 30]))).round(2).tolist()
    [10.0, 200.0, 30.0]
    """
    ycc = np.asarray(ycc, dtype=np.float64)
    y, cb, cr = ycc[..., 0], ycc[..., 1] - 128.0, ycc[..., 2] - 128.0
    r = y + 1.402 * cr
    g = y - 0.344136 * cb - 0.714136 * cr
    b = y + 1.772 * cb
    return np.stack([r, g, b], axis=-1)


def _as_rgb_array(image) -> np.ndarray:
    """An HxWx3 uint8 array from a PIL image or an HxW / HxWx1 / HxWx3 uint8 array."""
    if hasattr(image, "mode") and hasattr(image, "convert") and hasattr(image, "size"):
        # PIL.Image: grayscale stays gray (R = G = B), everything else goes through RGB
        mode = image.mode
        if mode in ("1", "L", "LA", "I", "I;16", "F"):
            if mode in ("I", "I;16", "F"):
                raise TypeError(f"PIL image mode {mode!r} is not 8-bit; convert to 'L' or 'RGB'")
            image = image.convert("L")
        else:
            image = image.convert("RGB")
        arr = np.asarray(image)
    elif isinstance(image, np.ndarray):
        arr = image
    else:
        raise TypeError(
            f"image must be a PIL.Image or a numpy uint8 array, got {type(image).__name__}")
    if arr.dtype != np.uint8:
        raise TypeError(f"image array must have dtype uint8, got {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"image must be HxW, HxWx1 or HxWx3, got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"image must not be empty, got shape {arr.shape}")
    return arr


def dct_latent(image, step: float = 1.0) -> np.ndarray:
    """JPEG-like latent: quantized 8x8 block DCT of the YCbCr planes, ``int32 [192, H/8, W/8]``.

    Steps: RGB uint8 -> YCbCr (JPEG/BT.601 full range, float) -> level shift by 128 -> each
    plane padded to a multiple of 8 by edge replication -> orthonormal 8x8 DCT-II -> divided by
    :func:`quant_tables` ``(step)`` -> rounded to the nearest integer (halves away from zero
    is not guaranteed; numpy rounds halves to even).

    ``image`` is a ``PIL.Image`` or a uint8 array of shape HxWx3, HxW or HxWx1; grayscale is
    taken as R = G = B, so its chroma channels are all zero. No chroma subsampling.

    Channel order: ``channel = plane * 64 + u * 8 + v`` with plane 0 = Y, 1 = Cb, 2 = Cr, ``u``
    the vertical and ``v`` the horizontal frequency (row-major, not zigzag). Channel 0 is the
    luma DC, channels 64 and 128 the chroma DCs. Spatial size ``(ceil(H/8), ceil(W/8))``.

    >>> import numpy as np
    >>> y = dct_latent(np.full((10, 17), 200, np.uint8))   # flat gray, odd size
    >>> y.shape
    (192, 2, 3)
    >>> int(y[0, 0, 0]), int(np.abs(y[1:]).max())   # DC = 8 * (200 - 128) / 16 = 36
    (36, 0)

    Raises TypeError for a non-uint8 or non-image input or a non-numeric step, ValueError for
    a bad shape or a step that is not finite and > 0.
    """
    q = quant_tables(step)
    rgb = _as_rgb_array(image)
    h, w = rgb.shape[:2]
    hb, wb = -(-h // 8), -(-w // 8)
    ycc = rgb_to_ycbcr(rgb) - 128.0
    ycc = np.pad(ycc, ((0, hb * 8 - h), (0, wb * 8 - w), (0, 0)), mode="edge")
    # blocks[p, a, y, b, x]: plane p, block row a, pixel row y, block column b, pixel column x
    blocks = ycc.transpose(2, 0, 1).reshape(3, hb, 8, wb, 8)
    d = DCT_MATRIX
    coef = np.einsum("uy,paybx,vx->puvab", d, blocks, d, optimize=True)
    coef /= q[:, :, :, None, None]
    return np.rint(coef).astype(np.int32).reshape(3 * 64, hb, wb)


def dct_reconstruct(latent: np.ndarray, step: float = 1.0,
                    size: Sequence[int] | None = None) -> np.ndarray:
    """Inverse of :func:`dct_latent`: ``int [192, Hb, Wb]`` -> ``uint8 [H, W, 3]`` RGB.

    ``step`` must be the one used for :func:`dct_latent`. ``size`` is ``(height, width)`` of
    the original image (the padding is cropped off); ``None`` keeps the padded
    ``(8*Hb, 8*Wb)``.

    >>> import numpy as np
    >>> img = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    >>> rec = dct_reconstruct(dct_latent(img, step=0.001), step=0.001, size=(20, 30))
    >>> int(np.abs(rec.astype(int) - img).max()) <= 2
    True
    """
    q = quant_tables(step)
    latent = np.asarray(latent)
    if not np.issubdtype(latent.dtype, np.integer):
        raise TypeError(f"latent must have an integer dtype, got {latent.dtype}")
    if latent.ndim != 3 or latent.shape[0] != 192 or 0 in latent.shape:
        raise ValueError(
            f"latent must have shape [192, Hb, Wb] with Hb, Wb > 0, got {latent.shape}")
    hb, wb = latent.shape[1:]
    if size is None:
        h, w = 8 * hb, 8 * wb
    else:
        if len(size) != 2:
            raise ValueError(f"size must be (height, width), got {size!r}")
        h, w = int(size[0]), int(size[1])
        if not (8 * (hb - 1) < h <= 8 * hb and 8 * (wb - 1) < w <= 8 * wb):
            raise ValueError(f"size {(h, w)} does not match a latent of {hb}x{wb} blocks")
    coef = latent.reshape(3, 8, 8, hb, wb).astype(np.float64) * q[:, :, :, None, None]
    d = DCT_MATRIX
    blocks = np.einsum("uy,puvab,vx->paybx", d, coef, d, optimize=True)
    ycc = blocks.reshape(3, 8 * hb, 8 * wb).transpose(1, 2, 0)[:h, :w] + 128.0
    rgb = ycbcr_to_rgb(ycc)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


#: The kinds :func:`synthetic_latent` makes.
SYNTHETIC_KINDS = ("zeros", "laplace", "regimes")


def _discrete_laplace(rng: np.random.Generator, scale, shape) -> np.ndarray:
    return np.rint(rng.laplace(0.0, 1.0, size=shape) * scale)


def synthetic_latent(kind: str = "regimes", shape: Sequence[int] = (192, 32, 48),
                     seed: int = 0, *, region: int = 16,
                     scales: tuple[float, float] = (0.5, 6.0),
                     probs: tuple[float, float, float] = (0.4, 0.35, 0.25),
                     clip: int = 32) -> np.ndarray:
    """A seeded random ``int32 [C, H, W]`` latent, the same for the same arguments.

    kinds:

    - ``"zeros"``: all zeros.
    - ``"laplace"``: one rounded Laplace distribution per channel, scales log-uniform in
      [0.2, 8], clipped to ``[-clip, clip]`` (stationary: a global per-channel model fits it).
    - ``"regimes"``: each ``region x region`` tile of each channel independently takes one
      regime, with probabilities ``probs``: all zeros, small Laplace (scale ``scales[0]``) or
      large Laplace (scale ``scales[1]``), clipped to ``[-clip, clip]``. Statistics change
      from block to block, which a fixed global model captures badly.

    >>> y = synthetic_latent("regimes", (4, 32, 32), seed=1)
    >>> y.shape, y.dtype
    ((4, 32, 32), dtype('int32'))
    >>> bool((y == synthetic_latent("regimes", (4, 32, 32), seed=1)).all())
    True
    >>> int(np.abs(synthetic_latent("zeros", (2, 3, 4))).sum())
    0
    """
    if kind not in SYNTHETIC_KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(SYNTHETIC_KINDS)}")
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 0:
        raise ValueError(f"shape must be (C, H, W) with non-negative sizes, got {shape}")
    if region < 1:
        raise ValueError(f"region must be >= 1, got {region}")
    if clip < 0:
        raise ValueError(f"clip must be >= 0, got {clip}")
    c, h, w = shape
    rng = np.random.default_rng(seed)
    if kind == "zeros":
        return np.zeros(shape, dtype=np.int32)
    if kind == "laplace":
        ch_scale = np.exp(rng.uniform(np.log(0.2), np.log(8.0), size=c))
        y = _discrete_laplace(rng, ch_scale[:, None, None], shape)
        return np.clip(y, -clip, clip).astype(np.int32)
    p = np.asarray(probs, dtype=np.float64)
    if p.shape != (3,) or (p < 0).any() or p.sum() <= 0:
        raise ValueError(f"probs must be three non-negative numbers, got {probs}")
    rh, rw = -(-h // region), -(-w // region)
    regime = rng.choice(3, size=(c, rh, rw), p=p / p.sum())
    scale_of = np.array([0.0, float(scales[0]), float(scales[1])])
    scale = np.repeat(np.repeat(scale_of[regime], region, axis=1), region, axis=2)[:, :h, :w]
    y = _discrete_laplace(rng, scale, shape)
    return np.clip(y, -clip, clip).astype(np.int32)
