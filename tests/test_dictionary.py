"""ldem.Dictionary: table construction, invariants, serialisation and argument errors."""
import copy
import hashlib
import math
import pickle
import struct
import zlib

import numpy as np
import pytest

import ldem
from ldem import Dictionary

PRECISIONS = [12, 13, 14, 15, 16]
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


# -- references: the documented quantization rules, written out in Python ---------------------

def ref_quantize_pmf(weights, precision):
    """f_i = 1 + floor(w_i / W * A), A = 2^P - k; leftover units to the largest remainders
    (ties to the lower index). Sequential float sum, two IEEE roundings, as documented."""
    k = len(weights)
    A = 2**precision - k
    W = 0.0
    for v in weights:
        W += float(v)
    f, rem, used = [1] * k, [0.0] * k, 0
    for i, v in enumerate(weights):
        u = (float(v) / W) * A
        fl = min(math.floor(u), A)
        rem[i] = u - fl
        f[i] += fl
        used += fl
    assert used <= A, "reference covers the common case only (no float overshoot)"
    order = sorted(range(k), key=lambda i: -rem[i])  # stable: ties keep the lower index
    for i in range(A - used):
        f[order[i]] += 1
    return f


def ref_quantize_counts(weights, precision):
    """Integer version: valid tables are kept; f_i = 1 + floor(w_i * A / W), remainders w_i * A mod W."""
    k, M = len(weights), 2**precision
    w = [int(v) for v in weights]
    W = sum(w)
    if min(w) >= 1 and W == M:
        return w
    A = M - k
    if W == 0:
        return [1 + A // k + (1 if i < A % k else 0) for i in range(k)]
    f = [1 + v * A // W for v in w]
    rem = [v * A % W for v in w]
    order = sorted(range(k), key=lambda i: -rem[i])
    for i in range(A - sum(v * A // W for v in w)):
        f[order[i]] += 1
    return f


def serialized(precision, models):
    """The documented layout: "LDMD", u8 version 1, u8 precision, u32 K,
    per model {i32 offset, u32 n, u16 freq[n + 1]}, u32 CRC-32 of everything before."""
    body = b"LDMD" + bytes([1, precision]) + struct.pack("<I", len(models))
    for offset, freq in models:
        body += struct.pack("<iI", offset, len(freq) - 1) + struct.pack(f"<{len(freq)}H", *freq)
    return body + struct.pack("<I", zlib.crc32(body))


def seal(body: bytes) -> bytes:
    """Appends a correct CRC-32, so that only the semantic checks can reject `body`."""
    return body + struct.pack("<I", zlib.crc32(body))


def random_pmfs(rng, K, n_max=60):
    rows = []
    for k in range(K):
        n = int(rng.integers(1, n_max + 1))
        kind = k % 4
        if kind == 0:
            p = rng.dirichlet(np.full(n, 0.4))
        elif kind == 1:
            p = np.exp(-np.abs(np.arange(n) - n / 2) / rng.uniform(0.1, 6))
            p /= p.sum() * 1.001  # leaves a small escape tail
        elif kind == 2:
            p = np.zeros(n)
            p[rng.integers(n)] = 1.0
        else:
            p = rng.random(n) * 5  # unnormalised masses
        rows.append(p)
    return rows


def check_invariants(d: Dictionary, precision: int):
    assert d.precision == precision
    for k in range(d.num_models):
        f = d.frequencies(k)
        assert f.dtype == np.uint32
        assert int(f.min()) >= 1
        assert int(f.sum(dtype=np.int64)) == 2**precision
        lo, hi = d.support(k)
        assert hi - lo == len(f) - 1 == len(d.costs(k)) - 1


# -- construction and invariants -----------------------------------------------------------------

@pytest.mark.parametrize("precision", PRECISIONS)
def test_from_pmfs_invariants_and_documented_rule(precision):
    rng = np.random.default_rng(precision)
    rows = random_pmfs(rng, 12)
    offsets = rng.integers(-100, 100, size=12)
    d = Dictionary.from_pmfs(rows, offsets, precision=precision)
    assert d.num_models == len(d) == 12
    check_invariants(d, precision)
    for k, p in enumerate(rows):
        assert d.support(k) == (offsets[k], offsets[k] + len(p))
        assert d.offset(k) == offsets[k]
        escape = max(0.0, 1.0 - float(p.sum()))
        assert d.frequencies(k).tolist() == ref_quantize_pmf(list(p) + [escape], precision)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_from_frequencies_invariants_and_documented_rule(precision):
    rng = np.random.default_rng(100 + precision)
    for trial in range(40):
        n = int(rng.integers(1, 200))
        counts = rng.integers(0, 10**6, size=n) * (rng.random(n) < 0.6)
        escape = int(rng.integers(0, 3))
        d = Dictionary.from_frequencies([counts], [-5], precision=precision, escape=escape)
        check_invariants(d, precision)
        assert d.frequencies(0).tolist() == ref_quantize_counts(list(counts) + [escape], precision)


def test_from_frequencies_all_zero_counts_give_uniform_table():
    d = Dictionary.from_frequencies([[0, 0, 0]], [0], precision=12)
    # 4 slots share 4096 units: A = 4092, 1 + 4092 // 4 = 1024 each.
    assert d.frequencies(0).tolist() == [1024, 1024, 1024, 1024]


@pytest.mark.parametrize("precision", PRECISIONS)
def test_exact_tables_are_kept(precision):
    rng = np.random.default_rng(7 + precision)
    for n in (1, 2, 17, 300):
        cuts = np.sort(rng.choice(np.arange(1, 2**precision), size=n, replace=False))
        freq = np.diff(np.concatenate([[0], cuts, [2**precision]]))  # n + 1 parts, each >= 1
        assert freq.min() >= 1 and freq.sum() == 2**precision
        d = Dictionary.from_frequencies([freq[:-1]], [3], precision=precision, escape=int(freq[-1]))
        np.testing.assert_array_equal(d.frequencies(0), freq)
        # The same table given as 2-D array rows with a per-model escape array.
        e = Dictionary.from_frequencies(np.stack([freq[:-1]] * 2), [3, 4], precision=precision,
                                        escape=np.array([freq[-1]] * 2))
        np.testing.assert_array_equal(e.frequencies(1), freq)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("n", [1, 2, 3, 64, 257])
def test_peaked_pmf_gives_mode_all_but_one_unit_per_other_slot(precision, n):
    rng = np.random.default_rng(n)
    j = int(rng.integers(n))
    onehot = np.zeros(n)
    onehot[j] = 1.0
    nearly = np.full(n, 1e-13)
    nearly[j] = 1.0 - 1e-9
    for p in (onehot, nearly):
        f = Dictionary.from_pmfs([p], [-j], precision=precision).frequencies(0)
        expected = np.ones(n + 1, np.uint32)
        expected[j] = 2**precision - n  # n other slots: n - 1 symbols and the escape
        np.testing.assert_array_equal(f, expected)


def test_default_and_explicit_escape_mass():
    d = Dictionary.from_pmfs([[0.25, 0.25]], [0], precision=12)  # escape = 1 - 0.5 = 0.5
    assert d.frequencies(0).tolist() == ref_quantize_pmf([0.25, 0.25, 0.5], 12) == [1024, 1024, 2048]
    e = Dictionary.from_pmfs([[0.25, 0.25]], [0], precision=12, escape=0.0)
    assert e.frequencies(0).tolist() == [2048, 2047, 1]  # tie: the lower index gets the unit
    f = Dictionary.from_pmfs([[0.5, 0.5], [0.5, 0.5]], [0, 0], precision=12, escape=[0.0, 1.0])
    assert f.frequencies(0).tolist() == [2048, 2047, 1]
    assert f.frequencies(1).tolist() == [1024, 1024, 2048]


def test_rows_of_different_lengths_and_scalar_offset():
    d = Dictionary.from_pmfs([[1.0], [0.5, 0.5], np.full(9, 1 / 9)], offsets=-2, precision=14)
    assert [d.support(k) for k in range(3)] == [(-2, -1), (-2, 0), (-2, 7)]
    check_invariants(d, 14)


def test_int32_edge_supports():
    d = Dictionary.from_pmfs([[1.0], [0.5, 0.5], [1.0]], [INT32_MIN, INT32_MAX - 1, INT32_MAX])
    assert d.support(0) == (INT32_MIN, INT32_MIN + 1)
    assert d.support(1) == (INT32_MAX - 1, INT32_MAX + 1)
    assert d.support(2) == (INT32_MAX, INT32_MAX + 1)
    assert Dictionary.from_bytes(d.to_bytes()) == d


def test_largest_support_per_precision():
    for precision in (12, 13):
        n = 2**precision - 1  # every slot, escape included, gets exactly one unit
        d = Dictionary.from_pmfs([np.ones(n)], [0], precision=precision)
        np.testing.assert_array_equal(d.frequencies(0), np.ones(n + 1, np.uint32))
        d = Dictionary.from_frequencies([np.ones(n, np.int64)], [0], precision=precision, escape=1)
        np.testing.assert_array_equal(d.frequencies(0), np.ones(n + 1, np.uint32))


def test_costs_are_exact_bits_of_each_slot():
    rng = np.random.default_rng(3)
    for precision in PRECISIONS:
        d = Dictionary.from_pmfs(random_pmfs(rng, 4), [0, 1, 2, 3], precision=precision)
        for k in range(4):
            c = d.costs(k)
            assert c.dtype == np.float64
            np.testing.assert_allclose(c, precision - np.log2(d.frequencies(k).astype(np.float64)),
                                       rtol=0, atol=1e-12)
    d = Dictionary.from_frequencies([[2**15, 2**14]], [0], precision=16, escape=2**14)
    assert d.costs(0).tolist() == [1.0, 2.0, 2.0]


def test_model_index_forms():
    d = Dictionary.from_pmfs([[1.0], [0.5, 0.5]], [0, 10])
    assert d.support(-1) == d.support(1) == (10, 12)
    assert d.support(np.int64(0)) == (0, 1)
    for bad in (2, -3):
        with pytest.raises(IndexError):
            d.frequencies(bad)
        with pytest.raises(IndexError):
            d.costs(bad)
    with pytest.raises(IndexError):
        d.support("0")


# -- serialisation -------------------------------------------------------------------------------

@pytest.mark.parametrize("precision", PRECISIONS)
def test_to_bytes_layout_and_round_trip(precision):
    rng = np.random.default_rng(precision)
    rows = random_pmfs(rng, 5)
    offsets = [-40, 0, 7, INT32_MIN, INT32_MAX - 200]
    d = Dictionary.from_pmfs(rows, offsets, precision=precision)
    b = d.to_bytes()
    assert isinstance(b, bytes)
    assert b == serialized(precision, [(offsets[k], d.frequencies(k).tolist()) for k in range(5)])
    e = Dictionary.from_bytes(b)
    assert e == d and e.precision == precision and e.num_models == 5
    for k in range(5):
        np.testing.assert_array_equal(e.frequencies(k), d.frequencies(k))
        assert e.support(k) == d.support(k)
    assert Dictionary.from_bytes(bytearray(b)) == d
    assert Dictionary.from_bytes(memoryview(b)) == d


def test_from_bytes_rejects_every_truncation_and_bit_flip():
    d = Dictionary.from_pmfs([[0.2, 0.5, 0.3], [1.0]], [-1, 4], precision=13)
    b = d.to_bytes()
    for cut in range(len(b)):
        with pytest.raises(ValueError):
            Dictionary.from_bytes(b[:cut])
    for i in range(len(b)):
        for bit in range(8):
            bad = bytearray(b)
            bad[i] ^= 1 << bit
            with pytest.raises(ValueError):
                Dictionary.from_bytes(bytes(bad))
    for extra in (b"\x00", b"\x00" * 4, b"junk!"):
        with pytest.raises(ValueError):
            Dictionary.from_bytes(b + extra)


def _body(precision=12, K=1, models=((0, [2048, 2048]),), version=1):
    body = b"LDMD" + bytes([version, precision]) + struct.pack("<I", K)
    for offset, freq in models:
        body += struct.pack("<iI", offset, len(freq) - 1) + struct.pack(f"<{len(freq)}H", *freq)
    return body


@pytest.mark.parametrize("body, match", [
    (_body(version=2), "version"),                                  # unknown format version
    (_body(precision=11, models=((0, [1024, 1024]),)), "precision"),  # precision below 12
    (_body(precision=17), "precision"),                             # precision above 16
    (_body(precision=255), "precision"),
    (_body(K=2), "more models"),                                    # claims more models than present
    (_body(K=2**32 - 1), "more models"),                            # huge count: must not allocate
    (_body(K=0), "trailing"),                                       # model bytes after K = 0
    (_body(models=((0, [4096]),)) + b"\0\0", "invalid"),            # n = 0: no support symbol
    (_body(models=((0, [0, 4096]),)), ">= 1"),                      # zero frequency
    (_body(models=((0, [2048, 2047]),)), "sum"),                    # sum != 2^P
    (_body(models=((0, [4096, 1]),)), "sum"),                       # sum != 2^P
    (_body(models=((INT32_MAX, [2048, 1024, 1024]),)), "int32"),    # support past INT32_MAX
    (_body() + b"\x00\x00", "trailing"),                            # trailing bytes
    (_body(models=((0, [2048, 1024, 1024]),))[:-2], "truncated"),   # truncated frequencies
], ids=lambda b: b[4:10].hex() + "-" + str(len(b)) if isinstance(b, bytes) else b)
def test_from_bytes_rejects_semantically_invalid_input_with_valid_crc(body, match):
    with pytest.raises(ValueError, match=match):
        Dictionary.from_bytes(seal(body))


def test_from_bytes_huge_support_claim_does_not_allocate():
    head = b"LDMD" + bytes([1, 16]) + struct.pack("<I", 1)
    for n in (2**32 - 1, 2**31, 65536, 65535):  # the last two: invalid / more than the data holds
        with pytest.raises(ValueError, match="invalid"):
            Dictionary.from_bytes(seal(head + struct.pack("<iI", 0, n) + b"\x01\x00" * 10))


def test_from_bytes_accepts_hand_built_layout():
    b = serialized(12, [(-3, [1000, 3000, 96]), (5, [4095, 1])])
    d = Dictionary.from_bytes(b)
    assert d.num_models == 2 and d.precision == 12
    assert d.frequencies(0).tolist() == [1000, 3000, 96] and d.support(0) == (-3, -1)
    assert d.frequencies(1).tolist() == [4095, 1] and d.support(1) == (5, 6)
    assert d.to_bytes() == b


@pytest.mark.parametrize("data", ["LDMD", None, 12, [1, 2], np.zeros(20, np.uint8)])
def test_from_bytes_type_errors(data):
    with pytest.raises(TypeError, match="data"):
        Dictionary.from_bytes(data)


# -- concat, hashing, equality, pickling ----------------------------------------------------------

def test_concat_keeps_tables_and_order():
    rng = np.random.default_rng(11)
    a = Dictionary.from_pmfs(random_pmfs(rng, 3), [0, -1, 2], precision=14)
    b = Dictionary.from_frequencies([[5, 0, 3], [1]], [10, -20], precision=14, escape=2)
    c = Dictionary.concat([a, b])
    assert c.num_models == 5 and c.precision == 14
    parts = [(a, k) for k in range(3)] + [(b, k) for k in range(2)]
    for i, (src, k) in enumerate(parts):
        np.testing.assert_array_equal(c.frequencies(i), src.frequencies(k))
        assert c.support(i) == src.support(k)
    assert Dictionary.concat([a]) == a
    assert Dictionary.concat(iter([b, a])) != c
    assert Dictionary.concat([a, a]).num_models == 6


def test_concat_errors():
    a = Dictionary.from_pmfs([[1.0]], [0], precision=12)
    b = Dictionary.from_pmfs([[1.0]], [0], precision=16)
    with pytest.raises(ValueError, match="precision"):
        Dictionary.concat([a, b])
    with pytest.raises(TypeError):
        Dictionary.concat([])
    with pytest.raises(TypeError):
        Dictionary.concat([a, "b"])


def test_content_hash_and_equality():
    d = Dictionary.from_pmfs([[0.2, 0.8]], [0], precision=12)
    same = Dictionary.from_frequencies([d.frequencies(0)[:-1]], [0], precision=12, escape=1)
    other_table = Dictionary.from_frequencies([[821, 3274]], [0], precision=12, escape=1)
    other_offset = Dictionary.from_pmfs([[0.2, 0.8]], [1], precision=12)
    other_precision = Dictionary.from_pmfs([[0.2, 0.8]], [0], precision=13)
    assert d.frequencies(0).tolist() == [820, 3275, 1]
    h = d.content_hash()
    assert isinstance(h, bytes) and len(h) == 8
    assert h == hashlib.blake2b(d.to_bytes(), digest_size=8).digest()
    assert same == d and same.content_hash() == h and hash(same) == hash(d)
    assert len({d, same, other_table}) == 2
    for o in (other_table, other_offset, other_precision):
        assert o != d and not (o == d)
        assert o.content_hash() != h
    assert d != d.to_bytes() and d != None  # noqa: E711
    assert repr(d) == "Dictionary(num_models=1, precision=12)"


def test_pickle_and_copy():
    rng = np.random.default_rng(5)
    d = Dictionary.from_pmfs(random_pmfs(rng, 6), np.arange(6) * 3 - 9, precision=15)
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        e = pickle.loads(pickle.dumps(d, protocol=protocol))
        assert isinstance(e, Dictionary) and e == d and e.to_bytes() == d.to_bytes()
    assert copy.deepcopy(d) == d and copy.copy(d) == d
    # A pickled dictionary still codes.
    y = np.array([[[0, 1, -9]]], np.int32)
    m = np.zeros((1, 1, 1), np.int32)
    data = ldem.encode(y, m, d, block=(1, 3))
    np.testing.assert_array_equal(ldem.decode(data, m, pickle.loads(pickle.dumps(d)), y.shape, block=(1, 3)), y)


def test_direct_construction_is_rejected():
    with pytest.raises(TypeError):
        Dictionary(object())


# -- argument errors ------------------------------------------------------------------------------

@pytest.mark.parametrize("pmfs, match", [
    ("abc", "pmfs"),
    ({"a": 1}, "pmfs"),
    (np.ones((1, 2, 2)), "pmfs"),
    (np.float64(1.0), "pmfs"),
    ([["a", "b"]], "pmfs"),
])
def test_from_pmfs_type_errors(pmfs, match):
    with pytest.raises(TypeError, match=match):
        Dictionary.from_pmfs(pmfs, [0])


@pytest.mark.parametrize("pmfs", [
    [[0.5, -0.1]], [[0.5, np.nan]], [[np.inf, 0.5]], [[-np.inf]], [[0.5], [0.2, -1e-300]],
])
def test_from_pmfs_rejects_bad_masses(pmfs):
    with pytest.raises(ValueError, match=r"pmfs\[\d\]"):
        Dictionary.from_pmfs(pmfs, [0] * len(pmfs))


@pytest.mark.parametrize("precision", [11, 17, 0, -16, 32])
def test_precision_out_of_range(precision):
    with pytest.raises(ValueError, match="precision"):
        Dictionary.from_pmfs([[0.5, 0.5]], [0], precision=precision)
    with pytest.raises(ValueError, match="precision"):
        Dictionary.from_frequencies([[1, 1]], [0], precision=precision)


@pytest.mark.parametrize("precision", ["16", 16.0, None, True])
def test_precision_type(precision):
    with pytest.raises(TypeError, match="precision"):
        Dictionary.from_pmfs([[0.5, 0.5]], [0], precision=precision)
    with pytest.raises(TypeError, match="precision"):
        Dictionary.from_frequencies([[1, 1]], [0], precision=precision)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_support_too_large(precision):
    n = 2**precision  # n + 1 slots cannot each get >= 1 of 2^P units
    with pytest.raises(ValueError, match=r"pmfs\[0\].*too large"):
        Dictionary.from_pmfs([np.ones(n)], [0], precision=precision)
    with pytest.raises(ValueError, match=r"counts\[0\].*too large"):
        Dictionary.from_frequencies([np.ones(n, np.int64)], [0], precision=precision)


@pytest.mark.parametrize("offset, n", [(INT32_MAX, 2), (INT32_MAX - 5, 7), (INT32_MAX - 99, 101)])
def test_offsets_whose_support_overflows_int32(offset, n):
    with pytest.raises(ValueError, match=r"model 0: .*int32"):
        Dictionary.from_pmfs([np.full(n, 1.0 / n)], [offset])
    with pytest.raises(ValueError, match=r"model 1: .*int32"):
        Dictionary.from_frequencies([[1], np.ones(n, np.int64)], [0, offset])


@pytest.mark.parametrize("offsets", [[2**31], [-(2**31) - 1], [2**40]])
def test_offsets_outside_int32(offsets):
    with pytest.raises(ValueError, match="offsets"):
        Dictionary.from_pmfs([[1.0]], offsets)


@pytest.mark.parametrize("offsets", [[0, 1], [], np.zeros((1, 1), np.int64)])
def test_offsets_wrong_count(offsets):
    with pytest.raises(ValueError, match="offsets"):
        Dictionary.from_pmfs([[1.0]], offsets)


def test_empty_rows():
    with pytest.raises(ValueError, match=r"pmfs\[1\]"):
        Dictionary.from_pmfs([[1.0], []], [0, 0])
    with pytest.raises(ValueError, match=r"counts\[0\]"):
        Dictionary.from_frequencies([[]], [0])


def test_from_frequencies_errors():
    with pytest.raises(ValueError, match=r"counts\[0\]"):
        Dictionary.from_frequencies([[5, -1]], [0])
    with pytest.raises(TypeError, match=r"counts\[0\]"):
        Dictionary.from_frequencies([[5.0, 1.0]], [0])
    with pytest.raises(TypeError, match=r"counts\[1\]"):
        Dictionary.from_frequencies([[5], ["x"]], [0, 0])
    with pytest.raises(TypeError, match="counts"):
        Dictionary.from_frequencies("counts", [0])
    with pytest.raises(ValueError, match="escape"):
        Dictionary.from_frequencies([[5, 1]], [0], escape=-1)
    with pytest.raises(ValueError, match="escape"):
        Dictionary.from_frequencies([[5, 1], [2]], [0, 0], escape=[1, 2, 3])


def test_from_pmfs_bad_escape_is_rejected():
    for escape in (-0.5, np.nan, np.inf):
        with pytest.raises(ValueError):
            Dictionary.from_pmfs([[0.5, 0.5]], [0], escape=escape)
    with pytest.raises(ValueError, match="escape"):
        Dictionary.from_pmfs([[0.5, 0.5], [1.0]], [0, 0], escape=[0.1, 0.2, 0.3])


def test_from_pmfs_bad_escape_message_names_escape():
    with pytest.raises(ValueError, match="escape"):
        Dictionary.from_pmfs([[0.5, 0.5]], [0], escape=-0.5)


def test_float_offsets_are_a_type_error():
    with pytest.raises(TypeError, match="offsets"):
        Dictionary.from_pmfs([[1.0]], [0.5])


def test_escape_must_be_a_number_of_the_right_kind():
    with pytest.raises(TypeError, match="escape"):
        Dictionary.from_pmfs([[0.5, 0.5]], [0], escape="x")
    with pytest.raises(TypeError, match="escape"):
        Dictionary.from_frequencies([[1, 2]], [0], escape=1.5)
    with pytest.raises(ValueError, match="escape"):
        Dictionary.from_frequencies([[1, 2]], [0], escape=-1)


def test_from_bytes_memory_limit():
    """Each model built takes about 4.5 KiB whatever its serialised size (12 bytes for one
    symbol): from_bytes refuses input whose tables would exceed max_bytes, before building."""
    from ldem.dictionary import table_bytes
    K = 100_000
    body = (bytes(4) + (1).to_bytes(4, "little") + (2**15).to_bytes(2, "little") * 2) * K
    raw = b"LDMD" + bytes([1, 16]) + K.to_bytes(4, "little") + body
    raw += zlib.crc32(raw).to_bytes(4, "little")
    assert len(raw) < 2**21 and table_bytes(raw) > 400 * 2**20
    with pytest.raises(ValueError, match="max_bytes"):
        Dictionary.from_bytes(raw)
    small = raw[:6] + (10).to_bytes(4, "little") + body[:120]
    small += zlib.crc32(small).to_bytes(4, "little")
    assert Dictionary.from_bytes(small).num_models == 10
    with pytest.raises(ValueError, match="max_bytes"):
        Dictionary.from_bytes(small, max_bytes=table_bytes(small) - 1)
    assert Dictionary.from_bytes(small, max_bytes=table_bytes(small)).num_models == 10
    with pytest.raises(TypeError):
        Dictionary.from_bytes(small, max_bytes=1.5)
