"""Per-quality rate reduction of local entropy models, from `ldem eval` results.

    python benchmarks/local_rate_table.py benchmarks/results/rd/dev_photos benchmarks/results/rd/dev_simple

For each results folder and quality: the mean per-image reduction of ``ldem-local``
against ``ldem-plain`` (the global tables without contexts: the learned codec's own
entropy model, the baseline of the paper) and against ``ldem-global`` (ldem's own global
mode, context-coded), over all images and separately over the two halves of the images
sorted by name: the *tuning* half (even positions), on which ldem's encoder choices were
measured, and the *held-out* half (odd positions), on which no choice was made.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ldem.eval_results import halves as split_halves
from ldem.eval_results import read_rows


def reductions(rows, baseline: str) -> dict:
    """{(image, quality): 100 * (1 - local / baseline)}."""
    by = {}
    for r in rows:
        by.setdefault((r["image"], r["setting"]), {})[r["codec"]] = r["bytes"]
    return {k: 100.0 * (1 - v["ldem-local"] / v[baseline]) for k, v in by.items()
            if "ldem-local" in v and baseline in v}


def table(folder: Path) -> list[dict]:
    rows = read_rows(folder)
    plain, ctx = reductions(rows, "ldem-plain"), reductions(rows, "ldem-global")
    bpp = {}
    for r in rows:
        bpp.setdefault((r["codec"], r["setting"]), []).append(r["bpp"])
    images = sorted({k[0] for k in plain})
    halves = {"all": set(images), **{k: set(v) for k, v in split_halves(images).items()}}
    out = []
    for q in sorted({k[1] for k in plain}):
        row = {"quality": q}
        for name, members in halves.items():
            row[name] = float(np.mean([v for (i, qq), v in plain.items() if qq == q and i in members]))
        row["vs_context_global"] = float(np.mean([v for (i, qq), v in ctx.items() if qq == q]))
        row["min"] = float(min(v for (i, qq), v in plain.items() if qq == q))
        row["bpp_plain"] = float(np.mean(bpp[("ldem-plain", q)]))
        row["bpp_local"] = float(np.mean(bpp[("ldem-local", q)]))
        out.append(row)
    mean = {k: float(np.mean([r[k] for r in out])) for k in out[0] if k != "quality"}
    out.append({"quality": "mean", **mean})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folders", nargs="+", type=Path, help="ldem eval output folders")
    args = ap.parse_args(argv)
    for folder in args.folders:
        rows = table(folder)
        n = len({r["image"] for r in read_rows(folder)})
        print(f"\n{folder.name} ({n} images): local vs global without contexts, mean per image, %")
        print("| quality | bpp global (no contexts) | bpp local | all | tuning half | held-out half | smallest | "
              "local vs context-coded global |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r['quality']} | {r['bpp_plain']:.4f} | {r['bpp_local']:.4f} | {r['all']:.1f} | "
                  f"{r['tuning']:.1f} | {r['held-out']:.1f} | {r['min']:.1f} | {r['vs_context_global']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
