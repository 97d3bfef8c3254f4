"""Batched inference over a dataset: plan batches, load/preprocess in threads, run, post-process.

The batch plan is global and deterministic (YOLOv5's rectangular batches for
``letterbox``, dataset order for ``resize``), so a shard ``I/N`` takes whole
batches ``b`` with ``b % N == I`` and the union of the shards' detections is
exactly what one unsharded run produces.

Backends: ``torch`` runs a copy of the Detector (Conv+BN-fused when the family
implements ``fuse``) on ``device`` (default: the model's own); ``onnxruntime``
exports a CPU copy once to ONNX with dynamic batch/height/width (decoded output)
and runs that (see :class:`_OrtRunner` for the ``ZOOPORT_ONNX_CACHE`` cache).
The user's model is never moved, fused or switched to eval mode.

Post-processing: the flavour's function in :data:`POSTPROCESS` (from
:mod:`zooport.postprocess`). ``mmdet`` models are post-processed by their own
``predict`` (``test_cfg``) inside the torch backend; the flavour then only maps
boxes back to the image.
"""
from __future__ import annotations

import copy
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..errors import UsageError
from ..postprocess import darknet_post, mmdet_post, yolov5_post
from .data import BadImage, read_image, skip_or_raise
from .preprocess import rect_batch_shapes


@dataclass
class Plan:
    batches: list  # list of (list of image indices, (h, w) input shape)


def plan_batches(images, mode: str, imgsz, stride: int, batch: int, rect: bool = True) -> Plan:
    """Global batch plan. ``imgsz``: int (letterbox long side) or (h, w) (resize net size)."""
    n = len(images)
    if mode == "letterbox":
        size = int(imgsz if np.isscalar(imgsz) else max(imgsz))
        if rect:
            order, shapes = rect_batch_shapes([(r.height, r.width) for r in images], size, stride, batch)
            return Plan([(order[b * batch:(b + 1) * batch].tolist(), tuple(int(v) for v in shapes[b]))
                         for b in range(len(shapes))])
        return Plan([(list(range(i, min(i + batch, n))), (size, size)) for i in range(0, n, batch)])
    if mode == "resize":
        hw = (int(imgsz), int(imgsz)) if np.isscalar(imgsz) else tuple(int(v) for v in imgsz)
        return Plan([(list(range(i, min(i + batch, n))), hw) for i in range(0, n, batch)])
    raise UsageError(f"preprocess mode must be 'letterbox' or 'resize', got {mode!r}")


def shard_plan(plan: Plan, shard) -> Plan:
    if shard is None:
        return plan
    i, n = shard
    return Plan([b for k, b in enumerate(plan.batches) if k % n == i])


def _model_digest(model) -> str | None:
    """sha256 over zooport's version, exporter + model code, architecture, metadata and every weight."""
    import hashlib
    import json

    from .. import __version__

    try:
        h = hashlib.sha256(f"zooport {__version__} onnx dynamic".encode())
        h.update(json.dumps([model.native_arch(), model.meta], sort_keys=True, default=str).encode())
        # the exporter's and the model definition's code too: a changed exporter never reuses a stale file
        import inspect
        from pathlib import Path

        from ..export import onnx as _onnx_mod

        for f in sorted(Path(_onnx_mod.__file__).parent.glob("*.py")) + [Path(inspect.getfile(type(model)))]:
            h.update(f.read_bytes())
        for k, v in model.state_dict().items():
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()
    except Exception:  # a family without native_arch: no caching, export every time
        return None


