"""ldem.local.stream: the stream format, its side information and block map, on damaged
and hostile streams."""
import numpy as np
import pytest

import ldem
from ldem.testing import synthetic_latent


def test_checksum_catches_escape_payload_damage():
    g = ldem.Dictionary.from_pmfs([[0.5, 0.5]], [0], precision=12)
    y = np.array([[[1000000, 0, 1, 0]]], np.int32)
    coder = ldem.LocalEntropyCoder(g)
    data = coder.encode(y)
    assert np.array_equal(coder.decode(data), y)
    for i in range(len(data)):
        for bit in range(8):
            bad = bytearray(data)
            bad[i] ^= 1 << bit
            with pytest.raises(ldem.DecodeError):
                coder.decode(bytes(bad))
    plain = ldem.LocalEntropyCoder(g, checksum=False)
    assert len(plain.encode(y)) == len(data) - 4


@pytest.mark.parametrize("checksum", [True, False])
def test_mutated_streams_raise_only_decode_error(checksum):
    rng = np.random.default_rng(1)
    g = ldem.fit_global_models([synthetic_latent("regimes", (16, 32, 48), seed=s) for s in (1, 2)])
    st = ldem.learn_dictionary([synthetic_latent("regimes", (16, 32, 48), seed=5)], 6, block=(16, 16),
                               progress=False)
    coder = ldem.LocalEntropyCoder(g, st, checksum=checksum)
    y = synthetic_latent("regimes", (16, 32, 48), seed=3)
    bases = [coder.encode(y, mode=m) for m in ("global", "static", "local")]
    for i in range(1500):
        b = bytearray(bases[i % 3])
        op = i % 4
        if op == 0:
            j = int(rng.integers(len(b)))
            b[j] ^= 1 << int(rng.integers(8))
        elif op == 1:
            j = int(rng.integers(len(b)))
            b[j:j + 4] = rng.integers(0, 256, 4, dtype=np.uint8).tobytes()
        elif op == 2:
            b += rng.integers(0, 256, int(rng.integers(1, 20)), dtype=np.uint8).tobytes()
        else:
            j = int(rng.integers(3, len(b)))
            b[j:j] = bytes(b[j:int(rng.integers(j, len(b)))])
        try:
            out = coder.decode(bytes(b))
        except ldem.DecodeError:
            continue
        assert out.shape == y.shape and out.dtype == np.int32
        if checksum:  # a changed stream that passes the CRC must still be the same latent
            assert np.array_equal(out, y)


# -- hostile streams: limits on what a stream can make the decoder allocate ----------------------


def _forge(coder, mode, codec, shape, rest: bytes) -> bytes:
    """A local stream with the coder's header, `rest` after it, and its checksum."""
    import zlib
    out = bytes(coder._header(mode, codec, shape)) + rest
    return out + zlib.crc32(out).to_bytes(4, "little") if coder.checksum else out


def _bomb_payload(zero_bytes=4096) -> bytes:
    """An ldem.encode-style stream of one segment (2^31 symbols per segment), 4 lanes at
    state 2^31, then zeros: under a model that gives 0 a frequency of 65535/65536 it
    'decodes' about 1.4 M symbols per word read."""
    return b"LD\x10" + bytes([2 << 5 | 31]) + (1 << 31).to_bytes(8, "little") * 4 + bytes(zero_bytes)


def test_decompression_bomb_is_refused_before_allocating(peak_memory):
    """A 4 KB stream declaring 2^27 symbols (512 MiB) is refused at the defaults, without
    allocating; with the limit raised the same few KB would fill the whole output."""
    g = ldem.Dictionary.from_frequencies([[65535]], offsets=[0], precision=16, escape=1)
    coder = ldem.LocalEntropyCoder(g)
    assert coder.max_symbols == 2**26 and coder.max_blocks == 2**22
    data = _forge(coder, 0, 0, (1, 1, 2**27), _bomb_payload())
    assert len(data) < 5000

    def decode():
        with pytest.raises(ldem.DecodeError, match="max_symbols"):
            coder.decode(data)
    assert peak_memory(decode) < 1 << 20
    # The same stream passes the header checks once the limit is raised (the payload is
    # then found inconsistent, after the output is allocated).
    small = ldem.LocalEntropyCoder(g, max_symbols=2**27)
    with pytest.raises(ldem.DecodeError) as e:
        small.decode(_forge(small, 0, 0, (1, 1, 2**20), _bomb_payload()))
    assert "max_symbols" not in str(e.value)


