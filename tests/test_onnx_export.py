"""ONNX export machinery on a small self-contained Detector (no assets needed).

The toy is YOLOv5-shaped (Conv+BN+SiLU, two levels, grid decode) so that
fusing, dynamic shapes, raw/decoded/NMS modes, metadata and failure handling
are exercised without waiting on the real families.
"""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from zooport.errors import ExportError, UsageError
from zooport.export.checks import compare, ort_session, run_ort, torch_reference
from zooport.export.onnx import export_onnx
from zooport.model_defs.base import Detector, default_preprocess
from zooport.postprocess import non_max_suppression


def _cbs(c1, c2, s):
    return nn.Sequential(nn.Conv2d(c1, c2, 3, s, 1, bias=False), nn.BatchNorm2d(c2), nn.SiLU())


class ToyDetector(Detector):
    """Two-level anchor-based detector: raw = per-level (B, na*(5+nc), H, W)."""

    family = "toy"

    def __init__(self, nc=3, seed=0):
        anchors = [[[10, 13], [16, 30]], [[30, 61], [62, 45]]]
        super().__init__(names=[f"c{i}" for i in range(nc)], stride=[8, 16], input_size=[64, 96],
                         preprocess=default_preprocess(), anchors=anchors, source={"format": "toy", "sha256": "0" * 64})
        g = torch.Generator().manual_seed(seed)
        self.no, self.na = 5 + nc, 2
        self.b1 = nn.Sequential(_cbs(3, 8, 2), _cbs(8, 16, 2), _cbs(16, 16, 2))
        self.b2 = _cbs(16, 16, 2)
        self.heads = nn.ModuleList([nn.Conv2d(16, self.na * self.no, 1), nn.Conv2d(16, self.na * self.no, 1)])
        for p in self.parameters():
            p.data = torch.randn(p.shape, generator=g) * 0.5
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1, generator=g)
                m.running_var.uniform_(0.5, 1.5, generator=g)
        self.register_buffer("anchor_px", torch.tensor(anchors, dtype=torch.float32))
        self.fused = False

    def raw(self, x):
        f1 = self.b1(x)
        f2 = self.b2(f1)
        return [self.heads[0](f1), self.heads[1](f2)]

    def forward(self, x):
        outs = []
        for i, r in enumerate(self.raw(x)):
            b, _, h, w = r.shape
            r = r.view(b, self.na, self.no, h, w).permute(0, 1, 3, 4, 2).sigmoid()
            gy, gx = torch.meshgrid(torch.arange(h, dtype=r.dtype), torch.arange(w, dtype=r.dtype), indexing="ij")
            grid = torch.stack((gx, gy), -1).view(1, 1, h, w, 2)
            xy = (r[..., :2] * 2 - 0.5 + grid) * self.stride[i]
            wh = (r[..., 2:4] * 2) ** 2 * self.anchor_px[i].to(r.dtype).view(1, self.na, 1, 1, 2)
            outs.append(torch.cat((xy, wh, r[..., 4:]), -1).view(b, -1, self.no))
        return torch.cat(outs, 1)

    def fuse(self):
        for seq in list(self.b1) + [self.b2]:
            conv, bn = seq[0], seq[1]
            if isinstance(bn, nn.Identity):
                continue
            std = (bn.running_var + bn.eps).sqrt()
            fused = nn.Conv2d(conv.in_channels, conv.out_channels, 3, conv.stride, 1, bias=True)
            fused.weight.data = conv.weight.data * (bn.weight / std).view(-1, 1, 1, 1)
            fused.bias.data = bn.bias.data - bn.running_mean * bn.weight / std
            seq[0], seq[1] = fused, nn.Identity()
        self.fused = True
        return self


@pytest.fixture(scope="module")
def toy():
    return ToyDetector().eval()


@pytest.fixture(scope="module")
def exports(toy, tmp_path_factory):
    d = tmp_path_factory.mktemp("onnx_toy")
    out = {}
    for name, kw in {"default": {}, "raw": {"raw": True}, "dyn": {"dynamic": True},
                     "rawdyn": {"raw": True, "dynamic": True},
                     "nms": {"nms": True, "conf": 0.3, "iou": 0.5, "max_det": 50},
                     "nmsdyn": {"nms": True, "conf": 0.3, "iou": 0.5, "max_det": 50, "dynamic": True},
                     "half": {"half": True}}.items():
        out[name] = export_onnx(toy, d / f"{name}.onnx", **kw)
    return out


def _x(b, h, w, seed=1):
    return np.random.default_rng(seed).random((b, 3, h, w), dtype=np.float32)


