"""A dictionary of integer entropy models: the tables every coder call looks up."""
from __future__ import annotations

import hashlib
from typing import Iterable

import numpy as np

from ldem import _core

__all__ = ["Dictionary", "DEFAULT_MAX_TABLE_BYTES", "table_bytes"]

DEFAULT_MAX_TABLE_BYTES = 256 * 2**20  # default cap of Dictionary.from_bytes on the memory of the tables it builds
_MODEL_BYTES = 4608   # estimated memory of one model: its 2^11-entry decoder lookup and bookkeeping
_SYMBOL_BYTES = 64    # ... plus per slot: frequency, cumulative, encoder constants, packed entry, cost
_MODEL_BYTES_NO_LOOKUP = 320  # the same without the lookup table (measured: 271 bytes)
_SYMBOL_BYTES_NO_LOOKUP = 48  # ... and per slot without the packed entry (measured: 35 bytes)


def header_fields(data) -> tuple:
    """(precision, number of models) as the header of :meth:`Dictionary.to_bytes` output
    states them, without checking anything else; ``ValueError`` if there is no header.

    >>> import ldem
    >>> header_fields(ldem.Dictionary.from_pmfs([[0.5, 0.5]] * 3, [0] * 3, precision=14).to_bytes())
    (14, 3)
    """
    data = memoryview(data).cast("B")
    if len(data) < 14 or bytes(data[:4]) != b"LDMD":
        raise ValueError("not a serialised dictionary")
    return int(data[5]), int.from_bytes(data[6:10], "little")


