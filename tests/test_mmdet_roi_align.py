"""RoIAlign (mmcv semantics, plain PyTorch) and SingleRoIExtractor against MMDetection 3.3.0 goldens."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import assert_close, asset, read_f32

from zooport.model_defs.mmdet.roi_align import SingleRoIExtractor, roi_align

EXTRACTOR = {"type": "SingleRoIExtractor", "roi_layer": {"type": "RoIAlign", "output_size": 7, "sampling_ratio": 0},
             "out_channels": 32, "featmap_strides": [4, 8, 16, 32]}


def test_constant_map_gives_constant_inside():
    feat = torch.full((1, 2, 10, 12), 3.5)
    rois = torch.tensor([[0, 4.0, 4.0, 30.0, 20.0], [0, 1.0, 2.0, 3.0, 5.0]])
    out = roi_align(feat, rois, (7, 7), 0.25, 0, True)
    assert out.shape == (2, 2, 7, 7)
    assert torch.allclose(out, torch.full_like(out, 3.5), atol=1e-6)


def test_ramp_is_bin_centre_average():
    """f(y, x) = x is linear, so each bin's value is the mean x of its samples: the bin centre."""
    h, w = 16, 20
    feat = torch.arange(w, dtype=torch.float32).expand(1, 1, h, w).contiguous()
    x1, x2 = 2.25, 11.75  # aligned: feature coords x*1 - 0.5, strictly inside the map
    rois = torch.tensor([[0, x1, 3.0, x2, 9.0]])
    out = roi_align(feat, rois, (2, 4), 1.0, 0, True)[0, 0]
    start, size = x1 - 0.5, x2 - x1
    centres = start + (np.arange(4) + 0.5) * size / 4
    assert np.allclose(out.numpy(), np.tile(centres, (2, 1)), atol=1e-5)


def test_outside_samples_are_zero_and_empty_roi():
    feat = torch.ones(1, 1, 4, 4)
    out = roi_align(feat, torch.tensor([[0, 40.0, 40.0, 60.0, 60.0], [0, 2.0, 2.0, 2.0, 2.0]]), (2, 2), 1.0, 0, True)
    assert float(out[0].abs().max()) == 0.0  # entirely beyond the map
    assert float(out[1].abs().max()) == 0.0  # zero-size box: grid 0, count 1, sum 0


def test_level_mapping_finest_scale():
    ex = SingleRoIExtractor(EXTRACTOR, "roi")
    # sqrt(area) 56 -> log2(1) = 0; 112 -> 1; 224 -> 2; 1000 -> clamped to 3; 10 -> 0
    rois = torch.tensor([[0, 0, 0, 56.0, 56.0], [0, 0, 0, 112.0, 112.0], [0, 0, 0, 224, 224],
                         [0, 0, 0, 1000, 1000], [0, 0, 0, 10, 10]])
    assert ex.map_roi_levels(rois).tolist() == [0, 1, 2, 3, 0]


@pytest.mark.parametrize("name", ["faster_rcnn_r18s_fpn", "cascade_rcnn_r18s_fpn", "libra_faster_rcnn_r18s_fpn",
                                  "sabl_faster_rcnn_r18s_fpn"])
def test_roi_feats16_matches_mmcv(name):
    """The extractor on the golden neck features and the first 16 golden proposals = mmcv's RoIAlign."""
    folder = asset(f"golden/mmdet-more/{name}")
    feats = [torch.from_numpy(read_f32(folder / f"neck_{i}.f32", (1, 32, 64 >> i, 64 >> i)).copy()) for i in range(4)]
    n = int((folder / "index.txt").read_text().split("proposals shape ")[1].split()[0])
    props = torch.from_numpy(read_f32(folder / "proposals.f32", (n, 5)).copy())
    rois = torch.cat([torch.zeros(16, 1), props[:16, :4]], 1)
    out = SingleRoIExtractor(EXTRACTOR, "roi")(feats, rois)
    assert_close(out, read_f32(folder / "roi_feats16.f32", (16, 32, 7, 7)), what=f"{name} roi_feats16")
