"""The real YOLOv5 v7.0 yolov5n.pt against YOLOv5's own outputs (golden/real/yolov5n_*),
plus fuse, round trips, strict converters, bundled architectures and ONNX traceability."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import assert_close, asset, read_f32

SHA = "4f180cf23ba0717ada0badd6c685026d73d48f184d00fc159c2641284b2ac0a3"


@pytest.fixture(scope="module")
def yolov5n():
    from helpers import sha256

    p = asset("zoo/yolov5/yolov5n.pt")
    assert sha256(p) == SHA
    import zooport

    return zooport.load_yolov5(p)


def _shapes(case):
    out = {}
    for line in asset(f"golden/real/{case}/index.txt").read_text().splitlines():
        parts = line.split()
        if len(parts) > 2 and parts[1] == "shape":
            out[parts[0]] = tuple(int(v) for v in parts[2:])
    return out


def _input(case):
    return torch.from_numpy(read_f32(asset(f"golden/real/{case}/input_640.f32"), (1, 3, 640, 640)).copy())


@pytest.mark.parametrize("case", ["yolov5n_bus", "yolov5n_zidane"])
def test_raw_matches_yolov5(yolov5n, case):
    shapes = _shapes(case)
    with torch.no_grad():
        raw = yolov5n.raw(_input(case))
    assert len(raw) == 3
    for k, ours in enumerate(raw):
        s = shapes[f"raw{k}"]  # (1, 3, H, W, 85)
        ref = read_f32(asset(f"golden/real/{case}/raw{k}.f32"), s)
        ref = ref.transpose(0, 1, 4, 2, 3).reshape(1, s[1] * s[4], s[2], s[3])
        assert_close(ours, ref, rel=1e-4, what=f"{case} raw{k}")


def _dets(case):
    rows = [list(map(float, ln.split())) for ln in asset(f"golden/real/{case}/dets.txt").read_text().splitlines()
            if ln.strip()]
    return np.array(rows, dtype=np.float64).reshape(-1, 6)


@pytest.mark.parametrize("case", ["yolov5n_bus", "yolov5n_zidane"])
def test_decoded_and_nms_match_yolov5(yolov5n, case):
    from zooport.postprocess import non_max_suppression

    with torch.no_grad():
        dec = yolov5n(_input(case))
    assert dec.shape == (1, 25200, 85)
    if case == "yolov5n_bus":
        ref = read_f32(asset(f"golden/real/{case}/decoded.f32"), _shapes(case)["decoded"])
        assert_close(dec, ref, rel=1e-3, what="decoded")
    dets = non_max_suppression(dec, 0.25, 0.45)[0].numpy().astype(np.float64)
    ref = _dets(case)
    assert dets.shape == ref.shape, (dets, ref)
    order, rorder = np.lexsort((dets[:, 0], dets[:, 5])), np.lexsort((ref[:, 0], ref[:, 5]))
    d, r = dets[order], ref[rorder]
    assert np.array_equal(d[:, 5], r[:, 5])
    assert np.abs(d[:, :4] - r[:, :4]).max() <= 0.5
    assert np.abs(d[:, 4] - r[:, 4]).max() <= 1e-3


def test_metadata(yolov5n):
    m = yolov5n.meta
    assert m["family"] == "yolov5" and len(m["names"]) == 80 and m["names"][0] == "person"
    assert m["stride"] == [8, 16, 32] and m["input_size"] == [640, 640]
    assert m["anchors"][0] == [[10, 13], [16, 30], [33, 23]] and m["anchors"][2][2] == [373, 326]
    assert m["preprocess"]["mode"] == "letterbox" and m["preprocess"]["pad_value"] == 114
    assert m["source"]["format"] == "yolov5" and m["source"]["sha256"] == SHA and m["source"]["weights"] == "model"
    assert sum(p.numel() for p in yolov5n.parameters()) == 1872157
    assert all(p.dtype == torch.float32 for p in yolov5n.state_dict().values() if p.is_floating_point())


def test_fuse_preserves_outputs(yolov5n, tmp_path):
    import copy

    x = torch.rand(1, 3, 192, 256, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = yolov5n.raw(x)
        fused = copy.deepcopy(yolov5n).fuse()
        out = fused.raw(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    for a, b in zip(out, ref):
        # fp32 re-association only: within 1e-5 relative to the output scale (measured: ~1e-6)
        assert (a - b).abs().max().item() <= 1e-5 * max(1.0, b.abs().max().item())
    from zooport.converters.native import load_native, save_native
    from zooport.converters.yolov5.load import to_yolov5_state_dict
    from zooport.errors import UsageError

    save_native(fused, tmp_path / "f.pt")
    again = load_native(tmp_path / "f.pt")
    with pytest.raises(UsageError, match="fused"):
        to_yolov5_state_dict(fused)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(again.raw(x), out))


def test_round_trip_native_yolov5_native_exact(yolov5n, tmp_path):
    from zooport.converters.native import load_native, save_native
    from zooport.converters.yolov5.load import from_yolov5_state_dict, to_yolov5_state_dict

    sd = to_yolov5_state_dict(yolov5n)
    assert all(k.startswith("model.") for k in sd) and "model.24.anchors" in sd
    assert sd["model.0.conv.weight"].shape == (16, 3, 6, 6)
    back = from_yolov5_state_dict(yolov5n, sd)
    own = yolov5n.state_dict()
    assert set(back) == set(own) and all(torch.equal(back[k], own[k]) for k in own)
    for fmt in ("pt", "safetensors"):
        p = save_native(yolov5n, tmp_path / f"n.{fmt}")
        again = load_native(p)
        assert again.meta == yolov5n.meta
        sd2 = to_yolov5_state_dict(again)
        assert set(sd2) == set(sd) and all(torch.equal(sd2[k], sd[k]) for k in sd)
    obj = torch.load(tmp_path / "n.pt", weights_only=True)
    assert obj["family"] == "yolov5"


def test_state_dict_converters_are_strict(yolov5n):
    from zooport.converters.yolov5.load import from_yolov5_state_dict, to_yolov5_state_dict
    from zooport.errors import CheckpointError

    sd = to_yolov5_state_dict(yolov5n)
    extra = dict(sd, **{"model.3.cv9.weight": torch.zeros(1)})
    with pytest.raises(CheckpointError, match=r"model\.3\.cv9\.weight"):
        from_yolov5_state_dict(yolov5n, extra)
    missing = {k: v for k, v in sd.items() if k != "model.2.m.0.cv1.bn.running_var"}
    with pytest.raises(CheckpointError, match=r"model\.2\.m\.0\.cv1\.bn\.running_var"):
        from_yolov5_state_dict(yolov5n, missing)
    wrong = dict(sd, **{"model.24.m.0.weight": torch.zeros(255, 65, 1, 1)})
    with pytest.raises(CheckpointError, match=r"model\.24\.m\.0\.weight.*shape"):
        from_yolov5_state_dict(yolov5n, wrong)
    with pytest.raises(CheckpointError, match="form 'model.N"):
        from_yolov5_state_dict(yolov5n, dict(sd, junk=torch.zeros(1)))
    # releases <= v5.0 carry anchor_grid (pixels): accepted when consistent, rejected otherwise
    ag = (sd["model.24.anchors"] * torch.tensor([8.0, 16.0, 32.0]).view(-1, 1, 1)).view(3, 1, 3, 1, 1, 2)
    assert set(from_yolov5_state_dict(yolov5n, dict(sd, **{"model.24.anchor_grid": ag}))) == set(sd)
    with pytest.raises(CheckpointError, match="anchor_grid"):
        from_yolov5_state_dict(yolov5n, dict(sd, **{"model.24.anchor_grid": ag * 2}))
