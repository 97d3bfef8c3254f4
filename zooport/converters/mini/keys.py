"""State-dict keys of mmdetection-mini's Darknet-derived RR* models, in Darknet ``.weights`` order (torch-free).

mini's ``tools/darknet/{yolov3,yolov4,tiny_yolov3,tiny_yolov4}.py`` load a ``.weights`` file by walking the
converter model's modules in registration order (``WeightLoader``), then rename the keys to the detector's
(``backbone.*``, ``neck.layers.*``, ``bbox_head.layers.*``) and save ``{"state_dict": ...}`` in that same
order. So :func:`conv_prefixes` -- every conv module of the detector, in the converter's order -- is both
the order of the Darknet file's convolutions and the key order of a converted ``.pth``.

Per conv module (``prefix``) mini writes:

* ``Conv2dBatchLeaky`` / ``Conv2dBatchMish`` (``has_bn``): ``prefix.layers.0.weight`` (OIHW, no bias),
  ``prefix.layers.1.{weight, bias, running_mean, running_var, num_batches_tracked}`` (BN; the count is an
  int64 scalar, 0 in a converted file);
* a plain ``nn.Conv2d`` (the output convs): ``prefix.weight``, ``prefix.bias``.
"""
from __future__ import annotations

BN_SUFFIXES = ("layers.0.weight", "layers.1.weight", "layers.1.bias", "layers.1.running_mean",
               "layers.1.running_var", "layers.1.num_batches_tracked")
CONV_SUFFIXES = ("weight", "bias")
# mini suffix -> Darknet plan parameter name (zooport.parsers.darknet.plan)
TO_DARKNET = {"layers.0.weight": "conv.weight", "layers.1.weight": "bn.weight", "layers.1.bias": "bn.bias",
              "layers.1.running_mean": "bn.running_mean", "layers.1.running_var": "bn.running_var",
              "weight": "conv.weight", "bias": "conv.bias"}
# which Darknet head (in cfg order) each of mini's outputs is: mini returns the largest stride first
HEAD_ORDER = {"yolov3": [0, 1, 2], "yolov4": [2, 1, 0], "tiny_yolov3": [0, 1], "tiny_yolov4": [0, 1]}


def _head(i: int, name: str) -> list[tuple[str, bool]]:
    return [(f"bbox_head.layers.{i}.{name}.feature.0", True), (f"bbox_head.layers.{i}.{name}.feature.1", False)]


def _yolov3() -> list[tuple[str, bool]]:
    out = [("backbone.layers.0.stage_1", True)]
    group = {2: 0, 3: 0, 4: 0, 5: 1, 6: 2}  # RRDarknet53.layers index of each Stage
    for s, blocks in zip(range(2, 7), (2, 3, 9, 9, 5)):
        p = f"backbone.layers.{group[s]}.stage_{s}.features"
        out.append((f"{p}.0", True))  # the stride-2 conv
        for b in range(1, blocks):  # StageBlock: 1x1 then 3x3
            out += [(f"{p}.{b}.features.0", True), (f"{p}.{b}.features.1", True)]

    def body(i, name):
        return [(f"neck.layers.{i}.{name}.feature.{j}", True) for j in range(5)]

    out += body(0, "head_body_1") + _head(0, "1_head")
    out += [("neck.layers.1.trans_1.features.0", True)] + body(2, "head_body_2") + _head(1, "2_head")
    out += [("neck.layers.3.trans_2.features.0", True)] + body(4, "head_body_3") + _head(2, "3_head")
    return out


def _yolov4() -> list[tuple[str, bool]]:
    out = [("backbone.conv1", True)]
    for i, blocks in enumerate((1, 2, 8, 8, 4)):
        p = f"backbone.stages.{i}"
        out += [(f"{p}.downsample_conv", True), (f"{p}.split_conv0", True), (f"{p}.split_conv1", True)]
        for j in range(blocks):
            out += [(f"{p}.blocks_conv.{j}.block.0", True), (f"{p}.blocks_conv.{j}.block.1", True)]
        out += [(f"{p}.blocks_conv.{blocks}", True), (f"{p}.concat_conv", True)]

    def n_conv(p, n):
        return [(f"{p}.m.{j}", True) for j in range(n)]

    def fuse_up(p):  # FuseStage: its Transition (right_conv) is registered, and stored, before left_conv
        return [(f"{p}.right_conv.features.0", True), (f"{p}.left_conv", True)]

    out += n_conv("neck.layers.0.head_body0_0", 3) + n_conv("neck.layers.0.head_body0_1", 3)
    out += fuse_up("neck.layers.1.trans_0") + n_conv("neck.layers.1.head_body1_0", 5)
    out += fuse_up("neck.layers.2.trans_1") + n_conv("neck.layers.2.head_body2_1", 5)
    out += _head(2, "3_head")
    out += [("neck.layers.3.trans_2.left_conv", True)] + n_conv("neck.layers.3.head_body1_1", 5) + _head(1, "2_head")
    out += [("neck.layers.4.trans_3.left_conv", True)] + n_conv("neck.layers.4.head_body0_2", 5) + _head(0, "1_head")
    return out


def _tiny_yolov3() -> list[tuple[str, bool]]:
    bb = [(0, "0_convbatch"), (0, "2_convbatch"), (0, "4_convbatch"), (1, "6_convbatch"), (2, "8_convbatch"),
          (3, "10_convbatch"), (3, "12_convbatch"), (3, "13_convbatch")]
    out = [(f"backbone.layers.{g}.{n}", True) for g, n in bb]
    out += [("bbox_head.layers.0.14_convbatch", True), ("bbox_head.layers.0.15_conv", False),
            ("bbox_head.layers.1.18_convbatch", True), ("bbox_head.layers.2.21_convbatch", True),
            ("bbox_head.layers.2.22_conv", False)]
    return out


def _tiny_yolov4() -> list[tuple[str, bool]]:
    out = []
    for name in ("0_convbatch", "1_convbatch", "2_convbatch", "3_resconvbatch", "5_convbatch", "6_resconvbatch",
                 "8_convbatch", "9_resconvbatch"):
        if name.endswith("resconvbatch"):  # ResConv2dBatchLeaky: layers0, layers1 (3x3), layers2 (1x1)
            out += [(f"backbone.layers.{name}.layers{j}", True) for j in range(3)]
        else:
            out.append((f"backbone.layers.{name}", True))
    out += [("bbox_head.layers.0.11_conv", True), ("bbox_head.layers.0.12_conv", True),
            ("bbox_head.layers.1.13_conv", True), ("bbox_head.layers.1.14_conv", False),
            ("bbox_head.layers.2.15_convbatch", True), ("bbox_head.layers.3.17_convbatch", True),
            ("bbox_head.layers.3.18_conv", False)]
    return out


_BUILDERS = {"yolov3": _yolov3, "yolov4": _yolov4, "tiny_yolov3": _tiny_yolov3, "tiny_yolov4": _tiny_yolov4}


def conv_prefixes(kind: str) -> list[tuple[str, bool]]:
    """(module prefix, has_bn) of every conv of mini's ``kind`` model, in Darknet ``.weights`` order."""
    return _BUILDERS[kind]()


def state_dict_keys(kind: str) -> list[str]:
    """Every key of a mini ``.pth`` of ``kind``, in the order mini's converter writes them."""
    return [f"{p}.{s}" for p, bn in conv_prefixes(kind) for s in (BN_SUFFIXES if bn else CONV_SUFFIXES)]
