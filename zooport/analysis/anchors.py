"""Anchor analysis: how well anchors fit a dataset's boxes, and new anchors by k-means.

Box sizes (``box_sizes``): every non-crowd (COCO) / non-difficult (VOC) box, in network-input pixels:
``letterbox`` (YOLOv5): ``float32(w / img_w) * (imgsz * img_w / max(img_w, img_h))`` (and the same for h),
the sizes YOLOv5's AutoAnchor sees with its random scale fixed to 1; ``resize`` (Darknet): ``w / img_w *
net_w``, ``h / img_h * net_h``.

Metrics of anchors ``k`` (n, 2) on sizes ``wh`` (m, 2), all float32 as YOLOv5 computes them:

* ``r = wh / k`` per pair, ``x = min(r, 1 / r)`` minimised over w and h (the width/height ratio test);
* ``bpr`` (best possible recall) = fraction of boxes whose best ``x`` exceeds ``1 / thr``;
* ``aat`` (anchors above threshold) = mean over boxes of the number of anchors with ``x > 1 / thr``;
* ``avg_iou`` (Darknet's ``calc_anchors``): mean over boxes of the best IoU with an anchor, both centred:
  ``min(w, aw) * min(h, ah) / (w h + aw ah - inter)``.

:func:`kmeans_anchors` clusters with distance ``1 - IoU`` (k-means++ seeding from ``numpy.random.
default_rng(seed)``, then Lloyd steps with the cluster median), keeps the best average IoU seen (so it is
never worse than its initialisation), optionally evolves them (YOLOv5-style multiplicative mutations,
kept when the ratio fitness improves) and sorts them by area.
"""
from __future__ import annotations

import numpy as np

from ..errors import DatasetError, UsageError


def box_sizes(coco: dict, imgsz=640, mode: str = "letterbox") -> np.ndarray:
    """(m, 2) float32 box widths/heights in network pixels from a COCO dict (see module doc)."""
    ims = {im["id"]: im for im in coco["images"]}
    out = []
    for a in coco["annotations"]:
        if a.get("iscrowd"):
            continue
        im = ims[a["image_id"]]
        W, H = float(im["width"]), float(im["height"])
        w, h = a["bbox"][2], a["bbox"][3]
        if mode == "letterbox":
            s = float(imgsz if np.isscalar(imgsz) else max(imgsz))
            sw, sh = s * W / max(W, H), s * H / max(W, H)
            out.append([float(np.float32(w / W)) * sw, float(np.float32(h / H)) * sh])
        else:
            nh, nw = (imgsz, imgsz) if np.isscalar(imgsz) else imgsz
            out.append([w / W * nw, h / H * nh])
    if not out:
        raise DatasetError("the dataset has no (non-crowd) boxes to analyse")
    return np.asarray(out, dtype=np.float32)


def _ratio(wh, k):
    wh = np.asarray(wh, np.float32)
    k = np.asarray(k, np.float32).reshape(-1, 2)
    r = wh[:, None] / k[None]
    return np.minimum(r, np.float32(1) / r).min(2)  # (m, n)


def iou_wh(wh, k) -> np.ndarray:
    """(m, n) IoU of centred boxes ``wh`` (m, 2) and anchors ``k`` (n, 2)."""
    wh = np.asarray(wh, np.float64)[:, None]
    k = np.asarray(k, np.float64).reshape(-1, 2)[None]
    inter = np.minimum(wh[..., 0], k[..., 0]) * np.minimum(wh[..., 1], k[..., 1])
    return inter / (wh[..., 0] * wh[..., 1] + k[..., 0] * k[..., 1] - inter)


def anchor_metrics(wh, k, thr: float = 4.0) -> dict:
    """``{"bpr", "aat", "avg_iou", "bpr_count"}`` of anchors ``k`` on sizes ``wh`` (module doc)."""
    x = _ratio(wh, k)
    t = np.float32(1.0 / thr)
    best = x.max(1)
    return {"bpr": float((best > t).astype(np.float32).mean()), "aat": float((x > t).astype(np.float32).sum(1).mean()),
            "avg_iou": float(iou_wh(wh, k).max(1).mean()), "bpr_count": int((best > t).sum())}


def _fitness(wh, k, thr):
    best = _ratio(wh, k).max(1)
    return float((best * (best > 1.0 / thr)).mean())


