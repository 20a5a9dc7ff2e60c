"""ldem.cli: the ldem command's jobs and its error paths (one line on stderr, no traceback)."""
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("torch")
from PIL import Image  # noqa: E402

import ldem  # noqa: E402
from ldem.cli import main  # noqa: E402


@pytest.fixture()
def png(tmp_path):
    with Image.open(ldem.sample_image_path()) as im:
        im.crop((0, 0, 70, 50)).save(tmp_path / "in.png")
    return tmp_path / "in.png"


def _one_line_error(capsys):
    err = capsys.readouterr().err
    assert err.startswith("ldem: error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


def test_compress_info_decompress(tmp_path, png, capsys):
    out = tmp_path / "x.ldem"
    assert main(["compress", str(png), str(out), "-q", "2", "--entropy", "local"]) == 0
    assert out.read_bytes()[:4] == b"LDEM"
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "quality 2" in text and "70×50" in text and "latent data" in text and "total" in text
    assert "trained level 1 " in text  # quality 2 is level 1 of the first set of transforms
    dec = tmp_path / "x.png"
    assert main(["decompress", str(out), str(dec)]) == 0
    with Image.open(dec) as im:
        assert im.size == (70, 50) and im.mode == "RGB"
        expect = ldem.ImageCodec.pretrained(2).decompress_array(out.read_bytes())
        assert np.array_equal(np.asarray(im), expect)


def test_demo(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    n = ldem.ImageCodec.pretrained(1).num_qualities
    rows = [line for line in out.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == n
    assert "identical pixels" in out


@pytest.mark.parametrize("args", [
    ["compress", "/nonexistent.png", "out.ldem"],
    ["decompress", "/nonexistent.ldem", "out.png"],
    ["info", "/nonexistent.ldem"],
])
def test_missing_file(args, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 1
    assert "no such file" in _one_line_error(capsys)


def test_bad_quality(png, tmp_path, capsys):
    assert main(["compress", str(png), str(tmp_path / "x.ldem"), "-q", "99"]) == 1
    assert "quality" in _one_line_error(capsys)


def test_not_an_image(tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"hello")
    assert main(["compress", str(bad), str(tmp_path / "x.ldem")]) == 1
    assert "not an image" in _one_line_error(capsys)


def test_corrupt_file(png, tmp_path, capsys):
    out = tmp_path / "x.ldem"
    assert main(["compress", str(png), str(out)]) == 0
    data = bytearray(out.read_bytes())
    data[-10] ^= 0xFF
    out.write_bytes(bytes(data))
    for cmd in (["decompress", str(out), str(tmp_path / "y.png")], ["info", str(out)]):
        capsys.readouterr()
        assert main(cmd) == 1  # info checks the stream's CRC-32 too
        assert "corrupt" in _one_line_error(capsys)
    (tmp_path / "junk.ldem").write_bytes(b"JUNK" * 8)
    capsys.readouterr()
    assert main(["info", str(tmp_path / "junk.ldem")]) == 1
    assert "bad magic" in _one_line_error(capsys)


def test_bad_output_extension(png, tmp_path, capsys):
    out = tmp_path / "x.ldem"
    assert main(["compress", str(png), str(out)]) == 0
    capsys.readouterr()
    assert main(["decompress", str(out), str(tmp_path / "y.unknownext")]) == 1
    _one_line_error(capsys)


def test_usage_errors_exit_2():
    with pytest.raises(SystemExit) as e:
        main([])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["compress", "a.png", "b.ldem", "--entropy", "best"])
    assert e.value.code == 2


def test_module_entry_point(png, tmp_path):
    r = subprocess.run([sys.executable, "-m", "ldem.cli", "compress", str(png), str(tmp_path / "x.ldem"), "-q", "1"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-m", "ldem.cli", "decompress", str(tmp_path / "nope.ldem"), "y.png"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr and r.stderr.startswith("ldem: error:")
