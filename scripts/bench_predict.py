#!/usr/bin/env python
"""Benchmark ``zooport predict`` on a folder (80 coco-tiny images, yolov5n, drawn PNGs written).

Side by side in one process, alternating, with one :class:`zooport.inference.api.Predictor`:

* ``predict``: :func:`zooport.inference.run.run_sources`, the CLI's loop: the next images decode
  in one thread and each drawn image is encoded and written in another while the model runs;
* ``serial``: the same steps one after the other in one thread (decode, predict, draw, write).

Usage: ZOOPORT_ASSETS=../shared python scripts/bench_predict.py [--backend onnxruntime] [--repeat 3]
Prints the median wall time of each, images/s and the serial / predict ratio; the detections of
the two must be identical.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path


def main(argv=None) -> int:
    assets = Path(os.environ.get("ZOOPORT_ASSETS", "../shared"))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(assets / "zoo/yolov5/yolov5n.pt"))
    ap.add_argument("--images", default=str(assets / "coco-tiny/val2017"))
    ap.add_argument("--backend", default="onnxruntime", choices=["onnxruntime", "torch"])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)

    import numpy as np
    import torch

    import zooport
    from zooport.eval.data import read_image
    from zooport.inference.api import Predictor
    from zooport.inference.outputs import write_image
    from zooport.inference.run import run_sources
    from zooport.inference.sources import expand_sources

    torch.set_num_threads(2)
    pred = Predictor(zooport.load(args.model), backend=args.backend)
    srcs = [s.path for s in expand_sources([args.images]) if s.kind == "image"]
    pred(read_image(srcs[0]), None)  # warm the backend (session, export cache) outside the timings

    def overlapped(out):
        t = time.perf_counter()
        res = run_sources(pred, [args.images], out)
        return time.perf_counter() - t, [r.boxes for r in res["results"]]

    def serial(out):
        t = time.perf_counter()
        boxes = []
        for p in srcs:
            img = read_image(p)
            d = pred(img, str(p))
            write_image(Path(out) / (p.stem + ".png"), d.draw(img))
            boxes.append(d.boxes)
        return time.perf_counter() - t, boxes

    times = {"predict": [], "serial": []}
    ref = None
    for _ in range(args.repeat):
        for name, fn in (("predict", overlapped), ("serial", serial)):
            with tempfile.TemporaryDirectory() as out:
                dt, boxes = fn(out)
            times[name].append(dt)
            if ref is None:
                ref = boxes
            assert len(boxes) == len(ref) and all(np.array_equal(a, b) for a, b in zip(boxes, ref)), name
    n = len(srcs)
    for name, ts in times.items():
        m = statistics.median(ts)
        print(f"{name:8s} {args.backend}: median {m:5.2f} s over {n} images = {n / m:5.1f} images/s "
              f"(runs: {', '.join(f'{t:.2f}' for t in ts)})")
    print(f"serial / predict: {statistics.median(times['serial']) / statistics.median(times['predict']):.2f}x; "
          "detections identical")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
