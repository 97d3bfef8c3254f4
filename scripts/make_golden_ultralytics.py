"""Make tests/golden/ultralytics/: slim Ultralytics 8.4 models, their checkpoints and reference outputs.

Run with the python of a SEPARATE venv that holds the ``ultralytics`` package (never zooport's)::

    /work/oracle/ultra-venv/bin/python scripts/make_golden_ultralytics.py [--out tests/golden/ultralytics]
        [--images DIR_WITH_bus.jpg_zidane.jpg] [--calib COCO_VAL2017_DIR] [--only NAME,...]

Nothing is downloaded: ``YOLO_OFFLINE`` is set and a throw-away settings dir is used; every model is built from a
yaml bundled in the ``ultralytics`` package (``ultralytics/cfg/models/...``) with a custom, slimmed scale ``n``.

Per model ``NAME`` (folder ``NAME/``):

- ``NAME.pt``: a release-style checkpoint, written exactly as Ultralytics finalises a training run: a trainer
  checkpoint saved by ``BaseTrainer.save_model`` then ``strip_optimizer`` (``model`` float16, ``date``,
  ``version``, ``train_args`` ...). ``yolo26n/last.pt`` additionally keeps the trainer-style checkpoint itself
  (``ema``, ``optimizer``, ``train_args``, ``train_metrics``, ``model`` None).
- ``IMG.npz`` for IMG in bus, zidane (numpy ``savez_compressed``, float32 unless noted):
  ``input_file``: the name of the shared ``inputs/IMG_<det|classify>_<imgsz>.npy`` (H, W, 3) uint8 RGB image the
  predictor fed the model (letterboxed; for cls the transformed crop); the model input is exactly ``u8 / 255``
  (float32, CHW, batch 1) when ``input_exact`` is True, else ``input`` holds the float input itself; ``raw.<key>``: every tensor of the head's raw prediction dict (``boxes`` (1, 4*reg_max, N),
  ``scores`` logits (1, nc, N), ``mask_coefficient``, ``kpts``, ``angle``, ``proto`` ...; ``one2many.`` /
  ``one2one.`` prefixes for dual heads), ``decoded`` (the head's inference tensor, the first element the model
  returns in eval); results of Ultralytics' own predictor post-processing (``predict(imgsz, conf=0.25)``, default
  iou 0.7): ``<v>.boxes`` (n, 6) x1 y1 x2 y2 conf cls in original-image pixels, ``<v>.masks_bits`` (packed bits of
  the (n, h, w) masks at the model-input resolution, ``np.packbits`` over the flattened array) with
  ``<v>.masks_shape``, ``<v>.kpts`` (n, K, 3), ``<v>.obb`` (n, 7) cx cy w h r conf cls, ``<v>.top5`` /
  ``<v>.top5conf`` / ``<v>.probs``; variant ``<v>`` is ``nms`` (default predict: one-to-many head + NMS) and, for
  end-to-end heads, ``e2e`` (``nms=False``: one-to-one head, top-k without NMS; ``raw``/``decoded`` of this run are
  stored under ``e2e.decoded``).
  All outputs come from the UNFUSED float32 model (``load_checkpoint(fuse=False)``) run through Ultralytics' own
  predictor (``AutoBackend(fuse=False, channels_last=False)`` swapped into the predictor): predict() itself fuses BN, which moves
  outputs by ~1e-4. ``fused.<v>.boxes`` records what plain ``YOLO(pt).predict`` returns, for information.
- ``pickle_globals.txt``: every ``module name`` global referenced by the checkpoint's pickles.
- ``info.json``: yaml, scale, nc, params, imgsz, the grey-image sensitivity check (max / rms of |bus - grey| over
  every raw output, and rms of the output), versions.

Weights: ``torch.manual_seed(seed)``, the model's own init, then BatchNorm affine parameters randomised
(weight U(0.6, 1.4), bias N(0, 0.1)) and BN running statistics calibrated on real images (the first 8 coco-tiny
val2017 images by name plus bus and zidane, each letterboxed as the predictor does (rectangular, stride 32), batch
1, cumulative average, BN layers only in train mode); then the last class
convs are rescaled per output channel to a logit std of 1.5 on the calibration images and their biases shifted per class so that ~0.2 % (one-to-one heads: 0.05 %) of that level's calibration scores exceed 0.25 (logit -1.1;
plus N(0, 0.3) jitter), and for reg_max == 1 heads the last box convs are rescaled to a std of 0.5 and shifted to a mean distance of
1.5 grid units: the models then make detections and their outputs depend on the image.
"""
from __future__ import annotations

