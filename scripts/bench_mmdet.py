#!/usr/bin/env python
"""Benchmark: Faster R-CNN R50-FPN (MMDetection's faster-rcnn_r50_fpn_1x config, random weights) in zooport,
eager PyTorch vs onnxruntime, on one 800x1216 input with 1000 proposals, plus the time to load a checkpoint.

Steps (each timed; medians over ``--repeat`` runs where repeated):
  1. write an MMDetection-style checkpoint (``{"meta": {"cfg": ...}, "state_dict": ...}``, 41.5 M
     parameters, uniform +-sqrt(3 / fan_in) weights, BN identity statistics) to a temp dir;
  2. ``zooport.converters.mmdet.load.load_mmdet(path)`` (config read from the checkpoint's meta; no mmcv);
  3. eager ``model.predict(x)`` (backbone, FPN, RPN, proposal NMS, RoIAlign, box head, test_cfg NMS);
  4. ONNX export of the whole path (RoiAlign + NonMaxSuppression in the graph; not part of the totals)
     and onnxruntime (CPU, ``--threads`` intra-op threads, graph optimisations on) on the same input.
The number of proposals the RPN keeps (test_cfg.rpn.max_per_img = 1000) and the detections are printed.

usage: OMP_NUM_THREADS=2 python scripts/bench_mmdet.py [--repeat 3] [--threads 2]
"""
from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path

H, W = 800, 1216

CONFIG = {
    "model": {
        "type": "FasterRCNN",
        "data_preprocessor": {"type": "DetDataPreprocessor", "mean": [123.675, 116.28, 103.53],
                              "std": [58.395, 57.12, 57.375], "bgr_to_rgb": True, "pad_size_divisor": 32},
        "backbone": {"type": "ResNet", "depth": 50, "num_stages": 4, "out_indices": (0, 1, 2, 3), "frozen_stages": 1,
                     "norm_cfg": {"type": "BN", "requires_grad": True}, "norm_eval": True, "style": "pytorch"},
        "neck": {"type": "FPN", "in_channels": [256, 512, 1024, 2048], "out_channels": 256, "num_outs": 5},
        "rpn_head": {"type": "RPNHead", "in_channels": 256, "feat_channels": 256,
                     "anchor_generator": {"type": "AnchorGenerator", "scales": [8], "ratios": [0.5, 1.0, 2.0],
                                          "strides": [4, 8, 16, 32, 64]},
                     "bbox_coder": {"type": "DeltaXYWHBBoxCoder", "target_means": [0.0] * 4, "target_stds": [1.0] * 4},
                     "loss_cls": {"type": "CrossEntropyLoss", "use_sigmoid": True, "loss_weight": 1.0}},
        "roi_head": {"type": "StandardRoIHead",
                     "bbox_roi_extractor": {"type": "SingleRoIExtractor",
                                            "roi_layer": {"type": "RoIAlign", "output_size": 7, "sampling_ratio": 0},
                                            "out_channels": 256, "featmap_strides": [4, 8, 16, 32]},
                     "bbox_head": {"type": "Shared2FCBBoxHead", "in_channels": 256, "fc_out_channels": 1024,
                                   "roi_feat_size": 7, "num_classes": 80,
                                   "bbox_coder": {"type": "DeltaXYWHBBoxCoder", "target_means": [0.0] * 4,
                                                  "target_stds": [0.1, 0.1, 0.2, 0.2]},
                                   "reg_class_agnostic": False,
                                   "loss_cls": {"type": "CrossEntropyLoss", "use_sigmoid": False}}},
        "test_cfg": {"rpn": {"nms_pre": 1000, "max_per_img": 1000, "nms": {"type": "nms", "iou_threshold": 0.7},
                             "min_bbox_size": 0},
                     "rcnn": {"score_thr": 0.05, "nms": {"type": "nms", "iou_threshold": 0.5}, "max_per_img": 100}},
    },
    "test_pipeline": [{"type": "LoadImageFromFile"}, {"type": "Resize", "scale": (1333, 800), "keep_ratio": True},
                      {"type": "PackDetInputs"}],
}


def write_checkpoint(path: Path) -> int:
    import torch

    from zooport.converters.mmdet.load import build_model
    from zooport.parsers.mmdet.config import to_python_text

    model = build_model(CONFIG)
    g = torch.Generator().manual_seed(0)
    sd = {}
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked"):
            sd[k] = torch.zeros((), dtype=torch.int64)
        elif k.endswith("running_var") or (k.endswith(".weight") and v.dim() == 1):
            sd[k] = torch.ones_like(v)
        elif v.dim() >= 2:
            a = math.sqrt(3.0 / max(1, v[0].numel()))
            sd[k] = (torch.rand(v.shape, generator=g) * 2 - 1) * a
        else:
            sd[k] = torch.zeros_like(v)
    torch.save({"meta": {"cfg": to_python_text(CONFIG)}, "state_dict": sd}, path)
    return sum(v.numel() for k, v in sd.items() if not k.endswith("num_batches_tracked"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    t0 = time.perf_counter()
    import torch

    torch.set_num_threads(args.threads)
    from zooport.converters.mmdet.load import load_mmdet

    t_import = time.perf_counter() - t0
    tmp = Path(tempfile.mkdtemp())
    ckpt = tmp / "faster_rcnn_r50_fpn_random.pth"
    n_params = write_checkpoint(ckpt)
    loads = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        model = load_mmdet(ckpt)
        loads.append(time.perf_counter() - t)
    x = torch.rand(1, 3, H, W, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        props = model.raw(x)[2][0].shape[0]
        eager = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            dets = model.predict(x)[0]
            eager.append(time.perf_counter() - t)
    import onnxruntime as ort

    from zooport.export.onnx import build_onnx

    t = time.perf_counter()
    proto = build_onnx(model, imgsz=(H, W), opset=17)
    t_export = time.perf_counter() - t
    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    t = time.perf_counter()
    sess = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
    t_session = time.perf_counter() - t
    xn = x.numpy()
    sess.run(None, {"images": xn})  # warm-up
    ortt = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        out = sess.run(None, {"images": xn})
        ortt.append(time.perf_counter() - t)
    le, ee, oo = statistics.median(loads), statistics.median(eager), statistics.median(ortt)
    print(f"Faster R-CNN R50-FPN, {n_params / 1e6:.1f} M parameters, input 1x3x{H}x{W}, {props} proposals, "
          f"{args.threads} threads, median of {args.repeat}")
    print(f"  import zooport + torch        {t_import:7.2f} s")
    print(f"  load checkpoint (load_mmdet)  {le:7.2f} s")
    print(f"  eager predict                 {ee:7.2f} s   ({dets.shape[0]} detections)")
    print(f"  onnxruntime run               {oo:7.2f} s   ({int(out[0][0, 0])} detections)")
    print(f"  (ONNX export {t_export:.1f} s, session creation {t_session:.1f} s: one-off)")
    print(f"  end to end, load included: eager {t_import + le + ee:.2f} s, onnxruntime (session instead of "
          f"load) {t_import + t_session + oo:.2f} s")


if __name__ == "__main__":
    main()
