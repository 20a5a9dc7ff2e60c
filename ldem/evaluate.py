"""Rate–distortion evaluation over a folder of images: ``ldem eval``.

For every image, every ldem quality and every entropy mode (``global``, ``static``,
``local``) it measures the file size (bits per pixel), PSNR and MS-SSIM; and the same for
the reference codecs of :mod:`ldem.reference` (JPEG 4:2:0 and 4:4:4, WebP, AVIF) at a
sweep of quality settings. It writes into the output folder:

``results.csv``
    one row per image × codec × setting (:data:`CSV_COLUMNS`). ``codec`` is
    ``ldem-global``, ``ldem-static``, ``ldem-local``, ``ldem-plain`` (the global tables
    without contexts: the learned codec's own entropy model), ``jpeg-420``, ``jpeg-444``,
    ``webp`` or ``avif``; ``setting`` the ldem quality or the reference's quality
    setting. ldem rows also give the mode the encoder kept (``mode_used``: local falls
    back to global when that is smaller), the block size in latent samples, the number
    of image models, the bits of header, image tables, block map and data, and
    ``side_share`` = (tables + map) / file bits;
``summary.json``
    mean curves, BD-rates of ``ldem-local`` against the other codecs, the rate reduction
    of the local entropy models against the global ones, and how every number was made;
``block_maps.npz``
    the block→model map chosen for each local stream;
``rd_psnr.png``, ``rd_msssim.png``, ``rate_reduction.png``, ``block_maps.png``
    the pictures (:func:`make_figures` remakes them from the files above).

Conventions:

* **bpp** counts every byte of the file, container headers included (the ``.ldem``
  header; JFIF, RIFF or HEIF boxes for the references).
* **PSNR** is over the three RGB channels, peak 255 (:func:`ldem.metrics.psnr`).
* **MS-SSIM** is :func:`pytorch_msssim.ms_ssim` on the RGB image (float32, data range
  255, the mean over the three channels), with its five scales when the shorter side is
  more than 160 pixels. Smaller images use the most scales that fit (side > 10·2^(k−1)
  for k scales) with the first k standard weights rescaled to sum to one
  (:func:`ms_ssim`); the number of scales is in the ``msssim_scales`` column. Images
  under 11 pixels on a side get NaN. For curves and BD-rates MS-SSIM is expressed in dB:
  −10·log10(1 − MS-SSIM) (:func:`msssim_db`).
* **Mean curves** average, for each codec and setting, the bpp and the metric over the
  images (PSNR in dB, capped at 100 dB for lossless images; MS-SSIM linearly, then in
  dB). BD-rates compare these mean curves, one number per codec pair and metric.
* **BD-rate** (:func:`bd_rate`) is the Bjøntegaard delta rate in percent of the test
  codec against the anchor: negative means fewer bits for the same quality. Log-rate is
  interpolated as a function of quality with monotone piecewise-cubic Hermite
  interpolation (PCHIP, the JCT-VC/JVET common-test-conditions variant) or, as an
  option, with the classic cubic polynomial fit of VCEG-M33, and integrated over the
  quality interval both curves cover.
* **Rate reduction** of local against global is ``100·(1 − bytes_local/bytes_global)``
  for one image at one quality; the decoded pixels are identical (checked on the
  decoded latents), so this is a saving at exactly equal distortion. The **side
  information share** is (bits of the image's own tables + bits of the block map) /
  bits of the local file.

The results files and their summaries (:data:`CSV_COLUMNS`, :func:`read_rows`,
:func:`mean_curves`, :func:`bd_rates`, :func:`local_vs_global`) live in
:mod:`ldem.eval_results`, the pictures in :mod:`ldem.eval_figures`; this module runs the
codecs (:func:`evaluate_folder`) and holds the command line (:func:`main`). It re-exports
the names of both.

Example::

    ldem eval photos/ --qualities 1 3 5 --out results/photos
"""
from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ldem._optional import require
from ldem.codec import ENTROPY_MODES
from ldem.eval_figures import (bd_method_name, make_figures, plot_block_maps,  # noqa: F401  (bd_method_name)
                               plot_rate_reduction, plot_rd_curves)
from ldem.eval_results import (_FILES, _LATENT_STRIDE, CSV_COLUMNS, _write_csv, _write_json, bd_rates,
                               bd_rates_by_half, local_vs_global, mean_curves, read_rows)