import argparse
import copy
import io
import json
import os
import pickletools
import sys
import tempfile
import types
import zipfile
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="ultra-cfg-"))
os.environ.setdefault("YOLO_VERBOSE", "False")

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
COCO8 = ["person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck"]
DOTA = ["plane", "ship", "storage tank", "baseball diamond", "tennis court", "basketball court",
        "ground track field", "harbor", "bridge", "large vehicle", "small vehicle", "helicopter", "roundabout",
        "soccer ball field", "swimming pool"]

# name: (yaml relative to ultralytics/cfg/models, task, [depth, width, max_channels], nc, imgsz, seed)
MODELS = {
    "yolo26n": ("26/yolo26.yaml", "detect", [0.5, 0.0625, 1024], 8, 160, 0),
    "yolo26n-seg": ("26/yolo26-seg.yaml", "segment", [0.5, 0.0625, 1024], 8, 160, 1),
    "yolo26n-pose": ("26/yolo26-pose.yaml", "pose", [0.5, 0.0625, 1024], 1, 160, 2),
    "yolo26n-obb": ("26/yolo26-obb.yaml", "obb", [0.5, 0.0625, 1024], 15, 160, 3),
    "yolo26n-cls": ("26/yolo26-cls.yaml", "classify", [0.5, 0.0625, 1024], 10, 224, 4),
    "yolo11n-seg": ("11/yolo11-seg.yaml", "segment", [0.5, 0.0625, 1024], 8, 160, 5),
    "yolo11n-pose": ("11/yolo11-pose.yaml", "pose", [0.5, 0.0625, 1024], 1, 160, 6),
    "yolo11n-obb": ("11/yolo11-obb.yaml", "obb", [0.5, 0.0625, 1024], 15, 160, 7),
    "yolo11n-cls": ("11/yolo11-cls.yaml", "classify", [0.5, 0.0625, 1024], 10, 224, 8),
    "yolov8n-seg": ("v8/yolov8-seg.yaml", "segment", [0.33, 0.0625, 1024], 8, 160, 9),
    "yolov8n-pose": ("v8/yolov8-pose.yaml", "pose", [0.33, 0.0625, 1024], 1, 160, 10),
    "yolov8n-obb": ("v8/yolov8-obb.yaml", "obb", [0.33, 0.0625, 1024], 15, 160, 11),
    "yolov8n-cls": ("v8/yolov8-cls.yaml", "classify", [0.33, 0.0625, 1024], 10, 224, 12),
    "yolov10n": ("v10/yolov10n.yaml", "detect", [0.33, 0.0625, 1024], 8, 160, 13),
    "yolo12n": ("12/yolo12.yaml", "detect", [0.5, 0.25, 256], 8, 160, 14),
}
IMAGES = ("bus", "zidane")
# folders kept in git (tests read them); the others are made the same way by this script and added when their
# native parity tests land, to keep tests/golden/ultralytics within its few-MB budget (all 15: ~23 MB)
COMMITTED = ("inputs", "yolo26n", "yolov10n")


def names_for(task, nc):
    if task == "obb":
        return DOTA[:nc]
    if task == "pose":
        return ["person"]
    if task == "classify":
        return [f"cls{i}" for i in range(nc)]
    return COCO8[:nc]


