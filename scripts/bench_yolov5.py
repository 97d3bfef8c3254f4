#!/usr/bin/env python
"""Benchmark: loading yolov5n.pt and forward latency of the native YOLOv5 model (CPU).

Side by side, in one run:

* load: ``zooport.load_yolov5(path)`` to a ready model, in fresh interpreters
  (median of N), split into ``import zooport``, ``import torch`` and the load
  itself; against plain ``torch.load(path, weights_only=False)`` of the same
  file with inert stand-in ``models``/``utils`` packages written to a temp
  dir and put on ``sys.path`` (that run executes the file's pickle, which is
  why it happens only here, in a throwaway subprocess, on the trusted
  reference file);
* forward: native model at 640x640, unfused and fused, median of >= 20 runs,
  interleaved; with ``--yolov5-src DIR`` YOLOv5's own ``DetectionModel`` (built
  from the checkpoint's architecture, holding zooport's YOLOv5-layout export,
  loaded strictly) is timed in the same loop, otherwise the comparison is with
  the 45 ms quoted in the issue for yolov5n on the reference machine.

Usage: ``python scripts/bench_yolov5.py [--weights PATH] [--runs 25] [--threads 2] [--yolov5-src DIR]``
(default weights: $ZOOPORT_ASSETS/zoo/yolov5/yolov5n.pt).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

YOLOV5_OWN_FORWARD_MS = 45.0  # YOLOv5 v7.0 eager forward, yolov5n @640, 2 cores (issue #3)
YOLOV5_OWN_LOAD_S = 3.1  # YOLOv5 v7.0 code loading yolov5n.pt, imports included (issue #3)

_ZOOPORT_LOAD = """
import json, sys, time
t0 = time.perf_counter(); import zooport; t1 = time.perf_counter()
import torch; torch.set_num_threads({threads}); t2 = time.perf_counter()
m = zooport.load_yolov5({path!r}); t3 = time.perf_counter()
m2 = zooport.load_yolov5({path!r}); t4 = time.perf_counter()
print(json.dumps({{"import_zooport": t1 - t0, "import_torch": t2 - t1, "load": t3 - t2, "load_again": t4 - t3}}))
"""

_STANDIN_COMMON = '''
import torch.nn as nn
class _M(nn.Module):
    pass
'''
_NAMES_COMMON = ("Conv DWConv Focus Bottleneck BottleneckCSP C3 C3x C3TR C3SPP C3Ghost GhostConv GhostBottleneck "
                 "SPP SPPF Concat Contract Expand TransformerLayer TransformerBlock CrossConv").split()
_NAMES_YOLO = "Model DetectionModel Detect BaseModel".split()

_TORCH_LOAD = """
import json, sys, time
sys.path.insert(0, {tmp!r})
t0 = time.perf_counter(); import torch; torch.set_num_threads({threads}); t1 = time.perf_counter()
ck = torch.load({path!r}, map_location="cpu", weights_only=False); m = ck["model"].float().eval(); t2 = time.perf_counter()
ck = torch.load({path!r}, map_location="cpu", weights_only=False); m = ck["model"].float().eval(); t3 = time.perf_counter()
print(json.dumps({{"import_torch": t1 - t0, "load": t2 - t1, "load_again": t3 - t2}}))
"""


def _write_standins(tmp: Path) -> None:
    """Empty nn.Module subclasses under YOLOv5's class names (no YOLOv5 code)."""
    for pkg, names in (("models", None), ("utils", None)):
        (tmp / pkg).mkdir()
        (tmp / pkg / "__init__.py").write_text("")
    (tmp / "models" / "common.py").write_text(_STANDIN_COMMON + "".join(f"class {n}(_M): pass\n" for n in _NAMES_COMMON))
    (tmp / "models" / "yolo.py").write_text(_STANDIN_COMMON + "".join(f"class {n}(_M): pass\n" for n in _NAMES_YOLO))
    (tmp / "utils" / "activations.py").write_text(_STANDIN_COMMON + "class SiLU(_M): pass\nclass Hardswish(_M): pass\n")


