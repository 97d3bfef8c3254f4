"""verify: an --imgsz the network cannot take is rounded up to the model's max stride, with one warning line."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import zooport
from zooport.cli.main import main

NAMES = Path(zooport.__file__).resolve().parent / "cfgs" / "darknet" / "coco.names"


def test_cli_rounds_imgsz_up_with_one_warning_line(tmp_path, capsys):
    from eval_fake import make_voc_tree

    m = zooport.create_yolov5("yolov5n", num_classes=80)
    zooport.save_native(m, tmp_path / "m.pt")
    voc = make_voc_tree(tmp_path / "voc")
    rc = main(["verify", str(tmp_path / "m.pt"), "--voc", str(voc), "--imgsz", "100", "--names", str(NAMES),
               "--class-map", "coco-voc", "--backend", "torch", "--quiet", "--json", str(tmp_path / "r.json")])
    assert rc == 0
    err = capsys.readouterr().err.splitlines()
    assert "zooport: warning: imgsz 100 is not a multiple of the model's max stride 32; using 128" in err
    assert json.loads((tmp_path / "r.json").read_text())["settings"]["imgsz"] == 128


def test_python_api_warns_with_zooport_warning():
    from zooport.errors import ZooportWarning
    from zooport.eval.verify import _round_to_stride

    with pytest.warns(ZooportWarning, match="using 64 96"):
        assert _round_to_stride([50, 70], 32) == [64, 96]
    assert _round_to_stride(640, 32) == 640
