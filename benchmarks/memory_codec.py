"""Peak memory and time of the transforms, whole-image against tiled (ldem.tiling).

    python benchmarks/memory_codec.py [--tiles 256 512 768 1024] [--quality 8] [--skip-whole]
                                      [--size 4000x3000] [--blank 2048]

Each case runs in a fresh subprocess and reports the process's peak resident set size
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``, whole process: Python, torch, the model
file and the image included) and the wall time of the transform alone. The inputs are
a 4000×3000 "photo" (the bundled sample mirrored and tiled up, so it has natural edges
and texture everywhere) and a blank 2048×2048 image, with the transforms of ``--quality``
(default: the highest quality with learned transforms, whose set has N=128, M=192;
qualities served by the block transform of ``ldem.block_transform`` are refused: that
transform runs in strips of 256 pixel rows, so its memory grows with the width). Cases:

* ``baseline``: imports, model and input loaded, no transform (the floor);
* ``analysis-whole`` / ``synthesis-whole``: what ImageCodec.latent / decompress_array do
  today (pad_to_16 + net.analysis; net.synthesis + uint8 conversion) on the whole image;
* ``analysis-T`` / ``synthesis-T``: ldem.tiling with tile T;
* ``compress-T`` / ``decompress-T``: the whole codec with tiled transforms (image to
  ``.ldem`` bytes with the local entropy mode, and back), as ImageCodec runs once wired.

The synthesis cases decode the latent that the tiled analysis produced (rounded), saved
once by the parent. Prints a markdown table, and the agreement of the tiled results with
the whole-image ones when both ran.

Measured on a shared 2-core x86-64 machine (2 torch threads, torch 2.13 CPU), quality 12
of the previous model file (the same N=128, M=192 transforms as quality 8 of this one); peak RSS of the whole process in MB (314 MB with nothing run, 419 MB for
the blank image's run), wall and CPU seconds of the stage (other work ran on the machine
at the same time, so single timings are noisy; see the best-of-2 timings below):

=====================  ==============  =========  =================  =========
case                   4000×3000 RSS   wall/CPU   blank 2048² RSS    wall/CPU
=====================  ==============  =========  =================  =========
analysis, whole image  6336            27.2/29.4  2397               3.8/7.0
analysis, tile 256     591             9.6/18.3   442                3.8/7.4
analysis, tile 384     656             8.6/16.5   482                3.3/6.4
analysis, tile 512     736             (busy)     528                3.9/7.6
analysis, tile 768     907             15.6/21.1  698                3.9/7.4
analysis, tile 1024    1104            20.4/20.4  907                3.8/7.3
synthesis, whole       6270            22.4/42.6  2375               5.4/10.3
synthesis, tile 256    407             12.1/23.8  419                4.1/8.1
synthesis, tile 384    468             10.3/20.3  425                4.3/8.5
synthesis, tile 512    524             19.0/26.7  533                5.3/10.4
synthesis, tile 768    697             12.7/24.6  832                4.9/9.4
synthesis, tile 1024   1159            13.3/25.7  909                5.2/10.1
compress, tile 512     822             9.8/18.5   541                4.4/8.4
decompress, tile 512   827             12.8/25.2  541                5.2/10.3
compress, tile 1024    1266            10.7/20.1  908                3.9/7.2
decompress, tile 1024  1196            13.9/27.1  927                5.2/10.1
=====================  ==============  =========  =================  =========

(compress: image to ``.ldem`` bytes, local entropy mode; decompress: bytes to pixels.
Peak RSS of the codec cases varies by about ±100 MB between runs.) Best of 2 in one
process, 4000×3000, wall/CPU seconds:

==========  ==========  ==========  ==========  ==========  ==========
tile        256         384         512         640         768
==========  ==========  ==========  ==========  ==========  ==========
analysis    6.7/13.3    8.0/15.8    8.1/16.1    8.9/17.5    9.4/18.5
synthesis   10.5/20.9   11.2/22.1   11.1/22.0   12.8/25.1   13.0/25.5
==========  ==========  ==========  ==========  ==========  ==========

Tiled results against whole-image ones, 4000×3000: the tiled latent (tile 512) equals the
whole-image latent exactly (max |Δ| 0; blank: 7.6e-6, rounded latents all equal); tiled
pixels are identical to the whole-image pixels for tiles 384 and 512 and differ by 1 on
5.8e-7 (tile 256), 1.0e-5 (768) and 4.9e-6 (1024) of the values; blank: identical.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np


def _photo(H: int, W: int) -> np.ndarray:
    """The bundled sample, mirrored alternately and tiled to H×W."""
    from PIL import Image
    import ldem
    with Image.open(ldem.sample_image_path()) as im:
        a = np.asarray(im.convert("RGB"))
    block = np.concatenate([np.concatenate([a, a[:, ::-1]], 1), np.concatenate([a[::-1], a[::-1, ::-1]], 1)], 0)
    reps = (-(-H // block.shape[0]), -(-W // block.shape[1]), 1)
    return np.ascontiguousarray(np.tile(block, reps)[:H, :W])


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kilobytes


def _cpu_s() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def _child(args) -> dict:
    import torch
    import ldem
    from ldem.codec import pad_to_16, image_to_array
    from ldem import tiling
    codec = ldem.ImageCodec.pretrained(args.quality)
    net, level = codec.net, codec.level
    case = args.case
    tile = int(case.rsplit("-", 1)[1]) if case.rsplit("-", 1)[-1].isdigit() else None
    img = np.load(args.image) if case.startswith(("analysis", "compress", "baseline")) else None
    lat = np.load(args.latent) if case.startswith("synthesis") else None
    H, W = args.hw
    result = {}
    t0, c0 = time.perf_counter(), _cpu_s()
    if case == "baseline":
        pass
    elif case.startswith("analysis"):
        with torch.inference_mode():
            x = pad_to_16(torch.from_numpy(image_to_array(img))[None])
            if tile is None:
                y = net.analysis(x, level)
            else:
                y = tiling.analysis_tiled(net, x, level, tile=tile)
        result["latent_shape"] = list(y.shape)
        if args.out:
            np.save(args.out, y[0].numpy())
    elif case.startswith("synthesis"):
        if tile is None:
            with torch.inference_mode():
                t = torch.from_numpy(lat.astype(np.float32))[None]
                x = net.synthesis(t, level)[0, :, :H, :W]
                x = torch.nan_to_num(x, nan=0.0).clamp(0, 1).mul(255).round().to(torch.uint8)
            out = np.ascontiguousarray(x.permute(1, 2, 0).numpy())
        else:
            out = tiling.synthesis_tiled(net, lat[None], level, tile=tile, out_hw=(H, W))
        if args.out:
            np.save(args.out, out)
    elif case.startswith("compress"):
        x = image_to_array(img)
        with torch.inference_mode():
            y = tiling.analysis_tiled(net, pad_to_16(torch.from_numpy(x)[None]), level, tile=tile)[0].round()
        del x
        y = y.clamp(-2.0**31, 2.0**31 - 1).to(torch.int64).numpy().astype(np.int32)
        data = codec.compress_latent(y, (H, W), entropy="local")
        result["bytes"] = len(data)
        with open(args.out, "wb") as f:
            f.write(data)
    elif case.startswith("decompress"):
        with open(args.latent, "rb") as f:
            data = f.read()
        t0, c0 = time.perf_counter(), _cpu_s()
        y, (H, W) = codec.decode_latent(data)
        out = tiling.synthesis_tiled(net, y[None], level, tile=tile, out_hw=(H, W))
        result["shape"] = list(out.shape)
    else:
        raise SystemExit(f"unknown case {case}")
    result.update(case=case, seconds=time.perf_counter() - t0, cpu_seconds=_cpu_s() - c0, peak_rss_mb=_rss_mb(),
                  threads=torch.get_num_threads())
    return result


def _run(case, image, latent, hw, quality, out=None) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--case", case, "--image", image, "--latent", latent or "",
           "--hw", str(hw[0]), str(hw[1]), "--quality", str(quality), "--out", out or ""]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode:
        return {"case": case, "error": (p.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tiles", type=int, nargs="+", default=[256, 512, 768, 1024])
    ap.add_argument("--quality", type=int, default=None, help="default: the highest")
    ap.add_argument("--size", default="4000x3000", help="W×H of the photo")
    ap.add_argument("--blank", type=int, default=2048, help="side of the blank image (0: skip)")
    ap.add_argument("--skip-whole", action="store_true", help="skip the whole-image cases")
    ap.add_argument("--no-codec", action="store_true", help="skip the compress/decompress cases")
    # child mode
    ap.add_argument("--case")
    ap.add_argument("--image")
    ap.add_argument("--latent")
    ap.add_argument("--hw", type=int, nargs=2)
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    if args.case:
        if args.quality is None:
            raise SystemExit("--quality is required in child mode")
        print(json.dumps(_child(args)))
        return 0

    import ldem
    n_q = ldem.ImageCodec.pretrained(1).num_qualities
    learned = [q for q in range(1, n_q + 1) if not ldem.ImageCodec.pretrained(q).is_block_transform]
    q = args.quality or learned[-1]  # the largest learned transforms (the block transform runs in strips)
    if q not in learned:
        raise SystemExit(f"quality {q} uses the block transform, whose memory grows with the image's width "
                         f"(ldem.block_transform); this script measures the learned transforms' tiles")
    b = ldem.ImageCodec.pretrained(q).bundle
    t_set, lvl = b.level_of(q)
    cfg = b.configs[t_set]
    print(f"quality {q}: transforms {t_set} (N={cfg['N']}, M={cfg['M']}), level {lvl}; python {sys.version.split()[0]}")
    W, H = (int(v) for v in args.size.lower().split("x"))
    inputs = [(f"photo {W}×{H}", _photo(H, W))]
    if args.blank:
        inputs.append((f"blank {args.blank}×{args.blank}", np.zeros((args.blank, args.blank, 3), np.uint8)))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, img in inputs:
            h, w = img.shape[:2]
            ipath = os.path.join(tmp, "img.npy")
            np.save(ipath, img)
            r = _run("baseline", ipath, None, (h, w), q)
            rows.append((name, r))
            tiles = list(args.tiles)
            # the latent for the synthesis cases: tiled analysis at the first tile size
            lpath = os.path.join(tmp, "lat.npy")
            r = _run(f"analysis-{tiles[0]}", ipath, None, (h, w), q, out=lpath)
            rows.append((name, r))
            lat = np.load(lpath)
            np.save(lpath, np.round(lat).astype(np.int32))
            outs = {}
            for t in tiles[1:]:
                rows.append((name, _run(f"analysis-{t}", ipath, None, (h, w), q)))
            if not args.skip_whole:
                wpath = os.path.join(tmp, "lat_whole.npy")
                r = _run("analysis-whole", ipath, None, (h, w), q, out=wpath)
                rows.append((name, r))
                if "error" not in r:
                    whole = np.load(wpath)
                    d = np.abs(whole - lat)
                    agree = float(np.mean(np.round(whole) == np.round(lat)))
                    print(f"{name}: tiled analysis (tile {tiles[0]}) vs whole: max |Δ| {d.max():.3g}, "
                          f"rounded latents agree on {agree:.8f} of {lat.size} values")
            for t in tiles:
                opath = os.path.join(tmp, f"syn_{t}.npy")
                rows.append((name, _run(f"synthesis-{t}", ipath, lpath, (h, w), q, out=opath)))
                outs[t] = opath
            if not args.skip_whole:
                wpath = os.path.join(tmp, "syn_whole.npy")
                r = _run("synthesis-whole", ipath, lpath, (h, w), q, out=wpath)
                rows.append((name, r))
                if "error" not in r:
                    whole = np.load(wpath).astype(np.int16)
                    for t, p in outs.items():
                        d = np.abs(np.load(p).astype(np.int16) - whole)
                        print(f"{name}: tiled synthesis (tile {t}) vs whole: max |Δ| {d.max()}, "
                              f"identical on {np.mean(d == 0):.8f} of {d.size} values")
            if not args.no_codec:
                for t in tiles:
                    fpath = os.path.join(tmp, f"file_{t}.ldem")
                    rows.append((name, _run(f"compress-{t}", ipath, None, (h, w), q, out=fpath)))
                    rows.append((name, _run(f"decompress-{t}", ipath, fpath, (h, w), q)))
    print()
    print("| image | case | peak RSS (MB) | wall (s) | CPU (s) |")
    print("|---|---|---:|---:|---:|")
    for name, r in rows:
        if "error" in r:
            print(f"| {name} | {r['case']} | failed: {r['error']} | | |")
        else:
            print(f"| {name} | {r['case']} | {r['peak_rss_mb']:.0f} | {r['seconds']:.1f} | {r['cpu_seconds']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