def test_decoding_at_the_symbol_limit_allocates_about_the_output(peak_memory):
    g = ldem.Dictionary.from_frequencies([[65535]], offsets=[0], precision=16, escape=1)
    coder = ldem.LocalEntropyCoder(g)
    data = _forge(coder, 0, 0, (1, 1, 2**26), _bomb_payload())

    def decode():
        with pytest.raises(ldem.DecodeError):
            coder.decode(data)
    assert peak_memory(decode) < 4 * 2**26 + (16 << 20)


def test_block_map_limit(peak_memory):
    g = ldem.Dictionary.from_frequencies([[65535]], offsets=[0], precision=16, escape=1)
    coder = ldem.LocalEntropyCoder(g)
    rest = bytearray()
    for v in (1, 1, 0, 0, 0):  # bh, bw, I, no side bits, no map bytes
        ldem.bitio.put_varint(rest, v)
    data = _forge(coder, 2, 1, (1, 2048, 4096), bytes(rest) + _bomb_payload())  # 2^23 blocks

    def decode():
        with pytest.raises(ldem.DecodeError, match="max_blocks"):
            coder.decode(data)
    assert peak_memory(decode) < 1 << 20
    with pytest.raises(ValueError, match="max_blocks"):
        ldem.LocalEntropyCoder(g, max_blocks=0)
    with pytest.raises(ValueError, match="max_symbols"):
        ldem.LocalEntropyCoder(g, max_symbols=-1)


def test_image_table_sizes_are_bounded_by_the_side_bits():
    from ldem import _core
    side = _core.gamma_pack(np.array([8, 1, 65535], np.uint64))  # one table of 65535 entries, no data
    with pytest.raises(ldem.DecodeError, match="truncated"):
        _core.read_side_info(side, num_tables=1, num_map_counts=0, precision=16)


# -- side information and the block map: the core's writer and reader on hostile input ------------

def _image_tables():
    """Image tables fitted on a latent with two regimes (an ldem._core.ImageTables)."""
    from ldem import _core
    y = np.zeros((1, 16, 16), np.int32)
    y[:, 8:] = np.random.default_rng(0).integers(-9, 10, (8, 16))
    h = _core.BlockHistograms(y, 4, 4)
    cluster = np.full(16, -1, np.int64)
    cluster[[0, 15]] = [0, 1]
    lo, V = h.window(2047)
    return h.fit_image_models(cluster, 2, lo, V, 8, 14, np.full(16, 1e9), 1.0, 2)[0]


def test_side_info_round_trip():
    from ldem.local import stream
    tables = _image_tables()
    counts = np.array([5, 0, 11, 2**20], np.uint64)
    side = stream.write_side_info(tables, counts)
    assert len(stream.write_side_info(tables, None)) == (tables.bits + 7) // 8
    got, got_counts = stream.read_side_info(side, len(tables), len(counts), 14)
    assert got_counts.tolist() == counts.tolist()
    assert got.bits == tables.bits and got.table_bits == tables.table_bits
    assert got.offsets.tolist() == tables.offsets.tolist()
    for k in range(len(tables)):
        assert got.scaled_counts(k).tolist() == tables.scaled_counts(k).tolist()
        assert got.dictionary.frequencies(k).tolist() == tables.dictionary.frequencies(k).tolist()
    assert stream.read_side_info(side, 0, 0, 14)[0] is None


