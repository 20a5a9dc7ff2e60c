"""Local entropy coding speed and rate on 192 x 32 x 48 latents, one thread.

Prints, per latent: local encode MSym/s (selection and clustering included), local
decode MSym/s, raw ``ldem.decode`` MSym/s on the same symbols (global model map), the
ratio local decode / raw decode, and the sizes in each mode.

Latents:
* ``workload-A``: the notes' workload A (i.i.d. Laplace per channel; the global
  models are the exact generating tables, so local has little to win);
* ``regimes``: statistics that change every 16 x 16 region (zeros, small and large
  Laplace), global models fitted on three other seeds;
* ``dct-photo``: the 8 x 8 block DCT latent (JPEG tables, step 1) of a 256 x 384
  crop of each development photo, with global models and a 32-model static
  dictionary fitted on the training photos (needs ``python benchmarks/fetch_data.py fetch``;
  skipped otherwise).

Then the shipped model: the quality-3 latents of the first ``--photos`` development
photos (768 x 512, 192 x 32 x 48 symbols each; needs the data cache and the codec extra),
coded as the previous release did (context-free data, fixed blocks: ``contexts=False,
partitions=False``) and with context families at each effort. Per row: local encode and
decode MSym/s (one thread), and the mean per-image size against the global tables without
contexts (the learned codec's own entropy model).

Usage: python benchmarks/bench_local.py [--repeats N] [--photos N] [--json PATH]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

import ldem
from ldem.testing import synthetic_latent
from ldem_bench.workloads import workload_a


def best_time(fn, repeats):
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def latents():
    y, pmfs, offsets, _ = workload_a()
    yield "workload-A", [y], ldem.Dictionary.from_pmfs(pmfs, offsets), None
    g = ldem.fit_global_models([synthetic_latent("regimes", (192, 32, 48), seed=s) for s in (1, 2, 3)])
    yield "regimes", [synthetic_latent("regimes", (192, 32, 48), seed=0)], g, None
    try:
        from PIL import Image
        from ldem_bench.datasets import split_images as list_images
        from ldem.testing import dct_latent
        train = [dct_latent(Image.open(p).convert("RGB")) for p in list_images("train")]
        dev = [dct_latent(Image.open(p).convert("RGB"))[:, 16:48, 24:72] for p in list_images("dev_photos")]
    except (ImportError, FileNotFoundError) as e:
        print(f"dct-photo: skipped ({e.__class__.__name__}: {str(e).splitlines()[0]})", file=sys.stderr)
        return
    g = ldem.fit_global_models(train)
    static = ldem.learn_dictionary(train, 32, block=(16, 16), global_models=g, progress=False)
    yield "dct-photo", [np.ascontiguousarray(y) for y in dev], g, static


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--json", help="also write the rows to this file")
    ap.add_argument("--photos", type=int, default=6, help="development photos of the shipped-model rows")
    args = ap.parse_args(argv)
    rows = []
    for name, ys, g, static in latents():
        coder = ldem.LocalEntropyCoder(g, static, threads=1)
        enc = dec = raw = 0.0
        sizes = {"global": 0, "static": 0, "local": 0}
        n = 0
        for y in ys:
            data = coder.encode(y)
            assert np.array_equal(coder.decode(data), y)
            for mode in sizes:
                sizes[mode] += len(coder.encode(y, mode=mode))
            C, H, W = y.shape
            models = np.arange(C, dtype=np.int32).reshape(C, 1, 1)
            raw_data = ldem.encode(y, models, g, block=(H, W), threads=1)
            enc += best_time(lambda: coder.encode(y), args.repeats)
            dec += best_time(lambda: coder.decode(data), args.repeats)
            raw += best_time(lambda: ldem.decode(raw_data, models, g, y.shape, block=(H, W), threads=1),
                             args.repeats)
            n += y.size
        rows.append(dict(latent=name, count=len(ys), symbols=n, local_encode_msym_s=n / enc / 1e6,
                         local_decode_msym_s=n / dec / 1e6, raw_decode_msym_s=n / raw / 1e6,
                         decode_ratio=raw / dec, bytes_global=sizes["global"], bytes_static=sizes["static"],
                         bytes_local=sizes["local"],
                         local_vs_global=1 - sizes["local"] / sizes["global"]))
    print(f"ldem {ldem.__version__}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, one thread, best of {args.repeats}")
    print()
    print("| latent | n | local enc MSym/s | local dec MSym/s | raw dec MSym/s | local dec / raw | "
          "global B | static B | local B | local vs global |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['latent']} | {r['count']} | {r['local_encode_msym_s']:.1f} | {r['local_decode_msym_s']:.1f} | "
              f"{r['raw_decode_msym_s']:.1f} | {100 * r['decode_ratio']:.0f} % | {r['bytes_global']} | "
              f"{r['bytes_static']} | {r['bytes_local']} | {-100 * r['local_vs_global']:+.1f} % |")
    shipped = shipped_rows(args)
    if shipped:
        print()
        print(f"Shipped model, quality 3, {shipped[0]['count']} development photos (one thread, best of "
              f"{args.repeats}):")
        print()
        print("| coding | effort | local enc MSym/s | local dec MSym/s | mean size vs global without contexts |")
        print("|---|---|---|---|---|")
        for r in shipped:
            print(f"| {r['coding']} | {r['effort']} | {r['local_encode_msym_s']:.1f} | "
                  f"{r['local_decode_msym_s']:.1f} | {-r['mean_reduction_pct']:+.1f} % |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows + shipped, f, indent=2)


def shipped_rows(args) -> list:
    """The shipped model's coder on development photo latents (empty without the data or torch)."""
    try:
        from ldem_bench.datasets import split_images
        paths = split_images("dev_photos")[: args.photos]
        codec = ldem.ImageCodec.pretrained(3, threads=1)
        from ldem.images import load_rgb
        ys = [codec.latent(load_rgb(p))[0] for p in paths]
    except (ImportError, FileNotFoundError) as e:  # MissingExtraError is an ImportError
        print(f"shipped model rows: skipped ({e.__class__.__name__}: {str(e).splitlines()[0]})", file=sys.stderr)
        return []
    c = codec.coder
    variants = [("previous release (context-free, fixed blocks)",
                 ldem.LocalEntropyCoder(c.global_models, c.static, block_sizes=c.block_sizes,
                                        max_image_models=c.max_image_models, threads=1, partitions=False),
                 dict(contexts=False, effort=2), 2)]
    variants += [("context families", c, dict(effort=e), e) for e in ldem.local.EFFORTS]
    out = []
    for name, coder, kw, effort in variants:
        enc = dec = 0.0
        red = []
        for y in ys:
            data = coder.encode(y, **kw)
            assert np.array_equal(coder.decode(data), y)
            red.append(100 * (1 - len(data) / len(c.encode(y, mode="global", contexts=False))))
            enc += best_time(lambda: coder.encode(y, **kw), args.repeats)
            dec += best_time(lambda: coder.decode(data), args.repeats)
        n = sum(y.size for y in ys)
        out.append(dict(coding=name, effort=effort, count=len(ys), symbols=n, local_encode_msym_s=n / enc / 1e6,
                        local_decode_msym_s=n / dec / 1e6, mean_reduction_pct=float(np.mean(red))))
    return out


if __name__ == "__main__":
    main()
