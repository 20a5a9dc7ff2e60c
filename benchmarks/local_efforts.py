"""Rate of local entropy models at every effort level on the development sets.

    python benchmarks/local_efforts.py [--qualities 1 2 ...] [--limit N]

For each set and quality: the mean per-image reduction of local coding at efforts 0-3
against the shipped codec's global tables without contexts, over all images and over the
tuning (even positions by name) and held-out (odd positions) halves; then the mean over
qualities per effort. Needs the data cache (``python benchmarks/fetch_data.py fetch``)
and the codec extra. Latents are computed once per image and quality.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np


def main(argv=None) -> int:
    import ldem
    from ldem.images import load_rgb
    from ldem_bench.datasets import split_images
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--qualities", type=int, nargs="+", default=list(range(1, 13)))
    ap.add_argument("--limit", type=int, help="only the first N images of each set")
    args = ap.parse_args(argv)
    efforts = ldem.local.EFFORTS
    for split in ("dev_photos", "dev_simple"):
        paths = split_images(split)[: args.limit]
        images = [load_rgb(p) for p in paths]
        table = {}
        for q in args.qualities:
            codec = ldem.ImageCodec.pretrained(q)
            red = {e: [] for e in efforts}
            for img in images:
                y, _ = codec.latent(img)
                plain = len(codec.coder.encode(y, mode="global", contexts=False))
                for e in efforts:
                    red[e].append(100 * (1 - len(codec.coder.encode(y, effort=e)) / plain))
            table[q] = {e: np.array(v) for e, v in red.items()}
            print(f"{split} q{q}: " + "  ".join(f"effort {e} {v.mean():.1f} % (tuning {v[0::2].mean():.1f}, "
                                                f"held-out {v[1::2].mean():.1f})" for e, v in table[q].items()),
                  flush=True)
        for e in efforts:
            means = [table[q][e].mean() for q in args.qualities]
            print(f"{split} effort {e}: mean over qualities {np.mean(means):.1f} % (tuning "
                  f"{np.mean([table[q][e][0::2].mean() for q in args.qualities]):.1f}, held-out "
                  f"{np.mean([table[q][e][1::2].mean() for q in args.qualities]):.1f}), lowest quality "
                  f"{min(means):.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
