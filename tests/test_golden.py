"""Golden bytes: a fixed corpus coded by today's code must give the same bytes forever.

The corpus covers the core coder (dictionaries from integer counts and from float pmfs,
precisions 12..16, narrow and wide blocks, escapes up to the int32 extremes, 1..32 lanes,
several segments, checksum on and off), every ``LocalEntropyCoder`` mode, serialised
dictionaries, and ``.ldem`` files of the bundled sample at every quality and entropy mode.
The ``.ldem`` files are made from latents stored in ``tests/data/golden/`` (the analysis
transforms run in floating point, so their rounding may differ between machines; the coder
may not). Each case's SHA-256 is compared with ``tests/data/golden/manifest.json``, which
was recorded from main after the hardening release. Every case is also decoded back.

A deliberate format change rewrites the manifest with
``LDEM_RECORD_GOLDEN=1 pytest tests/test_golden.py`` and says why in its commit.
"""
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

import ldem

DATA = Path(__file__).parent / "data" / "golden"
MANIFEST = DATA / "manifest.json"
LATENTS = DATA / "sample-latents-ladder3.npz"  # the shipped model's qualities (learned 1-3, block 4-12)
LATENTS_V1 = DATA / "sample-latents.npz"       # those of the model files of stream version 1
RECORD = os.environ.get("LDEM_RECORD_GOLDEN") == "1"
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _dictionaries():
    """(name, Dictionary) pairs: integer counts and float pmfs at several precisions."""
    rng = np.random.default_rng(20261206)
    out = []
    for precision in (12, 14, 16):
        counts = rng.integers(1, 200, size=(6, 17)).tolist()
        counts[0] = [1] * 17  # flat
        counts[1] = [1] * 8 + [5000] + [1] * 8  # peaked
        out.append((f"freq-p{precision}", ldem.Dictionary.from_frequencies(
            counts, offsets=[-8] * 6, precision=precision, escape=1)))
    scales = np.geomspace(0.2, 8.0, 5)
    v = np.arange(-12, 13)
    pmfs = np.exp(-np.abs(v)[None, :] / scales[:, None])
    pmfs /= pmfs.sum(1, keepdims=True)
    for precision in (13, 15, 16):
        out.append((f"laplace-p{precision}", ldem.Dictionary.from_pmfs(pmfs, [-12] * 5, precision=precision)))
    return out


