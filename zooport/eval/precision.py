"""Per-class precision, recall and instances as ``yolo val`` prints them (YOLOv5 ``ap_per_class``).

Matching (YOLOv5 ``process_batch`` at IoU 0.5, per image): every (ground truth, detection) pair of
the same class with IoU >= 0.5 is a candidate; candidates sorted by IoU (descending), then each
detection keeps its first candidate, then each ground truth its first remaining one (in detection
order, as YOLOv5's two ``np.unique`` passes do). IoU is plain ``inter / union`` in image pixels.

P and R: per class, detections sorted by confidence; recall = TP / instances and precision =
TP / detections, interpolated on 1000 confidence points in [0, 1]; F1 is averaged over classes,
smoothed (box filter over 10% of the points) and the confidence of its maximum gives every class
its P and R. Instances: ground-truth boxes per class (COCO crowd regions and VOC ``difficult``
objects excluded, as YOLOv5's converted labels exclude them).
"""
from __future__ import annotations

import numpy as np


def match_image(gt_boxes, gt_cls, dets, iou_thres: float = 0.5) -> np.ndarray:
    """``dets`` (n, 6) xyxy, score, class -> (n,) bool: true positive at ``iou_thres``."""
    tp = np.zeros(len(dets), bool)
    if not len(dets) or not len(gt_boxes):
        return tp
    from ..postprocess.core import box_iou

    iou = box_iou(np.asarray(gt_boxes, np.float64), np.asarray(dets[:, :4], np.float64), eps=1e-7)
    same = np.asarray(gt_cls)[:, None] == dets[None, :, 5].astype(np.int64)
    g, d = np.nonzero((iou >= iou_thres) & same)
    if len(g):
        m = np.stack([g, d, iou[g, d]], 1)
        m = m[m[:, 2].argsort()[::-1]]
        m = m[np.unique(m[:, 1], return_index=True)[1]]
        m = m[np.unique(m[:, 0], return_index=True)[1]]
        tp[m[:, 1].astype(int)] = True
    return tp


def _smooth(y: np.ndarray, f: float = 0.05) -> np.ndarray:
    nf = round(len(y) * f * 2) // 2 + 1  # odd number of points
    p = np.ones(nf // 2)
    yp = np.concatenate((p * y[0], y, p * y[-1]), 0)
    return np.convolve(yp, np.ones(nf) / nf, mode="valid")


def precision_recall(tp, conf, pred_cls, target_cls, classes) -> tuple[np.ndarray, np.ndarray]:
    """Per class in ``classes``: P and R at the confidence of the maximum mean F1 (see module doc).

    ``tp``, ``conf``, ``pred_cls``: per detection of the whole dataset; ``target_cls``: per instance.
    """
    tp, conf, pred_cls = np.asarray(tp, float), np.asarray(conf, float), np.asarray(pred_cls, int)
    target_cls = np.asarray(target_cls, int)
    order = np.argsort(-conf, kind="stable")
    tp, conf, pred_cls = tp[order], conf[order], pred_cls[order]
    px = np.linspace(0, 1, 1000)
    p = np.zeros((len(classes), 1000))
    r = np.zeros((len(classes), 1000))
    for ci, c in enumerate(classes):
        i = pred_cls == c
        n_l, n_p = int((target_cls == c).sum()), int(i.sum())
        if not n_p or not n_l:
            continue
        tpc = np.cumsum(tp[i])
        fpc = np.cumsum(1 - tp[i])
        r[ci] = np.interp(-px, -conf[i], tpc / (n_l + 1e-16), left=0)
        p[ci] = np.interp(-px, -conf[i], tpc / (tpc + fpc), left=1)
    if not len(classes):
        return p[:, 0], r[:, 0]
    f1 = 2 * p * r / (p + r + 1e-16)
    k = int(_smooth(f1.mean(0), 0.1).argmax())
    return p[:, k], r[:, k]


def per_class_pr(ds, detections: dict, keys: list, model_to_ds: list) -> dict:
    """{dataset class name: {"P", "R", "instances", "images"}} over the images ``keys``.

    ``detections``: image key -> (n, 6) in image pixels with *model* class ids; ``model_to_ds``:
    per model class the dataset class index (None = not scored).
    """
    gts = _ground_truth(ds)
    names = list(ds.names)
    tps, confs, pcls, tcls, imgs = [], [], [], [], np.zeros(len(names), int)
    lut = np.array([-1 if t is None else t for t in model_to_ds] or [-1], int)
    for k in keys:
        boxes, cls = gts.get(k, (np.zeros((0, 4)), np.zeros(0, int)))
        d = np.asarray(detections.get(k, np.zeros((0, 6))), np.float64).reshape(-1, 6).copy()
        if len(d):
            d[:, 5] = lut[d[:, 5].astype(int)]
            d = d[d[:, 5] >= 0]
        tps.append(match_image(boxes, cls, d))
        confs.append(d[:, 4])
        pcls.append(d[:, 5].astype(int))
        tcls.append(cls)
        imgs[np.unique(cls)] += 1
    tcls_all = np.concatenate(tcls) if tcls else np.zeros(0, int)
    inst = np.bincount(tcls_all, minlength=len(names))
    present = [i for i in range(len(names)) if inst[i]]  # YOLOv5 averages F1 over these classes only
    p, r = precision_recall(np.concatenate(tps) if tps else [], np.concatenate(confs) if confs else [],
                            np.concatenate(pcls) if pcls else [], tcls_all, present)
    pr = {c: (float(p[j]), float(r[j])) for j, c in enumerate(present)}
    return {n: {"P": pr.get(i, (0.0, 0.0))[0], "R": pr.get(i, (0.0, 0.0))[1], "instances": int(inst[i]),
                "images": int(imgs[i])} for i, n in enumerate(names)}


def _ground_truth(ds) -> dict:
    """image key -> ((g, 4) xyxy image pixels, (g,) dataset class index), crowd / difficult excluded."""
    out = {}
    index = {n: i for i, n in enumerate(ds.names)}
    if ds.kind == "coco":
        import json

        data = json.loads(open(ds.ann_file).read())
        by_id = {c: index[n] for n, c in zip(ds.names, ds.cat_ids)}
        rows: dict = {}
        for a in data.get("annotations", []):
            if a.get("iscrowd", 0) or a["category_id"] not in by_id:
                continue
            x, y, w, h = a["bbox"]
            rows.setdefault(a["image_id"], []).append((x, y, x + w, y + h, by_id[a["category_id"]]))
    else:
        rows = {k: [(b[0] - 1, b[1] - 1, b[2], b[3], index[o["name"]]) for o in objs if not o["difficult"]
                    for b in [o["bbox"]] if o["name"] in index] for k, objs in ds.objects.items()}
    for k, v in rows.items():
        a = np.asarray(v, np.float64).reshape(-1, 5)
        out[k] = (a[:, :4], a[:, 4].astype(int))
    return out
