"""ldem.files: bounded reads, outputs that never overwrite an input, atomic writes."""
import io
import os

import pytest

from ldem.files import check_not_input, check_output, read_bounded, write_atomic


def test_read_bounded(tmp_path):
    p = tmp_path / "a"
    p.write_bytes(b"x" * 10)
    assert read_bounded(p, 10) == b"x" * 10
    with pytest.raises(ValueError, match="limit of 9 bytes"):
        read_bounded(p, 9)
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_bounded(tmp_path / "missing", 10)
    with pytest.raises(IsADirectoryError):
        read_bounded(tmp_path, 10)
    with pytest.raises(ValueError, match="limit"):
        read_bounded("/dev/zero", 1 << 16)  # a device is read only up to the limit
    assert read_bounded("-", 5, stdin=io.BytesIO(b"12345")) == b"12345"
    with pytest.raises(ValueError, match="standard input"):
        read_bounded("-", 4, stdin=io.BytesIO(b"12345"))
    with pytest.raises(ValueError):
        read_bounded(p, -1)


def test_outputs_that_are_inputs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a = tmp_path / "a.png"
    a.write_bytes(b"photo")
    os.link(a, tmp_path / "hard.png")
    (tmp_path / "soft.png").symlink_to(a)
    for out in ["a.png", "./a.png", str(a), "hard.png", "soft.png", "sub/../a.png"]:
        with pytest.raises(ValueError, match="is the input"):
            check_not_input(out, ["a.png"])
        with pytest.raises(ValueError, match="is the input"):
            write_atomic(out, b"new", force=True, inputs=[str(a)])
    assert a.read_bytes() == b"photo"
    check_not_input("b.png", ["a.png", "-"])
    check_not_input("-", ["-"])


def test_write_atomic(tmp_path):
    out = tmp_path / "o.bin"
    write_atomic(out, b"one")
    with pytest.raises(FileExistsError, match="--force"):
        write_atomic(out, b"two")
    assert out.read_bytes() == b"one"
    write_atomic(out, b"two", force=True)
    assert out.read_bytes() == b"two"
    target = tmp_path / "target"
    target.write_bytes(b"target")
    link = tmp_path / "link"
    link.symlink_to(target)
    write_atomic(link, b"new", force=True)  # the link is replaced, its target is untouched
    assert not link.is_symlink() and link.read_bytes() == b"new" and target.read_bytes() == b"target"
    with pytest.raises(IsADirectoryError):
        write_atomic(tmp_path, b"x", force=True)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_atomic(tmp_path / "no" / "x", b"x")
    sink = io.BytesIO()
    write_atomic("-", b"to stdout", stdout=sink)
    assert sink.getvalue() == b"to stdout"


def test_failed_write_keeps_the_old_output(tmp_path, monkeypatch):
    out = tmp_path / "o.bin"
    out.write_bytes(b"old")

    def fail(fd):
        raise OSError(5, "Input/output error")
    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="Input/output"):
        write_atomic(out, b"new" * 1000, force=True)
    with pytest.raises(OSError):
        write_atomic(tmp_path / "fresh.bin", b"new")
    assert out.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.bin"]


def test_mode_follows_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        write_atomic(tmp_path / "m", b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "m").stat().st_mode & 0o777 == 0o640


def test_check_output_before_any_work(tmp_path):
    a = tmp_path / "a"
    a.write_bytes(b"x")
    check_output(tmp_path / "new", inputs=[a])
    check_output("-", inputs=["-"])
    check_output(a, force=True)
    with pytest.raises(FileExistsError, match="--force"):
        check_output(a)
    with pytest.raises(ValueError, match="is the input"):
        check_output(a, force=True, inputs=[a])
    with pytest.raises(IsADirectoryError):
        check_output(tmp_path, force=True)


def test_a_large_limit_reserves_nothing(tmp_path, peak_memory):
    """A limit far above the input costs no memory (read(n) would reserve n bytes)."""
    p = tmp_path / "small"
    p.write_bytes(b"y" * 3000)
    assert peak_memory(lambda: read_bounded(p, 1 << 40)) < 1 << 20
    data = bytes(range(256)) * 10000  # several chunks from a stream
    assert read_bounded("-", 1 << 40, stdin=io.BytesIO(data)) == data
    with pytest.raises(ValueError, match="limit"):
        read_bounded("-", len(data) - 1, stdin=io.BytesIO(data))
