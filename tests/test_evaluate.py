"""ldem.evaluate: a tiny `ldem eval` run, the files it writes, and its errors.

The rows and summaries of a run are tested in test_eval_results.py, its figures in
test_eval_figures.py."""
import doctest
import json
import math

import numpy as np
import pytest

from ldem import evaluate as ev
from ldem import reference


pytestmark = pytest.mark.usefixtures("one_torch_thread")

# ---------------------------------------------------------------------------------------
# A tiny evaluation run
# ---------------------------------------------------------------------------------------


def test_eval_writes_files(eval_run):
    for name in ("results.csv", "summary.json", "block_maps.npz", "rd_psnr.png", "rd_msssim.png",
                 "rate_reduction.png", "block_maps.png"):
        assert (eval_run / name).is_file(), name


def test_entropy_modes_decode_to_identical_pixels(eval_images):
    from ldem.codec import ImageCodec
    img = ev.load_rgb(eval_images / "a.png")
    codec = ImageCodec.pretrained(2)
    outs = [codec.decompress_array(codec.compress(img, entropy=m)) for m in ev.ENTROPY_MODES]
    assert all(np.array_equal(outs[0], o) for o in outs[1:])


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
def test_bad_quality(eval_images, tmp_path, q):
    with pytest.raises(ValueError, match=f"quality {q} does not exist"):
        ev.main([str(eval_images), "--qualities", q, "--out", str(tmp_path)])
    assert not (tmp_path / "results.csv").exists()


def test_bad_options(eval_images, tmp_path):
    with pytest.raises(ValueError, match="limit"):
        ev.main([str(eval_images), "--limit", "0", "--out", str(tmp_path)])
    with pytest.raises(ValueError, match="0..100"):
        ev.main([str(eval_images), "--reference-qualities", "120", "--out", str(tmp_path)])
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
