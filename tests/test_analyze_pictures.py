"""zooport analyze loss focal / features / assign (CLI)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from zooport.cli.main import main


def test_focal_against_closed_form():
    from zooport.analysis.losses import focal_curves

    c = focal_curves(0.25, (0.0, 2.0, 5.0), n=51)
    p = np.asarray(c["p_t"])
    assert np.allclose(c["ce"]["loss"], -np.log(p), atol=1e-12)
    assert np.allclose(c["ce"]["grad"], p - 1, atol=1e-12)  # d CE / dz = p - 1 for a positive target
    for g, cur in c["focal"].items():
        loss = -0.25 * (1 - p) ** g * np.log(p)
        grad = 0.25 * (1 - p) ** g * (g * p * np.log(p) + p - 1)
        assert np.allclose(cur["loss"], loss, atol=1e-12) and np.allclose(cur["grad"], grad, atol=1e-12), g
    assert np.allclose(c["focal"][0.0]["loss"], 0.25 * -np.log(p))  # gamma 0: alpha-weighted CE


@pytest.mark.slow  # matplotlib import
def test_loss_cli(tmp_path):
    import cv2

    assert main(["analyze", "loss", "focal", "--alpha", "0.5", "--gamma", "1", "2", "-o", str(tmp_path / "f.png"),
                 "--json", str(tmp_path / "f.json")]) == 0
    assert cv2.imread(str(tmp_path / "f.png")) is not None
    assert set(json.loads((tmp_path / "f.json").read_text())["focal"]) == {"1.0", "2.0"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    import torch

    import zooport

    torch.manual_seed(0)
    p = tmp_path_factory.mktemp("m") / "t.pt"
    zooport.save_native(zooport.create_yolov5("yolov5n", num_classes=2).eval(), p)
    return p


def test_features_cli(tmp_path, tiny, capsys):
    import cv2

    cv2.imwrite(str(tmp_path / "i.png"), np.random.default_rng(0).integers(0, 255, (50, 80, 3), dtype=np.uint8))
    assert main(["analyze", "features", str(tiny), str(tmp_path / "i.png"), "--layers", "2", "9", "-o",
                 str(tmp_path / "f"), "--imgsz", "64"]) == 0
    for k in ("2", "9"):
        im = cv2.imread(str(tmp_path / "f" / f"layer_{k}.png"))
        assert im is not None and im.shape[1] == 64  # over the network input (letterbox 64, minimal rectangle)
    assert main(["analyze", "features", str(tiny), str(tmp_path / "i.png"), "--layers", "99", "-o",
                 str(tmp_path / "g")]) == 2


def test_assign_cli(tmp_path, tiny, capsys):
    import cv2

    (tmp_path / "val").mkdir()
    cv2.imwrite(str(tmp_path / "val" / "a.jpg"), np.zeros((100, 200, 3), np.uint8))
    coco = {"images": [{"id": 3, "file_name": "a.jpg", "width": 200, "height": 100}],
            "annotations": [{"id": 1, "image_id": 3, "category_id": 1, "bbox": [20, 10, 60, 50], "iscrowd": 0}],
            "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}
    (tmp_path / "ann.json").write_text(json.dumps(coco))
    out = tmp_path / "as.png"
    assert main(["analyze", "assign", str(tiny), "--coco", str(tmp_path / "ann.json"), "--image", "3", "-o",
                 str(out), "--imgsz", "128"]) == 0
    assert "yolov5:" in capsys.readouterr().out
    im = cv2.imread(str(out))
    assert im.shape == (128, 3 * 128, 3)
    assert main(["analyze", "assign", str(tiny), "--coco", str(tmp_path / "ann.json"), "--image", "4", "-o",
                 str(out)]) == 2