def _run(code: str) -> dict:
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    if r.returncode:
        raise SystemExit(f"benchmark subprocess failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _median(rows, key):
    return statistics.median(r[key] for r in rows)


def bench_load(path: str, repeats: int, threads: int) -> None:
    zr = [_run(_ZOOPORT_LOAD.format(path=path, threads=threads)) for _ in range(repeats)]
    with tempfile.TemporaryDirectory() as tmp:
        _write_standins(Path(tmp))
        tr = [_run(_TORCH_LOAD.format(path=path, tmp=tmp, threads=threads)) for _ in range(repeats)]
    print(f"\n== load {Path(path).name} (fresh interpreter, median of {repeats}) ==")
    print(f"{'':44s}{'zooport':>10s}{'torch.load(wo=False)':>22s}{'ratio':>8s}")
    zl, tl = _median(zr, "load"), _median(tr, "load")
    print(f"{'first load (torch already imported)':44s}{zl:9.3f}s{tl:21.3f}s{zl / tl:8.2f}")
    za, ta = _median(zr, "load_again"), _median(tr, "load_again")
    print(f"{'second load in the same process':44s}{za:9.3f}s{ta:21.3f}s{za / ta:8.2f}")
    zi = _median(zr, "import_zooport")
    zt, tt = _median(zr, "import_torch"), _median(tr, "import_torch")
    print(f"{'import zooport':44s}{zi:9.3f}s{'-':>22s}")
    print(f"{'import torch':44s}{zt:9.3f}s{tt:21.3f}s")
    total_z = zi + zt + zl
    print(f"{'total from a cold interpreter':44s}{total_z:9.3f}s{tt + tl:21.3f}s{total_z / (tt + tl):8.2f}")
    print(f"goal: load_yolov5 <= 0.3 s after import zooport (torch imported): {'MET' if zl <= 0.3 else 'NOT MET'} "
          f"({zl:.3f} s); YOLOv5 v7.0's own code: {YOLOV5_OWN_LOAD_S} s with its imports "
          f"(zooport cold total {total_z:.2f} s = {YOLOV5_OWN_LOAD_S / total_z:.1f}x faster)")
    print("note: the torch.load column unpickles into empty stand-in classes: it is a lower bound of what "
          "plain unpickling costs, not a usable model")


def _yolov5_own(src: str, arch_yaml: dict, state_dict: dict):
    """YOLOv5's own ``DetectionModel`` from a source tree ``src``, holding zooport's weights.

    ``src`` is an Ultralytics YOLOv5 checkout (``src/models/yolo.py``) or the
    folder above the PyPI ``yolov5`` package (``src/yolov5/models/yolo.py``). Its
    code is imported into this process (the user asked for it with
    ``--yolov5-src``); nothing is unpickled: the model is built from the
    checkpoint's architecture dict and loads zooport's YOLOv5-layout export
    strictly, which is also the check that the export is what YOLOv5 expects.
    """
    from crosscheck_yolov5 import _import_yolov5  # beside this script

    DetectionModel, _conv, _models = _import_yolov5(Path(src).resolve())
    m = DetectionModel(json.loads(json.dumps(arch_yaml)))  # it edits the dict it is given
    m.load_state_dict(state_dict, strict=True)
    return m.float().eval()


def bench_forward(path: str, runs: int, threads: int, size: int, yolov5_src: str | None = None) -> None:
    import copy

    import torch

    import zooport
    from zooport.converters.yolov5.load import to_yolov5_state_dict

    torch.set_num_threads(threads)
    model = zooport.load_yolov5(path)
    variants = {"zooport unfused": model, "zooport fused": copy.deepcopy(model).fuse()}
    x = torch.rand(1, 3, size, size)
    if yolov5_src:
        own = _yolov5_own(yolov5_src, model.native_arch()["yaml"], to_yolov5_state_dict(model))
        own_fused = copy.deepcopy(own).fuse()
        with torch.inference_mode():
            for name, m in (("unfused", own), ("fused", own_fused)):
                ref = variants[f"zooport {name}"](x)
                d = ((m(x)[0] - ref).abs().max() / ref.abs().max()).item()
                print(f"YOLOv5's own model ({name}) holding zooport's export: max |diff| to zooport {name} "
                      f"= {d:.1e} of max |output|")
        variants.update({"YOLOv5 own unfused": own, "YOLOv5 own fused": own_fused})
    times = {k: [] for k in variants}
    with torch.inference_mode():
        for m in variants.values():
            for _ in range(3):
                m(x)
        for _ in range(runs):  # interleaved, so drifts in machine load hit every variant alike
            for name, m in variants.items():
                t = time.perf_counter()
                m(x)
                times[name].append((time.perf_counter() - t) * 1000)
    res = {k: (statistics.median(v), min(v), max(v)) for k, v in times.items()}
    print(f"\n== forward {Path(path).name} @ {size}x{size}, {threads} threads, median of {runs}, interleaved ==")
    base = "YOLOv5 own" if yolov5_src else None
    print(f"{'':24s}{'median':>10s}{'min':>10s}{'max':>10s}"
          + (f"{'vs YOLOv5 own (same run)':>26s}" if base else f"{'vs 45 ms (issue)':>20s}"))
    for name, (med, lo, hi) in res.items():
        kind = name.split()[-1]
        ratio = med / res[f"{base} {kind}"][0] if base else med / YOLOV5_OWN_FORWARD_MS
        print(f"{name:24s}{med:8.1f}ms{lo:8.1f}ms{hi:8.1f}ms{ratio:{26 if base else 20}.2f}x")
    print(f"fused / unfused (zooport): {res['zooport fused'][0] / res['zooport unfused'][0]:.2f}")
    if not base:
        print("no --yolov5-src given: compared with the figure quoted in the issue (45 ms on the reference "
              "machine), not measured side by side")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = os.path.join(os.environ.get("ZOOPORT_ASSETS", "../shared"), "zoo", "yolov5", "yolov5n.pt")
    ap.add_argument("--weights", default=default, help="YOLOv5 .pt file (default: %(default)s)")
    ap.add_argument("--runs", type=int, default=25, help="forward runs per variant (>= 20)")
    ap.add_argument("--load-repeats", type=int, default=5, help="fresh interpreters per loader")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", type=int, default=640)
    ap.add_argument("--yolov5-src", metavar="DIR",
                    help="a YOLOv5 v7.0 source tree (with its requirements installed): also time YOLOv5's own "
                         "DetectionModel side by side, holding the same weights")
    args = ap.parse_args(argv)
    if not Path(args.weights).is_file():
        print(f"bench_yolov5: {args.weights}: no such file (set ZOOPORT_ASSETS or --weights)", file=sys.stderr)
        return 2
    print(f"load average before: {' '.join(f'{v:.1f}' for v in os.getloadavg())} on {os.cpu_count()} cores "
          f"(figures are only comparable on an otherwise idle machine)")
    bench_load(args.weights, args.load_repeats, args.threads)
    bench_forward(args.weights, max(20, args.runs), args.threads, args.size, args.yolov5_src)
    print(f"\nload average after: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
