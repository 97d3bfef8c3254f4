"""Verification of YOLOv5 v7.0 segmentation models on COCO: ``bbox`` and ``segm`` AP with pycocotools.

Reproduces ``segment/val.py --save-json`` (v7.0): YOLOv5's letterbox
preprocessing with rectangular batches (:mod:`.preprocess`, :func:`.runner.plan_batches`),
``non_max_suppression(conf 0.001, iou 0.6, multi_label=True, max_det 300, nm)``
(:func:`zooport.postprocess.yolov5_seg.non_max_suppression_seg`), masks by
``process_mask_upsample`` (upsample to the batch shape, crop to the box, > 0.5),
cut out of the letterbox and resized to the original image
(:func:`zooport.postprocess.yolov5_seg.masks_to_original`), RLE-encoded with
``pycocotools.mask.encode``; boxes mapped back with ``scale_boxes`` and written
as YOLOv5 writes them (bbox 3 decimals, score 5). Both result sets are scored
by ``COCOeval`` (``bbox`` and ``segm``).
"""
from __future__ import annotations

import copy

import numpy as np

from ..errors import UsageError
from .coco import ROUNDING, category_ids, score_coco
from .data import load_dataset, read_image
from ..transforms import from_meta
from .preprocess import unletterbox_boxes
from .runner import plan_batches

SEG_DEFAULTS = {"conf": 0.001, "iou": 0.6, "max_det": 300, "batch": 32}


def _rle(mask: np.ndarray) -> dict:
    from pycocotools.mask import encode

    r = encode(np.asarray(mask[:, :, None], order="F", dtype=np.uint8))[0]
    r["counts"] = r["counts"].decode("utf-8")
    return r


def segment_image_results(pred, proto, shape_hw, ratio_pad, orig_hw, image_id, cat_ids: list) -> list:
    """COCO results (bbox + RLE segmentation) of one image's NMS output ``pred`` (n, 6 + nm) and ``proto``."""
    from ..postprocess.yolov5_seg import masks_to_original, process_mask

    if not len(pred):
        return []
    masks = process_mask(proto, pred[:, 6:], pred[:, :4], shape_hw, crop_first=False)
    masks = masks_to_original(masks, ratio_pad, orig_hw)
    boxes = unletterbox_boxes(pred[:, :4].numpy(), ratio_pad, orig_hw, clip=True).astype(np.float64)
    bd, sd = ROUNDING["yolov5"]
    out = []
    for b, (score, c), m in zip(boxes, pred[:, 4:6].tolist(), masks):
        cid = cat_ids[int(c)]
        if cid is None:
            continue
        out.append({"image_id": int(image_id), "category_id": int(cid),
                    "bbox": [round(float(b[0]), bd), round(float(b[1]), bd), round(float(b[2] - b[0]), bd),
                             round(float(b[3] - b[1]), bd)],
                    "score": round(float(score), sd), "segmentation": _rle(m)})
    return out


def verify_segmentation(model, coco, ann=None, *, imgsz: int = 640, batch: int | None = None,
                        conf: float | None = None, iou: float | None = None, max_det: int | None = None,
                        class_map=None, progress: bool = False, keep_results: bool = False) -> dict:
    """Score a :class:`~zooport.model_defs.yolov5.tasks.YOLOv5SegModel` (or a MODEL spec) on a COCO dataset.

    Returns ``{"metrics": {"bbox_AP", "bbox_AP50", ..., "segm_AP", "segm_AP50", ...} (COCOeval's 12
    summary numbers each), "per_class": [{"class", "category_id", "bbox_AP", "bbox_AP50", "segm_AP",
    "segm_AP50"}], "settings", "images", "dataset", "model"}`` (+ ``"results"``, the COCO results list
    with RLE ``segmentation``, with ``keep_results``). Defaults as ``segment/val.py``: conf 0.001, iou 0.6, max_det 300, batch 32.
    """
    import torch
    from tqdm import tqdm

    from ..postprocess.yolov5_seg import non_max_suppression_seg

    from ..families import task_of

    if isinstance(model, (str, list, tuple)) or hasattr(model, "__fspath__"):
        from ..loading import load_model

        model = load_model(model)
    if task_of(model) != "segment":
        raise UsageError(f"verify_segmentation needs a segmentation model, got family "
                         f"{getattr(model, 'family', type(model).__name__)!r}")
    st = {k: (v if v is not None else SEG_DEFAULTS[k])
          for k, v in (("conf", conf), ("iou", iou), ("max_det", max_det), ("batch", batch))}
    st["imgsz"] = int(imgsz)
    ds = load_dataset(coco=coco, ann=ann)
    cat_ids = category_ids(model.names, ds, class_map)
    stride = max(model.stride)
    plan = plan_batches(ds.images, "letterbox", st["imgsz"], stride, int(st["batch"]), rect=True)
    net = copy.deepcopy(model).eval().fuse()
    results = []
    bar = tqdm(total=len(ds.images), desc="verify (segm)", unit="img", disable=not progress, leave=False)
    with torch.no_grad():
        for idx, shape in plan.batches:
            recs = [ds.images[i] for i in idx]
            tf = from_meta(model.preprocess, mode="letterbox", purpose="val", imgsz=st["imgsz"], shape=shape)
            xs, fns = zip(*(tf(read_image(r.path)) for r in recs))
            rps = [fn.ratio_pad for fn in fns]
            pred, proto = net(torch.from_numpy(np.stack(xs)))
            dets = non_max_suppression_seg(pred, st["conf"], st["iou"], nm=model.num_masks, multi_label=True,
                                           max_det=int(st["max_det"]))
            for r, d, p, rp in zip(recs, dets, proto, rps):
                results += segment_image_results(d, p, shape, rp, (r.height, r.width), r.key, cat_ids)
            bar.update(len(recs))
    bar.close()
    img_ids = [r.key for r in ds.images]
    res = {"metrics": {}, "per_class": [], "settings": st, "images": len(img_ids), "dataset": ds.describe(),
           "model": {"family": model.family, "names": list(model.names), **{k: (model.source or {}).get(k)
                                                                           for k in ("file", "sha256")}}}
    rows: dict = {}
    for kind in ("bbox", "segm"):
        sc = score_coco(ds.ann_file, results, img_ids, iou_type=kind)
        res["metrics"].update({f"{kind}_{k}": v for k, v in sc["metrics"].items()})
        for row in sc["per_class"]:
            r = rows.setdefault(row["category_id"], {"class": row["class"], "category_id": row["category_id"]})
            r[f"{kind}_AP"], r[f"{kind}_AP50"] = row["AP"], row["AP50"]
    res["per_class"] = list(rows.values())
    if keep_results:
        res["results"] = results
    return res