def letterboxed(path, imgsz):
    import cv2
    from ultralytics.data.augment import LetterBox

    im = cv2.imread(str(path))
    return LetterBox((imgsz, imgsz), auto=True, stride=32)(image=im)  # the predictor's rectangular letterbox


def build(name, spec):
    from ultralytics.nn.tasks import (ClassificationModel, DetectionModel, OBBModel, PoseModel,
                                      SegmentationModel, yaml_model_load)
    import ultralytics

    rel, task, scale, nc, imgsz, seed = spec
    cfg = yaml_model_load(Path(ultralytics.__file__).parent / "cfg" / "models" / rel)
    cfg = copy.deepcopy(cfg)
    cfg["scales"] = {"n": list(scale)}
    cfg["scale"] = "n"
    cfg["nc"] = nc
    if task == "pose":
        cfg["kpt_shape"] = [17, 3]
    cls = {"detect": DetectionModel, "segment": SegmentationModel, "pose": PoseModel, "obb": OBBModel,
           "classify": ClassificationModel}[task]
    torch.manual_seed(seed)
    model = cls(cfg, nc=nc, verbose=False)
    model.names = dict(enumerate(names_for(task, nc)))
    return model, cfg


def _last_convs(head, attr):
    """The final nn.Conv2d of each level of head.<attr> (a ModuleList of Sequentials), or []."""
    seq = getattr(head, attr, None)
    if seq is None:
        return []
    return [s[-1] for s in seq]


def randomise_and_calibrate(model, task, imgsz, calib_paths, seed):
    g = torch.Generator().manual_seed(1000 + seed)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for m in bns:
            m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 0.8 + 0.6)
            m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    xs = [torch.from_numpy(letterboxed(p, imgsz)[..., ::-1].copy()).permute(2, 0, 1).float()[None] / 255
          for p in calib_paths]
    model.eval()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
        m.train()
    with torch.no_grad():
        for x in xs:
            model(x)
    for m in bns:
        m.momentum = 0.03
    model.eval()
    head = model.model[-1]
    if task == "classify":
        return
    # shift the last class / box convs so the slim random models make detections on real images
    targets = [(c, "cls" if a == "cv3" else "cls1") for a in ("cv3", "one2one_cv3") for c in _last_convs(head, a)]
    if getattr(head, "reg_max", 16) == 1:
        targets += [(c, "box") for a in ("cv2", "one2one_cv2") for c in _last_convs(head, a)]
    outs = {}
    hooks = [c.register_forward_hook(lambda m, i, o, k=id(c): outs.setdefault(k, []).append(
        o.detach().transpose(0, 1).reshape(o.shape[1], -1))) for c, _ in targets]
    with torch.no_grad():
        for x in xs:
            model(x)
    for h in hooks:
        h.remove()
    with torch.no_grad():
        for c, kind in targets:
            o = torch.cat(outs[id(c)], 1)
            # rescale each output channel first (std 1.5 for class logits, 0.5 for distances) so that no score
            # saturates (sigmoid == 1.0 ties would make top-k order fragile) and boxes stay a few cells wide
            f = o.std(1) / (1.5 if kind in ("cls", "cls1") else 0.5)
            c.weight /= f.view(-1, 1, 1, 1)
            c.bias /= f
            o = o / f[:, None]
            if kind in ("cls", "cls1"):  # one-to-one heads (no NMS after them) get a stricter tail
                q = torch.quantile(o, 0.998 if kind == "cls" else 0.9995, dim=1)
                c.bias -= q + 1.1 - torch.randn(q.shape, generator=g) * 0.3
            else:
                c.bias += 1.5 - o.mean(1)


