"""pycocotools' ``COCOeval`` with its two Python-loop stages computed faster, to the same bits.

The COCO protocol (per image and category: detections by descending score, at most ``maxDet``;
ground truth with the ignored boxes last; per IoU threshold a detection takes the still-free
ground truth of highest IoU >= the threshold, a regular one before an ignored one, the later of
equal IoUs; then precision at 101 recall points after the monotone envelope) is the one
``COCOeval.evaluateImg`` / ``accumulate`` implement; :class:`MatchEval` implements it with

* ``evaluateImg``: a detection whose best IoU with any ground truth is below a threshold cannot
  match at that threshold, and a ground truth below the threshold cannot be taken, so only the
  (detection, ground truth) pairs at or above each threshold are visited. At conf 0.001 most of
  the up to 100 detections per image and class overlap nothing, and pycocotools' T x D x G loop
  was ~80 % of the scoring time.
* ``accumulate``: the envelope as a reversed running maximum and the recall lookup as one
  indexed read, over all thresholds at once: the same float64 operations element for element.

IoUs (``computeIoU``, pycocotools' C ``maskUtils.iou``), ``_prepare`` and ``summarize`` stay
pycocotools' own; tests/test_eval_coco_stream.py compares every figure with an unmodified
``COCOeval``.
"""
from __future__ import annotations

import numpy as np
from pycocotools.cocoeval import COCOeval


class MatchEval(COCOeval):
    """``COCOeval`` (bbox / segm, per category) with :meth:`evaluateImg` and :meth:`accumulate`
    computed as described in the module docstring; records and ``eval`` arrays are identical."""

    def evaluateImg(self, imgId, catId, aRng, maxDet):  # noqa: N802, N803 (pycocotools' names)
        p = self.params
        if not p.useCats or p.iouType == "keypoints":
            return super().evaluateImg(imgId, catId, aRng, maxDet)
        gts, dts = self._gts[imgId, catId], self._dts[imgId, catId]
        if not gts and not dts:
            return None
        lo, hi = aRng
        g_ignore = [1 if (g["ignore"] or g["area"] < lo or g["area"] > hi) else 0 for g in gts]
        g_order = np.argsort(g_ignore, kind="mergesort")  # ignored last, stable
        gts = [gts[i] for i in g_order]
        g_ignore = np.array([g_ignore[i] for i in g_order])
        dts, d_ids, d_scores, d_area = self._sorted_dts(imgId, catId, maxDet)
        T, G, D = len(p.iouThrs), len(gts), len(dts)
        dtm, gtm = np.zeros((T, D)), np.zeros((T, G))
        outside = ((d_area < lo) | (d_area > hi)).reshape((1, D))
        ious = self.ious[imgId, catId]
        if len(ious) and G and D:
            d_ignore = np.zeros((T, D))
            # rows: detections in score order (computeIoU sorts and truncates the same way)
            _match(np.asarray(ious)[:, g_order], g_ignore, [int(g["iscrowd"]) for g in gts],
                   [g["id"] for g in gts], d_ids, p.iouThrs, dtm, gtm, d_ignore)
            d_ignore = np.logical_or(d_ignore, np.logical_and(dtm == 0, np.repeat(outside, T, 0)))
        else:  # nothing to match: a detection is ignored exactly when it lies outside the range
            d_ignore = np.repeat(outside, T, 0)
        return {"image_id": imgId, "category_id": catId, "aRng": aRng, "maxDet": maxDet,
                "dtIds": d_ids, "gtIds": [g["id"] for g in gts],
                "dtMatches": dtm, "gtMatches": gtm, "dtScores": d_scores,
                "gtIgnore": g_ignore, "dtIgnore": d_ignore}

    def _sorted_dts(self, img_id, cat_id, max_det):
        """(detections by descending score (stable), at most ``max_det``; their ids; scores; areas as
        float64), computed once per image and category for the four area ranges."""
        cache = self.__dict__.setdefault("_dt_cache", {})
        key = (img_id, cat_id, max_det)
        if key not in cache:
            dts = self._dts[img_id, cat_id]
            order = np.argsort([-d["score"] for d in dts], kind="mergesort")
            dts = [dts[i] for i in order[:max_det]]
            cache[key] = (dts, [d["id"] for d in dts], [d["score"] for d in dts],
                          np.array([d["area"] for d in dts], dtype=np.float64))
        return cache[key]

    def accumulate(self, p=None):
        """Fill ``self.eval`` (``precision`` [T, R, K, A, M], ``recall`` [T, K, A, M], ``scores``)
        from ``self.evalImgs``, as ``COCOeval.accumulate`` does."""
        import datetime

        p = self.params if p is None else p
        p.catIds = p.catIds if p.useCats == 1 else [-1]
        T, R, K, A, M = len(p.iouThrs), len(p.recThrs), len(p.catIds) if p.useCats else 1, len(p.areaRng), \
            len(p.maxDets)
        precision, recall, scores = -np.ones((T, R, K, A, M)), -np.ones((T, K, A, M)), -np.ones((T, R, K, A, M))
        pe = self._paramsEval
        cats = set(pe.catIds if pe.useCats == 1 else [-1])
        areas, max_dets, img_set = set(map(tuple, pe.areaRng)), set(pe.maxDets), set(pe.imgIds)
        k_list = [n for n, k in enumerate(p.catIds) if k in cats]
        m_list = [m for m in p.maxDets if m in max_dets]
        a_list = [n for n, a in enumerate(map(tuple, p.areaRng)) if a in areas]
        i_list = [n for n, i in enumerate(p.imgIds) if i in img_set]
        n_img, n_area = len(pe.imgIds), len(pe.areaRng)
        for k, k0 in enumerate(k_list):
            for a, a0 in enumerate(a_list):
                base = (k0 * n_area + a0) * n_img
                recs = [e for e in (self.evalImgs[base + i] for i in i_list) if e is not None]
                if not recs:
                    continue
                gt_ignore = np.concatenate([e["gtIgnore"] for e in recs])
                n_pos = np.count_nonzero(gt_ignore == 0)
                if n_pos == 0:
                    continue
                for m, max_det in enumerate(m_list):
                    _accumulate_one(recs, max_det, n_pos, p.recThrs, precision[:, :, k, a, m],
                                    recall[:, k, a, m], scores[:, :, k, a, m])
        self.eval = {"params": p, "counts": [T, R, K, A, M],
                     "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
                     "precision": precision, "recall": recall, "scores": scores}


