"""TF-SAME padding where an MMDetection config declares it: ``conv_cfg=dict(type="Conv2dAdaptivePadding")``
(mmcv's TensorFlow-"SAME" conv) in the FPN and the head's stacked convs builds
:class:`~zooport.model_defs.same_padding.Conv2dSame`.

Independent check: the stride-2 extra FPN convs of FCOS at a 256 input see 8x8 and 4x4 maps, where TF pads
(0, 1) on each axis (out = ceil(8/2) = 4, pad = (4-1)*2 + 3 - 8 = 1, all of it after) instead of PyTorch's
symmetric (1, 1); the stride-1 3x3 convs pad (1, 1) either way. Expected values are recomputed here with
F.pad + F.conv2d from the captured inputs.
"""
from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F

from helpers import assert_close, asset, read_f32


def _models():
    from zooport.converters.mmdet.load import load_mmdet

    folder = asset("golden/mmdet/fcos_r18s_fpn")
    cfg = json.loads((folder / "config.json").read_text())
    same = copy.deepcopy(cfg)
    same["neck"]["conv_cfg"] = {"type": "Conv2dAdaptivePadding"}
    same["bbox_head"]["conv_cfg"] = {"type": "Conv2dAdaptivePadding"}
    plain = load_mmdet(folder / "fcos_r18s_fpn.pth", folder / "config.json")
    tf = load_mmdet(folder / "fcos_r18s_fpn.pth", same)
    x = torch.from_numpy(read_f32(asset("golden/mmdet/input_bus_256.f32"), (1, 3, 256, 256)).copy())
    return plain, tf, x


def _capture(module, store, key):
    return module.register_forward_hook(lambda m, inp, out: store.__setitem__(key, (inp[0].detach(), out.detach())))


def test_same_padding_in_fpn_and_head_matches_tf_rule():
    from zooport.model_defs.same_padding import Conv2dSame

    plain, tf, x = _models()
    extra_tf = [m.conv for m in tf.neck.fpn_convs[3:]]
    assert len(extra_tf) == 2 and all(isinstance(c, Conv2dSame) for c in extra_tf)
    assert all(isinstance(m.conv, Conv2dSame) for m in tf.bbox_head.cls_convs)
    got = {}
    hooks = [_capture(c, got, i) for i, c in enumerate(extra_tf)]
    with torch.no_grad():
        out_plain, out_tf = plain.raw(x), tf.raw(x)
    for h in hooks:
        h.remove()
    for i, c in enumerate(extra_tf):
        inp, out = got[i]
        assert inp.shape[-1] == (8, 4)[i]
        with torch.no_grad():  # TF: nothing before, 1 after; PyTorch-style symmetric for contrast
            expected = F.conv2d(F.pad(inp, (0, 1, 0, 1)), c.weight, c.bias, stride=2)
            symmetric = F.conv2d(inp, c.weight, c.bias, stride=2, padding=1)
        assert_close(out, expected.numpy(), rel=1e-5, what=f"extra conv {i}")
        assert float((out - symmetric).abs().max()) > 1e-3  # the two paddings really differ here
    # levels 0-2 (strides 8/16/32) see only stride-1 convs: identical; levels 3-4 come from the extra convs
    for g in range(3):
        for lvl in range(5):
            diff = float((out_plain[g][lvl] - out_tf[g][lvl]).abs().max())
            assert (diff == 0.0) if lvl < 3 else (diff > 1e-4), (g, lvl, diff)


@pytest.mark.slow
def test_fused_and_onnx_keep_same_padding(tmp_path):
    import onnxruntime as ort

    import zooport
    from zooport.model_defs.same_padding import Conv2dSame

    _plain, tf, x = _models()
    with torch.no_grad():
        ref = tf(x)
        fused = copy.deepcopy(tf).fuse()
        assert isinstance(fused.neck.fpn_convs[3].conv, Conv2dSame)
        assert_close(fused(x), ref.numpy(), rel=1e-5, what="fused")
    for dynamic in (False, True):
        path = tmp_path / f"same_{dynamic}.onnx"
        zooport.export_onnx(tf, path, imgsz=256, dynamic=dynamic)
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        out = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
        assert_close(out, ref.numpy(), rel=1e-4, what=f"onnx dynamic={dynamic}")


def test_unknown_conv_cfg_is_rejected():
    """A conv_cfg zooport does not build is a ConfigError naming it, before any weights are read (no asset)."""
    from zooport.converters.mmdet.load import build_model
    from zooport.errors import ConfigError

    neck = {"type": "FPN", "in_channels": [8, 16], "out_channels": 8, "num_outs": 2, "conv_cfg": {"type": "DCNv2"}}
    with pytest.raises(ConfigError, match="conv_cfg type 'DCNv2'"):
        build_model({"model": {"type": "RetinaNet", "backbone": {"type": "ResNet", "depth": 18},
                               "neck": neck, "bbox_head": {"type": "RetinaHead", "num_classes": 2,
                                                            "in_channels": 8, "anchor_generator": {
                                                                "type": "AnchorGenerator", "octave_base_scale": 4,
                                                                "scales_per_octave": 1, "ratios": [1.0],
                                                                "strides": [8, 16]}}}})