def save_checkpoints(model, task, imgsz, folder, name, keep_last):
    """Trainer-style checkpoint via BaseTrainer.save_model, then release-style via strip_optimizer."""
    from ultralytics.cfg import get_cfg
    from ultralytics.engine.trainer import BaseTrainer
    from ultralytics.utils import DEFAULT_CFG
    from ultralytics.utils.torch_utils import ModelEMA, strip_optimizer

    args = get_cfg(DEFAULT_CFG, {"model": f"{name}.yaml", "task": task, "imgsz": imgsz, "epochs": 1,
                                 "data": "coco8.yaml", "device": "cpu"})
    model.args = args
    train_model = copy.deepcopy(model)
    opt = torch.optim.SGD(train_model.parameters(), lr=0.01, momentum=0.937, nesterov=True)
    for p in train_model.parameters():  # one step so the optimizer has momentum buffers, as after an epoch
        p.grad = torch.zeros_like(p)
    opt.step()
    tmp = Path(tempfile.mkdtemp(prefix="ultra-ckpt-"))
    fake = types.SimpleNamespace(
        ema=ModelEMA(model), model=train_model, epoch=0, best_fitness=0.1, fitness=0.1,
        stopper=types.SimpleNamespace(best_fitness=0.1, best_epoch=0), optimizer=opt,
        scaler=torch.amp.GradScaler("cpu", enabled=False), args=args,
        metrics={"metrics/mAP50(B)": 0.2, "metrics/mAP50-95(B)": 0.1}, read_results_csv=lambda: {},
        wdir=tmp, last=tmp / "last.pt", best=tmp / "best.pt", save_period=-1)
    BaseTrainer.save_model(fake)
    if keep_last:
        (folder / "last.pt").write_bytes(fake.last.read_bytes())
    strip_optimizer(fake.last, s=str(folder / f"{name}.pt"))


def pickle_globals(path):
    """Sorted 'module name' globals of every data.pkl in a torch zip checkpoint."""
    found = set()
    with zipfile.ZipFile(path) as z:
        for n in z.namelist():
            if n.endswith(".pkl"):
                ops = list(pickletools.genops(z.read(n)))
                strings = []
                for op, arg, _ in ops:
                    if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
                        strings.append(arg)
                    if op.name == "GLOBAL":
                        found.add(arg.replace("\n", " ") if isinstance(arg, str) else arg)
                    elif op.name == "STACK_GLOBAL":
                        found.add(f"{strings[-2]} {strings[-1]}")
    return sorted(found)


def flat_tensors(obj, prefix, out):
    if isinstance(obj, torch.Tensor):
        out[prefix] = obj.detach().float().numpy()
    elif isinstance(obj, dict):
        for k, v in obj.items():
            if k != "feats":
                flat_tensors(v, f"{prefix}.{k}" if prefix else k, out)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            flat_tensors(v, f"{prefix}.{i}", out)


def results_arrays(r, v, out):
    if r.boxes is not None:
        out[f"{v}.boxes"] = r.boxes.data.float().numpy()
    if r.masks is not None:
        m = r.masks.data.numpy() > 0.5
        out[f"{v}.masks_bits"] = np.packbits(m.reshape(-1))
        out[f"{v}.masks_shape"] = np.array(m.shape, np.int64)
    elif r.boxes is not None and hasattr(r, "masks") and r.boxes.data.shape[0] == 0:
        pass
    if r.keypoints is not None:
        out[f"{v}.kpts"] = r.keypoints.data.float().numpy()
    if r.obb is not None:
        out[f"{v}.obb"] = r.obb.data.float().numpy()
    if r.probs is not None:
        out[f"{v}.top5"] = np.array(r.probs.top5, np.int64)
        out[f"{v}.top5conf"] = r.probs.top5conf.float().numpy()
        out[f"{v}.probs"] = r.probs.data.float().numpy()


