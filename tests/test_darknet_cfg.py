"""Darknet cfg parser and layer plan: real cfgs, Darknet's own sizes, shape rules and bad inputs."""
from __future__ import annotations

import os

import pytest
from helpers import asset

from zooport.errors import ParseError, UnsupportedError
from zooport.parsers.darknet.cfg import parse_cfg
from zooport.parsers.darknet.plan import accounting_plan, build_plan, weights_bytes, weights_float_count

SLIM = ["Gaussian_yolov3_BDD", "csresnext50-panet-spp", "enet-coco", "yolov2", "yolov2-tiny", "yolov3",
        "yolov3-spp", "yolov3-tiny", "yolov3-tiny-prn", "yolov4", "yolov4-csp", "yolov4-csp-swish", "yolov4-p6",
        "yolov4-sam-mish-csp-reorg-bfm", "yolov4-tiny", "yolov4-tiny-3l", "yolov4x-mish", "yolov7", "yolov7-tiny"]

NET = "[net]\nwidth=32\nheight=32\nchannels=3\n\n"


def plan_of(text: str, tmp_path, name="t.cfg"):
    p = tmp_path / name
    p.write_text(text)
    return build_plan(parse_cfg(p))


# -- real assets -------------------------------------------------------------------------------------------
def test_every_shipped_cfg_parses():
    root = asset("darknet-cfg")
    cfgs = sorted(f for f in os.listdir(root) if f.endswith(".cfg"))
    assert len(cfgs) == 87
    for f in cfgs:
        cfg = parse_cfg(root / f)
        assert cfg.net.kind == "net" and cfg.layers, f


def test_weights_bytes_match_darknet_for_every_tsv_row():
    tsv = asset("darknet-cfg/expected_weights_bytes.tsv")
    rows = [ln.split("\t") for ln in tsv.read_text().splitlines() if ln.strip()]
    assert len(rows) == 77
    wrong = []
    for name, expected in rows:
        got = weights_bytes(accounting_plan(parse_cfg(tsv.parent / name)))
        if got != int(expected):
            wrong.append((name, int(expected), got))
    assert not wrong, wrong


def test_strict_plan_of_real_detectors():
    root = asset("darknet-cfg")
    assert weights_bytes(build_plan(parse_cfg(root / "yolov4.cfg"))) == 257_717_640
    assert weights_bytes(build_plan(parse_cfg(root / "yolov3.cfg"))) == 248_007_048
    # recurrent / contrastive cfgs parse but are refused by the strict plan, with file and line
    with pytest.raises(UnsupportedError, match=r"rnn\.cfg:\d+: layer 0: recurrent \[rnn\]"):
        build_plan(parse_cfg(root / "rnn.cfg"))
    with pytest.raises(UnsupportedError, match=r"yolov4-tiny_contrastive\.cfg:447: .*contrastive"):
        build_plan(parse_cfg(root / "yolov4-tiny_contrastive.cfg"))


@pytest.mark.parametrize("name", SLIM)
def test_slim_head_shapes_and_sizes_match_darknet(name):
    d = asset(f"golden/darknet-slim/{name}")
    plan = build_plan(parse_cfg(d / f"{name}.cfg"))
    assert weights_bytes(plan) == os.path.getsize(d / f"{name}.weights")
    lines = (d / "index.txt").read_text().split("\n")
    heads = {int(ln.split()[1]): tuple(int(v) for v in ln.split()[-3:]) for ln in lines if ln.startswith("head")}
    assert heads and [lp.index for lp in plan if lp.is_head] == sorted(heads)
    for i, shape in heads.items():
        assert plan[i].in_shape == shape, (i, plan[i].in_shape, shape)


