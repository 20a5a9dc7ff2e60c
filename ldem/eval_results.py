"""The files of an ``ldem eval`` run, and the summaries made from its rows.

:mod:`ldem.evaluate` runs the codecs and says what every column and number means; this
module writes and reads its files (``results.csv``: one row per image × codec × setting,
:data:`CSV_COLUMNS`; ``summary.json``) and computes the summaries from the rows: the mean
rate–quality curves (:func:`mean_curves`), the BD-rates between them (:func:`bd_rates`)
and the rate reduction of the local entropy models against the global ones
(:func:`local_vs_global`). No codec runs here.

Example::

    rows = read_rows("eval-photos")
    bd_rates(mean_curves(rows))["psnr"]
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

from ldem.codec import ENTROPY_MODES
from ldem.files import write_atomic
from ldem.metrics import bd_rate, msssim_db

__all__ = ["CSV_COLUMNS", "read_rows", "mean_curves", "bd_rates", "local_vs_global", "halves", "bd_rates_by_half"]

CSV_COLUMNS = (
    "image", "width", "height", "codec", "setting", "bytes", "bpp", "psnr", "msssim", "msssim_db",
    "msssim_scales", "mode_used", "block", "num_image_models", "bits_header", "bits_tables", "bits_map",
    "bits_data", "side_share", "encode_s",
)
_INT_COLUMNS = {"width", "height", "setting", "bytes", "msssim_scales", "num_image_models", "bits_header",
                "bits_tables", "bits_map", "bits_data"}
_FLOAT_COLUMNS = {"bpp", "psnr", "msssim", "msssim_db", "side_share", "encode_s"}
_PSNR_CAP = 100.0       # dB used for lossless images when averaging
_LATENT_STRIDE = 16     # image pixels per latent sample of learned transforms (block transforms: 8, per quality)
_LDEM = tuple(f"ldem-{m}" for m in ENTROPY_MODES) + ("ldem-plain",)
_FILES = {"csv": "results.csv", "json": "summary.json", "maps": "block_maps.npz"}


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
    (sorted by setting; see :mod:`ldem.evaluate` for the averaging).

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


def halves(images) -> dict:
    """The development sets' two halves: images sorted by name, the **tuning** half at
    even positions (where choices may be measured) and the **held-out** half at odd
    positions (on which no choice is made).

    >>> halves(["c.png", "a.png", "b.png"])
    {'tuning': ['a.png', 'c.png'], 'held-out': ['b.png']}
    """
    names = sorted(images)
    return {"tuning": names[0::2], "held-out": names[1::2]}


def bd_rates_by_half(rows, method: str = "pchip") -> dict:
    """:func:`bd_rates` of the mean curves of each of :func:`halves` of the images in
    ``rows``: ``{half: {"images": n, "bd_rate": ...}}``."""
    out = {}
    for name, members in halves({r["image"] for r in rows}).items():
        keep = set(members)
        sub = [r for r in rows if r["image"] in keep]
        out[name] = {"images": len(members), "bd_rate": bd_rates(mean_curves(sub), method=method)}
    return out


def local_vs_global(rows, baseline: str = "ldem-global") -> dict:
    """Rate reduction of ``ldem-local`` against ``baseline`` (``ldem-global``, or
    ``ldem-plain``: the global tables without contexts; same image, same quality, same
    pixels) and the side-information share of the local stream: per image, per quality
    (mean, median, min, max, and of the total bytes) and over everything.

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
        if baseline not in g or "ldem-local" not in g:
            continue
        gl, lo = g[baseline], g["ldem-local"]
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
