#!/usr/bin/env bash
# Sanitizer CI: the core, its C++ tests and the Python module built with AddressSanitizer
# and UndefinedBehaviorSanitizer in a separate tree (build-asan/; the release module in
# ldem/ and the installed package are left alone), then
#   1. the C++ tests (csrc/tests) under ctest,
#   2. the hostile-input tests of tests/test_coder.py and tests/test_local.py, and the
#      tests of the CPU emulation of the CUDA kernels in tests/test_cuda.py,
#   3. a fixed-seed corpus of damaged streams (tests/fuzz_decoder.py; some of them are
#      also decoded by the emulated GPU decoder),
# the last two against the sanitized module (a copy of the package whose _core is the
# sanitized build, first on PYTHONPATH). Any report aborts the run (exit status != 0).
#
# Run it from any directory with the project's virtual environment active (or its python
# on PATH); it needs numpy, pytest, hypothesis, cmake, ninja (the [test] extra) and g++.
# pybind11 (a build requirement) is installed into the environment if it is missing.
# Settings: LDEM_FUZZ_STREAMS (default 300000), LDEM_FUZZ_SEED (default 20261206),
# LDEM_ASAN_BUILD (default build-asan). About 3-4 minutes on 2 cores from a clean tree.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${LDEM_ASAN_BUILD:-build-asan}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
STREAMS=${LDEM_FUZZ_STREAMS:-300000}
SEED=${LDEM_FUZZ_SEED:-20261206}
PY=$(command -v python || command -v python3)
CXX=${LDEM_SANITIZE_CXX:-g++}  # GCC: libasan is preloaded by its path below
JOBS=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc 2>/dev/null || echo 2)}
t0=$SECONDS

echo "== sanitizers: $("$PY" --version) $("$CXX" --version | head -n1), build in $BUILD"
"$PY" -c "import pybind11" 2>/dev/null || "$PY" -m pip install -q "pybind11>=2.12"
VERSION=$("$PY" -c "import re; print(re.search(r'__version__ = \"([^\"]+)\"', open('ldem/_version.py').read()).group(1))")

mkdir -p "$BUILD"
cmake -S "$ROOT" -B "$BUILD" -G Ninja \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER="$(command -v "$CXX")" \
  -DLDEM_SANITIZE=ON -DLDEM_BUILD_TESTS=ON -DLDEM_BUILD_PYTHON=ON -DLDEM_WITH_CUDA=OFF \
  -DPython_EXECUTABLE="$PY" \
  -Dpybind11_DIR="$("$PY" -c 'import pybind11; print(pybind11.get_cmake_dir())')" \
  -DLDEM_VERSION="$VERSION" >"$BUILD/configure.log" 2>&1 || { cat "$BUILD/configure.log"; exit 1; }
cmake --build "$BUILD" -j "$JOBS"
echo "== built in $((SECONDS - t0)) s"

# Sanitizer reports are fatal; leaks are not checked (the interpreter keeps its objects).
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

echo "== C++ tests (ctest, ASan + UBSan)"
(cd "$BUILD" && ctest --output-on-failure --timeout 600)

# The package with the sanitized core: links to the sources, a copy of the module.
PKG="$BUILD/python/ldem"
rm -rf "$BUILD/python"
mkdir -p "$PKG"
for f in "$ROOT"/ldem/*; do
  case "$f" in *.so | */__pycache__) ;; *) ln -s "$f" "$PKG/" ;; esac
done
cp "$BUILD"/_core*.so "$PKG/"
export PYTHONPATH="$BUILD/python${PYTHONPATH:+:$PYTHONPATH}"
# A Python extension built with ASan needs the runtime loaded first (and libstdc++ with
# it, so the runtime's exception interceptor finds the real __cxa_throw).
export LD_PRELOAD="$("$CXX" -print-file-name=libasan.so) $("$CXX" -print-file-name=libstdc++.so)"
cd "$BUILD"  # no ldem source tree in the working directory of child interpreters
"$PY" -c "import ldem._core as c, sys; assert c.__file__.startswith('$PKG'), c.__file__; print('== sanitized module', c.__file__)"

echo "== hostile-input tests against the sanitized module"
"$PY" -m pytest -q -p no:cacheprovider --rootdir "$ROOT" -c "$ROOT/pyproject.toml" \
  "$ROOT/tests/test_coder.py" "$ROOT/tests/test_local.py" "$ROOT/tests/test_local_stream.py" \
  "$ROOT/tests/test_local_search.py" "$ROOT/tests/test_cuda.py" \
  -k "narrow or shorter or another_thread or truncation or bomb or limit or bounded or damaged or mutated or random_bytes or varint or emulat"

echo "== fuzz corpus: $STREAMS streams, seed $SEED"
"$PY" "$ROOT/tests/fuzz_decoder.py" --streams "$STREAMS" --seed "$SEED" --case-seconds 10 --hang-seconds 120 --show 20

echo "== sanitizers passed in $((SECONDS - t0)) s"