from ldem.files import write_atomic
from ldem.images import IMAGE_SUFFIXES as IMAGE_EXTENSIONS
from ldem.images import load_rgb
from ldem.metrics import ms_ssim, msssim_db, psnr
from ldem.metrics import bd_quality, bd_rate, pchip_integral, pchip_interpolate, pchip_slopes  # noqa: F401  (were here)

__all__ = [
    "list_image_files", "load_rgb", "evaluate_folder", "read_rows", "mean_curves", "bd_rates",
    "local_vs_global", "plot_rd_curves", "plot_rate_reduction", "plot_block_maps", "make_figures", "main",
    "CSV_COLUMNS", "ENTROPY_MODES", "DEFAULT_REFERENCE_QUALITIES", "IMAGE_EXTENSIONS",
]

DEFAULT_REFERENCE_QUALITIES = (5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95)


# ---------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------
def list_image_files(folder, limit: Optional[int] = None) -> list:
    """Image files (by extension, see :data:`IMAGE_EXTENSIONS`) directly in ``folder``,
    sorted by name, at most ``limit``. Raises FileNotFoundError for a missing folder and
    ValueError for a file or a folder without images.

    >>> import tempfile
    >>> list_image_files(tempfile.mkdtemp())
    Traceback (most recent call last):
    ...
    ValueError: ...: no images (looked for .png, .jpg, .jpeg, .bmp, .tif, .tiff, .webp, .ppm, .pgm, .pnm, .gif)
    """
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise ValueError(f"{folder}: is a file, not a folder of images")
    if limit is not None and (not isinstance(limit, (int, np.integer)) or isinstance(limit, bool) or limit < 1):
        raise ValueError(f"limit must be a positive int, got {limit!r}")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise ValueError(f"{folder}: no images (looked for {', '.join(IMAGE_EXTENSIONS)})")
    return files[:limit] if limit else files


# ---------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------
def _check_qualities(qualities, num_qualities: int) -> list:
    if qualities is None:
        return list(range(1, num_qualities + 1))
    out = []
    for q in qualities:
        if not isinstance(q, (int, np.integer)) or isinstance(q, bool):
            raise ValueError(f"quality must be an int, got {q!r}")
        if not 1 <= q <= num_qualities:
            raise ValueError(f"quality {q} does not exist: this model has qualities 1..{num_qualities}")
        out.append(int(q))
    if not out:
        raise ValueError("no qualities given")
    return sorted(set(out))


def _check_settings(settings) -> list:
    out = []
    for s in settings:
        if not isinstance(s, (int, np.integer)) or isinstance(s, bool) or not 0 <= s <= 100:
            raise ValueError(f"reference quality settings must be ints in 0..100, got {s!r}")
        out.append(int(s))
    if not out:
        raise ValueError("no reference quality settings given")
    return sorted(set(out))


def _metric_fields(img, out) -> dict:
    v, scales = ms_ssim(img, out)
    return {"psnr": psnr(img, out), "msssim": v, "msssim_db": msssim_db(v), "msssim_scales": scales}


