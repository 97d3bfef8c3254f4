#!/usr/bin/env python
"""Benchmark ``zooport verify`` end to end on coco-tiny (80 COCO val2017 images), yolov5n at 640.

Every configuration runs in a fresh Python process (as a user's ``zooport verify`` does: cold
onnxruntime session, first pycocotools import; the ONNX export itself is cached beforehand) and
is timed from model load to the returned score ("load + verify"). Configurations:

* ``onnxruntime``: the real command (batch 16, 2 loader threads): onnxruntime runs slices of 2
  images on one thread each, NMS and COCO matching of a batch run while the next infers, the
  matching by :class:`zooport.eval.coco_match.MatchEval`;
* ``onnxruntime, baseline``: the same run with one onnxruntime run per batch over both threads
  (``runner.ORT_SLICE = 0``) and pycocotools' unmodified ``COCOeval`` for matching and
  accumulation: the figures must be identical, only the time differs;
* ``image-by-image``: batch 1, 1 worker (unpadded shapes: scores differ slightly);
* ``torch``: the torch backend, batch 16.

Usage: ZOOPORT_ASSETS=../shared python scripts/bench_verify.py [--repeat 5] [--backends ...]
Prints per configuration the median and best of N runs, images/s, AP / AP50, and the ratio of
the baseline's median time to the real command's (the goal: >= 20 images/s including load).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

_CHILD = r"""
import json, sys, time
cfg = json.loads(sys.argv[1])
import torch
torch.set_num_threads(2)
import zooport
from zooport.eval import coco_match, runner
from zooport.eval.verify import verify
if cfg["baseline"]:
    from pycocotools.cocoeval import COCOeval
    runner.ORT_SLICE = 0
    coco_match.MatchEval = COCOeval
t0 = time.perf_counter()
m = zooport.load(cfg["model"])
r = verify(m, coco=cfg["coco"], backend=cfg["backend"], batch=cfg["batch"], workers=cfg["workers"], progress=False)
wall = time.perf_counter() - t0
print(json.dumps({"wall": wall, "images": r["images"], "AP": r["metrics"]["AP"], "AP50": r["metrics"]["AP50"],
                  "detections": r["detections"]}))
"""


def _run(cfg: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(cfg)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    assets = Path(os.environ.get("ZOOPORT_ASSETS", "../shared"))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(assets / "zoo/yolov5/yolov5n.pt"))
    ap.add_argument("--coco", default=str(assets / "coco-tiny/val2017"))
    ap.add_argument("--repeat", type=int, default=5, help="runs per configuration (median and best are printed)")
    ap.add_argument("--configs", nargs="+", default=["onnxruntime", "baseline", "image-by-image", "torch"])
    args = ap.parse_args(argv)
    base = {"model": args.model, "coco": args.coco, "backend": "onnxruntime", "batch": 16, "workers": 2,
            "baseline": False}
    configs = {"onnxruntime": {}, "baseline": {"baseline": True}, "image-by-image": {"batch": 1, "workers": 1},
               "torch": {"backend": "torch"}}
    _run(base)  # export (and cache) the ONNX file once, outside the timings
    rows = {}
    for name in args.configs:
        cfg = dict(base, **configs[name])
        runs = [_run(cfg) for _ in range(args.repeat)]  # interleaving would mix caches; each is its own process
        walls = [r["wall"] for r in runs]
        r = runs[0]
        rows[name] = (statistics.median(walls), min(walls), r)
        n = r["images"]
        print(f"{name:15s} load+verify median {statistics.median(walls):5.2f} s (best {min(walls):5.2f}) "
              f"= {n / statistics.median(walls):5.1f} images/s  AP {r['AP']:.7f} AP50 {r['AP50']:.7f} "
              f"({r['detections']} detections)", flush=True)
    if "onnxruntime" in rows and "baseline" in rows:
        a, b = rows["onnxruntime"], rows["baseline"]
        same = (a[2]["AP"], a[2]["AP50"], a[2]["detections"]) == (b[2]["AP"], b[2]["AP50"], b[2]["detections"])
        print(f"\nbaseline / onnxruntime median time: {b[0] / a[0]:.2f}x; figures identical: {same}")
    if "onnxruntime" in rows:
        ips = rows["onnxruntime"][2]["images"] / rows["onnxruntime"][0]
        print(f"goal >= 20 images/s including load: {ips:.1f} ({'met' if ips >= 20 else 'NOT met'})")
    print("reference: YOLOv5 v7.0 val.py on the same 80 images measured here: 18.2 s wall (4.4 images/s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
