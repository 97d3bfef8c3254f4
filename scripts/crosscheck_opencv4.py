"""Cross-check zooport's YOLOv5 -> Darknet export with OpenCV 4's Darknet importer.

    python scripts/crosscheck_opencv4.py [MODEL.pt] [--input INPUT.f32] [--venv DIR] [--keep DIR]
                                          [--bn-eps EPS] [--bn-scale K]

1. Creates (once) a virtual environment in ``--venv`` (default: ``<tmp>/zooport-opencv4-venv``) with
   ``python -m venv`` and installs ``opencv-python-headless<5`` and numpy there with its own pip, so
   the OpenCV under test is the 4.x that distributions ship, not whatever zooport's environment holds.
2. Exports MODEL.pt (default ``$ZOOPORT_ASSETS/zoo/yolov5/yolov5n.pt``) with ``zooport.save_darknet``:
   the default export, the one ``zooport convert yolov5 MODEL.pt --to darknet`` writes.
3. Runs the export with ``cv2.dnn.readNetFromDarknet`` inside that environment (OpenCV's own CPU
   backend) and the YOLOv5 model on the same input: ``--input`` (raw float32 (1, 3, S, S), RGB in
   [0, 1]; default the golden letterboxed bus ``golden/real/yolov5n_bus/input_640.f32`` when
   ``ZOOPORT_ASSETS`` is set, else a seeded random image).
4. Compares per head, against the YOLOv5 model (zooport's native one, bit-identical to YOLOv5's golden
   outputs on 2 threads): (a) the input of each ``[yolo]`` layer (OpenCV's logistic 1x1 conv output) with
   YOLOv5's sigmoid outputs, (b) OpenCV's decoded ``[yolo]`` rows (x, y, w, h as fractions of the image,
   objectness: OpenCV's own output) with YOLOv5's decode divided by the input size; prints the maximum
   differences (boxes also in pixels) for OpenCV's defaults and with Winograd convolution off, and exits 1
   when one of the default run's exceeds ``--tol`` (1e-3). It also compares OpenCV with zooport's own
   Darknet model (eps 1e-5) running the same files.

OpenCV 4's Darknet importer normalises batch norm with eps 1e-6, not Darknet's 1e-5. The export is
folded for 1e-5 and scaled (``bn_scale=1024``, :mod:`zooport.converters.yolov5.bn_fold`) so that both epsilons
round away against the stored variances; ``--bn-scale 1`` shows what OpenCV does with an unscaled fold.

OpenCV's ``yolo_N`` output is (H*W*na, 5 + nc) per head, rows ordered cell-major (row, column, anchor);
zooport's decode rows are anchor-major (anchor, row, column): the script reorders before comparing.
OpenCV's class columns are objectness x class probability zeroed below its threshold and are not compared.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

_CHILD = r"""
import json, sys
import cv2, numpy as np
cfg, weights, inp, out = sys.argv[1:5]
x = np.load(inp)
outs = []
for winograd in (True, False):     # OpenCV's default, then its plain convolution
    net = cv2.dnn.readNetFromDarknet(cfg, weights)
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    net.enableWinograd(winograd)
    names = list(net.getLayerNames())
    yolos = list(net.getUnconnectedOutLayersNames())
    # OpenCV names the layers of Darknet layer i '<kind>_i' (activations one higher); the tensor a [yolo]
    # layer reads is the output of the layer listed just before its 'permute_i'
    heads_in = [names[names.index("permute_" + y.split("_")[1]) - 1] for y in yolos]
    net.setInput(x)
    outs += list(net.forward(heads_in + yolos))
