"""Each quality level of a model against JPEG, WebP and AVIF at equal PSNR, per image and as means.

    python benchmarks/codec_vs_jpeg.py [--split dev_photos] [--model PATH] [--limit N] [--json PATH]

For every image and quality: ldem's PSNR (RGB) and bpp in the global and local entropy
modes (the pixels are the same), and the bpp that Pillow's JPEG (4:2:0, optimized Huffman
tables, qualities 1–100), WebP (method 6, qualities 0–100 by 5) and AVIF (if this Pillow
writes it, qualities 0–100 by 5) need for the same PSNR, interpolated in (PSNR, log bpp).
Prints one markdown table of means for all images, then one for each half of the images
sorted by name (``ldem.eval_results.halves``: the tuning half, where choices may be
measured, and the held-out half, on which none is made). "step" is the PSNR gained over
the quality below; "smaller than JPEG" counts the images where ldem-local is smaller.
"""
from __future__ import annotations

import argparse
import json
import math
import sys

import numpy as np

PEERS = {"jpeg": ("JPEG", "4:2:0", range(1, 101)), "webp": ("WEBP", None, range(0, 101, 5)),
         "avif": ("AVIF", None, range(0, 101, 5))}


def _table(rows, n_q: int, peers) -> list:
    lines = ["| quality | PSNR dB | step dB | bpp global | bpp local | local vs global | JPEG 4:2:0 bpp at same PSNR "
             "| local vs JPEG | smaller than JPEG | " + " | ".join(f"local vs {p.upper()}" for p in peers[1:]) + " |",
             "|---" * (9 + len(peers) - 1) + "|"]
    prev = None
    for qi in range(1, n_q + 1):
        r = [x for x in rows if x["quality"] == qi]
        m = lambda k, rr=r: float(np.mean([x[k] for x in rr]))  # noqa: E731
        cells = []
        for peer in peers:  # means over the images inside the peer's PSNR range
            valid = [x for x in r if not math.isnan(x[f"bpp_{peer}"])]
            note = "" if len(valid) == len(r) else f" ({len(r) - len(valid)} out of range)"
            ratio = (100 * (np.mean([x["bpp_local"] for x in valid]) / np.mean([x[f"bpp_{peer}"] for x in valid]) - 1)
                     if valid else math.nan)
            cells.append((valid, ratio, note))
        valid, ratio, note = cells[0]
        wins = sum(x["bpp_local"] < x["bpp_jpeg"] for x in valid)
        jj = float(np.mean([x["bpp_jpeg"] for x in valid])) if valid else math.nan
        step = "" if prev is None else f"{m('psnr') - prev:+.2f}"
        prev = m("psnr")
        lines.append(f"| {qi} | {m('psnr'):.2f} | {step} | {m('bpp_global'):.4f} | {m('bpp_local'):.4f} "
                     f"| {100 * (m('bpp_local') / m('bpp_global') - 1):+.1f} % | {jj:.4f} | {ratio:+.1f} %{note} "
                     f"| {wins}/{len(valid)} | "
                     + " | ".join(f"{c[1]:+.1f} %{c[2]}" for c in cells[1:]) + " |")
    return lines


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
    from ldem.eval_results import halves
    from ldem.reference import avif_available, bpp_at_psnr, curve
    if args.folder:
        from ldem.images import list_images
        paths = list_images(args.folder)
    else:
        from ldem_bench import datasets
        paths = datasets.split_images(args.split)
    paths = paths[:args.limit]
    peers = [p for p in PEERS if p != "avif" or avif_available()]
    load = (lambda q: ImageCodec.load(args.model, q)) if args.model else ImageCodec.pretrained
    n_q = load(1).num_qualities
    codecs = [load(q) for q in range(1, n_q + 1)]
    rows = []
    for p in tqdm(paths, desc="images"):
        with Image.open(p) as im:
            img = np.asarray(im.convert("RGB"))
        H, W = img.shape[:2]
        curves = {peer: curve(img, *PEERS[peer][:1], PEERS[peer][2], PEERS[peer][1]) for peer in peers}
        for c in codecs:
            y, size = c.latent(img)
            g = c.compress_latent(y, size, entropy="global")
            loc = c.compress_latent(y, size, entropy="local")
            out = c.decompress_array(loc)
            q = psnr(img, out)
            rows.append({"image": p.name, "quality": c.quality, "psnr": q, "bpp_global": 8 * len(g) / (H * W),
                         "bpp_local": 8 * len(loc) / (H * W),
                         **{f"bpp_{peer}": bpp_at_psnr(curves[peer], q) for peer in peers}})
    print(f"{len(paths)} images ({args.folder or args.split}), model {codecs[0].model_id}; peers at the same PSNR: "
          f"{', '.join(peers)}{'' if 'avif' in peers else ' (this Pillow writes no AVIF)'}")
    parts = {"all images": [p.name for p in paths], **{f"{k} half": v for k, v in
                                                      halves([p.name for p in paths]).items()}}
    for name, members in parts.items():
        keep = set(members)
        print()
        print(f"{name} ({len(members)})")
        print()
        print("\n".join(_table([r for r in rows if r["image"] in keep], n_q, peers)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
