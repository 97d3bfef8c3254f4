"""RepPointsV2 (mmdetection-mini's RepPointsV2Head, run by mini with mmcv 2.1.0's ops): zooport's native head
against tests/golden/mini/reppoints_v2_slim (scripts/make_golden_mini_reppoints_v2.py)."""
from __future__ import annotations

import numpy as np
import torch

from helpers import assert_close
from mini_golden import GOLDEN, assert_same_dets, index, rebuilt_state_dict

NAME = "reppoints_v2_slim"


def _model_and_input(tmp_path):
    from zooport.converters.mmdet.load import load_mmdet

    d, idx = GOLDEN / NAME, index(NAME)
    ck = tmp_path / "r.pth"
    torch.save({"state_dict": rebuilt_state_dict(NAME)}, ck)
    model = load_mmdet(ck, d / "config.py")
    shape = [int(s) for s in idx["input"].split()[2:]]
    normalised = torch.from_numpy(np.fromfile(d / "input.f32", "<f4").reshape(shape))
    # the input contract is RGB [0, 1]: mini's Normalize(to_rgb) step undone (its pixels are integers),
    # then the model's own normalisation (read from that step) must give mini's tensor back
    n = model.input_norm
    hw = tuple(int(v) for v in idx["img_shape"].split()[:2])
    x = torch.round(normalised * n.std + n.mean) / 255
    x[:, :, hw[0]:, :] = 0
    x[:, :, :, hw[1]:] = 0
    assert float((n(x, hw) - normalised).abs().max()) <= 1e-5
    return model, x, idx


def test_reppoints_v2_outputs_and_detections_equal_minis(tmp_path):
    model, x, idx = _model_and_input(tmp_path)
    hw = tuple(int(v) for v in idx["img_shape"].split()[:2])
    with torch.no_grad():
        groups = model.raw(x, img_hw=hw)
    assert len(groups) == 6
    for g, grp in enumerate(groups):
        for lvl, t in enumerate(grp):
            shape = [int(s) for s in idx[f"out{g}_{lvl}"].split()[1:]]
            ref = np.fromfile(GOLDEN / NAME / f"out{g}_{lvl}.f32", "<f4").reshape(shape)
            assert_close(t, ref, what=f"group {g} level {lvl}")
    sf = [float(v) for v in idx["scale_factor"].split()][:2]
    det = model.predict(x, img_hw=hw)[0]
    assert_same_dets(det[:, :5], det[:, 5].long(), GOLDEN / NAME / "dets_norescale.txt")
    det = model.predict(x, img_hw=hw, scale_factor=sf)[0]
    assert_same_dets(det[:, :5], det[:, 5].long(), GOLDEN / NAME / "dets.txt")

