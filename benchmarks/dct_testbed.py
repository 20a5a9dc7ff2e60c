"""Local entropy models on a real testbed: the 8 x 8 block DCT latent of real images.

Before learned transforms exist, ``ldem.testing.dct_latent`` gives a JPEG-like latent
(YCbCr, JPEG quantization tables times ``--step``, 192 channels at 1/8 resolution).
This script fits the global per-channel models and a static dictionary on the training
photos, then codes the disjoint development sets:

* natural photos: 24 photos at 768 x 512;
* low-complexity images: screenshots, maps, plots, text pages, flat graphics;

and prints static and local against global (mean and per image), the share of side
information, and a grid over block size x static dictionary size x max image models.

Needs the data: ``python benchmarks/fetch_data.py fetch`` (Debian packages, cached).
Usage: python benchmarks/dct_testbed.py [--step S] [--grid] [--json PATH]
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

import ldem
from ldem.testing import dct_latent
from ldem_bench.datasets import split_images


def load(split, step):
    from PIL import Image
    out = []
    for p in split_images(split):
        with Image.open(p) as im:
            out.append((p.name, dct_latent(im.convert("RGB"), step)))
    return out


def code_set(coder, items, modes=("global", "static", "local")):
    rows = []
    for name, y in items:
        row = {"image": name, "symbols": int(y.size)}
        for mode in modes:
            data, stats = coder.encode(y, mode=mode, return_stats=True)
            assert np.array_equal(coder.decode(data), y), (name, mode)
            row[mode] = len(data)
            if mode == "local":
                row["local_mode"] = stats["mode"]
                row["block"] = list(stats["block"])
                row["image_models"] = stats["num_image_models"]
                row["side_bits"] = stats["bits_header"] + stats["bits_tables"] + stats["bits_map"]
                row["map_codec"] = stats["map_codec"]
                row["map_bytes"] = stats.get("map_bytes_by_codec", {})
        rows.append(row)
    return rows


def summary(rows, mode):
    red = [1 - r[mode] / r["global"] for r in rows]
    return 100 * float(np.mean(red)), 100 * min(red), 100 * max(red)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--step", type=float, default=1.0, help="JPEG table multiplier (1.0 ~ quality 50)")
    ap.add_argument("--static-models", type=int, default=32)
    ap.add_argument("--grid", action="store_true", help="also sweep block size x dictionary x image models")
    ap.add_argument("--json", help="write all rows to this file")
    args = ap.parse_args(argv)

    t0 = time.time()
    train = [y for _, y in load("train", args.step)]
    photos = load("dev_photos", args.step)
    simple = load("dev_simple", args.step)
    print(f"{len(train)} training photos, {len(photos)} development photos, {len(simple)} "
          f"low-complexity images, step {args.step} ({time.time() - t0:.0f} s to load)", file=sys.stderr)
    g = ldem.fit_global_models(train)
    t0 = time.time()
    static = ldem.learn_dictionary(train, args.static_models, block=(16, 16), global_models=g, progress=False)
    print(f"static dictionary: {static.num_models} models in {time.time() - t0:.1f} s", file=sys.stderr)
    coder = ldem.LocalEntropyCoder(g, static)

    report = {"step": args.step, "static_models": static.num_models, "sets": {}}
    for set_name, items in (("photos", photos), ("simple", simple)):
        rows = code_set(coder, items)
        report["sets"][set_name] = rows
        print(f"\n### {set_name}: {len(rows)} images, step {args.step}\n")
        print("| image | global B | static | local | block | image models | side info |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['image'][:40]} | {r['global']} | {100 * (r['static'] / r['global'] - 1):+.1f} % | "
                  f"{100 * (r['local'] / r['global'] - 1):+.1f} % | {r['block'][0]}x{r['block'][1]} | "
                  f"{r['image_models']} | {100 * r['side_bits'] / (8 * r['local']):.1f} % |")
        for mode in ("static", "local"):
            mean, lo, hi = summary(rows, mode)
            print(f"\n{mode} vs global: mean reduction {mean:.1f} % (per image {lo:.1f} % to {hi:.1f} %)")
        side = sum(r["side_bits"] for r in rows) / sum(8 * r["local"] for r in rows)
        print(f"side information: {100 * side:.1f} % of the local streams")
        coded = [r for r in rows if r["map_bytes"]]
        if coded:
            wins = sum(r["map_codec"] == "rans" for r in coded)
            tot = {k: sum(r["map_bytes"].get(k, 0) for r in coded) for k in ("rans", "deflate")}
            print(f"block map: rANS won on {wins} of {len(coded)} images; total map bytes "
                  f"rANS {tot['rans']:.0f}, DEFLATE {tot['deflate']:.0f}")

    if args.grid:
        print("\n### grid: local vs global, mean reduction (photos / low-complexity)\n")
        print("| block | static models | max image models | photos | low-complexity |")
        print("|---|---|---|---|---|")
        grid = []
        dicts = {0: None}
        for k in (8, 64):
            dicts[k] = ldem.learn_dictionary(train, k, block=(16, 16), global_models=g, progress=False)
        dicts[static.num_models] = static
        for block in (8, 16, 32):
            for k in sorted(dicts):
                for m in (0, 4, 16):
                    c = ldem.LocalEntropyCoder(g, dicts[k], block_sizes=[(block, block)], max_image_models=m)
                    res = []
                    for items in (photos, simple):
                        rows = code_set(c, items, modes=("global", "local"))
                        res.append(summary(rows, "local")[0])
                    grid.append(dict(block=block, static_models=k, max_image_models=m, photos=res[0],
                                     simple=res[1]))
                    print(f"| {block}x{block} | {k} | {m} | {res[0]:.1f} % | {res[1]:.1f} % |")
        report["grid"] = grid
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