def test_read_side_info_rejects_hostile_bits():
    from ldem import _core
    from ldem.local import stream
    tables = _image_tables()
    side = stream.write_side_info(tables, np.array([3, 4]))
    for n in range(len(side)):  # every truncation
        with pytest.raises(ldem.DecodeError, match="truncated"):
            stream.read_side_info(side[:n], len(tables), 2, 14)
    for I, A in [(2**40, 0), (len(tables), 2**40), (2**20, 2**20)]:  # oversized counts
        with pytest.raises(ldem.DecodeError):
            stream.read_side_info(side, I, A, 14)

    def forged(*codes):
        return _core.gamma_pack(np.array(codes, np.uint64))
    for codes, match in [((3, 1, 1, 2), "precision"), ((17, 1, 1, 2), "precision"),  # bad table bits
                         ((8, 1, 2**14, 1), "support"),                               # n past 2^precision
                         ((8, 1, 1, 258), "counts"),                                  # q above 2^table_bits
                         ((2**41, 1, 1, 2), "invalid")]:                              # a 41-bit code
        with pytest.raises(ldem.DecodeError, match=match):
            stream.read_side_info(forged(*codes), 1, 0, 14)
    with pytest.raises(ldem.DecodeError):
        stream.read_side_info(b"\x00" * 64, 1, 0, 14)  # zeros only: a code longer than 40 bits
    with pytest.raises(TypeError):
        _core.read_side_info("text", num_tables=1, num_map_counts=0, precision=14)
    with pytest.raises(ValueError, match="precision"):
        _core.read_side_info(side, num_tables=1, num_map_counts=0, precision=20)
    with pytest.raises(TypeError):
        _core.read_side_info(side, 1, 0, 14)  # keyword arguments only


def test_write_side_info_rejects_bad_arguments():
    from ldem import _core
    with pytest.raises(TypeError, match="ImageTables"):
        _core.write_side_info(tables="tables", map_counts=None)
    with pytest.raises(TypeError, match="integer"):
        _core.write_side_info(tables=None, map_counts=np.zeros(3))
    with pytest.raises(ValueError, match="non-negative"):
        _core.write_side_info(tables=None, map_counts=np.array([1, -1]))
    assert _core.write_side_info(tables=None, map_counts=None) == b""


def test_block_map_codecs_round_trip_and_reject_damage():
    from ldem import _core
    from ldem.local import stream
    rng = np.random.default_rng(2)
    categories = np.where(rng.random(3000) < 0.8, 0, rng.integers(0, 40, 3000))
    for codecs in [("rans",), ("deflate",), ("rans", "deflate")]:
        codec, counts, data, sizes = stream.encode_block_map(categories, 40, 14, codecs)
        assert set(sizes) == set(codecs)
        assert (counts is None) == (codec == stream.MAP_DEFLATE)
        np.testing.assert_array_equal(stream.decode_block_map(codec, data, counts, 3000, 40, 14), categories)
        for n in (0, 1, len(data) // 2, len(data) - 1):  # truncated maps
            with pytest.raises(ldem.DecodeError):
                stream.decode_block_map(codec, data[:n], counts, 3000, 40, 14)
        with pytest.raises(ldem.DecodeError):  # more blocks than the map holds
            stream.decode_block_map(codec, data, counts, 3001, 40, 14)
    counts, data = _core.encode_block_map(categories.astype(np.int32), num_categories=40, precision=14)
    with pytest.raises(ldem.DecodeError, match="out of range"):  # categories past num_categories
        stream.decode_block_map(stream.MAP_DEFLATE, zlib_raw(np.full(10, 7, np.uint8)), None, 10, 5, 14)
    too_many = np.zeros(2**12, np.uint64)
    too_many[0] = 3000
    with pytest.raises(ldem.DecodeError, match="block map counts"):
        _core.decode_block_map(data, counts=too_many, num_blocks=3000, precision=12)
    with pytest.raises(TypeError, match="int32"):
        _core.encode_block_map(categories, num_categories=40, precision=14)
    with pytest.raises(ValueError, match="out of range"):
        _core.encode_block_map(categories.astype(np.int32), num_categories=39, precision=14)
    with pytest.raises(ValueError, match="num_categories"):
        _core.encode_block_map(categories.astype(np.int32), num_categories=2**12, precision=12)
    with pytest.raises(ValueError, match="empty"):
        _core.encode_block_map(np.zeros(0, np.int32), num_categories=1, precision=12)
    with pytest.raises(TypeError):
        _core.decode_block_map("text", counts=counts, num_blocks=3000, precision=14)
    with pytest.raises(TypeError):
        _core.decode_block_map(data, counts, 3000, 14)  # keyword arguments only


def zlib_raw(raw: np.ndarray) -> bytes:
    import zlib
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    return comp.compress(raw.tobytes()) + comp.flush()


def test_module_examples():
    import doctest

    import ldem.local.stream as module
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
