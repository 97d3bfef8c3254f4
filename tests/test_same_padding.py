"""TF SAME padding layers against onnxruntime's auto_pad="SAME_UPPER" (an independent
implementation of TF's rule) and against pads worked out by hand."""
from __future__ import annotations

import io
import math
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper
from helpers import torch_threads
from torch import nn

from zooport.errors import UsageError
from zooport.model_defs.same_padding import (
    AvgPool2dSame,
    AvgPool2dStaticSame,
    Conv2dSame,
    Conv2dStaticSame,
    MaxPool2dSame,
    MaxPool2dStaticSame,
    get_same_padding,
    pad_same,
    to_static_same,
)

SIZES = range(1, 66)
TOL = 1e-5


@pytest.fixture(autouse=True)
def _one_thread():
    """Thousands of tiny ops: worker threads only add spin-waiting on a busy 2-core machine."""
    with torch_threads(1):
        yield


def _other(h: int) -> int:
    """A second size for W: a bijection of 1..65 (29 is coprime with 65), so odd/even H and W mix."""
    return (h * 29) % 65 + 1


def _session(nodes, inits, cin, opset=17):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, "h", "w"])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    so = ort.SessionOptions()
    so.log_severity_level = 4  # the refusals below are expected; keep stderr quiet
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _ort_conv(w: np.ndarray, b: np.ndarray, stride, pads=None):
    """ORT Conv; ``pads=None`` -> auto_pad SAME_UPPER, else explicit [t, l, b, r]."""
    kh, kw = w.shape[2:]
    attrs = dict(strides=list(stride), kernel_shape=[kh, kw])
    attrs.update(auto_pad="SAME_UPPER") if pads is None else attrs.update(pads=list(pads))
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], **attrs)
    return _session([node], [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")], w.shape[1])


def _ort_pool(op, k, s, cin, pads=None):
    attrs = dict(strides=[s, s], kernel_shape=[k, k])
    attrs.update(auto_pad="SAME_UPPER") if pads is None else attrs.update(pads=list(pads))
    if op == "AveragePool":
        attrs["count_include_pad"] = 0  # TF: padded cells are not counted
    return _session([helper.make_node(op, ["x"], ["y"], **attrs)], [], cin)


def _zero_inserted(w: np.ndarray, d: int) -> np.ndarray:
    """The dilated kernel written out: size (k-1)*d+1, taps at multiples of d, zeros between."""
    o, i, kh, kw = w.shape
    out = np.zeros((o, i, (kh - 1) * d + 1, (kw - 1) * d + 1), np.float32)
    out[:, :, ::d, ::d] = w
    return out


def _raw_total(n, k, s, d=1):
    return (math.ceil(n / s) - 1) * s + (k - 1) * d + 1 - n


def _run(sess, x: np.ndarray):
    return sess.run(None, {"x": x})[0]


def _check(ours: torch.Tensor, ref: np.ndarray, what: str):
    ours = ours.detach().numpy()
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} != onnxruntime {ref.shape}"
    err = float(np.max(np.abs(ours - ref))) if ref.size else 0.0
    tol = TOL * max(1.0, float(np.max(np.abs(ref))) if ref.size else 1.0)
    assert err <= tol, f"{what}: max abs error {err:.3g} > {tol:.3g}"


# ------------------------------------------------------------------ hand-worked table

# (in, k, s, d, (before, after)) -- each worked out on paper from out = ceil(in/s),
# total = (out-1)*s + (k-1)*d + 1 - in, clamped at 0; the odd pixel goes after.
HAND = [
    (512, 3, 2, 1, (0, 1)),   # out 256: 510 + 3 - 512 = 1
    (5, 4, 1, 1, (1, 2)),     # out 5: 4 + 4 - 5 = 3
    (224, 7, 2, 1, (2, 3)),   # out 112: 222 + 7 - 224 = 5
    (225, 3, 2, 1, (1, 1)),   # out 113: 224 + 3 - 225 = 2
    (7, 3, 1, 2, (2, 2)),     # eff. kernel 5, out 7: 6 + 5 - 7 = 4
    (1, 7, 4, 3, (9, 9)),     # eff. kernel 19, out 1: 0 + 19 - 1 = 18
    (65, 7, 3, 2, (5, 6)),    # eff. kernel 13, out 22: 63 + 13 - 65 = 11
    (33, 6, 4, 1, (2, 3)),    # out 9: 32 + 6 - 33 = 5
    (32, 6, 4, 1, (1, 1)),    # out 8: 28 + 6 - 32 = 2
    (4, 5, 1, 1, (2, 2)),     # kernel larger than input: 3 + 5 - 4 = 4
    (8, 2, 2, 1, (0, 0)),     # out 4: 6 + 2 - 8 = 0
    (10, 2, 4, 1, (0, 0)),    # stride > kernel: out 3: 8 + 2 - 10 = 0
    (11, 2, 4, 1, (0, 0)),    # stride > kernel: 8 + 2 - 11 = -1 -> clamped to 0
    (6, 1, 4, 1, (0, 0)),     # stride > kernel: 4 + 1 - 6 = -1 -> 0
    (9, 1, 3, 1, (0, 0)),     # stride > kernel: 6 + 1 - 9 = -2 -> 0
    (15, 2, 4, 1, (0, 0)),    # stride > kernel: 12 + 2 - 15 = -1 -> 0
    (13, 3, 4, 1, (1, 1)),    # stride > kernel but still positive: 12 + 3 - 13 = 2
    (14, 3, 4, 1, (0, 1)),    # 12 + 3 - 14 = 1
    (16, 3, 4, 1, (0, 0)),    # 12 + 3 - 16 = -1 -> 0
    (2, 1, 1, 1, (0, 0)),     # 1x1 conv never pads
]


@pytest.mark.parametrize("n,k,s,d,expected", HAND)
def test_hand_worked_pads(n, k, s, d, expected):
    assert get_same_padding(n, k, s, d) == expected
    # values: the layers equal onnxruntime with the hand-written explicit pads
    torch.manual_seed(n * 7 + k)
    cin = 2
    x = torch.randn(1, cin, n, n)
    conv = Conv2dSame(cin, 3, k, s, d)
    w = conv.weight.detach().numpy()
    w = _zero_inserted(w, d) if d > 1 else w
    pads = [expected[0], expected[0], expected[1], expected[1]]  # ONNX order: t, l, b, r
    ref = _run(_ort_conv(w, conv.bias.detach().numpy(), (s, s), pads=pads), x.numpy())
    assert ref.shape[2:] == (math.ceil(n / s), math.ceil(n / s))
    _check(conv(x), ref, f"conv in={n} k={k} s={s} d={d}")
    if d == 1:
        for op, layer in (("MaxPool", MaxPool2dSame(k, s)), ("AveragePool", AvgPool2dSame(k, s))):
            ref = _run(_ort_pool(op, k, s, cin, pads=pads), x.numpy())
            _check(layer(x), ref, f"{op} in={n} k={k} s={s}")


def test_pad_same_values_and_tensor_sizes():
    x = torch.arange(20.0).reshape(1, 1, 4, 5)
    y = pad_same(x, 3, 2, value=-1.0)  # H: out 2, total 2+3-4=1 -> (0,1); W: out 3, 4+3-5=2 -> (1,1)
    assert y.shape == (1, 1, 5, 7)
    assert torch.all(y[..., -1, :] == -1) and torch.all(y[..., :, 0] == -1) and torch.all(y[..., :, -1] == -1)
    assert torch.equal(y[..., :4, 1:6], x)
    # traced sizes are tensors: the result must be tensors with the same values
    b, a = get_same_padding(torch.tensor(512), 3, 2, 1)
    assert isinstance(b, torch.Tensor) and (int(b), int(a)) == (0, 1)
    b, a = get_same_padding(torch.tensor(11), 2, 4, 1)
    assert (int(b), int(a)) == (0, 0)
    with pytest.raises(UsageError):
        get_same_padding(5, 0, 1, 1)


# --------------------------------------------------------------- exhaustive property test


@pytest.mark.slow
def test_conv_all_sizes_kernels_strides_dilations():
    """Every in 1..65 (H; W another size of 1..65), k 1..7, s 1..4, d 1..3 against ORT SAME_UPPER."""
    rng = np.random.default_rng(0)
    cin, cout = 2, 3
    clamped = mixed = 0
    for k in range(1, 8):
        for s in range(1, 5):
            for d in range(1, 4):
                conv = Conv2dSame(cin, cout, k, s, d)
                with torch.no_grad():
                    # fan-in scaled weights keep outputs O(1), so 1e-5 measures the padding, not fp32 rounding
                    wn = rng.standard_normal(conv.weight.shape) / math.sqrt(cin * k * k)
                    conv.weight.copy_(torch.from_numpy(wn.astype(np.float32)))
                    conv.bias.copy_(torch.from_numpy(rng.standard_normal(cout).astype(np.float32)))
                w = conv.weight.detach().numpy()
                b = conv.bias.detach().numpy()
                # ORT refuses dilation with SAME_UPPER: the zero-inserted kernel has the same effective size
                wz = _zero_inserted(w, d) if d > 1 else w
                sess = _ort_conv(wz, b, (s, s))
                valid = _ort_conv(wz, b, (s, s), pads=[0, 0, 0, 0])
                for h in SIZES:
                    wd = _other(h)
                    x = rng.standard_normal((1, cin, h, wd)).astype(np.float32)
                    with torch.no_grad():
                        ours = conv(torch.from_numpy(x))
                    what = f"conv in=({h},{wd}) k={k} s={s} d={d}"
                    assert ours.shape[2:] == (math.ceil(h / s), math.ceil(wd / s)), what
                    raw = (_raw_total(h, k, s, d), _raw_total(wd, k, s, d))
                    if min(raw) >= 0:
                        _check(ours, _run(sess, x), what)
                    elif max(raw) <= 0:
                        # TF clamps a negative pad to 0 where ORT's SAME_UPPER computes a negative
                        # pad (it crops or refuses): TF is then VALID, i.e. explicit zero pads
                        _check(ours, _run(valid, x), what)
                        clamped += 1
                    else:
                        mixed += 1  # one dim clamped, one padded: covered by the hand-worked table
    assert clamped > 0 and mixed < 65 * 84 // 4


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
def test_pool_all_sizes_kernels_strides(op):
    rng = np.random.default_rng(1)
    cin = 2
    clamped = mixed = 0
    for k in range(1, 8):
        for s in range(1, 5):
            layer = MaxPool2dSame(k, s) if op == "MaxPool" else AvgPool2dSame(k, s)
            sess = _ort_pool(op, k, s, cin)
            valid = _ort_pool(op, k, s, cin, pads=[0, 0, 0, 0])
            for h in SIZES:
                wd = _other(h)
                x = rng.standard_normal((1, cin, h, wd)).astype(np.float32)
                ours = layer(torch.from_numpy(x))
                what = f"{op} in=({h},{wd}) k={k} s={s}"
                assert ours.shape[2:] == (math.ceil(h / s), math.ceil(wd / s)), what
                assert torch.isfinite(ours).all(), what  # -inf padding never wins a max
                raw = (_raw_total(h, k, s), _raw_total(wd, k, s))
                if min(raw) >= 0:
                    _check(ours, _run(sess, x), what)
                elif max(raw) <= 0:
                    _check(ours, _run(valid, x), what)  # TF clamps to 0: VALID
                    clamped += 1
                else:
                    mixed += 1
    assert clamped > 0 and mixed < 65 * 28 // 4


@settings(max_examples=60, deadline=None)
@given(h=st.integers(1, 65), w=st.integers(1, 65), kh=st.integers(1, 7), kw=st.integers(1, 7),
       sh=st.integers(1, 4), sw=st.integers(1, 4), groups=st.sampled_from([1, 2]))
def test_conv_non_square_property(h, w, kh, kw, sh, sw, groups):
    """Non-square kernels/strides and grouped convs, drawn by hypothesis, against ORT SAME_UPPER."""
    torch.manual_seed(h * 100 + w)
    conv = Conv2dSame(4, 4, (kh, kw), (sh, sw), groups=groups)
    x = torch.randn(2, 4, h, w)
    ours = conv(x)
    assert ours.shape[2:] == (math.ceil(h / sh), math.ceil(w / sw))
    node_attrs = dict(strides=[sh, sw], kernel_shape=[kh, kw], auto_pad="SAME_UPPER", group=groups)
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], **node_attrs)
    inits = [numpy_helper.from_array(conv.weight.detach().numpy(), "w"),
             numpy_helper.from_array(conv.bias.detach().numpy(), "b")]
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4, h, w])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    so = ort.SessionOptions()
    so.log_severity_level = 4
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    if min(_raw_total(h, kh, sh), _raw_total(w, kw, sw)) < 0:
        return  # TF clamps where ORT's SAME_UPPER goes negative: covered by the hand-worked table
    ref = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(
        None, {"x": x.numpy()})[0]
    _check(ours, ref, f"conv in=({h},{w}) k=({kh},{kw}) s=({sh},{sw}) g={groups}")


