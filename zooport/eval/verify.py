"""``zooport.verify``: run a detector over COCO or VOC and score it with the official protocols.

Pipeline defaults come from the model's metadata: ``model.preprocess["mode"]`` picks the
preprocessing (``letterbox``: YOLOv5 v7.0 val; ``resize``: Darknet ``detector valid``) and
``model.family`` the post-processing (:func:`zooport.postprocess.verify_postprocess`):
``darknet`` -> Darknet's per-class ``do_nms_sort`` with objectness 0.001 / nms 0.6 (hard-coded in
Darknet's ``validate_detector``); ``mmdet`` -> the model's own ``predict`` with its ``test_cfg``
(the path that reproduces MMDetection's ``dets.txt``); anything else -> YOLOv5's NMS with
conf 0.001 / iou 0.65 / max_det 300, multi-label. Each can be overridden. Returns a
:class:`~zooport.eval.result.VerifyResult`. See :mod:`zooport.eval.preprocess`, :mod:`zooport.postprocess`.
"""
from __future__ import annotations

import time

import numpy as np

from .. import families
from ..errors import UsageError
from . import shard as _shard
from .data import DECODERS, load_dataset
from .result import VerifyResult
from .runner import plan_batches, run_inference, shard_plan
from .score import Scorer, check_mapping

# Per post-processing flavour: conf, iou, max_det defaults (None: the model's own test_cfg value).
DEFAULTS = {"yolov5": {"conf": 0.001, "iou": 0.65, "max_det": 300},
            "darknet": {"conf": 0.001, "iou": 0.6, "max_det": None},
            "mmdet": {"conf": None, "iou": None, "max_det": None}}
BACKENDS = ("auto", "torch", "onnxruntime")
# A family's own validator may use other thresholds with the same flavour (Ultralytics: iou 0.7): the family
# record's ``eval_defaults`` (zooport.families) apply when the flavour is the family's default one.


def _default_backend(model, post: str, device) -> str:
    """``auto``: onnxruntime (about 4x faster on a CPU for the same AP) when it is installed, the family
    exports to ONNX with parity (its record's ``onnx_parity``, :mod:`zooport.families`), its post-processing works on the decoded output (not
    ``mmdet``) and the device (default: the model's) is the CPU; else torch."""
    import importlib.util

    if device is None:  # where the model lives: a CUDA model stays on its GPU with torch
        from .runner import model_device

        device = model_device(model) if hasattr(model, "parameters") else "cpu"
    on_cpu = str(device).split(":")[0] == "cpu"
    fam = families.lookup(model)
    if (fam is not None and fam.onnx_parity and post != "mmdet" and on_cpu
            and importlib.util.find_spec("onnxruntime") is not None):
        return "onnxruntime"
    return "torch"


def _round_to_stride(imgsz, stride: int):
    """``imgsz`` (int or [h, w]) rounded up to multiples of ``stride``, with a :class:`ZooportWarning`."""
    import math
    import warnings

    from ..errors import ZooportWarning

    vals = [imgsz] if np.isscalar(imgsz) else list(imgsz)
    up = [int(math.ceil(v / stride) * stride) for v in vals]
    if up != vals:
        warnings.warn(ZooportWarning(f"imgsz {' '.join(map(str, vals))} is not a multiple of the model's max "
                                     f"stride {stride}; using {' '.join(map(str, up))}"), stacklevel=3)
    return up[0] if np.isscalar(imgsz) else up


def _decoder(decoder, post: str) -> str:
    """``auto``: stb_image-exact JPEG decoding when the model is verified the Darknet way (Darknet's
    pipeline decodes with stb_image; its reference mAP depends on those pixels), else OpenCV."""
    if decoder not in DECODERS:
        raise UsageError(f"decoder must be one of {', '.join(DECODERS)}, got {decoder!r}")
    if decoder == "auto":
        return "stb" if post == "darknet" else "opencv"
    return decoder