def run_outputs(pt, task, imgsz, img_paths, grey):
    """Per image: the dict of arrays described in the module doc, plus the sensitivity numbers."""
    from ultralytics import YOLO
    from ultralytics.nn.autobackend import AutoBackend
    from ultralytics.nn.tasks import load_checkpoint

    yolo = YOLO(str(pt), task=task)
    e2e_head = getattr(load_checkpoint(pt, fuse=False)[0].model[-1], "one2one_cv2", None) is not None
    variants = [("nms", None)] + ([("e2e", False)] if e2e_head else [])
    per_image = {}
    for img in img_paths:
        per_image[img.stem] = {}
    for v, nms in variants:
        kw = dict(imgsz=imgsz, conf=0.25, save=False, verbose=False, device="cpu", nms=nms)
        for img in img_paths:  # plain predict (fused model), for information
            r = yolo.predict(str(img), **kw)[0]
            if r.boxes is not None:
                per_image[img.stem][f"fused.{v}.boxes"] = r.boxes.data.float().numpy()
        net = load_checkpoint(pt, fuse=False)[0]
        # channels_last=False: 8.4 auto-enables channels-last on x86 CPUs, whose conv kernels move outputs by
        # ~1e-4 relative; the goldens use the plain NCHW float32 computation
        yolo.predictor.model = AutoBackend(model=net, device=torch.device("cpu"), fuse=False, verbose=False,
                                           end2end=(nms is False), channels_last=False)
        yolo.predictor.model.eval()
        captured = {}
        h1 = net.register_forward_pre_hook(lambda m, a: captured.__setitem__("input", a[0].detach().clone()))
        h2 = net.model[-1].register_forward_hook(lambda m, a, o: captured.__setitem__("head", o))
        for img in img_paths:
            captured.clear()
            r = yolo.predict(str(img), **kw)[0]
            out = per_image[img.stem]
            x = captured["input"]
            if v == "nms":
                if task == "classify":
                    u8 = (x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
                else:
                    import cv2

                    u8 = yolo.predictor.pre_transform([cv2.imread(str(img))])[0][..., ::-1].copy()
                back = torch.from_numpy(u8).permute(2, 0, 1).float().div(255)[None]
                out["input_exact"] = np.array(bool(torch.equal(back, x)))
                out["input_u8"] = u8  # moved to the shared inputs/ folder by main() when identical
                if not torch.equal(back, x):
                    out["input"] = x.numpy()  # cls transforms are not a plain /255 of uint8 values
            head = captured["head"]
            y, raw = (head if isinstance(head, tuple) else (head, {}))
            pre = "" if v == "nms" else "e2e."
            dec = {}
            flat_tensors(y, "decoded", dec)
            flat_tensors(raw, "raw", dec)
            if v == "e2e":
                dec = {k: a for k, a in dec.items() if k.startswith("decoded")}
            for k, a in dec.items():
                out[pre + k] = a
            results_arrays(r, v, out)
            out[f"{v}.orig_shape"] = np.array(r.orig_shape, np.int64)
            if v == "nms":
                with torch.no_grad():
                    g_out = net(torch.full_like(x, 114 / 255))
                gy, graw = g_out if isinstance(g_out, tuple) else (g_out, {})
                gd = {}
                flat_tensors(gy, "decoded", gd)
                flat_tensors(graw, "raw", gd)
                grey.setdefault(img.stem, {})
                for k, a in dec.items():
                    if k in gd and gd[k].shape == a.shape:
                        d = np.abs(gd[k] - a)
                        grey[img.stem][k] = {"max_abs_diff": float(d.max()), "rms_diff": float(np.sqrt((d ** 2).mean())),
                                             "rms_out": float(np.sqrt((a ** 2).mean()))}
        h1.remove()
        h2.remove()
    return per_image


README_HEAD = """# tests/golden/ultralytics/ -- slim models written and run by the `ultralytics` package {ultralytics}

Made by `scripts/make_golden_ultralytics.py` (its module docstring is the full specification) with the python of
a separate venv holding ultralytics {ultralytics}, torch {torch}, torchvision {torchvision}, numpy {numpy}, OpenCV
{opencv}, Python {python} (the PyPI builds, run on CPU, 2 threads). `YOLO_OFFLINE=1` and a throw-away settings
folder: nothing was downloaded; every model was built from the yaml that ships inside the package
(`ultralytics/cfg/models/<yaml>`), its `scales` replaced by one slimmed scale `n` = [depth, width, max_channels].

How the weights were made: `torch.manual_seed(seed)`, Ultralytics' own init, BatchNorm affine parameters
randomised, BN statistics calibrated on real images (first 8 coco-tiny val2017 images by name + bus + zidane,
letterboxed as the predictor does), last class convs rescaled (logit std 1.5) and shifted so that a few
candidates pass conf 0.25; reg_max-1 box convs rescaled (std 0.5, mean 1.5 cells). Checkpoints were then written
by Ultralytics' own code: `BaseTrainer.save_model` (a trainer-style checkpoint: `model` None, `ema`,
`optimizer`, `scaler`, `train_args`, `train_metrics`, `git` ...; kept as `yolo26n/last.pt`) and
`strip_optimizer` (release-style `NAME.pt`: `model` float16, `date`, `version`, `license`, `docs`).

Outputs (per model `NAME/bus.npz`, `NAME/zidane.npz`; keys in the generator's docstring) are Ultralytics' own
predictor (`YOLO(NAME.pt).predict(imgsz, conf=0.25)`, iou 0.7) with the UNFUSED float32 model swapped in
(`AutoBackend(fuse=False, channels_last=False)`; plain predict() fuses BN and on x86 CPUs switches to channels-last
convs, each moving outputs by ~1e-4 relative: its results are kept under `fused.*` for information only). The
model input is exactly `inputs/<input_file> / 255` (uint8 RGB, letterboxed rectangular to stride 32; cls: the
224 crop of Ultralytics' classify transforms). `nms.*`: the default predict (one-to-many head + NMS);
`e2e.*`: `predict(nms=False)` (end-to-end heads: one-to-one branch, top-k without NMS, (1, 300, 6 + extra)).
Masks are `np.packbits` of the (n, h, w) boolean masks at the model-input resolution (`masks_shape`).

Sensitivity: for every raw and decoded output, bus vs a constant grey (114/255) input of the same shape; the
column gives the smallest ratio max|bus - grey| / (1e-4 * max(1, rms(out))) over a model's outputs (>> 1: the
outputs depend on the image far beyond float noise). `detections` = rows of `nms.boxes` (or obb / top-5) for
bus / zidane.

| model | yaml | task | [depth, width, max_ch] | nc | imgsz | params | detections bus/zidane (nms; e2e) | grey ratio (min) |
|---|---|---|---|---|---|---|---|---|
"""


def write_readme(out_root: Path) -> None:
    rows, versions = [], None
    for name in MODELS:
        f = out_root / name / "info.json"
        if not f.exists():
            continue
        info = json.loads(f.read_text())
        versions = info["versions"]
        c = info["counts"]

        def n(stem, v):
            for k in (f"{v}.boxes", f"{v}.obb", f"{v}.top5"):
                if k in c.get(stem, {}):
                    return str(c[stem][k][0])
            return "-"
        det = "/".join(n(s, "nms") for s in IMAGES)
        if any("e2e.decoded" in c[s] for s in c):
            det += "; " + "/".join(n(s, "e2e") for s in IMAGES)
        ratios = [v["max_abs_diff"] / (1e-4 * max(1.0, v["rms_out"])) for v in info["grey_vs_image"]["bus"].values()]
        ratio = f"{min(ratios):.0f}" if ratios else "-"
        rows.append(f"| {name} | {info['yaml']} | {info['task']} | {info['scale_n']} | {info['nc']} | "
                    f"{info['imgsz']} | {info['params']:,} | {det} | {ratio} |")
    v = dict({"torchvision": "?", "opencv": "?"}, **(versions or {}))
    tail = (f"\nIn git: {', '.join(COMMITTED)} (plus this README and index.json); the other rows are what this "
            f"script makes for them (same procedure, same seeds), to be committed with their native parity tests.\n")
    (out_root / "README.md").write_text(README_HEAD.format(**v) + "\n".join(rows) + "\n" + tail)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--readme-only", action="store_true", help="only rewrite README.md from the info.json files")
    ap.add_argument("--out", default=str(ROOT / "tests" / "golden" / "ultralytics"))
    ap.add_argument("--images", default="/work/shared/zoo/images")
    ap.add_argument("--calib", default="/work/shared/coco-tiny/val2017")
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    import ultralytics
    from ultralytics.utils import SETTINGS

    SETTINGS.update({"sync": False})
    torch.set_num_threads(2)
    out_root = Path(a.out)
    img_paths = [Path(a.images) / f"{n}.jpg" for n in IMAGES]
    calib = sorted(Path(a.calib).glob("*.jpg"))[:8] + img_paths
    only = [s for s in a.only.split(",") if s]
    if a.readme_only:
        write_readme(out_root)
        return
    versions = {"ultralytics": ultralytics.__version__, "torch": torch.__version__, "numpy": np.__version__,
                "python": sys.version.split()[0]}
    try:
        import cv2
        import torchvision

        versions.update(torchvision=torchvision.__version__, opencv=cv2.__version__)
    except ImportError:
        pass
    index = {"versions": versions, "models": {}}
    for name, spec in MODELS.items():
        if only and name not in only:
            continue
        rel, task, scale, nc, imgsz, seed = spec
        folder = out_root / name
        folder.mkdir(parents=True, exist_ok=True)
        model, cfg = build(name, spec)
        randomise_and_calibrate(model, task, imgsz, calib, seed)
        save_checkpoints(model, task, imgsz, folder, name, keep_last=(name == "yolo26n"))
        pt = folder / f"{name}.pt"
        grey: dict = {}
        per_image = run_outputs(pt, task, imgsz, img_paths, grey)
        for stem, arrays in per_image.items():
            shared = out_root / "inputs" / f"{stem}_{task if task == 'classify' else 'det'}_{imgsz}.npy"
            shared.parent.mkdir(exist_ok=True)
            u8 = arrays["input_u8"]
            if not shared.exists():
                np.save(shared, u8)
            if np.array_equal(np.load(shared), u8):  # the same letterboxed input as other models: store it once
                arrays = {k: v for k, v in arrays.items() if k != "input_u8"}
                arrays["input_file"] = np.array(shared.name)
            np.savez_compressed(folder / f"{stem}.npz", **arrays)
        (folder / "pickle_globals.txt").write_text("\n".join(pickle_globals(pt)) + "\n")
        if (folder / "last.pt").exists():
            (folder / "pickle_globals_last.txt").write_text("\n".join(pickle_globals(folder / "last.pt")) + "\n")
        info = {"yaml": rel, "task": task, "scale_n": scale, "nc": nc, "names": names_for(task, nc),
                "imgsz": imgsz, "seed": seed, "params": sum(p.numel() for p in model.parameters()),
                "grey_vs_image": grey, "versions": versions,
                "counts": {stem: {k: list(np.shape(v)) for k, v in arr.items()} for stem, arr in per_image.items()}}
        (folder / "info.json").write_text(json.dumps(info, indent=1) + "\n")
        index["models"][name] = {"task": task, "params": info["params"], "imgsz": imgsz, "nc": nc}
        print(name, task, info["params"], {s: {k: list(np.shape(v)) for k, v in arr.items() if "." in k and
                                                   not k.startswith("raw")} for s, arr in per_image.items()},
              flush=True)
    idx = out_root / "index.json"
    old = json.loads(idx.read_text()) if idx.exists() and only else {"models": {}}
    old["versions"] = versions
    old["models"].update(index["models"])
    idx.write_text(json.dumps(old, indent=1) + "\n")
    write_readme(out_root)


if __name__ == "__main__":
    main()