# ------------------------------------------------------------------ static variants


@pytest.mark.parametrize("size", [(5, 5), (8, 9), (31, 47), (64, 64)])
def test_static_layers_equal_dynamic(size):
    torch.manual_seed(0)
    x = torch.randn(2, 3, *size)
    for k, s, d in [(3, 1, 1), (3, 2, 1), (4, 2, 1), (5, 3, 2), (1, 4, 1), (7, 4, 1)]:
        dyn = Conv2dSame(3, 4, k, s, d)
        sta = Conv2dStaticSame(3, 4, k, s, d, input_size=size)
        sta.load_state_dict(dyn.state_dict())
        assert torch.allclose(dyn(x), sta(x), atol=1e-6), (size, k, s, d)
        if d == 1:
            assert torch.equal(MaxPool2dSame(k, s)(x), MaxPool2dStaticSame(k, s, input_size=size)(x))
            assert torch.allclose(AvgPool2dSame(k, s)(x), AvgPool2dStaticSame(k, s, input_size=size)(x),
                                  atol=1e-6), (size, k, s)


# -------------------------------------------------------------------------- ONNX export


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = Conv2dSame(3, 8, 3, 2)
        self.p1 = MaxPool2dSame(3, 2)
        self.c2 = Conv2dSame(8, 8, 4, 1, dilation=2)
        self.p2 = AvgPool2dSame(3, 2)
        self.c3 = Conv2dSame(8, 4, 5, 3)

    def forward(self, x):
        return self.c3(self.p2(torch.relu(self.c2(self.p1(self.c1(x))))))