class _OrtRunner:
    """onnxruntime (CPU) on a dynamic-shape export of a CPU copy of the model.

    ``ZOOPORT_ONNX_CACHE``: the export is cached as ``<zooport cache>/onnx/<digest>.onnx``
    (``ZOOPORT_CACHE`` or the platform cache folder), the digest covering zooport's version,
    the exporter and model-definition code, the architecture, metadata and every weight, so
    repeated verifications of one model skip the trace and a changed model never reuses a
    stale file. ``ZOOPORT_ONNX_CACHE=0`` disables it (a temporary file per run).
    """

    def __init__(self, model, threads: int):
        import onnxruntime as ort

        from ..export.onnx import export_onnx

        model = _on_cpu(model)
        path = None
        digest = _model_digest(model) if os.environ.get("ZOOPORT_ONNX_CACHE", "1") != "0" else None
        if digest:
            from .._cache import cache_dir  # not zooport.zoo: eval needs only the path

            d = cache_dir() / "onnx"
            try:
                d.mkdir(parents=True, exist_ok=True)
                path = d / f"{digest}.onnx"
            except OSError:
                path = None
        if path is None:
            self._dir = tempfile.TemporaryDirectory(prefix="zooport-verify-")
            path = os.path.join(self._dir.name, "model.onnx")
        if not os.path.isfile(path):
            export_onnx(model, path, dynamic=True)  # atomic: a partial file never appears
        so = ort.SessionOptions()
        # One thread per run, ``threads`` runs at once on slices of the batch: on a small CPU this
        # beats one run spread over the threads (no barrier between the threads at every operator,
        # and a slice of a few images stays in cache: 80 coco-tiny images at 640 on 2 cores, see
        # scripts/bench_verify.py). Each image is computed alone either way, so results do not change.
        # ORT_SLICE = 0: one run per batch over all the threads instead (scripts/bench_verify.py's baseline).
        so.intra_op_num_threads = 1 if ORT_SLICE else max(1, int(threads))
        so.inter_op_num_threads = 1
        # Image decoding and NMS threads share the cores with inference: ORT's default busy-waiting
        # between runs would take their CPU time.
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.enable_mem_pattern = False  # shapes change from batch to batch (rectangular batches)
        self.sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        self.inp = self.sess.get_inputs()[0].name
        self.threads = max(1, int(threads))
        self._pool = ThreadPoolExecutor(self.threads) if self.threads > 1 and ORT_SLICE else None

    def _run(self, x: np.ndarray) -> np.ndarray:
        return self.sess.run(None, {self.inp: x})[0]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(B, 3, H, W) float32 -> the model's (B, ...) output; slices of :data:`ORT_SLICE` images
        run concurrently, one per thread (onnxruntime's ``run`` is thread-safe)."""
        if self._pool is None or len(x) <= ORT_SLICE:
            return self._run(x)
        parts = [x[k:k + ORT_SLICE] for k in range(0, len(x), ORT_SLICE)]
        return np.concatenate(list(self._pool.map(self._run, parts)))

    def __del__(self):
        if getattr(self, "_pool", None) is not None:
            self._pool.shutdown(wait=False)


# Images per onnxruntime run when a batch is split over threads (measured best of 1, 2, 4, 8 for
# yolov5n at 640 on 2 cores; the batch plan, and so every rectangular shape, stays the same).
# 0: no split, one run per batch with ``threads`` intra-op threads.
ORT_SLICE = 2


def model_device(model):
    """The device of the model's first parameter or buffer (CPU when it has none)."""
    import torch

    for t in list(model.parameters())[:1] + list(model.buffers())[:1]:
        return t.device
    return torch.device("cpu")


def _on_cpu(model):
    """``model`` itself when it is on the CPU, else a CPU copy (the user's model is not moved)."""
    return model if model_device(model).type == "cpu" else copy.deepcopy(model).to("cpu")


class _TorchRunner:
    """A private copy of the model on ``device``, fused when the family can, in eval mode.

    ``predict_cfg``: call ``model.predict(x, predict_cfg)`` (MMDetection's own post-processing)
    and return its per-image (n, 6) numpy arrays instead of the decoded (B, N, 5 + nc) output.
    """

    def __init__(self, model, device=None, fuse: bool = True, predict_cfg=None):
        import torch

        self.device = torch.device(device) if device is not None else model_device(model)
        m = copy.deepcopy(model).to(self.device)
        if fuse:
            try:
                m = m.fuse()
            except NotImplementedError:
                pass
        self.model = m.eval()
        self.predict_cfg = predict_cfg
        self.torch = torch

    def __call__(self, x: np.ndarray):
        with self.torch.inference_mode():
            t = self.torch.from_numpy(x).to(self.device)
            if self.predict_cfg is not None:
                return [d.float().cpu().numpy() for d in self.model.predict(t, self.predict_cfg)]
            return self.model(t).float().cpu().numpy()


def make_backend(model, backend: str, threads: int | None = None, device=None, predict_cfg=None):
    import torch

    threads = threads or torch.get_num_threads()
    if backend == "torch":
        return _TorchRunner(model, device=device, predict_cfg=predict_cfg)
    if backend == "onnxruntime":
        return _OrtRunner(model, threads)
    raise UsageError(f"backend must be 'torch' or 'onnxruntime', got {backend!r}")


def _load_one(rec, mode, shape, imgsz, pre, decoder="opencv"):
    """Read and preprocess one image for the batch of input ``shape``: (x, to_image, (h0, w0), seconds)."""
    from ..transforms import from_meta

    t0 = time.perf_counter()
    im = read_image(rec.path, decoder)
    x, fn = from_meta(pre, mode=mode, purpose="val", imgsz=imgsz, shape=shape)(im)
    return x, fn, im.shape[:2], time.perf_counter() - t0


def _darknet_batch(out, to_image, hws, conf, iou, max_det=None) -> list:
    return [darknet_post(o, fn, hw, conf, iou) for o, fn, hw in zip(out, to_image, hws)]


# flavour -> fn(batch output, per-image to_image, per-image (h, w), conf, iou, max_det) -> [(n, 6)]
POSTPROCESS = {"yolov5": yolov5_post, "darknet": _darknet_batch, "mmdet": mmdet_post}


def _post_batch(post, out, to_image, hws, conf, iou, max_det, keys=None, on_result=None):
    """Post-process one batch; then hand ``{key: (n, 6)}`` to ``on_result`` (in this thread)."""
    t0 = time.perf_counter()
    res = POSTPROCESS[post](out, to_image, hws, conf, iou, max_det)
    dt = time.perf_counter() - t0
    if on_result is not None:
        on_result(dict(zip(keys, res)))
    return res, dt


def _collect(item, dets: dict) -> float:
    recs, fut = item
    res, dt = fut.result()
    for rec, d in zip(recs, res):
        dets[rec.key] = d
    return dt


def run_inference(model, images, plan: Plan, *, mode: str, post: str, imgsz, backend="torch", conf=0.001,
                  iou=0.65, max_det=300, workers=2, skip_bad=False, progress=True, runner=None, device=None,
                  predict_cfg=None, decoder="opencv", on_result=None) -> dict:
    """Run ``plan`` over ``images`` (decoded by ``decoder``: see :func:`~zooport.eval.data.read_image`).

    Returns {"detections": {key: (n, 6)}, "skipped": [...], "timing": {...}, "speed": {preprocess,
    inference, nms: ms per image}}. ``predict_cfg``: see :class:`_TorchRunner`. ``on_result``: called
    with each batch's ``{key: (n, 6)}`` in the post-processing thread, while later batches infer
    (the verifier's :class:`~zooport.eval.score.Scorer` matches detections there).
    """
    from tqdm import tqdm

    pre = dict(getattr(model, "preprocess", {}) or {})
    t0 = time.perf_counter()
    runner = runner or make_backend(model, backend, device=device, predict_cfg=predict_cfg)
    t_load = time.perf_counter() - t0
    dets, skipped = {}, []
    t_infer = t_pre = t_nms = 0.0
    total = sum(len(b[0]) for b in plan.batches)
    bar = tqdm(total=total, desc=f"verify ({backend})", unit="img", disable=not progress, leave=False)
    pool = ThreadPoolExecutor(max_workers=max(1, int(workers)))
    post_pool = ThreadPoolExecutor(max_workers=1)
    posts = []

    def submit(b):
        idx, shape = b
        return [(images[i], pool.submit(_load_one, images[i], mode, shape, imgsz, pre, decoder)) for i in idx]

    try:
        pending = submit(plan.batches[0]) if plan.batches else None
        for k in range(len(plan.batches)):
            cur = pending
            pending = submit(plan.batches[k + 1]) if k + 1 < len(plan.batches) else None
            xs, rps, hws, recs = [], [], [], []
            for rec, fut in cur:
                try:
                    x, rp, hw, dt = fut.result()
                except BadImage as e:
                    skip_or_raise(rec, e, skip_bad, skipped)
                    bar.update(1)
                    continue
                xs.append(x), rps.append(rp), hws.append(hw), recs.append(rec)
                t_pre += dt
            if not xs:
                continue
            t1 = time.perf_counter()
            out = runner(np.stack(xs))
            t_infer += time.perf_counter() - t1
            # NMS of this batch runs in its own thread while the next batch infers
            posts.append((recs, post_pool.submit(_post_batch, post, out, rps, hws, conf, iou, max_det,
                                                 [r.key for r in recs], on_result)))
            while len(posts) > 2:  # bound the raw outputs held in memory
                t_nms += _collect(posts.pop(0), dets)
            bar.update(len(recs))
        t2 = time.perf_counter()
        for item in posts:
            t_nms += _collect(item, dets)
        t_post = time.perf_counter() - t2
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        post_pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
    return {"detections": dets, "skipped": skipped,
            "timing": {"backend_setup_s": t_load, "inference_s": t_infer, "postprocess_wait_s": t_post,
                       "total_s": time.perf_counter() - t0},
            "speed": {k: 1000 * v / max(1, len(dets)) for k, v in
                      (("preprocess", t_pre), ("inference", t_infer), ("nms", t_nms))}}
