"""Reference codecs through Pillow (JPEG, WebP, AVIF) for rate–distortion comparisons.

>>> import numpy as np
>>> from ldem.reference import jpeg_curve
>>> img = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
>>> pts = jpeg_curve(img, qualities=[50, 90])
>>> pts[0][0] < pts[1][0]          # (bpp, psnr) pairs: more bits at quality 90
True
"""
from __future__ import annotations

import io
import math
from typing import Iterable, Optional

import numpy as np

from ldem._optional import require
from ldem.metrics import psnr

__all__ = ["pillow_roundtrip", "jpeg_curve", "curve", "bpp_at_psnr", "avif_available", "REFERENCE_CODECS",
           "reference_roundtrip"]

#: The reference codecs of ``ldem eval``: name -> (Pillow format, chroma subsampling).
#: JPEG uses optimized Huffman tables, WebP ``method=6``, AVIF Pillow's defaults.
REFERENCE_CODECS = {
    "jpeg-420": ("JPEG", "4:2:0"),
    "jpeg-444": ("JPEG", "4:4:4"),
    "webp": ("WEBP", None),
    "avif": ("AVIF", None),
}


def avif_available() -> bool:
    """Whether this Pillow can write AVIF."""
    features = require("ldem.reference", "PIL.features")
    try:
        return bool(features.check("avif"))
    except (ValueError, KeyError):
        return False


def pillow_roundtrip(img: np.ndarray, fmt: str, quality: int, subsampling: Optional[str] = None):
    """Encodes a uint8 H×W×3 image with Pillow; returns (bytes, decoded uint8 array).

    ``fmt`` is ``"JPEG"``, ``"WEBP"`` or ``"AVIF"``; ``subsampling`` is ``"4:2:0"`` or
    ``"4:4:4"`` (JPEG and AVIF).
    """
    Image = require("ldem.reference", "PIL.Image")
    buf = io.BytesIO()
    kw = {"quality": int(quality)}
    if fmt == "JPEG":
        kw["subsampling"] = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2, None: 2}[subsampling]
        kw["optimize"] = True
    elif fmt == "WEBP":
        kw["method"] = 6
    elif fmt == "AVIF" and subsampling:
        kw["subsampling"] = subsampling
    Image.fromarray(img).save(buf, format=fmt, **kw)
    data = buf.getvalue()
    out = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    return data, out


def reference_roundtrip(img: np.ndarray, codec: str, quality: int):
    """:func:`pillow_roundtrip` with a codec named in :data:`REFERENCE_CODECS`.

    >>> import numpy as np
    >>> data, out = reference_roundtrip(np.zeros((16, 16, 3), np.uint8), "jpeg-444", 90)
    >>> data[:2], out.shape
    (b'\\xff\\xd8', (16, 16, 3))
    """
    if codec not in REFERENCE_CODECS:
        raise ValueError(f"unknown reference codec {codec!r}; expected one of {', '.join(REFERENCE_CODECS)}")
    fmt, subsampling = REFERENCE_CODECS[codec]
    return pillow_roundtrip(img, fmt, quality, subsampling)


def curve(img: np.ndarray, fmt: str, qualities: Iterable[int], subsampling: Optional[str] = None):
    """(bpp, PSNR) of ``img`` at each quality setting, sorted by bpp."""
    H, W = img.shape[:2]
    pts = []
    for q in qualities:
        data, out = pillow_roundtrip(img, fmt, q, subsampling)
        pts.append((8 * len(data) / (H * W), psnr(img, out)))
    return sorted(pts)


def jpeg_curve(img: np.ndarray, qualities: Iterable[int] = range(5, 101, 5), subsampling: str = "4:2:0"):
    """(bpp, PSNR) of Pillow JPEG (optimized Huffman tables) at each quality."""
    return curve(img, "JPEG", qualities, subsampling)


def bpp_at_psnr(points, target: float) -> float:
    """Rate at ``target`` PSNR, interpolated linearly in (PSNR, log bpp) on a curve.

    Returns ``nan`` outside the curve's PSNR range.

    >>> round(bpp_at_psnr([(0.5, 30.0), (2.0, 40.0)], 35.0), 3)
    1.0
    """
    pts = sorted((p, b) for b, p in points if b > 0 and math.isfinite(p))
    ps = np.array([p for p, _ in pts])
    lb = np.log([b for _, b in pts])
    # keep the monotone upper envelope (more PSNR for more bits)
    keep = [0]
    for i in range(1, len(ps)):
        if ps[i] > ps[keep[-1]] and lb[i] >= lb[keep[-1]]:
            keep.append(i)
    ps, lb = ps[keep], lb[keep]
    if len(ps) == 0 or target < ps[0] or target > ps[-1]:
        return math.nan
    return float(np.exp(np.interp(target, ps, lb)))
