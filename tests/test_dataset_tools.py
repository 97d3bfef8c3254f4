"""zooport dataset browse / stats on a hand-made COCO dataset (and the real VOC tree when assets are set)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import asset

from zooport.cli.main import main


def _dataset(tmp_path):
    import cv2

    img = tmp_path / "val"
    img.mkdir()
    cv2.imwrite(str(img / "a.png"), np.zeros((40, 60, 3), np.uint8))
    cv2.imwrite(str(img / "b.png"), np.zeros((30, 30, 3), np.uint8))
    (img / "c.png").write_bytes(b"broken")
    coco = {"images": [{"id": 1, "file_name": "a.png", "width": 60, "height": 40},
                       {"id": 2, "file_name": "b.png", "width": 30, "height": 30},
                       {"id": 3, "file_name": "c.png", "width": 30, "height": 30}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 4, "bbox": [10, 10, 20, 10], "iscrowd": 0},
                            {"id": 2, "image_id": 1, "category_id": 7, "bbox": [0, 0, 4, 16], "iscrowd": 0},
                            {"id": 3, "image_id": 2, "category_id": 4, "bbox": [5, 5, 10, 10], "iscrowd": 1}],
            "categories": [{"id": 4, "name": "cat"}, {"id": 7, "name": "dog"}]}
    (tmp_path / "ann.json").write_text(json.dumps(coco))
    return img


@pytest.mark.slow  # the first matplotlib import alone takes seconds on a busy 2-core machine
def test_stats_by_hand(tmp_path, capsys):
    import cv2

    img = _dataset(tmp_path)
    assert main(["dataset", "stats", "--coco", str(img), "--ann", str(tmp_path / "ann.json"), "-o",
                 str(tmp_path / "st")]) == 0
    st = json.loads((tmp_path / "st" / "stats.json").read_text())
    assert st["images"] == 3 and st["instances"] == 2 and st["crowd_or_difficult"] == 1
    assert st["images_without_boxes"] == 1
    assert st["per_class"] == [{"id": 4, "name": "cat", "instances": 1}, {"id": 7, "name": "dog", "instances": 1}]
    assert st["scale_groups"] == {"small": 2, "medium": 0, "large": 0}
    assert st["summary"]["aspect_ratio_h_w"]["min"] == 0.5 and st["summary"]["aspect_ratio_h_w"]["max"] == 4.0
    assert st["summary"]["area"]["max"] == 200 and st["image_sizes"] == {"30x30": 2, "60x40": 1}
    assert sum(st["histograms"]["width"]["counts"]) == 2
    for f in ("classes.png", "boxes.png", "images.png"):
        assert cv2.imread(str(tmp_path / "st" / f)) is not None


def test_browse_draws_and_skips_bad(tmp_path, capsys):
    import cv2

    from zooport.datasets.browse import CROWD_COLOR
    from zooport.inference.draw import class_color

    img = _dataset(tmp_path)
    rc = main(["dataset", "browse", "--coco", str(img), "--ann", str(tmp_path / "ann.json"), "-o", str(tmp_path / "br")])
    cap = capsys.readouterr()
    assert rc == 1 and "c.png" in cap.err and "2 images with 3 boxes" in cap.out
    a = cv2.imread(str(tmp_path / "br" / "a.jpg"))
    assert a.shape == (40, 60, 3)
    # the cat box's bottom edge (y = 20) carries class 0's colour (JPEG: approximately)
    assert np.abs(a[20, 14:26].astype(int) - np.array(class_color(0))).mean() < 40
    b = cv2.imread(str(tmp_path / "br" / "b.jpg"))
    assert np.abs(b[15, 5].astype(int) - np.array(CROWD_COLOR)).mean() < 40
    assert main(["dataset", "browse", "--coco", str(img), "--ann", str(tmp_path / "ann.json"), "-o", str(tmp_path / "b2"),
                 "--ids", "2"]) == 0
    assert sorted(p.name for p in (tmp_path / "b2").iterdir()) == ["b.jpg"]
    assert main(["dataset", "browse", "--coco", str(img), "--ann", str(tmp_path / "ann.json"), "-o", str(tmp_path / "b3"),
                 "--ids", "99"]) == 2
    assert main(["dataset", "stats", "--voc", str(tmp_path / "none"), "-o", str(tmp_path / "x")]) == 2


@pytest.mark.slow
def test_stats_real_voc(tmp_path):
    assert main(["dataset", "stats", "--voc", str(asset("coco-tiny-voc")), "-o", str(tmp_path)]) == 0
    st = json.loads((tmp_path / "stats.json").read_text())
    assert st["images"] == 80 and st["instances"] + st["crowd_or_difficult"] == 425
    assert len(st["per_class"]) == 20 and all(c["instances"] > 0 for c in st["per_class"])
