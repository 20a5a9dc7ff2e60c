"""Image codec timing on the CPU: a 768×512 image, split into transform and entropy coding.

    python benchmarks/bench_codec.py [--image PATH] [--quality 3] [--repeats 5] [--threads N]

Without ``--image`` it takes the first development photo of the data cache
(``python benchmarks/fetch_data.py fetch``) or, if there is none, the bundled sample tiled to
768×512. For each entropy mode it prints the best-of-``repeats`` time of each stage and
the share of entropy coding in the total, as a markdown table; then local coding at the
other effort levels and as the previous release coded it (context-free, fixed blocks).
"""
from __future__ import annotations

import argparse
import platform
import time

import numpy as np


def _image(path):
    from PIL import Image
    import ldem
    if path is None:
        try:
            from ldem_bench import datasets
            photos = datasets.split_images("dev_photos")
            path = photos[0] if photos else None
        except (FileNotFoundError, OSError, ValueError):
            path = None
    if path is None:
        with Image.open(ldem.sample_image_path()) as im:
            a = np.asarray(im.convert("RGB"))
        return "bundled sample tiled", np.ascontiguousarray(np.tile(a, (2, 2, 1))[:512, :768])
    with Image.open(path) as im:
        return str(path).rsplit("/", 1)[-1], np.asarray(im.convert("RGB"))


def _best(fn, repeats):
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--image")
    ap.add_argument("--quality", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = ap.parse_args(argv)
    import torch
    import ldem
    if args.threads:
        torch.set_num_threads(args.threads)
    name, img = _image(args.image)
    H, W = img.shape[:2]
    codec = ldem.ImageCodec.pretrained(args.quality)
    net = codec.net
    print(f"{name} {W}×{H}, quality {args.quality}, torch {torch.__version__} with {torch.get_num_threads()} "
          f"threads, {platform.processor() or platform.machine()}, best of {args.repeats}")
    print()
    print("| entropy | bpp | analysis ms | entropy encode ms | synthesis ms | entropy decode ms "
          "| entropy share of compress | of decompress |")
    print("|---|---|---|---|---|---|---|---|")
    t_an, (y, _) = _best(lambda: codec.latent(img), args.repeats)

    def synthesis():
        if codec.is_block_transform:  # numpy, in strips
            return net.synthesis(y, codec.level, (H, W))
        with torch.inference_mode():
            return net.synthesis(torch.from_numpy(y.astype(np.float32))[None], codec.level)

    t_syn, _ = _best(synthesis, args.repeats)
    c = codec.coder
    previous = ldem.LocalEntropyCoder(c.global_models, c.static, block_sizes=c.block_sizes,
                                      max_image_models=c.max_image_models, threads=c.threads, partitions=False,
                                      effort=2)  # its search: every block size, up to 32 image models
    rows = [(mode, c, dict(mode=mode)) for mode in ("global", "static", "local")]
    rows += [(f"local, effort {e}", c, dict(effort=e)) for e in ldem.local.EFFORTS if e != c.effort]
    rows += [("local as the previous release (no contexts, fixed blocks)", previous, dict(contexts=False))]
    from ldem.container import make_header
    head = len(make_header(codec.bundle.model_id, codec.quality, W, H))
    for label, coder, kw in rows:
        t_enc, stream = _best(lambda: coder.encode(y, **kw), args.repeats)
        t_dec, y2 = _best(lambda: coder.decode(stream), args.repeats)
        assert np.array_equal(y, y2)
        bpp = 8 * (len(stream) + head) / (H * W)  # with the .ldem header
        print(f"| {label} | {bpp:.4f} | {1e3 * t_an:.1f} | {1e3 * t_enc:.1f} | {1e3 * t_syn:.1f} | {1e3 * t_dec:.1f} "
              f"| {100 * t_enc / (t_an + t_enc):.1f} % | {100 * t_dec / (t_syn + t_dec):.1f} % |")
    data = codec.compress(img)
    assert np.array_equal(codec.decode_latent(data)[0], y)
    print(f"\nglobal, static and local at the default effort ({c.effort}); bpp with the {head}-byte .ldem header")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
