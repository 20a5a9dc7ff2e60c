"""ldem.evaluate: PCHIP, BD-rate against worked examples, MS-SSIM, and a tiny `ldem eval` run."""
import csv
import doctest
import json
import math

import numpy as np
import pytest

from ldem import evaluate as ev
from ldem import reference


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Small tensors: one thread is fastest and keeps the run from competing for cores."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

# ---------------------------------------------------------------------------------------
# Worked examples with published answers
# ---------------------------------------------------------------------------------------
# JCTVC-E137 data as used by the Netflix VMAF BD-rate tests (python/test/bd_rate_calculator_test.py,
# class BDrateCalculatorJCTVCTest): (rate, PSNR) pairs, expected BD-rate as a fraction with
# places=4 there (here in %, so a tolerance of 0.005 percentage points).
JCTVC_E137 = [
    ([(108048.8736, 43.6471), (61279.976, 40.3953), (33905.6656, 37.247), (18883.6928, 34.2911)],
     [(108061.2784, 43.6768), (61299.9936, 40.4232), (33928.7472, 37.2761), (18910.912, 34.3147)],
     -0.465215420752807),
    ([(40433.8848, 37.5761), (7622.7456, 35.3756), (2394.488, 33.8977), (1017.6184, 32.0603)],
     [(40370.12, 37.5982), (7587.0024, 35.4025), (2390.0944, 33.9194), (1017.0984, 32.0822)],
     -1.8779823450567612),
]


def _split(points):
    return [r for r, _ in points], [q for _, q in points]


@pytest.mark.parametrize("anchor,test,expected", JCTVC_E137)
def test_bd_rate_pchip_matches_jctvc_e137(anchor, test, expected):
    got = ev.bd_rate(*_split(anchor), *_split(test), method="pchip")
    assert got == pytest.approx(expected, abs=0.005)
    # the piecewise-cubic integral is exact here, so the agreement is much closer than that
    assert got == pytest.approx(expected, abs=1e-9)


def test_bd_rate_cubic_published_x264_x265_example():
    # videonerd.website/how-compute-bd-rate: x265 as anchor, x264 as test, VCEG-M33 cubic fit
    # (the Anserw/Bjontegaard_metric BD_RATE) prints -12.098.
    x264 = ([9.525, 14.27, 19.113, 24.393], [37.73, 39.07, 40.07, 40.95])
    x265 = ([8.914, 13.330, 17.880, 22.990], [37.02, 38.37, 39.42, 40.35])
    assert round(ev.bd_rate(*x265, *x264, method="cubic"), 3) == -12.098


def test_bd_rate_cubic_published_overshoot_example():
    # Anserw/Bjontegaard_metric issue #3: the cubic fit of these SSIM-like curves (values near
    # 99.9) swings wildly and its BD_RATE printed 100421.22666772884; PCHIP stays sensible.
    ref = ([5012.39, 4012.23, 3014.7, 2014.65], [99.97751, 99.91607, 99.51432, 96.622])
    main = ([5096.02, 4000.03, 3067.89, 2054.35], [99.98146, 99.94996, 99.66744, 97.1181])
    assert ev.bd_rate(*ref, *main, method="cubic") == pytest.approx(100421.22666772884, rel=1e-5)
    assert -10 < ev.bd_rate(*ref, *main, method="pchip") < 0


# ---------------------------------------------------------------------------------------
# Exact synthetic cases
# ---------------------------------------------------------------------------------------
RATES = [0.12, 0.31, 0.55, 0.9, 1.6]
PSNRS = [27.0, 29.5, 31.8, 33.9, 36.7]


@pytest.mark.parametrize("method", ["pchip", "cubic"])
def test_bd_rate_constant_rate_ratio_is_exact(method):
    for k, expected in [(0.8, -20.0), (1.25, 25.0), (0.5, -50.0), (1.0, 0.0)]:
        got = ev.bd_rate(RATES, PSNRS, [k * r for r in RATES], PSNRS, method=method)
        assert got == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("method", ["pchip", "cubic"])
