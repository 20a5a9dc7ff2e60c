"""ldem._native: the compiled core is imported in one place, and a source tree without it
gives one clear error instead of ``No module named 'ldem._core'``."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

import ldem
from ldem import _native


def test_core_is_the_compiled_module():
    assert _native.core.__name__ == "ldem._core"
    assert ldem.DecodeError is _native.core.DecodeError
    assert issubclass(_native.CoreNotBuiltError, ImportError)


def _run_without_site(cwd, code):
    # -S: no site-packages processing, so no editable-install finder; numpy comes from PYTHONPATH
    env = dict(os.environ, PYTHONPATH=str(Path(np.__file__).resolve().parents[1]))
    return subprocess.run([sys.executable, "-S", "-c", code], cwd=cwd, env=env, capture_output=True, text=True)


def test_source_tree_without_core(tmp_path):
    src = Path(ldem.__file__).resolve().parent
    shutil.copytree(src, tmp_path / "ldem", ignore=shutil.ignore_patterns("_core*", "__pycache__", "pretrained"))
    for code in ("import ldem", "import ldem.coder"):
        r = _run_without_site(tmp_path, code)
        assert r.returncode == 1
        last = r.stderr.strip().splitlines()[-1]
        assert last.startswith("ldem._native.CoreNotBuiltError: ldem's compiled core is not built in this source "
                               f"tree ({tmp_path / 'ldem'})"), r.stderr
        assert "pip install -e ." in last and "No module named" not in r.stderr


def test_source_tree_with_core_imports(tmp_path):
    src = Path(ldem.__file__).resolve().parent
    shutil.copytree(src, tmp_path / "ldem", ignore=shutil.ignore_patterns("__pycache__", "pretrained"))
    r = _run_without_site(tmp_path, "import ldem; print(ldem.__file__)")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(tmp_path / "ldem" / "__init__.py")
