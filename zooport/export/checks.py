"""Running an exported file and comparing it with PyTorch (used by demo, tests and benchmarks).

Tolerance rule everywhere: max |ort - torch| <= rel * max(1, max |torch|)
per output, rel = 1e-4 for float32 exports.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np


@dataclass
class OutputParity:
    name: str
    shape: tuple
    max_abs_err: float
    tol: float

    @property
    def ok(self) -> bool:
        return self.max_abs_err <= self.tol


def ort_session(path, threads: int | None = None, optimize: bool = True):
    """A CPU onnxruntime session; ``threads`` = intra-op threads (default: all cores)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize
                                   else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    so.intra_op_num_threads = int(threads or os.cpu_count() or 1)
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def run_ort(session, x: np.ndarray) -> dict[str, np.ndarray]:
    """Run ``session`` on one input array; returns {output name: array}."""
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {session.get_inputs()[0].name: x})))


def torch_reference(model, x: np.ndarray, mode: str = "default", conf: float = 0.25, iou: float = 0.45,
                    max_det: int = 300) -> list[np.ndarray]:
    """What the exported graph should output for ``x`` (PyTorch, model as given)."""
    import torch

    from .onnx import _flatten
    from .nms_graph import NMSWrapper

    t = torch.from_numpy(np.ascontiguousarray(x))
    with torch.no_grad():
        if mode == "raw":
            outs = _flatten(model.raw(t))
        elif mode == "nms":
            outs = list(NMSWrapper(model, conf, iou, max_det).eval()(t))
        else:
            out = model(t)  # one tensor, or a tuple (YOLOv5 seg: predictions, prototypes)
            outs = list(out) if isinstance(out, (tuple, list)) else [out]
    return [o.detach().cpu().numpy() for o in outs]


def compare(ours: dict[str, np.ndarray], refs: list[np.ndarray], rel: float = 1e-4) -> list[OutputParity]:
    """Per-output max abs error of ``ours`` (name -> array, in graph order) against ``refs``."""
    res = []
    for (name, a), r in zip(ours.items(), refs):
        a64, r64 = np.asarray(a, np.float64), np.asarray(r, np.float64)
        if a64.shape != r64.shape:
            res.append(OutputParity(name, tuple(a.shape), float("inf"), 0.0))
            continue
        err = float(np.max(np.abs(a64 - r64))) if r64.size else 0.0
        tol = rel * max(1.0, float(np.max(np.abs(r64))) if r64.size else 1.0)
        res.append(OutputParity(name, tuple(a.shape), err, tol))
    return res


def compare_nms(ours: dict[str, np.ndarray], refs: list[np.ndarray], rel: float = 1e-4) -> list[OutputParity]:
    """Parity of the four NMS outputs, insensitive to the order of near-tied detections.

    Fused (ONNX) and unfused (PyTorch) scores differ in the last bits, so two
    detections whose scores differ by ~1e-8 may come out swapped. Per image,
    ``num_dets`` must be equal and each reference detection is paired with an
    unpaired one of the same class and the nearest box; errors are over pairs.
    ``classes`` reports the number of reference detections left unpaired.
    """
    num, boxes, scores, classes = (np.asarray(v) for v in ours.values())
    rnum, rboxes, rscores, rclasses = (np.asarray(v) for v in refs)
    num_err, box_err, score_err, unpaired = 0.0, 0.0, 0.0, 0
    for b in range(rnum.shape[0]):
        n, rn = int(num[b, 0]), int(rnum[b, 0])
        num_err = max(num_err, float(abs(n - rn)))
        free = np.ones(n, dtype=bool)
        for i in range(rn):
            same = free & (classes[b, :n] == rclasses[b, i])
            if not same.any():
                unpaired += 1
                continue
            d = np.abs(boxes[b, :n].astype(np.float64) - rboxes[b, i]).max(1)
            d[~same] = np.inf
            j = int(np.argmin(d))
            free[j] = False
            box_err = max(box_err, float(d[j]))
            score_err = max(score_err, float(abs(float(scores[b, j]) - float(rscores[b, i]))))
    box_tol = rel * max(1.0, float(np.abs(rboxes).max()) if rboxes.size else 1.0)
    return [OutputParity("num_dets", tuple(num.shape), num_err, 0.0),
            OutputParity("boxes", tuple(boxes.shape), box_err, box_tol),
            OutputParity("scores", tuple(scores.shape), score_err, rel),
            OutputParity("classes", tuple(classes.shape), float(unpaired), 0.0)]


