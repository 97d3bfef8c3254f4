"""Verification for YOLOv5 segmentation (COCO bbox + segm AP, RLE masks at original resolution) and
classification (top-1 / top-5 on an ImageFolder tree), each checked against an independent computation."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from helpers import asset

MORE = "golden/yolov5-more"


def _coco_subset(tmp_path, n):
    d = json.loads(asset("coco-tiny/annotations/instances_val2017.json").read_text())
    ids = sorted(i["id"] for i in d["images"])[:n]
    sub = dict(d, images=[i for i in d["images"] if i["id"] in ids],
               annotations=[a for a in d["annotations"] if a["image_id"] in ids])
    p = tmp_path / "ann.json"
    p.write_text(json.dumps(sub))
    return p, sub


def test_segm_scoring_perfect_and_degraded(tmp_path):
    """pycocotools segm through score_coco: ground-truth masks as results give AP 1; empty masks give 0."""
    from pycocotools.coco import COCO

    from zooport.eval.coco import score_coco

    ann, sub = _coco_subset(tmp_path, 6)
    gt = COCO(str(ann))
    ids = [i["id"] for i in sub["images"]]
    perfect, empty = [], []
    for a in sub["annotations"]:
        if a["iscrowd"]:
            continue
        rle = gt.annToRLE(a)
        rle = dict(rle, counts=rle["counts"].decode() if isinstance(rle["counts"], bytes) else rle["counts"])
        perfect.append({"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"],
                        "score": 1.0, "segmentation": rle})
        h, w = rle["size"]
        from pycocotools.mask import encode
        z = encode(np.zeros((h, w, 1), np.uint8, order="F"))[0]
        empty.append(dict(perfect[-1], segmentation=dict(z, counts=z["counts"].decode())))
    assert score_coco(ann, perfect, ids, iou_type="segm")["metrics"]["AP"] == pytest.approx(1.0)
    assert score_coco(ann, empty, ids, iou_type="segm")["metrics"]["AP"] == pytest.approx(0.0)
    assert score_coco(ann, perfect, ids, iou_type="bbox")["metrics"]["AP"] == pytest.approx(1.0)


def test_masks_to_original_geometry():
    """A 40x40 letterboxed input holding a 40x20 image (pad 10 left/right, ratio 0.5) -> 80x40 original;
    a block of rows 10..19, columns 14..23 (input) maps to rows 20..39, columns 8..27 (original)."""
    from zooport.postprocess.yolov5_seg import masks_to_original

    m = torch.zeros(2, 40, 40)
    m[0, 10:20, 14:24] = 1
    out = masks_to_original(m, ((0.5, 0.5), (10.0, 0.0)), (80, 40))
    assert out.shape == (2, 80, 40) and out.dtype == np.uint8
    ys, xs = np.nonzero(out[0])
    assert abs(ys.min() - 20) <= 1 and abs(ys.max() - 39) <= 1 and abs(xs.min() - 8) <= 1 and abs(xs.max() - 27) <= 1
    assert out[1].sum() == 0 and set(np.unique(out[0])) <= {0, 1}
    many = masks_to_original(torch.ones(131, 40, 40), ((0.5, 0.5), (10.0, 0.0)), (80, 40))  # > 128 channels
    assert many.shape == (131, 80, 40) and many.all()


@pytest.mark.slow
def test_verify_segmentation_on_coco_tiny(tmp_path):
    import zooport
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from zooport.eval.segm import verify_segmentation

    ann, sub = _coco_subset(tmp_path, 4)
    m = zooport.load_yolov5(asset(f"{MORE}/yolov5n-seg/yolov5n-seg.pt"))
    r = verify_segmentation(m, asset("coco-tiny/val2017"), ann, imgsz=320, batch=2, keep_results=True)
    assert {"bbox_AP", "segm_AP", "bbox_AP50", "segm_AP50"} <= set(r["metrics"])
    assert r["images"] == 4 and r["settings"]["iou"] == 0.6
    res = r["results"]
    assert res, "the random-prior model still yields candidates at conf 0.001"
    sizes = {i["id"]: (i["height"], i["width"]) for i in sub["images"]}
    for d in res[:50]:
        mk = mask_utils.decode(d["segmentation"])
        assert mk.shape == sizes[d["image_id"]]
        ys, xs = np.nonzero(mk)
        if len(ys):  # cropped to its box (in original pixels, up to the resize's one-pixel spread)
            x, y, w, h = d["bbox"]
            assert xs.min() >= x - 2 and xs.max() <= x + w + 2 and ys.min() >= y - 2 and ys.max() <= y + h + 2
    gt = COCO(str(ann))
    for kind in ("bbox", "segm"):
        ev = COCOeval(gt, gt.loadRes(res), kind)
        ev.params.imgIds = sorted(sizes)
        ev.evaluate(), ev.accumulate(), ev.summarize()
        assert r["metrics"][f"{kind}_AP"] == pytest.approx(float(ev.stats[0]))
        assert r["metrics"][f"{kind}_AP50"] == pytest.approx(float(ev.stats[1]))


@pytest.mark.slow
def test_verify_classifier_topk_on_image_folder(tmp_path):
    """An ImageFolder of coco-tiny images under three ImageNet class names; top-1/top-5 against the test's
    own ranking of the model's logits."""
    import zooport
    from zooport.eval.classify import classify_input, verify_classifier
    from zooport.eval.data import read_image

    m = zooport.load_yolov5(asset(f"{MORE}/yolov5n-cls/yolov5n-cls.pt"))
    imgs = sorted(asset("coco-tiny/val2017").glob("*.jpg"))[:9]
    classes = [m.names[465], m.names[3], m.names[0]]
    for k, p in enumerate(imgs):
        d = tmp_path / "folder" / classes[k % 3]
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, d / p.name)
    r = verify_classifier(m, tmp_path / "folder", batch=4)
    assert r["n"] == 9 and r["classes"] == sorted(classes)
    # independent: per image, logits of the model on its own input, ranking done here
    index = {n: i for i, n in enumerate(m.names)}
    hits1 = hits5 = 0
    for c in sorted(classes):
        for p in sorted((tmp_path / "folder" / c).iterdir()):
            x = torch.from_numpy(classify_input(read_image(p), m.preprocess))[None]
            with torch.no_grad():
                lg = m(x)[0].numpy()
            top = [int(i) for i in np.argsort(-lg)[:5]]
            hits1 += top[0] == index[c]
            hits5 += index[c] in top
    assert r["top1"] == pytest.approx(hits1 / 9) and r["top5"] == pytest.approx(hits5 / 9)
    # a folder naming no model class is an error, unless mapped
    (tmp_path / "folder" / "not-a-class").mkdir()
    shutil.copy(imgs[0], tmp_path / "folder" / "not-a-class" / "x.jpg")
    with pytest.raises(zooport.DatasetError, match="not-a-class"):
        verify_classifier(m, tmp_path / "folder")
    r2 = verify_classifier(m, tmp_path / "folder", class_map={"not-a-class": 7})
    assert r2["n"] == 10