np.savez(out, *outs)
print(json.dumps({"opencv": cv2.__version__, "heads_in": heads_in, "yolo": yolos}))
"""


def ensure_venv(venv: Path) -> Path:
    py = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    if py.exists():
        ok = subprocess.run([str(py), "-c", "import cv2, numpy; assert cv2.__version__.startswith('4.')"],
                            capture_output=True).returncode == 0
        if ok:
            return py
    print(f"creating {venv} with opencv-python-headless<5 ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "opencv-python-headless<5", "numpy"], check=True,
                   env=_clean_env())
    return py


def _clean_env() -> dict:
    """The environment without PYTHONPATH/PYTHONHOME: the OpenCV venv must not see zooport's packages."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    assets = os.environ.get("ZOOPORT_ASSETS")
    ap.add_argument("model", nargs="?", default=str(Path(assets or ".") / "zoo/yolov5/yolov5n.pt"))
    ap.add_argument("--input", default=None, help="raw float32 (1, 3, S, S) RGB [0, 1] (square)")
    ap.add_argument("--size", type=int, default=640, help="input side for the random image (no --input)")
    ap.add_argument("--venv", default=str(Path(tempfile.gettempdir()) / "zooport-opencv4-venv"))
    ap.add_argument("--keep", default=None, help="write the export here instead of a temp folder")
    ap.add_argument("--tol", type=float, default=1e-3)
    ap.add_argument("--bn-scale", type=float, default=1024,
                    help="power of two scaling conv weights / rolling means (variances by its square) in the "
                    "export; 1 writes YOLOv5's own magnitudes (default 1024, zooport's default export)")
    ap.add_argument("--bn-eps", type=float, default=1e-5,
                    help="batch-norm eps the export is folded for exactly: Darknet's 1e-5 (default); "
                    "OpenCV's importer uses 1e-6")
    args = ap.parse_args(argv)

    import torch

    import zooport

    py = ensure_venv(Path(args.venv))
    model = zooport.load_yolov5(args.model)
    torch.set_num_threads(2)     # YOLOv5's golden run used 2 threads: the native model then equals it bit for bit
    inp = args.input
    gold = Path(assets or ".") / "golden/real/yolov5n_bus"
    use_gold = inp is None and args.model.endswith("yolov5n.pt") and (gold / "decoded.f32").exists()
    if use_gold:
        inp = str(gold / "input_640.f32")
    if inp:
        a = np.fromfile(inp, dtype="<f4")
        side = int(round((a.size / 3) ** 0.5))
        x = a.reshape(1, 3, side, side)
    else:
        x = np.random.default_rng(0).random((1, 3, args.size, args.size), dtype=np.float32)
    h, w = x.shape[2:]
    with tempfile.TemporaryDirectory() as td:
        out_dir = Path(args.keep or td)
        out_dir.mkdir(parents=True, exist_ok=True)
        cfg, weights, names = out_dir / "model.cfg", out_dir / "model.weights", out_dir / "model.names"
        zooport.save_darknet(model, cfg, weights, names, input_size=(h, w), bn_eps=args.bn_eps,
                             bn_scale=args.bn_scale)
        np.save(out_dir / "input.npy", x)
        res = subprocess.run([str(py), "-c", _CHILD, str(cfg), str(weights), str(out_dir / "input.npy"),
                              str(out_dir / "opencv.npz")], capture_output=True, text=True, env=_clean_env())
        if res.returncode:
            print(res.stderr, file=sys.stderr)
            return 2
        meta = json.loads(res.stdout.strip().splitlines()[-1])
        z = np.load(out_dir / "opencv.npz")
        cv = [z[f"arr_{k}"] for k in range(len(z.files))]
        dmodel = zooport.load_darknet(cfg, weights, names=names)
        xt = torch.from_numpy(x.copy())
        det = model.model[model.detect_index]
        with torch.no_grad():
            dk_in = dmodel.raw(xt)       # zooport's Darknet model (eps 1e-5) on the very same files
            if use_gold:                 # the reference is YOLOv5's own output, read from the golden files
                ref_in, ref_dec = _golden_reference(gold, [t.shape for t in dk_in], det.na)
            else:
                ref_raw = model.raw(xt)
                ref_in = [r.sigmoid() for r in ref_raw]
                sizes = [det.na * r.shape[2] * r.shape[3] for r in ref_raw]
                ref_dec = det.decode(ref_raw).split(sizes, 1)       # YOLOv5's decode, split by level
    nh = len(ref_in)
    runs = [_differences(cv[2 * nh * r: 2 * nh * (r + 1)], ref_in, ref_dec, dk_in, det.na, h, w) for r in (0, 1)]
    print(f"OpenCV {meta['opencv']} readNetFromDarknet on the Darknet export of {model.source.get('file')} "
          f"(bn_eps {args.bn_eps:g}, bn_scale {args.bn_scale:g}, {h}x{w}, {nh} heads) vs "
          + ("YOLOv5 v7.0's golden outputs" if use_gold else "YOLOv5 (zooport's native model)") + ", max |diff|:")
    for label, worst in zip(("OpenCV defaults", "Winograd off"), runs):
        print(f"  {label}: head inputs {worst['head_in']:.3g}, objectness {worst['obj']:.3g}, boxes (fractions of "
              f"the image, OpenCV's output) {worst['box']:.3g}; in pixels: centres {worst['xy_px']:.3g}, "
              f"sizes {worst['wh_px']:.3g} ({worst['wh_rel']:.3g} of the size)"
              + f"; vs zooport's Darknet model {worst['vs_zooport_darknet']:.3g}")
    worst = runs[0]
    ok = max(worst["head_in"], worst["obj"], worst["box"], worst["vs_zooport_darknet"]) <= args.tol
    print("OK" if ok else f"FAILED: a difference exceeds {args.tol}")
    return 0 if ok else 1


