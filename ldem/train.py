"""Trains the learned transforms of :class:`ldem.transforms.GainedFactorizedCodec`.

One run trains every quality level: in iteration ``i`` sample ``j`` of the batch trains
level ``(i + j) % L`` with its own λ, gain and density. Random ``--patch`` crops of photos downscaled at random (so patches
look like camera-scale content) and flipped; checkpoints, resume, a log file, a tqdm bar
with loss, bpp and PSNR; DDP when launched by ``torchrun`` on several GPUs.

Example (a few seconds on a CPU)::

    python -m ldem.train IMAGES --out run --iterations 20 --patch 64 --batch 2 --N 16 --M 24

Then ``ldem export run/checkpoint.pt model.npz --data IMAGES`` builds a shippable model.

Checkpoints hold only tensors and plain Python values (dicts, lists, tuples, numbers,
strings, ``None``) and are read with ``torch.load(weights_only=True)``
(:func:`load_checkpoint`), so a checkpoint cannot run code when loaded; one that holds
anything else, or is damaged, raises ``ValueError``. Load checkpoints only from sources
you trust for resource use all the same: their tensors are read as they are, with no
size limit. A model file (``.npz``) given to ``--init`` goes through the hardened model
file loader (:class:`ldem.model_file.ModelBundle`) and may come from anywhere.
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import pickle
import random
import stat
import struct
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

from ldem._optional import require
from ldem.images import IMAGE_SUFFIXES, list_images, open_image  # noqa: F401  (one list of image suffixes)

DEFAULT_LAMBDAS = (0.0018, 0.0035, 0.0067, 0.013, 0.025, 0.0483)


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Help that ends each option with its default, unless it has none (None or False)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or "%(default)" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


class PatchSampler:
    """Random ``patch``² RGB crops in [0,1] from images held in memory.

    Each crop takes a random scale in ``[min_scale, 1]`` of the stored image (never so
    small that the image is narrower than the patch), crops ``patch / scale`` pixels and
    resizes them to ``patch`` (area filter), then flips left-right with probability 1/2.

    Images narrower than the patch are left out (``too_small`` lists them), and so is an
    image that cannot be read (``skipped`` lists ``(path, reason)``); ``ValueError`` only
    when no image is left.
    """

    def __init__(self, paths, patch: int, min_scale: float = 0.5, seed: int = 0):
        paths = list(paths)
        self.patch = int(patch)
        self.min_scale = float(min_scale)
        self.images, self.too_small, self.skipped = [], [], []
        for p in paths:
            try:
                with open_image(p) as im:  # ValueError or OSError (with the name) for what it cannot read
                    im = im.convert("RGB")
                    if min(im.size) < self.patch:
                        self.too_small.append(p)
                    else:
                        self.images.append(im.copy())
            except (OSError, ValueError) as e:
                reason = " ".join(str(e).split())
                self.skipped.append((p, reason[len(f"{p}: "):] if reason.startswith(f"{p}: ") else reason))
        if not self.images:
            raise ValueError(f"no usable training image among {len(paths)}: none can be read with at least "
                             f"{self.patch} pixels on its short side")
        self.rng = random.Random(seed)

    def sample(self):
        Image = require("ldem train", "PIL.Image")
        im = self.rng.choice(self.images)
        W, H = im.size
        lo = max(self.min_scale, self.patch / min(W, H))
        s = self.rng.uniform(lo, 1.0) if lo < 1.0 else 1.0
        side = min(min(W, H), max(self.patch, int(round(self.patch / s))))
        x0 = self.rng.randrange(W - side + 1)
        y0 = self.rng.randrange(H - side + 1)
        crop = im.crop((x0, y0, x0 + side, y0 + side))
        if side != self.patch:
            crop = crop.resize((self.patch, self.patch), Image.BOX)
        a = np.asarray(crop, dtype=np.uint8)
        if self.rng.random() < 0.5:
            a = a[:, ::-1]
        return a

    def batch(self, n: int):
        torch = require("ldem train", "torch")
        a = np.stack([self.sample() for _ in range(n)])
        return torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2).float().div_(255.0)


def _parse(argv):
    ap = argparse.ArgumentParser(
        prog="ldem train", description="Train the learned transforms (all quality levels in one run).",
        formatter_class=DefaultsHelpFormatter,
        epilog="--init and --resume read checkpoints with torch.load(weights_only=True): a checkpoint cannot run "
               "code, and one holding anything but tensors and plain values is refused; still, load checkpoints "
               "only from sources you trust for resource use. A model file (.npz) given to --init goes through "
               "the hardened model file loader and may come from anywhere.")
    ap.add_argument("data", help="folder of training images (searched recursively)")
    ap.add_argument("--out", required=True, help="output folder: checkpoint.pt, train.log, config.json")
    ap.add_argument("--lambdas", type=float, nargs="+", default=list(DEFAULT_LAMBDAS),
                    help="rate–distortion weight λ of each trained level (loss = bpp + λ·255²·MSE); levels are "
                         "numbered from 1 in increasing λ, smallest files first")
    ap.add_argument("--N", type=int, default=128, help="hidden channels")
    ap.add_argument("--M", type=int, default=192, help="latent channels")
    ap.add_argument("--iterations", type=int, default=100_000, help="training steps in all, counted across resumes")
    ap.add_argument("--minutes", type=float, default=None,
                    help="stop after this wall time (the lr decay follows it; default: no limit)")
    ap.add_argument("--batch", type=int, default=16, help="crops per step; sample i trains level (i + step) %% L")
    ap.add_argument("--patch", type=int, default=256, help="side of the square training crops, in pixels")
    ap.add_argument("--min-scale", type=float, default=0.5, help="smallest random downscale of a photo")
    ap.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate of the transforms")
    ap.add_argument("--entropy-lr-mult", type=float, default=10.0,
                    help="learning-rate multiplier of the densities and gains")
    ap.add_argument("--decay-at", type=float, default=0.85, help="fraction of the run after which lr drops 10×")
    ap.add_argument("--clip", type=float, default=1.0, help="gradient-norm clip (0: off)")
    ap.add_argument("--msssim", action="store_true", help="distortion 1 − MS-SSIM instead of MSE")
    ap.add_argument("--ema", type=float, default=0.999,
                    help="decay of the exponential moving average of the weights that export uses (0: off)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the crops and the initial weights")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    ap.add_argument("--checkpoint-every", type=int, default=500, help="iterations between checkpoints")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    ap.add_argument("--init", metavar="CHECKPOINT", default=None,
                    help="start from the (averaged) weights of another run, or of a model file (.npz); levels "
                         "are matched by λ and new λ values start from the nearest trained level; a narrower "
                         "N is widened without changing what the transforms compute; checkpoints are read with "
                         "torch.load(weights_only=True) (no code runs; still only from sources you trust for "
                         "resource use), model files by the hardened loader")
    ap.add_argument("--revive-channels", action="store_true",
                    help="with --init: restart the latent channels that carry no bits at the highest λ "
                         "(for a run aimed at higher rates than the --init weights)")
    ap.add_argument("--init-transforms", type=int, default=0, metavar="K",
                    help="with a model file as --init: which of its sets of transforms (0 is the first)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    return ap.parse_args(argv)


def load_checkpoint(path, map_location="cpu") -> dict:
    """A training checkpoint (``checkpoint.pt`` of ``ldem train``), read safely.

    Uses ``torch.load(weights_only=True)``: only tensors and plain Python values are
    unpickled, so a checkpoint cannot run code. Raises ``FileNotFoundError`` for a
    missing path and ``ValueError`` (with the path) for anything else that is not a
    readable checkpoint: not a regular file, damaged, holding other objects (a checkpoint
    written by some other program, or a hostile one), or without a ``model`` state dict
    of tensors and a ``config`` dict. The size of the tensors is not limited: load
    checkpoints only from sources you trust for resource use.
    """
    torch = require("ldem.train.load_checkpoint", "torch")
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise FileNotFoundError(f"no checkpoint at {path}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{path} is not a regular file, not a checkpoint")
    try:
        ck = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        detail = next((line.strip() for line in str(e).splitlines() if "WeightsUnpickler error" in line), str(e))
        raise ValueError(f"{path} cannot be loaded safely: it holds objects other than tensors and plain values, "
                         f"or is damaged ({detail[:300]}). ldem loads checkpoints with "
                         f"torch.load(weights_only=True) only") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, KeyError, IndexError, TypeError,
            AttributeError, struct.error, UnicodeDecodeError, OverflowError, RecursionError, MemoryError) as e:
        raise ValueError(f"{path} is not a readable checkpoint (damaged or not made by torch.save): "
                         f"{type(e).__name__}: {str(e)[:300]}") from None

    def state_dict(v):
        return isinstance(v, dict) and all(isinstance(k, str) and isinstance(t, torch.Tensor) for k, t in v.items())

    if not isinstance(ck, dict) or not state_dict(ck.get("model")) or not isinstance(ck.get("config"), dict):
        raise ValueError(f"{path} is not an ldem training checkpoint (no 'model' state dict of tensors "
                         f"and 'config' dict)")
    if ck.get("ema") is not None and not state_dict(ck["ema"]):
        raise ValueError(f"{path}: 'ema' must be a state dict of tensors")
    it, elapsed = ck.get("iteration", 0), ck.get("elapsed", 0.0)
    if not isinstance(it, int) or isinstance(it, bool) or it < 0 or \
            not isinstance(elapsed, (int, float)) or isinstance(elapsed, bool) or not math.isfinite(elapsed):
        raise ValueError(f"{path}: 'iteration' must be an int >= 0 and 'elapsed' a finite number")
    return ck


def _init_source(path, transforms: int = 0):
    """(state dict, config) to start from: a checkpoint's (averaged) weights, or the
    float16 weights of transforms set ``transforms`` of a model file (``.npz``, no densities)."""
    torch = require("ldem.train._init_source", "torch")
    if str(path).endswith(".npz"):
        from ldem.model_file import ModelBundle
        bundle = ModelBundle(path)
        if not 0 <= transforms < len(bundle.configs):
            raise ValueError(f"--init-transforms: {path} has transforms sets 0..{len(bundle.configs) - 1}, "
                             f"not {transforms}")
        if bundle.is_block_transform(transforms):
            raise ValueError(f"--init-transforms: set {transforms} of {path} is a block transform, not trainable")
        state = {k: torch.from_numpy(v.astype(np.float32)) for k, v in bundle.states[transforms].items()}
        return state, bundle.configs[transforms]
    ck = load_checkpoint(path)
    return ck.get("ema") or ck["model"], ck["config"]


def init_from_checkpoint(net, path, transforms: int = 0) -> bool:
    """Loads the weights of checkpoint ``path`` into ``net`` (a fresh ``GainedFactorizedCodec``).

    A checkpoint is read with :func:`load_checkpoint` (no code runs); a model file with
    :class:`ldem.model_file.ModelBundle` (safe for untrusted files).

    The transforms must have the same M and at most ``net.N`` hidden channels; narrower
    ones are widened without changing what they compute (:func:`ldem.transforms.widen_transforms`).
    Each level of ``net`` takes the gains and density of the checkpoint level with the
    same λ; a new λ takes those of the level nearest in log λ, with the gains shifted by
    0.5·log(λ/λ_nearest) (step ∝ λ^-1/2). The checkpoint's weight average is used when it
    has one. ``path`` may also be a model file (``.npz``; ``transforms`` picks its set),
    which has no densities: then the densities stay fresh and this returns False.
    """
    from ldem.transforms import check_config, widen_transforms
    src, cfg = _init_source(path, transforms)
    try:
        cfg = check_config(cfg)
    except ValueError as e:
        raise ValueError(f"--init: {path}: {e}") from None
    if cfg["M"] != net.M or not cfg["N"] <= net.N:
        raise ValueError(f"--init: {path} has config {cfg}, not M={net.M} with N ≤ {net.N} "
                         f"{net.config()['arch']}")
    old = cfg["lambdas"]
    state = net.state_dict()
    try:
        if cfg["N"] < net.N:
            src = dict(src, **widen_transforms(src, state))
        for name in state:
            if not (name.startswith("log_gain") or name.startswith("log_inv_gain") or name.startswith("densities.")):
                state[name] = src[name].to(state[name].dtype)
        has_densities = any(name.startswith("densities.") for name in src)
        for q, lam in enumerate(net.lambdas):
            j = min(range(len(old)), key=lambda i: abs(math.log(lam / old[i])))
            shift = 0.5 * math.log(lam / old[j])
            state["log_gain"][q] = src["log_gain"][j] + shift
            state["log_inv_gain"][q] = src["log_inv_gain"][j] - shift
            prefix = f"densities.{j}."
            for name, v in src.items():
                if name.startswith(prefix):
                    state[f"densities.{q}.{name[len(prefix):]}"] = v.clone()
        net.load_state_dict(state)
    except (KeyError, RuntimeError, TypeError, IndexError, ValueError) as e:
        raise ValueError(f"--init: the weights in {path} do not match its config {cfg}: "
                         f"{type(e).__name__}: {str(e)[:300]}") from None
    return has_densities


def fit_densities(net, sampler, patches: int = 64, steps: int = 300, lr: float = 1e-2) -> list:
    """Fits each level's density to the noisy latents of ``patches`` training crops with
    the transforms fixed (a start for weights that came without densities); returns the
    bits per pixel of each level at the end."""
    torch = require("ldem.train.fit_densities", "torch")
    device = next(net.parameters()).device
    x = sampler.batch(patches).to(device)
    with torch.no_grad():
        base = net.g_a(x)
    pixels = x.shape[0] * x.shape[2] * x.shape[3]
    result = []
    for level, density in enumerate(net.densities):
        y = base * torch.exp(net.log_gain[level].detach()).view(1, -1, 1, 1)
        opt = torch.optim.Adam(density.parameters(), lr=lr)
        for _ in range(steps):
            noisy = y + torch.empty_like(y).uniform_(-0.5, 0.5)
            bits = density.bits(noisy).sum() / pixels
            opt.zero_grad(set_to_none=True)
            bits.backward()
            opt.step()
        result.append(bits.item())
    return result


def revive_latent_channels(net, sampler, threshold: float = 1e-3, patches: int = 48):
    """Restarts the latent channels that carry less than ``threshold`` bits per pixel at
    the highest level, on ``patches`` training crops; returns their indices.

    A run trained over low rates switches many channels off, and no gradient brings them
    back: their density is a spike at zero. For a run aimed at higher rates this restarts
    them without changing the reconstruction: fresh (halved) analysis weights and a zero
    bias, zero synthesis input weights, fresh densities, and the mean gain of the live
    channels at each level.
    """
    torch = require("ldem.train.revive_latent_channels", "torch")
    from ldem.transforms import GainedFactorizedCodec
    top = net.num_levels - 1
    device = next(net.parameters()).device
    x = sampler.batch(patches).to(device)
    with torch.no_grad():
        y = net.analysis(x, top).round()
        bits = net.densities[top].bits(y).sum(dim=(0, 2, 3))
    dead = (bits / (x.shape[0] * x.shape[2] * x.shape[3]) < threshold).nonzero().squeeze(1).cpu()
    if len(dead) == 0:
        return []
    fresh = GainedFactorizedCodec(net.lambdas, N=net.N, M=net.M).state_dict()
    state = net.state_dict()
    alive = torch.ones(net.M, dtype=torch.bool)
    alive[dead] = False
    last_a, first_s = net.g_a.net[-1], net.g_s.net[0]
    names = {id(p): n for n, p in net.named_parameters()}
    with torch.no_grad():
        state[names[id(last_a.weight)]][dead] = 0.5 * fresh[names[id(last_a.weight)]][dead]
        state[names[id(last_a.bias)]][dead] = 0
        state[names[id(first_s.weight)]][dead] = 0  # transposed conv: [in = M, out, k, k]
        if alive.any():
            for key in ("log_gain", "log_inv_gain"):
                state[key][:, dead] = state[key][:, alive].mean(dim=1, keepdim=True)
        for k in state:
            if k.startswith("densities."):
                state[k][dead] = fresh[k][dead]
    net.load_state_dict(state)
    return dead.tolist()


def train(argv=None) -> int:
    """Entry point of ``ldem train`` / ``python -m ldem.train``; returns the exit code."""
    args = _parse(argv)
    torch, dist = require("ldem train", "torch", "torch.distributed")
    from ldem.transforms import GainedFactorizedCodec, rd_loss

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        local = int(os.environ.get("LOCAL_RANK", "0"))
        device = torch.device("cuda", local) if torch.cuda.is_available() else torch.device("cpu")
        if device.type == "cuda":
            torch.cuda.set_device(device)
    else:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.lambdas or any(v <= 0 for v in args.lambdas):
        raise ValueError("--lambdas must be positive")
    lambdas = sorted(args.lambdas)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed + rank)
    sampler = PatchSampler(list_images(args.data), args.patch, args.min_scale, seed=args.seed * 1000 + rank)
    if rank == 0:
        for path, reason in sampler.skipped:
            print(f"ldem train: warning: skipping {path}: {reason}", file=sys.stderr)
        if sampler.too_small:
            print(f"ldem train: {len(sampler.too_small)} images smaller than the {args.patch}-pixel patch are "
                  f"not used (e.g. {sampler.too_small[0]})", file=sys.stderr)

    net = GainedFactorizedCodec(lambdas, N=args.N, M=args.M).to(device)
    fast = {id(p) for p in net.entropy_parameters()}
    opt = torch.optim.Adam([{"params": [p for p in net.parameters() if id(p) not in fast], "mult": 1.0},
                            {"params": net.entropy_parameters(), "mult": args.entropy_lr_mult}], lr=args.lr)
    start, elapsed_before = 0, 0.0
    ema_state = None
    ckpt_path = out / "checkpoint.pt"
    if args.resume and args.init:
        raise ValueError("--resume and --init exclude each other")
    if args.init and not init_from_checkpoint(net, args.init, args.init_transforms):
        bpp = fit_densities(net, sampler)  # model files carry integer tables, not densities
        if rank == 0:
            print("fitted densities to the initial latents: " + " ".join(f"{b:.3f}" for b in bpp) + " bpp",
                  file=sys.stderr)
    if args.revive_channels:
        if not args.init:
            raise ValueError("--revive-channels needs --init")
        revived = revive_latent_channels(net, sampler)
        if rank == 0:
            print(f"restarted {len(revived)} of {net.M} latent channels", file=sys.stderr)
    if args.resume:
        if not ckpt_path.exists():
            raise FileNotFoundError(f"--resume: no checkpoint at {ckpt_path}")
        ck = load_checkpoint(ckpt_path, map_location=device)
        if ck["config"] != net.config():
            raise ValueError(f"--resume: checkpoint config {ck['config']} differs from {net.config()}")
        try:
            net.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            start, elapsed_before = ck["iteration"], ck.get("elapsed", 0.0)  # checked by load_checkpoint
            ema_state = ck.get("ema")
            if ema_state is not None and set(ema_state) != {n for n, _ in net.named_parameters()}:
                raise ValueError("'ema' does not name the parameters of the net")
            sampler.rng.setstate(ck["sampler_rng"])
            torch.set_rng_state(ck["torch_rng"].cpu())
        except (KeyError, RuntimeError, TypeError, IndexError, ValueError, AttributeError) as e:
            raise ValueError(f"--resume: {ckpt_path} is not a complete checkpoint of this run: "
                             f"{type(e).__name__}: {str(e)[:300]}") from None
    # Polyak averaging: the averaged weights are what export ships (training is noisy)
    ema_params = None
    if args.ema > 0:
        names = [n for n, _ in net.named_parameters()]
        src = ema_state if ema_state is not None else dict(net.named_parameters())
        ema_params = {n: src[n].detach().clone() for n in names}
    model = net
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=args.batch < net.num_levels)  # levels without a sample this step
    if rank == 0:
        (out / "config.json").write_text(json.dumps({**net.config(), "args": vars(args)}, indent=1))
    log = open(out / "train.log", "a") if rank == 0 else None

    def save(it, elapsed):
        if rank != 0:
            return
        tmp = out / "checkpoint.pt.tmp"
        # only tensors and plain values (the RNG state is a tuple of ints): load_checkpoint
        # reads it back with torch.load(weights_only=True)
        torch.save({"model": net.state_dict(), "ema": ema_params, "optimizer": opt.state_dict(), "iteration": it,
                    "elapsed": elapsed, "config": net.config(), "sampler_rng": sampler.rng.getstate(),
                    "torch_rng": torch.get_rng_state()}, tmp)
        os.replace(tmp, ckpt_path)

    bar = None
    if rank == 0 and not args.no_progress:
        tqdm = require("ldem train", "tqdm.auto").tqdm
        bar = tqdm(total=args.iterations, initial=start, desc="train", dynamic_ncols=True)
    L = net.num_levels
    lam_t = torch.tensor(lambdas)
    ema = None
    t0 = time.time()
    it = start
    budget = None if args.minutes is None else args.minutes * 60.0
    finished = False
    try:
        while it < args.iterations:
            elapsed = elapsed_before + time.time() - t0
            stop = budget is not None and elapsed >= budget
            if world > 1 and budget is not None:  # every rank stops at the same iteration
                flag = torch.tensor([float(stop)], device=device)
                dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                stop = bool(flag.item())
            if stop:
                break
            progress = max(it / args.iterations, elapsed / budget if budget else 0.0)
            lr = args.lr * (0.1 if progress >= args.decay_at else 1.0)
            for g in opt.param_groups:
                g["lr"] = lr * g["mult"]
            # every level in every batch: sample i trains level (i + it) % L
            levels = (torch.arange(args.batch) + it) % L
            x = sampler.batch(args.batch).to(device)
            outd = model(x, levels.to(device))
            loss, bpp, mse = rd_loss(x, outd, lam_t[levels].to(device), args.msssim)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if args.clip > 0:
                torch.nn.utils.clip_grad_norm_(net.parameters(), args.clip)
            opt.step()
            if ema_params is not None:
                with torch.no_grad():
                    for n, p in net.named_parameters():
                        ema_params[n].lerp_(p.detach(), 1.0 - args.ema)
            it += 1
            psnr = 10 * math.log10(1.0 / max(mse.item(), 1e-10))
            cur = (loss.item(), bpp.item(), psnr)
            ema = cur if ema is None else tuple(0.98 * a + 0.02 * b for a, b in zip(ema, cur))
            if log is not None:
                log.write(f"it={it} lr={lr:.2e} loss={cur[0]:.4f} bpp={cur[1]:.4f} psnr={cur[2]:.2f} "
                          f"t={elapsed:.0f}\n")
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{ema[0]:.3f}", bpp=f"{ema[1]:.3f}", psnr=f"{ema[2]:.2f}")
            if it % args.checkpoint_every == 0:
                save(it, elapsed_before + time.time() - t0)
                if log is not None:
                    log.flush()
        finished = True
    finally:
        save(it, elapsed_before + time.time() - t0)
        if bar is not None:
            bar.close()
        if log is not None:
            log.write(f"stopped it={it} elapsed={elapsed_before + time.time() - t0:.0f}s\n")
            log.close()
        if world > 1 and finished:
            # Every rank past its last collective, and the DDP wrapper (which holds the
            # process group) gone, before the group is destroyed: its worker threads then
            # finish while Python is alive (freeing their last work at interpreter exit
            # aborts the process). After an error the launcher stops the other ranks.
            dist.barrier()
            model = None
            gc.collect()
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(train())