def test_bd_rate_linear_log_rate_curves_at_other_points(method):
    # ln R_A = a + b·P; B uses 0.8x the rate (sampled at other PSNRs): exactly -20 %.
    a, b = -8.0, 0.25
    pa = np.array([28.0, 30.0, 33.0, 37.0])
    pb = np.array([27.0, 29.3, 31.1, 34.4, 38.0])
    got = ev.bd_rate(np.exp(a + b * pa), pa, 0.8 * np.exp(a + b * pb), pb, method=method)
    assert got == pytest.approx(-20.0, abs=1e-9)
    # ln R_B = ln R_A + c·(P − 30): the mean log difference over [28, 37] is c·(32.5 − 30).
    c = 0.04
    got = ev.bd_rate(np.exp(a + b * pa), pa, np.exp(a + b * pb + c * (pb - 30)), pb, method=method)
    assert got == pytest.approx(100 * math.expm1(c * 2.5), abs=1e-9)


def test_bd_rate_order_and_antisymmetry():
    rb = [0.11, 0.3, 0.6, 0.85, 1.7]
    pb = [27.2, 29.9, 32.3, 33.8, 36.9]
    forward = ev.bd_rate(RATES, PSNRS, rb, pb)
    backward = ev.bd_rate(rb, pb, RATES, PSNRS)
    assert (1 + forward / 100) * (1 + backward / 100) == pytest.approx(1.0, abs=1e-12)
    # point order does not matter
    assert ev.bd_rate(RATES[::-1], PSNRS[::-1], rb, pb) == pytest.approx(forward, abs=1e-12)


def test_bd_quality_shift():
    for method in ("pchip", "cubic"):
        assert ev.bd_quality(RATES, PSNRS, RATES, [p + 0.7 for p in PSNRS], method=method) == pytest.approx(0.7)


def test_bd_rate_errors():
    with pytest.raises(ValueError, match="overlap"):
        ev.bd_rate(RATES, PSNRS, RATES, [p + 20 for p in PSNRS])
    with pytest.raises(ValueError, match="at least 2"):
        ev.bd_rate(RATES[:1], PSNRS[:1], RATES, PSNRS)
    with pytest.raises(ValueError, match="positive"):
        ev.bd_rate([0.0, 1.0], [30, 31], RATES, PSNRS)
    with pytest.raises(ValueError, match="distinct"):
        ev.bd_rate([0.5, 1.0], [30, 30], RATES, PSNRS)
    with pytest.raises(ValueError, match="method"):
        ev.bd_rate(RATES, PSNRS, RATES, PSNRS, method="akima")


# ---------------------------------------------------------------------------------------
# PCHIP
# ---------------------------------------------------------------------------------------
def test_pchip_interpolates_and_reproduces_lines():
    x = np.array([0.0, 0.7, 1.5, 3.0, 3.2])
    y = np.array([1.0, 2.0, 2.2, 5.0, 5.1])
    assert np.allclose(ev.pchip_interpolate(x, y, x), y)
    lx = np.linspace(-1, 4, 7)
    assert np.allclose(ev.pchip_interpolate(lx, 2 * lx - 1, [0.1, 2.9]), [-0.8, 4.8])
    assert np.allclose(ev.pchip_slopes(lx, 2 * lx - 1), 2.0)
    assert ev.pchip_integral(lx, 2 * lx - 1, 0.0, 3.0) == pytest.approx(6.0)


def test_pchip_is_monotone_without_overshoot():
    # data where a cubic spline overshoots: a step
    x = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    y = np.array([0.0, 0.0, 0.1, 1.0, 1.0, 1.0])
    xs = np.linspace(0, 5, 2001)
    v = ev.pchip_interpolate(x, y, xs)
    assert (np.diff(v) >= -1e-12).all()
    assert v.min() >= -1e-12 and v.max() <= 1 + 1e-12
    # decreasing data stay decreasing; a local maximum gets a flat slope
    assert (np.diff(ev.pchip_interpolate(x, -y, xs)) <= 1e-12).all()
    assert ev.pchip_slopes([0, 1, 2], [0, 1, 0])[1] == 0.0


