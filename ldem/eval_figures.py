"""The pictures of an ``ldem eval`` run, drawn from its saved files (no codec runs).

:func:`plot_rd_curves` draws the mean rate–distortion curves, :func:`plot_rate_reduction`
the per-image rate reduction of local against global entropy models,
:func:`plot_block_maps` the block maps of a few local streams, and :func:`make_figures`
all of them (``rd_psnr.png``, ``rd_msssim.png``, ``rate_reduction.png``,
``block_maps.png``) into the results folder. Needs matplotlib, imported when drawing.

Example::

    make_figures("eval-photos")
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

import numpy as np

from ldem.eval_results import _FILES, _LATENT_STRIDE, bd_rates, local_vs_global, mean_curves, read_rows
from ldem.images import load_rgb

__all__ = ["plot_rd_curves", "plot_rate_reduction", "plot_block_maps", "make_figures", "bd_method_name"]

_STYLE = {
    "ldem-plain": dict(color="tab:cyan", marker="x", ls=":"),
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
    share; writes ``rate_reduction.png`` by default and returns its path.

    >>> plot_rate_reduction("no/such/folder")
    Traceback (most recent call last):
    ...
    FileNotFoundError: no/such/folder: no such results folder
    """
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
    most channels of each block. Writes ``block_maps.png`` by default and returns its
    path.

    >>> plot_block_maps("no/such/folder")
    Traceback (most recent call last):
    ...
    FileNotFoundError: no/such/folder: no such results folder
    """
    from matplotlib import colormaps
    summary, rows, folder = _load_results(results)
    lvg = local_vs_global(rows)
    qualities = summary["qualities"]
    quality = qualities[len(qualities) // 2] if quality is None else quality
    picks = _pick_images(lvg, quality, count)
    index = {im["name"]: im for im in summary["images"]}
    static = int(summary["block_maps"]["num_static_models"].get(str(quality), 0))
    maps = summary["block_maps"]  # the stride per quality (block transforms: 8), else one for all
    stride = int(maps.get("latent_strides", {}).get(str(quality), maps.get("latent_stride", _LATENT_STRIDE)))
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
