"""Small file helpers shared by every writer: atomic writes that cannot destroy anything, and hashing.

Rules every output follows (:func:`atomic_path` / :func:`atomic_write`):

* absent or regular-file target: written to a temp file beside it and renamed onto it only on
  success, so a reader never sees a partial file and a failure leaves nothing behind;
* character device or FIFO (``-o /dev/null``, ``-o /dev/stdout``, a named pipe): written through
  directly; it is never replaced by a regular file. A FIFO blocks until a reader opens it, as a
  shell redirection does;
* a symlink is followed: its final target is replaced atomically and the link is kept (what
  ``cmd > link`` does; a dangling link creates its target);
* directory, socket, block device or anything else: :class:`~zooport.errors.WriteError`, nothing
  written;
* the new file gets the mode a new file gets under the process umask (``0o666 & ~umask``), not
  mkstemp's 0600;
* every ``OSError`` while writing (ENOSPC, EFBIG, EACCES, EROFS, ...) becomes one
  :class:`~zooport.errors.WriteError` naming the output path.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
from pathlib import Path
from typing import IO, Iterator

from .errors import WriteError

_CHUNK = 1 << 20


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows (``/proc/self/status``)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    m = os.umask(0o022)  # fallback: racy with other threads creating files, hence only the fallback
    os.umask(m)
    return m


def new_file_mode() -> int:
    """The permission bits ``open(path, "w")`` would give a new file: ``0o666 & ~umask``."""
    return 0o666 & ~current_umask()


def _write_error(path, e: OSError) -> WriteError:
    return WriteError(f"cannot write output: {e.strerror or e}", path)


def _target(path: Path) -> tuple[Path, str]:
    """(where to write, kind): kind is "file" (absent or regular: atomic replace) or "stream"
    (character device / FIFO: write through). Raises WriteError for anything else."""
    real = Path(os.path.realpath(path)) if path.is_symlink() else path
    try:
        st = os.stat(real)
    except FileNotFoundError:
        return real, "file"
    except OSError as e:
        raise _write_error(path, e) from e
    if stat.S_ISREG(st.st_mode):
        return real, "file"
    if stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode):
        return real, "stream"
    what = ("a directory, expected a file path to write" if stat.S_ISDIR(st.st_mode)
            else "a socket" if stat.S_ISSOCK(st.st_mode)
            else "a block device" if stat.S_ISBLK(st.st_mode) else "not a regular file")
    raise WriteError(f"is {what}" + ("" if stat.S_ISDIR(st.st_mode) else "; refusing to write to it"), path)


def check_output(path: str | os.PathLike) -> tuple[Path, str]:
    """Fail early (WriteError) when ``path`` cannot be an output: a directory, socket, block device,
    or a missing parent directory. Returns (where to write, "file" | "stream")."""
    path = Path(path)
    real, kind = _target(path)
    parent = real.parent if str(real.parent) else Path(".")
    if kind == "file" and not parent.is_dir():
        raise WriteError(f"output directory {parent} does not exist", path)
    return real, kind


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Like :func:`atomic_write`, for writers that want a path (``onnx.save``, ...).

    Yields a temp path beside ``path`` that is renamed onto it when the block succeeds and
    removed when it fails (or ``path`` itself for a character device / FIFO; module doc).
    An ``OSError`` raised in the block becomes a :class:`WriteError` naming ``path``.
    """
    path = Path(path)
    real, kind = check_output(path)
    if kind == "stream":
        try:
            yield real
        except OSError as e:
            raise _write_error(path, e) from e
        return
    parent = real.parent if str(real.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix="." + real.name + ".", suffix=".part", dir=parent)
    except OSError as e:
        raise _write_error(path, e) from e
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, new_file_mode())
        os.replace(tmp, real)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise _write_error(path, e) from e
        raise


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temp file beside ``path`` and rename it onto ``path`` only on success.

    A failure inside the ``with`` block (or a crash) leaves no file at ``path``
    and no temp file behind, so a reader never sees a partial output.
    Character devices and FIFOs are written through (module doc).
    """
    with atomic_path(path) as tmp:
        with open(tmp, mode) as f:
            yield f
            f.flush()
            if stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                os.fsync(f.fileno())


class _Recording:
    """A write-only file wrapper that remembers the OSError its ``write`` raised: ``torch.save``
    turns it into an opaque ``RuntimeError('... unexpected pos ...')``, this gets it back."""

    def __init__(self, f):
        self._f = f
        self.error: OSError | None = None

    def write(self, b) -> int:
        try:
            return self._f.write(b)
        except OSError as e:
            self.error = e
            raise

    def flush(self) -> None:
        self._f.flush()


def save_torch(obj, path: str | os.PathLike) -> None:
    """``torch.save(obj, path)`` through :func:`atomic_write`; a write failure is a WriteError."""
    import torch

    with atomic_write(path, "wb") as f:
        rec = _Recording(f)
        try:
            torch.save(obj, rec)
        except RuntimeError:
            if rec.error is not None:
                raise rec.error from None
            raise


def sha256_file(path: str | os.PathLike) -> str:
    """Full sha256 hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(_CHUNK)
            if not b:
                break
            h.update(b)
    return h.hexdigest()
