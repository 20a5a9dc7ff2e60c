"""Builds the C++ unit tests (csrc/tests/test_<unit>.cc) with CMake + Ninja and runs them through ctest.

The core and the CPU emulation of the CUDA kernels are tested here without the Python
binding. The build tree is cached in build/cpp-tests/ (incremental rebuilds take a second
or two); it is configured with LDEM_BUILD_TESTS=ON, LDEM_BUILD_PYTHON=OFF and
LDEM_WITH_CUDA=OFF.
"""
import fcntl
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build" / "cpp-tests"


def _units():
    """The unit names of the C++ tests: csrc/tests/test_<unit>.cc."""
    return sorted(p.stem[len("test_"):] for p in (ROOT / "csrc" / "tests").glob("test_*.cc"))


def _tool(name: str):
    """A tool from PATH, else from the pip package of the same name (cmake, ninja)."""
    found = shutil.which(name)
    if found:
        return found
    try:
        mod = __import__(name)
        candidate = Path(getattr(mod, "CMAKE_BIN_DIR" if name == "cmake" else "BIN_DIR")) / name
        return str(candidate) if candidate.exists() else None
    except (ImportError, AttributeError):
        return None


def _compiler():
    for name in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _run(cmd, cwd, timeout):
    p = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=timeout)
    return p.returncode, p.stdout


def test_core_cpp_via_ctest():
    cmake, ninja, cxx = _tool("cmake"), _tool("ninja"), _compiler()
    ctest = shutil.which("ctest") or (str(Path(cmake).with_name("ctest")) if cmake else None)
    missing = [n for n, v in (("cmake", cmake), ("ctest", ctest), ("ninja", ninja), ("a C++ compiler", cxx)) if not v]
    if missing:
        pytest.skip("cannot build the C++ core test: " + ", ".join(missing) + " not found")
    units = _units() if (ROOT / "csrc" / "tests").is_dir() else []
    if not (ROOT / "CMakeLists.txt").exists() or not units:
        pytest.skip("the C++ sources are not next to this test (installed tests without a source tree)")

    BUILD.mkdir(parents=True, exist_ok=True)
    with open(BUILD / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent test runs share the cached tree
        cache = BUILD / "CMakeCache.txt"
        if cache.exists():
            # A cache that names another source tree or tools that no longer exist cannot be reused.
            text = cache.read_text(errors="replace")
            paths = re.findall(r"^CMAKE_(?:MAKE_PROGRAM|COMMAND|CXX_COMPILER):\w+=(.*)$", text, re.M)
            home = re.search(r"^CMAKE_HOME_DIRECTORY:\w+=(.*)$", text, re.M)
            if any(not Path(p).exists() for p in paths) or not home or Path(home.group(1)) != ROOT:
                shutil.rmtree(BUILD / "CMakeFiles", ignore_errors=True)
                cache.unlink()
        rc, out = _run([cmake, "-S", str(ROOT), "-B", str(BUILD), "-G", "Ninja",
                        f"-DCMAKE_MAKE_PROGRAM={ninja}", f"-DCMAKE_CXX_COMPILER={cxx}",
                        "-DCMAKE_BUILD_TYPE=Release", "-DLDEM_BUILD_TESTS=ON",
                        "-DLDEM_BUILD_PYTHON=OFF", "-DLDEM_WITH_CUDA=OFF"], ROOT, 300)
        assert rc == 0, "cmake configure failed:\n" + out[-6000:]
        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 2))
        targets = [f"test_{u}" for u in units]
        rc, out = _run([cmake, "--build", str(BUILD), "--target", *targets, "-j", jobs], ROOT, 900)
        assert rc == 0, "building the C++ tests failed:\n" + out[-6000:]
        rc, out = _run([ctest, "--output-on-failure", "--timeout", "600"], BUILD, 900)
    assert rc == 0, "ctest failed:\n" + out[-8000:]
    assert re.search(r"100% tests passed(, 0 tests failed)? out of [1-9]", out), out[-4000:]
    for u in units:  # every unit's test file is a ctest test that ran
        assert re.search(rf"Test +#\d+: test_{u} \.+ +Passed", out), f"test_{u} did not run:\n" + out[-4000:]
