"""Rate–distortion evaluation over a folder of images: ``ldem eval``.

For every image, every ldem quality and every entropy mode (``global``, ``static``,
``local``) it measures the file size (bits per pixel), PSNR and MS-SSIM; and the same for
the reference codecs of :mod:`ldem.reference` (JPEG 4:2:0 and 4:4:4, WebP, AVIF) at a
sweep of quality settings. It writes into the output folder:

``results.csv``
    one row per image × codec × setting (:data:`CSV_COLUMNS`). ``codec`` is
    ``ldem-global``, ``ldem-static``, ``ldem-local``, ``jpeg-420``, ``jpeg-444``,
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

Example::

    ldem eval photos/ --qualities 1 3 5 --out results/photos
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
import time
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np

from ldem._optional import require
from ldem.codec import ENTROPY_MODES
from ldem.files import write_atomic
from ldem.images import IMAGE_SUFFIXES as IMAGE_EXTENSIONS
from ldem.images import load_rgb
from ldem.metrics import bd_rate, ms_ssim, msssim_db, psnr
from ldem.metrics import bd_quality, pchip_integral, pchip_interpolate, pchip_slopes  # noqa: F401  (were here)

__all__ = [
    "list_image_files", "load_rgb", "evaluate_folder", "read_rows", "mean_curves", "bd_rates",
    "local_vs_global", "plot_rd_curves", "plot_rate_reduction", "plot_block_maps", "make_figures", "main",
    "CSV_COLUMNS", "ENTROPY_MODES", "DEFAULT_REFERENCE_QUALITIES", "IMAGE_EXTENSIONS",
]

DEFAULT_REFERENCE_QUALITIES = (5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95)
CSV_COLUMNS = (
    "image", "width", "height", "codec", "setting", "bytes", "bpp", "psnr", "msssim", "msssim_db",
    "msssim_scales", "mode_used", "block", "num_image_models", "bits_header", "bits_tables", "bits_map",
    "bits_data", "side_share", "encode_s",
)
_INT_COLUMNS = {"width", "height", "setting", "bytes", "msssim_scales", "num_image_models", "bits_header",
                "bits_tables", "bits_map", "bits_data"}
_FLOAT_COLUMNS = {"bpp", "psnr", "msssim", "msssim_db", "side_share", "encode_s"}
_PSNR_CAP = 100.0       # dB used for lossless images when averaging
_LATENT_STRIDE = 16     # image pixels per latent sample (ImageCodec.latent pads to a multiple of 16)
_LDEM = tuple(f"ldem-{m}" for m in ENTROPY_MODES)
_FILES = {"csv": "results.csv", "json": "summary.json", "maps": "block_maps.npz"}



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
        if pixels_check:  # identical latents decode to identical pixels
            ref, _ = codec.decode_latent(streams["local"])
            for mode in ("global", "static"):
                y, _ = codec.decode_latent(streams[mode])
                if not np.array_equal(y, ref):
                    raise RuntimeError(f"{name}, quality {q}: the {mode} stream decodes to another latent")
        metrics = _metric_fields(img, codec.decompress_array(streams["local"]))
        for mode in ENTROPY_MODES:
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
            "bd_rate": "test ldem-local against each anchor on the mean curves, in %, negative = fewer bits; "
                       "log-rate interpolated over quality by " + ("monotone piecewise-cubic Hermite (PCHIP)"
                                                                    if bd_method == "pchip" else
                                                                    "a cubic polynomial fit (VCEG-M33)")
                       + ", integrated over the overlapping quality interval; points dominated by a "
                         "cheaper or equal-rate better point are dropped first",
            "rate_reduction": "100·(1 - bytes_local / bytes_global) per image and quality (identical pixels)",
            "side_share": "(bits of image tables + bits of block map) / bits of the local file",
        },
        "block_maps": {"file": _FILES["maps"], "latent_stride": _LATENT_STRIDE,
                       "num_static_models": {str(q): (c.coder.static.num_models if c.coder.static is not None
                                                      else 0) for q, c in codecs.items()},
                       "categories": "0 = global model, 1..S = static dictionary, S+1.. = the image's own"},
    }
    curves = mean_curves(rows)
    summary.update(curves=curves, bd_rate=bd_rates(curves, method=bd_method), local_vs_global=local_vs_global(rows))
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
# Files
# ---------------------------------------------------------------------------------------
def _json_safe(v):
    if isinstance(v, dict):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        v = float(v)
        return v if math.isfinite(v) else None
    return v


def _write_json(path, obj):
    write_atomic(path, (json.dumps(_json_safe(obj), indent=1, allow_nan=False) + "\n").encode(), force=True)


def _write_csv(path, rows):
    f = io.StringIO(newline="")
    w = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else repr(r[k]) if isinstance(r.get(k), float) else r[k])
                    for k in CSV_COLUMNS if k in r})
    write_atomic(path, f.getvalue().encode(), force=True)


def read_rows(path) -> list:
    """The rows of a ``results.csv`` (a file, or the folder holding it), typed:
    ints, floats (``nan``/``inf`` kept), empty cells as None.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "results.csv"
    >>> _ = p.write_text("image,codec,setting,bpp,psnr,block\\na.png,webp,50,0.5,inf,\\n")
    >>> read_rows(p)[0]
    {'image': 'a.png', 'codec': 'webp', 'setting': 50, 'bpp': 0.5, 'psnr': inf, 'block': None}
    """
    path = Path(path)
    if path.is_dir():
        path = path / _FILES["csv"]
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    rows = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            row = {}
            for k, v in r.items():
                if v == "" or v is None:
                    row[k] = None
                elif k in _INT_COLUMNS:
                    row[k] = int(v)
                elif k in _FLOAT_COLUMNS:
                    row[k] = float(v)
                else:
                    row[k] = v
            rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------
# Summaries
# ---------------------------------------------------------------------------------------
def _mean(values):
    v = [x for x in values if x is not None and not math.isnan(x)]
    return float(np.mean(v)) if v else math.nan


def mean_curves(rows) -> dict:
    """Per codec, the mean rate–quality points over the images, one per setting:
    ``{codec: [{"setting", "bpp", "psnr", "msssim", "msssim_db", "images"}, ...]}``
    (sorted by setting; see the module docs for the averaging).

    >>> rows = [{"codec": "webp", "setting": 50, "bpp": b, "psnr": p, "msssim": 0.9}
    ...         for b, p in [(1.0, 30.0), (3.0, 34.0)]]
    >>> c = mean_curves(rows)["webp"][0]
    >>> c["bpp"], c["psnr"], round(c["msssim_db"], 6), c["images"]
    (2.0, 32.0, 10.0, 2)
    """
    groups = {}
    for r in rows:
        groups.setdefault(r["codec"], {}).setdefault(r["setting"], []).append(r)
    curves = {}
    for codec, by_setting in groups.items():
        pts = []
        for s in sorted(by_setting):
            g = by_setting[s]
            ms = _mean(r.get("msssim") for r in g)
            db = msssim_db(ms)
            pts.append({"setting": s, "bpp": _mean(r["bpp"] for r in g),
                        "psnr": _mean(min(r["psnr"], _PSNR_CAP) if r["psnr"] is not None else None for r in g),
                        "msssim": ms, "msssim_db": db if math.isnan(db) else min(db, _PSNR_CAP), "images": len(g)})
        curves[codec] = pts
    return curves


def _envelope(points, metric):
    """(bpp, quality) arrays of the points not dominated by a cheaper or equal-rate better point."""
    pts = sorted(((p["bpp"], p[metric]) for p in points
                  if p["bpp"] is not None and p[metric] is not None and p["bpp"] > 0
                  and math.isfinite(p["bpp"]) and math.isfinite(p[metric])), key=lambda t: (t[0], -t[1]))
    keep = []
    for b, q in pts:
        if not keep or q > keep[-1][1]:
            keep.append((b, q))
    return np.array([b for b, _ in keep]), np.array([q for _, q in keep])


def bd_rates(curves, test: str = "ldem-local", anchors: Optional[Iterable[str]] = None,
             method: str = "pchip") -> dict:
    """BD-rates (%) of the ``test`` mean curve against each anchor, for PSNR and MS-SSIM
    (dB): ``{"psnr": {anchor: value or None}, "msssim_db": {...}, "overlap": {...},
    "notes": {...}}``; ``overlap`` gives the quality interval each value integrates over
    (a narrow one makes a fragile number).

    Anchors default to every other codec in ``curves``. A pair that cannot be compared
    (fewer than 2 points, no overlap) gets None and a note.

    >>> pts = lambda k: [{"bpp": k * b, "psnr": p, "msssim_db": p / 2} for b, p in [(0.5, 30), (1, 34), (2, 38)]]
    >>> bd_rates({"ldem-local": pts(0.9), "jpeg-420": pts(1.0)})["psnr"]["jpeg-420"]
    -10.0
    """
    anchors = [a for a in (anchors if anchors is not None else curves) if a != test]
    out = {"method": method, "test": test, "psnr": {}, "msssim_db": {}, "overlap": {}, "notes": {}}
    if test not in curves:
        out["notes"][test] = "no curve for the test codec"
        return out
    for metric in ("psnr", "msssim_db"):
        tb, tq = _envelope(curves[test], metric)
        for anchor in anchors:
            if anchor not in curves:
                out[metric][anchor] = None
                out["notes"][f"{anchor} {metric}"] = "no curve"
                continue
            ab, aq = _envelope(curves[anchor], metric)
            try:
                out[metric][anchor] = round(bd_rate(ab, aq, tb, tq, method=method), 9)
                out["overlap"][f"{anchor} {metric}"] = [float(max(aq[0], tq[0])), float(min(aq[-1], tq[-1]))]
            except ValueError as e:
                out[metric][anchor] = None
                out["notes"][f"{anchor} {metric}"] = str(e)
    return out


def local_vs_global(rows) -> dict:
    """Rate reduction of ``ldem-local`` against ``ldem-global`` (same image, same
    quality, same pixels) and the side-information share of the local stream: per image,
    per quality (mean, median, min, max, and of the total bytes) and over everything.

    >>> rows = [{"image": "a", "codec": c, "setting": 1, "bytes": n, "bpp": n / 8, "side_share": s}
    ...         for c, n, s in [("ldem-global", 100, 0.0), ("ldem-local", 90, 0.05), ("ldem-static", 95, 0.01)]]
    >>> r = local_vs_global(rows)
    >>> r["per_image"]["a"]["1"], round(r["overall"]["mean_side_share_pct"], 9)
    (10.0, 5.0)
    """
    by = {}
    for r in rows:
        if r["codec"] in _LDEM:
            by.setdefault((r["image"], r["setting"]), {})[r["codec"]] = r
    per_image, per_q = {}, {}
    for (image, q), g in sorted(by.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        if "ldem-global" not in g or "ldem-local" not in g:
            continue
        gl, lo = g["ldem-global"], g["ldem-local"]
        red = 100.0 * (1.0 - lo["bytes"] / gl["bytes"])
        st = g.get("ldem-static")
        per_image.setdefault(image, {})[str(q)] = round(red, 6)
        per_q.setdefault(q, []).append((red, lo["side_share"] or 0.0, gl["bytes"], lo["bytes"], gl["bpp"], lo["bpp"],
                                        100.0 * (1.0 - st["bytes"] / gl["bytes"]) if st else math.nan))
    table = []
    for q in sorted(per_q):
        v = np.array(per_q[q], np.float64)
        table.append({"quality": q, "images": len(v), "mean_reduction_pct": float(v[:, 0].mean()),
                      "median_reduction_pct": float(np.median(v[:, 0])), "min_reduction_pct": float(v[:, 0].min()),
                      "max_reduction_pct": float(v[:, 0].max()),
                      "total_reduction_pct": float(100.0 * (1.0 - v[:, 3].sum() / v[:, 2].sum())),
                      "mean_side_share_pct": float(100.0 * v[:, 1].mean()),
                      "mean_bpp_global": float(v[:, 4].mean()), "mean_bpp_local": float(v[:, 5].mean()),
                      "mean_reduction_static_pct": _mean(v[:, 6].tolist())})
    every = np.array([x for q in per_q for x in per_q[q]], np.float64).reshape(-1, 7)
    overall = {"pairs": int(len(every)),
               "mean_reduction_pct": float(every[:, 0].mean()) if len(every) else math.nan,
               "total_reduction_pct": float(100.0 * (1.0 - every[:, 3].sum() / every[:, 2].sum()))
               if len(every) else math.nan,
               "mean_side_share_pct": float(100.0 * every[:, 1].mean()) if len(every) else math.nan}
    return {"per_quality": table, "overall": overall, "per_image": per_image}


# ---------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------
_STYLE = {
    "ldem-global": dict(color="tab:blue", marker="o", ls="-"),
    "ldem-static": dict(color="tab:green", marker="s", ls="-"),
    "ldem-local": dict(color="tab:red", marker="^", ls="-", lw=2),
    "jpeg-420": dict(color="0.45", marker=".", ls="--"),
    "jpeg-444": dict(color="0.15", marker=".", ls="--"),
    "webp": dict(color="tab:purple", marker=".", ls=":"),
    "avif": dict(color="tab:orange", marker=".", ls="-."),
}


def _load_results(results):
    """(summary, rows, folder) of a results folder."""
    folder = Path(results)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such results folder")
    js = folder / _FILES["json"]
    if not js.is_file():
        raise FileNotFoundError(f"{js}: no such file (run `ldem eval` first)")
    return json.loads(js.read_text()), read_rows(folder), folder


def _new_figure(w, h):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(w, h), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _out_path(path, folder, name):
    return Path(path) if path is not None else folder / name


def plot_rd_curves(results, metric: str = "psnr", path=None) -> Path:
    """Mean rate–distortion curves of every codec (``metric``: ``"psnr"`` or
    ``"msssim"``, drawn in dB) from a results folder; writes a PNG (default
    ``rd_<metric>.png`` in that folder) and returns its path. The legend gives the
    BD-rate of ldem-local against each curve.

    >>> plot_rd_curves("no/such/folder")
    Traceback (most recent call last):
    ...
    FileNotFoundError: no/such/folder: no such results folder
    """
    if metric not in ("psnr", "msssim"):
        raise ValueError(f"metric must be 'psnr' or 'msssim', got {metric!r}")
    summary, rows, folder = _load_results(results)
    curves = mean_curves(rows)
    key = "psnr" if metric == "psnr" else "msssim_db"
    bd = bd_rates(curves, method=summary.get("bd_rate", {}).get("method", "pchip"))[key]
    fig = _new_figure(7, 5)
    ax = fig.add_subplot()
    order = [c for c in _STYLE if c in curves] + sorted(c for c in curves if c not in _STYLE)
    for codec in order:
        pts = [p for p in curves[codec] if p[key] is not None and math.isfinite(p[key])]
        if not pts:
            continue
        label = codec
        if codec != "ldem-local" and bd.get(codec) is not None:
            label += f"  (local: {bd[codec]:+.1f} %)"
        ax.plot([p["bpp"] for p in pts], [p[key] for p in pts], label=label, ms=5, **_STYLE.get(codec, {}))
    ax.set_xlabel("bits per pixel (mean over images)")
    ax.set_ylabel("PSNR (dB, RGB)" if metric == "psnr" else "MS-SSIM (dB) = -10·log10(1 - MS-SSIM)")
    n = len(summary.get("images", []))
    ax.set_title(f"{Path(summary.get('folder', '')).name}: {n} image(s), BD-rate by {bd_method_name(summary)}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    out = _out_path(path, folder, f"rd_{metric}.png")
    fig.savefig(out, bbox_inches="tight")
    return out


def bd_method_name(summary) -> str:
    """Short name of the BD interpolation recorded in a summary.

    >>> bd_method_name({"bd_rate": {"method": "cubic"}})
    'cubic fit'
    """
    return {"pchip": "PCHIP", "cubic": "cubic fit"}.get(summary.get("bd_rate", {}).get("method", "pchip"), "?")


def plot_rate_reduction(results, path=None) -> Path:
    """Per-image bars of the rate reduction of local against global (mean over the
    qualities, whiskers from the smallest to the largest) above the side-information
    share; writes ``rate_reduction.png`` by default and returns its path."""
    summary, rows, folder = _load_results(results)
    lvg = local_vs_global(rows)
    shares = {}
    for r in rows:
        if r["codec"] == "ldem-local":
            shares.setdefault(r["image"], []).append(100.0 * (r["side_share"] or 0.0))
    names = sorted(lvg["per_image"], key=lambda n: -np.mean(list(lvg["per_image"][n].values())))
    red = [np.array(list(lvg["per_image"][n].values())) for n in names]
    means = np.array([v.mean() for v in red])
    fig = _new_figure(max(6.0, 0.28 * len(names) + 2), 6)
    ax1, ax2 = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    x = np.arange(len(names))
    ax1.bar(x, means, color="tab:red", alpha=0.8,
            yerr=[means - [v.min() for v in red], [v.max() for v in red] - means], capsize=2)
    ax1.axhline(0, color="k", lw=0.8)
    ax1.set_ylabel("rate reduction, local vs global (%)")
    qs = ", ".join(str(p["quality"]) for p in lvg["per_quality"])
    ax1.set_title(f"{Path(summary.get('folder', '')).name}: mean {lvg['overall']['mean_reduction_pct']:.2f} % "
                  f"over qualities {qs} (bars: mean, whiskers: min–max)", fontsize=10)
    ax1.grid(axis="y", alpha=0.3)
    if shares:
        ax2.bar(x, [np.mean(shares.get(n, [0.0])) for n in names], color="0.4")
    ax2.set_ylabel("side info share (%)")
    ax2.set_xticks(x)
    ax2.set_xticklabels(names, rotation=75, ha="right", fontsize=7)
    ax2.grid(axis="y", alpha=0.3)
    out = _out_path(path, folder, "rate_reduction.png")
    fig.savefig(out, bbox_inches="tight")
    return out


def _pick_images(lvg, quality, count):
    """Largest, smallest and median reduction at ``quality`` (ties broken by name)."""
    red = sorted(((v[str(quality)], n) for n, v in lvg["per_image"].items() if str(quality) in v),
                 key=lambda t: (-t[0], t[1]))
    if not red:
        return []
    picks = [red[0], red[-1], red[len(red) // 2]]
    out = []
    for p in picks:
        if p not in out:
            out.append(p)
    return out[:count]


def plot_block_maps(results, path=None, count: int = 3, quality: Optional[int] = None) -> Path:
    """For up to ``count`` images (largest, smallest and median rate reduction at
    ``quality``, default the middle evaluated quality): the image; per block of the
    local stream, the shares of channels coded with the image's own models, the static
    dictionary and the global models (as red, green, blue); and the model index used by
    most channels of each block. Writes ``block_maps.png`` by default."""
    from matplotlib import colormaps
    summary, rows, folder = _load_results(results)
    lvg = local_vs_global(rows)
    qualities = summary["qualities"]
    quality = qualities[len(qualities) // 2] if quality is None else quality
    picks = _pick_images(lvg, quality, count)
    index = {im["name"]: im for im in summary["images"]}
    static = int(summary["block_maps"]["num_static_models"].get(str(quality), 0))
    stride = int(summary["block_maps"].get("latent_stride", _LATENT_STRIDE))
    fig = _new_figure(12, 3.4 * max(1, len(picks)))
    axes = fig.subplots(max(1, len(picks)), 3, squeeze=False)
    with np.load(folder / summary["block_maps"]["file"]) as z:
        for row, (red, name) in zip(axes, picks):
            im = index[name]
            key = f"{im['index']:04d}_q{quality}"
            cats, models, block = z[f"{key}_categories"], z[f"{key}_models"], z[f"{key}_block"]
            H, W = im["height"], im["width"]
            ext = (0, cats.shape[2] * block[1] * stride, cats.shape[1] * block[0] * stride, 0)
            try:
                row[0].imshow(load_rgb(im["path"]))
            except (OSError, ValueError):
                row[0].text(0.5, 0.5, "image not found", ha="center", transform=row[0].transAxes)
            row[0].set_title(f"{name} ({W}×{H})", fontsize=9)
            shares = np.stack([(cats > static).mean(axis=0), ((cats > 0) & (cats <= static)).mean(axis=0),
                               (cats == 0).mean(axis=0)], axis=-1)  # red: image, green: static, blue: global
            row[1].imshow(shares, extent=ext, interpolation="nearest")
            n_img = int(np.unique(cats[cats > static]).size)
            row[1].set_title(f"share of channels per block (q{quality}, {block[0] * stride}×{block[1] * stride} px)\n"
                             f"red: {n_img} image models, green: static, blue: global", fontsize=8)
            top = np.apply_along_axis(lambda v: np.bincount(v).argmax(), 0, models)
            row[2].imshow(top % 20, extent=ext, cmap=colormaps["tab20"], vmin=0, vmax=19, interpolation="nearest")
            if top.size <= 96:
                bh, bw = block[0] * stride, block[1] * stride
                for (i, j), m in np.ndenumerate(top):
                    row[2].text((j + 0.5) * bw, (i + 0.5) * bh, str(m), ha="center", va="center", fontsize=7)
            row[2].set_title(f"model used by most channels of each block\nlocal saves {red:.1f} % against global",
                             fontsize=8)
            for ax in row:
                ax.set_xlim(0, W)
                ax.set_ylim(H, 0)
                ax.set_xticks([])
                ax.set_yticks([])
    if not picks:
        axes[0][0].text(0.5, 0.5, "no local streams", ha="center")
    out = _out_path(path, folder, "block_maps.png")
    fig.savefig(out, bbox_inches="tight")
    return out


def make_figures(results) -> list:
    """Writes all pictures into a results folder from its saved files (no codec runs);
    returns their paths.

    >>> make_figures("no/such/folder")
    Traceback (most recent call last):
    ...
    FileNotFoundError: no/such/folder: no such results folder
    """
    folder = Path(results)
    _load_results(folder)  # clear errors for a wrong folder before drawing anything
    return [plot_rd_curves(folder, "psnr"), plot_rd_curves(folder, "msssim"), plot_rate_reduction(folder),
            plot_block_maps(folder)]


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
    for p in summary["local_vs_global"]["per_quality"]:
        lines.append(f"  q{p['quality']}: local vs global {-p['mean_reduction_pct']:+.2f} % "
                     f"(median {-p['median_reduction_pct']:+.2f} %), side info {p['mean_side_share_pct']:.2f} %")
    bd = summary["bd_rate"]
    for metric in ("psnr", "msssim_db"):
        vals = ", ".join(f"{a} {v:+.2f} %" if v is not None else f"{a} n/a" for a, v in bd[metric].items())
        lines.append(f"  BD-rate ldem-local ({metric}, {bd['method']}): {vals}")
    off = [n for n, info in summary["references"].items() if not info.get("available")]
    if len(off) == len(summary["references"]):
        lines.append("  references: off")
    else:
        lines += [f"  {n}: {summary['references'][n]['reason']}" for n in off]
    if summary["skipped"]:
        lines.append(f"  skipped {len(summary['skipped'])} unreadable file(s)")
    return "\n".join(lines)


def main(argv=None) -> int:
    """``ldem eval`` (see ``ldem eval --help``); returns the exit status."""
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