def table_bytes(data, stop_above=None, lookups: bool = True) -> int:
    """Estimated memory of the tables that ``Dictionary.from_bytes(data)`` builds, read from
    the serialised header without building them: about 4.5 KiB per model plus 64 bytes per
    symbol slot (measured: 4.4 KiB and 52 bytes). Damaged input gives an estimate too; the
    parser then rejects it. With ``stop_above``, the walk stops once the estimate exceeds it
    (a huge model count costs no time). Without ``lookups`` (the decoder lookup table,
    4 KiB of each model), 320 bytes per model and 48 per slot.

    >>> import ldem
    >>> d = ldem.Dictionary.from_pmfs([[0.25, 0.5, 0.25]] * 4, offsets=[-1] * 4)
    >>> table_bytes(d.to_bytes()) == 4 * (4608 + 4 * 64)
    True
    """
    data = memoryview(data).cast("B")
    if len(data) < 14:
        return 0
    K = int.from_bytes(data[6:10], "little")
    K = min(K, (len(data) - 14) // 12)  # more than the data holds is refused by the parser
    total = K * (_MODEL_BYTES if lookups else _MODEL_BYTES_NO_LOOKUP)
    pos, end = 10, len(data) - 4
    for _ in range(K):
        if end - pos < 8 or (stop_above is not None and total > stop_above):
            break
        n = int.from_bytes(data[pos + 4:pos + 8], "little")
        slots = min(n + 1, max(0, (end - pos - 8) // 2))  # a claim beyond the data is refused too
        total += slots * (_SYMBOL_BYTES if lookups else _SYMBOL_BYTES_NO_LOOKUP)
        pos += 8 + 2 * slots
    return total


def _rows(values, name: str, dtype) -> list[np.ndarray]:
    """Splits a [K, n] array or a sequence of 1-D arrays into 1-D rows."""
    if isinstance(values, np.ndarray) and values.ndim == 2:
        rows = list(values)
    elif isinstance(values, (list, tuple)) or (isinstance(values, np.ndarray) and values.ndim == 1 and values.dtype == object):
        rows = [np.asarray(r) for r in values]
    else:
        raise TypeError(f"{name} must be a [K, n] array or a sequence of 1-D arrays")
    out = []
    for k, r in enumerate(rows):
        r = np.asarray(r)
        if r.ndim != 1 or r.size == 0:
            raise ValueError(f"{name}[{k}] must be a non-empty 1-D array")
        if dtype is np.uint64 and not np.issubdtype(r.dtype, np.integer):
            raise TypeError(f"{name}[{k}] must hold integers, got {r.dtype}")
        if dtype is np.float64 and not (np.issubdtype(r.dtype, np.floating) or np.issubdtype(r.dtype, np.integer)):
            raise TypeError(f"{name}[{k}] must hold numbers, got {r.dtype}")
        out.append(r)
    return out


def _offsets(offsets, K: int) -> list[int]:
    off = np.asarray(offsets)
    if off.size and not np.issubdtype(off.dtype, np.integer):
        raise TypeError(f"offsets must be integers, got dtype {off.dtype}")
    if off.ndim == 0:
        off = np.full(K, int(off))
    if off.ndim != 1 or off.shape[0] != K:
        raise ValueError(f"offsets must be {K} integers (one per model), got shape {off.shape}")
    if off.size and (off.min() < -(2**31) or off.max() > 2**31 - 1):
        raise ValueError("offsets must fit in int32")
    return [int(v) for v in off]


def _check_precision(precision) -> int:
    if not isinstance(precision, (int, np.integer)) or isinstance(precision, bool):
        raise TypeError("precision must be an int")
    if not 12 <= precision <= 16:
        raise ValueError(f"precision must be in [12, 16], got {precision}")
    return int(precision)


class _CoreTables:
    """``num_models`` and ``precision`` of the core tables held in ``self._impl``."""

    __slots__ = ()

    @property
    def num_models(self) -> int:
        return self._impl.num_models

    @property
    def precision(self) -> int:
        return self._impl.precision


class Dictionary(_CoreTables):
    """An ordered set of integer entropy models sharing one precision.

    Model ``k`` covers the symbols ``[offset_k, offset_k + n_k)`` plus an escape slot
    that codes every other int32 exactly. Its frequencies are integers ``>= 1`` that
    sum to ``2**precision``. Tables are built once, here; decoders only ever read
    the stored integers, so streams decode bit-exactly everywhere.

    >>> import numpy as np, ldem
    >>> d = ldem.Dictionary.from_pmfs([[0.25, 0.5, 0.25]], offsets=[-1])
    >>> d.num_models, d.precision, d.support(0)
    (1, 16, (-1, 2))
    >>> int(d.frequencies(0).sum()) == 2**16
    True
    >>> ldem.Dictionary.from_bytes(d.to_bytes()) == d
    True
    """

    __slots__ = ("_impl", "_bytes")

    def __init__(self, impl):
        if not isinstance(impl, _core.Dictionary):
            raise TypeError("use Dictionary.from_pmfs, from_frequencies or from_bytes")
        self._impl = impl
        self._bytes = None

    # -- construction -------------------------------------------------------------
    @classmethod
    def from_pmfs(cls, pmfs, offsets, precision: int = 16, escape=None) -> "Dictionary":
        """Quantizes probability masses to integer tables.

        ``pmfs`` is ``[K, n]`` (or K rows of different lengths) of masses for the
        symbols ``offsets[k] + i``. ``escape`` is the mass of everything outside the
        support (scalar or one per model); by default the tail ``max(0, 1 - sum(p))``.
        Quantization: ``f_i = 1 + floor(p_i / P * (2^precision - n - 1))``, the units
        left over go to the largest remainders (ties to the lower index).

        >>> import ldem
        >>> d = ldem.Dictionary.from_pmfs([[0.0, 1.0, 0.0]], offsets=[-1], precision=12)
        >>> d.frequencies(0).tolist()   # the mode takes all but one unit per other slot
        [1, 4093, 1, 1]
        """
        precision = _check_precision(precision)
        rows = _rows(pmfs, "pmfs", np.float64)
        offs = _offsets(offsets, len(rows))
        esc = cls._escape(escape, len(rows), integer=False)
        freqs = []
        for k, r in enumerate(rows):
            p = r.astype(np.float64)
            if not np.all(np.isfinite(p)) or np.any(p < 0):
                raise ValueError(f"pmfs[{k}] must be finite and non-negative")
            e = max(0.0, 1.0 - float(p.sum())) if esc[k] is None else float(esc[k])
            if r.size + 1 > 2**precision:
                raise ValueError(f"pmfs[{k}]: support of {r.size} symbols too large for precision {precision}")
            freqs.append(_core.quantize_pmf(np.append(p, e), precision))
        return cls(_core.Dictionary.from_frequencies(freqs, offs, precision))

    @classmethod
    def from_frequencies(cls, counts, offsets, precision: int = 16, escape=0) -> "Dictionary":
        """Builds tables from non-negative integer counts (e.g. histograms).

        ``counts`` is ``[K, n]`` or K rows; ``escape`` is the escape count (scalar or per
        model). Counts that already form a valid table (each ``>= 1``, summing with the
        escape to ``2**precision``) are kept exactly; otherwise they are quantized with
        the integer version of the rule in :meth:`from_pmfs`.

        >>> import ldem
        >>> d = ldem.Dictionary.from_frequencies([[10, 80, 10]], offsets=[-1], precision=12)
        >>> d.frequencies(0).tolist()
        [410, 3275, 410, 1]
        >>> e = ldem.Dictionary.from_frequencies([d.frequencies(0)[:-1]], [-1], 12, escape=1)
        >>> e == d
        True
        """
        precision = _check_precision(precision)
        rows = _rows(counts, "counts", np.uint64)
        offs = _offsets(offsets, len(rows))
        esc = cls._escape(escape, len(rows), integer=True)
        freqs = []
        for k, r in enumerate(rows):
            if r.size and r.min() < 0:
                raise ValueError(f"counts[{k}] must be non-negative")
            e = 0 if esc[k] is None else int(esc[k])
            if e < 0:
                raise ValueError("escape counts must be non-negative")
            if r.size + 1 > 2**precision:
                raise ValueError(f"counts[{k}]: support of {r.size} symbols too large for precision {precision}")
            freqs.append(_core.quantize_counts(np.append(r.astype(np.uint64), np.uint64(e)), precision))
        return cls(_core.Dictionary.from_frequencies(freqs, offs, precision))

    @staticmethod
    def _escape(escape, K, integer: bool):
        """Per-model escape weights: finite, non-negative, integers for counts."""
        if escape is None:
            return [None] * K
        e = np.asarray(escape)
        kind = np.integer if integer else np.number
        if e.dtype == bool or not np.issubdtype(e.dtype, kind):
            raise TypeError(f"escape must be {'an integer' if integer else 'a number'} or one per model, "
                            f"got {escape!r}")
        if e.ndim == 0:
            e = np.full(K, e.item())
        if e.shape != (K,):
            raise ValueError(f"escape must be a scalar or {K} values")
        if not np.all(np.isfinite(e)) or np.any(e < 0):
            raise ValueError(f"escape must be finite and non-negative, got {escape!r}")
        return list(e.tolist())

    @classmethod
    def from_bytes(cls, data: bytes, *, max_bytes: int = DEFAULT_MAX_TABLE_BYTES,
                   lookups: bool = True) -> "Dictionary":
        """Reads :meth:`to_bytes` output; raises ``ValueError`` on damaged input.

        Serialised tables are small (12 bytes for a one-symbol model) but each model built
        from them takes about 4.5 KiB, so input that would need more than ``max_bytes`` of
        tables (estimated by :func:`table_bytes`; 256 MiB by default, about 55,000 small
        models) is refused with ``ValueError`` before anything is built. Raise it to read
        larger dictionaries from a trusted source. ``lookups=False`` leaves out each
        model's 4 KiB decoder lookup table: such a dictionary codes context streams
        only (:class:`ldem.LocalEntropyCoder` context families); :func:`ldem.encode`
        and :func:`ldem.decode` refuse it with ``ValueError``.

        >>> import ldem
        >>> d = ldem.Dictionary.from_pmfs([[0.5, 0.5]], [0])
        >>> ldem.Dictionary.from_bytes(d.to_bytes()).num_models
        1
        >>> ldem.Dictionary.from_bytes(d.to_bytes(), max_bytes=1000)
        Traceback (most recent call last):
        ...
        ValueError: dictionary tables would take at least 4608 bytes (estimated), more than max_bytes=1000
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError("data must be bytes")
        if not isinstance(max_bytes, (int, np.integer)) or isinstance(max_bytes, bool):
            raise TypeError(f"max_bytes must be an int, got {type(max_bytes).__name__}")
        data = bytes(data)
        need = table_bytes(data, stop_above=max_bytes, lookups=lookups)
        if need > max_bytes:
            raise ValueError(f"dictionary tables would take at least {need} bytes (estimated), "
                             f"more than max_bytes={max_bytes}")
        return cls(_core.Dictionary.deserialize(data, bool(lookups)))

    @classmethod
    def concat(cls, dictionaries: Iterable["Dictionary"]) -> "Dictionary":
        """Joins dictionaries of one precision; model indices follow the given order.

        >>> import ldem
        >>> a = ldem.Dictionary.from_pmfs([[1.0]], [0]); b = ldem.Dictionary.from_pmfs([[0.5, 0.5]], [3])
        >>> ldem.Dictionary.concat([a, b]).num_models
        2
        """
        ds = list(dictionaries)
        if not ds or not all(isinstance(d, Dictionary) for d in ds):
            raise TypeError("concat takes a non-empty sequence of Dictionary")
        precision = ds[0].precision
        if any(d.precision != precision for d in ds):
            raise ValueError("all dictionaries must share one precision")
        freqs = [d._impl.frequencies(k) for d in ds for k in range(d.num_models)]
        offs = [d._impl.offset(k) for d in ds for k in range(d.num_models)]
        return cls(_core.Dictionary.from_frequencies(freqs, offs, precision))

    # -- inspection (num_models, precision: _CoreTables) ----------------------------
    def __len__(self) -> int:
        return self.num_models

    def _index(self, k: int) -> int:
        if not isinstance(k, (int, np.integer)) or not -self.num_models <= k < self.num_models:
            raise IndexError(f"model index {k!r} out of range for {self.num_models} models")
        return int(k) % self.num_models

    def frequencies(self, k: int) -> np.ndarray:
        """Integer frequencies of model ``k``: ``n`` support symbols, then the escape."""
        return self._impl.frequencies(self._index(k))

    def offset(self, k: int) -> int:
        return self._impl.offset(self._index(k))

    def support(self, k: int) -> tuple[int, int]:
        """``(lo, hi)``: model ``k`` codes ``lo <= v < hi`` directly, the rest by escape."""
        k = self._index(k)
        return self._impl.offset(k), self._impl.offset(k) + len(self._impl.frequencies(k)) - 1

    def costs(self, k: int) -> np.ndarray:
        """Exact cost in bits of each support symbol of model ``k``, then of the escape slot."""
        return self._impl.costs(self._index(k))

    def to_bytes(self) -> bytes:
        """Versioned, checksummed little-endian serialisation of the integer tables."""
        if self._bytes is None:
            self._bytes = self._impl.serialize()
        return self._bytes

    def content_hash(self) -> bytes:
        """8-byte digest of the tables; streams use it to name their dictionaries."""
        return hashlib.blake2b(self.to_bytes(), digest_size=8).digest()

    def __eq__(self, other) -> bool:
        return isinstance(other, Dictionary) and self.to_bytes() == other.to_bytes()

    def __hash__(self) -> int:
        return hash(self.to_bytes())

    def __repr__(self) -> str:
        return f"Dictionary(num_models={self.num_models}, precision={self.precision})"

    def __reduce__(self):
        return (Dictionary.from_bytes, (self.to_bytes(),))
