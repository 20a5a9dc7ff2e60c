"""LDEM_SIMD: every SIMD level this CPU supports gives the same bytes.

Each level runs in its own process (the cap is read once, at import): the byte-identity
tests run under it, and the streams, block costs and local selections of a few random
latents are compared across levels.
"""
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import ldem

LEVELS = ["scalar", "sse2", "avx2", "avx512"]
ROOT = Path(__file__).resolve().parent.parent
HERE = LEVELS[:LEVELS.index(ldem.build_info()["cpu_simd"]) + 1]  # the levels this CPU runs

# Encodes a few random latents and prints, as JSON, build_info() and the SHA-256 of each
# result: core streams (4 and 8 lanes, with and without checksums), block costs and local
# streams (their selections of block models) with their stats.
PROBE = r"""
import hashlib, json
import numpy as np
import ldem
from ldem.testing import synthetic_latent

out = {"build_info": ldem.build_info(), "results": {}}
def put(name, data):
    out["results"][name] = hashlib.sha256(data).hexdigest()

rng = np.random.default_rng(18)
v = np.arange(-24, 25)
pmfs = [np.exp(-np.abs(v) / s) for s in (0.3, 1.0, 2.5, 6.0)]
d = ldem.Dictionary.from_pmfs([p / p.sum() * 0.999 for p in pmfs], [-24] * 4, 14)
for i, (shape, block) in enumerate([((6, 40, 52), (8, 13)), ((3, 33, 71), (33, 71)), ((4, 64, 64), (1, 1))]):
    y = np.rint(rng.laplace(0, 1 + i, size=shape)).astype(np.int32)
    y.flat[rng.integers(0, y.size, 20)] = rng.integers(-2**31, 2**31 - 1, 20, dtype=np.int64)
    m = rng.integers(0, 4, size=ldem.block_grid(shape, block), dtype=np.int32)
    for lanes in (4, 8):
        for checksum in (False, True):
            data = ldem.encode(y, m, d, block, lanes=lanes, checksum=checksum, segment_size=512)
            assert np.array_equal(ldem.decode(data, m, d, shape, block), y)
            put(f"stream{i}-{lanes}-{checksum}", data)
    put(f"costs{i}", np.ascontiguousarray(ldem.block_costs(y, d, block)).tobytes())
train = [synthetic_latent("regimes", (32, 32, 48), seed=s) for s in (1, 2)]
g = ldem.fit_global_models(train)
static = ldem.learn_dictionary([synthetic_latent("regimes", (32, 32, 48), seed=7)], 6, block=(16, 16),
                               progress=False)
coder = ldem.LocalEntropyCoder(g, static)
for seed in (0, 3):
    y = synthetic_latent("regimes", (32, 32, 48), seed=seed)
    data, stats = coder.encode(y, return_stats=True)
    assert np.array_equal(coder.decode(data), y)
    put(f"local{seed}", data)
    put(f"local{seed}-stats", json.dumps(stats, sort_keys=True, default=str).encode())
print(json.dumps(out))
"""


def run_at(level, *args, cwd=None):
    """Runs Python with ``LDEM_SIMD=level``; from outside the source tree unless ``cwd`` is
    given (a clone's ``ldem/`` folder has no compiled core and would shadow the installed one)."""
    env = dict(os.environ, LDEM_SIMD=level)
    return subprocess.run([sys.executable, *args], cwd=cwd or tempfile.gettempdir(), env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def probes():
    """The probe's output at each level here."""
    out = {}
    for level in HERE:
        r = run_at(level, "-c", PROBE)
        assert r.returncode == 0, r.stderr
        out[level] = json.loads(r.stdout)
    return out


def test_build_info_reports_the_cap(probes):
    for level, probe in probes.items():
        info = probe["build_info"]
        assert info["simd"] == level
        assert info["cpu_simd"] == HERE[-1]
        kernels = info["kernels"]
        assert (kernels["encoder"] == "avx512-paired") == (level == "avx512")
        assert kernels["selection"] == level  # one build of the selection argmin per level
        assert (kernels["histogram_counts"] == "avx2") == (level in ("avx2", "avx512"))


def test_streams_costs_and_selections_are_the_same_at_every_level(probes):
    want = probes[HERE[-1]]["results"]
    assert len(want) == 3 * 4 + 3 + 4
    for level in HERE:
        assert probes[level]["results"] == want, level


def test_a_cap_above_the_cpu_is_the_cpu_level():
    r = run_at("avx512", "-c", "import ldem; print(ldem.build_info()['simd'])")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == HERE[-1]


@pytest.mark.parametrize("value", ["fast", "AVX2", "sse4"])
def test_an_unknown_level_fails_at_import_naming_the_levels(value):
    r = run_at(value, "-c", "import ldem")
    assert r.returncode != 0
    assert f"LDEM_SIMD='{value}' is not a SIMD level: use scalar, sse2, avx2 or avx512" in r.stderr


def test_an_empty_value_is_no_cap():
    r = run_at("", "-c", "import ldem; print(ldem.build_info()['simd'])")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == HERE[-1]


# The byte-identity tests: golden streams and files, the encoder against the scalar
# encoder and its other settings, block costs and local selection against their references
# (less the golden test of the image analysis, which runs no dispatched kernel). The
# suite itself runs them at the CPU's level.
IDENTITY_TESTS = ["tests/test_golden.py", "tests/test_local_search.py",
                  "tests/test_coder.py::test_stream_is_independent_of_thread_count",
                  "tests/test_coder.py::test_lanes_and_segment_size_variants",
                  "tests/test_coder.py::test_block_costs_match_reference",
                  "tests/test_coder.py::test_vector_encoder_layouts",
                  "--deselect", "tests/test_golden.py::test_stored_latents_are_the_sample_analysis"]


@pytest.mark.parametrize("level", HERE[:-1])
def test_byte_identity_tests_pass_at_every_level(level):
    r = run_at(level, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *IDENTITY_TESTS, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert " passed" in r.stdout
