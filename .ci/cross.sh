#!/usr/bin/env bash
# Cross-architecture CI: the core and the Python package on aarch64 and big-endian s390x
# under qemu-user.
#   1. the cross compilers and qemu (apt, only when missing; LDEM_CROSS_APT=0 never installs);
#      each architecture's Python and numpy (Debian's packages, unpacked into
#      BUILD/sysroot-<arch>, only when missing) and, for the host, pybind11's headers and a
#      pytest for the targets (pure Python, pip --target BUILD/pylib, only when missing),
#   2. builds: the host (ldem_stream_tool only) and each architecture with
#      cmake/toolchains/<arch>-linux-gnu.cmake (C++ tests, ldem_stream_tool and the
#      extension ldem._core for that architecture's Python),
#   3. a corpus made on the host by the Python package: the core cases of
#      tests/test_golden.py (6 dictionaries from counts and pmfs at precisions 12..16,
#      blocks 1x1 to 16x16, escapes up to INT32_MIN/INT32_MAX, 1/4/8/32 lanes, one or
#      several segments, CRC on and off), its serialised dictionaries, and a few larger
#      random cases of many segments,
#   4. on the host and each architecture (csrc/tests/ldem_stream_tool.cc): encode every
#      case, decode the host's streams, re-serialise the dictionaries; every stream and
#      dictionary must have the SHA-256 recorded in tests/data/golden/manifest.json (larger
#      cases: the host's bytes), every decode must give the original symbols,
#   5. the C++ unit tests of each architecture under qemu (ctest),
#   6. the whole golden corpus with the real Python package under qemu: tests/test_golden.py
#      run by each architecture's Python with the ldem sources and its own ldem._core (core
#      streams at every encoder, every LocalEntropyCoder mode, dictionaries, .ldem files;
#      each stream encoded there must have the recorded SHA-256 and decode back). Only the
#      test of the analysis transform, which needs torch, is left out.
#
# Run it from any directory with the project's virtual environment active (ldem, numpy and
# pytest importable); needs cmake, ninja, sha256sum, dpkg-deb and apt-get (step 1).
# Settings: LDEM_CROSS_ARCHS (default "aarch64 s390x"), LDEM_CROSS_BUILD (default
# build-cross), LDEM_CROSS_APT (default 1), LDEM_CROSS_PYTHON (default 1; 0 skips the
# Python package: no sysroots, no extension, no step 6).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${LDEM_CROSS_BUILD:-build-cross}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
ARCHS=${LDEM_CROSS_ARCHS:-aarch64 s390x}
PY=$(command -v python || command -v python3)
JOBS=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc 2>/dev/null || echo 2)}
t0=$SECONDS

# 1. Tools.
missing=()
for arch in $ARCHS; do
  command -v "$arch-linux-gnu-g++" >/dev/null || missing+=("g++-$arch-linux-gnu")
  command -v "qemu-$arch" >/dev/null || missing+=(qemu-user)
