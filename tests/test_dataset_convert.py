"""zooport dataset convert: voc2coco / coco2voc / yolo2coco / coco2yolo."""
from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import asset

from zooport.cli.main import main
from zooport.datasets.convert import coco_as_voc_objects, convert
from zooport.datasets.formats import read_coco
from zooport.errors import DatasetError


def _by_key(coco):
    ims = {im["id"]: im["file_name"] for im in coco["images"]}
    cats = {c["id"]: c["name"] for c in coco["categories"]}
    out = {}
    for a in coco["annotations"]:
        out.setdefault(ims[a["image_id"]], []).append((cats[a["category_id"]], a["bbox"], a["iscrowd"]))
    return out


def test_coco_voc_coco_roundtrip_real(tmp_path):
    src = asset("coco-tiny/annotations/instances_val2017.json")
    convert("coco2voc", asset("coco-tiny/val2017"), tmp_path / "voc", images="none")
    convert("voc2coco", tmp_path / "voc", tmp_path / "back.json")
    a, b = json.loads(src.read_text()), json.loads((tmp_path / "back.json").read_text())
    assert sorted(c["id"] for c in a["categories"]) == sorted(c["id"] for c in b["categories"])
    assert {c["id"]: c["name"] for c in a["categories"]} == {c["id"]: c["name"] for c in b["categories"]}
    assert sorted(im["id"] for im in a["images"]) == sorted(im["id"] for im in b["images"])
    ka, kb = _by_key(a), _by_key(b)
    assert ka.keys() == kb.keys() and sum(map(len, kb.values())) == 815
    worst = 0.0
    for k in ka:
        assert [(n, c) for n, _, c in ka[k]] == [(n, c) for n, _, c in kb[k]]  # every class, in order
        for (_, ba, _), (_, bb, _) in zip(ka[k], kb[k]):
            xa = np.array([ba[0], ba[1], ba[0] + ba[2], ba[1] + ba[3]])
            xb = np.array([bb[0], bb[1], bb[0] + bb[2], bb[1] + bb[3]])
            worst = max(worst, float(np.abs(xa - xb).max()))
    assert worst <= 1.0, worst


def test_voc_boxes_by_hand(tmp_path):
    """A hand-written COCO json -> VOC XML values by the 1-based inclusive rule, and back."""
    coco = {"images": [{"id": 7, "file_name": "7.jpg", "width": 100, "height": 80}],
            "annotations": [{"id": 1, "image_id": 7, "category_id": 3, "bbox": [10.4, 5.6, 20.2, 30.0], "iscrowd": 1},
                            {"id": 2, "image_id": 7, "category_id": 5, "bbox": [0, 0, 100, 80], "iscrowd": 0}],
            "categories": [{"id": 3, "name": "cat"}, {"id": 5, "name": "dog"}]}
    (tmp_path / "a.json").write_text(json.dumps(coco))
    convert("coco2voc", tmp_path / "a.json", tmp_path / "voc", images="none")
    xml = (tmp_path / "voc/VOC2007/Annotations/7.xml").read_text()
    # x 10.4 -> xmin 11, x + w 30.6 -> xmax 31; y 5.6 -> 7, 35.6 -> 36
    assert "<xmin>11</xmin>" in xml and "<xmax>31</xmax>" in xml and "<ymin>7</ymin>" in xml and "<ymax>36</ymax>" in xml
    assert "<difficult>1</difficult>" in xml and "<xmin>1</xmin>" in xml and "<xmax>100</xmax>" in xml
    assert (tmp_path / "voc/VOC2007/ImageSets/Main/val.txt").read_text() == "7\n"
    convert("voc2coco", tmp_path / "voc", tmp_path / "b.json")
    b = json.loads((tmp_path / "b.json").read_text())
    assert b["annotations"][0]["bbox"] == [10.0, 6.0, 21.0, 30.0] and b["annotations"][0]["iscrowd"] == 1
    assert b["annotations"][1]["bbox"] == [0.0, 0.0, 100.0, 80.0] and b["annotations"][1]["category_id"] == 5
    assert b["images"][0]["id"] == 7


