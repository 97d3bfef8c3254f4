"""Unit tests of the tricky Darknet layers against small hand-worked expectations.

Every expected value below was worked out by hand from Darknet's C code (AlexeyAB/darknet src/),
not produced by zooport. Layers are built through the real cfg parser and layer plan.
"""
from __future__ import annotations

import math

import pytest
import torch

from zooport.errors import ZooportError
from zooport.parsers.darknet.cfg import parse_cfg
from zooport.parsers.darknet.plan import build_plan
from zooport.model_defs.activations import ACTIVATIONS
from zooport.model_defs.darknet.model import DarknetModel


def build(body: str, c: int, h: int, w: int) -> DarknetModel:
    text = f"[net]\nwidth={w}\nheight={h}\nchannels={c}\n\n" + body
    cfg = parse_cfg("unit.cfg", text=text)
    return DarknetModel(cfg, build_plan(cfg)).eval()


def run_layer(model, x, index=None):
    index = len(model.plan) - 1 if index is None else index
    with torch.no_grad():
        return model._run(x, (index,))[index]


def t(values, shape):
    return torch.tensor(values, dtype=torch.float32).reshape(shape)


# -- maxpool --------------------------------------------------------------------------------------------------
def test_maxpool_2x2_stride1_pads_with_minus_inf():
    # size 2, stride 1: padding = 1, window offset 0, one -FLT_MAX cell right/bottom; output stays 2x2.
    m = build("[maxpool]\nsize=2\nstride=1\n", 1, 2, 2)
    y = run_layer(m, t([-1, -2, -3, -4], (1, 1, 2, 2)))
    assert y.tolist() == [[[[-1.0, -2.0], [-3.0, -4.0]]]]  # zero padding would give 0 at (0,1),(1,0),(1,1)


def test_maxpool_3x3_stride2_offset_and_size():
    # 4x4 input, size 3, stride 2: padding 2, offset -1, out = (4+2-3)//2+1 = 2.
    x = -torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4) - 1   # -1 .. -16, row-major
    m = build("[maxpool]\nsize=3\nstride=2\n", 1, 4, 4)
    y = run_layer(m, x)
    # window rows/cols for out j: {2j-1, 2j, 2j+1} clipped; max of negatives = the smallest index
    assert y.tolist() == [[[[-1.0, -2.0], [-5.0, -6.0]]]]


def test_maxpool_size_differs_from_stride_output_rule():
    m = build("[maxpool]\nsize=2\nstride=2\n", 1, 5, 5)  # padding 1: (5+1-2)//2+1 = 3
    x = torch.arange(25, dtype=torch.float32).reshape(1, 1, 5, 5)
    y = run_layer(m, x)
    assert y.shape == (1, 1, 3, 3)
    assert y[0, 0].tolist() == [[6.0, 8.0, 9.0], [16.0, 18.0, 19.0], [21.0, 23.0, 24.0]]


def test_maxpool_depth():
    m = build("[maxpool]\nmaxpool_depth=1\nout_channels=2\nstride=1\nsize=1\n", 5, 1, 1)
    y = run_layer(m, t([1, 7, 3, -2, 5], (1, 5, 1, 1)))
    assert y.flatten().tolist() == [5.0, 7.0]  # max(ch0, ch2, ch4), max(ch1, ch3)


# -- reorg ----------------------------------------------------------------------------------------------------
def test_reorg_is_darknet_reorg_cpu_not_pixel_unshuffle():
    # reorg_cpu(x, w=2, h=2, c=4, stride=2, forward=0): out[k,j,i] = x[(2j + k//2)*4 + 2i + k%2] (x read as 1x4x4)
    m = build("[reorg]\nstride=2\n", 4, 2, 2)
    x = torch.arange(16, dtype=torch.float32).reshape(1, 4, 2, 2)
    y = run_layer(m, x)
    assert y.shape == (1, 16, 1, 1)
    assert y.flatten().tolist() == [0, 2, 8, 10, 1, 3, 9, 11, 4, 6, 12, 14, 5, 7, 13, 15]
    assert y.flatten().tolist() != torch.nn.functional.pixel_unshuffle(x, 2).flatten().tolist()