done
if [ ${#missing[@]} -gt 0 ]; then
  [ "${LDEM_CROSS_APT:-1}" = 1 ] || { echo "cross.sh: missing ${missing[*]}" >&2; exit 1; }
  echo "== apt-get install ${missing[*]}"
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    $(printf '%s\n' "${missing[@]}" | sort -u) >/dev/null
  echo "== tools installed in $((SECONDS - t0)) s"
fi

# Each architecture's Python, numpy and Python headers: Debian's packages for that
# architecture, unpacked (not installed) into a sysroot that qemu -L runs python from.
PYTHON_CROSS=${LDEM_CROSS_PYTHON:-1}
PYV=3.11  # Debian 12's Python
deb_arch() { case "$1" in aarch64) echo arm64 ;; *) echo "$1" ;; esac; }
sysroot() { echo "$BUILD/sysroot-$1"; }
if [ "$PYTHON_CROSS" = 1 ]; then
  mkdir -p "$BUILD"
  for arch in $ARCHS; do
    root=$(sysroot "$arch")
    [ -x "$root/usr/bin/python$PYV" ] && [ -d "$root/usr/lib/python3/dist-packages/numpy" ] && continue
    [ "${LDEM_CROSS_APT:-1}" = 1 ] || { echo "cross.sh: no Python sysroot $root" >&2; exit 1; }
    t1=$SECONDS
    da=$(deb_arch "$arch")
    SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
    if ! dpkg --print-foreign-architectures | grep -qx "$da"; then
      $SUDO dpkg --add-architecture "$da" && $SUDO apt-get update -qq
    fi
    debs="$BUILD/debs-$arch"
    rm -rf "$debs" "$root" && mkdir -p "$debs" "$root"
    (cd "$debs" && apt-get download -q $(printf "%s:$da " libc6 gcc-12-base libgcc-s1 libstdc++6 \
       "python$PYV-minimal" "libpython$PYV-minimal" "libpython$PYV-stdlib" "libpython$PYV" \
       "libpython$PYV-dev" libexpat1 zlib1g libffi8 libbz2-1.0 liblzma5 libssl3 libcrypt1 \
       libsqlite3-0 libuuid1 libncursesw6 libtinfo6 libreadline8 python3-numpy libblas3 \
       liblapack3 libgfortran5) >"$debs.log" 2>&1) || { cat "$debs.log"; exit 1; }
    for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$root"; done
    for lib in blas/libblas.so.3 lapack/liblapack.so.3; do  # what update-alternatives would link
      ln -sf "$lib" "$root/usr/lib/$arch-linux-gnu/${lib#*/}"
    done
    rm -rf "$debs"
    echo "== $arch: Python $PYV and numpy unpacked into $root in $((SECONDS - t1)) s"
  done
  PYLIB="$BUILD/pylib"  # pure Python: pybind11's CMake files and headers, pytest for the targets
  [ -d "$PYLIB/pybind11" ] && [ -d "$PYLIB/pytest" ] || "$PY" -m pip install -q --no-warn-conflicts --target "$PYLIB" pybind11 pytest
  PYBIND11_DIR=$(PYTHONPATH="$PYLIB" "$PY" -c "import pybind11; print(pybind11.get_cmake_dir())")
fi

# 2. Builds (in parallel; one compile job each while more than one runs).
configure() {  # configure DIR [cmake args...]
  local dir=$1; shift
  cmake -S "$ROOT" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLDEM_BUILD_TESTS=ON \
    -DLDEM_BUILD_PYTHON=OFF -DLDEM_WITH_CUDA=OFF "$@" >"$dir.configure.log" 2>&1 \
    || { cat "$dir.configure.log"; return 1; }
}
mkdir -p "$BUILD"
HOST=$(uname -m)
pids=()
(configure "$BUILD/$HOST" && cmake --build "$BUILD/$HOST" -j 1 --target ldem_stream_tool >"$BUILD/$HOST.build.log" 2>&1 \
   || { cat "$BUILD/$HOST.build.log"; exit 1; }) & pids+=($!)
for arch in $ARCHS; do
  pyargs=()  # ldem._core for this architecture's Python
  if [ "$PYTHON_CROSS" = 1 ]; then
    root=$(sysroot "$arch")
    # pyconfig.h is found through <ARCH-linux-gnu/pythonX.Y/pyconfig.h> under the sysroot's
    # include directory, searched after the cross compiler's own (it holds Python only).
    pyargs=(-DLDEM_BUILD_PYTHON=ON -Dpybind11_DIR="$PYBIND11_DIR" -DPython_EXECUTABLE="$PY"
            -DPython_INCLUDE_DIR="$root/usr/include/python$PYV" -DPYTHON_MODULE_DEBUG_POSTFIX=
            -DPYTHON_MODULE_EXTENSION=".cpython-${PYV/./}-$arch-linux-gnu.so"
            -DCMAKE_CXX_FLAGS="-idirafter $root/usr/include")
  fi
  (configure "$BUILD/$arch" -DCMAKE_TOOLCHAIN_FILE="$ROOT/cmake/toolchains/$arch-linux-gnu.cmake" \
     ${pyargs[@]+"${pyargs[@]}"} \
     && cmake --build "$BUILD/$arch" -j "$(( JOBS > 2 ? JOBS / 2 : 1 ))" >"$BUILD/$arch.build.log" 2>&1 \
     || { cat "$BUILD/$arch.build.log"; exit 1; }) & pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
