"""``zooport.verify``: run a detector over COCO or VOC and score it with the official protocols.

Pipeline defaults come from the model's metadata: ``model.preprocess["mode"]``
picks the preprocessing (``letterbox``: YOLOv5 v7.0 val; ``resize``: Darknet
``detector valid``) and ``model.family`` the post-processing (``darknet`` ->
Darknet's per-class ``do_nms_sort`` with thresh 0.005 / nms 0.45; anything else
-> YOLOv5's NMS with conf 0.001 / iou 0.65 / max_det 300, multi-label). Each
can be overridden. See :mod:`zooport.eval.preprocess`, :mod:`zooport.eval.post`.
"""
from __future__ import annotations

import os
import time

import numpy as np

from ..errors import UsageError
from . import shard as _shard
from .data import load_dataset
from .runner import plan_batches, run_inference, shard_plan

DEFAULTS = {"yolov5": {"conf": 0.001, "iou": 0.65}, "darknet": {"conf": 0.005, "iou": 0.45}}


def _resolve_model(model, names=None):
    if isinstance(model, (str, os.PathLike, list, tuple)):
        from ..loading import load_model

        return load_model(model, names=None if names is None else str(names))
    return model


def _settings(model, preprocess, postprocess, imgsz, batch, conf, iou, max_det, backend, class_map, rect):
    mode = preprocess or (getattr(model, "preprocess", None) or {}).get("mode", "letterbox")
    if mode not in ("letterbox", "resize", "mmdet"):
        raise UsageError(f"preprocess must be 'letterbox', 'resize' or 'mmdet', got {mode!r}")
    if mode == "mmdet":  # MMDetection's pipeline and test_cfg post-processing (zooport.eval.mmdet_run)
        if (getattr(model, "preprocess", None) or {}).get("mode") != "mmdet" or backend != "torch":
            raise UsageError("preprocess 'mmdet' needs an MMDetection model and backend 'torch'"
                             " (use --preprocess resize for onnxruntime)")
        postprocess = postprocess or "mmdet"
    if getattr(model, "two_stage", False) and mode != "mmdet":
        raise UsageError("two-stage MMDetection models are verified with preprocess 'mmdet' only")
    post = postprocess or ("darknet" if getattr(model, "family", "") == "darknet" else "yolov5")
    if post not in DEFAULTS and not (post == "mmdet" and mode == "mmdet"):
        raise UsageError(f"postprocess must be one of {sorted(DEFAULTS)}, got {post!r}")
    in_hw = list(getattr(model, "input_size", None) or [640, 640])
    if imgsz is None:
        imgsz = max(in_hw) if mode == "letterbox" else in_hw
    elif mode == "resize" and np.isscalar(imgsz):
        imgsz = [int(imgsz), int(imgsz)]
    imgsz = int(imgsz) if np.isscalar(imgsz) else [int(v) for v in imgsz]
    stride = max(getattr(model, "stride", None) or [32])
    if batch is None:
        batch = 16
    if int(batch) < 1:
        raise UsageError(f"batch must be >= 1, got {batch}")
    if backend not in ("torch", "onnxruntime"):
        raise UsageError(f"backend must be 'torch' or 'onnxruntime', got {backend!r}")
    return {"preprocess": mode, "postprocess": post, "imgsz": imgsz, "stride": int(stride), "batch": int(batch),
            "rect": bool(rect and mode == "letterbox"),
            "conf": float(DEFAULTS.get(post, {}).get("conf", -1) if conf is None else conf),
            "iou": float(DEFAULTS.get(post, {}).get("iou", -1) if iou is None else iou), "max_det": int(max_det),
            "backend": backend,
            # a name / YAML path as text, an in-memory {model name: dataset name} dict as is (JSON-able)
            "class_map": class_map if class_map is None or isinstance(class_map, dict) else str(class_map)}


def _model_info(model) -> dict:
    src = dict(getattr(model, "source", None) or {})
    return {"family": getattr(model, "family", ""), "sha256": src.get("sha256"), "file": src.get("file"),
            "format": src.get("format"), "names": list(model.names)}


def parse_shard(shard):
    """``"I/N"`` or ``(I, N)`` -> (I, N) with 0 <= I < N."""
    if shard is None:
        return None
    if isinstance(shard, str):
        try:
            i, n = (int(v) for v in shard.split("/"))
        except ValueError:
            raise UsageError(f"--shard must look like I/N (e.g. 0/4), got {shard!r}") from None
    else:
        i, n = (int(v) for v in shard)
    if not (n >= 1 and 0 <= i < n):
        raise UsageError(f"shard {i}/{n}: need 0 <= I < N")
    return i, n