def _export(model, x, dynamic: bool) -> bytes:
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), f, dynamo=False, opset_version=17, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {2: "h", 3: "w"}, "y": {2: "oh", 3: "ow"}} if dynamic else None)
    return f.getvalue()


def test_onnx_export_dynamic_runs_identically():
    torch.manual_seed(0)
    net = _Net().eval()
    data = _export(net, torch.randn(1, 3, 64, 64), dynamic=True)
    onnx.checker.check_model(onnx.load_from_string(data))
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    for size in [(64, 64), (31, 47), (17, 20), (65, 33), (9, 9)]:  # odd/even, not the traced size
        x = torch.randn(1, 3, *size)
        with torch.no_grad():
            ours = net(x)
        _check(ours, sess.run(None, {"x": x.numpy()})[0], f"dynamic export at {size}")


def test_onnx_export_static_has_constant_pads_only():
    torch.manual_seed(0)
    size = (50, 37)
    net = _Net().eval()
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        before = net(x)
    to_static_same(net, size)
    kinds = {type(m) for m in net.modules()}
    assert not kinds & {Conv2dSame, MaxPool2dSame, AvgPool2dSame}
    assert {Conv2dStaticSame, MaxPool2dStaticSame, AvgPool2dStaticSame} <= kinds
    with torch.no_grad():
        after = net(x)
    assert torch.allclose(before, after, atol=1e-5)

    model = onnx.load_from_string(_export(net, x, dynamic=False))
    onnx.checker.check_model(model)
    g = model.graph
    assert not any(n.op_type == "Shape" for n in g.node), "static export still reads the input shape"
    constants = {i.name for i in g.initializer}
    constants |= {o for n in g.node if n.op_type == "Constant" for o in n.output}
    for n in g.node:
        if n.op_type == "Pad":
            assert n.input[1] in constants, f"Pad node {n.name} has run-time-computed pads ({n.input[1]})"
    # every pad is folded into the ops themselves: worked by hand for 50x37 (H, W):
    # c1 k3 s2: H out 25 -> 48+3-50=1 (0,1); W out 19 -> 36+3-37=2 (1,1)  => [t,l,b,r] = [0,1,1,1]
    # p1 k3 s2 on 25x19: H out 13 -> 24+3-25=2 (1,1); W out 10 -> 18+3-19=2 (1,1) => [1,1,1,1]
    # c2 k4 d2 (eff. 7) s1 on 13x10: 6 each -> [3,3,3,3]
    # p2 k3 s2 on 13x10: H out 7 -> 12+3-13=2 (1,1); W out 5 -> 8+3-10=1 (0,1) => [1,0,1,1]
    # c3 k5 s3 on 7x5: H out 3 -> 6+5-7=4 (2,2); W out 2 -> 3+5-5=3 (1,2) => [2,1,2,2]
    ops = [(n.op_type, list(next(a.ints for a in n.attribute if a.name == "pads")))
           for n in g.node if n.op_type in ("Conv", "MaxPool", "AveragePool")]
    assert ops == [("Conv", [0, 1, 1, 1]), ("MaxPool", [1, 1, 1, 1]), ("Conv", [3, 3, 3, 3]),
                   ("AveragePool", [1, 0, 1, 1]), ("Conv", [2, 1, 2, 2])], ops
    assert not any(n.op_type == "Pad" for n in g.node)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    _check(after, sess.run(None, {"x": x.numpy()})[0], "static export")
    _check(before, sess.run(None, {"x": x.numpy()})[0], "static export vs dynamic model")


def test_to_static_same_keeps_training_flag_and_weights():
    net = _Net().train()
    w = net.c1.weight.detach().clone()
    to_static_same(net, (16, 16))
    assert net.training and net.c1.training
    assert torch.equal(net.c1.weight, w)
    assert isinstance(net.c1, Conv2dStaticSame) and net.c1.input_size == (16, 16)
    # a layer shared between two input sizes cannot become static
    shared = Conv2dSame(3, 3, 3, 2)
    seq = nn.Sequential(shared, shared)
    with pytest.raises(UsageError, match="spatial sizes"):
        to_static_same(seq, (16, 16))


def test_static_conv_without_bias_exports_one_conv_node():
    torch.manual_seed(3)
    m = Conv2dStaticSame(3, 4, 3, 2, bias=False, input_size=(8, 8)).eval()  # pads (0,1): asymmetric
    x = torch.randn(1, 3, 8, 8)
    model = onnx.load_from_string(_export(m, x, dynamic=False))
    assert [n.op_type for n in model.graph.node] == ["Conv"]
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    _check(m(x), sess.run(None, {"x": x.numpy()})[0], "bias-free static conv")