echo "== built $HOST (host) and $ARCHS in $((SECONDS - t0)) s"

# 3. The corpus, made by the Python package on the host: inputs as little-endian files,
# the host's streams, batch files for ldem_stream_tool and the expected SHA-256s.
CORPUS="$BUILD/corpus"
rm -rf "$CORPUS"
mkdir -p "$CORPUS"
# Run from the corpus folder: in the clone's root, its ldem/ (no compiled core) would shadow
# the installed package.
(cd "$CORPUS" && "$PY" - "$ROOT" "$PWD") <<'EOF'
import hashlib, json, sys
from pathlib import Path
import numpy as np
root, corpus = Path(sys.argv[1]), Path(sys.argv[2])
sys.path.insert(0, str(root / "tests"))
import test_golden as golden  # the golden corpus's cases (tests/test_golden.py)
import ldem

manifest = json.loads((root / "tests/data/golden/manifest.json").read_text())
sha = lambda b: hashlib.sha256(b).hexdigest()
le32 = lambda a: np.ascontiguousarray(a, dtype="<i4").tobytes()
encode, decode, dicts, expected = [], [], [], []

dictionaries = dict(golden._dictionaries())
(corpus / "dicts").mkdir()
for name, d in dictionaries.items():
    blob = d.to_bytes()
    assert sha(blob) == manifest[f"dictionary/{name}"], name
    (corpus / "dicts" / f"{name}.bin").write_bytes(blob)
    dicts.append(f"dict corpus/dicts/{name}.bin out/dict-{name}.bin")
    expected.append(f"{sha(blob)}  out/dict-{name}.bin")

def add(key, data, y, models, dname, block, lanes, checksum, segment, recorded):
    stem = key.replace("/", "_")
    (corpus / f"{stem}.sym").write_bytes(le32(y))
    (corpus / f"{stem}.models").write_bytes(le32(models))
    (corpus / f"{stem}.stream").write_bytes(data)
    if recorded is not None:
        assert sha(data) == recorded, f"{key}: the host's stream is not the recorded one"
    C, H, W = y.shape
    shift = 17 if segment is None else int(segment).bit_length() - 1
    shape = f"corpus/dicts/{dname}.bin {C} {H} {W} {block[0]} {block[1]} corpus/{stem}.models"
    encode.append(f"encode {shape} corpus/{stem}.sym {lanes} {shift} {int(checksum)} out/{stem}.stream")
    decode.append(f"decode {shape} corpus/{stem}.stream out/{stem}.dec")
    expected.append(f"{sha(data)}  out/{stem}.stream")
    expected.append(f"{sha(le32(y))}  out/{stem}.dec")

# The golden core cases: key .../lanes{L}/crc{0|1}/seg{256|512|None}.
for key, (data, y, models, d, block) in golden.core_cases().items():
    parts = key.split("/")
    lanes, checksum = int(parts[4][5:]), parts[5] == "crc1"
    segment = None if parts[6] == "segNone" else int(parts[6][3:])
    add(key, data, y, models, parts[1], block, lanes, checksum, segment, manifest[key])

