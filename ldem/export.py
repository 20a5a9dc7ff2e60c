"""Turns training checkpoints into a model file the codec ships and loads.

It stores each checkpoint's transforms once (several checkpoints: e.g. one network
trained for low rates and one for high rates), and for every quality it stores:

- the **global tables**: the level's learned density evaluated on the integers, cut where
  the tails fall below ``tail`` (the escape codes anything beyond) and quantized once to
  integer tables at precision 16;
- a **static dictionary** learned from the level's latents of the training images with
  :func:`ldem.learn_dictionary` (k-means++ and Lloyd by exact coded length);
- the coder settings (block sizes, image-model budget).

Weights are stored in float16 (the per-level gains in float32). Usage::

    ldem export run/checkpoint.pt model.npz --data TRAIN_IMAGES
    ldem export low/checkpoint.pt high/checkpoint.pt model.npz --data TRAIN_IMAGES --levels 1,2,3,4 2,3
    ldem export old.npz high/checkpoint.pt model.npz --data TRAIN_IMAGES --levels all 2,3
    ldem export old.npz new.npz --data TRAIN_PHOTOS TRAIN_SIMPLE --contexts learn
    ldem export old.npz new.npz --data TRAIN_PHOTOS TRAIN_SIMPLE --block-steps 40 30 22 --ladder 1,2,3,4,5,6

The last adds qualities served by the block transform of :mod:`ldem.block_transform`
(learned from the training images: its basis, reconstruction offsets and deblocking
filters, then tables per step like a trained level) above the qualities of ``old.npz``
that ``--ladder`` keeps on offer; the others stay in the file for the old ``.ldem`` files.

Sources: a model file (``.npz``) is read by the hardened loader
(:class:`ldem.model_file.ModelBundle`) and may come from an untrusted source. A training
checkpoint is read with ``torch.load(weights_only=True)`` (:func:`ldem.train.load_checkpoint`):
it cannot run code, and one holding anything but tensors and plain values is refused
with ``ValueError``; still, load checkpoints only from sources you trust for resource
use (their tensors are read as they are).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from ldem.files import check_output
from ldem.model_file import MAX_LEVELS, table_members, transform_members, write_model_file
from ldem.dictionary import Dictionary
from ldem.block_transform import CHANNELS, PREDICTED, BlockTransform, check_block_config
from ldem.local import NUM_CONTEXTS, fit_context_models, fit_global_models, learn_context_dictionary, learn_dictionary
from ldem._optional import require
from ldem.images import image_to_array, list_images, open_image
from ldem.tiling import pad_to_16

__all__ = ["global_tables", "training_image", "training_latents", "export_model", "estimate_rd"]


def global_tables(density, precision: int = 16, tail: float = 1e-6, span: int = 2048) -> Dictionary:
    """Integer tables (one per channel) from a :class:`ldem.transforms.FactorizedDensity`."""
    pmf = density.pmf(-span, span).numpy()
    rows, offsets = [], []
    for p in pmf:
        cdf = np.cumsum(p)
        lo = int(np.searchsorted(cdf, tail))
        hi = int(np.searchsorted(cdf, cdf[-1] - tail)) + 1
        lo, hi = min(lo, span), max(hi, span + 1)  # always cover 0
        rows.append(p[lo:hi])
        offsets.append(lo - span)
    return Dictionary.from_pmfs(rows, offsets, precision=precision)


def training_image(path, max_side: int = 768) -> np.ndarray:
    """A training image as float ``[3, H, W]`` in [0, 1], downscaled to at most ``max_side`` a side."""
    Image = require("ldem export", "PIL.Image")
    with open_image(path) as im:
        im = im.convert("RGB")
        s = max_side / max(im.size)
        if s < 1:
            im = im.resize((max(16, round(im.width * s)), max(16, round(im.height * s))), Image.LANCZOS)
        return image_to_array(im)


def training_latents(net, paths, level: int, max_side: int = 768):
    """Rounded latents (int32 ``[M, h, w]``) of each image, downscaled to ``max_side``;
    ``net`` is learned transforms or a :class:`ldem.block_transform.BlockTransform`."""
    if isinstance(net, BlockTransform):
        return [net.analysis(training_image(p, max_side), level) for p in paths]
    torch = require("ldem export", "torch")
    out = []
    for p in paths:
        x = torch.from_numpy(training_image(p, max_side))[None]
        with torch.inference_mode():
            y = net.analysis(pad_to_16(x), level)[0].round()
        out.append(y.to(torch.int64).numpy().astype(np.int32))
    return out


def estimate_rd(net, paths, level: int):
    """Mean (bpp from the float density, PSNR) of the level on images, without coding."""
    torch = require("ldem export", "torch")
    bpps, psnrs = [], []
    for p in paths:
        with open_image(p) as im:
            x = torch.from_numpy(image_to_array(im))[None]
        H, W = x.shape[-2:]
        with torch.inference_mode():
            y = net.analysis(pad_to_16(x), level).round()
            bits = net.densities[level].bits(y)
            xh = net.synthesis(y, level)[..., :H, :W].clamp(0, 1)
        bpps.append(float(bits.sum()) / (H * W))
        xq = (xh * 255).round()
        mse = float(((xq - (x * 255).round()) ** 2).mean())
        psnrs.append(10 * np.log10(255 ** 2 / max(mse, 1e-10)))
    return float(np.mean(bpps)), float(np.mean(psnrs))


def _load_checkpoint(path):
    """A checkpoint's net in eval mode, on its float16-rounded weights, and the checkpoint."""
    torch = require("ldem export", "torch")
    from ldem.transforms import GainedFactorizedCodec
    from ldem.train import load_checkpoint
    ck = load_checkpoint(path)
    try:
        net = GainedFactorizedCodec.from_config(ck["config"])
        net.load_state_dict(ck["model"])
        if ck.get("ema"):  # the moving average of the weights, when training kept one
            net.load_state_dict(ck["ema"], strict=False)
    except (RuntimeError, ValueError) as e:
        raise ValueError(f"{path}: the checkpoint's weights do not match its config: {str(e)[:300]}") from None
    net.eval()
    # The codec runs on the float16-rounded weights; build the tables from the same.
    state = {}
    for k, v in net.state_dict().items():
        if k.startswith("densities."):
            continue
        keep32 = k.startswith("log_gain") or k.startswith("log_inv_gain")
        state[k] = v.numpy().astype(np.float32 if keep32 else np.float16)
    net.load_state_dict({k: torch.from_numpy(v.astype(np.float32)) for k, v in state.items()}, strict=False)
    return net, state, ck


