"""An orthonormal block transform for the high qualities: the KLT of 8×8 RGB blocks.

The learned transforms of the shipped model stop buying quality near 36 dB: even their
unquantized latent reconstructs photos at about that (see the model card). A transform
that is exactly invertible has no such ceiling: every step of rate buys quality. This one
is the Karhunen–Loève transform of 8×8 blocks of all three colours (192 values), learned
from training images as the eigenvectors of the blocks' covariance, strongest first.

- **Analysis**: blocks (edge-padded to multiples of 8) minus 128, times the orthonormal
  basis, divided by the level's step and rounded with a dead zone
  (``q = sign(c)·floor(|c|/step + 1/2 − deadzone)``), give an int32 latent
  ``[192, ceil(H/8), ceil(W/8)]``: channel ``k`` is the ``k``-th basis vector's
  coefficient, so the first channels carry the most energy.
- **Prediction**: the first ``predicted`` channels (3: the blocks' mean brightness and
  colour) vary smoothly from block to block, so they are coded as the residual of the
  median edge detector of JPEG-LS (:func:`med_residuals`) on their rounded values: the
  order-0 entropy of those channels falls by a third (measured on the tuning half of the
  development photos). The residual wraps modulo 2^32, so any int32 latent maps to
  exactly one image latent and back.
- **Synthesis**: ``(q + sign(q)·r)·step`` times the transposed basis, plus 128, rounded
  to 8 bits. ``r`` is a per-level, per-channel reconstruction offset: the mean of
  ``|c|/step − |q|`` over the training images' non-zero symbols, which puts each value
  at the centre of mass of what rounds to it (measured on the tuning half of the
  development photos: +0.13 to +0.15 dB at the same rate).
- **Deblocking**: the synthesis then filters every block edge, first across the vertical
  edges, then across the horizontal ones. Each edge's 8 pixels ``p3..p0 | q0..q3`` (per
  colour) give ``p1, p0, q0, q1`` a linear correction ``[p3..q3, 1] @ F[class]``; the
  class (of 15) is the edge's local activity ``(|p2−p1| + |p1−p0| + |q0−q1| + |q1−q2|)/step``
  in 5 bins and its jump ``|p0−q0|/step`` in 3, so flat areas are smoothed across the edge
  and real edges kept. ``F`` is fitted per level and direction by least squares on the
  training images' decoded pixels against the originals. Measured on the tuning half of
  the development photos at step 34: +0.83 dB (+0.38 dB with one class).
- Without quantization (a tiny step) the synthesis gives the pixels back exactly: the
  basis is orthonormal, checked to 10⁻⁶ when a model file is read.

Being orthonormal in RGB, the squared error of the coefficients is the squared error of
the pixels, so one step for every channel is what minimises the RGB error at a rate
(PSNR is measured in RGB). The entropy coder learns the rest: per-channel tables,
context families and static dictionaries, like any latent.

The work runs in strips of block rows, so memory grows with the image's width, not its
area. Needs numpy only (no torch).

>>> import numpy as np
>>> from ldem.block_transform import BlockTransform
>>> rng = np.random.default_rng(0)
>>> img = rng.integers(0, 256, (3, 20, 30)).astype(np.float32) / 255
>>> bt = BlockTransform.fit([img], steps=[1e-4, 4.0])
>>> y = bt.analysis(img, 0)
>>> y.shape, y.dtype
((192, 3, 4), dtype('int32'))
>>> bool((bt.synthesis(bt.analysis(img, 0), 0, (20, 30)) == np.round(img * 255).transpose(1, 2, 0)).all())
True
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Sequence, Tuple

import numpy as np

from ldem._args import is_int
from ldem._args import short_repr as _short

__all__ = ["BlockTransform", "ARCH", "BLOCK", "CHANNELS", "STRIDE", "PREDICTED", "check_block_config",
           "med_residuals", "med_reconstruct"]

ARCH = "block-klt-v1"
BLOCK = 8                       # block side in pixels, which is also the latent's stride
STRIDE = BLOCK
CHANNELS = 3 * BLOCK * BLOCK    # 192 coefficients per block
# |c| <= |block| <= 128·sqrt(192) < 1774, so |q| <= 1774 / MIN_STEP + 1 fits int32.
MIN_STEP, MAX_STEP = 1e-5, 4096.0
MAX_DEADZONE = 0.5
MAX_OFFSET = 0.5                # reconstruction offsets, in steps
PREDICTED = 3                   # leading channels coded as prediction residuals by default
ORTHONORMAL_TOLERANCE = 1e-6
_STRIP_BLOCKS = 32              # block rows per strip: 256 pixel rows at a time
ACTIVITY_EDGES = (0.2, 0.4, 0.8, 1.6)   # deblocking classes: activity / step bins ...
JUMP_EDGES = (0.25, 0.75)               # ... times jump / step bins
DEBLOCK_CLASSES = (len(ACTIVITY_EDGES) + 1) * (len(JUMP_EDGES) + 1)
DEBLOCK_SHAPE = (2, DEBLOCK_CLASSES, 9, 4)  # per level: direction, class, [8 pixels, 1] -> 4 corrections
MAX_DEBLOCK = 64.0                      # bound on a filter coefficient read from a file

Progress = Optional[Callable[[int, int], None]]


def check_block_config(cfg: dict, max_levels: int) -> dict:
    """A block-transform config checked; returns a clean copy. Raises ``ValueError``.

    ``steps``: 1..``max_levels`` finite numbers in [1e-5, 4096], one per level;
    ``deadzone``: a number in [0, 0.5]; ``predicted``: an int in 0..192; ``M`` must be 192.

    >>> cfg = {"arch": "block-klt-v1", "M": 192, "steps": [20.0], "deadzone": 0.15, "predicted": 3}
    >>> check_block_config(cfg, 8)["steps"]
    [20.0]
    >>> check_block_config(dict(cfg, steps=[0]), 8)
    Traceback (most recent call last):
    ...
    ValueError: config: steps must be finite numbers in [1e-05, 4096.0], got 0
    """
    if cfg.get("M") != CHANNELS or isinstance(cfg.get("M"), bool):
        raise ValueError(f"config: M must be {CHANNELS} for {ARCH}, got {_short(cfg.get('M'))}")
    steps = cfg.get("steps")
    if not isinstance(steps, (list, tuple)) or not 1 <= len(steps) <= max_levels:
        raise ValueError(f"config: steps must be a list of 1..{max_levels} numbers, got {_short(steps)}")
    for v in steps:
        if not (_is_number(v) and math.isfinite(v) and MIN_STEP <= v <= MAX_STEP):
            raise ValueError(f"config: steps must be finite numbers in [{MIN_STEP}, {MAX_STEP}], got {_short(v)}")
    dz = cfg.get("deadzone")
    if not (_is_number(dz) and math.isfinite(dz) and 0 <= dz <= MAX_DEADZONE):
        raise ValueError(f"config: deadzone must be a number in [0, {MAX_DEADZONE}], got {_short(dz)}")
    k = cfg.get("predicted")
    if not is_int(k) or not 0 <= k <= CHANNELS:
        raise ValueError(f"config: predicted must be an int in 0..{CHANNELS}, got {_short(k)}")
    return {"arch": ARCH, "M": CHANNELS, "steps": [float(v) for v in steps], "deadzone": float(dz), "predicted": k}


def _wrap32(x: np.ndarray) -> np.ndarray:
    """int64 values modulo 2^32, as int32."""
    return (((x + 2**31) & 0xFFFFFFFF) - 2**31).astype(np.int32)


def _med(W, N, NW):
    """The median edge detector: min(W, N) if NW >= max(W, N), max(W, N) if NW <= min(W, N), else W + N - NW."""
    hi, lo = np.maximum(W, N), np.minimum(W, N)
    return np.where(NW >= hi, lo, np.where(NW <= lo, hi, W + N - NW))


def med_residuals(q: np.ndarray) -> np.ndarray:
    """int32 planes ``[k, h, w]`` -> their residuals against the median edge detector of
    their west, north and north-west neighbours (first row: west; first column: north;
    corner: 0), modulo 2^32. :func:`med_reconstruct` inverts it for any int32 input.

    >>> import numpy as np
    >>> q = np.array([[[5, 6, 6], [5, 7, 9]]], np.int32)
    >>> r = med_residuals(q); r.tolist()
    [[[5, 1, 0], [0, 1, 2]]]
    >>> bool((med_reconstruct(r) == q).all())
    True
    """
    q = np.asarray(q).astype(np.int64)
    pred = np.zeros_like(q)
    pred[:, 1:, 1:] = _med(q[:, 1:, :-1], q[:, :-1, 1:], q[:, :-1, :-1])
    pred[:, 0, 1:] = q[:, 0, :-1]
    pred[:, 1:, 0] = q[:, :-1, 0]
    return _wrap32(q - pred)


def med_reconstruct(r: np.ndarray) -> np.ndarray:
    """Inverse of :func:`med_residuals`, modulo 2^32 (so every int32 input has one answer),
    one anti-diagonal at a time: each position needs only its west, north and north-west
    neighbours, which lie on earlier diagonals."""
    r = np.asarray(r).astype(np.int64)
    k, h, w = r.shape
    q = np.zeros((k, h, w), np.int64)
    for d in range(h + w - 1):
        i = np.arange(max(0, d - w + 1), min(h, d + 1))
        j = d - i
        W = q[:, i, np.maximum(j - 1, 0)]
        N = q[:, np.maximum(i - 1, 0), j]
        NW = q[:, np.maximum(i - 1, 0), np.maximum(j - 1, 0)]
        pred = np.where((i > 0) & (j > 0), _med(W, N, NW), np.where(i == 0, np.where(j > 0, W, 0), N))
        q[:, i, j] = _wrap32(r[:, i, j] + pred)
    return q.astype(np.int32)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _blocks(x: np.ndarray) -> np.ndarray:
    """[3, h, w] pixels (h, w multiples of 8) -> [h/8, w/8, 192] block vectors (channel-major)."""
    _, h, w = x.shape
    return x.reshape(3, h // BLOCK, BLOCK, w // BLOCK, BLOCK).transpose(1, 3, 0, 2, 4).reshape(
        h // BLOCK, w // BLOCK, CHANNELS)


def _unblocks(b: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_blocks`: [bh, bw, 192] -> [3, 8 bh, 8 bw]."""
    bh, bw, _ = b.shape
    return b.reshape(bh, bw, 3, BLOCK, BLOCK).transpose(2, 0, 3, 1, 4).reshape(3, bh * BLOCK, bw * BLOCK)


