"""ldem.model_file: the loader treats a model file as hostile input. Every bad file gives
ValueError (or OSError) with the path; nothing is allocated far beyond max_bytes."""
import copy
import hashlib
import io
import json
import os
import random
import zipfile

import numpy as np
import pytest

import ldem
from ldem.dictionary import Dictionary
from ldem.model_file import (DEFAULT_MAX_BYTES, MODEL_FILE_FORMAT, ModelBundle, _bundle, check_config, check_meta, pretrained_path,
                             transform_shapes)

N, M, LAMBDAS = 4, 6, [0.01, 0.1]


def model_arrays(seed=0, N=N, M=M, lambdas=LAMBDAS, max_image_models=4):
    rng = np.random.default_rng(seed)
    arrays = {}
    for k, shape in transform_shapes(N, M, len(lambdas)).items():
        dt = np.float32 if k.startswith("log_") else np.float16
        arrays[f"param0/{k}"] = (0.1 * rng.standard_normal(shape)).astype(dt)
    levels = []
    for q in range(1, len(lambdas) + 1):
        g = Dictionary.from_pmfs([[0.1, 0.8, 0.1]] * M, offsets=[-1] * M)
        s = Dictionary.from_pmfs([[0.2, 0.6, 0.2], [0.45, 0.1, 0.45]], offsets=[-1, -1])
        arrays[f"level{q}/global"] = np.frombuffer(g.to_bytes(), np.uint8)
        arrays[f"level{q}/static"] = np.frombuffer(s.to_bytes(), np.uint8)
        levels.append({"quality": q, "transforms": 0, "level": q - 1, "lambda": lambdas[q - 1],
                       "block_sizes": [[8, 8], [16, 16]], "max_image_models": max_image_models,
                       "static_models": 2})
    meta = {"format": 2, "transforms": [{"arch": "gained-factorized-v1", "N": N, "M": M, "lambdas": list(lambdas)}],
            "levels": levels, "training": [{}]}
    return arrays, meta


def npz_bytes(arrays, meta, compressed=True) -> bytes:
    buf = io.BytesIO()
    meta_raw = meta if isinstance(meta, bytes) else json.dumps(meta).encode()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays, **{"meta.json": np.frombuffer(meta_raw, np.uint8)})
    return buf.getvalue()


@pytest.fixture(scope="module")
def small():
    return npz_bytes(*model_arrays())


def load_bytes(tmp_path, data, name="m.npz", **kw):
    p = tmp_path / name
    p.write_bytes(data)
    return ModelBundle(p, **kw)


def refused(tmp_path, data, match=None, **kw):
    with pytest.raises(ValueError, match=match) as e:
        load_bytes(tmp_path, data, **kw)
    assert str(tmp_path) in str(e.value)
    return str(e.value)


def test_small_model_loads_and_codes(tmp_path, small):
    pytest.importorskip("torch")
    b = load_bytes(tmp_path, small)
    assert b.num_qualities == 2 and b.model_id == hashlib.blake2b(small, digest_size=8).digest()
    codec = ldem.ImageCodec(b, 2)
    img = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    assert codec.decompress_array(codec.compress(img)).shape == img.shape


def test_shipped_model_loads_identically():
    """The hardened loader reads the shipped file to the same arrays np.load gives."""
    path = pretrained_path()
    b = ModelBundle(path)
    assert b.model_id == hashlib.blake2b(path.read_bytes(), digest_size=8).digest()
    with np.load(path, allow_pickle=False) as z:
        raw = {k: z[k] for k in z.files}
    for t, state in enumerate(b.states):
        stored = {k[len(f"param{t}/"):]: v for k, v in raw.items() if k.startswith(f"param{t}/")}
        assert stored.keys() == state.keys()
        assert all(np.array_equal(stored[k], v) and stored[k].dtype == v.dtype for k, v in state.items())
    for q, (g, s) in b.tables.items():
        assert g.to_bytes() == raw[f"level{q}/global"].tobytes()
        assert s.to_bytes() == raw[f"level{q}/static"].tobytes()
    assert b.levels == json.loads(raw["meta.json"].tobytes())["levels"]
    assert b.bytes_charged < DEFAULT_MAX_BYTES // 2


