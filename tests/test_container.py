"""ldem.container: the .ldem header written and read, its checks, and version 1 files."""
import zlib
from pathlib import Path

import pytest

import ldem
from ldem import container
from ldem.container import FORMAT_VERSION, MAGIC, MAX_SIDE, make_header, read_header


@pytest.mark.parametrize("q,w,h", [(1, 1, 1), (255, MAX_SIDE, MAX_SIDE), (3, 127, 128), (7, 300, 2)])
def test_round_trip(q, w, h):
    head = make_header(bytes(range(8)), q, w, h)
    r = read_header(head + b"rest")
    assert r == {"version": FORMAT_VERSION, "model_id": bytes(range(8)).hex(), "quality": q, "width": w,
                 "height": h, "header_bytes": len(head)}
    assert head[:5] == MAGIC + bytes([FORMAT_VERSION])
    assert head[-4:] == zlib.crc32(head[:-4]).to_bytes(4, "little")


@pytest.mark.parametrize("fields", [(bytes(7), 1, 1, 1), (bytes(8), 0, 1, 1), (bytes(8), 256, 1, 1),
                                    (bytes(8), 1, 0, 1), (bytes(8), 1, 1, MAX_SIDE + 1)])
def test_make_header_refuses_bad_fields(fields):
    with pytest.raises(ValueError, match="invalid header fields"):
        make_header(*fields)


def test_damage_is_a_decode_error():
    head = make_header(bytes(8), 2, 64, 48)
    for bad, match in [(b"", "bad magic"), (b"LDE", "bad magic"), (b"JUNK" + head[4:], "bad magic"),
                       (head[:4] + b"\x09" + head[5:], "version 9"), (head[:-1], "truncated|end"),
                       (head[:-4] + bytes(4), "checksum")]:
        with pytest.raises(ldem.DecodeError, match=match):
            read_header(bad)
    for i in range(len(head)):  # every bit of a version 2 header is covered
        for bit in range(8):
            d = bytearray(head)
            d[i] ^= 1 << bit
            with pytest.raises(ldem.DecodeError):
                read_header(bytes(d))
    with pytest.raises(TypeError, match="bytes"):
        read_header("LDEM")


def test_version_1_header_has_no_checksum():
    v1 = MAGIC + b"\x01" + bytes(8) + b"\x02" + bytes([33, 17])
    assert read_header(v1 + b"latent") == {"version": 1, "model_id": "00" * 8, "quality": 2, "width": 33,
                                           "height": 17, "header_bytes": len(v1)}
    with pytest.raises(ldem.DecodeError, match="zero"):
        read_header(MAGIC + b"\x01" + bytes(8) + b"\x00" + bytes([1, 1]))


def test_version_1_fixtures_parse():
    folder = Path(__file__).parent / "data" / "ldem-v1"
    for path in sorted(folder.glob("*.ldem")):
        h = read_header(path.read_bytes())
        assert h["version"] == 1 and f"{h['width']}x{h['height']}" in path.name


def test_codec_names_are_the_container_s():
    import ldem.codec
    assert ldem.codec.read_header is read_header and ldem.codec.make_header is make_header
    assert ldem.codec.FORMAT_VERSION == container.FORMAT_VERSION and ldem.codec.MAGIC == container.MAGIC
