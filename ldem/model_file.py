"""Model files: transforms, integer tables and coder settings per quality, written by
:func:`write_model_file` (``ldem export``) and read by :class:`ModelBundle`.

>>> from ldem.model_file import ModelBundle, pretrained_path
>>> bundle = ModelBundle(pretrained_path())
>>> bundle.num_qualities >= 1
True

A model file is a zip archive of ``.npy`` members (``numpy.savez``). It may come from
an untrusted source: the loader treats every byte as hostile until checked, and a bad
file raises ``ValueError`` naming the path (``OSError`` for a file that cannot be
opened), never a foreign exception, a hang or code execution. In detail:

- only a regular file is read (a folder, FIFO or device is refused), and at most
  ``max_bytes`` of it;
- the zip directory must be at most :data:`MAX_DIRECTORY_BYTES`; members are stored or
  deflated (no other compression, no encryption); only the members the format names are
  read (others are ignored, unread), each after its declared size has been charged
  against ``max_bytes``; the ``.npy`` headers are parsed without pickle and must give
  the exact dtype and shape expected before any array is made;
- ``meta.json`` is at most :data:`MAX_META_BYTES`, nested at most
  :data:`MAX_JSON_DEPTH` deep, without ``NaN``/``Infinity``, and is checked against one
  schema (:func:`check_meta`);
- every weight has the exact shape the architecture gives for its config and a float
  dtype, and is finite; the memory of the nets built from them and of the integer tables
  (estimated from their headers) is charged too.

``max_bytes`` (default :data:`DEFAULT_MAX_BYTES`, 768 MiB; the shipped file needs about
112 MiB, plus 14–48 MiB for each quality used, whose context families are built on first
use: about 380 MiB with all 12 qualities, and 672 MiB if the files of the previous models
at every one of their qualities are decoded in the same process too) thus bounds the
memory a model file can make the loader use: the file, the members read, the tables and
the nets.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import stat
import struct
import threading
import zipfile
import zlib
from collections import OrderedDict
from importlib import resources
from pathlib import Path

import numpy as np

from ldem import block_transform
from ldem._args import is_int as _is_int
from ldem._args import short_repr as _short
from ldem.dictionary import Dictionary, header_fields, table_bytes
from ldem.errors import DecodeError
from ldem.files import write_atomic
from ldem.local.learn import NUM_CONTEXTS

__all__ = ["ModelBundle", "MODEL_FILE_FORMAT", "pretrained_path", "check_meta", "check_config", "check_ladder",
           "transform_shapes", "config_shapes", "num_levels", "ARCH", "MAX_CHANNELS", "MAX_LEVELS", "DEFAULT_MAX_BYTES",
           "MAX_QUALITIES", "MAX_TRANSFORMS", "MAX_META_BYTES", "MAX_JSON_DEPTH", "MAX_DIRECTORY_BYTES"]

MODEL_FILE_FORMAT = 3  # written by ldem export; formats 1 (one set of transforms) and 2 are still read

DEFAULT_MAX_BYTES = 768 * 2**20   # file + members read + tables + nets, per model file
MAX_QUALITIES = 255               # a .ldem header holds the quality in one byte
MAX_TRANSFORMS = 64               # sets of transforms in one file
MAX_META_BYTES = 2**20            # meta.json
MAX_JSON_DEPTH = 16               # nesting of meta.json (the format uses 4)
MAX_DIRECTORY_BYTES = 2**20       # zip central directory (about 10,000 members)
MAX_BLOCK_SIZES = 16              # entries of a quality's block_sizes
MAX_BLOCK_SIDE = 4096
MAX_IMAGE_MODELS = 64             # what ldem.LocalEntropyCoder accepts
MAX_COMPATIBLE_IDS = 32           # entries of compatible_model_ids

_WEIGHT_DTYPES = (np.dtype("<f2"), np.dtype("<f4"), np.dtype("<f8"))
_DENSITY_FLOATS = 43  # floats of one channel's FactorizedDensity (filters 3, 3, 3)


def pretrained_path() -> Path:
    """Path of the model file shipped in the package."""
    return Path(str(resources.files("ldem") / "pretrained" / "ldem-gf.npz"))


# ---------------------------------------------------------------------------------------
# meta.json
# ---------------------------------------------------------------------------------------
def _no_constant(name):
    raise ValueError(f"meta.json holds {name}, which JSON does not allow")


def _short_int(text):
    if len(text) > 40:  # int() of a long digit string is slow (and limited on newer Pythons)
        raise ValueError(f"meta.json holds an integer of {len(text)} digits")
    return int(text)


def _finite_float(text):
    v = float(text)
    if not math.isfinite(v):
        raise ValueError(f"meta.json holds the number {text[:20]}, which is out of range")
    if len(text) > 400:
        raise ValueError(f"meta.json holds a number of {len(text)} characters")
    return v


def _json_depth(raw: bytes) -> int:
    """Deepest nesting of brackets outside strings, in linear time (vectorised)."""
    a = np.frombuffer(raw, np.uint8)
    if a.size == 0:
        return 0
    pos = np.arange(a.size)
    backslash = a == ord("\\")
    last_other = np.maximum.accumulate(np.where(backslash, -1, pos))  # last non-backslash at or before i
    run_before = np.empty(a.size, np.int64)  # backslashes right before i
    run_before[0] = 0
    run_before[1:] = pos[:-1] - last_other[:-1]
    quote = (a == ord('"')) & (run_before % 2 == 0)
    outside = np.cumsum(quote) % 2 == 0  # for brackets: an even number of quotes before them
    step = (((a == ord("[")) | (a == ord("{"))).astype(np.int64)
            - ((a == ord("]")) | (a == ord("}"))).astype(np.int64)) * outside
    return int(np.cumsum(step).max(initial=0))


def _parse_meta(raw: bytes):
    """meta.json bytes -> Python value, with the size, depth and constant limits."""
    if len(raw) > MAX_META_BYTES:
        raise ValueError(f"meta.json of {len(raw)} bytes exceeds {MAX_META_BYTES}")
    if _json_depth(raw) > MAX_JSON_DEPTH:
        raise ValueError(f"meta.json is nested more than {MAX_JSON_DEPTH} deep")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("meta.json is not UTF-8 text") from None
    try:
        return json.loads(text, parse_constant=_no_constant, parse_float=_finite_float, parse_int=_short_int)
    except RecursionError:
        raise ValueError("meta.json is nested too deep") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"meta.json is not valid JSON ({e})") from None


ARCH = "gained-factorized-v1"
MAX_CHANNELS = 1024  # largest N and M a config may name (the shipped transforms use N ≤ 128, M = 192)
MAX_LEVELS = 255     # largest number of λ values (trained levels) in one config


def check_config(cfg) -> dict:
    """``cfg`` checked as a :meth:`ldem.transforms.GainedFactorizedCodec.config` dict, or
    (``arch`` ``"block-klt-v1"``) as a :meth:`ldem.block_transform.BlockTransform.config`
    dict (:func:`ldem.block_transform.check_block_config`); raises ``ValueError``.

    ``arch`` must be ``"gained-factorized-v1"``, ``N`` and ``M`` ints in 1..:data:`MAX_CHANNELS`,
    ``lambdas`` 1..:data:`MAX_LEVELS` finite positive numbers. Returns a clean copy of those
    four fields (other keys are dropped), so a config read from a file never builds a net
    of unbounded size.

    >>> check_config({"arch": "gained-factorized-v1", "N": 8, "M": 12, "lambdas": [0.01]})["M"]
    12
    >>> check_config({"arch": "gained-factorized-v1", "N": -1, "M": 12, "lambdas": [0.01]})
    Traceback (most recent call last):
    ...
    ValueError: config: N must be an int in 1..1024, got -1
    """
    if not isinstance(cfg, dict):
        raise ValueError(f"config must be a dict, got {type(cfg).__name__}")
    if cfg.get("arch") == block_transform.ARCH:
        return block_transform.check_block_config(cfg, MAX_LEVELS)
    if cfg.get("arch") != ARCH:
        arch = cfg.get("arch")
        raise ValueError(f"unknown architecture {arch if isinstance(arch, str) and len(arch) < 80 else '?'!r}")
    for key in ("N", "M"):
        v = cfg.get(key)
        if not _is_int(v) or not 1 <= v <= MAX_CHANNELS:
            raise ValueError(f"config: {key} must be an int in 1..{MAX_CHANNELS}, got {_short(v)}")
    lambdas = cfg.get("lambdas")
    if not isinstance(lambdas, (list, tuple)) or not 1 <= len(lambdas) <= MAX_LEVELS:
        raise ValueError(f"config: lambdas must be a list of 1..{MAX_LEVELS} numbers, got {_short(lambdas)}")
    for v in lambdas:
        if not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0):
            raise ValueError(f"config: lambdas must be finite positive numbers, got {_short(v)}")
    return {"arch": ARCH, "N": cfg["N"], "M": cfg["M"], "lambdas": [float(v) for v in lambdas]}


def num_levels(cfg: dict) -> int:
    """The trained levels (λ values, or quantization steps) of a checked config."""
    return len(cfg["steps"] if cfg["arch"] == block_transform.ARCH else cfg["lambdas"])


def config_shapes(cfg: dict) -> dict:
    """Shape of every weight a model file stores for the checked config ``cfg``."""
    if cfg["arch"] == block_transform.ARCH:
        return {"basis": (block_transform.CHANNELS, block_transform.CHANNELS),
                "offsets": (num_levels(cfg), block_transform.CHANNELS),
                "deblock": (num_levels(cfg), *block_transform.DEBLOCK_SHAPE)}
    return transform_shapes(cfg["N"], cfg["M"], num_levels(cfg))


def transform_shapes(N: int, M: int, levels: int) -> dict:
    """Shape of every weight of :class:`ldem.transforms.GainedFactorizedCodec` except the densities (the
    weights a model file stores), computed without building the net.

    >>> transform_shapes(8, 12, 2)["g_s.net.0.weight"], transform_shapes(8, 12, 2)["log_gain"]
    ((12, 8, 5, 5), (2, 12))
    """
    shapes = {}
    ins = (3, N, N, N)
    outs = (N, N, N, M)
    for i in range(4):  # analysis: conv [out, in, 5, 5] at 0, 2, 4, 6; GDN at 1, 3, 5
        shapes[f"g_a.net.{2 * i}.weight"] = (outs[i], ins[i], 5, 5)
        shapes[f"g_a.net.{2 * i}.bias"] = (outs[i],)
        if i < 3:
            shapes[f"g_a.net.{2 * i + 1}.beta"] = (N,)
            shapes[f"g_a.net.{2 * i + 1}.gamma"] = (N, N)
    ins = (M, N, N, N)
    outs = (N, N, N, 3)
    for i in range(4):  # synthesis: transposed conv [in, out, 5, 5]
        shapes[f"g_s.net.{2 * i}.weight"] = (ins[i], outs[i], 5, 5)
        shapes[f"g_s.net.{2 * i}.bias"] = (outs[i],)
        if i < 3:
            shapes[f"g_s.net.{2 * i + 1}.beta"] = (N,)
            shapes[f"g_s.net.{2 * i + 1}.gamma"] = (N, N)
    shapes["log_gain"] = (levels, M)
    shapes["log_inv_gain"] = (levels, M)
    return shapes


def check_meta(meta) -> tuple:
    """Checks a model file's ``meta.json`` value; returns ``(configs, levels)``.

    ``configs`` is one checked transforms config per set (:func:`check_config`);
    ``levels`` the per-quality dicts as stored, each checked: ``transforms`` (default 0)
    names an existing set, ``level`` (default quality − 1) one of its λ values,
    ``block_sizes`` (optional) is 1..16 pairs of ints in 1..4096 and ``max_image_models``
    (optional) an int in 0..64. ``compatible_model_ids`` (optional) lists up to 32 model
    ids (16 hex digits) of earlier model files whose ``.ldem`` files this one decodes
    exactly: it holds their transforms and tables unchanged, at the same places in
    ``levels``. ``ladder`` (optional, format 3) lists, for each quality the file offers,
    the number (1-based) of its entry in ``levels``, increasing; without it quality ``q``
    is entry ``q``. Entries off the ladder serve only the files of compatible models.
    Raises ``ValueError`` naming the first bad field.

    >>> cfg = {"arch": "gained-factorized-v1", "N": 8, "M": 12, "lambdas": [0.01, 0.1]}
    >>> configs, levels = check_meta({"format": 2, "transforms": [cfg], "levels": [{"level": 1}]})
    >>> configs[0]["N"], levels
    (8, [{'level': 1}])
    >>> check_meta({"format": 2, "transforms": [cfg], "levels": [{"level": 2}]})
    Traceback (most recent call last):
    ...
    ValueError: levels[0]: names transforms 0 level 2, which the file lacks (levels 0..1)
    """
    if not isinstance(meta, dict):
        raise ValueError(f"meta.json must hold an object, got {type(meta).__name__}")
    fmt = meta.get("format")
    if not _is_int(fmt) or fmt not in (1, 2, MODEL_FILE_FORMAT):
        raise ValueError(f"unsupported model file format {_short(fmt)}")
    if fmt == 1:
        configs = [meta.get("config")]
    else:
        configs = meta.get("transforms")
        if not isinstance(configs, list) or not 1 <= len(configs) <= MAX_TRANSFORMS:
            raise ValueError(f"transforms must be a list of 1..{MAX_TRANSFORMS} configs, got {_short(configs)}")
    checked = []
    for t, cfg in enumerate(configs):
        try:
            checked.append(check_config(cfg))
        except ValueError as e:
            raise ValueError(f"transforms[{t}]: {e}" if fmt == 2 else str(e)) from None
    ids = meta.get("compatible_model_ids", [])
    if not isinstance(ids, list) or len(ids) > MAX_COMPATIBLE_IDS or not all(
            isinstance(v, str) and len(v) == 16 and all(ch in "0123456789abcdef" for ch in v) for v in ids):
        raise ValueError(f"compatible_model_ids must be a list of at most {MAX_COMPATIBLE_IDS} ids of 16 hex "
                         f"digits, got {_short(ids)}")
    levels = meta.get("levels")
    if not isinstance(levels, list) or not 1 <= len(levels) <= MAX_QUALITIES:
        raise ValueError(f"levels must be a list of 1..{MAX_QUALITIES} qualities, got {_short(levels)}")
    for i, lv in enumerate(levels):
        if not isinstance(lv, dict):
            raise ValueError(f"levels[{i}] must be an object, got {_short(lv)}")
        t, l = lv.get("transforms", 0), lv.get("level", i)
        if not _is_int(t) or not _is_int(l):
            raise ValueError(f"levels[{i}]: transforms and level must be ints, got {_short(t)}, {_short(l)}")
        if not 0 <= t < len(checked):
            raise ValueError(f"levels[{i}]: names transforms {t} level {l}, which the file lacks "
                             f"(transforms 0..{len(checked) - 1})")
        if not 0 <= l < num_levels(checked[t]):
            raise ValueError(f"levels[{i}]: names transforms {t} level {l}, which the file lacks "
                             f"(levels 0..{num_levels(checked[t]) - 1})")
        if "block_sizes" in lv:
            b = lv["block_sizes"]
            if not isinstance(b, list) or not 1 <= len(b) <= MAX_BLOCK_SIZES or not all(
                    isinstance(p, list) and len(p) == 2 and all(_is_int(v) and 1 <= v <= MAX_BLOCK_SIDE for v in p)
                    for p in b):
                raise ValueError(f"levels[{i}]: block_sizes must be 1..{MAX_BLOCK_SIZES} pairs of ints in "
                                 f"1..{MAX_BLOCK_SIDE}, got {_short(b)}")
        if "max_image_models" in lv:
            m = lv["max_image_models"]
            if not _is_int(m) or not 0 <= m <= MAX_IMAGE_MODELS:
                raise ValueError(f"levels[{i}]: max_image_models must be an int in 0..{MAX_IMAGE_MODELS}, "
                                 f"got {_short(m)}")
    check_ladder(meta.get("ladder", list(range(1, len(levels) + 1))), len(levels))
    return checked, levels


def check_ladder(ladder, entries: int) -> list:
    """``ladder`` checked: 1..``entries`` increasing entry numbers in 1..``entries``.

    >>> check_ladder([1, 2, 5], 5)
    [1, 2, 5]
    >>> check_ladder([2, 2], 5)
    Traceback (most recent call last):
    ...
    ValueError: ladder must be increasing entry numbers in 1..5, got [2, 2]
    """
    if not isinstance(ladder, list) or not 1 <= len(ladder) <= entries or not all(_is_int(v) for v in ladder) \
            or ladder[0] < 1 or ladder[-1] > entries or any(a >= b for a, b in zip(ladder, ladder[1:])):
        shown = repr(ladder) if isinstance(ladder, list) and len(ladder) <= 16 else _short(ladder)
        raise ValueError(f"ladder must be increasing entry numbers in 1..{entries}, got {shown[:80]}")
    return list(ladder)


# ---------------------------------------------------------------------------------------
# Reading the file
# ---------------------------------------------------------------------------------------
def _read_regular_file(path: Path, max_bytes: int):
    """(bytes, stat) of a regular file of at most ``max_bytes``; never blocks on a FIFO."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise FileNotFoundError(f"no model file at {path}") from None
    except IsADirectoryError:
        raise ValueError(f"{path} is a folder, not an ldem model file") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise ValueError(f"{path} is a folder, not an ldem model file")
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{path} is not a regular file (a device, FIFO or socket), not an ldem model file")
        if st.st_size > max_bytes:
            raise ValueError(f"{path}: model file of {st.st_size} bytes exceeds max_bytes={max_bytes}")
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as f:
        raw = f.read(st.st_size + 1)  # read(n) reserves n bytes: ask for what the file holds
    if len(raw) != st.st_size:
        raise ValueError(f"{path}: the model file changed while it was read")
    return raw, st


