"""ldem.eval_results: the rows and the summary of a tiny `ldem eval` run."""
import csv
import doctest
import json

import numpy as np
import pytest

from ldem import eval_results as er
from ldem import evaluate as ev
from ldem import reference


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_eval_csv_rows(eval_run):
    with open(eval_run / "results.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == er.CSV_COLUMNS
        raw = list(reader)
    rows = er.read_rows(eval_run)
    assert len(rows) == len(raw)
    refs = [c for c in reference.REFERENCE_CODECS if c != "avif" or reference.avif_available()]
    expected = {(img, f"ldem-{m}", q) for img in ("a.png", "b.png") for m in ev.ENTROPY_MODES + ("plain",)
                for q in (1, 2)}
    expected |= {(img, c, s) for img in ("a.png", "b.png") for c in refs for s in (30, 80)}
    assert {(r["image"], r["codec"], r["setting"]) for r in rows} == expected
    assert len(rows) == len(expected)
    for r in rows:
        assert r["bpp"] > 0 and r["bytes"] > 0
        assert r["bpp"] == pytest.approx(8 * r["bytes"] / (r["width"] * r["height"]))
        assert (r["width"], r["height"]) == (64, 48)
        assert r["msssim_scales"] == 3 and 0 < r["msssim"] <= 1
        assert r["psnr"] > 0
    by = {(r["image"], r["codec"], r["setting"]): r for r in rows}
    for img in ("a.png", "b.png"):
        for q in (1, 2):
            g, s, l, p = (by[(img, f"ldem-{m}", q)] for m in ev.ENTROPY_MODES + ("plain",))
            assert l["bytes"] <= min(g["bytes"], p["bytes"]) + 8  # never more than a few bytes above global
            assert p["psnr"] == l["psnr"] and p["side_share"] == 0.0
            assert g["psnr"] == s["psnr"] == l["psnr"] and g["msssim"] == s["msssim"] == l["msssim"]
            assert g["side_share"] == 0.0 and 0 <= l["side_share"] < 1
            assert l["side_share"] == pytest.approx((l["bits_tables"] + l["bits_map"]) / (8 * l["bytes"]))


def test_eval_summary(eval_run):
    s = json.loads((eval_run / "summary.json").read_text())
    assert s["qualities"] == [1, 2]
    assert [im["name"] for im in s["images"]] == ["a.png", "b.png"]
    assert set(s["curves"]) >= {"ldem-global", "ldem-static", "ldem-local", "jpeg-420", "jpeg-444", "webp"}
    assert [p["setting"] for p in s["curves"]["jpeg-420"]] == [30, 80]
    if not reference.avif_available():
        assert s["references"]["avif"]["available"] is False and "AVIF" in s["references"]["avif"]["reason"]
    assert set(s["bd_rate"]["psnr"]) == set(s["curves"]) - {"ldem-local"}
    assert s["bd_rate"]["method"] == "pchip"
    lvg = s["local_vs_global"]
    rows = {(r["image"], r["codec"], r["setting"]): r for r in er.read_rows(eval_run)}
    for p in lvg["per_quality"]:
        q = p["quality"]
        reds = [100 * (1 - rows[(i, "ldem-local", q)]["bytes"] / rows[(i, "ldem-global", q)]["bytes"])
                for i in ("a.png", "b.png")]
        assert p["images"] == 2
        assert p["mean_reduction_pct"] == pytest.approx(np.mean(reds))
        assert lvg["per_image"]["a.png"][str(q)] == pytest.approx(reds[0], abs=1e-5)
        assert 0 <= p["mean_side_share_pct"] < 100
    assert lvg["overall"]["pairs"] == 4
    assert s["figures"] == ["rd_psnr.png", "rd_msssim.png", "rate_reduction.png", "block_maps.png"]
    with np.load(eval_run / "block_maps.npz") as z:
        assert z["0000_q1_models"].ndim == 3 and z["0001_q2_categories"].shape == z["0001_q2_models"].shape


# ---------------------------------------------------------------------------------------
# Docstring examples
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("module", [er])
def test_doctests(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0
