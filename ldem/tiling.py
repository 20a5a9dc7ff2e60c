"""Tiled analysis and synthesis: run the transforms tile by tile, so that peak memory
grows with the tile, not the image.

:func:`analysis_tiled` and :func:`synthesis_tiled` compute the same latent and the same
pixels as ``net.analysis`` and ``net.synthesis`` on the whole image (up to float
rounding: the convolutions sum in a different order on a different shape), but hold the
intermediate activations of one tile at a time. Each tile is cut with a halo that covers
the transforms' receptive field, aligned so that its latent grid coincides with the whole
image's, and the halo is cropped away; at the image borders a tile sees the same zero
padding as the whole-image run. An image that fits in one tile takes the whole-image
path unchanged (one call, no halo), so its result is bit-identical to it.

>>> import torch
>>> from ldem.transforms import GainedFactorizedCodec
>>> from ldem.tiling import analysis_tiled, synthesis_tiled
>>> _ = torch.manual_seed(0)
>>> net = GainedFactorizedCodec(lambdas=[0.01], N=8, M=12)
>>> x = torch.rand(1, 3, 48, 80)
>>> y = analysis_tiled(net, x, 0, tile=32)                 # 2×3 tiles
>>> (y - net.analysis(x, 0)).abs().max().item() < 1e-4
True
>>> img = synthesis_tiled(net, y.round(), 0, tile=32, out_hw=(45, 77))
>>> img.shape, img.dtype
((45, 77, 3), dtype('uint8'))
"""
from __future__ import annotations

from typing import Callable, Optional, Tuple

import numpy as np

from ldem._optional import require

__all__ = ["analysis_tiled", "synthesis_tiled", "check_tile", "pad_to_16", "DEFAULT_TILE", "ANALYSIS_HALO",
           "SYNTHESIS_HALO"]

# Default tile side in pixels (the tile's own area, halo excluded), chosen by measurement
# (benchmarks/memory_codec.py: a 4000×3000 image, the shipped N=128/M=192 transforms, 2
# CPU threads). Whole-image transforms peak at 6.3 GB; with tiles of 256 / 512 / 1024 the
# analysis peaks at 0.59 / 0.74 / 1.10 GB and the synthesis at 0.41 / 0.52 / 1.16 GB
# (whole process), and the whole codec (compress or decompress) stays under 0.85 GB at
# 512. Tiled runs are faster than the whole image (smaller working sets; 8 s against
# 27 s for this analysis) and their time is flat from 256 to 512 pixels, rising beyond.
# 512 takes the middle of the flat range: half the halo work of 256 (48 pixels per side
# in all: 20% extra computation instead of 41%, which counts where compute, not memory
# traffic, bounds the time: more cores, an accelerator), and
# every image up to 512×512 runs the untiled path, bit-identical to it. The decoded
# pixels of larger images depend (by float rounding: ±1 on a rare value) on the tile,
# so the codec should use one fixed tile size, not one picked per machine.
DEFAULT_TILE = 512

# Analysis halo, in pixels, (before, after) a tile, in each dimension. The analysis is
# four 5×5 convolutions of stride 2 and padding 2 (GDN between them is pointwise in
# space): output j of a layer reads inputs 2j-2 .. 2j+2. Latent j thus reads layer-3
# samples 2j-2 .. 2j+2, layer-2 samples 4j-6 .. 4j+6, layer-1 samples 8j-14 .. 8j+14 and
# input pixels 16j-30 .. 16j+30 (a 61-pixel receptive field). The latents [a, b) of a
# tile, whose own pixels are [16a, 16b), therefore read pixels 16a-30 .. 16b+14: 30
# pixels of halo before the tile and 15 after. Both are rounded up to multiples of 16
# (32 and 16) so that the tile, halo included, starts on a multiple of 16: every layer's
# stride-2 sampling grid then lands where it does on the whole image. The intermediate
# samples that the tile's edges corrupt (they see zero padding where the whole image had
# data) lie outside that dependency chain, and the halo's latents are cropped away.
ANALYSIS_HALO = (32, 16)

