"""The ``.ldem`` file container: its header, written by :func:`make_header` and read by
:func:`read_header` (the one definition of its layout).

A ``.ldem`` file is, little-endian::

    magic      4 bytes   b"LDEM"
    version    1 byte    FORMAT_VERSION (2; version 1 files are still read)
    model id   8 bytes   digest of the model file (weights and integer tables)
    quality    1 byte    1..number of levels of that model
    width      varint    1..65535
    height     varint    1..65535
    header crc 4 bytes   CRC-32 of the bytes above (version 2 only)
    latent     rest      an ldem.LocalEntropyCoder stream (its own header, tables, map, CRC-32)

The two checksums cover every byte of a version 2 file: a changed width or height is
reported as damage instead of decoding to an image of another size. Version 1 files
have no header checksum.

>>> h = read_header(make_header(bytes(8), quality=3, width=640, height=480))
>>> h["quality"], h["width"], h["height"], h["header_bytes"]
(3, 640, 480, 22)
"""
from __future__ import annotations

import zlib

from ldem.bitio import ByteReader, put_varint
from ldem.errors import DecodeError

__all__ = ["MAGIC", "FORMAT_VERSION", "READ_VERSIONS", "MAX_SIDE", "read_header", "make_header"]

MAGIC = b"LDEM"
FORMAT_VERSION = 2
READ_VERSIONS = (1, 2)  # version 1: the same header without its CRC-32
MAX_SIDE = 65535        # largest width or height a header holds (and ldem codes)


def read_header(data: bytes) -> dict:
    """Parses and checks the ``.ldem`` header: version, model id (hex), quality, width,
    height, header bytes. Raises :class:`ldem.DecodeError` on damage (including a header
    checksum mismatch in a version 2 file).

    >>> h = read_header(make_header(bytes(8), quality=2, width=16, height=8))
    >>> h["version"], h["quality"], h["width"], h["height"]
    (2, 2, 16, 8)
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    r = ByteReader(bytes(data[:64]))  # a header is at most 4 + 1 + 8 + 1 + 3 + 3 + 4 bytes
    if r.remaining() < 4 or r.take(4) != MAGIC:
        raise DecodeError("not an .ldem file (bad magic)")
    version = r.u8()
    if version not in READ_VERSIONS:
        raise DecodeError(f".ldem format version {version} is not supported (this ldem reads "
                          f"{', '.join(map(str, READ_VERSIONS))})")
    model_id = r.take(8)
    quality = r.u8()
    width, height = r.varint(MAX_SIDE), r.varint(MAX_SIDE)
    if version >= 2:
        end = r.pos
        if int.from_bytes(r.take(4), "little") != zlib.crc32(bytes(data[:end])):
            raise DecodeError("header checksum mismatch (corrupt .ldem header)")
    if quality < 1 or width < 1 or height < 1:
        raise DecodeError("invalid .ldem header (zero quality or size)")
    return {"version": version, "model_id": model_id.hex(), "quality": quality, "width": width,
            "height": height, "header_bytes": r.pos}


def make_header(model_id: bytes, quality: int, width: int, height: int) -> bytes:
    """The ``.ldem`` header of the current format version (the one definition of its layout
    besides :func:`read_header`).

    >>> make_header(bytes(8), 1, 300, 2)[:5]
    b'LDEM\\x02'
    """
    if len(model_id) != 8 or not 1 <= quality <= 255 or not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise ValueError(f"invalid header fields: model id of {len(model_id)} bytes, quality {quality}, "
                         f"size {width}×{height}")
    head = bytearray(MAGIC)
    head.append(FORMAT_VERSION)
    head += model_id
    head.append(quality)
    put_varint(head, width)
    put_varint(head, height)
    head += zlib.crc32(bytes(head)).to_bytes(4, "little")
    return bytes(head)