def check_image(h: int, w: int, batch: int = 1) -> np.ndarray:
    """The check image (:func:`~zooport.export.check_image.draw_check_image`: a drawn street scene with a
    stop sign and a clock) letterboxed to (h, w): (batch, 3, h, w) RGB float32 in [0, 1]. A real-looking
    input where COCO detectors find objects, unlike noise."""
    from ..eval.preprocess import bgr_to_chw01, letterbox
    from .check_image import draw_check_image

    im, _r, _pad = letterbox(draw_check_image(), (int(h), int(w)), scaleup=True)
    return np.repeat(bgr_to_chw01(im)[None], int(batch), 0)


def check_export(model, path, *, mode: str, conf: float = 0.25, iou: float = 0.45, max_det: int = 300,
                 half: bool = False, imgsz=None) -> list[str]:
    """onnxruntime vs PyTorch on the bundled check image; report lines, failures start with ``  FAIL``.

    ``--nms`` files are checked in two parts so the check proves something even when NMS keeps
    nothing: (1) the decoded outputs before NMS (a default-mode graph of the same model, traced
    in memory) against ``model(x)``; (2) the NMS outputs against PyTorch's NMS, detection by
    detection. No detection at ``conf`` means part (2) compared empty tensors: that is a FAIL
    for a model with trained weights (lower ``--conf``), a note for ``random_weights`` models.
    """
    sess = ort_session(path)
    shape = [d if isinstance(d, int) else None for d in sess.get_inputs()[0].shape]
    h, w = (shape[2] or (imgsz or model.input_size)[0]), (shape[3] or (imgsz or model.input_size)[1])
    x = check_image(h, w, shape[0] or 1)
    rel = 1e-2 if half else 1e-4
    xin = x.astype(np.float16) if half else x
    out = [f"parity onnxruntime vs PyTorch (bundled check image {tuple(x.shape)}, "
           f"tolerance {rel:g}*max(1,max|ref|)):"]

    def lines(results, prefix=""):
        return [f"  {'ok  ' if r.ok else 'FAIL'} {prefix}{r.name:10s} {str(r.shape):18s} max abs err {r.max_abs_err:.3g}"
                for r in results]

    if any(t.device.type != "cpu" for t in model.parameters()):
        from .onnx import cpu_copy

        model = cpu_copy(model)  # the reference runs where onnxruntime's input lives; the caller's model stays
    model = model.eval()
    if mode == "nms":
        import onnxruntime as ort

        from .onnx import build_onnx

        dec = build_onnx(model, imgsz=[h, w], batch=x.shape[0], half=half)
        dsess = ort.InferenceSession(dec.SerializeToString(), providers=["CPUExecutionProvider"])
        out += lines(compare(run_ort(dsess, xin), torch_reference(model, x, "default"), rel), "before NMS: ")
        ours = run_ort(sess, xin)
        out += lines(compare_nms(ours, torch_reference(model, x, "nms", conf, iou, max_det), rel))
        n = int(np.asarray(ours["num_dets"]).sum())
        random = str((getattr(model, "source", None) or {}).get("weights", "")).startswith("random")
        if n:
            out.append(f"  ok   {n} detection(s) at conf {conf} compared one by one")
        elif random:
            out.append(f"  note no detection at conf {conf} (random weights): NMS outputs compared empty")
        else:
            out.append(f"  FAIL no detection at conf {conf} on the check image: the NMS part was not exercised; "
                       "lower --conf to check it")
        return out
    out += lines(compare(run_ort(sess, xin), torch_reference(model, x, mode), rel))
    return out
