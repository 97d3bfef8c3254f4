"""Shared body of tests/test_onnx_slim_*.py: acceptance 1 on the 19 slim Darknet topologies
(ZOOPORT_ASSETS), onnxruntime == PyTorch. The 19 are split over three files (small, medium,
heavy) so that each runs in about a minute of CPU; each file binds its names with ``make_fixture``.

Two exports per model keep these files affordable on 2 cores (19 models, some
with ~1000 ONNX nodes): a static --raw export at the golden size (256),
compared with PyTorch's ``raw`` and with Darknet's own head inputs
(headNNN_in.f32), and a --dynamic default-mode export (traced at 128x192),
run on the golden input at 256x256 and on a batch of 2 at 128x192 (H x W).
The static default-mode graph is covered on the real models
(tests/test_onnx_real_*.py), where OpenCV runs it too.
"""
from __future__ import annotations

import numpy as np
import pytest

from helpers import asset, assert_close, read_f32

GROUPS = {
    "small": ["yolov2", "yolov2-tiny", "yolov3", "yolov3-tiny", "yolov3-tiny-prn", "yolov3-spp", "yolov4-tiny",
              "yolov4-tiny-3l", "yolov7-tiny", "enet-coco", "Gaussian_yolov3_BDD"],
    "medium": ["yolov4", "yolov4-csp", "yolov4-csp-swish", "yolov7", "csresnext50-panet-spp"],
    "heavy": ["yolov4x-mish", "yolov4-p6", "yolov4-sam-mish-csp-reorg-bfm"],
}


SECOND = (128, 192)  # multiples of every stride used (32, 64)


def _heads(folder):
    heads = []
    for line in (folder / "index.txt").read_text().splitlines():
        f = line.split()
        if f and f[0] == "head":
            heads.append((int(f[1]), tuple(int(v) for v in f[5:8])))
    return heads


def make_fixture(group: str):
    """A module-scoped, parametrised ``case`` fixture over GROUPS[group]: (name, folder, model, x, files)."""

    @pytest.fixture(scope="module", params=GROUPS[group])
    def case(request, tmp_path_factory):
        from zooport.converters.darknet.load import load_darknet
        from zooport.export.onnx import export_onnx

        name = request.param
        folder = asset(f"golden/darknet-slim/{name}")
        model = load_darknet(folder / f"{name}.cfg", folder / f"{name}.weights").eval()
        x = read_f32(asset("golden/darknet-slim/input_bus_256.f32"), (1, 3, 256, 256))
        d = tmp_path_factory.mktemp(name)
        files = {
            "raw": export_onnx(model, d / "raw.onnx", raw=True),
            "dynamic": export_onnx(model, d / "dynamic.onnx", dynamic=True, imgsz=SECOND),
        }
        return name, folder, model, x, files

    return case


def _run(path, x):
    from zooport.export.checks import ort_session, run_ort

    return list(run_ort(ort_session(path, threads=2), x).values())


def test_default_at_golden_size(case):
    from zooport.export.checks import torch_reference

    name, _, model, x, files = case
    (ours,), (ref,) = _run(files["dynamic"], x), torch_reference(model, x)
    assert ref.ndim == 3 and ref.shape[0] == 1 and ref.shape[2] >= 6
    assert_close(ours, ref, what=f"{name} default")


def test_raw_matches_torch_and_darknet(case):
    from zooport.export.checks import torch_reference

    name, folder, model, x, files = case
    ours, refs = _run(files["raw"], x), torch_reference(model, x, "raw")
    heads = _heads(folder)
    assert len(ours) == len(refs) == len(heads)
    for i, (o, r, (nnn, chw)) in enumerate(zip(ours, refs, heads)):
        assert_close(o, r, what=f"{name} raw{i} vs PyTorch")
        golden = read_f32(folder / f"head{nnn:03d}_in.f32", (1, *chw))
        assert_close(o, golden, what=f"{name} raw{i} vs Darknet head{nnn:03d}_in")


def test_dynamic_other_size_batch2(case):
    from zooport.export.checks import torch_reference

    name, _, model, _, files = case
    h, w = SECOND
    x = np.random.default_rng(7).random((2, 3, h, w), dtype=np.float32)
    (ours,), (ref,) = _run(files["dynamic"], x), torch_reference(model, x)
    assert ref.shape[0] == 2
    assert_close(ours, ref, what=f"{name} dynamic 2x3x{h}x{w}")
