"""CompressAI's own entropy coding against ldem's (``ldem.compressai.patch``), same run.

For ``bmshj2018-factorized``, ``bmshj2018-hyperprior`` and ``mbt2018-mean`` (quality 3,
``pretrained=False``, seeded, ``.eval()``, ``.update()``), on one 768x512 photo and on a
batch of 8 different 768x512 photos (the development photos, or crops of the bundled sample
image when the data cache is absent), this prints:

* entropy coding: the time of the models' ``EntropyBottleneck`` and ``GaussianConditional``
  ``compress``/``decompress`` on latents computed once (``g_a``, ``h_a``, ``h_s`` are not
  timed), with CompressAI's coder and with ldem's (the same modules after
  ``ldem.compressai.patch`` on a deep copy), one thread each (``torch.set_num_threads(1)``,
  ldem ``threads=1``), and ldem with all threads;
* the whole ``model.compress``/``model.decompress`` (one torch thread, ldem ``threads=1``);
* the bytes of CompressAI's strings, of ldem's and of ldem's with ``local=True`` (local
  entropy models on the ``EntropyBottleneck`` latent: the factorized prior's ``y``, the
  hyperpriors' ``z``).

It asserts that the decoded latents and the reconstructions are identical. Times are the
best of ``--repeats``. With ``--train-steps N`` (default 1000: about 4 minutes on 2 idle
cores, several times longer on busy ones) the factorized model is first trained for N
steps (Adam, rate-distortion loss with lambda 0.01, batches of 4 random 128x128 crops of the
training photos, or of the sample image), so that its latents look like a real codec's.

Needs CompressAI (see ``ldem_bench.compressai_env``) and, for the photos,
``python benchmarks/fetch_data.py fetch``.

Usage: python benchmarks/bench_compressai.py [--repeats N] [--train-steps N] [--json PATH]
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

import ldem
import ldem.compressai
from ldem_bench.compressai_env import import_compressai

MODELS = ("bmshj2018-factorized", "bmshj2018-hyperprior", "mbt2018-mean")
QUALITY = 3
WIDTH, HEIGHT = 768, 512
BATCH = 8


# --------------------------------------------------------------------------------------------
# images


def _to_tensor(image):
    """PIL RGB image -> float tensor [3, H, W] in [0, 1]."""
    return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)


def photos(n):
    """``n`` different 768x512 images [n, 3, 512, 768] and where they came from."""
    from PIL import Image

    try:
        from ldem_bench.datasets import split_images

        paths = split_images("dev_photos")[:n]
    except FileNotFoundError:
        paths = []
    if len(paths) == n:
        images = []
        for p in paths:
            im = Image.open(p).convert("RGB")
            if im.size != (WIDTH, HEIGHT):
                im = im.resize((WIDTH, HEIGHT), Image.LANCZOS)
            images.append(_to_tensor(im))
        return torch.stack(images), f"development photos ({', '.join(p.name for p in paths[:2])}, ...)"
    # The sample image: resized for one image; 8 crops at different offsets of it at 1.5x for a batch.
    sample = Image.open(ldem.sample_image_path()).convert("RGB")
    if n == 1:
        crops = [_to_tensor(sample.resize((WIDTH, HEIGHT), Image.LANCZOS))]
    else:
        full = _to_tensor(sample.resize((WIDTH * 3 // 2, HEIGHT * 3 // 2), Image.LANCZOS))
        xs = np.linspace(0, WIDTH // 2, n).astype(int)
        ys = np.linspace(HEIGHT // 2, 0, n).astype(int)
        crops = [full[:, y:y + HEIGHT, x:x + WIDTH] for x, y in zip(xs, ys)]
    return torch.stack(crops), "the bundled sample image (resized; crops for the batch)"


def training_images():
    """uint8 tensors [3, H, W] of the training photos, or of the sample image."""
    from PIL import Image

    try:
        from ldem_bench.datasets import split_images

        paths = split_images("train")
    except FileNotFoundError:
        paths = [ldem.sample_image_path()]
    return [torch.from_numpy(np.array(Image.open(p).convert("RGB"))).permute(2, 0, 1).contiguous() for p in paths]


# --------------------------------------------------------------------------------------------
# training


def train_factorized(model, steps, *, lmbda=0.01, batch=4, crop=128, seed=0):
    """Trains ``model`` in place for ``steps`` Adam steps; returns a summary dict."""
    images = training_images()
    gen = torch.Generator().manual_seed(seed)
    main = [p for n, p in model.named_parameters() if not n.endswith(".quantiles")]
    aux = [p for n, p in model.named_parameters() if n.endswith(".quantiles")]
    opt = torch.optim.Adam(main, lr=5e-4)
    aux_opt = torch.optim.Adam(aux, lr=1e-2)
    model.train()
    t0 = time.perf_counter()
    for step in range(steps):
        picks = torch.randint(len(images), (batch,), generator=gen).tolist()
        xs = []
        for i in picks:
            im = images[i]
            y = int(torch.randint(im.shape[1] - crop + 1, (1,), generator=gen))
            x = int(torch.randint(im.shape[2] - crop + 1, (1,), generator=gen))
            xs.append(im[:, y:y + crop, x:x + crop])
        x = torch.stack(xs).float() / 255.0
        out = model(x)
        bpp = sum(torch.log(v).sum() for v in out["likelihoods"].values()) / (-math.log(2) * batch * crop * crop)
        mse = F.mse_loss(out["x_hat"], x)
        loss = lmbda * 255**2 * mse + bpp
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(main, 1.0)
        opt.step()
        aux_loss = model.aux_loss()
        aux_opt.zero_grad()
        aux_loss.backward()
        aux_opt.step()
        if (step + 1) % 50 == 0 or step + 1 == steps:
            print(f"  step {step + 1}/{steps}: loss {loss.item():.3f}, bpp {bpp.item():.3f}, "
                  f"PSNR {-10 * math.log10(max(mse.item(), 1e-10)):.2f} dB", file=sys.stderr)
    model.eval()
    return {"steps": steps, "lambda": lmbda, "seconds": time.perf_counter() - t0,
            "final_bpp": bpp.item(), "final_psnr_db": -10 * math.log10(max(mse.item(), 1e-10))}


# --------------------------------------------------------------------------------------------
# coding


def latents(model, x):
    """What the entropy models code for input ``x``, computed once with CompressAI's coder."""
    from compressai.models import MeanScaleHyperprior, ScaleHyperprior

    y = model.g_a(x)
    if not isinstance(model, ScaleHyperprior):
        return {"eb": y, "gc": None}
    mean = isinstance(model, MeanScaleHyperprior)
    z = model.h_a(y if mean else torch.abs(y))
    eb = model.entropy_bottleneck
    z_hat = eb.decompress(eb.compress(z), z.shape[-2:])
    params = model.h_s(z_hat)
    scales, means = params.chunk(2, 1) if mean else (params, None)
    return {"eb": z, "gc": (y, model.gaussian_conditional.build_indexes(scales), means)}


