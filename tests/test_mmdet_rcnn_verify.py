"""``zooport verify`` on a two-stage golden model over coco-tiny: MMDetection preprocessing, test_cfg
post-processing, and the same score as scoring the model's own ``predict`` outputs directly."""
from __future__ import annotations

import json

import pytest
import torch
from helpers import asset, formula_state_dict, torch_threads

from zooport.errors import UsageError


@pytest.fixture(scope="module")
def rcnn_ckpt(tmp_path_factory):
    """pipeline_faster_rcnn's weights (calibrated on normalised input) in an MMDetection checkpoint whose
    meta carries the config (with a smaller test Resize, to keep the run short)."""
    from zooport.parsers.mmdet.config import to_python_text

    folder = asset("golden/mmdet-more/pipeline_faster_rcnn")
    line2 = (folder / "index.txt").read_text().splitlines()[1].split()
    sd = formula_state_dict(folder / "keys.tsv", int(line2[line2.index("seed") + 1]))
    cfg = {"model": json.loads((folder / "config.json").read_text()),
           "test_pipeline": [{"type": "LoadImageFromFile"}, {"type": "Resize", "scale": (400, 300), "keep_ratio": True},
                             {"type": "PackDetInputs"}]}
    path = tmp_path_factory.mktemp("verify") / "faster_rcnn_pipeline.pth"
    torch.save({"meta": {"cfg": to_python_text(cfg)}, "state_dict": sd}, path)
    return path


@pytest.fixture
def one_thread():
    """Small per-RoI ops run ~5x slower with 2 intra-op threads on the shared 2-core machine; the
    pipeline, not the speed, is under test here."""
    with torch_threads(1):
        yield


@pytest.mark.slow
def test_verify_cli_equals_scoring_predict(rcnn_ckpt, tmp_path, one_thread):
    from zooport.cli.main import main
    from zooport.eval import shard as _shard
    from zooport.eval.data import load_dataset, read_image
    from zooport.eval.preprocess import preprocess_mmdet
    from zooport.loading import load_model

    coco = asset("coco-tiny/val2017")
    out = tmp_path / "res.json"
    assert main(["verify", str(rcnn_ckpt), "--coco", str(coco), "--json", str(out), "--no-progress"]) == 0
    res = json.loads(out.read_text())
    assert res["settings"]["preprocess"] == "mmdet" and res["settings"]["postprocess"] == "mmdet"
    model = load_model(str(rcnn_ckpt))
    assert model.preprocess["resize_scale"] == [400, 300]
    ds = load_dataset(coco=coco)
    direct = {}
    for rec in ds.images:
        x, info = preprocess_mmdet(read_image(rec.path), model.preprocess)
        d = model.predict(torch.from_numpy(x[None]), img_hw=info["img_shape"], scale_factor=info["scale_factor"])
        direct[rec.key] = d[0].numpy().reshape(-1, 6)
    assert sum(len(v) for v in direct.values()) > 0
    info = {"family": "mmdet", "sha256": None, "names": list(model.names)}
    ref = _shard.score(ds, direct, info, res["settings"], [])
    assert res["images"] == len(ds.images) == 80
    for k, v in ref["metrics"].items():
        assert res["metrics"][k] == pytest.approx(v, abs=1e-12), k


def test_two_stage_needs_mmdet_mode(rcnn_ckpt):
    from zooport.eval.verify import _settings
    from zooport.loading import load_model

    model = load_model(str(rcnn_ckpt))
    with pytest.raises(UsageError, match="mmdet"):
        _settings(model, "letterbox", None, None, 1, None, None, 300, "torch", None, True, None)
    with pytest.raises(UsageError, match="backend 'torch'"):  # test_cfg is not in the ONNX graph
        _settings(model, None, None, None, 1, None, None, 300, "onnxruntime", None, True, None)
    st = _settings(model, None, None, None, 1, None, None, 300, "torch", None, True, None)
    assert st["preprocess"] == "mmdet" and st["postprocess"] == "mmdet"
    assert st["iou"] is None and st["conf"] is None  # None: the model's own test_cfg values
