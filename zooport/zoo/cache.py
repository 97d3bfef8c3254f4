"""Verified, resumable, process-safe downloads into the zooport cache.

Torch-free. Environment:

* ``ZOOPORT_CACHE``: cache folder (default: the platform's user cache dir, e.g. ``~/.cache/zooport``).
* ``ZOOPORT_OFFLINE=1``: never touch the network; a file absent from the cache is an error naming
  the file, the cache path and the variable.
* ``ZOOPORT_MIRROR``: fetch every file from ``MIRROR/<filename>`` instead of its manifest URL
  (an ``http(s)://`` URL, or a local folder / ``file://`` URL for air-gapped hosts).
* ``ZOOPORT_RETRIES`` (default 3) and ``ZOOPORT_RETRY_BACKOFF`` (seconds, default 1.0, doubled per retry).

Cache layout: ``CACHE/<filename>`` (complete, verified files only), ``CACHE/<filename>.part`` (an
interrupted download, resumed with an HTTP Range request), ``CACHE/.locks/<filename>.lock``.

Why not :func:`zooport._io.atomic_write`: a download must survive an interruption so it can be
resumed, so its temp file has a stable name (``.part``) instead of a random one; the final step is
the same atomic ``os.replace``, done only after the full sha256 matched. Two processes never write
one file at once: the whole fetch runs under a ``filelock`` lock, and the second process finds the
finished file when it gets the lock.
"""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

from .._cache import cache_dir  # noqa: F401  (used here, and public as zoo.cache.cache_dir)
from .._io import new_file_mode, sha256_file
from ..errors import DownloadError, IntegrityError
from .manifest import FileSpec

log = logging.getLogger(__name__)

ENV_CACHE = "ZOOPORT_CACHE"
ENV_OFFLINE = "ZOOPORT_OFFLINE"
ENV_MIRROR = "ZOOPORT_MIRROR"
ENV_RETRIES = "ZOOPORT_RETRIES"
ENV_BACKOFF = "ZOOPORT_RETRY_BACKOFF"
_CHUNK = 1 << 20
_RETRY_STATUS = (408, 429, 500, 502, 503, 504)
_LOCK_TIMEOUT_S = 6 * 3600  # a slow link may take long for a 280 MB file; a stuck lock still ends


class _Retryable(Exception):
    """A transient failure (dropped connection, 5xx): retried, resuming from the .part file."""


def _unreachable(url: str, e: BaseException) -> DownloadError:
    """One short line for a host that cannot be reached, instead of requests' urllib3 chain."""
    import re

    text = str(e)
    m = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if m:
        reason = m.group(1).strip().rstrip(".")
    elif "NameResolution" in text or "getaddrinfo" in text:
        reason = "name resolution failed"
    else:
        reason = type(e).__name__
    host = urlparse(url).netloc or url
    return DownloadError(f"cannot reach {host}: {reason}; set {ENV_MIRROR} or {ENV_OFFLINE}=1")


def is_offline() -> bool:
    return os.environ.get(ENV_OFFLINE, "").strip().lower() in ("1", "true", "yes", "on")


def source_url(spec: FileSpec) -> str:
    """Where ``spec`` is fetched from: ``$ZOOPORT_MIRROR/<filename>`` when set, else its manifest URL."""
    mirror = os.environ.get(ENV_MIRROR, "").strip()
    if not mirror:
        return spec.url
    return mirror.rstrip("/") + "/" + spec.filename


def cached_path(spec: FileSpec) -> Path:
    return cache_dir() / spec.filename


def _env_number(name: str, default, kind):
    v = os.environ.get(name)
    if v is None or not v.strip():
        return default
    try:
        out = kind(v)
    except ValueError:
        raise DownloadError(f"environment variable {name}={v!r}: expected a {kind.__name__}") from None
    if out < 0:
        raise DownloadError(f"environment variable {name}={v!r}: expected a value >= 0")
    return out


