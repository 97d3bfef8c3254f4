"""MMDetection configs are read without executing them: _base_ inheritance, rejection of code."""
from __future__ import annotations

import json

import pytest

from zooport.errors import ConfigError, ZooportError
from zooport.parsers.mmdet.config import config_from_text, load_config, merge, model_section

BASE_MODEL = '''
"""A base model file."""
norm = dict(type='GN', num_groups=8, requires_grad=True)
model = dict(
    type='FCOS',
    backbone=dict(type='ResNet', depth=18, base_channels=16, out_indices=(0, 1, 2, 3), style='pytorch'),
    neck=dict(type='FPN', in_channels=[16, 32, 64, 128], out_channels=32, start_level=1,
              add_extra_convs='on_output', num_outs=5, relu_before_extra_convs=True),
    bbox_head=dict(type='FCOSHead', num_classes=80, in_channels=32, stacked_convs=2, feat_channels=32,
                   strides=[8, 16, 32, 64, 128], norm_cfg=norm, loss_cls=dict(type='FocalLoss', use_sigmoid=True)),
    test_cfg=dict(nms_pre=1000, min_bbox_size=0, score_thr=0.05, nms=dict(type='nms', iou_threshold=0.5),
                  max_per_img=100))
'''
BASE_DATA = '''
classes = ('person', 'bicycle')
img_scale = (640, 480)
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=img_scale, keep_ratio=True)]
'''
CHILD = '''
_base_ = ['./base/model.py', './base/data.py']
model = dict(bbox_head=dict(num_classes=len_classes_placeholder), test_cfg=dict(score_thr=0.3))
'''


def _write(tmp_path, child):
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "model.py").write_text(BASE_MODEL)
    (tmp_path / "base" / "data.py").write_text(BASE_DATA)
    p = tmp_path / "child.py"
    p.write_text(child)
    return p


def test_base_inheritance_and_merge(tmp_path, monkeypatch):
    child = CHILD.replace("len_classes_placeholder", "2") + "metainfo = dict(classes=classes)\n" \
        + "scale2 = img_scale[0] * 2 - 1\n"
    p = _write(tmp_path, child)
    # Executing the file would need this; prove we never call exec/eval/compile-to-exec.
    import builtins

    def boom(*a, **k):
        raise AssertionError("config was executed")

    monkeypatch.setattr(builtins, "exec", boom)
    monkeypatch.setattr(builtins, "eval", boom)
    cfg = load_config(p)
    m = model_section(cfg)
    assert m["type"] == "FCOS"
    assert m["bbox_head"]["num_classes"] == 2  # child overrides
    assert m["bbox_head"]["norm_cfg"] == {"type": "GN", "num_groups": 8, "requires_grad": True}  # base kept
    assert m["test_cfg"]["score_thr"] == 0.3 and m["test_cfg"]["nms_pre"] == 1000
    assert m["backbone"]["out_indices"] == (0, 1, 2, 3)
    assert cfg["metainfo"]["classes"] == ("person", "bicycle")
    assert cfg["scale2"] == 1279
    assert "_base_" not in cfg


def test_build_model_from_py_config(tmp_path):
    import torch

    from zooport.converters.mmdet.load import build_model

    p = _write(tmp_path, CHILD.replace("len_classes_placeholder", "2") + "metainfo = dict(classes=classes)\n")
    model = build_model(load_config(p)).eval()
    assert model.names == ["person", "bicycle"]
    assert model.input_size == [480, 640]
    assert model.test_cfg["score_thr"] == 0.3
    with torch.no_grad():
        groups = model.raw(torch.zeros(1, 3, 64, 64))
    assert [g[0].shape[1] for g in groups] == [2, 4, 1]
    # a model built from a .py config (tuples inside) survives the native checkpoint (JSON arch)
    from zooport.converters.native import load_native, save_native

    save_native(model, tmp_path / "m.safetensors")
    again = load_native(tmp_path / "m.safetensors").eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(again(x), model(x))


def test_delete_key_replaces():
    base = {"model": {"neck": {"type": "FPN", "num_outs": 5}}}
    child = {"model": {"neck": {"_delete_": True, "type": "YOLOXPAFPN"}}}
    assert merge(base, child) == {"model": {"neck": {"type": "YOLOXPAFPN"}}}


