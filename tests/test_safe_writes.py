"""Writes that cannot destroy anything (zooport._io): special files, symlinks, modes, I/O failures."""
from __future__ import annotations

import hashlib
import os
import socket
import stat
import threading

import pytest

from zooport._io import atomic_path, atomic_write, new_file_mode, save_torch
from zooport.errors import WriteError


@pytest.fixture
def umask():
    """Set the process umask for one test and restore it afterwards."""
    old = os.umask(0o022)
    os.umask(old)
    yield lambda m: os.umask(m)
    os.umask(old)


def test_fifo_is_written_through_not_replaced(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()), daemon=True)
    reader.start()
    with atomic_write(fifo) as f:
        f.write(b"through the pipe")
    reader.join(10)
    assert got == [b"through the pipe"]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]  # no temp file either


def test_character_device_stays_a_device(tmp_path):
    before = os.stat("/dev/null")
    with atomic_write("/dev/null") as f:
        f.write(b"x" * 1000)
    with atomic_path("/dev/null") as p:  # path-style writers get the device itself
        assert str(p) == "/dev/null"
        p.write_bytes(b"y")
    save_torch({"a": 1}, "/dev/null")
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev and after.st_ino == before.st_ino
    # a character device reached through a link in a temp dir: the link and the device survive
    link = tmp_path / "null"
    link.symlink_to("/dev/null")
    with atomic_write(link) as f:
        f.write(b"z")
    assert link.is_symlink() and stat.S_ISCHR(os.stat(link).st_mode)


def test_device_write_error_is_a_write_error():
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    with pytest.raises(WriteError, match=r"/dev/full: cannot write output: No space left on device"):
        with atomic_write("/dev/full") as f:
            f.write(b"x" * 100000)
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_directory_socket_and_missing_parent_are_refused(tmp_path):
    with pytest.raises(WriteError, match="is a directory"):
        with atomic_write(tmp_path):
            pass
    sock_path = tmp_path / "s.sock"
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(str(sock_path))
        with pytest.raises(WriteError, match="is a socket; refusing"):
            with atomic_write(sock_path):
                pass
    finally:
        s.close()
    assert stat.S_ISSOCK(os.lstat(sock_path).st_mode)
    with pytest.raises(WriteError, match="does not exist"):
        with atomic_write(tmp_path / "nope" / "x.bin"):
            pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.sock"]


def test_symlink_to_file_keeps_link_replaces_target(tmp_path):
    """Decision: follow the link like a shell redirection; the target's content is replaced
    atomically (new inode beside the target), the link itself stays a link."""
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "data.bin"
    target.write_bytes(b"old")
    link = tmp_path / "link.bin"
    link.symlink_to(target)
    with atomic_write(link) as f:
        f.write(b"new")
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["data.bin"]
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "real" / "created.bin")
    with atomic_write(dangling) as f:
        f.write(b"c")
    assert dangling.is_symlink() and (tmp_path / "real" / "created.bin").read_bytes() == b"c"


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_outputs_get_the_umask_mode(tmp_path, umask, mask):
    umask(mask)
    assert new_file_mode() == 0o666 & ~mask
    out = tmp_path / "a.bin"
    with atomic_write(out) as f:
        f.write(b"1")
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~mask
    out.chmod(0o600)  # replacing an existing file: the new file gets the umask mode too
    save_torch({"x": 1}, out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~mask


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_downloads_get_the_umask_mode(tmp_path, monkeypatch, umask, mask):
    from zooport.zoo import cache
    from zooport.zoo.manifest import FileSpec

    umask(mask)
    src = tmp_path / "mirror"
    src.mkdir()
    data = os.urandom(5000)
    (src / "w.bin").write_bytes(data)
    monkeypatch.setenv("ZOOPORT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ZOOPORT_MIRROR", str(src))
    monkeypatch.delenv("ZOOPORT_OFFLINE", raising=False)
    path = cache.fetch(FileSpec("w.bin", "https://example.invalid/w.bin", len(data),
                                hashlib.sha256(data).hexdigest()))
    assert path.read_bytes() == data
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask


def test_oserror_in_block_is_write_error_and_leaves_nothing(tmp_path):
    with pytest.raises(WriteError, match=r"out\.bin: cannot write output: No space left on device"):
        with atomic_write(tmp_path / "out.bin") as f:
            f.write(b"partial")
            raise OSError(28, "No space left on device")
    assert list(tmp_path.iterdir()) == []


def test_cli_convert_to_devices(tmp_path, capsys):
    """The issue's case: ``convert ... -o /dev/full`` replaced the device; now /dev/null is written through
    (exit 0) and /dev/full fails with one error line (exit 2); both stay character devices."""
    import zooport
    from zooport.cli.main import main
    from zooport.converters.darknet.load import load_darknet, save_darknet_weights

    cfg = os.path.join(os.path.dirname(zooport.__file__), "cfgs", "darknet", "yolov3-tiny.cfg")
    w = tmp_path / "t.weights"
    save_darknet_weights(load_darknet(cfg, random_weights=True), w)
    assert main(["convert", "darknet", cfg, str(w), "-o", "/dev/null"]) == 0
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    if os.path.exists("/dev/full"):
        capsys.readouterr()
        assert main(["convert", "darknet", cfg, str(w), "-o", "/dev/full"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("zooport: error: /dev/full: cannot write output: No space"), err
        assert stat.S_ISCHR(os.stat("/dev/full").st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.weights"]
