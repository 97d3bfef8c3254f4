"""YOLOv5 v7.0 classification checkpoint (golden/yolov5-more/yolov5n-cls): logits, top 5, preprocessing,
BN eps read per module, inert records for the non-module objects it pickles."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import assert_close, asset, read_f32

CLS = "golden/yolov5-more/yolov5n-cls"


@pytest.fixture(scope="module")
def cls_model():
    import zooport

    return zooport.load_yolov5(asset(f"{CLS}/yolov5n-cls.pt"))


def _top5():
    rows = [ln.split(maxsplit=4) for ln in asset(f"{CLS}/top5.txt").read_text().splitlines() if ln.strip()]
    return [int(r[1]) for r in rows], [r[4] for r in rows]


def test_cls_logits_and_top5_match_yolov5(cls_model):
    m = cls_model
    assert type(m).__name__ == "YOLOv5ClsModel" and m.family == "yolov5-cls"
    assert sum(p.numel() for p in m.parameters()) == 2493000
    assert len(m.names) == 1000 and m.input_size == [224, 224]
    from zooport.eval.classify import classify_input
    from zooport.eval.data import read_image

    # the input contract: RGB in [0, 1]; the model applies the ImageNet mean / std itself
    x = torch.from_numpy(classify_input(read_image(asset("zoo/images/bus.jpg")), m.preprocess)[None])
    assert 0 <= float(x.min()) and float(x.max()) <= 1
    with torch.no_grad():
        logits = m(x)
        assert torch.equal(m.raw(x), logits)
    assert_close(logits, read_f32(asset(f"{CLS}/logits.f32"), (1, 1000)), rel=1e-4, what="logits")
    top, names = _top5()
    assert logits.softmax(1).argsort(1, descending=True)[0, :5].tolist() == top
    assert [m.names[i] for i in top] == names


def test_cls_bn_eps_read_from_pickle(cls_model):
    bns = [mod for mod in cls_model.modules() if isinstance(mod, torch.nn.BatchNorm2d)]
    assert len(bns) == 32
    head_bn = cls_model.model[9].conv.bn
    assert head_bn.eps == pytest.approx(1e-5)
    assert all(b.eps == pytest.approx(1e-3) for b in bns if b is not head_bn)


def test_cls_preprocessing_reproduces_yolov5_input(cls_model):
    """classify_input (crop, resize, RGB, / 255) then the model's own normalisation = the tensor YOLOv5's
    classify_transforms feeds its model."""
    from zooport.eval.classify import classify_input
    from zooport.eval.data import read_image
    from zooport.model_defs.yolov5.tasks import classify_preprocess

    x = classify_input(read_image(asset("zoo/images/bus.jpg")), classify_preprocess(224))
    ref = read_f32(asset(f"{CLS}/input_224.f32"), (1, 3, 224, 224))[0]
    assert x.shape == (3, 224, 224) and x.dtype == np.float32
    seen = cls_model.input_norm(torch.from_numpy(x[None]))[0].numpy()
    assert float(np.abs(seen - ref).max()) <= 1e-5
    assert float(np.abs(x - ref).max()) > 0.5  # the [0, 1] input itself is not YOLOv5's normalised tensor


def test_cls_preprocessing_geometry_independent():
    """A synthetic 6x10 BGR image: centre crop = columns 2..7, identity resize at 6, RGB order, / 255."""
    from zooport.eval.classify import classify_input

    im = np.zeros((6, 10, 3), np.uint8)
    im[:, :, 0] = np.arange(10)[None, :] * 20  # blue encodes the column
    im[:, :, 2] = 255
    x = classify_input(im, {"size": [6, 6]})
    assert x.shape == (3, 6, 6)
    assert np.all(x[0] == 1.0)  # R = 255
    assert np.array_equal(x[2, 0], (np.arange(2, 8) * 20).astype(np.float32) / np.float32(255))  # B, columns 2..7


def test_cls_checkpoint_extra_objects_are_inert_records():
    import sys

    from zooport.parsers.pickled.allowlist import StandIn
    from zooport.parsers.pickled.reader import read_torch_zip

    before = set(sys.modules)
    top = read_torch_zip(asset(f"{CLS}/yolov5n-cls.pt"))
    new = {m.split(".")[0] for m in set(sys.modules) - before}
    assert not new & {"torchvision", "models", "utils"}, new
    opt = top["opt"]
    assert isinstance(opt["project"], StandIn) and opt["project"].foreign == "pathlib.PosixPath"
    tr = top["model"].get("transforms")
    assert isinstance(tr, StandIn) and tr.foreign == "torchvision.transforms.transforms.Compose"
    steps = tr.get("transforms")
    assert [s.foreign for s in steps] == ["utils.augmentations.CenterCrop", "utils.augmentations.ToTensor",
                                          "torchvision.transforms.transforms.Normalize"]
    assert not callable(tr) and not callable(steps[0])


def test_create_cls_matches_checkpoint_structure():
    import zooport
    from zooport.parsers.yolov5.ckpt import parse_yolov5_checkpoint

    m = zooport.create_yolov5("yolov5n-cls")
    assert type(m).__name__ == "YOLOv5ClsModel" and m.num_classes == 1000 and m.stride == [32]
    assert sum(p.numel() for p in m.parameters()) == 2493000  # README
    ck = parse_yolov5_checkpoint(asset(f"{CLS}/yolov5n-cls.pt"))
    sd = m.state_dict()
    assert set(sd) == set(ck.state_dict)
    assert all(tuple(sd[k].shape) == tuple(v.shape) for k, v in ck.state_dict.items())
    assert m.model[9].conv.bn.eps == pytest.approx(1e-5) and m.model[8].cv1.bn.eps == pytest.approx(1e-3)
    assert m.preprocess["mode"] == "center_crop" and m.input_size == [224, 224]
    m5 = zooport.create_yolov5("yolov5s-cls", num_classes=5)
    with torch.no_grad():
        assert m5.eval()(torch.rand(2, 3, 96, 64)).shape == (2, 5)


def test_nms_export_refused_for_seg_and_cls(tmp_path):
    import zooport

    for name in ("yolov5n-cls", "yolov5n-seg"):
        m = zooport.create_yolov5(name)
        with pytest.raises(zooport.UsageError, match="--nms is for detectors"):
            zooport.export_onnx(m, tmp_path / "x.onnx", nms=True)
        assert not (tmp_path / "x.onnx").exists()
