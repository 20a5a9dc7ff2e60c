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
    assert "trained level 2 of " in text  # quality 2 is the second level of the first set of transforms
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


def _png_header(width, height):
    """A small PNG file claiming width×height: its IHDR chunk and one short IDAT chunk."""
    import struct
    import zlib

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(1000))) + \
        chunk(b"IEND", b"")


def test_never_overwrites_the_input(png, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    original = png.read_bytes()
    (tmp_path / "link.png").hardlink_to(png)
    (tmp_path / "sym.png").symlink_to(png)
    for out in [str(png), "./in.png", "in.png", "link.png", "sym.png", str(tmp_path / "." / "in.png")]:
        for force in ([], ["-f"]):
            capsys.readouterr()
            assert main(["compress", "in.png", out, "-q", "1"] + force) == 1
            assert "input" in _one_line_error(capsys)
            assert png.read_bytes() == original
    assert main(["compress", "in.png", "x.ldem", "-q", "1"]) == 0
    ldem_bytes = (tmp_path / "x.ldem").read_bytes()
    (tmp_path / "to-input.png").symlink_to(tmp_path / "x.ldem")
    capsys.readouterr()
    assert main(["decompress", "x.ldem", "to-input.png", "-f"]) == 1
    assert "input" in _one_line_error(capsys)
    assert (tmp_path / "x.ldem").read_bytes() == ldem_bytes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "link.png", "sym.png", "to-input.png", "x.ldem"]


def test_existing_output_needs_force(png, tmp_path, capsys):
    out = tmp_path / "x.ldem"
    out.write_bytes(b"keep me")
    assert main(["compress", str(png), str(out), "-q", "1"]) == 1
    assert "already exists" in _one_line_error(capsys) and out.read_bytes() == b"keep me"
    assert main(["compress", str(png), str(out), "-q", "1", "--force"]) == 0
    assert out.read_bytes()[:4] == b"LDEM"
    dec = tmp_path / "y.png"
    dec.write_bytes(b"old")
    capsys.readouterr()
    assert main(["decompress", str(out), str(dec)]) == 1
    assert "already exists" in _one_line_error(capsys) and dec.read_bytes() == b"old"
    assert main(["decompress", str(out), str(dec), "-f"]) == 0
    with Image.open(dec) as im:
        assert im.size == (70, 50)


def test_failed_write_leaves_nothing_behind(png, tmp_path, capsys, monkeypatch):
    """A write that fails midway keeps the old output and leaves no temporary file."""
    import os
    out = tmp_path / "x.ldem"
    out.write_bytes(b"old output")

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "fsync", broken_fsync)
    assert main(["compress", str(png), str(out), "-q", "1", "-f"]) == 1
    assert "No space left" in _one_line_error(capsys)
    assert out.read_bytes() == b"old output"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "x.ldem"]
    assert main(["compress", str(png), str(tmp_path / "new.ldem"), "-q", "1"]) == 1
    _one_line_error(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "x.ldem"]
    assert main(["compress", str(png), str(tmp_path / "no" / "such" / "folder.ldem")]) == 1
    assert "does not exist" in _one_line_error(capsys)