# Larger random cases: many segments (the paired-segment encoder where the host has it).
rng = np.random.default_rng(20261206)
for i, (name, shape, block, lanes, checksum, segment) in enumerate([
        ("freq-p16", (4, 64, 96), (4, 4), 4, True, 256),
        ("laplace-p13", (3, 80, 64), (8, 16), 4, False, 512),
        ("freq-p14", (2, 96, 128), (2, 2), 32, True, 1024),
        ("laplace-p16", (8, 32, 40), (1, 1), 4, True, 256)]):
    d = dictionaries[name]
    y = golden._symbols(rng, shape, 3.0)
    grid = (shape[0], -(-shape[1] // block[0]), -(-shape[2] // block[1]))
    models = rng.integers(0, d.num_models, size=grid).astype(np.int32)
    data = ldem.encode(y, models, d, block, threads=2, checksum=checksum, lanes=lanes, segment_size=segment)
    assert np.array_equal(ldem.decode(data, models, d, y.shape, block), y)
    add(f"large/{i}", data, y, models, name, block, lanes, checksum, segment, None)

for fname, lines in (("encode.txt", encode), ("decode.txt", decode), ("dict.txt", dicts),
                     ("expected.sha256", expected)):
    (corpus / fname).write_text("\n".join(lines) + "\n")
print(f"== corpus: {len(encode)} streams ({len(encode) - 4} golden core cases, 4 larger), "
      f"{len(dicts)} dictionaries")
EOF

# 4. The same bytes and values everywhere.
run_tool() {  # run_tool ARCH COMMAND...   (the tool of ARCH, under qemu unless host)
  local arch=$1; shift
  if [ "$arch" = "$HOST" ]; then "$BUILD/$HOST/ldem_stream_tool" "$@"
  else "qemu-$arch" -L "/usr/$arch-linux-gnu" "$BUILD/$arch/ldem_stream_tool" "$@"; fi
}
for arch in $HOST $ARCHS; do
  t1=$SECONDS
  dir="$BUILD/run-$arch"
  rm -rf "$dir" && mkdir -p "$dir/out" && ln -s "$CORPUS" "$dir/corpus"
  (cd "$dir" && run_tool "$arch" batch corpus/encode.txt && run_tool "$arch" batch corpus/decode.txt \
     && run_tool "$arch" batch corpus/dict.txt && sha256sum --quiet --strict -c corpus/expected.sha256) \
    || { echo "== $arch: FAILED (streams, decodes or dictionaries differ; see above)"; exit 1; }
  echo "== $arch: $(grep -c . "$CORPUS/expected.sha256") files match (streams byte-identical to the recorded/host ones, decodes equal to the input) in $((SECONDS - t1)) s"
done

# 5. The C++ unit tests under qemu, the architectures side by side.
t1=$SECONDS
pids=()
for arch in $ARCHS; do
  (cd "$BUILD/$arch" && ctest --output-on-failure --timeout 600 -j "$JOBS" >ctest.log 2>&1) & pids+=($!)
done
failed=0
set -- "${pids[@]}"
for arch in $ARCHS; do
  if wait "$1"; then
    echo "== $arch: $(grep -o '[0-9]*% tests passed.*' "$BUILD/$arch/ctest.log")"
  else
    cat "$BUILD/$arch/ctest.log"; echo "== $arch: C++ tests FAILED"; failed=1
  fi
  shift
done
[ "$failed" = 0 ] || exit 1
echo "== C++ tests under qemu in $((SECONDS - t1)) s"

# 6. The golden corpus with the Python package of each architecture (tests/test_golden.py).
if [ "$PYTHON_CROSS" = 1 ]; then
  t1=$SECONDS
  pids=()
  for arch in $ARCHS; do
    pkg="$BUILD/python-$arch"  # the ldem sources and this architecture's ldem._core
    rm -rf "$pkg" && mkdir -p "$pkg"
    cp -r "$ROOT/ldem" "$pkg/ldem"
    find "$pkg/ldem" \( -name __pycache__ -o -name '*.so' \) -prune -exec rm -rf {} +
    cp "$BUILD/$arch"/_core.cpython-*.so "$pkg/ldem/"
    root=$(sysroot "$arch")
    (cd "$ROOT" && PYTHONPATH="$pkg:$PYLIB" PYTHONDONTWRITEBYTECODE=1 "qemu-$arch" -L "$root" \
       "$root/usr/bin/python$PYV" -m pytest tests/test_golden.py -q -p no:cacheprovider -rs \
       --deselect tests/test_golden.py::test_stored_latents_are_the_sample_analysis \
       >"$pkg.log" 2>&1 && ! grep -q skipped "$pkg.log") & pids+=($!)
  done
  set -- "${pids[@]}"
  for arch in $ARCHS; do
    if wait "$1"; then
      echo "== $arch: golden corpus with the Python package: $(tail -n 1 "$BUILD/python-$arch.log")"
    else
      cat "$BUILD/python-$arch.log"; echo "== $arch: golden corpus with the Python package FAILED (or a test skipped)"
      failed=1
    fi
    shift
  done
  [ "$failed" = 0 ] || exit 1
  echo "== the Python package under qemu in $((SECONDS - t1)) s"
fi
echo "== cross-architecture checks passed in $((SECONDS - t0)) s"