@pytest.mark.slow
def test_cli_verify_seg_and_cls(tmp_path):
    import subprocess
    import sys

    ann, _ = _coco_subset(tmp_path, 2)
    out = tmp_path / "seg.json"
    r = subprocess.run([sys.executable, "-m", "zooport", "verify", str(asset(f"{MORE}/yolov5n-seg/yolov5n-seg.pt")),
                        "--coco", str(asset("coco-tiny/val2017")), "--ann", str(ann), "--imgsz", "320",
                        "--json", str(out), "--no-progress"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(out.read_text())
    assert "segm_AP" in res["metrics"] and "bbox_AP" in res["metrics"] and "segm_AP" in r.stdout
    folder = tmp_path / "folder" / "tench"
    folder.mkdir(parents=True)
    shutil.copy(asset("zoo/images/bus.jpg"), folder / "bus.jpg")
    cls = str(asset(f"{MORE}/yolov5n-cls/yolov5n-cls.pt"))
    r = subprocess.run([sys.executable, "-m", "zooport", "verify", cls, "--folder", str(tmp_path / "folder")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "top1 0.0000  top5 0.0000" in r.stdout, r.stderr[-2000:]  # bus is not a tench
    r = subprocess.run([sys.executable, "-m", "zooport", "verify", cls, "--coco", str(asset("coco-tiny/val2017"))],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 2 and "--folder" in r.stderr and "Traceback" not in r.stderr


def test_detection_verify_refuses_cls_and_routes_seg(tmp_path):
    import zooport

    cls = zooport.create_yolov5("yolov5n-cls", num_classes=3)
    with pytest.raises(zooport.UsageError, match="verify_classifier"):
        zooport.verify(cls, coco=asset("coco-tiny/val2017"), progress=False)
    seg = zooport.create_yolov5("yolov5n-seg")
    with pytest.raises(zooport.UsageError, match="verify_segmentation"):
        zooport.verify(seg, coco=asset("coco-tiny/val2017"), shard=(0, 2), progress=False)