def _increasing(chosen, first: int, last: int, what: str) -> list:
    """``chosen`` as a list of ints, which must be increasing and within first..last."""
    chosen = [int(v) for v in chosen]
    if not chosen or sorted(set(chosen)) != chosen or chosen[0] < first or chosen[-1] > last:
        raise ValueError(f"{what} must be increasing numbers in {first}..{last}, got {chosen!r}")
    return chosen


def context_tables(ys, static_families: int):
    """(per-channel context families, static context families) learned from training latents."""
    cg = fit_context_models(ys)
    cs = learn_context_dictionary(ys, static_families, cg) if static_families > 0 else None
    return cg, cs


def _quality_tables(q: int, ys, g: Dictionary, settings: dict, static_models: int, static_families: int,
                    progress: bool):
    """(members, level dict) of quality ``q`` from its training latents ``ys`` and global
    tables ``g``: a static dictionary and context families learned from ``ys``; the level
    dict is ``settings`` plus the quality and the dictionaries' sizes."""
    s = learn_dictionary(ys, static_models, block=(16, 16), global_models=g, seed=0, progress=progress)
    cg, cs = context_tables(ys, static_families)
    level = {"quality": q, **settings, "static_models": s.num_models,
             "static_context_families": 0 if cs is None else cs.num_models // NUM_CONTEXTS}
    return table_members(q, g, s, cg, cs), level


def _copy_model_file(path, qualities, t_first: int, q_first: int, contexts: str = "auto", paths=None,
                     static_families: int = 64):
    """Arrays, transforms configs, training notes, level dicts and the bundle of the chosen
    qualities of model file ``path``, renumbered from transforms ``t_first`` and quality
    ``q_first``. ``contexts``: "keep" the context tables as they are, "learn" them again
    from the images ``paths`` with the file's transforms, or "auto" (learn missing ones)."""
    from ldem.model_file import ModelBundle
    bundle = ModelBundle(path)  # validates the file
    chosen = _increasing(range(1, bundle.num_qualities + 1) if qualities is None else qualities,
                         1, bundle.num_qualities, f"{path}: qualities")
    used = sorted({bundle.level_of(q)[0] for q in chosen})
    renumber = {t: t_first + i for i, t in enumerate(used)}
    arrays, levels = {}, []
    for t in used:
        arrays.update(transform_members(renumber[t], bundle.states[t]))
    notes = bundle.meta.get("training")
    notes = notes if isinstance(notes, list) else [notes] * len(bundle.configs)
    notes = [n if isinstance(n, dict) else {} for n in notes] + [{}] * len(bundle.configs)
    for i, q in enumerate(chosen):
        t, l = bundle.level_of(q)
        e = bundle.entry(q)
        new_q = q_first + i
        g, s = bundle.tables[e]  # the checked tables; to_bytes gives the bytes stored
        if contexts == "learn" or (contexts == "auto" and not bundle.has_context_tables(e)):
            if not paths:
                raise ValueError(f"{path}: learning context tables needs training images (--data)")
            cg, cs = context_tables(training_latents(bundle.net(t), paths, l), static_families)
        else:
            cg, cs = bundle.context_tables(e)
        arrays.update(table_members(new_q, g, s, cg, cs))
        level = dict(bundle.levels[e - 1], quality=new_q, transforms=renumber[t], level=l)
        if cs is not None:
            level["static_context_families"] = cs.num_models // NUM_CONTEXTS
        levels.append(level)
    configs = [bundle.configs[t] for t in used]
    training = [dict(notes[t], model_file=Path(path).name,
                     qualities_in_file=[q for q in chosen if bundle.level_of(q)[0] == t]) for t in used]
    # Its .ldem files stay readable when every quality is copied in place with the tables
    # they were coded with: all of them, and the context families unless relearned
    # (files of a source without context families are context-free).
    entries = [bundle.entry(q) for q in chosen]
    relearned = contexts == "learn" or (contexts == "auto" and not all(bundle.has_context_tables(e)
                                                                       for e in entries))
    had_contexts = any(bundle.has_context_tables(e) for e in entries)
    same = q_first == 1 and t_first == 0 and entries == list(range(1, len(bundle.levels) + 1)) and \
        not (relearned and had_contexts)
    compatible = [bundle.model_id, *bundle.compatible_model_ids] if same else []
    return arrays, configs, training, levels, compatible


def export_model(checkpoints, out, data, *, static_models: int = 64, block_sizes=((8, 8), (16, 16), (32, 32)),
                 max_image_models: int = 32, max_images: int = 64, levels=None, progress: bool = True,
                 force: bool = False, static_families: int = 64, contexts: str = "auto", block_steps=None,
                 block_deadzone: float = 0.15, ladder=None) -> dict:
    """Writes the model file ``out`` from training checkpoints and the training images in ``data``
    (a folder or a list of folders; the first ``max_images`` images of each are used).

    ``checkpoints`` is one path or a list of paths; each checkpoint's transforms are stored
    once. ``levels`` picks which trained levels (0-based, smallest files first) become
    qualities: for one checkpoint a list of levels (all by default), for several a list
    with one such list (or ``None``: all) per checkpoint. Qualities are numbered 1, 2, ...
    in that order, so list the checkpoints and levels from the smallest files up.

    Each quality also gets context families (stream version 2): one per channel
    (:func:`ldem.fit_context_models`) and ``static_families`` static ones
    (:func:`ldem.learn_context_dictionary`), learned from the same training latents.

    A source may also be a model file (``.npz`` from an earlier export): its chosen
    qualities (here **1-based quality numbers**, all by default) are copied as they are,
    with their transforms, integer tables and dictionaries. This adds, for example, levels
    of a high-rate network to an existing model without retraining or re-deriving the rest.
    ``contexts`` says what happens to a copied quality's context families: ``"keep"``
    them, ``"learn"`` them again from ``data`` with the file's transforms, or ``"auto"``
    (learn those missing). A model file copied whole and in place keeps reading the
    ``.ldem`` files of the source (its id goes to ``compatible_model_ids``) unless context
    families it had are learned again (its context-coded files need them).

    ``block_steps`` (a list of quantization steps, largest first) adds qualities after
    the sources' served by :class:`ldem.block_transform.BlockTransform`: its basis is
    the KLT of the training images' 8×8 RGB blocks, ``block_deadzone`` its rounding
    offset, and each step gets tables, a static dictionary and context families learned
    from the training images' latents, like a trained level. ``ladder`` (1-based numbers
    of the sources' qualities, default all) picks which of them the new file offers as
    qualities; the block-transform qualities always follow. Qualities left off the
    ladder stay in the file, so the ``.ldem`` files of a source copied whole stay
    readable.

    ``out`` is written atomically; it may not be one of the sources, and an existing file
    is replaced only with ``force``. Both are checked before any work.
    """
    if isinstance(checkpoints, (str, Path)):
        checkpoints, levels = [checkpoints], [levels]
    else:
        checkpoints = list(checkpoints)
        levels = [None] * len(checkpoints) if levels is None else list(levels)
        if not checkpoints or len(levels) != len(checkpoints):
            raise ValueError(f"levels: one list per checkpoint ({len(checkpoints)}), got {len(levels)}")
    check_output(out, force=force, inputs=checkpoints)
    if contexts not in ("auto", "keep", "learn"):
        raise ValueError(f"contexts must be 'auto', 'keep' or 'learn', got {contexts!r}")
    if block_steps:  # checked before any work
        check_block_config({"M": CHANNELS, "steps": list(block_steps), "deadzone": block_deadzone,
                            "predicted": PREDICTED}, MAX_LEVELS)
    arrays, out_levels, configs, training, compatible = {}, [], [], [], []
    t0 = time.time()
    q = 0
    paths = None

    def images():
        folders = [] if data is None else [data] if isinstance(data, (str, Path)) else list(data)
        found = [p for folder in folders for p in list_images(folder)[:max_images]]
        if not found:
            raise ValueError(f"no training images in {', '.join(map(str, folders)) or 'no folder'}")
        return found

    for checkpoint, chosen in zip(checkpoints, levels):
        t = len(configs)
        if not Path(checkpoint).is_file():
            raise FileNotFoundError(f"no checkpoint or model file at {checkpoint}")
        if str(checkpoint).endswith(".npz"):
            need = contexts == "learn" or contexts == "auto"
            a, c, tr, lv, ids = _copy_model_file(checkpoint, chosen, t, q + 1, contexts,
                                                 (paths := paths or images()) if need and data else None,
                                                 static_families)
            arrays.update(a)
            configs += c
            training += tr
            out_levels += lv
            compatible += ids
            q += len(lv)
            if progress:
                print(f"{checkpoint}: {len(lv)} qualities copied ({time.time() - t0:.0f} s)", file=sys.stderr)
            continue
        if paths is None:
            paths = images()
        net, state, ck = _load_checkpoint(checkpoint)
        chosen = _increasing(range(net.num_levels) if chosen is None else chosen, 0, net.num_levels - 1,
                             f"{checkpoint}: levels")
        arrays.update(transform_members(t, state))
        configs.append(net.config())
        training.append({"checkpoint": Path(checkpoint).name, "iterations": ck.get("iteration"),
                         "seconds": round(ck.get("elapsed", 0.0)), "images": len(paths)})
        for l in chosen:
            q += 1
            lam = net.lambdas[l]
            g = global_tables(net.densities[l])
            members, level = _quality_tables(q, training_latents(net, paths, l), g, {
                "transforms": t, "level": l, "lambda": lam, "block_sizes": [list(b) for b in block_sizes],
                "max_image_models": max_image_models}, static_models, static_families, progress)
            arrays.update(members)
            out_levels.append(level)
            if progress:
                print(f"quality {q}: transforms {t} level {l + 1}, λ={lam}: tables and {level['static_models']} "
                      f"static models ({time.time() - t0:.0f} s)", file=sys.stderr)
    served = _increasing(range(1, q + 1) if ladder is None else ladder, 1, q, "ladder")
    if block_steps:
        if paths is None:
            paths = images()
        t = len(configs)
        xs = [training_image(p) for p in paths]
        bt = BlockTransform.fit(xs, block_steps, block_deadzone)
        arrays.update(transform_members(t, {"basis": bt.basis, "offsets": bt.offsets.astype(np.float32),
                                            "deblock": bt.deblock.astype(np.float32)}))
        configs.append(bt.config())
        training.append({"fitted": "KLT of the training images' 8x8 RGB blocks", "images": len(paths)})
        for l, step in enumerate(bt.steps):
            q += 1
            served.append(q)
            ys = [bt.analysis(x, l) for x in xs]
            members, level = _quality_tables(q, ys, fit_global_models(ys), {
                "transforms": t, "level": l, "step": step, "block_sizes": [list(b) for b in block_sizes],
                "max_image_models": max_image_models}, static_models, static_families, progress)
            del ys
            arrays.update(members)
            out_levels.append(level)
            if progress:
                print(f"quality {q}: block transform, step {step}: tables and {level['static_models']} static "
                      f"models ({time.time() - t0:.0f} s)", file=sys.stderr)
    return write_model_file(out, arrays, configs, out_levels, training, force=force, inputs=checkpoints,
                            compatible_model_ids=compatible, ladder=served)


def _parse_list(text: str, what: str) -> list:
    """A comma list of ints (``"1,2,5"``); ``ValueError`` naming ``what`` otherwise."""
    try:
        return [int(v) for v in text.split(",") if v.strip() != ""]
    except ValueError:
        raise ValueError(f"{what} must be a comma list of numbers, got {text!r}") from None


def _parse_levels(values, sources) -> list:
    """``--levels`` as :func:`export_model` takes them: one list (``None``: all) per source.

    On the command line every number counts from 1: a checkpoint's trained levels (1 =
    the smallest λ) and a model file's qualities. For a checkpoint, ``export_model``
    counts levels from 0, so they are shifted here. A checkpoint list holding a 0 is the
    old 0-based numbering, read as such with a note on stderr. With one source, plain
    numbers may also be given apart (``--levels 1 2 3``).
    """
    n = len(sources)
    if values is None:
        return [None] * n
    try:
        groups = [None if str(g) == "all" else [int(v) for v in str(g).split(",") if v != ""] for g in values]
    except ValueError:
        raise ValueError(f"--levels: numbers from 1, comma lists of them or 'all', got {' '.join(values)}") from None
    if n == 1:
        groups = [None] if None in groups else [[v for g in groups for v in g]]
    elif len(groups) != n:
        raise ValueError(f"--levels: with {n} sources give {n} comma lists or 'all' (one per source), "
                         f"got {len(groups)}")
    checkpoint = [not str(src).endswith(".npz") for src in sources]
    zero_based = any(ck and g is not None and 0 in g for ck, g in zip(checkpoint, groups))
    if zero_based:
        new = " ".join("all" if g is None else ",".join(str(v + ck) for v in g) for ck, g in zip(checkpoint, groups))
        print(f"ldem export: note: --levels {' '.join(values)} read in the old numbering from 0; levels count from 1 "
              f"now, as qualities do: --levels {new}", file=sys.stderr)
        return groups
    return [g if g is None or not ck else [v - 1 for v in g] for ck, g in zip(checkpoint, groups)]


def _check_levels(sources, levels):
    """Refuses a checkpoint level outside 1..L, in the numbering of the command line."""
    from ldem.train import load_checkpoint
    for src, chosen in zip(sources, levels):
        if chosen is None or str(src).endswith(".npz") or not Path(src).is_file():
            continue  # export_model checks model files' qualities and reports missing sources
        lambdas = load_checkpoint(src)["config"].get("lambdas")
        count = len(lambdas) if isinstance(lambdas, list) else 0
        bad = [v + 1 for v in chosen if not 0 <= v < count]
        if bad:
            raise ValueError(f"--levels: {src} has trained levels 1..{count} (λ = "
                             f"{', '.join(map(str, lambdas))}), not {', '.join(map(str, bad))}")


def _summary(meta: dict, out) -> str:
    """The lines that ``ldem export`` prints: the file, then one line per quality."""
    size = Path(out).stat().st_size
    ladder = meta.get("ladder", list(range(1, len(meta["levels"]) + 1)))
    lines = [f"{out}: {f'{size / 1e6:.1f} MB' if size >= 1e6 else f'{size / 1e3:.0f} kB'}, "
             f"{len(ladder)} qualities on "
             f"{len(meta['transforms'])} set{'s' if len(meta['transforms']) != 1 else ''} of transforms"
             + (f" ({len(meta['levels']) - len(ladder)} more entries kept for older files)"
                if len(ladder) < len(meta["levels"]) else ""),
             f"{'quality':>7}  {'transforms':>10}  {'level':>5}  {'λ or step':<9}  {'static models':>13}"]
    for q, e in enumerate(ladder, 1):
        lv = meta["levels"][e - 1]
        t, level = lv.get("transforms", 0), lv["level"]
        cfg = meta["transforms"][t]
        value = cfg["steps"][level] if "steps" in cfg else cfg["lambdas"][level]
        lines.append(f"{q:>7}  {t:>10}  {level + 1:>5}  {value:<9g}  {lv.get('static_models', 0):>13}")
    return "\n".join(lines)


def main(argv=None) -> int:
    from ldem.train import DefaultsHelpFormatter
    ap = argparse.ArgumentParser(
        prog="ldem export", description="Build a model file from training checkpoints.",
        formatter_class=DefaultsHelpFormatter,
        epilog="Model files given as sources are checked by the hardened loader and may come from anywhere. "
               "Checkpoints are read with torch.load(weights_only=True): they cannot run code, but load them "
               "only from sources you trust for resource use.")
    ap.add_argument("checkpoints", nargs="+", metavar="source",
                    help="training checkpoints, or model files (.npz) whose qualities are copied as they are; "
                         "qualities follow their order (smallest files first)")
    ap.add_argument("out", help="model file to write (.npz); written atomically, never over a source")
    ap.add_argument("-f", "--force", action="store_true", help="overwrite an existing output")
    ap.add_argument("--data", required=True, nargs="+", metavar="DIR",
                    help="folders of training images (for the static dictionaries and context families)")
    ap.add_argument("--static-models", type=int, default=64, metavar="K",
                    help="models in the static dictionary learned for each quality from the training latents")
    ap.add_argument("--static-families", type=int, default=64, metavar="K",
                    help="static context families learned for each quality (0: none)")
    ap.add_argument("--contexts", choices=("auto", "keep", "learn"), default="auto",
                    help="context families of qualities copied from model files: keep them, learn them again "
                         "from --data with the file's transforms, or learn only those missing")
    ap.add_argument("--max-images", type=int, default=64, metavar="N",
                    help="training images used from each --data folder (the first N by path)")
    ap.add_argument("--levels", nargs="+", metavar="LIST",
                    help="what to ship, counted from 1: a checkpoint's trained levels (1 = smallest λ, smallest "
                         "files) or a model file's qualities; default: all. With several sources one comma list "
                         "or 'all' per source, e.g. --levels 1,2,3,4 3,4 or --levels all 2,3")
    ap.add_argument("--block-steps", type=float, nargs="+", metavar="STEP",
                    help="add qualities served by the block transform (KLT of 8x8 RGB blocks learned from --data), "
                         "one per quantization step, largest step (smallest files) first")
    ap.add_argument("--block-deadzone", type=float, default=0.15, metavar="D",
                    help="rounding offset of the block transform's quantizer (0..0.5)")
    ap.add_argument("--ladder", metavar="LIST",
                    help="the sources' qualities the new file offers (comma list, 1-based; default all); the others "
                         "stay in the file for the sources' .ldem files, the block-transform qualities follow")
    ap.add_argument("--json", action="store_true",
                    help="print the qualities as the model file's JSON (levels counted from 0) instead of a table")
    args = ap.parse_args(argv)
    levels = _parse_levels(args.levels, args.checkpoints)
    _check_levels(args.checkpoints, levels)
    one = len(args.checkpoints) == 1
    meta = export_model(args.checkpoints[0] if one else args.checkpoints, args.out, args.data,
                        static_models=args.static_models, max_images=args.max_images,
                        levels=levels[0] if one else levels, force=args.force,
                        static_families=args.static_families, contexts=args.contexts,
                        block_steps=args.block_steps, block_deadzone=args.block_deadzone,
                        ladder=_parse_list(args.ladder, "--ladder") if args.ladder else None)
    print(json.dumps(meta["levels"], indent=1) if args.json else _summary(meta, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