def test_pchip_integral_matches_dense_quadrature():
    x = np.array([26.0, 28.5, 31.0, 33.2, 36.9])
    y = np.log([0.1, 0.22, 0.5, 0.9, 2.1])
    xs = np.linspace(27.3, 35.1, 200001)
    v = ev.pchip_interpolate(x, y, xs)
    trapezoid = float(np.sum((v[1:] + v[:-1]) / 2 * np.diff(xs)))
    assert ev.pchip_integral(x, y, 27.3, 35.1) == pytest.approx(trapezoid, abs=1e-8)
    assert ev.pchip_integral(x, y, 35.1, 27.3) == pytest.approx(-trapezoid, abs=1e-8)


# ---------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------
def test_msssim_db():
    assert ev.msssim_db(0.9) == pytest.approx(10.0)
    assert ev.msssim_db(1.0) == math.inf
    assert math.isnan(ev.msssim_db(float("nan")))


def test_ms_ssim_scales_match_pytorch_msssim():
    import torch
    from pytorch_msssim import ms_ssim as lib
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (170, 181, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-30, 31, a.shape), 0, 255).astype(np.uint8)
    X = torch.from_numpy(a.transpose(2, 0, 1).astype(np.float32))[None]
    Y = torch.from_numpy(b.transpose(2, 0, 1).astype(np.float32))[None]
    # the same computation as the library: 5 scales, and 3 scales with the rescaled weights
    assert ev._ms_ssim_scales(X, Y, 5) == pytest.approx(float(lib(X, Y, data_range=255)), abs=1e-6)
    w = [0.0448, 0.2856, 0.3001]
    assert ev._ms_ssim_scales(X, Y, 3) == pytest.approx(
        float(lib(X, Y, data_range=255, weights=[v / sum(w) for v in w])), abs=1e-6)
    v, scales = ev.ms_ssim(a, b)
    assert scales == 5 and 0.9 < v < 1
    assert [ev.ms_ssim(a[:n], b[:n])[1] for n in (161, 160, 81, 41, 21, 11)] == [5, 4, 4, 3, 2, 1]
    v, scales = ev.ms_ssim(a[:10], b[:10])
    assert math.isnan(v) and scales == 0