def _directory_bytes(raw: bytes) -> int:
    """Size the zip's end records give its central directory (what zipfile parses)."""
    i = raw.rfind(b"PK\x05\x06", max(0, len(raw) - (22 + 65535)))
    if i < 0 or len(raw) - i < 22:
        raise ValueError("not a zip archive")
    size = struct.unpack_from("<I", raw, i + 12)[0]
    z = i - 20 - 56  # zip64 end record right before its locator, where zipfile reads it
    if i >= 20 and raw[i - 20:i - 16] == b"PK\x06\x07" and z >= 0 and raw[z:z + 4] == b"PK\x06\x06":
        size = max(size, struct.unpack_from("<Q", raw, z + 40)[0])
    return size


def _parse_npy(data: bytes, name: str, dtypes, shape=None) -> np.ndarray:
    """An array from ``.npy`` bytes, without pickle, after checking dtype and shape."""
    f = io.BytesIO(data)
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shp, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shp, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise ValueError(f"{name}: unsupported .npy version {version}")
    if dtype.hasobject or dtype.fields is not None or dtype not in dtypes:
        raise ValueError(f"{name}: dtype {dtype} is not one of {', '.join(str(d) for d in dtypes)}")
    if not isinstance(shp, tuple) or not all(_is_int(v) and v >= 0 for v in shp):
        raise ValueError(f"{name}: bad shape {_short(shp)}")
    if shape is not None and shp != tuple(shape):
        raise ValueError(f"{name}: shape {shp}, the architecture expects {tuple(shape)}")
    count = math.prod(shp)
    offset = f.tell()
    if count * dtype.itemsize != len(data) - offset:
        raise ValueError(f"{name}: shape {shp} of {dtype} needs {count * dtype.itemsize} bytes, "
                         f"the member holds {len(data) - offset}")
    a = np.frombuffer(data, dtype, count, offset)
    return a.reshape(shp[::-1]).T if fortran else a.reshape(shp)