def test_not_a_model_file(tmp_path, small):
    from PIL import Image
    png = ldem.sample_image_path().read_bytes()
    jpeg = io.BytesIO()
    with Image.open(ldem.sample_image_path()) as im:
        im.convert("RGB").save(jpeg, "JPEG")
    for data in (png, jpeg.getvalue(), b"", b"hello", small[:len(small) // 2], small[:-1], b"PK\x05\x06" + bytes(18)):
        msg = refused(tmp_path, data, "not an ldem model file")
        assert "pickle" not in msg
    (tmp_path / "folder.npz").mkdir()
    with pytest.raises(ValueError, match="folder"):
        ModelBundle(tmp_path / "folder.npz")
    with pytest.raises(FileNotFoundError):
        ModelBundle(tmp_path / "missing.npz")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs")
def test_fifo_and_devices_are_not_read(tmp_path):
    fifo = tmp_path / "fifo.npz"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="not a regular file"):
        ModelBundle(fifo)  # no writer: a plain open would block
    if os.path.exists("/dev/zero"):
        with pytest.raises(ValueError, match="not a regular file"):
            ModelBundle("/dev/zero")


def test_file_larger_than_max_bytes(tmp_path, small):
    refused(tmp_path, small, "max_bytes", max_bytes=len(small) - 1)
    refused(tmp_path, small, "max_bytes", max_bytes=len(small) + 100)  # the members do not fit
    assert load_bytes(tmp_path, small, max_bytes=2**22).num_qualities == 2
    with pytest.raises(TypeError):
        load_bytes(tmp_path, small, max_bytes="big")


@pytest.fixture(scope="module")
def zero_bomb(small):
    """The small model plus a deflated member of 1 GiB of zeros (a few MB in the file),
    named so that one byte replacement makes it the level1/global table instead."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(small)) as src, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for info in src.infolist():
            z.writestr(info.filename, src.read(info.filename))
        with z.open("level1/globaX.npy", "w", force_zip64=True) as f:
            size = 1024 * 2**20  # above DEFAULT_MAX_BYTES
            assert size > DEFAULT_MAX_BYTES
            head = io.BytesIO()
            np.lib.format.write_array_header_1_0(head, {"descr": "|u1", "fortran_order": False, "shape": (size,)})
            f.write(head.getvalue())
            chunk = bytes(2**24)
            for _ in range(size // len(chunk)):
                f.write(chunk)
    return out.getvalue()


def test_unused_zip_bomb_member_is_not_read(tmp_path, zero_bomb, peak_memory):
    p = tmp_path / "bomb.npz"
    p.write_bytes(zero_bomb)
    assert peak_memory(lambda: ModelBundle(p)) < 32 * 2**20


def test_used_zip_bomb_member_is_refused_before_reading(tmp_path, zero_bomb, peak_memory):
    data = zero_bomb.replace(b"level1/global.npy", b"level1/globaY.npy").replace(b"level1/globaX.npy",
                                                                                 b"level1/global.npy")
    p = tmp_path / "bomb.npz"
    p.write_bytes(data)

    def load():
        with pytest.raises(ValueError, match="level1/global.*max_bytes"):
            ModelBundle(p)
    assert peak_memory(load) < 32 * 2**20


def test_many_tables_are_refused_before_building(tmp_path, peak_memory):
    """400,000 one-symbol models: 4.8 MB serialised, about 1.8 GB once built."""
    import zlib
    K = 400_000
    raw = b"LDMD" + bytes([1, 16]) + K.to_bytes(4, "little") + (bytes(4) + (1).to_bytes(4, "little")
                                                                 + (2**15).to_bytes(2, "little") * 2) * K
    raw += zlib.crc32(raw).to_bytes(4, "little")
    arrays, meta = model_arrays()
    arrays["level1/static"] = np.frombuffer(raw, np.uint8)
    p = tmp_path / "tables.npz"
    p.write_bytes(npz_bytes(arrays, meta))

    def load():
        with pytest.raises(ValueError, match="level1/static.*max_bytes"):
            ModelBundle(p)
    assert peak_memory(load) < 64 * 2**20
    with pytest.raises(ValueError, match="max_bytes"):
        Dictionary.from_bytes(raw)


def meta_with(path, value):
    arrays, meta = model_arrays()
    node = meta
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    return arrays, meta


@pytest.mark.parametrize("path, value, match", [
    (("format",), 4, "format"),
    (("format",), True, "format"),
    (("transforms",), [], "transforms"),
    (("transforms", 0, "N"), 10**9, "N must be"),
    (("transforms", 0, "N"), -1, "N must be"),
    (("transforms", 0, "M"), 6.0, "M must be"),
    (("transforms", 0, "arch"), "other", "architecture"),
    (("transforms", 0, "lambdas"), [0.0, 0.1], "lambdas"),
    (("transforms", 0, "lambdas"), ["x", 0.1], "lambdas"),
    (("transforms", 0, "lambdas"), [0.01] * 300, "lambdas"),
    (("levels",), [], "levels"),
    (("levels",), [{}] * 256, "levels"),
    (("levels", 0, "level"), 2, "lacks"),
    (("levels", 0, "level"), "0", "ints"),
    (("levels", 0, "transforms"), 1, "lacks"),
    (("levels", 0, "block_sizes"), [[8, 0]], "block_sizes"),
    (("levels", 0, "block_sizes"), [[8, 8, 8]], "block_sizes"),
    (("levels", 0, "block_sizes"), [[2**40, 8]], "block_sizes"),
    (("levels", 0, "max_image_models"), 65, "max_image_models"),
    (("levels", 0, "max_image_models"), None, "max_image_models"),
])
def test_meta_schema(tmp_path, path, value, match):
    refused(tmp_path, npz_bytes(*meta_with(path, value)), match)


@pytest.mark.parametrize("text, match", [
    (b'{"format": Infinity}', "Infinity"),
    (b'{"format": NaN}', "NaN"),
    (b'{"format": 2, "x": 1e999}', "out of range"),
    (b"[" * 100_000 + b"]" * 100_000, "nested"),
    (b'{"a": "' + b"[" * 1000 + b'"}', "format"),  # brackets in strings do not count
    (b"\xff\xfe", "UTF-8"),
    (b"[1, 2", "JSON"),
    (b"42", "object"),
    (b" " * (2**20 + 10), "exceeds"),
    (b'"' + b'\\"' * 300_000, "JSON"),  # escaped quotes: the nesting check stays linear
    (b'{"format": ' + b"9" * 100_000 + b"}", "digits"),
])
def test_hostile_meta_json(tmp_path, text, match):
    arrays, _ = model_arrays()
    refused(tmp_path, npz_bytes(arrays, text), match)


def test_weights_are_checked_before_building_the_net(tmp_path):
    arrays, meta = model_arrays()
    bad = dict(arrays, **{"param0/g_a.net.0.weight": np.zeros((N, 3, 5, 4), np.float16)})
    refused(tmp_path, npz_bytes(bad, meta), "shape")
    bad = dict(arrays, **{"param0/g_a.net.0.bias": np.zeros(N, np.int32)})
    refused(tmp_path, npz_bytes(bad, meta), "dtype")
    bad = dict(arrays, **{"param0/g_a.net.0.bias": np.full(N, np.nan, np.float16)})
    refused(tmp_path, npz_bytes(bad, meta), "finite")
    bad = {k: v for k, v in arrays.items() if k != "param0/g_s.net.6.bias"}
    refused(tmp_path, npz_bytes(bad, meta), "missing")
    bad = dict(arrays, **{"level1/global": arrays["level1/global"].astype(np.uint16)})
    refused(tmp_path, npz_bytes(bad, meta), "dtype")
    _, wide = model_arrays(M=8)  # a config whose global tables have too few models
    wide["transforms"][0]["M"] = 8
    refused(tmp_path, npz_bytes({**model_arrays(M=8)[0], **{k: v for k, v in arrays.items()
                                                           if k.startswith("level")}}, wide), "models")
    # object arrays are never unpickled
    obj = io.BytesIO()
    np.savez(obj, **{k: v for k, v in arrays.items() if k != "param0/log_gain"},
             **{"param0/log_gain": np.array([{"a": 1}] * 2, dtype=object),
                "meta.json": np.frombuffer(json.dumps(meta).encode(), np.uint8)})
    msg = refused(tmp_path, obj.getvalue(), "dtype")
    assert "pickle" not in msg


def test_unknown_compression_and_duplicates(tmp_path, small):
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(small)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_BZIP2) as z:
        for info in src.infolist():
            z.writestr(info.filename, src.read(info.filename))
    refused(tmp_path, out.getvalue(), "compression")
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(small)) as src, zipfile.ZipFile(out, "w") as z:
        for info in src.infolist():
            z.writestr(info.filename, src.read(info.filename))
        with pytest.warns(UserWarning):
            z.writestr("meta.json.npy", src.read("meta.json.npy"))
    refused(tmp_path, out.getvalue(), "twice")


def test_check_config_and_meta_directly():
    assert check_config({"arch": "gained-factorized-v1", "N": 1, "M": 1, "lambdas": [1]})["lambdas"] == [1.0]
    for bad in (None, [], {"arch": "gained-factorized-v1", "N": True, "M": 1, "lambdas": [1]},
                {"arch": "gained-factorized-v1", "N": 1, "M": 1, "lambdas": [float("inf")]},
                {"arch": "gained-factorized-v1", "N": 1, "M": 1, "lambdas": 0.1}):
        with pytest.raises(ValueError):
            check_config(bad)
    with pytest.raises(ValueError, match="object"):
        check_meta([1])


def test_replaced_model_file_is_read_again(tmp_path):
    """The model cache is keyed by the file's identity: a file replaced at the same path
    (here by one with other coder settings) gives the new model."""
    p = tmp_path / "model.npz"
    first = npz_bytes(*model_arrays(max_image_models=4))
    second = npz_bytes(*model_arrays(max_image_models=8))
    p.write_bytes(first)
    a = ldem.ImageCodec.load(p, quality=1)
    assert a.model_id == hashlib.blake2b(first, digest_size=8).hexdigest()
    assert ldem.ImageCodec.load(p, quality=1).bundle is a.bundle  # unchanged: cached
    tmp = tmp_path / "model.npz.new"
    tmp.write_bytes(second)
    os.replace(tmp, p)
    b = ldem.ImageCodec.load(p, quality=1)
    assert b.model_id == hashlib.blake2b(second, digest_size=8).hexdigest() != a.model_id
    assert b.coder.max_image_models == 8
    p.write_bytes(first)  # rewritten in place
    assert ldem.ImageCodec.load(p, quality=1).model_id == a.model_id
    assert _bundle(str(p)) is _bundle(str(p))


# ---------------------------------------------------------------------------------------
# Mutation fuzzing
# ---------------------------------------------------------------------------------------
_VALUES = [None, True, -1, 0, 1, 7, 255, 256, 2**31, 2**64, -2**63, 0.5, -0.0, 1e308, "", "x", "0", [], {}, [1, 2],
           [[8, 8]], {"a": 1}, [[]] * 3]


def _edit_meta(rng, meta):
    """Replace a random field (or list entry) somewhere in meta by a random value."""
    node, path = meta, []
    while True:
        keys = list(node.keys()) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            break
        k = rng.choice(keys)
        path.append(k)
        if isinstance(node[k], (dict, list)) and node[k] and rng.random() < 0.7:
            node = node[k]
            continue
        break
    if not path:
        return
    if rng.random() < 0.15 and isinstance(node, dict):
        del node[path[-1]]
    else:
        node[path[-1]] = copy.deepcopy(rng.choice(_VALUES))


def _rebuild(data, rng):
    """Swaps, drops or duplicates members of the archive."""
    with zipfile.ZipFile(io.BytesIO(data)) as src:
        members = {i.filename: src.read(i.filename) for i in src.infolist()}
    names = list(members)
    op = rng.randrange(3)
    if op == 0:
        a, b = rng.sample(names, 2)
        members[a], members[b] = members[b], members[a]
    elif op == 1:
        del members[rng.choice(names)]
    else:
        members[rng.choice(names) + ".extra"] = members[rng.choice(names)]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for k, v in members.items():
            z.writestr(k, v)
    return out.getvalue()


def test_mutation_fuzz(tmp_path):
    """Seeded mutations of a small valid model: each either loads into a usable bundle or
    raises ValueError/OSError; nothing else."""
    rng = random.Random(1234)
    stored = npz_bytes(*model_arrays(), compressed=False)
    deflated = npz_bytes(*model_arrays(), compressed=True)
    outcomes = {"loaded": 0, "refused": 0}
    p = tmp_path / "fuzz.npz"
    for i in range(400):
        kind = i % 5
        if kind == 0:  # truncation
            base = rng.choice((stored, deflated))
            data = base[:rng.randrange(len(base))]
        elif kind in (1, 2):  # byte flips (stored members: the .npy headers and the data are exposed)
            data = bytearray(rng.choice((stored, deflated, stored)))
            for _ in range(rng.choice((1, 1, 2, 4, 16))):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            data = bytes(data)
        elif kind == 3:  # member swaps, drops, extra members
            data = _rebuild(rng.choice((stored, deflated)), rng)
        else:  # meta.json field edits
            arrays, meta = (block_model_arrays if i % 2 else model_arrays)()  # format 2 and 3
            for _ in range(rng.choice((1, 1, 2, 3))):
                _edit_meta(rng, meta)
            data = npz_bytes(arrays, meta, compressed=rng.random() < 0.5)
        p.write_bytes(data)
        try:
            b = ModelBundle(p)
        except (ValueError, OSError):
            outcomes["refused"] += 1
            continue
        outcomes["loaded"] += 1
        for q in range(1, b.num_qualities + 1):  # a loaded bundle is usable
            codec = ldem.ImageCodec(b, q)
            assert codec.latent_channels == b.configs[codec.transforms_set]["M"]
            assert codec.stride == (8 if codec.is_block_transform else 16)
    assert outcomes["loaded"] > 20 and outcomes["refused"] > 100, outcomes


# ---------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------
def test_writer_gives_the_bytes_the_reader_reads(tmp_path, small):
    from ldem.model_file import table_members, transform_members, write_model_file
    b = load_bytes(tmp_path, small)
    with zipfile.ZipFile(io.BytesIO(small)) as ref:
        arrays = {n[:-4]: np.load(io.BytesIO(ref.read(n))) for n in ref.namelist() if n != "meta.json.npy"}
    meta = b.meta
    members = dict(transform_members(0, b.states[0]))
    for q in (1, 2):
        members.update(table_members(q, *b.tables[q]))
    assert list(members) == list(arrays) and all(np.array_equal(members[k], arrays[k]) for k in arrays)
    out = tmp_path / "sub" / "w.npz"
    # the fixture is format 2, which is still read; the writer writes the current format
    assert write_model_file(out, members, meta["transforms"], meta["levels"], meta["training"]) == \
        dict(meta, format=MODEL_FILE_FORMAT)
    with zipfile.ZipFile(out) as z, zipfile.ZipFile(io.BytesIO(small)) as ref:  # same members, same order
        assert z.namelist() == ref.namelist()
        assert [n for n in ref.namelist() if z.read(n) != ref.read(n)] == ["meta.json.npy"]
    again = ModelBundle(out)
    assert again.levels == b.levels and again.configs == b.configs
    assert all(again.tables[q][i].to_bytes() == b.tables[q][i].to_bytes() for q in (1, 2) for i in (0, 1))
    with pytest.raises(FileExistsError):
        write_model_file(out, members, meta["transforms"], meta["levels"], meta["training"])
    write_model_file(out, members, meta["transforms"], meta["levels"], meta["training"], force=True)
    with pytest.raises(ValueError, match="256 qualities"):
        write_model_file(tmp_path / "x.npz", {}, [], [{}] * 256, [])
    assert not (tmp_path / "x.npz").exists()


def test_table_members_without_static():
    from ldem.model_file import table_members
    g = Dictionary.from_pmfs([[0.5, 0.5]], [0])
    m = table_members(3, g)
    assert list(m) == ["level3/global"] and m["level3/global"].tobytes() == g.to_bytes()


# ---------------------------------------------------------------------------------------
# Context families and compatible model ids
# ---------------------------------------------------------------------------------------
def _context_arrays(extra_static=True):
    from ldem.local import NUM_CONTEXTS
    arrays, meta = model_arrays()
    fam = Dictionary.from_pmfs([[0.1, 0.8, 0.1]] * (M * NUM_CONTEXTS), offsets=[-1] * (M * NUM_CONTEXTS))
    stat = Dictionary.from_pmfs([[0.3, 0.4, 0.3]] * (2 * NUM_CONTEXTS), offsets=[-1] * (2 * NUM_CONTEXTS))
    for q in (1, 2):
        arrays[f"level{q}/context_global"] = np.frombuffer(fam.to_bytes(), np.uint8)
        if extra_static:
            arrays[f"level{q}/context_static"] = np.frombuffer(stat.to_bytes(), np.uint8)
    return arrays, meta, fam, stat


def test_context_families_are_loaded_without_lookups_and_used(tmp_path):
    arrays, meta, fam, stat = _context_arrays()
    b = load_bytes(tmp_path, npz_bytes(arrays, meta))
    cg, cs = b.context_tables(1)
    assert cg == fam and cs == stat and not cg._impl.has_lookups
    codec = ldem.ImageCodec(b, 1)
    assert codec.coder.context_models is cg
    y = np.zeros((M, 3, 4), np.int32)
    y[0, 1, 1] = 5
    data = codec.coder.encode(y)
    assert codec.coder.describe(data)["contexts"] and np.array_equal(codec.coder.decode(data), y)
    # A file without them codes context-free streams.
    plain = load_bytes(tmp_path, npz_bytes(*model_arrays()), name="plain.npz")
    assert plain.context_tables(1) == (None, None)


@pytest.mark.parametrize("member, bad", [
    ("context_global", "one family too few"),
    ("context_global", "other precision"),
    ("context_static", "not whole families"),
])
def test_bad_context_families_are_refused(tmp_path, member, bad):
    from ldem.local import NUM_CONTEXTS
    arrays, meta, fam, _ = _context_arrays()
    n = {"one family too few": (M - 1) * NUM_CONTEXTS, "not whole families": NUM_CONTEXTS + 1}.get(bad, M * NUM_CONTEXTS)
    d = Dictionary.from_pmfs([[0.1, 0.8, 0.1]] * n, offsets=[-1] * n, precision=12 if bad == "other precision" else 16)
    arrays[f"level1/{member}"] = np.frombuffer(d.to_bytes(), np.uint8)
    refused(tmp_path, npz_bytes(arrays, meta), member)


@pytest.mark.parametrize("value", [["abc"], "00" * 8, ["0" * 15 + "g"], ["0" * 16] * 33, [1234]])
def test_compatible_model_ids_are_checked(tmp_path, value):
    arrays, meta = model_arrays()
    meta["compatible_model_ids"] = value
    refused(tmp_path, npz_bytes(arrays, meta), "compatible_model_ids")


def test_files_of_a_compatible_model_decode(tmp_path):
    old_path = tmp_path / "old.npz"
    old_path.write_bytes(npz_bytes(*model_arrays()))
    old = ModelBundle(old_path)
    img = (np.arange(16 * 24 * 3) % 251).astype(np.uint8).reshape(16, 24, 3)
    data = ldem.ImageCodec(old, 1).compress(img)
    arrays, meta, _, _ = _context_arrays()
    new_path = tmp_path / "new.npz"
    new_path.write_bytes(npz_bytes(arrays, meta))
    with pytest.raises(ldem.DecodeError, match="made by model"):
        ldem.ImageCodec.for_file(data, new_path)
    meta["compatible_model_ids"] = [old.model_id.hex()]
    new_path.write_bytes(npz_bytes(arrays, meta))
    new = ModelBundle(new_path)
    assert new.reads(old.model_id) and new.reads(new.model_id) and not new.reads(b"\0" * 8)
    codec = ldem.ImageCodec.for_file(data, new_path)
    assert np.array_equal(codec.decompress_array(data), ldem.ImageCodec(old, 1).decompress_array(data))


def test_damaged_context_families_are_refused_when_first_used(tmp_path):
    """The families are built on first use: damage there is a ValueError naming the file."""
    arrays, meta, fam, _ = _context_arrays()
    raw = bytearray(fam.to_bytes())
    raw[40] ^= 0xFF  # a frequency: the CRC no longer matches
    arrays["level2/context_global"] = np.frombuffer(bytes(raw), np.uint8)
    b = load_bytes(tmp_path, npz_bytes(arrays, meta))
    assert b.has_context_tables(2) and b.context_tables(1)[0] == fam
    with pytest.raises(ValueError, match="level2/context_global") as e:
        ldem.ImageCodec(b, 2)
    assert str(tmp_path) in str(e.value)
    # A budget too small for the families is refused at first use too.
    tight = load_bytes(tmp_path, npz_bytes(*_context_arrays()[:2]), name="tight.npz",
                       max_bytes=ModelBundle(tmp_path / "m.npz").bytes_charged)
    with pytest.raises(ValueError, match="max_bytes"):
        tight.context_tables(1)


# -- block transforms and ladders (format 3) ------------------------------------------------
def block_model_arrays(basis=None, ladder=(2, 3)):
    """model_arrays plus a block transform at entry 3, offered as ``ladder``."""
    from ldem.block_transform import CHANNELS
    arrays, meta = model_arrays()
    arrays["param1/basis"] = np.eye(CHANNELS) if basis is None else basis
    arrays["param1/offsets"] = np.full((1, CHANNELS), 0.1, np.float32)
    arrays["param1/deblock"] = np.zeros((1, 2, 15, 9, 4), np.float32)
    g = Dictionary.from_pmfs([[0.1, 0.8, 0.1]] * CHANNELS, offsets=[-1] * CHANNELS)
    arrays["level3/global"] = np.frombuffer(g.to_bytes(), np.uint8)
    meta["format"] = 3
    meta["transforms"].append({"arch": "block-klt-v1", "M": CHANNELS, "steps": [12.0], "deadzone": 0.15,
                               "predicted": 3})
    meta["levels"].append({"quality": 3, "transforms": 1, "level": 0, "block_sizes": [[8, 8]],
                           "max_image_models": 2})
    if ladder is not None:
        meta["ladder"] = list(ladder)
    return arrays, meta


def test_block_transform_quality_codes_and_follows_the_ladder(tmp_path):
    b = load_bytes(tmp_path, npz_bytes(*block_model_arrays()))
    assert b.num_qualities == 2 and [b.entry(q) for q in (1, 2)] == [2, 3]
    assert b.level_of(1) == (0, 1) and b.level_of(2) == (1, 0) and b.level_of(1, entry=1) == (0, 0)
    assert b.stride(1) == 8 and b.stride(0) == 16 and b.is_block_transform(1)
    codec = ldem.ImageCodec(b, 2)
    assert codec.stride == 8 and codec.is_block_transform and codec.entry == 3
    img = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    y, size = codec.latent(img)
    assert y.shape == (192, 3, 4) and size == (20, 30)
    data = codec.compress(img)
    assert ldem.codec.read_header(data)["quality"] == 2
    back = ldem.ImageCodec.for_file(data, tmp_path / "m.npz")
    assert back.entry == 3
    out = back.decompress_array(data)
    # identity basis and step 12: every pixel within half a step (plus the dead zone)
    assert out.shape == img.shape and np.abs(out.astype(int) - img).max() <= 12 * 0.65 + 1
    with pytest.raises(ValueError, match="quality"):
        ldem.ImageCodec(b, 3)


def test_old_files_keep_their_numbering_off_the_ladder(tmp_path):
    old_path = tmp_path / "old.npz"
    old_path.write_bytes(npz_bytes(*model_arrays()))
    old = ModelBundle(old_path)
    img = (np.arange(16 * 24 * 3) % 251).astype(np.uint8).reshape(16, 24, 3)
    old_file = ldem.ImageCodec(old, 1).compress(img)  # quality 1 of the old model: entry 1, off the ladder
    arrays, meta = block_model_arrays()
    meta["compatible_model_ids"] = [old.model_id.hex()]
    new_path = tmp_path / "new.npz"
    new_path.write_bytes(npz_bytes(arrays, meta))
    new = ModelBundle(new_path)
    codec = ldem.ImageCodec.for_file(old_file, new_path)
    assert codec.entry == 1 and codec.quality == 1
    assert np.array_equal(codec.decompress_array(old_file), ldem.ImageCodec(old, 1).decompress_array(old_file))
    assert codec.compress(img) == old_file  # it writes the old model's files
    # the new file's own quality 1 is entry 2: a different codec, which refuses the old file
    with pytest.raises(ldem.DecodeError, match="made by model"):
        ldem.ImageCodec(new, 1).decompress_array(old_file)
    assert new.entry_for(old.model_id, 2) == 2 and new.entry_for(new.model_id, 2) == 3
    for model_id, q in ((old.model_id, 4), (new.model_id, 3), (b"\1" * 8, 1)):
        with pytest.raises(ldem.DecodeError):
            new.entry_for(model_id, q)
    with pytest.raises(ValueError, match="model_id"):
        ldem.ImageCodec(new, 1, model_id=b"\1" * 8)


@pytest.mark.parametrize("ladder", [[], [0], [3, 2], [2, 2], [1, 4], ["1"], [1.0], "1", [True]])
def test_bad_ladders_are_refused(tmp_path, ladder):
    refused(tmp_path, npz_bytes(*block_model_arrays(ladder=ladder)), "ladder")


@pytest.mark.parametrize("basis, match", [
    (np.eye(192) * 2, "orthonormal"),
    (np.eye(192)[:, :191], "shape|basis"),
    (np.eye(192).astype(np.int64), "dtype|basis"),
    (np.where(np.eye(192) > 0, np.inf, 0.0), "finite"),
])
def test_bad_block_bases_are_refused(tmp_path, basis, match):
    refused(tmp_path, npz_bytes(*block_model_arrays(basis=basis)), match)


@pytest.mark.parametrize("offsets", [np.full((1, 192), 0.6), np.zeros((2, 192)), np.full((1, 192), np.nan)])
def test_bad_block_offsets_are_refused(tmp_path, offsets):
    arrays, meta = block_model_arrays()
    arrays["param1/offsets"] = offsets
    refused(tmp_path, npz_bytes(arrays, meta), "offsets")


@pytest.mark.parametrize("deblock, match", [(np.zeros((1, 2, 15, 9, 3)), "shape|deblock"),
                                            (np.full((1, 2, 15, 9, 4), 1e6), "deblock"),
                                            (np.full((1, 2, 15, 9, 4), np.nan), "finite")])
def test_bad_deblocking_filters_are_refused(tmp_path, deblock, match):
    arrays, meta = block_model_arrays()
    arrays["param1/deblock"] = deblock
    refused(tmp_path, npz_bytes(arrays, meta), match)


@pytest.mark.parametrize("key, value, match", [
    ("steps", [0.0], "steps"), ("steps", [12.0] * 300, "steps"), ("deadzone", -0.1, "deadzone"),
    ("predicted", 193, "predicted"), ("predicted", 1.0, "predicted"), ("predicted", None, "predicted"),
    ("M", 6, "M must be"),
])
def test_bad_block_configs_are_refused(tmp_path, key, value, match):
    arrays, meta = block_model_arrays()
    meta["transforms"][1][key] = value
    refused(tmp_path, npz_bytes(arrays, meta), match)


def test_block_level_must_exist(tmp_path):
    arrays, meta = block_model_arrays()
    meta["levels"][2]["level"] = 1
    refused(tmp_path, npz_bytes(arrays, meta), "lacks")