def _golden_reference(gold: Path, shapes, na: int):
    """YOLOv5's golden per-level sigmoid outputs, shaped like the Darknet heads' inputs ``shapes``
    ((1, na * no, H, W) each), and its decoded rows split by level."""
    import torch

    ref_in, sizes = [], []
    for k, shape in enumerate(shapes):
        _, c, gh, gw = shape
        g = np.fromfile(gold / f"raw{k}.f32", dtype="<f4").astype(np.float64).reshape(1, na, gh, gw, c // na)
        ref_in.append(torch.from_numpy(1 / (1 + np.exp(-g.transpose(0, 1, 4, 2, 3).reshape(shape)))))
        sizes.append(na * gh * gw)
    dec = np.fromfile(gold / "decoded.f32", dtype="<f4").reshape(1, sum(sizes), -1)
    return ref_in, torch.from_numpy(dec).split(sizes, 1)


def _differences(cv, ref_in, ref_dec, dk_in, na, h, w) -> dict:
    """Maximum differences of one OpenCV run (``cv``: the heads' inputs, then the ``yolo_N`` outputs)."""
    nh = len(ref_in)
    worst = {"head_in": 0.0, "box": 0.0, "xy_px": 0.0, "wh_px": 0.0, "wh_rel": 0.0, "obj": 0.0,
             "vs_zooport_darknet": 0.0}
    for k in range(nh):
        r = ref_in[k].numpy()
        got = cv[k].reshape(r.shape)
        worst["head_in"] = max(worst["head_in"], float(np.abs(got - r).max()))
        worst["vs_zooport_darknet"] = max(worst["vs_zooport_darknet"], float(np.abs(got - dk_in[k].numpy()).max()))
        _, c, gh, gw = r.shape
        rows = cv[nh + k].reshape(gh, gw, na, -1).transpose(2, 0, 1, 3).reshape(na * gh * gw, -1)
        d = ref_dec[k][0].numpy().astype(np.float64)
        scale = np.array([w, h, w, h], dtype=np.float64)
        box = rows[:, :4].astype(np.float64)
        worst["box"] = max(worst["box"], float(np.abs(box - d[:, :4] / scale).max()))
        box = box * scale
        worst["xy_px"] = max(worst["xy_px"], float(np.abs(box[:, :2] - d[:, :2]).max()))
        e = np.abs(box[:, 2:] - d[:, 2:4])
        worst["wh_px"] = max(worst["wh_px"], float(e.max()))
        worst["wh_rel"] = max(worst["wh_rel"], float((e / np.maximum(d[:, 2:4], 1.0)).max()))
        worst["obj"] = max(worst["obj"], float(np.abs(rows[:, 4] - d[:, 4]).max()))
    return worst


if __name__ == "__main__":
    sys.exit(main())