def test_stdin_and_stdout(png, tmp_path):
    cli = [sys.executable, "-m", "ldem.cli"]  # run outside the source tree: the installed ldem
    r = subprocess.run(cli + ["compress", "-", "-", "-q", "1"], input=png.read_bytes(), capture_output=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout[:4] == b"LDEM" and b"bytes" in r.stderr
    data = r.stdout
    r = subprocess.run(cli + ["decompress", "-", "-"], input=data, capture_output=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    import io
    with Image.open(io.BytesIO(r.stdout)) as im:
        assert im.format == "PNG" and im.size == (70, 50)
        assert np.array_equal(np.asarray(im), ldem.ImageCodec.pretrained(1).decompress_array(data))
    r = subprocess.run(cli + ["decompress", "-", "-", "--format", "bmp", "--quiet"], input=data, capture_output=True, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout[:2] == b"BM" and r.stderr == b""
    r = subprocess.run(cli + ["info", "-"], input=data, capture_output=True, cwd=tmp_path)
    assert r.returncode == 0 and b"70\xc3\x9750" in r.stdout


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"ldem {ldem.__version__}"


def test_unbounded_inputs_are_refused(tmp_path, capsys):
    """/dev/zero is read only up to the limit; an image that claims a huge size is refused
    before its pixels are decoded (Pillow's decompression-bomb error does not escape)."""
    assert main(["decompress", "/dev/zero", str(tmp_path / "y.png"), "--max-pixels", "1000"]) == 1
    assert "limit" in _one_line_error(capsys)
    assert main(["info", "/dev/zero", "--max-pixels", "1000"]) == 1
    _one_line_error(capsys)
    for w, h in [(20000, 20000), (70000, 1), (65535, 520)]:
        bomb = tmp_path / f"bomb{w}.png"
        bomb.write_bytes(_png_header(w, h))
        assert main(["compress", str(bomb), str(tmp_path / "x.ldem")]) == 1
        assert "max-pixels" in _one_line_error(capsys)
    assert not (tmp_path / "x.ldem").exists()


def test_limits_are_the_same_on_both_sides(png, tmp_path, capsys):
    """Every file compress writes, decompress reads at the same --max-pixels."""
    out = tmp_path / "x.ldem"
    assert main(["compress", str(png), str(out), "-q", "1", "--max-pixels", "3499"]) == 1
    assert "--max-pixels" in _one_line_error(capsys) and not out.exists()
    assert main(["compress", str(png), str(out), "-q", "1", "--max-pixels", "3500"]) == 0
    assert main(["decompress", str(out), str(tmp_path / "y.png"), "--max-pixels", "3500"]) == 0
    capsys.readouterr()
    assert main(["decompress", str(out), str(tmp_path / "z.png"), "--max-pixels", "3499"]) == 1
    assert "--max-pixels" in _one_line_error(capsys)
    with pytest.raises(SystemExit) as e:
        main(["compress", str(png), str(out), "--max-pixels", "0"])
    assert e.value.code == 2


def test_hostile_model_files_give_one_line(png, tmp_path, capsys):
    bad = [png, tmp_path / "empty.npz", tmp_path / "folder", tmp_path / "junk.npz"]
    (tmp_path / "empty.npz").write_bytes(b"")
    (tmp_path / "folder").mkdir()
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04" + bytes(100))
    for model in bad:
        capsys.readouterr()
        assert main(["compress", str(png), str(tmp_path / "x.ldem"), "--model", str(model)]) == 1
        err = _one_line_error(capsys)
        assert "allow_pickle" not in err


def test_unexpected_errors_give_one_line(png, tmp_path, capsys, monkeypatch):
    from ldem import codec

    def boom(*a, **k):
        raise RuntimeError("something broke")
    monkeypatch.setattr(codec.ImageCodec, "compress", boom)
    assert main(["compress", str(png), str(tmp_path / "x.ldem")]) == 1
    assert "RuntimeError: something broke" in _one_line_error(capsys)


def test_model_memory_limit_is_a_flag(png, tmp_path, capsys):
    out = tmp_path / "x.ldem"
    assert main(["compress", str(png), str(out), "-q", "1", "--max-model-bytes", "1000000"]) == 1
    assert "exceeds max_bytes=1000000" in _one_line_error(capsys)
    assert main(["compress", str(png), str(out), "-q", "1", "--max-model-bytes", str(2**29)]) == 0


def test_docstring_examples():
    import doctest
    import ldem.cli
    result = doctest.testmod(ldem.cli, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted >= 2


def test_compress_help_gives_the_quality_range_and_the_entropy_modes(capsys):
    from ldem.cli import SHIPPED_QUALITIES
    assert SHIPPED_QUALITIES == ldem.ImageCodec.pretrained(1).num_qualities
    with pytest.raises(SystemExit) as e:
        main(["compress", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert f"1 (smallest files) to {SHIPPED_QUALITIES}" in " ".join(text.split())
    modes = {line.split()[0]: line for line in text.splitlines() if line.startswith("  ") and
             line.split()[0] in ("global", "static", "local")}
    assert sorted(modes) == ["global", "local", "static"] and "(default)" in modes["local"]


def test_a_tiny_image_says_why_it_is_coded_in_global_mode(tmp_path, capsys):
    one = tmp_path / "one.png"
    Image.new("RGB", (1, 1), (10, 200, 30)).save(one)
    assert main(["compress", str(one), str(tmp_path / "one.ldem"), "--entropy", "local"]) == 0
    line = capsys.readouterr().out
    assert "entropy global; local asked: global is smaller for this image" in line and line.count("\n") == 1
    assert main(["compress", str(one), str(tmp_path / "g.ldem"), "--entropy", "global"]) == 0
    assert "asked" not in capsys.readouterr().out
    assert main(["info", str(tmp_path / "one.ldem")]) == 0
    text = capsys.readouterr().out
    assert "entropy         global: one model per latent channel, no block map" in text
    assert "latent          192 channels of 1×1" in text


def test_info_gives_the_block_size_and_the_block_grid(tmp_path, capsys):
    """A 30-row latent with blocks clipped to 30×32: the size and the grid are named apart."""
    import re
    image = tmp_path / "wide.png"
    with Image.open(ldem.sample_image_path()) as im:
        im.convert("RGB").resize((640, 480)).save(image)
    out = tmp_path / "wide.ldem"
    assert main(["compress", str(image), str(out), "-q", "2"]) == 0
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    info = ldem.ImageCodec.pretrained(2).info(out.read_bytes())
    assert info["latent_shape"] == (192, 30, 40) and "latent          192 channels of 30×40" in text
    bh, bw = info["latent_block"]
    C, nby, nbx = ldem.block_grid(info["latent_shape"], (bh, bw))
    m = re.search(r"blocks of (\d+)×(\d+) latent samples: (\d+)×(\d+) per channel, (\d+) in all", text)
    assert m and tuple(map(int, m.groups())) == (bh, bw, nby, nbx, C * nby * nbx)


def test_lossy_outputs_say_so_and_take_a_quality(png, tmp_path, capsys):
    out = tmp_path / "x.ldem"
    assert main(["compress", str(png), str(out), "-q", "3"]) == 0
    capsys.readouterr()
    assert main(["decompress", str(out), str(tmp_path / "y.png")]) == 0
    assert capsys.readouterr().err == ""
    sizes = {}
    for q in (20, 95):
        jpg = tmp_path / f"y{q}.jpg"
        args = ["decompress", str(out), str(jpg)] + (["--output-quality", str(q)] if q != 95 else [])
        assert main(args) == 0
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"JPEG is lossy: the decoded image was re-encoded at quality {q}" in err
        sizes[q] = jpg.stat().st_size
    assert sizes[20] < sizes[95]
    with Image.open(tmp_path / "y95.jpg") as im:  # quality 95 is close to the decoded pixels
        expect = ldem.ImageCodec.pretrained(3).decompress_array(out.read_bytes())
        assert ldem.codec.psnr(np.asarray(im.convert("RGB")), expect) > 35
    assert main(["decompress", str(out), str(tmp_path / "q.jpg"), "--quiet"]) == 0
    assert capsys.readouterr().err == ""
    with pytest.raises(SystemExit) as e:
        main(["decompress", str(out), str(tmp_path / "z.jpg"), "--output-quality", "101"])
    assert e.value.code == 2


def test_a_missing_dependency_gives_one_line(png, tmp_path, capsys, monkeypatch):
    from ldem import codec

    def missing(*a, **k):
        raise ModuleNotFoundError("No module named 'torch'", name="torch")
    monkeypatch.setattr(codec.ImageCodec, "compress", missing)
    assert main(["compress", str(png), str(tmp_path / "x.ldem")]) == 1
    err = _one_line_error(capsys)
    assert "No module named 'torch'" in err and "internal error" not in err
    import ldem.cli

    def no_parser():  # the parser itself imports the codec's defaults
        raise ModuleNotFoundError("No module named 'PIL'", name="PIL")
    monkeypatch.setattr(ldem.cli, "_parser", no_parser)
    assert main(["info", "x.ldem"]) == 1
    assert "No module named 'PIL'" in _one_line_error(capsys)


def test_every_command_without_the_codec_extra_gives_one_line(png, tmp_path):
    """With torch, Pillow and tqdm missing, each command names the extra in one line."""
    ldem_file = tmp_path / "x.ldem"
    assert main(["compress", str(png), str(ldem_file), "-q", "1", "--quiet"]) == 0
    (tmp_path / "ck.pt").write_bytes(b"")
    commands = [["compress", str(png), "y.ldem"], ["decompress", str(ldem_file), "y.png"], ["info", str(ldem_file)],
                ["demo"], ["train", str(tmp_path), "--out", "run"],
                ["export", "ck.pt", "m.npz", "--data", str(tmp_path)]]
    block = "import sys\nfor m in ('torch', 'PIL', 'tqdm'):\n    sys.modules[m] = None\nfrom ldem.cli import main\n"
    for args in commands:
        r = subprocess.run([sys.executable, "-c", block + f"sys.exit(main({args!r}))"], capture_output=True,
                           text=True, cwd=tmp_path)
        assert r.returncode == 1 and r.stderr.count("\n") == 1, (args, r.stderr)
        assert r.stderr.startswith("ldem: error: ") and "needs the codec extra: pip install 'ldem[codec]'" in \
            r.stderr, (args, r.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.pt", "in.png", "x.ldem"]


def test_compress_effort(tmp_path, png, capsys):
    """--effort changes the search, not the pixels; a bad value is one line."""
    sizes = {}
    for effort in ("0", "3"):
        out = tmp_path / f"e{effort}.ldem"
        assert main(["compress", str(png), str(out), "-q", "3", "--effort", effort, "--quiet"]) == 0
        sizes[effort] = out.read_bytes()
    codec = ldem.ImageCodec.pretrained(3)
    assert np.array_equal(codec.decompress_array(sizes["0"]), codec.decompress_array(sizes["3"]))
    with pytest.raises(SystemExit):
        main(["compress", str(png), str(tmp_path / "x.ldem"), "--effort", "7"])
    assert "--effort" in capsys.readouterr().err
