"""How much quality each level's transforms can give: reconstruction with the latent left
unquantized (float), and rounded, plus the latent channels that carry any bits.

    python benchmarks/transform_ceiling.py [--model PATH] [--limit N] [--json PATH]

Sets: the development photos, all of them and each half (tuning half = even positions by
name, held-out half = odd), and the training photos as export sees them (at most 768 px a
side). For each quality of the model file (the shipped one by default):

- **unquantized**: PSNR (RGB, 8-bit output) of synthesis(analysis(x)) without rounding:
  the ceiling of the transforms, whatever the entropy coder spends;
- **rounded**: the same with the latent rounded, as the codec decodes it;
- **active channels**: latent channels with a non-zero symbol in any image of the set.

A block-transform quality (:mod:`ldem.block_transform`) is exactly invertible: its
unquantized reconstruction is computed with a step of 10⁻⁴ and gives the pixels back
("inf"). If training and development PSNRs agree, the ceiling is the network's capacity
or training, not a failure to generalise.
"""
from __future__ import annotations

import argparse
import json
import math
import sys

import numpy as np


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def reconstructions(codec, x: np.ndarray):
    """(unquantized, rounded) uint8 reconstructions [H, W, 3] of float pixels x [3, H, W],
    and the rounded latent."""
    H, W = x.shape[1:]
    if codec.is_block_transform:
        from ldem.block_transform import BlockTransform
        bt = codec.net
        exact = BlockTransform(bt.basis, [1e-4], bt.deadzone, predicted=bt.predicted)  # no offsets: unquantized
        y = bt.analysis(x, codec.level)
        return exact.synthesis(exact.analysis(x, 0), 0, (H, W)), bt.synthesis(y, codec.level, (H, W)), y
    import torch
    from ldem.tiling import pad_to_16
    net, level = codec.net, codec.level
    with torch.inference_mode():
        y = net.analysis(pad_to_16(torch.from_numpy(x)[None]), level)
        out = []
        for z in (y, y.round()):
            xh = net.synthesis(z, level)[0, :, :H, :W].clamp(0, 1)
            out.append((xh * 255).round().to(torch.uint8).permute(1, 2, 0).numpy())
    return out[0], out[1], y.round()[0].to(torch.int32).numpy()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="model file (default: the shipped one)")
    ap.add_argument("--limit", type=int, default=None, help="images per set")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args(argv)
    import torch
    from ldem.codec import ImageCodec
    from ldem.eval_results import halves
    from ldem.export import training_image
    from ldem_bench import datasets
    torch.set_num_threads(2)
    dev = datasets.split_images("dev_photos")[:args.limit]
    half = {name: part for part, names in halves([p.name for p in dev]).items() for name in names}
    train = datasets.split_images("train")[:args.limit]
    sets = {"dev": [(p.name, training_image(p, 10**6)) for p in dev],
            "train": [(p.name, training_image(p)) for p in train]}
    load = (lambda q: ImageCodec.load(args.model, q)) if args.model else ImageCodec.pretrained
    n_q = load(1).num_qualities
    rows = []
    for q in range(1, n_q + 1):
        codec = load(q)
        for set_name, items in sets.items():
            active = None
            for name, x in items:
                ref = np.round(x * 255).astype(np.uint8).transpose(1, 2, 0)
                unq, rnd, y = reconstructions(codec, x)
                nz = (y != 0).any(axis=(1, 2))
                active = nz if active is None else active | nz
                part = half[name] if set_name == "dev" else "train"
                rows.append({"quality": q, "set": part, "image": name, "unquantized": _psnr(ref, unq),
                             "rounded": _psnr(ref, rnd)})
            rows.append({"quality": q, "set": set_name, "active_channels": int(active.sum()),
                         "channels": int(active.size)})
        print(f"quality {q} done", file=sys.stderr)

    def mean(q, parts, key):
        v = [r[key] for r in rows if r["quality"] == q and r["set"] in parts and key in r]
        return float(np.mean(v)) if v else math.nan

    print(f"{len(dev)} development photos (tuning half {sum(v == 'tuning' for v in half.values())}), "
          f"{len(train)} training photos at <= 768 px; mean PSNR in dB")
    print()
    print("| quality | transforms | dev unquantized | dev rounded | tuning half unquantized | held-out half "
          "unquantized | training unquantized | training rounded | active channels dev / training |")
    print("|---|---|---|---|---|---|---|---|---|")
    for q in range(1, n_q + 1):
        codec = load(q)
        kind = f"block, step {codec.net.steps[codec.level]:g}" if codec.is_block_transform else \
            f"learned set {codec.transforms_set}, level {codec.level + 1}"
        act = [next(r for r in rows if r["quality"] == q and r["set"] == s and "active_channels" in r)
               for s in ("dev", "train")]
        f = lambda v: "inf" if math.isinf(v) else f"{v:.2f}"  # noqa: E731
        print(f"| {q} | {kind} | {f(mean(q, ('tuning', 'held-out'), 'unquantized'))} "
              f"| {f(mean(q, ('tuning', 'held-out'), 'rounded'))} | {f(mean(q, ('tuning',), 'unquantized'))} "
              f"| {f(mean(q, ('held-out',), 'unquantized'))} | {f(mean(q, ('train',), 'unquantized'))} "
              f"| {f(mean(q, ('train',), 'rounded'))} | {act[0]['active_channels']} / {act[1]['active_channels']} "
              f"of {act[0]['channels']} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump([{k: None if isinstance(v, float) and math.isinf(v) else v for k, v in r.items()} for r in rows],
                      fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