class _Archive:
    """Lazy, bounded member reads from an in-memory zip; charges a shared byte budget."""

    def __init__(self, raw: bytes, budget: list):
        directory = _directory_bytes(raw)
        if directory > MAX_DIRECTORY_BYTES:
            raise ValueError(f"zip directory of {directory} bytes exceeds {MAX_DIRECTORY_BYTES}")
        self.zip = zipfile.ZipFile(io.BytesIO(raw))
        infos = self.zip.infolist()
        self.members = {}
        for info in infos:
            if info.filename in self.members:
                raise ValueError(f"member {info.filename!r} appears twice")
            self.members[info.filename] = info
        self.budget = budget

    def charge(self, n: int, what: str):
        if n > self.budget[0]:
            raise ValueError(f"{what} would take {n} bytes, more than the {self.budget[0]} left of "
                             f"max_bytes={self.budget[1]} (raise it to load a larger trusted file)")
        self.budget[0] -= n

    def has(self, name: str) -> bool:
        return name + ".npy" in self.members

    def read(self, name: str, dtypes, shape=None, max_size=None) -> np.ndarray:
        info = self.members.get(name + ".npy")
        if info is None:
            raise ValueError(f"member {name} is missing")
        if info.flag_bits & 1:
            raise ValueError(f"member {name} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ValueError(f"member {name} uses compression method {info.compress_type} "
                             f"(only stored and deflated are read)")
        if max_size is not None and info.file_size > max_size:
            raise ValueError(f"member {name} of {info.file_size} bytes exceeds {max_size}")
        self.charge(info.file_size, f"member {name}")
        with self.zip.open(info) as f:
            data = f.read(info.file_size)
        if len(data) != info.file_size:
            raise ValueError(f"member {name} holds {len(data)} bytes, its header says {info.file_size}")
        return _parse_npy(data, name, dtypes, shape)