# -- shape rules (Darknet arithmetic) -----------------------------------------------------------------------
def test_shape_rules(tmp_path):
    text = NET + """
[convolutional]
filters=8
size=3
stride_x=2
stride_y=1
pad=1
activation=leaky
[maxpool]
size=2
stride=1
[maxpool]
size=3
stride=2
[route]
layers=-1,-1
groups=2
group_id=1
[upsample]
stride=-2
[reorg]
stride=2
[convolutional]
filters=4
size=1
groups=2
batch_normalize=1
activation=linear
[shortcut]
from=-7
activation=linear
weights_type=per_channel
[avgpool]
[connected]
output=5
activation=linear
[softmax]
"""
    plan = plan_of(text, tmp_path)
    shapes = [lp.out_shape for lp in plan]
    assert shapes[0] == (8, 32, 16)            # stride_x=2, stride_y=1, pad=1 -> padding=size/2
    assert shapes[1] == (8, 32, 16)            # size 2 stride 1: padding=size-1 keeps the size
    assert shapes[2] == (8, 16, 8)             # (32+2-3)/2+1 = 16
    assert plan[3].inputs == (2, 2) and shapes[3] == (8, 16, 8)  # (8+8)/groups
    assert shapes[4] == (8, 8, 4)              # negative stride downsamples
    assert shapes[5] == (32, 4, 2)             # reorg: C*4, H/2, W/2
    assert plan[6].params == (("bn.bias", (4,)), ("bn.weight", (4,)), ("bn.running_mean", (4,)),
                              ("bn.running_var", (4,)), ("conv.weight", (4, 16, 1, 1)))
    assert plan[7].inputs == (6, 0) and plan[7].params == (("weights", (2, 4)),)
    assert shapes[8] == (4, 1, 1)
    assert plan[9].params == (("fc.bias", (5,)), ("fc.weight", (5, 4)))
    assert weights_float_count(plan) == 8 + 8 * 3 * 9 + 4 * 4 + 4 * 16 + 8 + 5 + 20


def test_route_groups_and_yolo_head(tmp_path):
    text = NET + """
[convolutional]
filters=18
size=1
activation=linear
[route]
layers=-1
groups=2
group_id=1
[route]
layers=0
[yolo]
mask=0,1,2
anchors=1,2, 3,4, 5,6, 7,8
num=4
classes=1
"""
    plan = plan_of(text, tmp_path)
    assert plan[1].out_shape == (9, 32, 32) and plan[1].attrs["group_id"] == 1
    head = plan[3]
    assert head.is_head and head.attrs["mask"] == [0, 1, 2] and head.attrs["anchors"][3] == (7.0, 8.0)
    assert head.in_shape == head.out_shape == (18, 32, 32)


def test_bom_crlf_comments_whitespace_and_repeated_training_keys(tmp_path):
    text = "\ufeff# comment\r\n; another\r\n[net]\r\nbatch=64\r\nbatch=1\r\nwidth = 16\r\nheight=16\r\n" \
           "channels=3\r\n\r\n[convolutional]\r\nfilters = 4 # inline\r\nsize=3\r\npad=1\r\nactivation=mish\r\n" \
           "[route]\r\nlayers = -1 ###P6\r\n"
    p = tmp_path / "bom.cfg"
    p.write_bytes(text.encode("utf-8"))
    cfg = parse_cfg(p)
    assert cfg.net.get_int("batch") == 64          # Darknet's option_find returns the first occurrence
    assert cfg.layers[0].get_int("filters") == 4 and cfg.layers[0].key_lines["filters"] == 11
    assert build_plan(cfg)[1].out_shape == (4, 16, 16)


