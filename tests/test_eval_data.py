"""Bad datasets give a clear DatasetError; corrupt images stop the run unless skip_bad."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from eval_fake import IMAGES, NAMES, TABLE, TableDetector, make_voc_tree, write_image
from zooport.errors import DatasetError, ZooportError
from zooport.eval.data import BadImage, load_coco, load_voc
from zooport.eval.verify import verify


def _coco_tree(root, files=("1.jpg",), listed=("1.jpg",), ann=True):
    img = root / "val2017"
    img.mkdir(parents=True)
    for i, f in enumerate(files):
        write_image(img / f, i, 32, 24)
    if ann:
        (root / "annotations").mkdir()
        data = {"images": [{"id": i + 1, "file_name": f, "width": 32, "height": 24} for i, f in enumerate(listed)],
                "annotations": [], "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]}
        (root / "annotations" / "instances_val2017.json").write_text(json.dumps(data))
    return img


def test_coco_layouts(tmp_path):
    img = _coco_tree(tmp_path)
    for arg in (img, tmp_path):  # val2017/ or the dataset root
        ds = load_coco(arg)
        assert ds.ann_file.name == "instances_val2017.json" and [r.key for r in ds.images] == [1]
    ds = load_coco(img, tmp_path / "annotations" / "instances_val2017.json")
    assert ds.names == ["cat", "dog"] and ds.cat_ids == [1, 2]


def test_coco_missing_annotation_file(tmp_path):
    img = _coco_tree(tmp_path, ann=False)
    with pytest.raises(DatasetError, match="annotation file"):
        load_coco(img)
    with pytest.raises(DatasetError, match="nope.json"):
        load_coco(img, tmp_path / "nope.json")


def test_coco_image_listed_but_absent(tmp_path):
    img = _coco_tree(tmp_path, listed=("1.jpg", "2.jpg"))
    with pytest.raises(DatasetError, match=r"2\.jpg.*missing"):
        load_coco(img)


def test_voc_missing_annotation_and_image(tmp_path):
    root = make_voc_tree(tmp_path / "a", split_ids=["img0", "ghost"])
    with pytest.raises(DatasetError, match=r"ghost.*annotation.*missing"):
        load_voc(root)
    root = make_voc_tree(tmp_path / "b")
    (root / "VOC2007" / "JPEGImages" / "img2.jpg").unlink()
    with pytest.raises(DatasetError, match=r"img2.*missing"):
        load_voc(root)


def test_voc_xml_without_size(tmp_path):
    root = make_voc_tree(tmp_path, skip_size=("img1",))
    with pytest.raises(DatasetError, match=r"img1\.xml.*size"):
        load_voc(root)


def test_voc_empty_split_and_missing_split(tmp_path):
    root = make_voc_tree(tmp_path, split_ids=[])
    with pytest.raises(DatasetError, match="lists no images"):
        load_voc(root)
    with pytest.raises(DatasetError, match="val.txt"):
        load_voc(root, split="val")


def test_voc_malformed_xml(tmp_path):
    root = make_voc_tree(tmp_path)
    (root / "VOC2007" / "Annotations" / "img0.xml").write_text("<annotation><size>")
    with pytest.raises(DatasetError, match=r"img0\.xml.*malformed"):
        load_voc(root)


@pytest.fixture()
def corrupt_tree(tmp_path):
    root = make_voc_tree(tmp_path)
    (root / "VOC2007" / "JPEGImages" / "img1.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return root


def test_corrupt_image_stops_the_run(corrupt_tree):
    with pytest.raises(BadImage, match=r"img1\.jpg.*corrupt"):
        verify(TableDetector(NAMES, TABLE), voc=corrupt_tree, progress=False)


def test_corrupt_image_skipped_with_skip_bad(corrupt_tree):
    # img1 left out: cat npos 1 (.9 TP, .7 FP -> AP 1), dog npos 2 (.8 TP, .6 TP -> AP 1)
    res = verify(TableDetector(NAMES, TABLE), voc=corrupt_tree, skip_bad=True, progress=False)
    assert [s["image"] for s in res["skipped"]] == ["img1"]
    assert "corrupt" in res["skipped"][0]["error"]
    assert res["images"] == len(IMAGES) - 1
    assert res["metrics"]["mAP_voc10"] == pytest.approx(1.0)
    assert res["metrics"]["mAP_voc07"] == pytest.approx(1.0)


def test_class_names_must_match(tmp_path):
    root = make_voc_tree(tmp_path)
    with pytest.raises(ZooportError, match="class"):
        verify(TableDetector(["x", "y"], TABLE), voc=root, progress=False)
    bad = tmp_path / "map.yaml"
    bad.write_text("x: [unclosed\n")
    with pytest.raises(ZooportError, match="map.yaml"):
        verify(TableDetector(["x", "y"], TABLE), voc=root, class_map=bad, progress=False)
    good = tmp_path / "good.yaml"
    good.write_text("x: cat\ny: dog\n")
    res = verify(TableDetector(["x", "y"], TABLE), voc=root, class_map=good, progress=False)
    assert res["metrics"]["mAP_voc10"] == pytest.approx(0.75)


@pytest.mark.slow
def test_cli_bad_dataset_exits_2_without_output(tmp_path):
    out = tmp_path / "out.json"
    img = _coco_tree(tmp_path, ann=False)
    (tmp_path / "m.pt").write_bytes(b"x")  # present (arguments pass), never read: the dataset fails first
    p = subprocess.run([sys.executable, "-m", "zooport", "verify", str(tmp_path / "m.pt"), "--coco", str(img),
                        "--json", str(out)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr
    assert "annotation" in p.stderr and "Traceback" not in p.stderr
    assert not out.exists()


def test_expect_compares_with_manifest_metrics():
    from zooport.cli.verify import check_expect

    res = {"dataset": {"kind": "coco", "root": "/data/coco-tiny/val2017"},
           "metrics": {"AP": 0.1478, "AP50": 0.2777, "AP75": 0.1586, "AR100": 0.2}}
    assert check_expect(res, "yolov3-tiny", 0.005) == []
    res["metrics"]["AP50"] = 0.2777 + 0.006
    fails = check_expect(res, "yolov3-tiny", 0.005)
    assert len(fails) == 1 and "AP50" in fails[0]
    res["dataset"]["root"] = "/data/elsewhere/val2017"
    with pytest.raises(ZooportError, match="no metrics for this dataset"):
        check_expect(res, "yolov3-tiny", 0.005, "nonexistent-key")