# errors of damaged or hostile input from zipfile, zlib, numpy's .npy header parser, struct
_FOREIGN = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError,
            struct.error, KeyError, IndexError, TypeError, AttributeError, OverflowError, RecursionError,
            MemoryError, UnicodeDecodeError, SyntaxError, OSError)


class ModelBundle:
    """A loaded model file: one or more sets of transforms, and per quality the integer
    tables, the coder settings and which transforms (and which of their trained levels)
    serve it.

    A file may hold several sets of transforms so that, for example, the high qualities
    come from a network trained for high rates. Format 2 stores set ``t`` as
    ``param{t}/<name>`` with its config in ``meta["transforms"][t]``; format 1 (one set,
    ``param/<name>`` and ``meta["config"]``) is read as a single set.

    Safe for files from untrusted sources (see the module docs): a bad file raises
    ``ValueError`` with the path, a missing one ``FileNotFoundError``. ``max_bytes``
    bounds the memory the file may make the loader use (the file, the members read,
    the integer tables and the nets): 768 MiB by default, raise it for a larger trusted
    model. :attr:`model_id` is a digest of the bytes read.
    """

    def __init__(self, path, *, max_bytes: int = DEFAULT_MAX_BYTES):
        if not _is_int(max_bytes):
            raise TypeError(f"max_bytes must be an int, got {_short(max_bytes)}")
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        path = Path(path)
        raw, st = _read_regular_file(path, max_bytes)
        self.path = path
        self.max_bytes = max_bytes
        self.file_key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        self.model_id = hashlib.blake2b(raw, digest_size=8).digest()
        budget = [max_bytes - len(raw), max_bytes]
        try:
            archive = _Archive(raw, budget)
            meta_raw = archive.read("meta.json", (np.dtype("u1"),), max_size=MAX_META_BYTES + 1024)
            if meta_raw.ndim != 1:
                raise ValueError("meta.json must be a 1-D byte array")
            meta = _parse_meta(meta_raw.tobytes())
        except ValueError as e:
            raise ValueError(f"{path} is not an ldem model file: {e}") from None
        except _FOREIGN as e:
            raise ValueError(f"{path} is not an ldem model file: {type(e).__name__}: {e}") from None
        try:
            self._load(archive, meta)
        except ValueError as e:
            raise ValueError(f"{path} is not a valid ldem model file: {e}") from None
        except _FOREIGN as e:
            raise ValueError(f"{path} is not a valid ldem model file: {type(e).__name__}: {e}") from None
        self.bytes_charged = max_bytes - budget[0]
        self._nets = {}

    def _load(self, archive: _Archive, meta):
        configs, levels = check_meta(meta)
        self.meta = meta
        self.configs = configs
        self.levels = levels  # the entries (one dict each), smallest files first
        self.ladder = meta.get("ladder", list(range(1, len(levels) + 1)))  # quality -> entry
        self.states = []
        self._blocks = {}
        for t, cfg in enumerate(configs):
            prefix = "param/" if meta["format"] == 1 else f"param{t}/"
            L = num_levels(cfg)
            shapes = config_shapes(cfg)
            # the net built from these: float32 weights twice (fresh net and loaded state), and densities
            density = 0 if cfg["arch"] == block_transform.ARCH else 4 * _DENSITY_FLOATS * L * cfg["M"]
            archive.charge(8 * sum(math.prod(s) for s in shapes.values()) + density,
                           f"the transforms {t} ({cfg['arch']}, M={cfg['M']}, {L} levels)")
            state = {}
            for k, shape in shapes.items():
                a = archive.read(prefix + k, _WEIGHT_DTYPES, shape)
                if not np.isfinite(a).all():
                    raise ValueError(f"{prefix + k}: weights must be finite")
                state[k] = a
            self.states.append(state)
            if cfg["arch"] == block_transform.ARCH:
                self._blocks[t] = block_transform.BlockTransform(state["basis"], cfg["steps"], cfg["deadzone"],
                                                                state["offsets"], cfg["predicted"],
                                                                state["deblock"])
        self.tables = {}
        # Context families are checked here but built on first use (context_tables): at
        # tens of MB per quality they would dominate the memory of a file of 12 qualities.
        self._context_raw = {}
        self._context_built = {}
        self._context_lock = threading.Lock()
        self._budget = archive.budget
        self.compatible_model_ids = tuple(bytes.fromhex(v) for v in meta.get("compatible_model_ids", []))
        for q in range(1, len(levels) + 1):  # entries; member names count them from 1
            t = int(levels[q - 1].get("transforms", 0))
            g = self._dictionary(archive, f"level{q}/global")
            if g.num_models != configs[t]["M"]:
                raise ValueError(f"level{q}/global has {g.num_models} models, transforms {t} have "
                                 f"M={configs[t]['M']} channels")
            s = self._dictionary(archive, f"level{q}/static") if archive.has(f"level{q}/static") else None
            if s is not None and s.precision != g.precision:
                raise ValueError(f"level{q}: static and global tables differ in precision")
            if s is not None and 1 + s.num_models + int(levels[q - 1].get("max_image_models", 32)) > 65535:
                raise ValueError(f"level{q}/static: too many models ({s.num_models})")
            self.tables[q] = (g, s)
            raw = {}
            for name in ("context_global", "context_static"):
                if archive.has(f"level{q}/{name}") and (name == "context_global" or "context_global" in raw):
                    data = archive.read(f"level{q}/{name}", (np.dtype("u1"),))
                    if data.ndim != 1:
                        raise ValueError(f"level{q}/{name} must be a 1-D byte array")
                    raw[name] = data.tobytes()
            self._context_raw[q] = raw
            self._check_context_header(q, g)

    def _check_context_header(self, q: int, g: Dictionary):
        """The header fields of level q's context families (precision, number of models)."""
        for name, raw in self._context_raw[q].items():
            try:
                precision, K = header_fields(raw)
            except ValueError as e:
                raise ValueError(f"level{q}/{name}: {e}") from None
            if precision != g.precision:
                raise ValueError(f"level{q}/{name} must have the precision of level{q}/global")
            if name == "context_global" and K != g.num_models * NUM_CONTEXTS:
                raise ValueError(f"level{q}/context_global must hold {NUM_CONTEXTS} tables per channel")
            if name == "context_static" and (K % NUM_CONTEXTS or not K or
                                             1 + K // NUM_CONTEXTS + MAX_IMAGE_MODELS > 65535):
                raise ValueError(f"level{q}/context_static must hold {NUM_CONTEXTS} tables per family")

    def has_context_tables(self, entry: int) -> bool:
        """Whether entry ``entry`` of :attr:`levels` (1-based; quality ``q`` is entry
        :meth:`entry` (q)) has context families (without building them)."""
        return "context_global" in self._context_raw[entry]

    def context_tables(self, entry: int) -> tuple:
        """(per-channel context families, static context families) of entry ``entry`` of
        :attr:`levels` (1-based; :attr:`tables` is keyed the same way), each
        ``None`` if the file has none; built on first use (without decoder lookup tables)
        and charged to ``max_bytes`` then. Raises ``ValueError`` naming the path if they
        are damaged or would exceed what is left of ``max_bytes``."""
        with self._context_lock:
            if entry not in self._context_built:
                raw = self._context_raw[entry]
                built = []
                for name in ("context_global", "context_static"):
                    data = raw.get(name)
                    if data is None:
                        built.append(None)
                        continue
                    need = table_bytes(data, stop_above=self._budget[0], lookups=False)
                    what = f"the tables of level{entry}/{name}"
                    if need > self._budget[0]:
                        raise ValueError(f"{self.path}: {what} would take {need} bytes, more than the "
                                         f"{self._budget[0]} left of max_bytes={self._budget[1]} (raise it to "
                                         f"load a larger trusted file)")
                    try:
                        d = Dictionary.from_bytes(data, max_bytes=need, lookups=False)
                    except ValueError as e:
                        raise ValueError(f"{self.path} is not a valid ldem model file: level{entry}/{name}: "
                                         f"{e}") from None
                    self._budget[0] -= need
                    self.bytes_charged += need
                    built.append(d)
                self._context_built[entry] = tuple(built)
            return self._context_built[entry]

    @staticmethod
    def _dictionary(archive: _Archive, name: str, lookups: bool = True) -> Dictionary:
        data = archive.read(name, (np.dtype("u1"),))
        if data.ndim != 1:
            raise ValueError(f"{name} must be a 1-D byte array")
        data = data.tobytes()
        need = table_bytes(data, stop_above=archive.budget[0], lookups=lookups)
        archive.charge(need, f"the tables of {name}")
        try:
            return Dictionary.from_bytes(data, max_bytes=need, lookups=lookups)
        except ValueError as e:
            raise ValueError(f"{name}: {e}") from None

    @property
    def config(self) -> dict:
        """Config of the first set of transforms (see :attr:`configs` for all)."""
        return self.configs[0]

    @property
    def num_qualities(self) -> int:
        return len(self.ladder)

    def reads(self, model_id: bytes) -> bool:
        """Whether ``.ldem`` files of the model ``model_id`` decode with this file: its own
        id, or one of :attr:`compatible_model_ids`."""
        return model_id == self.model_id or model_id in self.compatible_model_ids

    def entry(self, quality: int) -> int:
        """The entry of :attr:`levels` (1-based: its tables are ``level{entry}/...``) behind ``quality``."""
        return int(self.ladder[quality - 1])

    def entry_for(self, model_id: bytes, quality: int) -> int:
        """The entry that decodes a ``.ldem`` file of model ``model_id`` at ``quality``:
        through the ladder for this file's own id, in place for a compatible model's.
        Raises :class:`ldem.DecodeError` if this file cannot read it."""
        if model_id == self.model_id:
            if not 1 <= quality <= self.num_qualities:
                raise DecodeError(f"file quality {quality} does not exist in this model (1..{self.num_qualities})")
            return self.entry(quality)
        if model_id not in self.compatible_model_ids:
            raise DecodeError(f"file was made by model {model_id.hex()}, which {self.path.name} does not read")
        if not 1 <= quality <= len(self.levels):
            raise DecodeError(f"file quality {quality} does not exist in model {model_id.hex()}")
        return quality

    def level_of(self, quality: int, entry: int = None) -> tuple:
        """(index of the transforms, trained level of those transforms) behind ``quality``
        (or behind the entry ``entry`` of :attr:`levels`, if given)."""
        e = self.entry(quality) if entry is None else entry
        lv = self.levels[e - 1]
        return int(lv.get("transforms", 0)), int(lv.get("level", e - 1))

    def is_block_transform(self, transforms: int) -> bool:
        """Whether transforms set ``transforms`` is a :class:`ldem.block_transform.BlockTransform`."""
        return transforms in self._blocks

    def stride(self, transforms: int) -> int:
        """Pixels per latent position of transforms set ``transforms`` (16, or 8 for a block transform)."""
        return block_transform.STRIDE if transforms in self._blocks else 16

    def net(self, transforms: int = 0):
        """The transforms number ``transforms``: a :class:`ldem.block_transform.BlockTransform`
        (numpy), or the PyTorch transforms in float32, in eval mode (built on first use)."""
        if transforms in self._blocks:
            return self._blocks[transforms]
        if transforms not in self._nets:
            from ldem._optional import require
            torch = require("ldem.model_file.ModelBundle.net", "torch")
            from ldem.transforms import GainedFactorizedCodec
            net = GainedFactorizedCodec.from_config(self.configs[transforms])
            state = {k: torch.from_numpy(v.astype(np.float32)) for k, v in self.states[transforms].items()}
            missing, unexpected = net.load_state_dict(state, strict=False)
            missing = [k for k in missing if not k.startswith("densities.")]  # tables replace them
            if missing or unexpected:
                raise ValueError(f"{self.path}: weights do not match the architecture "
                                 f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
            self._nets[transforms] = net.eval()
        return self._nets[transforms]


# ---------------------------------------------------------------------------------------
# Cache: one loaded bundle per file version
# ---------------------------------------------------------------------------------------
_CACHE_SIZE = 4
_cache: "OrderedDict[tuple, ModelBundle]" = OrderedDict()
_cache_lock = threading.Lock()


def _bundle(path: str, max_bytes: int = DEFAULT_MAX_BYTES) -> ModelBundle:
    """The bundle of the model file at ``path``, cached by path and file identity (device,
    inode, size, modification and change times), so a file replaced at the same path is
    read again. Only a bundle whose bytes were read from the version stat'ed is cached."""
    try:
        st = os.stat(path)
    except OSError:
        return ModelBundle(path, max_bytes=max_bytes)  # raises the clear error
    key = (str(path), max_bytes, (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    with _cache_lock:
        b = _cache.get(key)
        if b is not None:
            _cache.move_to_end(key)
            return b
    b = ModelBundle(path, max_bytes=max_bytes)
    if b.file_key == key[2]:
        with _cache_lock:
            _cache[key] = b
            while len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
    return b


def _clear_cache():
    with _cache_lock:
        _cache.clear()


_bundle.cache_clear = _clear_cache


# ---------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------
def transform_members(t: int, state: dict) -> dict:
    """The members of the weights ``state`` (name -> array) of transforms ``t``.

    >>> list(transform_members(1, {"g_a.0.weight": np.zeros(2, np.float16)}))
    ['param1/g_a.0.weight']
    """
    return {f"param{t}/{k}": v for k, v in state.items()}


def table_members(quality: int, global_models: Dictionary, static=None, context_models=None,
                  context_static=None) -> dict:
    """The members of one quality's integer tables: its global models and, if any, its
    static dictionary, its per-channel context families and its static context families,
    stored as :meth:`ldem.Dictionary.to_bytes` gives them.

    >>> d = Dictionary.from_pmfs([[0.5, 0.5]], [0])
    >>> sorted(table_members(2, d, d))
    ['level2/global', 'level2/static']
    """
    out = {}
    for name, d in (("global", global_models), ("static", static), ("context_global", context_models),
                    ("context_static", context_static)):
        if d is not None:
            out[f"level{quality}/{name}"] = np.frombuffer(d.to_bytes(), np.uint8)
    return out


def write_model_file(path, members: dict, transforms: list, levels: list, training: list, *,
                     force: bool = False, inputs=(), compatible_model_ids=(), ladder=None) -> dict:
    """Writes a model file of the current format atomically (see :func:`ldem.files.write_atomic`
    for ``force`` and ``inputs``) and returns its meta.

    ``members`` are those of :func:`transform_members` and :func:`table_members`, in the
    order they are stored; ``transforms`` the configs of the sets of transforms, ``levels``
    one dict per quality (``quality``, ``transforms``, ``level``, coder settings),
    ``training`` one dict of notes per set of transforms and ``compatible_model_ids`` the
    ids (bytes) of earlier files whose ``.ldem`` files this one decodes (see :func:`check_meta`);
    ``ladder`` the entries of ``levels`` (1-based) offered as qualities (default: all).

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "m.npz"
    >>> write_model_file(path, {}, [], [], [])["format"]
    3
    """
    if len(levels) > MAX_QUALITIES:
        raise ValueError(f"{len(levels)} qualities: a .ldem header holds at most {MAX_QUALITIES}")
    meta = {"format": MODEL_FILE_FORMAT, "transforms": transforms, "levels": levels, "training": training}
    if ladder is not None and list(ladder) != list(range(1, len(levels) + 1)):
        meta["ladder"] = check_ladder([int(v) for v in ladder], len(levels))
    if compatible_model_ids:
        meta["compatible_model_ids"] = sorted({bytes(v).hex() for v in compatible_model_ids})
    arrays = dict(members)
    arrays["meta.json"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    write_atomic(path, buf.getvalue(), force=force, inputs=inputs)
    return meta