def _ldem_rows(img, name, codecs, maps, index, pixels_check=True):
    """Rows for one image at every quality and entropy mode, and its local block maps."""
    H, W = img.shape[:2]
    rows = []
    for q, codec in codecs.items():
        streams, stats, seconds = {}, {}, {}
        t = time.perf_counter()
        y, size = codec.latent(img)  # one analysis serves the three entropy modes
        analysis_s = time.perf_counter() - t
        for mode in ENTROPY_MODES:
            t = time.perf_counter()
            streams[mode], stats[mode] = codec.compress_latent(y, size, entropy=mode, return_stats=True)
            seconds[mode] = analysis_s + time.perf_counter() - t
        # The learned codec's own entropy model: its global tables, no contexts.
        t = time.perf_counter()
        streams["plain"], stats["plain"] = codec.compress_latent(y, size, entropy="global", return_stats=True,
                                                                 contexts=False)
        seconds["plain"] = analysis_s + time.perf_counter() - t
        if pixels_check:  # identical latents decode to identical pixels
            ref, _ = codec.decode_latent(streams["local"])
            for mode in ("global", "static", "plain"):
                y, _ = codec.decode_latent(streams[mode])
                if not np.array_equal(y, ref):
                    raise RuntimeError(f"{name}, quality {q}: the {mode} stream decodes to another latent")
        metrics = _metric_fields(img, codec.decompress_array(streams["local"]))
        for mode in ENTROPY_MODES + ("plain",):
            st, n = stats[mode], len(streams[mode])
            rows.append({
                "image": name, "width": W, "height": H, "codec": f"ldem-{mode}", "setting": q, "bytes": n,
                "bpp": 8 * n / (H * W), **metrics, "mode_used": st["mode"], "block": "x".join(map(str, st["block"])),
                "num_image_models": int(st["num_image_models"]), "bits_header": int(st["bits_header"]),
                "bits_tables": int(st["bits_tables"]), "bits_map": int(st["bits_map"]),
                "bits_data": int(st["bits_data"]), "side_share": (st["bits_tables"] + st["bits_map"]) / (8 * n),
                "encode_s": seconds[mode]})
        st = stats["local"]
        maps[f"{index:04d}_q{q}_models"] = st["model_map"].astype(np.int32)
        maps[f"{index:04d}_q{q}_categories"] = st["categories"].astype(np.int32)
        maps[f"{index:04d}_q{q}_block"] = np.asarray(st["block"], np.int32)
    return rows


def _reference_rows(img, name, references, settings, errors):
    from ldem.reference import reference_roundtrip
    H, W = img.shape[:2]
    rows = []
    for codec in references:
        for s in settings:
            try:
                t = time.perf_counter()
                data, out = reference_roundtrip(img, codec, s)
                seconds = time.perf_counter() - t
            except (OSError, ValueError, KeyError) as e:
                errors.append({"image": name, "codec": codec, "setting": s, "error": str(e)})
                continue
            rows.append({"image": name, "width": W, "height": H, "codec": codec, "setting": s, "bytes": len(data),
                         "bpp": 8 * len(data) / (H * W), **_metric_fields(img, out), "encode_s": seconds})
    return rows


def _references_info(use_references: bool, settings):
    from ldem.reference import REFERENCE_CODECS, avif_available
    info, active = {}, {}
    for name, (fmt, subsampling) in REFERENCE_CODECS.items():
        entry = {"format": fmt, "subsampling": subsampling, "settings": settings}
        if not use_references:
            entry = {"available": False, "reason": "references turned off (--no-references)"}
        elif fmt == "AVIF" and not avif_available():
            entry = {"available": False, "reason": "this Pillow cannot write AVIF (PIL.features.check('avif') is "
                                                   "False); AVIF skipped"}
        else:
            entry["available"] = True
            active[name] = (fmt, subsampling)
        info[name] = entry
    return info, active


