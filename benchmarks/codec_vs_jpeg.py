"""Each quality level of a model against JPEG at equal PSNR, per image and as means.

    python benchmarks/codec_vs_jpeg.py [--split dev_photos] [--model PATH] [--limit N]

For every image and quality: ldem's PSNR (RGB) and bpp in the global and local entropy
modes (the pixels are the same), and the bpp Pillow JPEG (4:2:0, optimized Huffman
tables) needs for the same PSNR, interpolated in (PSNR, log bpp) over JPEG qualities
1–100. Prints a markdown table of means over the images, with the share of images where
ldem-local is smaller than JPEG.
"""
from __future__ import annotations

import argparse
import json
import math
import sys

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--split", default="dev_photos", help="data-cache split (ldem_bench.datasets)")
    ap.add_argument("--folder", help="a folder of images instead of a split")
    ap.add_argument("--model", help="model file (default: the shipped one)")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--json", help="also write the per-image rows here")
    args = ap.parse_args(argv)
    from PIL import Image
    from tqdm.auto import tqdm
    from ldem.codec import ImageCodec, psnr
    from ldem.reference import bpp_at_psnr, jpeg_curve
    if args.folder:
        from ldem.images import list_images
        paths = list_images(args.folder)
    else:
        from ldem_bench import datasets
        paths = datasets.split_images(args.split)
    paths = paths[:args.limit]
    load = (lambda q: ImageCodec.load(args.model, q)) if args.model else ImageCodec.pretrained
    n_q = load(1).num_qualities
    codecs = [load(q) for q in range(1, n_q + 1)]
    rows = []
    for p in tqdm(paths, desc="images"):
        with Image.open(p) as im:
            img = np.asarray(im.convert("RGB"))
        H, W = img.shape[:2]
        jpeg = jpeg_curve(img, range(1, 101))
        for c in codecs:
            g = c.compress(img, entropy="global")
            loc = c.compress(img, entropy="local")
            out = c.decompress_array(loc)
            q = psnr(img, out)
            rows.append({"image": p.name, "quality": c.quality, "psnr": q, "bpp_global": 8 * len(g) / (H * W),
                         "bpp_local": 8 * len(loc) / (H * W), "bpp_jpeg": bpp_at_psnr(jpeg, q)})
    print(f"{len(paths)} images ({args.folder or args.split}), model {codecs[0].model_id}")
    print()
    print("| quality | PSNR dB | bpp global | bpp local | local vs global | JPEG 4:2:0 bpp at same PSNR "
          "| local vs JPEG | images smaller than JPEG |")
    print("|---|---|---|---|---|---|---|---|")
    for qi in range(1, n_q + 1):
        r = [x for x in rows if x["quality"] == qi]
        valid = [x for x in r if not math.isnan(x["bpp_jpeg"])]
        m = lambda k, rr=r: float(np.mean([x[k] for x in rr]))  # noqa: E731
        jl = float(np.mean([x["bpp_local"] for x in valid])) if valid else math.nan
        jj = float(np.mean([x["bpp_jpeg"] for x in valid])) if valid else math.nan
        wins = sum(x["bpp_local"] < x["bpp_jpeg"] for x in valid)
        note = "" if len(valid) == len(r) else f" ({len(r) - len(valid)} below JPEG's PSNR range)"
        print(f"| {qi} | {m('psnr'):.2f} | {m('bpp_global'):.4f} | {m('bpp_local'):.4f} "
              f"| {100 * (m('bpp_local') / m('bpp_global') - 1):+.1f} % | {jj:.4f} | {100 * (jl / jj - 1):+.1f} % "
              f"| {wins}/{len(valid)}{note} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