def _edges(x: np.ndarray):
    """The segments across the vertical block edges of ``x`` [..., w] (w a multiple of 8):
    ``[..., edges, 8]`` pixels p3..p0 | q0..q3, and their column indices."""
    idx = np.arange(BLOCK, x.shape[-1], BLOCK)[:, None] + np.arange(-4, 4)[None]
    return x[..., idx], idx


def _edge_classes(seg: np.ndarray, step: float) -> np.ndarray:
    act = (np.abs(seg[..., 1] - seg[..., 2]) + np.abs(seg[..., 2] - seg[..., 3]) + np.abs(seg[..., 4] - seg[..., 5])
           + np.abs(seg[..., 5] - seg[..., 6])) / step
    jump = np.abs(seg[..., 3] - seg[..., 4]) / step
    return np.digitize(act, ACTIVITY_EDGES) * (len(JUMP_EDGES) + 1) + np.digitize(jump, JUMP_EDGES)


def _deblock_pass(x: np.ndarray, filters: np.ndarray, step: float) -> np.ndarray:
    """One direction of the deblocking filter on [3, h, w] pixels, across vertical edges (in place)."""
    seg, idx = _edges(x)
    if seg.size:
        cls = _edge_classes(seg, step)
        corr = np.einsum("...i,...ij->...j", seg, filters[cls, :8]) + filters[cls, 8]
        x[..., idx[:, 2:6]] = seg[..., 2:6] + corr
    return x