# Synthesis halo, in latents, (before, after) a tile, in each dimension. Each synthesis
# layer is a 5×5 transposed convolution of stride 2, padding 2 and output padding 1
# (IGDN between them is pointwise): output o = 2i - 2 + k (k = 0..4), so an even output
# 2m reads inputs m-1 .. m+1 and an odd output 2m+1 reads m .. m+1; outputs P0 .. P1 read
# inputs ceil(P0/2) - 1 .. floor(P1/2) + 1. Composing the four layers, the pixels
# 16a .. 16b-1 of a tile read layer-3 samples 8a-1 .. 8b, layer-2 samples 4a-1 .. 4b+1,
# layer-1 samples 2a-1 .. 2b+1 and latents a-1 .. b+1: 1 latent of halo before the
# tile's latents [a, b) and 2 after. A run on latents [s, e) yields exactly the pixels
# [16s, 16e) of the whole image's output grid (each layer maps its inputs [s, e) to the
# outputs [2s, 2e)), so tiles align on the latent grid and the halo's pixels are cropped.
SYNTHESIS_HALO = (1, 2)

Progress = Optional[Callable[[int, int], object]]


# ---------------------------------------------------------------------------------------
# Argument checks
# ---------------------------------------------------------------------------------------
def check_tile(tile) -> Tuple[int, int]:
    """``tile`` (an int or an (height, width) pair of ints) -> (th, tw) in pixels; a
    ``TypeError`` or ``ValueError`` unless each is a multiple of 16 and at least 16.

    >>> check_tile(512), check_tile((32, 64))
    ((512, 512), (32, 64))
    """
    pair = tuple(tile) if isinstance(tile, (tuple, list)) else (tile, tile)
    if len(pair) != 2:
        raise ValueError(f"tile must be an int or a (height, width) pair, got {tile!r}")
    for t in pair:
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)):
            raise TypeError(f"tile must be an int or a pair of ints, got {tile!r}")
        if t < 16 or t % 16:
            raise ValueError(f"tile must be a multiple of 16 pixels, at least 16, got {tile!r}")
    return int(pair[0]), int(pair[1])


def pad_to_16(x):
    """Pads a tensor ``[B, C, H, W]`` on the bottom and right, by edge replication, to
    multiples of 16 (the transforms' total stride)."""
    F = require("ldem.tiling.pad_to_16", "torch.nn.functional")
    H, W = x.shape[-2:]
    ph, pw = -H % 16, -W % 16
    return F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x


def _check_level(net, level):
    check = getattr(net, "_check_level", None)
    if check is not None:
        check(level)
    elif isinstance(level, bool) or not isinstance(level, int):
        raise TypeError(f"level must be an int, got {level!r}")


def _check_progress(progress):
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be a callable progress(done, total) or None, got {type(progress).__name__}")


def _placement(net):
    """(device, dtype) of the net's parameters, where its inputs must be (CPU float32 if none)."""
    torch = require("ldem.tiling", "torch")
    p = next(iter(net.parameters()), None) if callable(getattr(net, "parameters", None)) else None
    return (p.device, p.dtype) if p is not None else (torch.device("cpu"), torch.float32)


def _spans(n: int, t: int):
    """[start, end) spans of length t (the last one shorter) covering 0..n."""
    return [(s, min(s + t, n)) for s in range(0, n, t)]