def evaluate_folder(folder, qualities: Optional[Sequence[int]] = None, out=None, *, limit: Optional[int] = None,
                    references: bool = True, reference_qualities: Sequence[int] = DEFAULT_REFERENCE_QUALITIES,
                    bd_method: str = "pchip", model=None, figures: bool = True, progress: bool = True) -> dict:
    """Runs the evaluation of the module docs over ``folder`` and writes its files into
    ``out`` (default ``eval-<folder name>``); returns the summary (also in summary.json).

    ``qualities``: ldem qualities (default all); ``limit``: the first N images by name;
    ``references``: also run the reference codecs at ``reference_qualities``;
    ``bd_method``: ``"pchip"`` or ``"cubic"``; ``model``: a model file instead of the
    shipped one. Images that cannot be read are skipped and listed in the summary.

    >>> import tempfile, numpy as np, PIL.Image, ldem
    >>> src, dst = tempfile.mkdtemp(), tempfile.mkdtemp()
    >>> PIL.Image.open(ldem.sample_image_path()).crop((0, 0, 32, 24)).save(src + "/a.png")
    >>> s = evaluate_folder(src, [1], dst, references=False, figures=False, progress=False)
    >>> s["local_vs_global"]["per_quality"][0]["images"]
    1
    """
    Image, tqdm = require("ldem eval", "PIL.Image", "tqdm")
    tqdm = tqdm.tqdm
    from ldem.codec import ImageCodec
    if bd_method not in ("pchip", "cubic"):
        raise ValueError(f"bd_method must be 'pchip' or 'cubic', got {bd_method!r}")
    t0 = time.time()
    files = list_image_files(folder, limit)
    make = (lambda q: ImageCodec.load(model, q)) if model else (lambda q: ImageCodec.pretrained(q))
    first = make(1)
    qualities = _check_qualities(qualities, first.num_qualities)
    settings = _check_settings(reference_qualities) if references else []
    out = Path(out) if out is not None else Path(f"eval-{Path(folder).resolve().name}")
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder")
    codecs = {q: make(q) for q in qualities}
    ref_info, active = _references_info(references, settings)

    rows, maps, images, skipped, errors = [], {}, [], [], []
    bar = tqdm(files, desc="ldem eval", unit="image", disable=not progress, file=sys.stderr)
    for path in bar:
        bar.set_postfix_str(path.name[:30])
        try:
            img = load_rgb(path)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:  # unreadable or too large
            skipped.append({"image": path.name, "reason": str(e)})
            continue
        index = len(images)
        images.append({"index": index, "name": path.name, "path": str(path.resolve()),
                       "width": int(img.shape[1]), "height": int(img.shape[0])})
        rows += _ldem_rows(img, path.name, codecs, maps, index)
        rows += _reference_rows(img, path.name, active, settings, errors)
    bar.close()
    if not images:
        raise ValueError(f"{folder}: none of the {len(files)} image file(s) could be read")

    out.mkdir(parents=True, exist_ok=True)
    _write_csv(out / _FILES["csv"], rows)
    buf = io.BytesIO()
    np.savez_compressed(buf, **maps)
    write_atomic(out / _FILES["maps"], buf.getvalue(), force=True)
    summary = {
        "folder": str(Path(folder).resolve()),
        "model": {"id": first.model_id, "path": str(model or "shipped"), "num_qualities": first.num_qualities},
        "qualities": qualities,
        "images": images,
        "skipped": skipped,
        "errors": errors,
        "references": ref_info,
        "conventions": {
            "bpp": "8·file bytes / pixels, container headers included",
            "psnr": "RGB, peak 255; capped at 100 dB when averaging",
            "msssim": "pytorch_msssim.ms_ssim on RGB (data range 255, 5 scales); images with a side of 160 px or "
                      "less use fewer scales with the first standard weights rescaled (column msssim_scales); "
                      "NaN under 11 px",
            "msssim_db": "-10·log10(1 - MS-SSIM); the quality axis of the MS-SSIM curves and BD-rates",
            "mean_curves": "per codec and setting: mean bpp and mean metric over the images (MS-SSIM averaged "
                           "linearly, then in dB)",
            "halves": "the same BD-rates on each half of the images sorted by name: tuning (even positions), "
                      "held-out (odd positions)",
            "bd_rate": "test ldem-local against each anchor on the mean curves, in %, negative = fewer bits; "
                       "log-rate interpolated over quality by " + ("monotone piecewise-cubic Hermite (PCHIP)"
                                                                    if bd_method == "pchip" else
                                                                    "a cubic polynomial fit (VCEG-M33)")
                       + ", integrated over the overlapping quality interval; points dominated by a "
                         "cheaper or equal-rate better point are dropped first",
            "rate_reduction": "100·(1 - bytes_local / bytes_global) per image and quality (identical pixels); "
                              "local_vs_plain: the same against ldem-plain, the global tables without contexts "
                              "(the learned codec's own entropy model)",
            "side_share": "(bits of image tables + bits of block map) / bits of the local file",
        },
        "block_maps": {"file": _FILES["maps"], "latent_stride": _LATENT_STRIDE,
                       "latent_strides": {str(q): c.stride for q, c in codecs.items()},
                       "num_static_models": {str(q): (c.coder.static.num_models if c.coder.static is not None
                                                      else 0) for q, c in codecs.items()},
                       "categories": "0 = global model, 1..S = static dictionary, S+1.. = the image's own"},
    }
    curves = mean_curves(rows)
    summary.update(curves=curves, bd_rate=bd_rates(curves, method=bd_method),
                   halves=bd_rates_by_half(rows, method=bd_method), local_vs_global=local_vs_global(rows),
                   local_vs_plain=local_vs_global(rows, baseline="ldem-plain"))
    summary["elapsed_s"] = round(time.time() - t0, 3)
    _write_json(out / _FILES["json"], summary)
    if figures:
        try:
            summary["figures"] = [p.name for p in make_figures(out)]
        except ImportError:
            summary["figures"] = "matplotlib is not installed: no figures"
        _write_json(out / _FILES["json"], summary)
    return summary



