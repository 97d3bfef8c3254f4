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
