"""Deformable convolution in plain PyTorch against independent computations written here.

(The MMDetection parity of the heads that use it, VFNet and others, is in the mmdet-more tests.)
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from zooport.model_defs.deform_conv import deform_conv2d


def _ref(x, offset, weight, stride, pad, dil, dg, mask=None):
    """Loop-per-output reference: mmcv's im2col rule (four neighbours, each only when inside)."""
    x, offset, weight = (t.double().numpy() for t in (x, offset, weight))
    b, c, h, w = x.shape
    cout, cg, kh, kw = weight.shape
    ho, wo = offset.shape[2:]
    out = np.zeros((b, cout, ho, wo))
    cpg = c // dg
    for n in range(b):
        for oy in range(ho):
            for ox in range(wo):
                col = np.zeros((c, kh, kw))
                for ch in range(c):
                    g = ch // cpg
                    for i in range(kh):
                        for j in range(kw):
                            k = i * kw + j
                            y = oy * stride - pad + i * dil + offset[n, g * 2 * kh * kw + 2 * k, oy, ox]
                            xx = ox * stride - pad + j * dil + offset[n, g * 2 * kh * kw + 2 * k + 1, oy, ox]
                            y0, x0 = int(np.floor(y)), int(np.floor(xx))
                            v = 0.0
                            for yy, xq, wt in ((y0, x0, (1 - (y - y0)) * (1 - (xx - x0))),
                                               (y0, x0 + 1, (1 - (y - y0)) * (xx - x0)),
                                               (y0 + 1, x0, (y - y0) * (1 - (xx - x0))),
                                               (y0 + 1, x0 + 1, (y - y0) * (xx - x0))):
                                if 0 <= yy < h and 0 <= xq < w:
                                    v += wt * x[n, ch, yy, xq]
                            if mask is not None:
                                v *= mask[n, g * kh * kw + k, oy, ox]
                            col[ch, i, j] = v
                out[n, :, oy, ox] = (weight.reshape(cout, -1) @ col.reshape(-1))
    return out


@pytest.mark.parametrize("stride,pad,dil,dg", [(1, 1, 1, 1), (2, 1, 1, 2), (1, 2, 2, 1)])
def test_random_offsets_match_loop_reference(stride, pad, dil, dg):
    g = torch.Generator().manual_seed(stride * 10 + dil + dg)
    x = torch.randn(1, 4, 6, 7, generator=g)
    w = torch.randn(3, 4, 3, 3, generator=g)
    ho = (6 + 2 * pad - (dil * 2 + 1)) // stride + 1
    wo = (7 + 2 * pad - (dil * 2 + 1)) // stride + 1
    off = torch.randn(1, dg * 18, ho, wo, generator=g) * 2.5  # many taps fall partly outside
    mask = torch.rand(1, dg * 9, ho, wo, generator=g)
    ours = deform_conv2d(x, off, w, None, stride, pad, dil, 1, dg)
    assert np.abs(ours.double().numpy() - _ref(x, off, w, stride, pad, dil, dg)).max() < 1e-4
    ours = deform_conv2d(x, off, w, None, stride, pad, dil, 1, dg, mask=mask)
    assert np.abs(ours.double().numpy() - _ref(x, off, w, stride, pad, dil, dg, mask.numpy())).max() < 1e-4


def test_zero_offsets_equal_conv2d_with_groups_and_bias():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 6, 9, 11, generator=g)
    w = torch.randn(4, 3, 3, 3, generator=g)
    b = torch.randn(4, generator=g)
    ours = deform_conv2d(x, torch.zeros(2, 18, 5, 6), w, b, 2, 1, 1, 2)
    assert torch.allclose(ours, F.conv2d(x, w, b, 2, 1, 1, 2), atol=1e-5)


def test_onnx_export_runs_in_onnxruntime(tmp_path):
    import onnxruntime as ort

    from zooport.model_defs.deform_conv import DeformConv2d

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.off = torch.nn.Conv2d(4, 18, 3, 1, 1)
            self.dcn = DeformConv2d(4, 5, 3, 1, 1)

        def forward(self, x):
            return self.dcn(x, self.off(x))

    m = M().eval()
    torch.nn.init.normal_(m.dcn.weight)
    x = torch.randn(1, 4, 8, 8)
    torch.onnx.export(m, x, str(tmp_path / "dcn.onnx"), dynamo=False, opset_version=17, input_names=["x"])
    sess = ort.InferenceSession(str(tmp_path / "dcn.onnx"), providers=["CPUExecutionProvider"])
    op_types = {n.op_type for n in __import__("onnx").load(str(tmp_path / "dcn.onnx")).graph.node}
    assert "GridSample" not in op_types and "GatherElements" in op_types
    (out,) = sess.run(None, {"x": x.numpy()})
    with torch.no_grad():
        assert np.abs(out - m(x).numpy()).max() < 1e-4