def _symbols(rng, shape, spread):
    y = np.rint(rng.laplace(0, spread, size=shape)).astype(np.int64)
    flat = y.reshape(-1)
    idx = rng.choice(flat.size, size=max(1, flat.size // 97), replace=False)
    flat[idx] = rng.integers(-(2**20), 2**20, size=idx.size)  # escapes
    flat[:2] = [INT32_MIN, INT32_MAX]
    return np.clip(y, INT32_MIN, INT32_MAX).astype(np.int32)


def core_cases():
    """name -> (stream, symbols, models, dictionary, block)."""
    rng = np.random.default_rng(7)
    cases = {}
    layouts = [((2, 9, 13), (1, 1)), ((3, 8, 10), (1, 2)), ((1, 5, 31), (1, 3)), ((4, 16, 16), (8, 8)),
               ((2, 40, 48), (16, 16)), ((1, 70, 3), (2, 1))]
    for name, d in _dictionaries():
        for shape, block in layouts:
            C, H, W = shape
            y = _symbols(rng, shape, 3.0)
            grid = (C, -(-H // block[0]), -(-W // block[1]))
            models = rng.integers(0, d.num_models, size=grid).astype(np.int32)
            for lanes, checksum, segment in ((4, False, None), (4, True, 256), (1, True, 256), (8, False, 512),
                                              (32, True, None)):
                data = ldem.encode(y, models, d, block, threads=2, checksum=checksum, lanes=lanes,
                                   segment_size=segment)
                key = f"core/{name}/{C}x{H}x{W}/b{block[0]}x{block[1]}/lanes{lanes}/crc{int(checksum)}/seg{segment}"
                cases[key] = (data, y, models, d, block)
    return cases


def local_cases():
    """name -> (stream, y, coder)."""
    rng = np.random.default_rng(11)
    C = 8
    counts = [[1] * 6 + [int(v) for v in rng.integers(100, 4000, 9)] + [1] * 6 for _ in range(C)]
    g = ldem.Dictionary.from_frequencies(counts, offsets=[-10] * C, precision=16, escape=1)
    peaked = [[1] * 10 + [60000] + [1] * 10, [1] * 9 + [3000, 50000, 3000] + [1] * 9]
    s = ldem.Dictionary.from_frequencies(peaked, offsets=[-10, -10], precision=16, escape=1)
    y = _symbols(rng, (C, 40, 56), 2.0)
    y[:, :16, :16] = 0  # a flat region for the static and image models
    y[2:4, 20:, 30:] = rng.integers(-1, 2, size=(2, 20, 26))
    cases = {}
    for blocks in (((16, 16), (32, 32)), ((4, 4), (8, 8))):
        coder = ldem.LocalEntropyCoder(g, s, block_sizes=blocks, threads=2)
        for mode in ("global", "static", "local"):
            data = coder.encode(y, mode=mode)
            cases[f"local/{mode}/blocks{blocks[0][0]}-{blocks[1][0]}"] = (data, y, coder)
    return cases


def dictionary_cases():
    return {f"dictionary/{name}": d.to_bytes() for name, d in _dictionaries()}


def ldem_cases():
    """name -> (.ldem bytes, latent, codec) from the stored latents of the bundled sample."""
    from ldem.codec import ImageCodec
    stored = np.load(LATENTS)
    H, W = (int(v) for v in stored["size"])
    cases = {}
    for q in range(1, ImageCodec.pretrained(1).num_qualities + 1):
        codec = ImageCodec.pretrained(q)
        y = stored[f"q{q}"].astype(np.int32)  # stored as int16
        for mode in ("global", "static", "local"):
            cases[f"ldem/q{q}/{mode}"] = (codec.compress_latent(y, (H, W), entropy=mode), y, codec)
    return cases


def _check(kind, digests):
    if RECORD:
        manifest = json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {}
        manifest.update(digests)
        MANIFEST.write_text(json.dumps(dict(sorted(manifest.items())), indent=1) + "\n")
        pytest.skip(f"recorded {len(digests)} {kind} digests")
    expected = {k: v for k, v in json.loads(MANIFEST.read_text()).items() if k.startswith(kind + "/")}
    assert sorted(digests) == sorted(expected), f"{kind}: the corpus changed"
    changed = [k for k in digests if digests[k] != expected[k]]
    assert not changed, f"{len(changed)} of {len(digests)} {kind} streams changed bytes, e.g. {changed[:3]}"


@pytest.mark.parametrize("vector_encoder", [True, False], ids=["dispatch", "scalar-encoder"])
def test_core_streams_keep_their_bytes(vector_encoder):
    """The same bytes from the run-time dispatched encoders and from the scalar one."""
    from ldem import _core
    _core._set_vector_encoder(vector_encoder)
    try:
        cases = core_cases()
    finally:
        _core._set_vector_encoder(True)
    for data, y, models, d, block in cases.values():
        assert np.array_equal(ldem.decode(data, models, d, y.shape, block), y)
    if RECORD and not vector_encoder:
        pytest.skip("recorded with the dispatched encoders")
    _check("core", {k: _sha(v[0]) for k, v in cases.items()})


def test_local_streams_keep_their_bytes():
    cases = local_cases()
    for data, y, coder in cases.values():
        assert np.array_equal(coder.decode(data), y)
    modes = {k.split("/")[1]: len(v[0]) for k, v in cases.items() if k.endswith("blocks16-32")}
    assert modes["local"] <= modes["static"] <= modes["global"]
    _check("local", {k: _sha(v[0]) for k, v in cases.items()})


def test_serialised_dictionaries_keep_their_bytes():
    cases = dictionary_cases()
    for blob in cases.values():
        assert ldem.Dictionary.from_bytes(blob).to_bytes() == blob
    _check("dictionary", {k: _sha(v) for k, v in cases.items()})


def test_ldem_files_keep_their_bytes(monkeypatch):
    """Runs without torch too (the aarch64 and s390x checks of .ci/cross.sh): the latent's
    coding and the file header need numpy only, so there the codec is made without its
    check for the codec extra (the transforms, which need torch, are never called)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        import ldem.codec
        monkeypatch.setattr(ldem.codec, "_require_codec", lambda: None)
    cases = ldem_cases()
    for data, y, codec in cases.values():
        assert np.array_equal(codec.decode_latent(data)[0], y)
    _check("ldem", {k: _sha(v[0]) for k, v in cases.items()})


def test_stored_latents_are_the_sample_analysis():
    """The stored latents are what the analysis gives on this machine, up to values that
    lay within float rounding of a half-integer (none here; a few may differ elsewhere)."""
    pytest.importorskip("torch")
    from PIL import Image
    from ldem.codec import ImageCodec
    stored = np.load(LATENTS)
    with Image.open(ldem.sample_image_path()) as im:
        image = np.asarray(im.convert("RGB"))
    for q in range(1, ImageCodec.pretrained(1).num_qualities + 1):
        y, _ = ImageCodec.pretrained(q).latent(image)
        ref = stored[f"q{q}"]
        assert y.shape == ref.shape
        assert np.mean(y == ref) > 0.999 and np.abs(y.astype(np.int64) - ref).max() <= 1


# Streams of format version 1 (written by the release before local-stream version 2)
# still decode: ``tests/data/stream-v1`` holds LocalEntropyCoder streams of
# local_cases() and .ldem files of the sample's stored latents, as version-1 code wrote
# them. Each must decode to exactly the latent it was made from.
V1_FIXTURES = DATA.parent / "stream-v1"


def _fixtures(suffix):
    return sorted(V1_FIXTURES.glob(f"*{suffix}"))


def test_fixtures_are_present():
    assert len(_fixtures(".bin")) == 4 and len(_fixtures(".ldem")) == 6


@pytest.mark.parametrize("path", _fixtures(".bin"), ids=lambda p: p.stem)
def test_version1_local_streams_decode(path):
    data = path.read_bytes()
    assert data[:2] == b"LE" and data[2] >> 4 == 1  # written as version 1
    cases = local_cases()
    _, y, coder = cases["/".join(path.stem.split("-", 2))]
    assert np.array_equal(coder.decode(data), y)
    assert coder.describe(data)["mode"] == path.stem.split("-")[1]


@pytest.mark.parametrize("path", _fixtures(".ldem"), ids=lambda p: p.stem)
def test_version1_ldem_files_decode(path, monkeypatch):
    try:
        import torch  # noqa: F401
    except ImportError:  # the latent's decoding needs numpy only
        import ldem.codec
        monkeypatch.setattr(ldem.codec, "_require_codec", lambda: None)
    from ldem.codec import ImageCodec
    _, q, mode = path.stem.split("-")
    y = np.load(LATENTS_V1)[q].astype(np.int32)
    data = path.read_bytes()
    codec = ImageCodec.for_file(data)  # the quality numbering of the model that wrote it
    assert codec.quality == int(q[1:])
    decoded, _ = codec.decode_latent(data)
    assert np.array_equal(decoded, y)