def _deblock(x: np.ndarray, filters: np.ndarray, step: float) -> np.ndarray:
    """Both directions: across vertical edges, then across horizontal ones."""
    _deblock_pass(x, filters[0], step)
    _deblock_pass(x.transpose(0, 2, 1), filters[1], step)  # a view: writes land in x
    return x


def _pixels(image: np.ndarray) -> np.ndarray:
    """float [3, H, W] in [0, 1] (as :func:`ldem.images.image_to_array` gives) -> float64
    pixel values minus 128, edge-padded to multiples of 8."""
    x = np.asarray(image)
    if x.ndim != 3 or x.shape[0] != 3 or x.shape[1] < 1 or x.shape[2] < 1:
        raise ValueError(f"image must be a float array [3, H, W], got shape {x.shape}")
    H, W = x.shape[1:]
    x = np.round(x.astype(np.float64) * 255.0) - 128.0
    return np.pad(x, ((0, 0), (0, -H % BLOCK), (0, -W % BLOCK)), mode="edge")


class BlockTransform:
    """The KLT of 8×8 RGB blocks with one quantization step per level (see the module docs).

    ``basis`` is an orthonormal float ``[192, 192]`` matrix whose column ``k`` is channel
    ``k``'s basis vector; ``steps`` the quantization step of each level (level 0 first,
    the largest step: smallest files first, like the learned levels); ``deadzone`` the
    rounding offset; ``offsets`` (``[levels, 192]``, each in [−0.5, 0.5], default 0) the
    reconstruction offsets, in steps; ``predicted`` the leading channels coded as
    prediction residuals; ``deblock`` (``[levels, 2, 15, 9, 4]``, default none) the
    deblocking filters.

    >>> import numpy as np
    >>> bt = BlockTransform(np.eye(192), steps=[8.0], deadzone=0.15)
    >>> bt.num_levels, bt.stride, bt.channels
    (1, 8, 192)
    """

    arch = ARCH
    stride = STRIDE
    channels = CHANNELS

    def __init__(self, basis, steps: Sequence[float], deadzone: float = 0.15, offsets=None, predicted: int = PREDICTED,
                 deblock=None):
        U = np.asarray(basis, dtype=np.float64)
        if U.shape != (CHANNELS, CHANNELS) or not np.isfinite(U).all():
            raise ValueError(f"basis must be a finite [{CHANNELS}, {CHANNELS}] matrix, got shape {U.shape}")
        err = float(np.abs(U.T @ U - np.eye(CHANNELS)).max())
        if err > ORTHONORMAL_TOLERANCE:
            raise ValueError(f"basis must be orthonormal (|UᵀU − I| = {err:.2g} > {ORTHONORMAL_TOLERANCE})")
        cfg = check_block_config({"M": CHANNELS, "steps": list(steps), "deadzone": deadzone,
                                  "predicted": predicted}, 255)
        L = len(cfg["steps"])
        r = np.zeros((L, CHANNELS)) if offsets is None else np.asarray(offsets, dtype=np.float64)
        if r.shape != (L, CHANNELS) or not np.isfinite(r).all() or np.abs(r).max(initial=0) > MAX_OFFSET:
            raise ValueError(f"offsets must be a finite [{L}, {CHANNELS}] array in [-{MAX_OFFSET}, {MAX_OFFSET}], "
                             f"got shape {r.shape}")
        f = None if deblock is None else np.asarray(deblock, dtype=np.float64)
        if f is not None and (f.shape != (L, *DEBLOCK_SHAPE) or not np.isfinite(f).all()
                              or np.abs(f).max(initial=0) > MAX_DEBLOCK):
            raise ValueError(f"deblock must be a finite [{L}, {', '.join(map(str, DEBLOCK_SHAPE))}] array within "
                             f"±{MAX_DEBLOCK}, got shape {f.shape}")
        self.deblock = f
        self.basis = U
        self.steps = cfg["steps"]
        self.deadzone = cfg["deadzone"]
        self.predicted = cfg["predicted"]
        self.offsets = r

    @property
    def num_levels(self) -> int:
        return len(self.steps)

    def config(self) -> dict:
        """The model-file config of this transform (its basis and offsets are stored apart)."""
        return {"arch": ARCH, "M": CHANNELS, "steps": list(self.steps), "deadzone": self.deadzone,
                "predicted": self.predicted}

    @classmethod
    def fit(cls, images, steps: Sequence[float], deadzone: float = 0.15,
            predicted: int = PREDICTED) -> "BlockTransform":
        """The KLT learned from ``images`` (float ``[3, H, W]`` arrays in [0, 1]): the
        eigenvectors of the 8×8 RGB blocks' second-moment matrix (about 128), strongest
        first, each signed so that its largest entry is positive (a deterministic basis);
        then each level's reconstruction offsets and deblocking filters from the same images."""
        images = list(images)
        S = np.zeros((CHANNELS, CHANNELS))
        n = 0
        for img in images:
            v = _blocks(_pixels(img)).reshape(-1, CHANNELS)
            S += v.T @ v
            n += len(v)
        if n == 0:
            raise ValueError("fit needs at least one image")
        ev, U = np.linalg.eigh(S / n)
        U = U[:, np.argsort(ev, kind="stable")[::-1]]
        U *= np.sign(U[np.argmax(np.abs(U), axis=0), np.arange(CHANNELS)])
        bt = cls(U, steps, deadzone, predicted=predicted)
        sums = np.zeros((bt.num_levels, CHANNELS))
        counts = np.zeros((bt.num_levels, CHANNELS))
        for img in images:
            a = np.abs(_blocks(_pixels(img)).reshape(-1, CHANNELS) @ U)
            for level, step in enumerate(bt.steps):
                scaled, q = bt._magnitudes(a, step)
                nz = q > 0
                sums[level] += np.where(nz, scaled - q, 0).sum(axis=0)
                counts[level] += nz.sum(axis=0)
        bt.offsets = np.clip(sums / np.maximum(counts, 1), -MAX_OFFSET, MAX_OFFSET)
        bt.deblock = np.stack([bt._fit_deblock(images, level) for level in range(bt.num_levels)])
        return bt

    def _fit_deblock(self, images, level: int) -> np.ndarray:
        """Least-squares deblocking filters of ``level`` (see the module docs): the vertical
        edges' on the decoded images, then the horizontal edges' on their result."""
        step = self.steps[level]
        decoded = [self._decode(self.analysis(img, level, predict=False), level) for img in images]
        originals = [_pixels(img) + 128.0 for img in images]
        filters = np.zeros(DEBLOCK_SHAPE)
        for direction in (0, 1):
            flip = (lambda a: a) if direction == 0 else (lambda a: a.transpose(0, 2, 1))
            gram = np.zeros((DEBLOCK_CLASSES, 9, 9))
            cross = np.zeros((DEBLOCK_CLASSES, 9, 4))
            for dec, ref in zip(decoded, originals):
                seg, _ = _edges(flip(dec))
                target = _edges(flip(ref))[0][..., 2:6] - seg[..., 2:6]
                a = np.concatenate([seg, np.ones(seg.shape[:-1] + (1,))], axis=-1).reshape(-1, 9)
                t = target.reshape(-1, 4)
                cls = _edge_classes(seg, step).reshape(-1)
                for k in range(DEBLOCK_CLASSES):
                    sel = cls == k
                    gram[k] += a[sel].T @ a[sel]
                    cross[k] += a[sel].T @ t[sel]
            ridge = 1e-6 * np.trace(gram, axis1=1, axis2=2)[:, None, None] * np.eye(9) + 1e-9 * np.eye(9)
            filters[direction] = np.clip(np.linalg.solve(gram + ridge, cross), -MAX_DEBLOCK, MAX_DEBLOCK)
            for dec in decoded:
                _deblock_pass(flip(dec), filters[direction], step)
        return filters

    def _magnitudes(self, a: np.ndarray, step: float) -> tuple:
        """(|c|/step, its dead-zone rounding) of coefficient magnitudes ``a``: the quantizer, once."""
        scaled = a / step
        return scaled, np.floor(scaled + (0.5 - self.deadzone))

    def _level(self, level: int) -> float:
        if not isinstance(level, (int, np.integer)) or isinstance(level, bool) or \
                not 0 <= level < self.num_levels:
            raise ValueError(f"level must be an int in 0..{self.num_levels - 1}, got {level!r}")
        return self.steps[level]

    def analysis(self, image, level: int, progress: Progress = None, *, predict: bool = True) -> np.ndarray:
        """float ``[3, H, W]`` pixels in [0, 1] -> int32 latent ``[192, ceil(H/8), ceil(W/8)]``."""
        step = self._level(level)
        x = _pixels(image)
        bh, bw = x.shape[1] // BLOCK, x.shape[2] // BLOCK
        y = np.empty((CHANNELS, bh, bw), np.int32)
        spans = range(0, bh, _STRIP_BLOCKS)
        for i, r in enumerate(spans):
            c = _blocks(x[:, r * BLOCK:(r + _STRIP_BLOCKS) * BLOCK]) @ self.basis
            _, q = self._magnitudes(np.abs(c), step)
            np.copysign(q, c, out=q)
            y[:, r:r + _STRIP_BLOCKS] = q.transpose(2, 0, 1)  # |q| <= 1774/MIN_STEP + 1 < 2^31
            if progress is not None:
                progress(i + 1, len(spans))
        if self.predicted and predict:
            y[:self.predicted] = med_residuals(y[:self.predicted])
        return y

    def _decode(self, q: np.ndarray, level: int) -> np.ndarray:
        """Rounded coefficients ``[192, bh, bw]`` (not predicted) -> float pixels [3, 8 bh, 8 bw], before deblocking."""
        c = q.transpose(1, 2, 0).astype(np.float64)
        c = (c + np.sign(c) * self.offsets[level]) * self.steps[level]
        return _unblocks(c @ self.basis.T) + 128.0

    def synthesis(self, y, level: int, out_hw: Tuple[int, int], progress: Progress = None) -> np.ndarray:
        """int latent ``[192, h, w]`` -> uint8 ``[H, W, 3]`` pixels (``out_hw`` = (H, W), at
        most the latent's extent)."""
        step = self._level(level)
        y = np.asarray(y)
        H, W = out_hw
        if y.ndim != 3 or y.shape[0] != CHANNELS or not (0 < H <= y.shape[1] * BLOCK and 0 < W <= y.shape[2] * BLOCK):
            raise ValueError(f"y: latent of shape {y.shape} does not fit a {W}×{H} image")
        k = self.predicted
        head = med_reconstruct(y[:k]) if k else None  # the predicted channels only: no copy of the latent
        out = np.empty((H, W, 3), np.uint8)
        bh = -(-H // BLOCK)
        spans = range(0, bh, _STRIP_BLOCKS)
        for i, r in enumerate(spans):
            # one block row of halo on each side: the filter of a horizontal edge reads 4
            # rows on each side and changes 2, so edges filter alike in strips or whole
            lo, hi = max(r - 1, 0), min(r + _STRIP_BLOCKS + 1, y.shape[1])
            x = self._decode(y[:, lo:hi] if not k else np.concatenate([head[:, lo:hi], y[k:, lo:hi]]), level)
            if self.deblock is not None:
                _deblock(x, self.deblock[level], step)
            x = x[:, (r - lo) * BLOCK:]
            rows = min(H - r * BLOCK, _STRIP_BLOCKS * BLOCK)
            out[r * BLOCK:r * BLOCK + rows] = np.clip(np.rint(x[:, :rows, :W]), 0, 255).transpose(1, 2, 0)
            if progress is not None:
                progress(i + 1, len(spans))
        return out