# -- bad cfgs: ParseError naming the file and the line ------------------------------------------------------
BAD_CFGS = {
    "unknown_layer": (NET + "[convolutional]\nfilters=4\n[foo]\nx=1\n", r"bad\.cfg:8: unknown section \[foo\]"),
    "unknown_key": (NET + "[convolutional]\nfilterz=4\n", r"bad\.cfg:7: unknown key 'filterz'"),
    "duplicate_key": (NET + "[convolutional]\nfilters=4\nfilters=8\n", r"bad\.cfg:8: duplicate key 'filters'.*line 7"),
    "duplicate_net_shape": ("[net]\nwidth=32\nwidth=64\nheight=32\nchannels=3\n[avgpool]\n",
                            r"bad\.cfg:3: duplicate key 'width'"),
    "route_out_of_range": (NET + "[convolutional]\nfilters=4\n[route]\nlayers=-5\n",
                           r"bad\.cfg:9: .*layers: -5 points before the first layer"),
    "forward_reference": (NET + "[convolutional]\nfilters=4\n[route]\nlayers=1\n",
                          r"bad\.cfg:9: .*forward reference"),
    "groups_not_dividing": (NET + "[convolutional]\nfilters=4\ngroups=2\n",
                            r"bad\.cfg:8: .*groups=2 does not divide the 3 input channels"),
    "route_groups": (NET + "[convolutional]\nfilters=5\n[route]\nlayers=-1\ngroups=2\n",
                     r"bad\.cfg:10: .*groups=2 does not divide the 5 channels of layer 0"),
    "mask_beyond_anchors": (NET + "[convolutional]\nfilters=12\n[yolo]\nmask=0,3\nanchors=1,2,3,4,5,6\nnum=3\nclasses=1\n",
                            r"bad\.cfg:9: .*mask value 3 is beyond the anchors"),
    "head_filters": (NET + "[convolutional]\nfilters=13\n[yolo]\nmask=0,1\nanchors=1,2,3,4\nnum=2\nclasses=1\n",
                     r"bad\.cfg:8: .*expects 2 masks .* 12 input channels, but the layer before has 13"),
    "non_numeric": (NET + "[convolutional]\nfilters=four\n", r"bad\.cfg:7: .*filters='four': expected an integer"),
    "missing_net": ("[convolutional]\nfilters=4\n", r"bad\.cfg:1: missing \[net\]"),
    "empty_file": ("", r"bad\.cfg.*empty cfg"),
    "only_comments": ("# nothing\n\n", r"bad\.cfg.*empty cfg"),
    "unknown_activation": (NET + "[convolutional]\nfilters=4\nactivation=leakey\n",
                           r"bad\.cfg:8: unknown activation 'leakey'"),
    "no_equals": (NET + "[convolutional]\nfilters 4\n", r"bad\.cfg:7: cannot parse line"),
    "option_before_section": ("width=3\n[net]\n", r"bad\.cfg:1: option .* before the first"),
    "no_input_size": ("[net]\nbatch=1\n[avgpool]\n", r"bad\.cfg:1: \[net\] has no input size"),
    "empty_output": (NET + "[convolutional]\nfilters=4\nsize=64\n", r"bad\.cfg:6: .*empty output"),
    "shortcut_bad_type": (NET + "[convolutional]\nfilters=3\n[shortcut]\nfrom=-1\nweights_type=foo\n",
                          r"bad\.cfg:10: .*weights_type=foo"),
    "no_layers": ("[net]\nwidth=8\nheight=8\nchannels=3\n", r"bad\.cfg:1: cfg has a \[net\] section but no layers"),
}


@pytest.mark.parametrize("case", sorted(BAD_CFGS))
def test_bad_cfg_raises_parse_error_with_file_and_line(case, tmp_path):
    text, pattern = BAD_CFGS[case]
    p = tmp_path / "bad.cfg"
    p.write_text(text)
    with pytest.raises(ParseError, match=pattern) as ei:
        build_plan(parse_cfg(p))
    assert ei.value.path == str(p)


def test_not_utf8_and_missing_file(tmp_path):
    p = tmp_path / "bin.cfg"
    p.write_bytes(b"[net]\n\xff\xfe\x00")
    with pytest.raises(ParseError, match=r"bin\.cfg:2: not a UTF-8"):
        parse_cfg(p)
    with pytest.raises(ParseError, match=r"nope\.cfg: cannot read cfg file"):
        parse_cfg(tmp_path / "nope.cfg")
