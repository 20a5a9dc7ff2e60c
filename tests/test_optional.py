"""ldem._optional and the package without the codec extra: the coder API works with numpy
alone, and every codec entry point gives one clear error naming the extra."""
import subprocess
import sys
import textwrap

import pytest

import ldem
from ldem._optional import CODEC_EXTRA, MissingExtraError, require

BLOCK = "import sys\nfor m in ('torch', 'PIL', 'tqdm'):\n    sys.modules[m] = None\n"


def _run(code, cwd):
    return subprocess.run([sys.executable, "-c", BLOCK + textwrap.dedent(code)], cwd=cwd,
                          capture_output=True, text=True)


def test_require_names_every_missing_distribution():
    import math
    assert require("x", "math") is math
    assert require("x", "math", "zlib")[0] is math
    with pytest.raises(MissingExtraError) as e:
        require("ldem.something", "math", "no_such_module_a", "no_such_module_b.sub")
    assert str(e.value) == ("ldem.something needs the codec extra: pip install 'ldem[codec]' "
                            "(missing: no_such_module_a, no_such_module_b)")
    assert isinstance(e.value, ImportError) and e.value.missing == ["no_such_module_a", "no_such_module_b"]
    assert CODEC_EXTRA == {"torch": "torch", "PIL": "pillow", "tqdm": "tqdm"}


def test_import_ldem_does_not_import_the_codec(tmp_path):
    r = subprocess.run([sys.executable, "-c", "import sys, ldem; ldem.encode; ldem.LocalEntropyCoder; "
                        "print(sorted(m for m in ('torch', 'PIL', 'tqdm', 'ldem.codec') if m in sys.modules))"],
                       cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stderr
    assert "ImageCodec" in dir(ldem) and ldem.ImageCodec.__module__ == "ldem.codec"


def test_coder_api_without_the_extra(tmp_path):
    r = _run("""
        import numpy as np, ldem
        rng = np.random.default_rng(0)
        d = ldem.Dictionary.from_pmfs([[0.2, 0.6, 0.2], [0.1, 0.8, 0.1]], offsets=[-1, -1])
        y = rng.integers(-3, 4, size=(2, 16, 16), dtype=np.int32)
        m = np.zeros((2, 2, 2), np.int32)
        assert (ldem.decode(ldem.encode(y, m, d, block=(8, 8)), m, d, y.shape, block=(8, 8)) == y).all()
        lat = [rng.laplace(0, 2, (4, 32, 32)).round().astype(np.int32) for _ in range(2)]
        g = ldem.fit_global_models(lat)
        s = ldem.learn_dictionary(lat, 4, block=(8, 8), global_models=g)
        coder = ldem.LocalEntropyCoder(g, s, block_sizes=[(8, 8)])
        for mode in ("global", "static", "local"):
            assert (coder.decode(coder.encode(lat[0], mode=mode)) == lat[0]).all()
        print("ok")
        """, tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_codec_entry_points_name_the_extra(tmp_path):
    r = _run("""
        import ldem
        from ldem._optional import MissingExtraError
        for call in (lambda: ldem.ImageCodec.pretrained(3), lambda: ldem.ImageCodec.load("m.npz"),
                     lambda: ldem.ImageCodec.for_file(b"LDEM"), lambda: ldem.codec.open_image("x.png")):
            try:
                call()
            except MissingExtraError as e:
                print(e)
        """, tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:3] == ["ldem.ImageCodec needs the codec extra: pip install 'ldem[codec]' (missing: torch, pillow)"] * 3
    assert lines[3] == "ldem.images.open_image needs the codec extra: pip install 'ldem[codec]' (missing: pillow)"


def test_cli_without_the_extra_prints_one_line(tmp_path):
    r = _run(f"""
        from ldem.cli import main
        sys.exit(main(["compress", {str(ldem.sample_image_path())!r}, "y.ldem"]))
        """, tmp_path)
    assert r.returncode == 1 and r.stdout == ""
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith("ldem: error: ") and "pip install 'ldem[codec]'" in r.stderr
    assert not (tmp_path / "y.ldem").exists()