def _match(ious, g_ignore, crowd, g_ids, d_ids, thresholds, dtm, gtm, d_ignore) -> None:
    """Greedy COCO matching of D score-ordered detections to G ignore-last ground truths, per
    threshold, into ``dtm`` / ``gtm`` / ``d_ignore`` (T x D, T x G, T x D; updated in place).

    ``ious``: (D, G) float64. Only pairs with IoU >= the threshold are visited (see the module
    docstring): a skipped pair could neither be taken nor move the running best.
    """
    lowest = min(min(float(t), 1 - 1e-10) for t in thresholds)
    rows, cols = np.nonzero(ious >= lowest)
    if not len(rows):
        return
    # per detection: its candidate ground truths in ground-truth order, with their IoU
    cand: dict = {}
    for d, g, v in zip(rows.tolist(), cols.tolist(), ious[rows, cols].tolist()):
        cand.setdefault(d, []).append((g, v))
    ignore = g_ignore.tolist()
    for ti, t in enumerate(thresholds):
        floor = min(float(t), 1 - 1e-10)
        taken = gtm[ti]
        for d in sorted(cand):
            best, m = floor, -1
            for g, v in cand[d]:
                if taken[g] > 0 and not crowd[g]:
                    continue  # already matched, and not a crowd region
                if m > -1 and ignore[m] == 0 and ignore[g] == 1:
                    break  # a regular match beats any ignored one
                if v < best:
                    continue
                best, m = v, g
            if m == -1:
                continue
            d_ignore[ti, d] = ignore[m]
            dtm[ti, d] = g_ids[m]
            taken[m] = d_ids[d]


def _accumulate_one(recs, max_det, n_pos, rec_thrs, precision, recall, scores) -> None:
    """One (category, area range, maxDet) cell: ``precision``/``scores`` (T, R) and ``recall`` (T,)
    views of the result arrays, written in place."""
    s = np.concatenate([e["dtScores"][:max_det] for e in recs])
    order = np.argsort(-s, kind="mergesort")
    s_sorted = s[order]
    dtm = np.concatenate([e["dtMatches"][:, :max_det] for e in recs], axis=1)[:, order]
    dt_ig = np.concatenate([e["dtIgnore"][:, :max_det] for e in recs], axis=1)[:, order]
    tps = np.logical_and(dtm, np.logical_not(dt_ig))
    fps = np.logical_and(np.logical_not(dtm), np.logical_not(dt_ig))
    tp = np.cumsum(tps, axis=1).astype(np.float64)
    fp = np.cumsum(fps, axis=1).astype(np.float64)
    nd = tp.shape[1]
    rc = tp / n_pos
    pr = tp / (fp + tp + np.spacing(1))
    recall[:] = rc[:, -1] if nd else 0
    if not nd:
        precision[:] = 0
        scores[:] = 0
        return
    pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]  # precision envelope, right to left
    idx = np.stack([np.searchsorted(r, rec_thrs, side="left") for r in rc])  # (T, R)
    ok = idx < nd  # recall points beyond the last detection's recall stay 0
    idx = np.minimum(idx, nd - 1)
    precision[:] = np.where(ok, np.take_along_axis(pr, idx, 1), 0.0)
    scores[:] = np.where(ok, s_sorted[idx], 0.0)
