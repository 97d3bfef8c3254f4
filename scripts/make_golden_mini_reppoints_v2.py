"""Golden outputs of mmdetection-mini's RepPointsV2 detector, run by mmdetection-mini with mmcv 2.1.0's ops
(run in the MMCV oracle venv, never by zooport's tests):

    PYTHONPATH=/work/oracle/mini-src:/work/oracle/rpv2-stubs \\
        /work/oracle/mmdet-venv/bin/python scripts/make_golden_mini_reppoints_v2.py \\
        --mini /work/oracle/mini-src --assets /work/shared --out tests/golden/mini

/work/oracle/mmdet-venv: torch 2.13.0 CPU, mmcv 2.1.0 built with its CPU ops (MMCV_WITH_OPS=1), mmengine
0.10.7. Import adaptations (nothing of mini's files is modified): mini's ext_loader imports mmcv-full
1.x's ``mmcv._ext``; it gets mmcv 2.1.0's real ``_ext`` (deform_conv_forward, ...) through a proxy
module whose missing names (ops mmcv 2.x dropped, e.g. cc_attention's ``ca_forward``, never called
here) raise when called; ``torchvision`` / ``skimage`` import stubs as for make_golden_mini.py. One device
adaptation: ``PointGenerator.grid_points``' default ``device='cuda'`` (get_bboxes passes none) becomes
'cpu'.

Model: mini's own ``configs/reppointv2/reppoints_v2_r50_fpn_1x_coco.py`` (RepPointsV2Head:
``exact_minmax``, corner TLPool/BRPool heatmaps + offsets, foreground segmentation branch), slimmed by
config overrides only (README.md of tests/golden/mini). Weights: make_golden_mini.py's formula, BN
calibrated on four photos. Output folder ``reppoints_v2_slim/``: ``input.f32`` (the normalised, padded
input), ``outG_L.f32`` (head output group G of level L: 0 cls, 1 pts_init, 2 pts_refine, 3 hm_score,
4 hm_offset, 5 sem), ``dets.txt`` / ``dets_norescale.txt``, ``keys.tsv`` + ``bnstats.f32``, ``config.py``.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import types
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_golden_mini import (calib_batch, formula, set_dotted, sha, tensor_kind, write_config,  # noqa: E402
                              write_dets)

OVERRIDES = {
    "model.backbone.depth": 18, "model.backbone.base_channels": 16, "model.backbone.frozen_stages": -1,
    "model.neck.in_channels": [16, 32, 64, 128], "model.neck.out_channels": 32,
    "model.neck.norm_cfg": {"type": "GN", "num_groups": 8, "requires_grad": True},
    "model.bbox_head.in_channels": 32, "model.bbox_head.feat_channels": 32,
    "model.bbox_head.point_feat_channels": 32, "model.bbox_head.corner_dim": 16,
    "model.bbox_head.norm_cfg": {"type": "GN", "num_groups": 8, "requires_grad": True},
}
SCALE = 160


def proxy_ext():
    real = importlib.import_module("mmcv._ext")
    proxy = types.ModuleType("mmcv._ext")

    def _ga(name):
        if hasattr(real, name):
            return getattr(real, name)

        def _missing(*a, **k):
            raise RuntimeError(f"mmcv 2.1.0's _ext has no {name}")
        return _missing
    proxy.__getattr__ = _ga
    sys.modules["mmcv._ext"] = proxy


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mini", type=Path, required=True)
    ap.add_argument("--assets", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    torch.set_num_threads(1)
    proxy_ext()
    import mmcv
    from mmdet import cv_core
    from mmdet.cv_core.parallel import collate
    from mmdet.cv_core.runner import load_checkpoint
    from mmdet.datasets.pipelines import Compose
    from mmdet.models import build_detector

    # device adaptation: mini's PointGenerator.grid_points defaults to device='cuda' (get_bboxes passes
    # none); the same call on the CPU
    from mmdet.det_core.anchor.point_generator import PointGenerator
    _grid = PointGenerator.grid_points
    PointGenerator.grid_points = lambda self, featmap_size, stride=16, device="cpu": _grid(
        self, featmap_size, stride, device)

    def build():
        cfg = cv_core.Config.fromfile(str(a.mini / "configs/reppointv2/reppoints_v2_r50_fpn_1x_coco.py"))
        for k, v in OVERRIDES.items():
            set_dotted(cfg, k, v)
        cfg.data.test.pipeline[1]["img_scale"] = (SCALE, SCALE)
        cfg.model.pretrained = None
        return cfg, build_detector(cfg.model, test_cfg=cfg.test_cfg)

    cfg, model = build()
    bn_prefixes = {n for n, m in model.named_modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)}
    sd = model.state_dict()
    k = 0
    with torch.no_grad():
        for key, t in sd.items():
            if key.endswith("num_batches_tracked"):
                continue
            t.copy_(torch.from_numpy(formula(k, tuple(t.shape), tensor_kind(key, t, bn_prefixes))))
            k += 1
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.reset_running_stats()
                m.momentum = None
        model.train()
        mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
        std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
        model.bbox_head(model.extract_feat((calib_batch(a.assets, 128, 160) * 255 - mean) / std))
        model.eval()
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.num_batches_tracked.zero_()
    sd = OrderedDict((k, v.clone()) for k, v in model.state_dict().items())
    calibrated = [n for n in sd if n.rpartition(".")[0] in bn_prefixes
                  and n.rpartition(".")[2] in ("running_mean", "running_var")]
    d = a.out / "reppoints_v2_slim"
    d.mkdir(parents=True, exist_ok=True)
    tmp = Path("/work/oracle/out/reppoints_v2_slim.pth")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": sd}, str(tmp))
    cfg2, model2 = build()
    load_checkpoint(model2, str(tmp), map_location="cpu", strict=True)
    model2.eval()
    data = Compose(cfg2.data.test.pipeline)(dict(img_info=dict(filename=str(a.assets / "zoo/images/bus.jpg")),
                                                  img_prefix=None))
    data = collate([data], samples_per_gpu=1)
    metas = data["img_metas"][0].data[0]
    img = data["img"][0]
    with torch.no_grad():
        outs = model2.bbox_head(model2.extract_feat(img))
        dets = {r: model2.bbox_head.get_bboxes(*outs, metas, rescale=r)[0] for r in (False, True)}
    (d / "input.f32").write_bytes(img.numpy().astype("<f4").tobytes())
    lines = ["config configs/reppointv2/reppoints_v2_r50_fpn_1x_coco.py", "overrides " + repr(OVERRIDES),
             "checkpoint -", "input input.f32 f32 " + " ".join(map(str, img.shape)),
             "scale_factor " + " ".join(f"{v:.8f}" for v in np.asarray(metas[0]["scale_factor"]).tolist()),
             "img_shape " + " ".join(map(str, metas[0]["img_shape"])),
             "pad_shape " + " ".join(map(str, metas[0]["pad_shape"]))]
    for g, group in enumerate(outs):
        for lvl, t in enumerate(group):
            (d / f"out{g}_{lvl}.f32").write_bytes(t.numpy().astype("<f4").tobytes())
            lines.append(f"out{g}_{lvl} f32 {' '.join(map(str, t.shape))}")
    write_dets(d / "dets.txt", dets[True])
    write_dets(d / "dets_norescale.txt", dets[False])
    (d / "bnstats.f32").write_bytes(np.concatenate([sd[k].numpy().astype("<f4").ravel() for k in calibrated]).tobytes())
    with open(d / "keys.tsv", "w") as f:
        f.write("key\tshape\tkind\tsha256\n")
        for key, v in sd.items():
            kind = "count" if key.endswith("num_batches_tracked") else (
                "calibrated" if key in calibrated else tensor_kind(key, v, bn_prefixes))
            f.write(f"{key}\t{','.join(map(str, v.shape))}\t{kind}\t{sha(v)}\n")
    write_config(d / "config.py", cfg2)
    lines.append(f"dets {len(dets[True][0])}")
    lines.append(f"versions torch {torch.__version__} mmcv {mmcv.__version__} numpy {np.__version__}")
    (d / "index.txt").write_text("\n".join(lines) + "\n")
    print("reppoints_v2_slim ok", [tuple(t.shape) for t in outs[0]], len(dets[True][0]), "dets")


if __name__ == "__main__":
    main()
