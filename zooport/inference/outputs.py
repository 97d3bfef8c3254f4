"""Writing predict's outputs, each atomically: drawn images, ``predictions.json``, YOLO ``.txt`` labels."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .._io import atomic_write
from ..errors import UsageError


def write_image(path, image: np.ndarray) -> None:
    """Encode ``image`` (BGR uint8) in the format of ``path``'s extension and write it atomically."""
    import cv2

    ok, buf = cv2.imencode(Path(path).suffix or ".png", image)
    if not ok:
        raise UsageError(f"{path}: OpenCV cannot encode an image with this extension")
    with atomic_write(path) as f:
        f.write(buf.tobytes())


def write_json(path, obj) -> None:
    with atomic_write(path, "w") as f:
        json.dump(obj, f)
        f.write("\n")


def write_text(path, text: str) -> None:
    with atomic_write(path, "w") as f:
        f.write(text)


class Names:
    """Unique output stems: ``bus``, then ``bus_2``, ``bus_3`` for later inputs with the same stem."""

    def __init__(self):
        self.seen: dict[str, int] = {}

    def __call__(self, stem: str) -> str:
        n = self.seen.get(stem, 0) + 1
        self.seen[stem] = n
        return stem if n == 1 else f"{stem}_{n}"