@pytest.mark.parametrize("key,mode,shape", [
    ("default", "default", (1, 64, 96)), ("raw", "raw", (1, 64, 96)),
    ("dyn", "default", (2, 96, 64)), ("rawdyn", "raw", (2, 32, 128)),
])
def test_parity(toy, exports, key, mode, shape):
    x = _x(*shape)
    res = compare(run_ort(ort_session(exports[key]), x), torch_reference(toy, x, mode))
    assert len(res) == (2 if mode == "raw" else 1)
    for r in res:
        assert r.ok, r


def test_static_export_rejects_other_shape(exports):
    with pytest.raises(Exception):
        run_ort(ort_session(exports["default"]), _x(2, 64, 96))


def test_fuse_happens_on_a_copy(toy, exports):
    assert not toy.fused
    m = onnx.load(str(exports["default"]))
    assert not any(n.op_type == "BatchNormalization" for n in m.graph.node)


def test_metadata_and_checker(toy, exports):
    m = onnx.load(str(exports["nms"]))
    onnx.checker.check_model(m, full_check=True)
    props = {p.key: p.value for p in m.metadata_props}
    assert json.loads(props["names"]) == ["c0", "c1", "c2"]
    assert json.loads(props["stride"]) == [8, 16]
    assert json.loads(props["anchors"]) == toy.anchors
    assert json.loads(props["input_size"]) == [64, 96]
    assert json.loads(props["preprocessing"])["mode"] == "letterbox"
    assert json.loads(props["source"]) == {"format": "toy", "sha256": "0" * 64}
    assert props["zooport_version"] and props["mode"] == "nms"
    assert json.loads(props["nms"])["max_det"] == 50
    assert [o.name for o in m.graph.output] == ["num_dets", "boxes", "scores", "classes"]
    assert any(n.op_type == "NonMaxSuppression" for n in m.graph.node)


def _check_nms_against_postprocess(toy, path, x, conf=0.3, iou=0.5, max_det=50):
    out = run_ort(ort_session(path), x)
    pred = toy(torch.from_numpy(x))
    ref = non_max_suppression(pred, conf, iou, max_det=max_det)
    total = 0
    for b, r in enumerate(ref):
        n = int(out["num_dets"][b, 0])
        assert n == r.shape[0], (b, n, r.shape[0])
        np.testing.assert_array_equal(out["classes"][b, :n], r[:, 5].numpy().astype(np.int64))
        np.testing.assert_allclose(out["boxes"][b, :n], r[:, :4].numpy(), atol=1e-3)
        np.testing.assert_allclose(out["scores"][b, :n], r[:, 4].numpy(), atol=1e-5)
        assert not out["boxes"][b, n:].any() and not out["scores"][b, n:].any()
        total += n
    return total


def test_nms_matches_postprocess(toy, exports):
    assert _check_nms_against_postprocess(toy, exports["nms"], _x(1, 64, 96, seed=3)) > 3


def test_nms_dynamic_batch_and_size(toy, exports):
    assert _check_nms_against_postprocess(toy, exports["nmsdyn"], _x(2, 128, 96, seed=4)) > 6


def test_nms_pytorch_wrapper_equals_graph(toy, exports):
    x = _x(1, 64, 96, seed=5)
    res = compare(run_ort(ort_session(exports["nms"]), x), torch_reference(toy, x, "nms", 0.3, 0.5, 50))
    assert all(r.ok for r in res), res


def test_nms_max_det_larger_than_candidates(toy, tmp_path):
    # 32x32 input: N = 2*(4*4 + 2*2) = 40 < max_det = 100; TopK must still be valid.
    p = export_onnx(toy, tmp_path / "small.onnx", imgsz=32, nms=True, conf=0.3, max_det=100)
    out = run_ort(ort_session(p), _x(1, 32, 32))
    assert out["boxes"].shape == (1, 100, 4) and out["num_dets"].dtype == np.int64


def test_half_runs_and_difference_is_reported(toy, exports, capsys):
    x = _x(1, 64, 96)
    out = run_ort(ort_session(exports["half"]), x.astype(np.float16))["output"]
    assert out.dtype == np.float16
    ref = torch_reference(toy, x)[0]
    err = np.abs(out.astype(np.float64) - ref)
    rel = float(err.max() / max(1.0, np.abs(ref).max()))
    print(f"toy half vs fp32: max abs err {err.max():.4g} (relative {rel:.2e})")
    assert np.isfinite(out).all() and rel < 1e-2


class _Broken(ToyDetector):
    def forward(self, x):
        raise RuntimeError("boom in forward")


