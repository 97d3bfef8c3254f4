"""Inputs of ``zooport predict``: image files, folders, glob patterns and video files.

:func:`expand_sources` turns the command-line words into an ordered list of :class:`Source` (kind
``image`` or ``video``); a word that matches nothing becomes a ``missing`` source, so it can be reported
and skipped with the others still processed. Videos are read frame by frame with OpenCV
(:func:`read_frames`) and written back with :class:`VideoOut`, atomically.
"""
from __future__ import annotations

import contextlib
import glob
import os
from dataclasses import dataclass
from pathlib import Path

from .._io import atomic_path
from ..errors import DatasetError

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".dng", ".mpo", ".pfm", ".pgm",
              ".ppm", ".jp2", ".sr", ".ras", ".pbm", ".pxm", ".pnm"}
VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".asf", ".ts", ".gif"}


@dataclass
class Source:
    kind: str  # "image" | "video" | "missing"
    path: Path


def _kind(p: Path) -> str:
    return "video" if p.suffix.lower() in VIDEO_EXTS else "image"


def expand_sources(words) -> list:
    """Command-line SOURCE words -> sources in order (folders: their image/video files, sorted by name;
    globs: their matches, sorted; other files by extension, anything not a video being tried as an image)."""
    out = []
    for w in words:
        w = str(w)
        p = Path(w)
        if any(ch in w for ch in "*?[") and not p.exists():
            hits = sorted(Path(h) for h in glob.glob(w, recursive=True))
            files = [h for h in hits if h.is_file()]
            out.extend(Source(_kind(h), h) for h in files)
            if not files:
                out.append(Source("missing", p))
        elif p.is_dir():
            files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTS | VIDEO_EXTS)
            out.extend(Source(_kind(f), f) for f in files)
            if not files:
                out.append(Source("missing", p))
        elif p.is_file():
            out.append(Source(_kind(p), p))
        else:
            out.append(Source("missing", p))
    return out


def read_frames(path: Path):
    """Yield the BGR frames of a video; the first item is ``(fps, (w, h), frame_count)``.

    Raises :class:`DatasetError` naming the file when OpenCV cannot open it or it has no frame.
    """
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise DatasetError(f"{path}: cannot open as a video (unknown container or codec)")
        ok, frame = cap.read()
        if not ok or frame is None:
            raise DatasetError(f"{path}: video has no readable frame")
        fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
        yield fps if fps > 0 else 25.0, (frame.shape[1], frame.shape[0]), int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        while ok:
            yield frame
            ok, frame = cap.read()
    finally:
        cap.release()


class VideoOut:
    """A video written atomically: frames go to a temp file (with the right extension, so OpenCV picks the
    container) that replaces ``path`` only when :meth:`close` succeeds. ``.mp4`` uses ``mp4v``, ``.avi``
    ``MJPG``."""

    def __init__(self, path: Path, fps: float, size_wh):
        import cv2

        self._ctx = atomic_path(path)
        self._tmp = self._ctx.__enter__()
        self._real = self._tmp.with_name(self._tmp.name + Path(path).suffix)
        fourcc = cv2.VideoWriter_fourcc(*("MJPG" if Path(path).suffix.lower() == ".avi" else "mp4v"))
        self._w = cv2.VideoWriter(str(self._real), fourcc, float(fps), tuple(int(v) for v in size_wh))
        if not self._w.isOpened():
            self.abort()
            raise DatasetError(f"{path}: OpenCV cannot write this video format")
        self.frames = 0

    def write(self, frame) -> None:
        self._w.write(frame)
        self.frames += 1

    def close(self) -> None:
        self._w.release()
        os.replace(self._real, self._tmp)
        self._ctx.__exit__(None, None, None)

    def abort(self) -> None:
        self._w.release() if hasattr(self, "_w") else None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._real)
        with contextlib.suppress(RuntimeError):
            self._ctx.__exit__(DatasetError, DatasetError("aborted"), None)