def test_reorg3d_space_to_depth_channel_order():
    # output channel (dy*2 + dx)*C + c = input[c, 2y+dy, 2x+dx]; C = 2 here
    m = build("[reorg3d]\nstride=2\n", 2, 2, 2)
    x = torch.arange(8, dtype=torch.float32).reshape(1, 2, 2, 2)
    y = run_layer(m, x)
    assert y.shape == (1, 8, 1, 1)
    # (dy,dx)=(0,0): c0 -> 0, c1 -> 4; (0,1): 1, 5; (1,0): 2, 6; (1,1): 3, 7
    assert y.flatten().tolist() == [0, 4, 1, 5, 2, 6, 3, 7]


# -- route / shortcut -----------------------------------------------------------------------------------------
ID_CONV = "[convolutional]\nfilters={f}\nsize=1\nstride=1\nactivation=linear\n\n"


def _identity_weights(model):
    with torch.no_grad():
        for lp in model.plan:
            if lp.type == "convolutional":
                conv = model.layers[lp.index].conv
                conv.weight.zero_()
                n, c = conv.weight.shape[:2]
                for i in range(min(n, c)):
                    conv.weight[i, i] = 1.0
                conv.bias.zero_()


def test_route_groups_slice_each_input_before_concat():
    body = ID_CONV.format(f=4) + "[route]\nlayers=-1,-1\ngroups=2\ngroup_id=1\n"
    m = build(body, 4, 1, 1)
    _identity_weights(m)
    y = run_layer(m, t([1, 2, 3, 4], (1, 4, 1, 1)))
    assert y.flatten().tolist() == [3.0, 4.0, 3.0, 4.0]


def test_shortcut_channel_mismatch_adds_first_channels():
    # layer 0: 2 channels; layer 1: 3 channels (identity + zero third); shortcut from 0 onto 1 and 1 onto 2
    body = ID_CONV.format(f=2) + ID_CONV.format(f=3) + "[shortcut]\nfrom=-2\nactivation=linear\n"
    m = build(body, 2, 1, 1)
    _identity_weights(m)
    with torch.no_grad():
        m.layers[1].conv.bias[2] = 30.0   # layer 1 = [x0, x1, 30]
    y = run_layer(m, t([1, 2], (1, 2, 1, 1)))
    assert y.flatten().tolist() == [2.0, 4.0, 30.0]  # only the first min(3, 2) channels get layer 0 added

    body = ID_CONV.format(f=3) + ID_CONV.format(f=2) + "[shortcut]\nfrom=-2\nactivation=linear\n"
    m = build(body, 3, 1, 1)
    _identity_weights(m)
    y = run_layer(m, t([1, 2, 3], (1, 3, 1, 1)))
    assert y.flatten().tolist() == [2.0, 4.0]   # the larger from-layer's extra channel is ignored


def test_shortcut_weighted_relu_normalisation():
    body = ID_CONV.format(f=2) + ID_CONV.format(f=2) + \
        "[shortcut]\nfrom=-2\nweights_type=per_feature\nweights_normalization=relu\nactivation=linear\n"
    m = build(body, 2, 1, 1)
    _identity_weights(m)
    with torch.no_grad():
        m.layers[2].weights.copy_(torch.tensor([3.0, -1.0]))
    y = run_layer(m, t([1, 2], (1, 2, 1, 1)))
    # relu weights [3, 0], sum = 1e-4 + 3: x * 3/3.0001 + x * 0
    k = 3.0 / 3.0001
    assert y.flatten().tolist() == pytest.approx([1 * k, 2 * k], rel=1e-6)


def test_shortcut_weighted_softmax_per_channel():
    body = ID_CONV.format(f=2) + ID_CONV.format(f=2) + \
        "[shortcut]\nfrom=-2\nweights_type=per_channel\nweights_normalization=softmax\nactivation=linear\n"
    m = build(body, 2, 1, 1)
    _identity_weights(m)
    with torch.no_grad():
        m.layers[2].weights.copy_(torch.tensor([[0.0, 1.0], [0.0, 0.0]]))  # (n_inputs=2, C=2)
    y = run_layer(m, t([1, 2], (1, 2, 1, 1)))
    # channel 0: weights (0, 0) -> 1/(2+1e-4) each: 1*(w0 + w1); channel 1: exp(0)/.., exp(-1)/..
    e = math.exp(-1.0)
    ch0 = 1.0 * 2 / (2 + 1e-4)
    ch1 = 2.0 * (1 + e) / (1 + e + 1e-4)
    assert y.flatten().tolist() == pytest.approx([ch0, ch1], rel=1e-6)