def test_failure_leaves_no_file(tmp_path):
    p = tmp_path / "bad.onnx"
    with pytest.raises(ExportError, match="boom in forward"):
        export_onnx(_Broken().eval(), p)
    assert list(tmp_path.iterdir()) == []
    p.write_bytes(b"old")  # an existing file is left untouched by a failed export
    with pytest.raises(ExportError):
        export_onnx(_Broken().eval(), p)
    assert p.read_bytes() == b"old" and len(list(tmp_path.iterdir())) == 1


@pytest.mark.parametrize("kw,msg", [({"nms": True, "raw": True}, "mutually exclusive"),
                                    ({"imgsz": 60}, "multiple of"), ({"opset": 9}, "opset"),
                                    ({"batch": 0}, "batch"), ({"nms": True, "conf": 1.5}, "conf")])
def test_bad_arguments(toy, tmp_path, kw, msg):
    with pytest.raises(UsageError, match=msg):
        export_onnx(toy, tmp_path / "x.onnx", **kw)
    assert list(tmp_path.iterdir()) == []


def test_missing_output_dir(toy, tmp_path):
    with pytest.raises(Exception, match="does not exist"):
        export_onnx(toy, tmp_path / "nope" / "x.onnx")


def _out_dims(path):
    """graph.output -> {name: [int or dim name]} as declared in the file."""
    return {o.name: [d.dim_param if d.HasField("dim_param") else d.dim_value for d in o.type.tensor_type.shape.dim]
            for o in onnx.load(str(path)).graph.output}


def test_output_dims_concrete_when_static_named_when_dynamic(exports):
    # 64x96 input, strides 8 and 16, 2 anchors: 2 * (8*12 + 4*6) = 240 rows of 5 + 3 classes
    assert _out_dims(exports["default"]) == {"output": [1, 240, 8]}
    assert _out_dims(exports["half"]) == {"output": [1, 240, 8]}
    assert _out_dims(exports["raw"]) == {"raw0": [1, 16, 8, 12], "raw1": [1, 16, 4, 6]}
    assert _out_dims(exports["nms"]) == {"num_dets": [1, 1], "boxes": [1, 50, 4], "scores": [1, 50],
                                         "classes": [1, 50]}
    assert _out_dims(exports["dyn"]) == {"output": ["batch", "anchors", 8]}
    assert _out_dims(exports["rawdyn"]) == {"raw0": ["batch", 16, "raw0_height", "raw0_width"],
                                            "raw1": ["batch", 16, "raw1_height", "raw1_width"]}
    assert _out_dims(exports["nmsdyn"]) == {"num_dets": ["batch", 1], "boxes": ["batch", 50, 4],
                                            "scores": ["batch", 50], "classes": ["batch", 50]}
    inp = onnx.load(str(exports["dyn"])).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in inp] == ["batch", 3, "height", "width"]


def test_export_copies_the_model_and_leaves_it_alone(tmp_path):
    """export_onnx traces a CPU copy: the caller's tensors, mode and (unfused) layers are untouched."""
    from zooport.export.onnx import cpu_copy

    m = ToyDetector(seed=7).train()
    before = {k: (v.data_ptr(), v.clone()) for k, v in m.state_dict().items()}
    export_onnx(m, tmp_path / "t.onnx")
    assert m.training and not m.fused
    after = m.state_dict()
    assert all(after[k].data_ptr() == p and torch.equal(after[k], v) for k, (p, v) in before.items())
    c = cpu_copy(m)
    ptrs = {v.data_ptr() for v in m.state_dict().values()}
    assert all(v.device.type == "cpu" and v.data_ptr() not in ptrs for v in c.state_dict().values())
    assert all(torch.equal(c.state_dict()[k], v) for k, v in m.state_dict().items())
    assert all(a.requires_grad == b.requires_grad for a, b in zip(c.parameters(), m.parameters()))


def test_meta_model_is_an_export_error(tmp_path):
    with torch.device("meta"):
        m = ToyDetector()
    with pytest.raises(ExportError, match="'meta' device"):
        export_onnx(m, tmp_path / "meta.onnx")
    assert next(m.parameters()).is_meta and not (tmp_path / "meta.onnx").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_model_exports_from_a_cpu_copy(tmp_path):
    m = ToyDetector(seed=7).eval()
    ref = export_onnx(m, tmp_path / "cpu.onnx")
    m.cuda()
    got = export_onnx(m, tmp_path / "cuda.onnx")
    assert next(m.parameters()).is_cuda  # not moved
    x = _x(1, 64, 96)
    a, b = run_ort(ort_session(ref), x), run_ort(ort_session(got), x)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    from zooport.export.checks import check_export

    lines = check_export(m, got, mode="default")
    assert not any("FAIL" in line for line in lines) and next(m.parameters()).is_cuda
