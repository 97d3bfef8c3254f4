"""``zooport predict`` on a folder overlaps decoding, inference and writing.

The stand-in predictor blocks inside "inference" of image k until the decoding of image k + 1 has
started (or 5 s pass): with a serial loop that never happens and the test fails. Writing must run
in another thread than inference, and the outputs must stay complete and in input order.
"""
from __future__ import annotations

import threading

import cv2
import numpy as np

import zooport.eval.data as data
from zooport.inference.detections import Detections
from zooport.inference.run import run_sources


class _Blocking:
    decoder, backend, mode = "opencv", "torch", "letterbox"

    def __init__(self, started):
        self.started, self.overlapped = started, []

    def __call__(self, img, path):
        k = int(path.rsplit("im", 1)[1].split(".")[0])
        nxt = self.started.get(k + 1)
        if nxt is not None:
            self.overlapped.append(nxt.wait(timeout=5))
        d = np.array([[1, 2, 10, 12, 0.9, k % 2]], np.float32)
        return Detections.from_array(d, ["a", "b"], image=path, shape=img.shape[:2],
                                     speed={"preprocess": 0.0, "inference": 0.0, "postprocess": 0.0})


def _folder(tmp_path, n=4, broken=None):
    src = tmp_path / "in"
    src.mkdir()
    for k in range(n):
        if k == broken:
            (src / f"im{k}.jpg").write_bytes(b"not a jpeg")
        else:
            cv2.imwrite(str(src / f"im{k}.jpg"), np.full((20, 30, 3), 40 * k, np.uint8))
    return src


def test_next_image_decodes_while_one_infers(tmp_path, monkeypatch):
    n = 4
    src = _folder(tmp_path, n)
    started = {k: threading.Event() for k in range(n)}
    real = data.read_image

    def spy(path, decoder="opencv"):
        started[int(str(path).rsplit("im", 1)[1].split(".")[0])].set()
        return real(path, decoder)

    monkeypatch.setattr(data, "read_image", spy)
    pred = _Blocking(started)
    res = run_sources(pred, [str(src)], tmp_path / "out", save_txt=True)
    assert pred.overlapped == [True] * (n - 1)
    assert [r.image.rsplit("/", 1)[1] for r in res["results"]] == [f"im{k}.jpg" for k in range(n)]
    assert [p.name for p in res["written"]] == [f"im{k}.png" for k in range(n)]
    for k in range(n):
        assert cv2.imread(str(tmp_path / "out" / f"im{k}.png")).shape == (20, 30, 3)
        assert (tmp_path / "out" / "labels" / f"im{k}.txt").read_text().split()[0] == str(k % 2)


def test_writes_run_off_the_inference_thread_and_errors_keep_their_place(tmp_path, monkeypatch):
    import zooport.inference.run as run

    src = _folder(tmp_path, 4, broken=2)
    threads = []
    real = run.write_image

    def spy(path, image):
        threads.append(threading.current_thread().name)
        real(path, image)

    monkeypatch.setattr(run, "write_image", spy)
    pred = _Blocking({})
    res = run_sources(pred, [str(src)], tmp_path / "out")
    assert threads and all(t.startswith("zooport-write") for t in threads)
    assert [f["path"].rsplit("/", 1)[1] for f in res["failed"]] == ["im2.jpg"]
    assert [r.image.rsplit("/", 1)[1] for r in res["results"]] == ["im0.jpg", "im1.jpg", "im3.jpg"]


def test_a_failing_write_is_raised(tmp_path, monkeypatch):
    import pytest

    import zooport.inference.run as run
    from zooport.errors import UsageError

    src = _folder(tmp_path, 3)

    def boom(path, image):
        raise UsageError(f"{path}: cannot write")

    monkeypatch.setattr(run, "write_image", boom)
    with pytest.raises(UsageError, match="cannot write"):
        run_sources(_Blocking({}), [str(src)], tmp_path / "out")