# ---------------------------------------------------------------------------------------
# Analysis
# ---------------------------------------------------------------------------------------
def analysis_tiled(net, x, level: int, *, tile=DEFAULT_TILE, progress: Progress = None):
    """``net.analysis(x, level)`` computed tile by tile: x ``[1, 3, H, W]`` (float, H and W
    multiples of 16) -> float latent ``[1, M, H/16, W/16]`` on x's device (an ordinary
    tensor unless called under ``torch.inference_mode``; it has no gradient).

    ``tile`` is the side of a tile in pixels (an int, or a (height, width) pair), a
    multiple of 16; each tile is computed with :data:`ANALYSIS_HALO` real neighbouring
    pixels before and after it (none beyond the image) and the halo's latents are dropped.
    Peak memory is that of one tile's activations plus the input and the latent.
    An image no larger than one tile is passed to ``net.analysis`` whole, exactly as
    without tiling. ``progress(done, total)``, if given, is called after each tile
    (``done`` = 1 .. ``total``).

    The result equals the whole-image analysis up to float rounding (differences of
    the order of 1e-6; after rounding to integers the latents agree on all but a rare
    value that lay within rounding distance of a half-integer).

    >>> import torch
    >>> from ldem.transforms import GainedFactorizedCodec
    >>> net = GainedFactorizedCodec(lambdas=[0.01], N=8, M=12)
    >>> calls = []
    >>> y = analysis_tiled(net, torch.rand(1, 3, 32, 64), 0, tile=32, progress=lambda d, t: calls.append((d, t)))
    >>> tuple(y.shape), calls
    ((1, 12, 2, 4), [(1, 2), (2, 2)])
    """
    torch = require("ldem.tiling", "torch")
    if not callable(getattr(net, "analysis", None)):
        raise TypeError(f"net must have an analysis(x, level) method, got {type(net).__name__}")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor [1, 3, H, W], got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor (values in [0, 1]), got {x.dtype}")
    if x.ndim != 4 or x.shape[0] != 1 or x.shape[1] != 3:
        raise ValueError(f"x must have shape [1, 3, H, W], got {tuple(x.shape)}")
    H, W = int(x.shape[2]), int(x.shape[3])
    if H < 16 or W < 16 or H % 16 or W % 16:
        raise ValueError(f"x: height and width must be positive multiples of 16, got {H}×{W} "
                         "(pad it first, e.g. with pad_to_16)")
    th, tw = check_tile(tile)
    _check_level(net, level)
    _check_progress(progress)
    dev, dtype = _placement(net)
    if H <= th and W <= tw:  # one tile: the whole-image path, unchanged
        with torch.inference_mode():
            y = net.analysis(x.to(dev, dtype), level).to(x.device)
        if progress is not None:
            progress(1, 1)
        return y.clone()  # made outside inference mode, an ordinary tensor like the tiled result
    before, after = ANALYSIS_HALO
    rows, cols = _spans(H, th), _spans(W, tw)
    total, done, out = len(rows) * len(cols), 0, None
    with torch.inference_mode():
        for r0, r1 in rows:
            a0, a1 = max(r0 - before, 0), min(r1 + after, H)
            for c0, c1 in cols:
                b0, b1 = max(c0 - before, 0), min(c1 + after, W)
                # A view of x (no copy on its device); the transforms read it in place.
                y = net.analysis(x[:, :, a0:a1, b0:b1].to(dev, dtype), level)
                if out is None:
                    with torch.inference_mode(False):  # an ordinary tensor, free to modify in place
                        out = torch.empty((1, y.shape[1], H // 16, W // 16), dtype=y.dtype, device=x.device)
                oy, ox = (r0 - a0) // 16, (c0 - b0) // 16
                out[:, :, r0 // 16:r1 // 16, c0 // 16:c1 // 16] = \
                    y[:, :, oy:oy + (r1 - r0) // 16, ox:ox + (c1 - c0) // 16]
                del y
                done += 1
                if progress is not None:
                    progress(done, total)
        return out


# ---------------------------------------------------------------------------------------
# Synthesis
# ---------------------------------------------------------------------------------------
def _to_uint8(x):
    """Synthesis output [3, h, w] -> uint8 [h, w, 3] numpy (as ImageCodec does: NaN to 0,
    clamp to [0, 1], ×255, round)."""
    torch = require("ldem.tiling", "torch")
    x = torch.nan_to_num(x, nan=0.0).clamp(0, 1).mul(255).round().to(torch.uint8)
    return x.permute(1, 2, 0).cpu().numpy()


def synthesis_tiled(net, y, level: int, *, tile=DEFAULT_TILE, out_hw: Optional[Tuple[int, int]] = None,
                    progress: Progress = None) -> np.ndarray:
    """``net.synthesis(y, level)`` computed tile by tile, straight to 8-bit pixels:
    latent ``[1, M, h, w]`` -> uint8 numpy array ``H×W×3``.

    ``y`` is a tensor or a numpy array (any real dtype, e.g. the decoder's int32 latent;
    it is converted to float32 a tile at a time). ``out_hw = (H, W)`` crops the output
    (default ``(16h, 16w)``; at most that). Pixels are converted as
    :class:`ldem.ImageCodec` does (NaN to 0, clamp to [0, 1], ×255, round), tile by tile,
    so the float image is never held whole. ``tile`` is the side of a tile in pixels (an
    int or a (height, width) pair, multiples of 16); each tile is computed from its
    latents plus :data:`SYNTHESIS_HALO` latents around it (none beyond the latent). A
    latent whose 16h × 16w output fits in one tile is decoded by one ``net.synthesis``
    call, exactly as without tiling. ``progress(done, total)``, if given, is called after
    each tile (``done`` = 1 .. ``total``).

    The pixels equal the whole-image synthesis's up to float rounding (a rare pixel
    value may differ by 1).

    >>> import torch
    >>> from ldem.transforms import GainedFactorizedCodec
    >>> net = GainedFactorizedCodec(lambdas=[0.01], N=8, M=12)
    >>> y = torch.randint(-3, 4, (1, 12, 3, 5)).float()
    >>> img = synthesis_tiled(net, y, 0, tile=32, out_hw=(40, 70))   # 2×3 tiles
    >>> img.shape, img.dtype
    ((40, 70, 3), dtype('uint8'))
    """
    torch = require("ldem.tiling", "torch")
    if not callable(getattr(net, "synthesis", None)):
        raise TypeError(f"net must have a synthesis(y, level) method, got {type(net).__name__}")
    if isinstance(y, np.ndarray):
        if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)):
            raise TypeError(f"y must hold real numbers, got {y.dtype}")
    elif isinstance(y, torch.Tensor):
        if y.is_complex() or y.dtype == torch.bool:
            raise TypeError(f"y must hold real numbers, got {y.dtype}")
    else:
        raise TypeError(f"y must be a torch.Tensor or numpy array [1, M, h, w], got {type(y).__name__}")
    if y.ndim != 4 or y.shape[0] != 1 or min(y.shape) < 1:
        raise ValueError(f"y must have shape [1, M, h, w], got {tuple(y.shape)}")
    h, w = int(y.shape[2]), int(y.shape[3])
    if out_hw is None:
        H, W = 16 * h, 16 * w
    else:
        try:
            H, W = out_hw
        except (TypeError, ValueError):
            raise TypeError(f"out_hw must be a pair (H, W) of ints, got {out_hw!r}") from None
        if any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in (H, W)):
            raise TypeError(f"out_hw must be a pair (H, W) of ints, got {out_hw!r}")
        H, W = int(H), int(W)
        if not (1 <= H <= 16 * h and 1 <= W <= 16 * w):
            raise ValueError(f"out_hw={out_hw!r} does not fit a latent of {h}×{w} "
                             f"(an output of at most {16 * h}×{16 * w})")
    th, tw = check_tile(tile)
    _check_level(net, level)
    _check_progress(progress)
    dev, dtype = _placement(net)

    def latents(r0, r1, c0, c1):
        part = y[:, :, r0:r1, c0:c1]
        t = torch.from_numpy(part.astype(np.float32)) if isinstance(part, np.ndarray) else part
        return t.to(dev, dtype)

    with torch.inference_mode():
        if 16 * h <= th and 16 * w <= tw:  # one tile: the whole-image path, unchanged
            x = net.synthesis(latents(0, h, 0, w), level)[0, :, :H, :W]
            out = np.ascontiguousarray(_to_uint8(x))
            if progress is not None:
                progress(1, 1)
            return out
        lt, lw = th // 16, tw // 16  # tile in latents
        before, after = SYNTHESIS_HALO
        # Only the latent rows/columns that reach the output [0, H) × [0, W) are tiled;
        # the halo may still read latents beyond them, as the whole-image run does.
        rows, cols = _spans(-(-H // 16), lt), _spans(-(-W // 16), lw)
        out = np.empty((H, W, 3), np.uint8)
        total, done = len(rows) * len(cols), 0
        for r0, r1 in rows:
            a0, a1 = max(r0 - before, 0), min(r1 + after, h)
            p0, p1 = 16 * r0, min(16 * r1, H)  # output pixel rows of this tile
            for c0, c1 in cols:
                b0, b1 = max(c0 - before, 0), min(c1 + after, w)
                q0, q1 = 16 * c0, min(16 * c1, W)
                x = net.synthesis(latents(a0, a1, b0, b1), level)
                oy, ox = 16 * (r0 - a0), 16 * (c0 - b0)
                out[p0:p1, q0:q1] = _to_uint8(x[0, :, oy:oy + p1 - p0, ox:ox + q1 - q0])
                del x
                done += 1
                if progress is not None:
                    progress(done, total)
        return out
