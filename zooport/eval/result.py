"""The one return type of :func:`zooport.verify` and :func:`zooport.eval.merge`."""
from __future__ import annotations

from dataclasses import dataclass, field, fields


@dataclass
class VerifyResult:
    """What a verification run measured.

    Fields (all always present):

    - ``metrics``: COCO ``AP AP50 AP75 APs APm APl AR1 AR10 AR100 ARs ARm ARl`` (pycocotools) or VOC
      ``mAP_voc07 mAP_voc10``; both add ``P`` and ``R`` (means over classes with instances). Empty
      when not ``scored``.
    - ``per_class``: per dataset class a dict: ``class``, the AP columns (COCO ``AP``, ``AP50``,
      ``category_id``; VOC ``AP_voc07``, ``AP_voc10``, ``npos``, ``ndet``), ``P``, ``R``,
      ``instances``, ``images``. AP is None for a class without ground truth.
    - ``settings``: the pipeline used (preprocess, postprocess, imgsz, batch, conf, iou, ...).
    - ``model``: family, sha256, file, format, num_classes. ``dataset``: kind, root, ann | year/split.
    - ``images``, ``detections``: counts scored. ``skipped``: [{image, path, error}] (``skip_bad``).
    - ``timing``: seconds (backend_setup_s, inference_s, postprocess_wait_s, total_s, wall_s).
    - ``speed``: milliseconds per image: ``preprocess`` (decode + resize, in the loader threads),
      ``inference``, ``nms`` (post-processing).
    - ``partial``: for ``shard=I/N`` runs, the JSON-able shard partial that ``merge`` combines
      (then ``scored`` is False); else None. ``rank``: the torch.distributed rank, or None.
      ``merged_shards``: N for a merged result, else None.
    - ``per_image``: with ``keep_detections``, {image key: (n, 6) x1, y1, x2, y2, score, class in
      image pixels}; else None (never written to JSON).

    ``res.to_dict()`` is the JSON form (``--json``). ``res["metrics"]`` / ``res.get(...)`` read fields
    by name as well.
    """

    metrics: dict = field(default_factory=dict)
    per_class: list = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    model: dict = field(default_factory=dict)
    dataset: dict = field(default_factory=dict)
    images: int = 0
    detections: int = 0
    skipped: list = field(default_factory=list)
    timing: dict = field(default_factory=dict)
    speed: dict = field(default_factory=dict)
    partial: dict | None = None
    rank: int | None = None
    merged_shards: int | None = None
    per_image: dict | None = None

    @property
    def scored(self) -> bool:
        """True when ``metrics`` hold the whole dataset's score (not a shard, not a non-zero rank)."""
        return self.partial is None and bool(self.metrics)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "per_image"}

    def __getitem__(self, key: str):
        if key not in {f.name for f in fields(self)}:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default=None):
        return getattr(self, key, default) if key in {f.name for f in fields(self)} else default

    @classmethod
    def from_score(cls, d: dict, **extra) -> "VerifyResult":
        """From :func:`zooport.eval.score.score`'s dict (plus fields given as keywords)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in {**d, **extra}.items() if k in names})