# ---------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------
def _parser():
    ap = argparse.ArgumentParser(
        prog="ldem eval", description="Rate–distortion evaluation of ldem (global, static and local entropy models) "
                                      "and reference codecs over a folder of images.")
    ap.add_argument("folder", help="folder of images (or, with --figures-only, a results folder)")
    ap.add_argument("--qualities", type=int, nargs="+", metavar="Q", help="ldem qualities (default: all)")
    ap.add_argument("--out", help="output folder (default: eval-<folder name>)")
    ap.add_argument("--limit", type=int, metavar="N", help="only the first N images by name")
    ap.add_argument("--no-references", action="store_true", help="skip JPEG, WebP and AVIF")
    ap.add_argument("--reference-qualities", type=int, nargs="+", metavar="Q",
                    default=list(DEFAULT_REFERENCE_QUALITIES), help="quality settings of the reference codecs "
                    f"(default: {' '.join(map(str, DEFAULT_REFERENCE_QUALITIES))})")
    ap.add_argument("--bd-method", choices=["pchip", "cubic"], default="pchip",
                    help="BD-rate interpolation (default: pchip)")
    ap.add_argument("--model", help="model file (default: the shipped model)")
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    ap.add_argument("--no-figures", action="store_true", help="do not draw the pictures")
    ap.add_argument("--figures-only", action="store_true",
                    help="remake the pictures of an earlier run; FOLDER is its output folder")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    return ap


def _report(summary) -> str:
    lines = [f"{len(summary['images'])} image(s), qualities {summary['qualities']}"]
    plain = {p["quality"]: p for p in summary.get("local_vs_plain", {}).get("per_quality", [])}
    for p in summary["local_vs_global"]["per_quality"]:
        vs_plain = (f", vs global without contexts {-plain[p['quality']]['mean_reduction_pct']:+.2f} %"
                    if p["quality"] in plain else "")
        lines.append(f"  q{p['quality']}: local vs global {-p['mean_reduction_pct']:+.2f} % "
                     f"(median {-p['median_reduction_pct']:+.2f} %){vs_plain}, side info "
                     f"{p['mean_side_share_pct']:.2f} %")
    parts = [("", summary["bd_rate"])] + [(f", {name} half ({h['images']} images)", h["bd_rate"])
                                          for name, h in summary.get("halves", {}).items()]
    for metric in ("psnr", "msssim_db"):
        for label, bd in parts:
            vals = ", ".join(f"{a} {v:+.2f} %" if v is not None else f"{a} n/a" for a, v in bd[metric].items())
            lines.append(f"  BD-rate ldem-local ({metric}, {bd['method']}){label}: {vals}")
    off = [n for n, info in summary["references"].items() if not info.get("available")]
    if len(off) == len(summary["references"]):
        lines.append("  references: off")
    else:
        lines += [f"  {n}: {summary['references'][n]['reason']}" for n in off]
    if summary["skipped"]:
        lines.append(f"  skipped {len(summary['skipped'])} unreadable file(s)")
    return "\n".join(lines)


def main(argv=None) -> int:
    """``ldem eval`` (see ``ldem eval --help``); returns the exit status.

    >>> main(["no/such/folder", "--figures-only"])
    Traceback (most recent call last):
    ...
    FileNotFoundError: no/such/folder: no such results folder
    """
    args = _parser().parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        torch = require("ldem eval", "torch")
        torch.set_num_threads(args.threads)
    if args.figures_only:
        for p in make_figures(args.folder):
            print(p)
        return 0
    summary = evaluate_folder(args.folder, args.qualities, args.out, limit=args.limit,
                              references=not args.no_references, reference_qualities=args.reference_qualities,
                              bd_method=args.bd_method, model=args.model, figures=not args.no_figures,
                              progress=not args.quiet)
    out = Path(args.out) if args.out else Path(f"eval-{Path(args.folder).resolve().name}")
    print(_report(summary))
    print(f"wrote {out / _FILES['csv']}, {out / _FILES['json']} in {summary['elapsed_s']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