def check_cached(path: Path, spec: FileSpec, verify_hash: bool = False) -> bool:
    """True when ``path`` holds ``spec``'s file: size always (hash when asked or when the size is unknown).

    A file that fails is removed (the cache holds verified files only), so the caller fetches it again.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return False
    if spec.bytes is not None and size != spec.bytes:
        _remove(path)
        return False
    if verify_hash or spec.bytes is None:
        if not spec.matches(sha256_file(path)):
            _remove(path)
            return False
    return True


def fetch(spec: FileSpec, *, verify_hash: bool = False, progress: bool | None = None,
          retries: int | None = None, backoff: float | None = None, timeout: float = 60.0) -> Path:
    """Path of ``spec``'s verified file in the cache, downloading it first when needed.

    ``verify_hash`` re-hashes an already cached file (its size is always checked).
    ``progress``: tqdm bar (None: only on a terminal). Raises :class:`DownloadError`
    (:class:`IntegrityError` for a wrong size or sha256; the bad file is removed).
    """
    folder = cache_dir()
    dest = folder / spec.filename
    if check_cached(dest, spec, verify_hash):
        return dest
    if is_offline():
        raise DownloadError(
            f"{spec.filename} is not in the zooport cache ({dest}) and {ENV_OFFLINE}=1 forbids downloading it: "
            f"unset {ENV_OFFLINE}, copy the file to {dest}, or use a local file instead of the zoo name "
            f"(command line: give its path as MODEL; Python: weights=PATH)")
    retries = _env_number(ENV_RETRIES, 3, int) if retries is None else retries
    backoff = _env_number(ENV_BACKOFF, 1.0, float) if backoff is None else backoff
    try:
        (folder / ".locks").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DownloadError(f"cannot create the zooport cache folder {folder}: {e.strerror} "
                            f"(set {ENV_CACHE} to a writable folder)") from None
    from filelock import FileLock, Timeout

    lock = FileLock(str(folder / ".locks" / (spec.filename + ".lock")), timeout=_LOCK_TIMEOUT_S)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("waiting for another process downloading %s (lock %s)", spec.filename, lock.lock_file)
        try:
            lock.acquire()
        except Timeout:
            raise DownloadError(f"{spec.filename}: another process has held {lock.lock_file} for "
                                f"{_LOCK_TIMEOUT_S} s; remove it if no zooport download is running") from None
    try:
        # another process may have finished this file while we waited for the lock
        if not check_cached(dest, spec, verify_hash):
            _download(spec, source_url(spec), dest, progress, retries, backoff, timeout)
    finally:
        _release(lock)
    return dest


def _release(lock) -> None:
    """Release ``lock`` and leave no empty lock file behind (the ``.locks`` folder stays: a waiting
    process is polling for the file in it).

    The file is unlinked while still held. A waiting process (filelock polls) then creates a new one
    and takes it; it re-checks the cache first, so at worst a file the first process failed to get is
    downloaded again, and its sha256 is verified like any other.
    """
    with contextlib.suppress(OSError):
        os.unlink(lock.lock_file)
    lock.release()


def _download(spec: FileSpec, url: str, dest: Path, progress, retries: int, backoff: float, timeout: float):
    part = dest.with_name(dest.name + ".part")
    attempt = 0
    while True:
        try:
            _transfer(spec, url, part, progress, timeout)
            break
        except _Retryable as e:
            if attempt >= retries:
                kept = part.exists()
                raise DownloadError(
                    f"{spec.filename}: download from {url} failed after {attempt + 1} attempt(s): {e}"
                    + (f"; the partial file {part} is kept and the next attempt resumes from it" if kept else "")
                ) from None
            time.sleep(backoff * (2 ** attempt))
            attempt += 1
    size = part.stat().st_size
    if spec.bytes is not None and size != spec.bytes:
        _remove(part)
        raise IntegrityError(f"{spec.filename} from {url}: got {size} bytes, the manifest expects {spec.bytes}; "
                             "the file was removed")
    digest = sha256_file(part)
    if not spec.matches(digest):
        _remove(part)
        what = "sha256 prefix" if spec.sha256_is_prefix else "sha256"
        raise IntegrityError(f"{spec.filename} from {url}: sha256 {digest} does not match the manifest's "
                             f"{what} {spec.sha256}; the file was removed")
    os.chmod(part, new_file_mode())  # what the umask gives a new file now, even if an older run began the .part
    os.replace(part, dest)


def _transfer(spec: FileSpec, url: str, part: Path, progress, timeout: float) -> None:
    """Bring ``part`` to the full file from ``url``, resuming from its current length when possible."""
    have = part.stat().st_size if part.exists() else 0
    if spec.bytes is not None and have >= spec.bytes:
        if have == spec.bytes:
            return  # complete: only verification remains
        _remove(part)
        have = 0
    scheme = urlparse(url).scheme
    if scheme in ("http", "https"):
        _transfer_http(spec, url, part, have, progress, timeout)
    else:
        _transfer_local(spec, url, part, have, progress)


def _transfer_http(spec: FileSpec, url: str, part: Path, have: int, progress, timeout: float) -> None:
    import requests

    headers = {"Accept-Encoding": "identity", "User-Agent": "zooport"}  # byte offsets must be file offsets
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        r = requests.get(url, headers=headers, stream=True, timeout=(10, timeout))
    except requests.Timeout:
        raise _Retryable(f"no answer from {urlparse(url).netloc} within the timeout") from None
    except requests.ConnectionError as e:
        text = str(e)
        if any(k in text for k in ("NewConnectionError", "NameResolution", "Failed to establish", "Failed to resolve")):
            raise _unreachable(url, e) from None  # refused, no route, no DNS: retrying will not help
        raise _Retryable(f"connection lost before an answer ({type(e).__name__})") from None
    except requests.RequestException as e:
        raise DownloadError(f"{spec.filename}: bad request to {url}: {e}") from None
    with r:
        code = r.status_code
        if code == 416 and have:  # our partial file does not fit the server's: start over
            _remove(part)
            raise _Retryable(f"HTTP 416 for a resume at byte {have}")
        if code in _RETRY_STATUS:
            raise _Retryable(f"HTTP {code} {r.reason}")
        if code >= 400:
            raise DownloadError(f"{spec.filename}: HTTP {code} {r.reason} from {url}"
                                + (" (not found: check the URL or the mirror's contents)" if code == 404 else ""))
        start = 0
        if code == 206:
            start = _content_range_start(r.headers.get("Content-Range"))
            if start != have:
                _remove(part)
                raise _Retryable(f"server resumed at byte {start}, asked for {have}")
        # a 200 answer to a Range request: the server ignored it and sends the whole file -> restart
        total = spec.bytes
        if total is None and r.headers.get("Content-Length", "").isdigit():
            total = start + int(r.headers["Content-Length"])
        got = start
        try:
            with open(part, "ab" if start else "wb") as f, _bar(spec.filename, total, start, progress) as bar:
                for chunk in r.iter_content(_CHUNK):
                    _write(f, chunk, part)
                    got += len(chunk)
                    bar.update(len(chunk))
                    if spec.bytes is not None and got > spec.bytes:
                        break  # more than the file can be: verification rejects it
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as e:
            raise _Retryable(f"connection lost after {got} bytes ({type(e).__name__})") from None
        except OSError as e:
            raise DownloadError(f"{spec.filename}: cannot write {part}: {e.strerror}") from None
    if spec.bytes is not None and got < spec.bytes:
        raise _Retryable(f"connection closed after {got} of {spec.bytes} bytes")


def _transfer_local(spec: FileSpec, url: str, part: Path, have: int, progress) -> None:
    """Copy from a local mirror folder (``ZOOPORT_MIRROR=/path`` or ``file:///path``)."""
    src = Path(unquote(urlparse(url).path)) if url.startswith("file://") else Path(url)
    try:
        fin = open(src, "rb")
    except OSError as e:
        raise DownloadError(f"{spec.filename}: cannot read {src} from the local mirror {ENV_MIRROR} "
                            f"({e.strerror})") from None
    with fin:
        size = os.fstat(fin.fileno()).st_size
        if have > size:
            have = 0
        fin.seek(have)
        with open(part, "ab" if have else "wb") as f, _bar(spec.filename, size, have, progress) as bar:
            for chunk in iter(lambda: fin.read(_CHUNK), b""):
                _write(f, chunk, part)
                bar.update(len(chunk))


def _write(f, chunk: bytes, part: Path) -> None:
    try:
        f.write(chunk)
    except OSError as e:
        if e.errno == errno.ENOSPC:
            f.close()
            _remove(part)  # free what we took; a resume is pointless until space is made
            free = shutil.disk_usage(part.parent).free
            raise DownloadError(f"disk full while writing {part} ({free} bytes free): make room or set "
                                f"{ENV_CACHE} to another disk") from None
        raise


def _content_range_start(value: str | None) -> int:
    # "bytes START-END/TOTAL"
    try:
        return int(value.split()[1].split("-")[0])
    except (AttributeError, IndexError, ValueError):
        return -1


def _bar(name: str, total, initial: int, progress):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=name,
                disable=None if progress is None else not progress, leave=False)


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
