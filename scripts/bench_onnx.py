#!/usr/bin/env python
"""Benchmark: PyTorch eager (unfused, fused) vs onnxruntime on CPU, side by side in one run.

Median latency over --runs (>= 30) single-image runs after --warmup runs, for
yolov5n at 640 and yolov3-tiny at 416 (real weights from $ZOOPORT_ASSETS or
--assets). The backends take turns in blocks of 10 calls, so that load from
other processes on a shared machine hits all of them alike.
onnxruntime session settings compared: graph optimisation BASIC vs ALL
(intra-op threads = cores), and ALL with thread spinning off.
With --yolov5-onnx FILE (YOLOv5's own ``export.py --include onnx`` of the same
yolov5n.pt at 640), that file runs in the same loop under the same settings,
and the two exports' outputs are compared.

    ZOOPORT_ASSETS=/work/shared python scripts/bench_onnx.py [--runs 30] [--threads N]
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import tempfile
import time
from pathlib import Path


def _round_robin_ms(fns: dict, runs: int, warmup: int, block: int = 10) -> dict:
    """Median milliseconds per callable. Backends take turns in blocks of ``block`` calls (each block
    after ``warmup`` unmeasured calls, so one backend's idle thread pools settle before the next runs)
    until each has ``runs`` measured calls: load from other processes hits all backends alike."""
    ts = {k: [] for k in fns}
    while min(len(v) for v in ts.values()) < runs:
        for k, fn in fns.items():
            for _ in range(warmup):
                fn()
            for _ in range(block):
                t = time.perf_counter()
                fn()
                ts[k].append(time.perf_counter() - t)
    return {k: 1000.0 * statistics.median(v) for k, v in ts.items()}


def _load(name: str, assets: Path):
    if name == "yolov5n":
        from zooport.converters.yolov5.load import load_yolov5

        return load_yolov5(assets / "zoo/yolov5/yolov5n.pt")
    from zooport.converters.darknet.load import load_darknet

    return load_darknet(assets / "zoo/darknet/yolov3-tiny.cfg", assets / "zoo/darknet/yolov3-tiny.weights")


def _sessions(path: Path, threads: int, tag: str, x) -> dict:
    """One onnxruntime session per compared setting, as ``{label: callable}``."""
    import onnxruntime as ort

    fns = {}
    for label, level, spin in (("opt BASIC", ort.GraphOptimizationLevel.ORT_ENABLE_BASIC, "1"),
                               ("opt ALL", ort.GraphOptimizationLevel.ORT_ENABLE_ALL, "1"),
                               ("opt ALL, no spinning", ort.GraphOptimizationLevel.ORT_ENABLE_ALL, "0")):
        so = ort.SessionOptions()
        so.graph_optimization_level = level
        so.intra_op_num_threads = threads
        so.add_session_config_entry("session.intra_op.allow_spinning", spin)
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        feed = {sess.get_inputs()[0].name: x}
        fns[f"{tag} ({label}, {threads} threads)"] = (lambda s, f: lambda: s.run(None, f))(sess, feed)
    return fns


def bench(name: str, size: int, assets: Path, runs: int, warmup: int, threads: int, tmp: Path,
          other_onnx: Path | None = None) -> dict:
    import numpy as np
    import torch

    from zooport.export.onnx import export_onnx

    model = _load(name, assets).eval()
    fused = copy.deepcopy(model).fuse().eval()
    x = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
    xt = torch.from_numpy(x)
    path = export_onnx(model, tmp / f"{name}.onnx", imgsz=size)
    fns = {"torch eager (unfused)": lambda: model(xt), "torch eager (fused)": lambda: fused(xt)}
    fns.update(_sessions(path, threads, "onnxruntime", x))
    if other_onnx is not None:
        own = _sessions(other_onnx, threads, "YOLOv5's own export", x)
        setting = f"(opt ALL, {threads} threads)"
        ours, theirs = fns[f"onnxruntime {setting}"]()[0], own[f"YOLOv5's own export {setting}"]()[0]
        with torch.inference_mode():
            eager = model(xt).numpy()
        print(f"{name}: max |zooport onnx - YOLOv5 onnx| = {np.abs(ours - theirs).max():.2e} "
              f"(zooport onnx vs eager: {np.abs(ours - eager).max():.2e}; outputs up to {np.abs(eager).max():.0f})")
        fns.update(own)
    with torch.inference_mode():
        res = _round_robin_ms(fns, runs, warmup)
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--assets", default=os.environ.get("ZOOPORT_ASSETS"), help="the shared assets folder")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=2, help="unmeasured calls before each block of 10")
    ap.add_argument("--yolov5-onnx", type=Path, metavar="FILE",
                    help="YOLOv5's own ONNX export of the same yolov5n.pt at 640 (export.py --include onnx), "
                         "timed side by side")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch and ORT intra-op threads")
    args = ap.parse_args()
    if not args.assets:
        ap.error("set ZOOPORT_ASSETS or pass --assets")
    import torch

    torch.set_num_threads(args.threads)
    runs = max(30, args.runs)
    print(f"CPU benchmark: median of {runs} runs after {args.warmup} warm-up, batch 1, {args.threads} threads, "
          f"torch {torch.__version__}")
    if hasattr(os, "getloadavg"):
        print(f"load average before: {os.getloadavg()[0]:.2f} (other processes share these cores)")
    with tempfile.TemporaryDirectory() as d:
        for name, size in (("yolov5n", 640), ("yolov3-tiny", 416)):
            r = bench(name, size, Path(args.assets), runs, args.warmup, args.threads, Path(d),
                      args.yolov5_onnx if name == "yolov5n" else None)
            base = r["torch eager (unfused)"]
            print(f"\n{name} @ {size}x{size}")
            for k, v in r.items():
                print(f"  {k:<46s} {v:8.2f} ms   {base / v:5.2f}x vs eager unfused")
            best = min(v for k, v in r.items() if k.startswith("onnxruntime"))
            print(f"  => best onnxruntime is {base / best:.2f}x faster than eager unfused, "
                  f"{r['torch eager (fused)'] / best:.2f}x faster than eager fused")
            own = [v for k, v in r.items() if k.startswith("YOLOv5's own")]
            if own:
                print(f"  => best zooport export {best:.2f} ms vs best YOLOv5 export {min(own):.2f} ms: "
                      f"{min(own) / best:.2f}x (> 1: zooport's is faster)")
    if hasattr(os, "getloadavg"):
        print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