def encode(model, lat):
    """The strings of the entropy modules of ``model`` for the latents ``lat``."""
    strings = {"eb": model.entropy_bottleneck.compress(lat["eb"])}
    if lat["gc"] is not None:
        y, indexes, means = lat["gc"]
        strings["gc"] = model.gaussian_conditional.compress(y, indexes, means=means)
    return strings


def decode(model, lat, strings):
    """The decoded latents of ``strings`` (the inverse of :func:`encode`)."""
    out = [model.entropy_bottleneck.decompress(strings["eb"], lat["eb"].shape[-2:])]
    if lat["gc"] is not None:
        _, indexes, means = lat["gc"]
        out.append(model.gaussian_conditional.decompress(strings["gc"], indexes, means=means))
    return out


def nbytes(strings):
    """Total bytes of all strings of :func:`encode`."""
    return sum(len(s) for part in strings.values() for s in part)


def best(fn, repeats, warmup=True):
    """``(best seconds over repeats calls of fn, the last result)``; one untimed call first if ``warmup``."""
    if warmup:
        fn()
    t_best, result = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        result = fn()
        t_best = min(t_best, time.perf_counter() - t)
    return t_best, result


def bench_model(name, model, x, repeats):
    """One result row: CompressAI's coder against ldem's on ``model`` and the images ``x``."""
    one = ldem.compressai.patch(copy.deepcopy(model), threads=1)
    every = ldem.compressai.patch(copy.deepcopy(model), threads=None)
    local = ldem.compressai.patch(copy.deepcopy(model), local=True, threads=1)
    row = {"model": name, "images": x.shape[0]}
    with torch.no_grad():
        lat = latents(model, x)
        row["symbols"] = sum(int(t.numel()) for t in [lat["eb"]] + ([lat["gc"][0]] if lat["gc"] else []))
        t_enc_cai, s_cai = best(lambda: encode(model, lat), repeats)
        t_enc_one, s_one = best(lambda: encode(one, lat), repeats)
        t_enc_all, s_all = best(lambda: encode(every, lat), repeats)
        s_local = encode(local, lat)
        t_dec_cai, d_cai = best(lambda: decode(model, lat, s_cai), repeats)
        t_dec_one, d_one = best(lambda: decode(one, lat, s_one), repeats)
        t_dec_all, d_all = best(lambda: decode(every, lat, s_all), repeats)
        d_local = decode(local, lat, s_local)
        for d in (d_one, d_all, d_local):
            assert all(torch.equal(a, b) for a, b in zip(d_cai, d)), f"{name}: decoded latents differ"
        assert s_one["eb"] != s_cai["eb"], f"{name}: the patched model still writes CompressAI's strings"

        t_comp_cai, c_cai = best(lambda: model.compress(x), repeats, warmup=False)
        t_comp_one, c_one = best(lambda: one.compress(x), repeats, warmup=False)
        t_decomp_cai, r_cai = best(lambda: model.decompress(c_cai["strings"], c_cai["shape"]), repeats, warmup=False)
        t_decomp_one, r_one = best(lambda: one.decompress(c_one["strings"], c_one["shape"]), repeats, warmup=False)
        c_local = local.compress(x)
        r_local = local.decompress(c_local["strings"], c_local["shape"])
        assert torch.equal(r_cai["x_hat"], r_one["x_hat"]), f"{name}: reconstructions differ"
        assert torch.equal(r_cai["x_hat"], r_local["x_hat"]), f"{name}: local=True reconstructions differ"
    row.update(
        enc_compressai_s=t_enc_cai, enc_ldem_s=t_enc_one, enc_ldem_all_threads_s=t_enc_all,
        dec_compressai_s=t_dec_cai, dec_ldem_s=t_dec_one, dec_ldem_all_threads_s=t_dec_all,
        compress_compressai_s=t_comp_cai, compress_ldem_s=t_comp_one,
        decompress_compressai_s=t_decomp_cai, decompress_ldem_s=t_decomp_one,
        bytes_compressai=nbytes(s_cai), bytes_ldem=nbytes(s_one), bytes_ldem_local=nbytes(s_local),
        eb_bytes_compressai=sum(map(len, s_cai["eb"])), eb_bytes_ldem=sum(map(len, s_one["eb"])),
        eb_bytes_ldem_local=sum(map(len, s_local["eb"])),
    )
    return row