def _settings(model, preprocess, postprocess, imgsz, batch, conf, iou, max_det, backend, class_map, rect, device,
              decoder="auto"):
    from ..postprocess import verify_postprocess

    mode = preprocess or (getattr(model, "preprocess", None) or {}).get("mode", "letterbox")
    if mode not in ("letterbox", "resize", "mmdet"):
        raise UsageError(f"preprocess must be 'letterbox', 'resize' or 'mmdet', got {mode!r}")
    if mode == "mmdet":  # MMDetection's pipeline and test_cfg post-processing (zooport.eval.mmdet_run)
        if (getattr(model, "preprocess", None) or {}).get("mode") != "mmdet":
            raise UsageError("preprocess 'mmdet' needs an MMDetection model")
        if postprocess not in (None, "mmdet"):
            raise UsageError("preprocess 'mmdet' goes with MMDetection's own test_cfg post-processing "
                             f"(postprocess 'mmdet'), not {postprocess!r}")
        postprocess = "mmdet"
    if getattr(model, "two_stage", False) and mode != "mmdet":
        raise UsageError("two-stage MMDetection models are verified with preprocess 'mmdet' only")
    post = postprocess or verify_postprocess(model)
    if post not in DEFAULTS:
        raise UsageError(f"postprocess must be one of {sorted(DEFAULTS)}, got {post!r}")
    if post == "mmdet" and not hasattr(model, "predict"):
        raise UsageError("postprocess 'mmdet' needs an MMDetection model (its own predict / test_cfg)")
    in_hw = list(getattr(model, "input_size", None) or [640, 640])
    if imgsz is None:
        imgsz = max(in_hw) if mode == "letterbox" else in_hw
    elif mode == "resize" and np.isscalar(imgsz):
        imgsz = [int(imgsz), int(imgsz)]
    imgsz = int(imgsz) if np.isscalar(imgsz) else [int(v) for v in imgsz]
    stride = max(getattr(model, "stride", None) or [32])
    fam = families.lookup(model)
    if fam is None or fam.stride_rounding:  # YOLO-style networks need multiples of their max stride:
        imgsz = _round_to_stride(imgsz, int(stride))  # rounded up, as YOLOv5 / Ultralytics do (FPNs need not)
    if batch is None:
        batch = 16
    if int(batch) < 1:
        raise UsageError(f"batch must be >= 1, got {batch}")
    if backend not in BACKENDS:
        raise UsageError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "auto":
        backend = _default_backend(model, post, device)
    if backend == "onnxruntime" and post == "mmdet":
        raise UsageError("MMDetection models are post-processed by their own test_cfg on the head outputs, "
                         "which the ONNX export does not carry: use backend 'torch'")
    if backend == "onnxruntime" and device is not None and str(device).split(":")[0] != "cpu":
        raise UsageError(f"backend 'onnxruntime' runs on the CPU here; device {device!r} needs backend 'torch'")
    d = dict(fam.eval_defaults) if fam is not None and postprocess is None and fam.postprocess == post \
        else DEFAULTS[post]
    pick = lambda v, k: d[k] if v is None else v  # noqa: E731
    return {"preprocess": mode, "postprocess": post, "decoder": _decoder(decoder, post), "imgsz": imgsz,
            "stride": int(stride), "batch": int(batch),
            "rect": bool(rect and mode == "letterbox"),
            "conf": None if pick(conf, "conf") is None else float(pick(conf, "conf")),
            "iou": None if pick(iou, "iou") is None else float(pick(iou, "iou")),
            "max_det": None if pick(max_det, "max_det") is None else int(pick(max_det, "max_det")),
            "backend": backend, "device": None if device is None else str(device),
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


def _gc_frozen(fn):
    """Run ``fn`` with the objects that exist before it frozen out of the cyclic garbage collector
    (``gc.freeze`` / ``gc.unfreeze``): scoring allocates ~100,000 small dicts and arrays, and each
    collection they trigger would otherwise walk the whole torch / model heap (measured ~0.1 s of a
    3.5 s yolov5n verification). Garbage made during ``fn`` is collected as usual, and afterwards
    everything is back in the oldest generation, so nothing is kept alive or lost."""
    import functools
    import gc

    @functools.wraps(fn)
    def run(*args, **kwargs):
        gc.freeze()
        try:
            return fn(*args, **kwargs)
        finally:
            gc.unfreeze()

    return run


@_gc_frozen
def verify(model, *, coco=None, voc=None, ann=None, year="2007", split="test", imgsz=None, batch=None,
           workers=2, conf=None, iou=None, max_det=None, preprocess=None, postprocess=None, backend="auto",
           device=None, class_map=None, skip_bad=False, shard=None, distributed=False, progress=True, rect=True,
           names=None, keep_detections=False, decoder="auto") -> VerifyResult:
    """Run ``model`` over a COCO (``coco=DIR``, ``ann=FILE``) or VOC (``voc=DIR``, ``year``, ``split``) dataset.

    ``model``: a Detector or a MODEL spec for :func:`zooport.load` (``names``: class names file for a
    Darknet spec). It is never modified: the torch backend runs a private (fused) copy on ``device``
    (default: the model's own device), onnxruntime an export of a CPU copy. ``backend``: ``auto``
    (onnxruntime when installed and the family exports, else torch), ``torch`` or ``onnxruntime``.
    ``conf`` / ``iou`` / ``max_det``: None = the flavour's default (:data:`DEFAULTS`; for ``mmdet`` the
    model's ``test_cfg``). ``shard=(I, N)`` (or ``"I/N"``): run only that shard; the result carries
    the JSON-able ``partial`` for :func:`merge`. ``distributed=True`` (what the CLI sets under
    ``torchrun``): join torch.distributed (gloo), run shard ``rank/world``, gather; rank 0 returns the
    score, other ranks a result with only ``rank`` set. ``keep_detections``: fill ``per_image``.
    ``decoder``: ``opencv``, ``stb`` (JPEGs decoded bit for bit as Darknet's stb_image does) or ``auto``
    (``stb`` for Darknet post-processing, the pipeline Darknet's own mAP comes from; else ``opencv``).

    Returns a :class:`~zooport.eval.result.VerifyResult` (fields documented there).
    """
    t0 = time.perf_counter()
    shard = parse_shard(shard)
    if distributed and shard is not None:
        raise UsageError("give either shard= (one shard, a partial) or distributed=True (all ranks), not both")
    ds = load_dataset(coco=coco, voc=voc, ann=ann, year=year, split=split)  # cheap checks first
    from ..loading import as_model

    model = as_model(model, names)
    if families.task_of(model) != "detect":  # not detectors: scored by their own task
        raise UsageError(f"a {model.family} model is scored by zooport.verify_segmentation (COCO bbox + segm) "
                         "or zooport.verify_classifier (ImageFolder top-1 / top-5), not by verify()")
    st = _settings(model, preprocess, postprocess, imgsz, batch, conf, iou, max_det, backend, class_map, rect, device,
                   decoder)
    # Validate the class mapping before spending time on inference.
    check_mapping(ds, model.names, class_map)
    dist_ctx = None
    if distributed:
        dist_ctx = _shard.dist_init()
        shard = (dist_ctx["rank"], dist_ctx["world"])
    predict_cfg = None
    if st["postprocess"] == "mmdet":
        from ..postprocess.mmdet import test_cfg_overrides

        predict_cfg = test_cfg_overrides(getattr(model, "test_cfg", None), st["conf"], st["iou"], st["max_det"])
    info = _model_info(model)
    # unsharded: detections are scored batch by batch while inference goes on (a shard only collects)
    scorer = Scorer(ds, model.names, st) if shard is None else None
    if st["preprocess"] == "mmdet":  # MMDetection's own pipeline: one image per step, model.predict
        from .mmdet_run import run_mmdet

        plan = shard_plan(plan_batches(ds.images, "resize", 1, 1, 1, False), shard)
        run = run_mmdet(model, ds.images, plan, workers=workers, skip_bad=skip_bad, progress=progress,
                        predict_cfg=predict_cfg, device=device, decoder=st["decoder"])
    else:
        plan = shard_plan(plan_batches(ds.images, st["preprocess"], st["imgsz"], st["stride"], st["batch"],
                                       st["rect"]), shard)
        run = run_inference(model, ds.images, plan, mode=st["preprocess"], post=st["postprocess"],
                            imgsz=st["imgsz"], backend=st["backend"], conf=st["conf"], iou=st["iou"],
                            max_det=st["max_det"], workers=workers, skip_bad=skip_bad, progress=progress,
                            device=device, predict_cfg=predict_cfg, decoder=st["decoder"],
                            on_result=None if scorer is None else scorer.add)
    if shard is not None:
        part = _shard.make_partial(shard, st, info, ds, plan, run)
        if dist_ctx is None:
            return VerifyResult(settings=st, model=info, dataset=ds.describe(), images=len(part["images"]),
                                skipped=run["skipped"], timing=run["timing"], speed=run["speed"], partial=part,
                                per_image=run["detections"] if keep_detections else None)
        parts = _shard.dist_gather(part, dist_ctx)
        if dist_ctx["rank"] != 0:
            return VerifyResult(settings=st, model=info, dataset=ds.describe(), rank=dist_ctx["rank"])
        res = _shard.merge_partials(parts, dataset=ds)
        res.rank = 0
        return res
    if st["preprocess"] == "mmdet":
        scorer.add(run["detections"])
    res = VerifyResult.from_score(scorer.result(info, run["skipped"]), timing=run["timing"], speed=run["speed"])
    res.timing["wall_s"] = time.perf_counter() - t0
    if keep_detections:
        res.per_image = run["detections"]
    return res


def merge(files, *, coco=None, voc=None, ann=None, year=None, split=None) -> VerifyResult:
    """Combine the partial results of ``verify(shard=...)`` (files written by ``--shard``) into one score.

    The dataset comes from the partials (their recorded paths) unless given here.
    """
    parts = [_shard.read_partial(f) for f in files]
    ds = None
    if coco is not None or voc is not None:
        ds = load_dataset(coco=coco, voc=voc, ann=ann, year=year or "2007", split=split or "test")
    return _shard.merge_partials(parts, dataset=ds)