# ---------------------------------------------------------------------------------------
# A tiny evaluation run
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    from PIL import Image
    import ldem
    folder = tmp_path_factory.mktemp("images")
    with Image.open(ldem.sample_image_path()) as im:
        im.convert("RGB").crop((0, 0, 64, 48)).save(folder / "a.png")
        im.convert("RGB").crop((200, 120, 264, 168)).save(folder / "b.png")
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture(scope="module")
def run(image_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    status = ev.main([str(image_folder), "--qualities", "1", "2", "--out", str(out),
                      "--reference-qualities", "30", "80", "--quiet"])
    assert status == 0
    return out


def test_eval_writes_files(run):
    for name in ("results.csv", "summary.json", "block_maps.npz", "rd_psnr.png", "rd_msssim.png",
                 "rate_reduction.png", "block_maps.png"):
        assert (run / name).is_file(), name


def test_eval_csv_rows(run):
    with open(run / "results.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == ev.CSV_COLUMNS
        raw = list(reader)
    rows = ev.read_rows(run)
    assert len(rows) == len(raw)
    refs = [c for c in reference.REFERENCE_CODECS if c != "avif" or reference.avif_available()]
    expected = {(img, f"ldem-{m}", q) for img in ("a.png", "b.png") for m in ev.ENTROPY_MODES for q in (1, 2)}
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
            g, s, l = (by[(img, f"ldem-{m}", q)] for m in ev.ENTROPY_MODES)
            assert l["bytes"] <= g["bytes"] + 8  # local is never more than a few bytes above global
            assert g["psnr"] == s["psnr"] == l["psnr"] and g["msssim"] == s["msssim"] == l["msssim"]
            assert g["side_share"] == 0.0 and 0 <= l["side_share"] < 1
            assert l["side_share"] == pytest.approx((l["bits_tables"] + l["bits_map"]) / (8 * l["bytes"]))


def test_entropy_modes_decode_to_identical_pixels(image_folder):
    from ldem.codec import ImageCodec
    img = ev.load_rgb(image_folder / "a.png")
    codec = ImageCodec.pretrained(2)
    outs = [codec.decompress_array(codec.compress(img, entropy=m)) for m in ev.ENTROPY_MODES]
    assert all(np.array_equal(outs[0], o) for o in outs[1:])


def test_eval_summary(run):
    s = json.loads((run / "summary.json").read_text())
    assert s["qualities"] == [1, 2]
    assert [im["name"] for im in s["images"]] == ["a.png", "b.png"]
    assert set(s["curves"]) >= {"ldem-global", "ldem-static", "ldem-local", "jpeg-420", "jpeg-444", "webp"}
    assert [p["setting"] for p in s["curves"]["jpeg-420"]] == [30, 80]
    if not reference.avif_available():
        assert s["references"]["avif"]["available"] is False and "AVIF" in s["references"]["avif"]["reason"]
    assert set(s["bd_rate"]["psnr"]) == set(s["curves"]) - {"ldem-local"}
    assert s["bd_rate"]["method"] == "pchip"
    lvg = s["local_vs_global"]
    rows = {(r["image"], r["codec"], r["setting"]): r for r in ev.read_rows(run)}
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
    with np.load(run / "block_maps.npz") as z:
        assert z["0000_q1_models"].ndim == 3 and z["0001_q2_categories"].shape == z["0001_q2_models"].shape


def test_figures_from_saved_results(run):
    for p in ("rd_psnr.png", "block_maps.png"):
        (run / p).unlink()
    paths = ev.make_figures(run)
    assert all(p.is_file() and p.stat().st_size > 1000 for p in paths)


def test_tiny_and_odd_images(tmp_path):
    from PIL import Image
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (1, 1, 3), dtype=np.uint8)).save(src / "one.png")
    Image.fromarray(rng.integers(0, 256, (7, 13), dtype=np.uint8)).save(src / "gray.png")
    Image.fromarray(rng.integers(0, 256, (9, 5, 4), dtype=np.uint8)).save(src / "alpha.png")
    Image.fromarray(np.full((12, 12, 3), 77, np.uint8)).save(src / "flat.png")
    (src / "broken.png").write_bytes(b"not a png")
    s = ev.evaluate_folder(src, [1], tmp_path / "out", reference_qualities=[50], progress=False, figures=True)
    assert sorted(im["name"] for im in s["images"]) == ["alpha.png", "flat.png", "gray.png", "one.png"]
    assert [x["image"] for x in s["skipped"]] == ["broken.png"]
    rows = ev.read_rows(tmp_path / "out")
    assert all(r["bpp"] > 0 for r in rows)
    assert all(math.isnan(r["msssim"]) for r in rows if r["image"] != "flat.png")
    json.loads((tmp_path / "out" / "summary.json").read_text())  # valid JSON (no NaN)


# ---------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------
def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        ev.main([str(tmp_path / "nope")])


def test_folder_without_images(tmp_path):
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match="no images"):
        ev.main([str(tmp_path)])


def test_file_instead_of_folder(tmp_path):
    f = tmp_path / "x.png"
    f.write_bytes(b"")
    with pytest.raises(ValueError, match="not a folder"):
        ev.main([str(f)])


@pytest.mark.parametrize("q", ["0", "99", "-1"])
def test_bad_quality(image_folder, tmp_path, q):
    with pytest.raises(ValueError, match=f"quality {q} does not exist"):
        ev.main([str(image_folder), "--qualities", q, "--out", str(tmp_path)])
    assert not (tmp_path / "results.csv").exists()


def test_bad_options(image_folder, tmp_path):
    with pytest.raises(ValueError, match="limit"):
        ev.main([str(image_folder), "--limit", "0", "--out", str(tmp_path)])
    with pytest.raises(ValueError, match="0..100"):
        ev.main([str(image_folder), "--reference-qualities", "120", "--out", str(tmp_path)])
    with pytest.raises(FileNotFoundError, match="no such results folder"):
        ev.main([str(tmp_path / "none"), "--figures-only"])


def test_cli_reports_errors_in_one_line(tmp_path, capsys):
    from ldem.cli import main
    assert main(["eval", str(tmp_path / "nope")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("ldem: error:") and "no such folder" in err and "\n" not in err


# ---------------------------------------------------------------------------------------
# Docstring examples
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("module", [ev, reference])
def test_doctests(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0