@pytest.mark.parametrize("bad, what", [
    ("import os\nmodel = dict(type='FCOS')\n", "import"),
    ("from os import system\n", "import"),
    ("model = dict(type=open('/etc/passwd').read())\n", "function call"),
    ("model = dict(type=__import__('os').system('true'))\n", "function call"),
    ("x = os.path\n", "attribute"),
    ("model = dict(norm=dict(type='GN').update(a=1))\n", "function call"),
    ("x = [1].copy(2)\n", "function call"),
    ("model = [i for i in range(3)]\n", "function call range"),
    ("model = {i: 1 for i in (1, 2)}\n", "DictComp"),
    ("model = (lambda: 1)\n", "Lambda"),
    ("while True:\n    model = 1\n", "While"),
    ("for i in [1]:\n    model = i\n", "For"),
    ("if open('x'):\n    model = 1\n", "function call"),
    ("if True:\n    import os\n", "import"),
])
def test_rejects_code(tmp_path, bad, what):
    p = tmp_path / "bad.py"
    p.write_text(bad)
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    msg = str(ei.value)
    assert what.lower() in msg.lower() and str(p) in msg and ":" in msg


def test_if_blocks_take_the_branch_their_test_selects(tmp_path):
    # mmdetection-mini's rr_yolov5 config picks its multiples with if/elif on a module-level constant
    p = tmp_path / "c.py"
    p.write_text("t = 1\nif t == 0:\n    d = 0.33\nelif 0 < t <= 1 and t not in [5]:\n    d = 0.67\n"
                 "else:\n    raise NotImplementedError\nmodel = dict(type='X', d=d)\n")
    assert load_config(p)["model"] == {"type": "X", "d": 0.67}
    p.write_text("t = 7\nif t == 0:\n    d = 1\nelse:\n    raise NotImplementedError\n")
    with pytest.raises(ConfigError, match=r"c.py:5: the config's own check fails"):
        load_config(p)


def test_rejects_code_in_checkpoint_meta():
    with pytest.raises(ConfigError, match="attribute"):
        config_from_text("model = dict(type=os.environ)\n")


def test_missing_base_and_json_yaml(tmp_path):
    p = tmp_path / "c.py"
    p.write_text("_base_ = './nope.py'\n")
    with pytest.raises(ConfigError, match="nope.py"):
        load_config(p)
    j = tmp_path / "m.json"
    j.write_text(json.dumps({"type": "RetinaNet", "backbone": {"type": "ResNet"}}))
    assert model_section(load_config(j))["type"] == "RetinaNet"
    y = tmp_path / "m.yaml"
    y.write_text("model:\n  type: GFL\n  backbone: {type: ResNet}\n")
    assert model_section(load_config(y))["type"] == "GFL"


def test_unknown_module_type_is_config_error():
    from zooport.model_defs.mmdet import MMDetModel

    cfg = config_from_text(BASE_MODEL)["model"]
    cfg["neck"]["type"] = "PAFPN"
    with pytest.raises(ZooportError, match="PAFPN"):
        MMDetModel(cfg)


# Blow-ups an untrusted checkpoint's meta['cfg'] (or a config file) could ask for: each must be refused
# before anything large is built, fast, as a ConfigError naming the line.
BLOWUPS = [
    ("model = 9**9**9\n", "exceeds 4096 bits"),
    ("model = 2**100000\n", "exceeds 4096 bits"),
    ("model = 'a'*10**10\n", "repetition"),
    ("model = 10**10*'a'\n", "repetition"),
    ("model = [0]*10**9\n", "repetition"),
    ("a = [0]*90000\nmodel = a + a\n", "concatenation"),
    ("model = 1<<10**9\n", "BinOp expressions are not allowed"),
    ("model = '%999999999999d' % 1\n", "string formatting"),
    ("model = " + "9" * 5000 + "\n", "syntax error.*4300 digits"),
    ("model = 0x" + "f" * 5000 + "\n", "integer literal of more than 4096 bits"),
    ("x = 2**4000\nmodel = x*x*x\n", "product exceeds"),
    ("a = [0]*1000\nb = [a]*1000\nc = [b]*1000\nmodel = 1\n", "expands to more than"),
    ("model = " + "[" * 5000 + "]" * 5000 + "\n", "too many nested parentheses"),
    ("a0 = []\n" + "".join(f"a{i} = [a{i - 1}]\n" for i in range(1, 3000)), "nested more than 64"),
]


