"""Bounded varint reading and writing for stream headers.

Every reader checks its bounds and raises :class:`ldem.DecodeError` on damaged input;
no read loops without a limit.
"""
from __future__ import annotations

from ldem.errors import DecodeError

__all__ = ["put_varint", "ByteReader"]


def put_varint(out: bytearray, value: int) -> None:
    """Appends ``value >= 0`` as a LEB128 varint.

    >>> b = bytearray(); put_varint(b, 300); bytes(b)
    b'\\xac\\x02'
    """
    if value < 0:
        raise ValueError("varints are non-negative")
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


class ByteReader:
    """Reads a bytes object front to back with bounds checks.

    >>> r = ByteReader(b"\\xac\\x02xy"); r.varint(), r.take(2)
    (300, b'xy')
    """

    def __init__(self, data: bytes, pos: int = 0):
        self.data = data
        self.pos = pos

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int) -> bytes:
        if n < 0 or n > self.remaining():
            raise DecodeError("stream truncated")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def varint(self, limit: int = 2**63) -> int:
        value, shift = 0, 0
        while True:
            if shift > 63:
                raise DecodeError("varint too long")
            byte = self.u8()
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        if value > limit:
            raise DecodeError(f"header field {value} exceeds its limit {limit}")
        return value
