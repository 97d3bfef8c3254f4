"""Zoo downloads against a real HTTP server on 127.0.0.1 that misbehaves on demand:
resume after a dropped connection, wrong bytes, 404/500, a server ignoring Range,
two processes at once, offline mode, no network, disk full.

The served files are synthetic (seeded random bytes under the real file names, with specs carrying
their own size and sha256), so these tests need no real asset and never skip."""
from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import sha256
from zoo_http import ZooServer

from zooport.errors import DownloadError, IntegrityError
from zooport.zoo import cache
from zooport.zoo.manifest import FileSpec, load_manifest

ROOT = Path(__file__).resolve().parent.parent
# name -> (file name, size): several 1 MiB server chunks each, so drops, resumes and pacing are real
SYNTHETIC = {"yolov3-tiny": ("yolov3-tiny.weights", 6_000_003), "yolov5n": ("yolov5n.pt", 8_000_001)}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The synthetic files in one folder (also usable as a ZOOPORT_MIRROR folder)."""
    import numpy as np

    folder = tmp_path_factory.mktemp("served")
    for k, (fname, size) in enumerate(SYNTHETIC.values()):
        (folder / fname).write_bytes(np.random.default_rng(k).bytes(size))
    return folder


@pytest.fixture(scope="module")
def server(files):
    with ZooServer({fname: files / fname for fname, _ in SYNTHETIC.values()}) as s:
        yield s


@pytest.fixture
def env(server, tmp_path, monkeypatch):
    """Empty cache in tmp, every file fetched from the local server, fast retries."""
    server.reset()
    monkeypatch.setenv("ZOOPORT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ZOOPORT_MIRROR", server.url)
    monkeypatch.setenv("ZOOPORT_RETRY_BACKOFF", "0")
    monkeypatch.delenv("ZOOPORT_OFFLINE", raising=False)
    monkeypatch.delenv("ZOOPORT_RETRIES", raising=False)
    return tmp_path / "cache"


def spec(name):
    """The manifest entry's file spec, with the synthetic file's size and sha256."""
    real = load_manifest().get(name).weights
    if name not in SYNTHETIC:
        return real
    import hashlib

    import numpy as np

    k = list(SYNTHETIC).index(name)
    data = np.random.default_rng(k).bytes(SYNTHETIC[name][1])
    return FileSpec(real.filename, real.url, len(data), hashlib.sha256(data).hexdigest())


def cache_files(folder: Path) -> list[str]:
    """Everything in the cache except the lock folder."""
    return sorted(p.name for p in folder.iterdir() if p.name != ".locks") if folder.exists() else []


def test_download_verify_cache_then_no_request(env, server):
    s = spec("yolov5n")
    path = cache.fetch(s)
    assert path == env / "yolov5n.pt"
    assert sha256(path) == s.sha256
    assert [r[0] for r in server.requests] == ["/yolov5n.pt"]
    assert cache_files(env) == ["yolov5n.pt"]
    assert cache.fetch(s) == path
    assert cache.fetch(s, verify_hash=True) == path
    assert len(server.requests) == 1, "a cached file must not touch the network"


def test_drop_halfway_next_call_resumes_with_range(env, server, monkeypatch):
    monkeypatch.setenv("ZOOPORT_RETRIES", "0")
    s = spec("yolov3-tiny")
    server.script("drop")
    with pytest.raises(DownloadError, match=r"yolov3-tiny\.weights.*\.part is kept"):
        cache.fetch(s)
    part = env / "yolov3-tiny.weights.part"
    have = part.stat().st_size
    assert 0 < have < s.bytes
    assert not (env / "yolov3-tiny.weights").exists()
    path = cache.fetch(s)  # the next call resumes
    assert server.requests[-1][1] == f"bytes={have}-", server.requests
    assert len(server.requests) == 2
    assert sha256(path) == s.sha256
    assert cache_files(env) == ["yolov3-tiny.weights"]


def test_drop_halfway_retried_within_one_call(env, server):
    s = spec("yolov5n")
    server.script("drop", "drop")
    path = cache.fetch(s)
    ranges = [r[1] for r in server.requests]
    assert len(ranges) == 3 and ranges[0] is None and ranges[1].startswith("bytes=") and ranges[2].startswith("bytes=")
    assert int(ranges[2][6:-1]) > int(ranges[1][6:-1]) > 0  # each retry resumed further on
    assert sha256(path) == s.sha256


def test_wrong_bytes_rejected_nothing_cached(env, server):
    s = spec("yolov5n")
    server.script("wrong")
    with pytest.raises(IntegrityError, match=r"yolov5n\.pt.*sha256 [0-9a-f]{64} does not match.*removed"):
        cache.fetch(s)
    assert cache_files(env) == []
    # the next (honest) answer is accepted
    assert sha256(cache.fetch(s)) == s.sha256


@pytest.mark.parametrize("code", ["404", "500"])
def test_http_errors_are_clear(env, server, monkeypatch, code):
    monkeypatch.setenv("ZOOPORT_RETRIES", "1")
    server.script(code, code)
    with pytest.raises(DownloadError, match=rf"yolov5n\.pt.*HTTP {code}.*{server.url}/yolov5n\.pt|"
                                            rf"yolov5n\.pt.*{server.url}/yolov5n\.pt.*HTTP {code}"):
        cache.fetch(spec("yolov5n"))
    # 404 is final; a 500 is retried (ZOOPORT_RETRIES=1 -> 2 attempts)
    assert len(server.requests) == (1 if code == "404" else 2)
    assert cache_files(env) == []


def test_server_ignoring_range_restarts_cleanly(env, server, monkeypatch):
    monkeypatch.setenv("ZOOPORT_RETRIES", "0")
    s = spec("yolov3-tiny")
    server.script("drop", "ignore_range")
    with pytest.raises(DownloadError):
        cache.fetch(s)
    assert (env / "yolov3-tiny.weights.part").stat().st_size > 0
    path = cache.fetch(s)
    assert server.requests[1][1] is not None and server.requests[1][2] == "ignore_range"
    assert sha256(path) == s.sha256
    assert cache_files(env) == ["yolov3-tiny.weights"]


@pytest.mark.slow
def test_two_processes_same_file(env, server):
    server.script("slow", "slow")
    s = spec("yolov3-tiny")
    code = ("import sys; from zooport.zoo.cache import fetch; from zooport.zoo.manifest import FileSpec; "
            f"print(fetch(FileSpec({s.filename!r}, {s.url!r}, {s.bytes!r}, {s.sha256!r}), progress=False))")
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=dict(os.environ), cwd=str(ROOT)) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err.decode()
        assert out.decode().strip() == str(env / "yolov3-tiny.weights")
    assert cache_files(env) == ["yolov3-tiny.weights"]
    assert sha256(env / "yolov3-tiny.weights") == spec("yolov3-tiny").sha256
    # the second process waited on the lock and found the verified file: one download in all
    assert len(server.requests) == 1, server.requests


def test_offline_with_empty_cache_names_file_and_variable(env, server, monkeypatch):
    monkeypatch.setenv("ZOOPORT_OFFLINE", "1")
    with pytest.raises(DownloadError) as ei:
        cache.fetch(spec("yolov3-tiny"))
    msg = str(ei.value)
    assert "yolov3-tiny.weights" in msg and "ZOOPORT_OFFLINE" in msg
    assert server.requests == []


def test_offline_uses_cache(env, server, monkeypatch):
    path = cache.fetch(spec("yolov5n"))
    monkeypatch.setenv("ZOOPORT_OFFLINE", "1")
    assert cache.fetch(spec("yolov5n")) == path
    assert len(server.requests) == 1


def test_no_network_is_a_download_error(env, monkeypatch):
    with socket.socket() as sck:  # a port nobody listens on
        sck.bind(("127.0.0.1", 0))
        port = sck.getsockname()[1]
    monkeypatch.setenv("ZOOPORT_MIRROR", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("ZOOPORT_RETRIES", "1")
    with pytest.raises(DownloadError, match=rf"^cannot reach 127\.0\.0\.1:{port}: "):
        cache.fetch(spec("yolov5n"))
    assert cache_files(env) == [] and list((env / ".locks").iterdir()) == []  # no lock file left


def test_disk_full_is_a_download_error(env, server, monkeypatch):
    real_open = open

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, b):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, k):
            return getattr(self.f, k)

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.f.close()

    def fake_open(path, mode="r", *a, **k):
        f = real_open(path, mode, *a, **k)
        return Full(f) if "a" in mode or "w" in mode else f

    monkeypatch.setattr(cache, "open", fake_open, raising=False)
    with pytest.raises(DownloadError, match=r"disk full while writing .*yolov5n\.pt\.part"):
        cache.fetch(spec("yolov5n"))
    assert cache_files(env) == []


def test_damaged_cached_file_is_fetched_again(env, server):
    s = spec("yolov5n")
    path = cache.fetch(s)
    data = path.read_bytes()
    path.write_bytes(data[:-10])  # truncated: the size check catches it
    assert sha256(cache.fetch(s)) == s.sha256
    assert len(server.requests) == 2
    path.write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])  # same size, one bit off
    assert cache.fetch(s) == path and len(server.requests) == 2  # size-only check by default
    assert sha256(cache.fetch(s, verify_hash=True)) == s.sha256  # the hash check catches it
    assert len(server.requests) == 3


def test_local_folder_mirror(env, files, monkeypatch):
    monkeypatch.setenv("ZOOPORT_MIRROR", str(files))
    path = cache.fetch(spec("yolov5n"))
    assert sha256(path) == spec("yolov5n").sha256
    monkeypatch.setenv("ZOOPORT_MIRROR", str(env))  # a folder without the file
    with pytest.raises(DownloadError, match="yolov3-tiny.weights"):
        cache.fetch(spec("yolov3-tiny"))


def test_cache_dir_defaults_to_platform_dir(monkeypatch):
    import platformdirs

    monkeypatch.delenv("ZOOPORT_CACHE", raising=False)
    assert cache.cache_dir() == Path(platformdirs.user_cache_dir("zooport", appauthor=False))
    monkeypatch.setenv("ZOOPORT_CACHE", "/some/where")
    assert cache.cache_dir() == Path("/some/where")


def test_manifest_url_used_without_mirror(monkeypatch):
    monkeypatch.delenv("ZOOPORT_MIRROR", raising=False)
    assert cache.source_url(spec("yolov4")) == \
        "https://github.com/AlexeyAB/darknet/releases/download/darknet_yolo_v3_optimal/yolov4.weights"
    monkeypatch.setenv("ZOOPORT_MIRROR", "http://mirror.local/zoo/")
    assert cache.source_url(spec("yolov4")) == "http://mirror.local/zoo/yolov4.weights"


def test_unknown_size_is_hash_checked_every_time(env, server):
    """Entries with bytes: null (yolov3-spp) rely on the sha256 alone, also for cached files."""
    from zooport.zoo.manifest import FileSpec

    s0 = spec("yolov5n")
    s = FileSpec(s0.filename, s0.url, None, s0.sha256)
    path = cache.fetch(s)
    assert sha256(path) == s.sha256 and len(server.requests) == 1
    data = path.read_bytes()
    path.write_bytes(data[:7] + bytes([data[7] ^ 1]) + data[8:])
    assert sha256(cache.fetch(s)) == s.sha256  # caught without verify_hash=True
    assert len(server.requests) == 2
