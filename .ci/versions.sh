#!/usr/bin/env bash
# The dependency versions pyproject.toml claims, tested: repaired wheels (.ci/wheel.sh)
# installed into fresh venvs, each running the coder tests that need no torch from outside
# the source tree, with
#   - the oldest numpy claimed, on the oldest Python claimed (requires-python),
#   - the newest numpy 1.x, and the newest numpy pip finds, on python3.
# The codec extra's oldest torch is the one the README's test command installs (.ci/run
# runs the whole suite with it). Takes about 7 minutes on 2 cores (two wheel builds).
#
#   bash .ci/versions.sh
#   LDEM_OLD_PYTHON=/path/to/python3.9 bash .ci/versions.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ldem-versions.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
quiet() { "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }; }

read -r oldest_python oldest_numpy < <("$PY" -c '
import re, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
numpy = next(re.fullmatch(r"numpy>=([\w.]+)", d).group(1) for d in project["dependencies"]
             if d.startswith("numpy"))
print(re.fullmatch(r">=(3\.\d+)", project["requires-python"]).group(1), numpy)')
old_py=${LDEM_OLD_PYTHON:-}
if [ -z "$old_py" ]; then  # a pyenv shim on PATH may name a version it cannot run: try each
  for candidate in "python$oldest_python" "$(pyenv root 2>/dev/null || echo /nonexistent)"/versions/"$oldest_python".*/bin/python3; do
    if "$candidate" -c "" 2>/dev/null; then old_py=$candidate; break; fi
  done
fi
if [ -z "$old_py" ]; then
  echo "no Python $oldest_python found: set LDEM_OLD_PYTHON" >&2
  exit 1
fi

TESTS=("$ROOT/tests/test_coder.py" "$ROOT/tests/test_local.py" "$ROOT/tests/test_golden.py"
       "$ROOT/tests/test_dictionary.py" "$ROOT/tests/test_local_stream.py")

leg() {  # leg PYTHON NUMPY_REQUIREMENT
  local python=$1 numpy=$2 start=$SECONDS tag venv
  tag=$("$python" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
  if ! ls "$WORK"/wheels/ldem-*-"$tag"-*.whl >/dev/null 2>&1; then
    PYTHON=$python LDEM_WHEEL_OUT="$WORK/wheels" bash .ci/wheel.sh
  fi
  venv="$WORK/venv-$tag-${numpy//[^a-z0-9.]/}"
  "$python" -m venv "$venv"
  quiet "$venv/bin/pip" install -q "$numpy" "$WORK"/wheels/ldem-*-"$tag"-*.whl "pytest>=7" "hypothesis>=6.80"
  echo "== $("$venv/bin/python" -c 'import sys, numpy; print("Python", sys.version.split()[0], "numpy", numpy.__version__)') (asked for $numpy)"
  # Outside the source tree: only the installed ldem can be imported.
  (cd "$WORK" && "$venv/bin/python" -c "import importlib.util as u; assert u.find_spec('torch') is None" &&
   "$venv/bin/python" -m pytest -q -p no:cacheprovider "${TESTS[@]}") > "$venv/pytest.log" 2>&1 ||
    { cat "$venv/pytest.log"; exit 1; }
  tail -n 1 "$venv/pytest.log"
  echo "   $((SECONDS - start)) s in all"
}

leg "$old_py" "numpy==$oldest_numpy"
leg "$PY" "numpy<2"
leg "$PY" "numpy"