def test_coco_yolo_coco(tmp_path):
    import cv2

    (tmp_path / "img").mkdir()
    cv2.imwrite(str(tmp_path / "img" / "a.png"), np.zeros((40, 60, 3), np.uint8))
    coco = {"images": [{"id": 1, "file_name": "a.png", "width": 60, "height": 40}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 9, "bbox": [6, 4, 30, 20], "iscrowd": 0},
                            {"id": 2, "image_id": 1, "category_id": 2, "bbox": [0, 0, 6, 4], "iscrowd": 1}],
            "categories": [{"id": 9, "name": "b"}, {"id": 2, "name": "a"}]}
    (tmp_path / "a.json").write_text(json.dumps(coco))
    convert("coco2yolo", tmp_path / "img", tmp_path / "y", ann=tmp_path / "a.json", images="copy")
    assert (tmp_path / "y/labels/a.txt").read_text() == "1 0.350000 0.350000 0.500000 0.500000\n"  # crowd dropped
    assert (tmp_path / "y/names.txt").read_text() == "a\nb\n"
    convert("yolo2coco", tmp_path / "y", tmp_path / "c")
    c = read_coco(tmp_path / "c/annotations/instances_val.json")
    assert [a["bbox"] for a in c["annotations"]] == [pytest.approx([6, 4, 30, 20])]
    assert c["categories"][c["annotations"][0]["category_id"] - 1]["name"] == "b"
    assert (tmp_path / "c/val/a.png").is_file()


def test_errors_name_file_and_element(tmp_path, capsys):
    bad = {"images": [{"id": 1, "file_name": "a.jpg", "width": 9, "height": 9}],
           "annotations": [{"id": 4, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3]}],
           "categories": [{"id": 1, "name": "x"}]}
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(DatasetError, match=r"bad\.json: annotations\[0\] \(id 4\): bbox"):
        convert("coco2voc", tmp_path / "bad.json", tmp_path / "o", images="none")
    bad["annotations"][0].update(bbox=[1, 2, 3, 4], category_id=5)
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(DatasetError, match=r"annotations\[0\].*category_id 5"):
        convert("coco2yolo", tmp_path / "bad.json", tmp_path / "o", images="none")
    voc = tmp_path / "v" / "VOC2007" / "Annotations"
    voc.mkdir(parents=True)
    (voc / "x.xml").write_text("<annotation><size><width>9</width><height>9</height></size><object><name>a</name>"
                               "<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>q</xmax><ymax>3</ymax></bndbox></object>"
                               "</annotation>")
    assert main(["dataset", "convert", "voc2coco", str(tmp_path / "v"), str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "x.xml" in err and "object 0" in err
    (tmp_path / "y" / "images").mkdir(parents=True)
    import cv2

    cv2.imwrite(str(tmp_path / "y/images/i.png"), np.zeros((4, 4, 3), np.uint8))
    (tmp_path / "y/labels").mkdir()
    (tmp_path / "y/labels/i.txt").write_text("0 0.5 0.5 0.1 0.1\n0 0.5 oops\n")
    (tmp_path / "y/names.txt").write_text("a\n")
    with pytest.raises(DatasetError, match=r"i\.txt:2"):
        convert("yolo2coco", tmp_path / "y", tmp_path / "o2")
    assert main(["dataset", "convert", "voc2coco", str(tmp_path / "missing"), str(tmp_path / "o")]) == 2


@pytest.mark.slow
def test_voc_to_coco_scores_the_same_voc_map(tmp_path):
    """coco-tiny-voc -> COCO -> verify: the VOC mAP from the converted tree equals scoring the VOC tree."""
    import zooport
    from zooport.eval.data import load_coco
    from zooport.eval.score import score

    model = zooport.load([str(asset("zoo/darknet/yolov3-tiny.cfg")), str(asset("zoo/darknet/yolov3-tiny.weights"))],
                         names=str(asset("zoo/darknet/coco.names")))
    direct = zooport.verify(model, voc=asset("coco-tiny-voc"), class_map="coco-voc", progress=False,
                            keep_detections=True)
    r = convert("voc2coco", asset("coco-tiny-voc"), tmp_path / "coco", split="test")
    assert r["images"] == 80 and r["categories"] == 20
    ds = load_coco(tmp_path / "coco" / "test")  # the verifier's own reader takes the converted tree
    assert len(ds.images) == 80 and len(ds.names) == 20
    # The same detections, scored by the verifier's scorer against the ground truth of the COCO json
    coco = read_coco(tmp_path / "coco" / "annotations" / "instances_test.json")
    stem = {im["id"]: im["file_name"].rsplit(".", 1)[0] for im in coco["images"]}
    ds.kind, ds.objects = "voc", coco_as_voc_objects(coco)
    ds.names = sorted({o["name"] for objs in ds.objects.values() for o in objs})
    for rec in ds.images:
        rec.key = stem[rec.key]
    res = score(ds, direct["per_image"], {"names": list(model.names)}, direct["settings"], [])
    for k in ("mAP_voc07", "mAP_voc10"):
        assert res["metrics"][k] == pytest.approx(direct["metrics"][k], abs=1e-12), k
    assert abs(direct["metrics"]["mAP_voc07"] - 0.3441) < 0.01  # the shared README's reference