def verify(model, coco=None, voc=None, ann=None, year="2007", split="test", imgsz=None, batch=None, workers=2,
           conf=None, iou=None, max_det=300, preprocess=None, backend="torch", class_map=None, skip_bad=False,
           shard=None, progress=True, postprocess=None, rect=True, names=None, keep_detections=False) -> dict:
    """Run ``model`` over a COCO (``coco=DIR``, ``ann=FILE``) or VOC (``voc=DIR``, ``year``, ``split``) dataset.

    ``model``: a Detector or a MODEL spec for :func:`zooport.load`. Returns a dict with
    ``metrics`` (COCO: AP, AP50, AP75, APs, APm, APl, AR100, ...; VOC: mAP_voc07, mAP_voc10),
    ``per_class``, ``settings``, ``model`` (family, sha256, names), ``dataset``, ``images``,
    ``skipped``, ``timing``. With ``shard=(I, N)`` (or ``"I/N"``) only that shard runs and
    the return value is a *partial* (``{"partial": True, ...}``) for :func:`merge`. Under
    ``torchrun`` (``WORLD_SIZE`` > 1, no ``shard``) every rank runs its shard, the partials
    are gathered over ``torch.distributed`` (gloo) and rank 0 returns the score; other
    ranks return ``{"partial": True, "rank": r}`` without detections. ``names``: class names
    file for a Darknet MODEL spec; ``keep_detections``: also return ``per_image``
    {image key: (n, 6) x1, y1, x2, y2, score, class in image pixels}.
    """
    t0 = time.perf_counter()
    shard = parse_shard(shard)
    dist_ctx = None
    if shard is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist_ctx = _shard.dist_init()
        shard = (dist_ctx["rank"], dist_ctx["world"])
    ds = load_dataset(coco=coco, voc=voc, ann=ann, year=year, split=split)  # cheap checks first
    model = _resolve_model(model, names)
    st = _settings(model, preprocess, postprocess, imgsz, batch, conf, iou, max_det, backend, class_map, rect)
    # Validate the class mapping before spending time on inference.
    _shard.check_mapping(ds, model.names, class_map)
    if st["preprocess"] == "mmdet":
        from .mmdet_run import run_mmdet

        plan = shard_plan(plan_batches(ds.images, "resize", 1, 1, 1, False), shard)  # one image per step
        run = run_mmdet(model, ds.images, plan, workers=workers, skip_bad=skip_bad, progress=progress)
    else:
        plan = plan_batches(ds.images, st["preprocess"], st["imgsz"], st["stride"], st["batch"], st["rect"])
        plan = shard_plan(plan, shard)
        run = run_inference(model, ds.images, plan, mode=st["preprocess"], post=st["postprocess"],
                            imgsz=st["imgsz"], backend=backend, conf=st["conf"], iou=st["iou"],
                            max_det=st["max_det"], workers=workers, skip_bad=skip_bad, progress=progress)
    info = _model_info(model)
    if shard is not None:
        part = _shard.make_partial(shard, st, info, ds, plan, run)
        if dist_ctx is None:
            return part
        parts = _shard.dist_gather(part, dist_ctx)
        if dist_ctx["rank"] != 0:
            return {"partial": True, "rank": dist_ctx["rank"]}
        return _shard.merge_partials(parts, dataset=ds)
    res = _shard.score(ds, run["detections"], info, st, run["skipped"])
    run["timing"]["wall_s"] = time.perf_counter() - t0
    res["timing"] = run["timing"]
    res["images_per_s"] = len(ds.images) / res["timing"]["wall_s"]
    if keep_detections:
        res["per_image"] = run["detections"]
    return res


def merge(files, coco=None, voc=None, ann=None, year=None, split=None) -> dict:
    """Combine the partial results of ``verify(shard=...)`` (files written by ``--shard``) into one score.

    The dataset comes from the partials (their recorded paths) unless given here.
    """
    parts = [_shard.read_partial(f) for f in files]
    ds = None
    if coco is not None or voc is not None:
        ds = load_dataset(coco=coco, voc=voc, ann=ann, year=year or "2007", split=split or "test")
    return _shard.merge_partials(parts, dataset=ds)
