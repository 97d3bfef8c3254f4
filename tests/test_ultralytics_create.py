"""Models built from Ultralytics' detection yamls: the same architecture the pickled checkpoints show,
and parameter / operation counts equal to Ultralytics' model_info (golden/ultralytics/flops.tsv)."""
from __future__ import annotations

import csv

import pytest
import torch
from torch import nn

from helpers import asset

NAMES = ["yolov8n", "yolov8s", "yolo11n", "yolo11s"]


def _rows():
    with open(asset("golden/ultralytics/flops.tsv"), encoding="utf-8") as f:
        return {(r["model"], r["fused"]): r for r in csv.DictReader(f, delimiter="\t")}


def _counts(m, s=32):
    """thop-style counts at s x s: conv MACs (out elements x cin/groups x kernel area), BN input
    elements, attention matmul MACs (out elements x contracted length)."""
    from zooport.model_defs.ultralytics.blocks import Attention

    tot = {"conv": 0, "bn": 0, "matmul": 0}
    hooks = []
    for mod in m.modules():
        if isinstance(mod, nn.Conv2d):
            hooks.append(mod.register_forward_hook(lambda md, i, o: tot.__setitem__(
                "conv", tot["conv"] + o.numel() * md.in_channels // md.groups * md.kernel_size[0] * md.kernel_size[1])))
        elif isinstance(mod, nn.BatchNorm2d):
            hooks.append(mod.register_forward_hook(lambda md, i, o: tot.__setitem__("bn", tot["bn"] + i[0].numel())))
        elif isinstance(mod, Attention):
            def at(md, i, o):
                b, c, h, w = i[0].shape
                n = h * w
                # (q^T k): (B, heads, N, N) x key_dim; (v attn^T): (B, heads, head_dim, N) x N
                tot["matmul"] += b * md.num_heads * (n * n * md.key_dim + md.head_dim * n * n)
            hooks.append(mod.register_forward_hook(at))
    with torch.no_grad():
        m.eval()(torch.zeros(1, 3, s, s))  # the decode too: thop counts the DFL conv
    for h in hooks:
        h.remove()
    return tot


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_counts_equal_model_info(name):
    from zooport.model_defs.ultralytics.build import create_ultralytics

    rows = _rows()
    m = create_ultralytics(name)
    assert m.stride == [8, 16, 32]
    r0, r1 = rows[(name, "0")], rows[(name, "1")]
    assert sum(p.numel() for p in m.parameters()) == int(r0["parameters"])
    assert sum(p.numel() for p in m.parameters() if p.requires_grad) == int(r0["gradients"])
    c = _counts(m)
    assert (c["conv"], c["bn"], c["matmul"]) == (int(r0["conv_macs_at_profile_size"]),
                                                int(r0["bn_elements_at_profile_size"]),
                                                int(r0["matmul_macs_at_profile_size"]))
    gflops = 2 * (c["conv"] + 4 * c["bn"] + c["matmul"]) / 1e9 * (640 / 32) ** 2
    assert gflops == pytest.approx(float(r0["gflops"]), rel=1e-12)
    m.fuse()
    assert sum(p.numel() for p in m.parameters()) == int(r1["parameters"])
    assert _counts(m)["bn"] == 0


@pytest.mark.parametrize("name", ["yolov8n", "yolo11n"])
def test_yaml_arch_equals_pickled_tree(name):
    from zooport.model_defs.ultralytics.build import arch_from_yaml, load_cfg
    from zooport.parsers.ultralytics.ckpt import parse_ultralytics_checkpoint

    ck = parse_ultralytics_checkpoint(asset(f"golden/ultralytics/{name}/{name}.pt"))
    assert arch_from_yaml(*load_cfg(name))["layers"] == ck.arch["layers"]


def test_create_detect_bias_init_and_unknown_name():
    import math

    from zooport.errors import UsageError
    from zooport.model_defs.ultralytics.build import create_ultralytics

    m = create_ultralytics("yolo11n", nc=3, names=["a", "b", "c"])
    assert m.names == ["a", "b", "c"] and m.detect.head == "v11" and m.detect.cv3[0][-1].out_channels == 3
    assert torch.all(m.detect.cv2[0][-1].bias == 1.0)
    assert m.detect.cv3[2][-1].bias[0].item() == pytest.approx(math.log(5 / 3 / (640 / 32) ** 2))
    with pytest.raises(UsageError, match="unknown Ultralytics model"):
        create_ultralytics("yolov9t")