# -- upsample / local_avgpool / conv defaults -------------------------------------------------------------------
def test_upsample_negative_stride_sums_blocks_times_scale():
    m = build("[upsample]\nstride=-2\nscale=0.5\n", 1, 2, 2)
    y = run_layer(m, t([1, 2, 3, 4], (1, 1, 2, 2)))
    assert y.flatten().tolist() == [5.0]  # 0.5 * (1+2+3+4)


def test_upsample_nearest_with_scale():
    m = build("[upsample]\nstride=2\nscale=2\n", 1, 1, 2)
    y = run_layer(m, t([1, 2], (1, 1, 1, 2)))
    assert y[0, 0].tolist() == [[2, 2, 4, 4], [2, 2, 4, 4]]


def test_local_avgpool_divides_by_valid_cells():
    m = build("[local_avgpool]\nsize=2\nstride=1\n", 1, 2, 2)
    y = run_layer(m, t([1, 2, 3, 4], (1, 1, 2, 2)))
    assert y[0, 0].tolist() == [[2.5, 3.0], [3.5, 4.0]]


def test_convolutional_default_activation_is_logistic():
    m = build("[convolutional]\nfilters=1\nsize=1\nstride=1\n", 1, 1, 1)
    with torch.no_grad():
        m.layers[0].conv.weight.fill_(1.0)
        m.layers[0].conv.bias.fill_(0.0)
    y = run_layer(m, t([0.0], (1, 1, 1, 1)))
    assert y.item() == pytest.approx(0.5)


def test_state_dict_is_exactly_the_plan_without_num_batches_tracked():
    body = "[convolutional]\nbatch_normalize=1\nfilters=2\nsize=3\nstride=1\npad=1\nactivation=leaky\n\n" \
           "[connected]\noutput=3\nbatch_normalize=1\nactivation=linear\n"
    m = build(body, 3, 4, 4)
    assert list(m.state_dict()) == ["layers.0.bn.bias", "layers.0.bn.weight", "layers.0.bn.running_mean",
                                    "layers.0.bn.running_var", "layers.0.conv.weight",
                                    "layers.1.fc.bias", "layers.1.fc.weight", "layers.1.bn.weight",
                                    "layers.1.bn.running_mean", "layers.1.bn.running_var"]
    assert [tuple(v.shape) for v in m.state_dict().values()] == [(2,)] * 4 + [(2, 3, 3, 3), (3,), (3, 32), (3,),
                                                                               (3,), (3,)]


# -- activations ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,x,expected", [
    ("leaky", -1.0, -0.1), ("relu6", 7.0, 6.0), ("ramp", -1.0, -0.1), ("ramp", 2.0, 2.2),
    ("hard_mish", -1.0, -0.5), ("hard_mish", -3.0, 0.0), ("hard_mish", 2.0, 2.0),
    ("logistic", 0.0, 0.5), ("swish", 1.0, 1 / (1 + math.exp(-1))),
    ("mish", 1.0, math.tanh(math.log1p(math.e))), ("mish", 30.0, 30.0 * math.tanh(30.0)),
    ("gelu", 1.0, 0.5 * (1 + math.tanh(0.797885 + 0.035677))),
    ("elu", -1.0, math.exp(-1) - 1), ("selu", -1.0, 1.0507 * 1.6732 * (math.exp(-1) - 1)),
    ("selu", 2.0, 2.1014), ("lhtan", 2.0, 1.001), ("plse", 5.0, 1.01), ("loggy", 0.0, 0.0),
    ("stair", 3.5, 1.5), ("stair", 2.5, 1.0), ("hardtan", -3.0, -1.0), ("tanh", 0.5, math.tanh(0.5)), ("linear", -3.0, -3.0),
])
def test_activation_values(name, x, expected):
    y = ACTIVATIONS[name](torch.tensor([x], dtype=torch.float64))
    assert y.item() == pytest.approx(expected, rel=1e-6, abs=1e-9)


