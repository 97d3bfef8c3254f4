#!/usr/bin/env python
"""Benchmark: loading a full-size yolov4 Darknet model vs reading its file with numpy.

Builds a yolov4.cfg ``.weights`` file with random values (257,717,640 bytes) in a temp dir, then
measures side by side, with the file in the page cache:
  (a) ``numpy.fromfile`` of the whole file,
  (b) ``zooport.load_darknet(cfg, weights)`` end to end (parse, plan, build the nn.Module, load),
and prints both medians, the ratio (b)/(a), and -- each in a fresh subprocess -- the peak RSS added on
top of ``import torch`` (VmHWM from /proc/self/status) relative to the file size.
Goals: (b) <= 4x (a); added RSS <= 1.25x the file size.

usage: python scripts/bench_darknet.py [--cfg yolov4.cfg] [--repeat 7]
"""
from __future__ import annotations

import argparse
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

EXPECTED_BYTES = 257_717_640


def default_cfg() -> Path | None:
    root = os.environ.get("ZOOPORT_ASSETS")
    cands = [Path(root) / "darknet-cfg" / "yolov4.cfg"] if root else []
    cands.append(Path(__file__).resolve().parent.parent / "zooport" / "cfgs" / "darknet" / "yolov4.cfg")
    return next((p for p in cands if p.exists()), None)


def make_weights(cfg: Path, path: Path) -> int:
    """Write a .weights file for ``cfg`` with random N(0, 0.05) values (BN variances kept positive)."""
    from zooport.parsers.darknet.cfg import parse_cfg
    from zooport.parsers.darknet.plan import build_plan

    plan = build_plan(parse_cfg(cfg))
    rng = np.random.default_rng(0)
    with open(path, "wb") as f:
        f.write(struct.pack("<3iQ", 0, 2, 5, 0))
        for lp in plan:
            for name, shape in lp.params:
                n = int(np.prod(shape))
                a = rng.standard_normal(n, dtype=np.float32) * np.float32(0.05)
                if name.endswith("running_var"):
                    a = np.abs(a) + np.float32(0.5)
                f.write(a.astype("<f4").tobytes())
    return path.stat().st_size


_RSS_CHILD = r"""
import sys, time
def hwm():
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM:'):
            return int(line.split()[1]) * 1024
import torch, numpy as np
import zooport.converters.darknet.load, zooport.model_defs.darknet.model  # imports are not the load's memory
base = hwm()
mode, cfg, weights = sys.argv[1:4]
if mode == 'numpy':
    a = np.fromfile(weights, dtype=np.uint8)
else:
    from zooport import load_darknet
    m = load_darknet(cfg, weights)
print(hwm() - base)
"""


def child_rss(mode: str, cfg: Path, weights: Path) -> int:
    r = subprocess.run([sys.executable, "-c", _RSS_CHILD, mode, str(cfg), str(weights)],
                       capture_output=True, text=True, check=True)
    return int(r.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cfg", type=Path, default=default_cfg(), help="yolov4.cfg (default: $ZOOPORT_ASSETS/darknet-cfg)")
    ap.add_argument("--repeat", type=int, default=7, help="timed repetitions of each side (default 7)")
    args = ap.parse_args()
    if args.cfg is None or not args.cfg.exists():
        print("bench_darknet: yolov4.cfg not found; pass --cfg or set ZOOPORT_ASSETS", file=sys.stderr)
        return 2
    import torch

    from zooport import load_darknet

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    with tempfile.TemporaryDirectory(prefix="zooport-bench-") as tmp:
        weights = Path(tmp) / "yolov4-random.weights"
        size = make_weights(args.cfg, weights)
        print(f"cfg {args.cfg}\nweights {weights}: {size:,} bytes" +
              ("" if size == EXPECTED_BYTES else f"  (expected {EXPECTED_BYTES:,}!)"))
        np.fromfile(weights, dtype=np.uint8)  # page cache warm-up
        t_np, t_zp = [], []
        for _ in range(args.repeat):  # interleaved so drift in machine load hits both sides alike
            t0 = time.perf_counter()
            a = np.fromfile(weights, dtype=np.float32)
            t_np.append(time.perf_counter() - t0)
            del a
            t0 = time.perf_counter()
            m = load_darknet(args.cfg, weights)
            t_zp.append(time.perf_counter() - t0)
            del m
        a_med, b_med = statistics.median(t_np), statistics.median(t_zp)
        rss_np = child_rss("numpy", args.cfg, weights)
        rss_zp = child_rss("zooport", args.cfg, weights)
    print(f"\n{'':32s}{'median s':>10s}{'min s':>10s}{'added peak RSS':>18s}{'x file':>8s}")
    print(f"{'(a) numpy.fromfile':32s}{a_med:10.3f}{min(t_np):10.3f}{rss_np / 2**20:15.0f} MB{rss_np / size:8.2f}")
    print(f"{'(b) zooport.load_darknet':32s}{b_med:10.3f}{min(t_zp):10.3f}{rss_zp / 2**20:15.0f} MB{rss_zp / size:8.2f}")
    ratio = b_med / a_med
    print(f"\nratio (b)/(a) = {ratio:.2f}x  (goal <= 4x: {'met' if ratio <= 4 else 'NOT met'})")
    print(f"added RSS (b) = {rss_zp / size:.2f}x file size  (goal <= 1.25x: {'met' if rss_zp <= 1.25 * size else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