# --------------------------------------------------------------------------------------------
# report


def markdown(rows, threads):
    ms = lambda s: f"{s * 1e3:.1f}"
    lines = [
        "Entropy coding only (the modules' compress/decompress), ms, one thread; "
        f"ldem also with all {threads} threads:",
        "",
        "| model | images | symbols | encode CompressAI | encode ldem | × | ldem all | "
        "decode CompressAI | decode ldem | × | ldem all |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['images']} | {r['symbols']:,} | {ms(r['enc_compressai_s'])} | "
            f"{ms(r['enc_ldem_s'])} | {r['enc_compressai_s'] / r['enc_ldem_s']:.1f} | {ms(r['enc_ldem_all_threads_s'])} | "
            f"{ms(r['dec_compressai_s'])} | {ms(r['dec_ldem_s'])} | {r['dec_compressai_s'] / r['dec_ldem_s']:.1f} | "
            f"{ms(r['dec_ldem_all_threads_s'])} |")
    lines += [
        "",
        "Whole model.compress / model.decompress (s, one thread) and bytes "
        "(local: ldem's local entropy models on the EntropyBottleneck latent):",
        "",
        "| model | images | compress CompressAI | compress ldem | decompress CompressAI | decompress ldem | "
        "bytes CompressAI | bytes ldem | Δ | bytes ldem local | EB latent: CompressAI → local |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        delta = 100 * (r["bytes_ldem"] / r["bytes_compressai"] - 1)
        lines.append(
            f"| {r['model']} | {r['images']} | {r['compress_compressai_s']:.2f} | {r['compress_ldem_s']:.2f} | "
            f"{r['decompress_compressai_s']:.2f} | {r['decompress_ldem_s']:.2f} | {r['bytes_compressai']:,} | "
            f"{r['bytes_ldem']:,} | {delta:+.2f} % | {r['bytes_ldem_local']:,} | "
            f"{r['eb_bytes_compressai']:,} → {r['eb_bytes_ldem_local']:,} |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3, help="best of N timed calls (default 3)")
    ap.add_argument("--train-steps", type=int, default=1000,
                    help="train the factorized model this many steps first (default 1000; 0: untrained)")
    ap.add_argument("--json", help="also write the results to this JSON file")
    args = ap.parse_args(argv)
    if args.repeats < 1 or args.train_steps < 0:
        ap.error("--repeats must be >= 1 and --train-steps >= 0")

    compressai = import_compressai()
    from compressai.zoo import image_models

    threads = os.cpu_count() or 1
    single, source = photos(1)
    batch, _ = photos(BATCH)
    print(f"images: {source}; {WIDTH}x{HEIGHT}, 1 and a batch of {BATCH}", file=sys.stderr)

    rows, training = [], None
    for name in MODELS:
        torch.manual_seed(0)
        model = image_models[name](quality=QUALITY, pretrained=False)
        label = name
        if name == "bmshj2018-factorized" and args.train_steps:
            torch.set_num_threads(threads)
            print(f"training {name} for {args.train_steps} steps", file=sys.stderr)
            training = train_factorized(model, args.train_steps)
            label = f"{name} (trained {args.train_steps} steps)"
        model.eval()
        model.update(force=True)
        torch.set_num_threads(1)
        for x in (single, batch):
            print(f"{label}: {x.shape[0]} image(s)", file=sys.stderr)
            rows.append(bench_model(label, model, x, args.repeats))

    print(markdown(rows, threads))
    print()
    for r in rows:
        print(f"{r['model']}, {r['images']} image(s): ldem vs CompressAI, one thread: "
              f"encode {r['enc_compressai_s'] / r['enc_ldem_s']:.1f}x, decode {r['dec_compressai_s'] / r['dec_ldem_s']:.1f}x")
    if args.json:
        meta = {"platform": platform.platform(), "cpu_count": threads, "python": platform.python_version(),
                "torch": torch.__version__, "compressai": compressai.__version__, "ldem": ldem.__version__,
                "quality": QUALITY, "size": [WIDTH, HEIGHT], "images": source, "repeats": args.repeats,
                "training": training}
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
