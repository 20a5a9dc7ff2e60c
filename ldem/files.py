"""Safe file input and output: bounded reads, no overwritten inputs, atomic writes.

Every file ldem writes goes through :func:`write_atomic`: the bytes go to a temporary
file in the output's folder, which is flushed, synced and renamed over the output in one
step, so a failure midway leaves the old output (or nothing) and never a fragment. An
existing output is refused unless ``force`` is given, and an output that is one of the
command's inputs (the same path, another spelling of it, a hard link or a symbolic link
to it) is always refused. Reads are bounded by a byte limit and refuse folders.

``"-"`` names standard input for :func:`read_bounded` and standard output for
:func:`write_atomic`.

>>> import os, tempfile
>>> folder = tempfile.mkdtemp()
>>> out = os.path.join(folder, "a.bin")
>>> write_atomic(out, b"hello")
>>> read_bounded(out, limit=16)
b'hello'
>>> write_atomic(out, b"again")
Traceback (most recent call last):
...
FileExistsError: ...a.bin: already exists (use --force to overwrite)
>>> write_atomic(out, b"again", inputs=[out], force=True)
Traceback (most recent call last):
...
ValueError: ...a.bin: the output is the input ...a.bin; refusing to overwrite it
"""
from __future__ import annotations

import os
import stat
import sys
import tempfile
from pathlib import Path
from typing import Iterable, Union

__all__ = ["read_bounded", "write_atomic", "check_output", "check_not_input", "STDIO"]

STDIO = "-"
PathLike = Union[str, os.PathLike]


def read_bounded(path: PathLike, limit: int, *, what: str = "file", stdin=None) -> bytes:
    """Reads all of ``path`` (``"-"``: standard input), refusing more than ``limit`` bytes.

    Raises ``FileNotFoundError``/``IsADirectoryError``/``PermissionError`` (``OSError``)
    for file system errors, and ``ValueError`` when the input holds more than ``limit``
    bytes: a device such as ``/dev/zero`` is never read past ``limit + 1`` bytes.
    """
    if not isinstance(limit, int) or limit < 0:
        raise ValueError(f"limit must be a non-negative int, got {limit!r}")
    if str(path) == STDIO:
        src = stdin if stdin is not None else sys.stdin.buffer
        return _read_limited(src, limit, "standard input", what)
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(f"{path}: is a folder")
    if stat.S_ISREG(st.st_mode) and st.st_size > limit:
        raise ValueError(f"{path}: {what} of {st.st_size} bytes exceeds the limit of {limit} bytes")
    with open(p, "rb") as f:  # a regular file is read in one piece of its size
        return _read_limited(f, limit, str(path), what, st.st_size + 1 if stat.S_ISREG(st.st_mode) else _CHUNK)


_CHUNK = 1 << 16


def _read_limited(f, limit: int, name: str, what: str, first: int = _CHUNK) -> bytes:
    """Reads ``f`` to its end, or until it has given more than ``limit`` bytes. Reads are
    at most ``first`` and then ``_CHUNK`` bytes: ``read(n)`` reserves n bytes up front, so
    asking for ``limit + 1`` at once would reserve the whole limit for a small input."""
    parts, total, n = [], 0, first
    while total <= limit:
        chunk = f.read(min(n, limit + 1 - total))
        if not chunk:
            break
        parts.append(chunk)
        total += len(chunk)
        n = _CHUNK
    if total > limit:
        raise ValueError(f"{name}: {what} exceeds the limit of {limit} bytes")
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _same_file(a: PathLike, b: PathLike) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_not_input(output: PathLike, inputs: Iterable[PathLike]) -> None:
    """Raises ``ValueError`` if ``output`` names one of ``inputs`` (same path, another
    spelling, a hard link, or a symbolic link to it). ``"-"`` is never a file."""
    if str(output) == STDIO:
        return
    for i in inputs:
        if i is None or str(i) == STDIO:
            continue
        if _same_file(output, i) or os.path.abspath(output) == os.path.abspath(i):
            raise ValueError(f"{output}: the output is the input {i}; refusing to overwrite it")


def check_output(path: PathLike, *, force: bool = False, inputs: Iterable[PathLike] = ()) -> None:
    """The checks of :func:`write_atomic` on its output, for a caller to make before any
    work: ``path`` is not one of ``inputs`` (``ValueError``), not a folder
    (``IsADirectoryError``), and does not exist unless ``force`` (``FileExistsError``).
    ``"-"`` (standard output) passes."""
    if str(path) == STDIO:
        return
    check_not_input(path, inputs)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path}: is a folder")
    if os.path.lexists(path) and not force:
        raise FileExistsError(f"{path}: already exists (use --force to overwrite)")


def write_atomic(path: PathLike, data: bytes, *, force: bool = False, inputs: Iterable[PathLike] = (),
                 stdout=None) -> None:
    """Writes ``data`` to ``path`` atomically (``"-"``: standard output).

    ``path`` must pass :func:`check_output` and its folder must exist. On any failure the
    temporary file is removed and an existing output is left as it was. A symbolic link
    at ``path`` is replaced by the new file, never written through.
    """
    if str(path) == STDIO:
        out = stdout if stdout is not None else sys.stdout.buffer
        out.write(data)
        out.flush()
        return
    inputs = list(inputs)
    check_output(path, force=force, inputs=inputs)
    p = Path(path)
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"{path}: the folder {folder} does not exist")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{p.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _default_mode())
        # Checked again just before the rename: the output may have become a link to an
        # input since the first check.
        check_not_input(path, inputs)
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _default_mode() -> int:
    """0o666 less the process umask, read without changing it (another thread may be
    creating files); 0o644 where the system does not say."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o644