def test_normalize_channels():
    x = torch.tensor([1.0, -2.0, 3.0]).reshape(1, 3, 1, 1)
    y = ACTIVATIONS["normalize_channels"](x).flatten().tolist()
    assert y == pytest.approx([1 / 4.0001, 0.0, 3 / 4.0001], rel=1e-6)


def test_unknown_activation_is_rejected():
    with pytest.raises(ZooportError, match="activation"):
        build("[convolutional]\nfilters=1\nsize=1\nstride=1\nactivation=bogus\n", 1, 1, 1)


def test_dilated_conv_pads_pad_times_dilation_and_keeps_darknet_size():
    # size 3, dilation 2, pad=1: Darknet output (5 + 2 - 3) + 1 = 5, im2col padding 2; ones in, ones weights:
    # out[y, x] = valid taps = c[y] * c[x] with c = [2, 2, 3, 2, 2] (taps at offsets -2, 0, 2)
    m = build("[convolutional]\nfilters=1\nsize=3\nstride=1\npad=1\ndilation=2\nactivation=linear\n", 1, 5, 5)
    with torch.no_grad():
        m.layers[0].conv.weight.fill_(1.0)
        m.layers[0].conv.bias.fill_(0.0)
    y = run_layer(m, torch.ones(1, 1, 5, 5))
    c = [2.0, 2.0, 3.0, 2.0, 2.0]
    assert y[0, 0].tolist() == [[a * b for b in c] for a in c]


def test_share_index_reuses_weights_and_stores_nothing():
    body = ID_CONV.format(f=1) + ID_CONV.format(f=1).replace("activation=linear", "activation=linear\nshare_index=0")
    m = build(body, 1, 1, 1)
    assert [k for k in m.state_dict() if k.startswith("layers.1.")] == []
    with torch.no_grad():
        m.layers[0].conv.weight.fill_(2.0)
        m.layers[0].conv.bias.fill_(1.0)
    assert run_layer(m, t([3.0], (1, 1, 1, 1))).item() == 15.0   # (3*2+1)*2+1


def test_detection_head_decode():
    # side 1, num 1, 2 classes: [class logits(2), confidence, x, y, w, h]; softmax=1, sqrt=1; a 1x1 "image"
    body = "[detection]\nclasses=2\ncoords=4\nnum=1\nside=1\nsoftmax=1\nsqrt=1\n"
    m = build(body, 7, 1, 1)
    x = t([0.0, math.log(3.0), 0.8, 0.5, 0.25, 0.5, 0.2], (1, 7, 1, 1))
    with torch.no_grad():
        pred = m(x)
    assert pred.shape == (1, 1, 7)
    assert pred[0, 0].tolist() == pytest.approx([0.5, 0.25, 0.25, 0.04, 0.8, 0.25, 0.75], rel=1e-6)


def test_darknet_postprocess_threshold_and_per_class_nms():
    from zooport.postprocess import darknet_detections

    # rows: x y w h (pixels of a 100x100 network), objectness, 2 class scores
    pred = t([
        [50, 50, 20, 20, 0.90, 1.0, 0.0],    # class 0, prob 0.9
        [52, 50, 20, 20, 0.80, 1.0, 0.0],    # IoU with row 0 = 18*20/(800-360) = 0.818 > 0.45: suppressed
        [52, 50, 20, 20, 0.70, 0.0, 1.0],    # same box, class 1: kept (NMS is per class)
        [10, 10, 10, 10, 0.30, 0.5, 0.0],    # obj > 0.25 but prob 0.15 <= 0.25: dropped
        [80, 80, 10, 10, 0.20, 1.0, 0.0],    # objectness <= 0.25: dropped
    ], (5, 7))
    rows = darknet_detections(pred, (100, 100), thresh=0.25, nms=0.45)
    assert [(k, round(p, 6)) for k, p, *_ in rows] == [(0, 0.9), (1, 0.7)]
    assert rows[0][2:] == pytest.approx([0.5, 0.5, 0.2, 0.2])
