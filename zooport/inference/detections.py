"""The result of one prediction: boxes in original-image pixels, scores, classes, names."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Detections:
    """Detections of one image (or one video frame).

    ``boxes``: (n, 4) float32 x1, y1, x2, y2 in original-image pixels (0-based, continuous);
    ``scores``: (n,) float32; ``classes``: (n,) int64 class ids into ``names``;
    ``image``: the source path (or None for an array), ``shape``: the original (h, w);
    ``speed``: milliseconds spent in ``preprocess``, ``inference``, ``postprocess``.
    """

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    names: list
    image: str | None = None
    shape: tuple = (0, 0)
    speed: dict = field(default_factory=dict)

    @classmethod
    def from_array(cls, dets, names, **kw) -> "Detections":
        """From an (n, 6) array x1, y1, x2, y2, score, class."""
        d = np.asarray(dets, dtype=np.float32).reshape(-1, 6)
        return cls(d[:, :4].copy(), d[:, 4].copy(), d[:, 5].astype(np.int64), list(names), **kw)

    def __len__(self) -> int:
        return int(len(self.scores))

    def name(self, k: int) -> str:
        c = int(self.classes[k])
        return self.names[c] if 0 <= c < len(self.names) else str(c)

    def to_json(self) -> dict:
        """``{"image": path, "detections": [{"box": [x1, y1, x2, y2], "score", "class", "name"}]}``."""
        return {"image": self.image,
                "detections": [{"box": [round(float(v), 3) for v in self.boxes[k]],
                                "score": round(float(self.scores[k]), 5), "class": int(self.classes[k]),
                                "name": self.name(k)} for k in range(len(self))]}

    def to_yolo_txt(self, with_conf: bool = False) -> str:
        """YOLO label lines ``class cx cy w h`` (relative to the image size; ``score`` appended with
        ``with_conf``), the format YOLOv5's ``--save-txt`` writes."""
        h, w = self.shape
        lines = []
        for k in range(len(self)):
            x1, y1, x2, y2 = (float(v) for v in self.boxes[k])
            vals = [(x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h]
            row = f"{int(self.classes[k])} " + " ".join(f"{v:.6f}" for v in vals)
            lines.append(row + (f" {float(self.scores[k]):.5f}" if with_conf else ""))
        return "".join(s + "\n" for s in lines)

    def draw(self, image: np.ndarray) -> np.ndarray:
        """A copy of ``image`` (H, W, 3 BGR uint8) with the boxes, names and scores drawn."""
        from .draw import draw

        return draw(image, self)