def kmeans_anchors(wh, n: int = 9, *, seed: int = 0, iters: int = 100, gen: int = 0, thr: float = 4.0) -> dict:
    """``{"anchors" (n, 2) sorted by area, "init" (the seeded starting anchors), "avg_iou", "init_avg_iou"}``."""
    wh = np.asarray(wh, np.float64)
    wh = wh[(wh >= 2.0).any(1)]  # as YOLOv5: ignore boxes under 2 px in both sides
    if n < 1 or len(wh) < n:
        raise UsageError(f"k-means needs 1 <= n <= number of boxes ({len(wh)}), got n={n}")
    rng = np.random.default_rng(seed)
    c = [wh[rng.integers(len(wh))]]
    for _ in range(1, n):  # k-means++ with distance 1 - IoU
        d = 1.0 - iou_wh(wh, np.array(c)).max(1)
        p = d * d
        c.append(wh[rng.choice(len(wh), p=p / p.sum())] if p.sum() > 0 else wh[rng.integers(len(wh))])
    k = np.array(c)
    init = k.copy()
    score = lambda kk: float(iou_wh(wh, kk).max(1).mean())  # noqa: E731
    best, best_s = k.copy(), score(k)
    init_s = best_s
    for _ in range(iters):
        a = iou_wh(wh, k).argmax(1)
        new = np.array([np.median(wh[a == j], 0) if (a == j).any() else k[j] for j in range(n)])
        if np.allclose(new, k):
            break
        k = new
        s = score(k)
        if s > best_s:
            best, best_s = k.copy(), s
    if gen > 0:  # evolve: multiplicative mutations, keep improvements of the ratio fitness
        f = _fitness(wh, best, thr)
        for _ in range(int(gen)):
            m = np.ones_like(best)
            while (m == 1).all():
                m = ((rng.random(best.shape) < 0.9) * rng.random() * rng.standard_normal(best.shape) * 0.1 + 1).clip(0.3, 3.0)
            kg = (best * m).clip(min=2.0)
            fg = _fitness(wh, kg, thr)
            if fg > f and score(kg) >= init_s:
                best, f = kg, fg
        best_s = score(best)
    order = np.argsort(best.prod(1), kind="stable")
    return {"anchors": best[order].astype(np.float32), "init": init, "avg_iou": best_s, "init_avg_iou": init_s}


def model_anchors(model) -> np.ndarray:
    """(n, 2) anchors of a model in input pixels (all levels, in level order)."""
    a = getattr(model, "anchors", None)
    if not a:
        raise UsageError("this model has no anchors (anchor-free head); pass --anchors W,H ...")
    return np.asarray([wh for lvl in a for wh in lvl], dtype=np.float32).reshape(-1, 2)


def parse_anchors(text) -> np.ndarray:
    """``"10,13 16,30 ..."`` or ``"10,13, 16,30"`` -> (n, 2)."""
    vals = [float(v) for v in str(text).replace(",", " ").split()]
    if not vals or len(vals) % 2:
        raise UsageError(f"anchors must be W,H pairs, got {text!r}")
    return np.asarray(vals, np.float32).reshape(-1, 2)


def analyze_anchors(wh, anchors=None, *, n: int = 9, thr: float = 4.0, seed: int = 0, gen: int = 0) -> dict:
    """``{"anchors", "bpr", "aat", "avg_iou", "kmeans": {"anchors", "bpr", "aat", "avg_iou"}}`` (``anchors``
    None: only the k-means part is filled, the top-level metrics are None)."""
    km = kmeans_anchors(wh, n, seed=seed, gen=gen, thr=thr)
    res = {"anchors": None, "bpr": None, "aat": None, "avg_iou": None, "boxes": int(len(wh))}
    if anchors is not None:
        m = anchor_metrics(wh, anchors, thr)
        res.update(anchors=np.asarray(anchors).round(3).tolist(), bpr=m["bpr"], aat=m["aat"], avg_iou=m["avg_iou"])
    mk = anchor_metrics(wh, km["anchors"], thr)
    res["kmeans"] = {"anchors": km["anchors"].round(3).tolist(), "bpr": mk["bpr"], "aat": mk["aat"],
                     "avg_iou": mk["avg_iou"], "init_avg_iou": km["init_avg_iou"], "seed": seed, "gen": gen}
    return res