@pytest.mark.parametrize("text,what", BLOWUPS, ids=[f"blowup{i}" for i in range(len(BLOWUPS))])
def test_resource_blowups_fail_fast(text, what):
    import time

    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=what) as ei:
        config_from_text(text, "ckpt.pth (meta config)")
    assert time.perf_counter() - t0 < 1.0
    assert str(ei.value).startswith("ckpt.pth (meta config)")


def test_blowup_in_checkpoint_meta_is_config_error(tmp_path):
    """End to end: an MMDetection .pth whose meta['cfg'] is '9**9**9' fails fast with a ConfigError."""
    import time

    import torch

    import zooport

    p = tmp_path / "evil.pth"
    torch.save({"meta": {"cfg": "model = dict(type='YOLOV3', backbone=9**9**9)\n"},
                "state_dict": {"backbone.w": torch.zeros(1)}}, p)
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=r"evil\.pth.*exceeds 4096 bits"):
        zooport.load(str(p))
    assert time.perf_counter() - t0 < 1.0


def test_bounds_leave_real_configs_alone():
    cfg = config_from_text("s = 2**31 - 1\nscales = [(1333, 800)] * 3\nroot = 'data/' + 'coco/'\n"
                           "big = [0] * 1000\nmodel = dict(type='FCOS', backbone=dict(depth=18))\n")
    assert cfg["s"] == 2147483647 and len(cfg["scales"]) == 3 and cfg["root"] == "data/coco/"


def test_real_config_constructs(tmp_path):
    """What MMDetection's own configs use: _base_.x reads, {{_base_.x}}, _base_.x.y = v, comprehensions, .copy()."""
    (tmp_path / "base.py").write_text(
        "backend_args = None\nsched = [dict(type='A', milestones=[8, 11]), dict(type='B', milestones=[1])]\n"
        "optim = dict(type='OptimWrapper', lr=0.02)\nmodel = dict(type='RetinaNet', neck=dict(num_outs=5))\n")
    (tmp_path / "child.py").write_text(
        "_base_ = './base.py'\n"
        "load = dict(type='LoadImageFromFile', backend_args=_base_.backend_args)\n"
        "old = dict(type='X', v={{_base_.optim.lr}})\n"
        "_base_.optim.type = 'AmpOptimWrapper'\n"
        "_base_.sched[1].milestones = [16, 23]\n"
        "scales = [(1333, 640), (1333, 800)]\n"
        "tta = [dict(type='Resize', scale=s, keep=k) for s in scales for k in (True, False) if s[1] > 700]\n"
        "neck = _base_.model.neck.copy()\n"
        "flip = 1 if len_is_not_needed == 0 else 2\n".replace("len_is_not_needed", "optim['lr'] * 0"))
    cfg = load_config(tmp_path / "child.py")
    assert cfg["load"] == {"type": "LoadImageFromFile", "backend_args": None}
    assert cfg["old"]["v"] == 0.02
    assert cfg["optim"] == {"type": "AmpOptimWrapper", "lr": 0.02}
    assert cfg["sched"][1]["milestones"] == [16, 23] and cfg["sched"][0]["milestones"] == [8, 11]
    assert cfg["tta"] == [{"type": "Resize", "scale": (1333, 800), "keep": True},
                          {"type": "Resize", "scale": (1333, 800), "keep": False}]
    assert cfg["neck"] == {"num_outs": 5} and cfg["flip"] == 1


@pytest.mark.parametrize("text, what", [
    ("x = _base_.nope\n", "not defined by the _base_ files"),
    ("x = model.backbone\n", "only on _base_"),
    ("_base_.a = 1\n", "only on _base_"),
    ("x = [i for i in 5]\n", "comprehension over a int"),
    ("x = [i for (a, b) in [1]]\n", "comprehension target"),
])
def test_real_config_constructs_errors(tmp_path, text, what):
    (tmp_path / "base.py").write_text("a = 1\n")
    p = tmp_path / "c.py"
    p.write_text(text if text.startswith("_base_") else "_base_ = './base.py'\n" + text)
    with pytest.raises(ConfigError, match=what):
        load_config(p)
