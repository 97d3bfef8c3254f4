"""Golden outputs of hhaAndroid/mmdetection-mini's own RR* YOLO models (run in the ORACLE venv).

Not part of zooport: this script imports mmdetection-mini's code (``mmdet`` from its source tree) and
is run with the separate oracle venv, never by zooport's tests:

    PYTHONPATH=/work/oracle/mini-src:/work/oracle/mini-stubs \\
        /work/oracle/mini-venv/bin/python scripts/make_golden_mini.py \\
        --mini /work/oracle/mini-src --assets /work/shared --out tests/golden/mini

``/work/oracle/mini-stubs`` holds the import adaptations listed in README.md (mmcv._ext with its
``nms`` transcribed from mmcv 1.x's CPU kernel; skimage and torchvision import stubs). Nothing of
mini's model math is changed.

For each model in MODELS: the detector is built by mini's own ``build_detector`` from mini's own
config file (with the listed ``cfg-options`` overrides), every state-dict tensor gets a per-key
formula value (``formula()``), BN running statistics are calibrated on four real photos, the
checkpoint is saved as mini's converters save theirs (``{"state_dict": OrderedDict}``), re-loaded
by mini's ``load_checkpoint(strict=True)`` and run by mini's own test pipeline + ``simple_test`` on
bus.jpg. See README.md (written by this script) for the files.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np
import torch

# name -> (mini config, cfg overrides (dotted key -> value), test image scale, ship the .pth?)
MODELS = {
    # RRDarknet53/RRDarkNeck take input_channels; 2 instead of 32 = Darknet yolov3.cfg with every
    # non-head filters/16. Head in_channels follow (16, 8, 4) * input_channels.
    "yolov3_slim": ("configs/yolo/rr_yolov3_d53_416_coco.py",
                    {"model.backbone.input_channels": 2, "model.neck.input_channels": 2,
                     "model.bbox_head.in_channels": [32, 16, 8], "model.bbox_head.num_classes": 3}, 416, True),
    # RRCSPDarknet53 / RRYoloV4DarkNeck / the tiny backbones hard-code their widths: full width, weights
    # not shipped (regenerated from formula() + the calibrated BN stats in bnstats.f32).
    "yolov4": ("configs/yolo/rr_yolov4_cspd53_416_coco.py", {"model.bbox_head.num_classes": 3}, 416, False),
    "tiny_yolov3": ("configs/yolo/rr_tiny_yolov3_416_coco.py", {"model.bbox_head.num_classes": 3}, 416, False),
    "tiny_yolov4": ("configs/yolo/rr_tiny_yolov4_416_coco.py", {"model.bbox_head.num_classes": 3}, 416, False),
    # RRYolov5Head hard-codes 255 output channels (80 classes); width 0.125 keeps it small. Test at 160.
    "yolov5s_slim": ("configs/yolo/rr_yolov5_416_coco.py",
                     {"model.backbone.width_multiple": 0.125, "model.bbox_head.out_channels": [0.33, 0.125]},
                     160, False),
}


def formula(k: int, shape, kind: str) -> np.ndarray:
    """The value of the k-th state-dict tensor (counting keys without num_batches_tracked), as in
    ../shared/golden/mmdet/yolov3_d53: u ~ U(-1, 1) from PCG64(1000 + k) in float64, then
    conv weight (4-D): u * sqrt(3 / fan_in); BN weight: 0.6 + 0.2 u; running_var: 1 + 0.5 u;
    everything else (BN bias, running_mean, conv bias): 0.05 u; cast to float32."""
    n = int(np.prod(shape))
    u = np.random.Generator(np.random.PCG64(1000 + k)).random(n) * 2 - 1
    if kind == "conv":
        v = u * np.sqrt(3.0 / (shape[1] * shape[2] * shape[3]))
    elif kind == "bn_weight":
        v = 0.6 + 0.2 * u
    elif kind == "running_var":
        v = 1 + 0.5 * u
    else:
        v = 0.05 * u
    return v.astype(np.float32).reshape(shape)


def tensor_kind(key: str, t: torch.Tensor, bn_prefixes: set) -> str:
    prefix, _, leaf = key.rpartition(".")
    if prefix in bn_prefixes:
        return {"weight": "bn_weight", "bias": "bn_bias", "running_mean": "running_mean",
                "running_var": "running_var"}[leaf]
    return "conv" if t.dim() == 4 else "other"


def sha(t: torch.Tensor) -> str:
    return hashlib.sha256(t.contiguous().numpy().astype(t.numpy().dtype.newbyteorder("<")).tobytes()).hexdigest()


def set_dotted(cfg, key, value):
    parts = key.split(".")
    node = cfg
    for p in parts[:-1]:
        node = node[p]
    node[parts[-1]] = value


def calib_batch(assets: Path, h: int, w: int) -> torch.Tensor:
    imgs = [assets / "zoo/images/bus.jpg", assets / "zoo/images/zidane.jpg"]
    imgs += sorted((assets / "coco-tiny/val2017").glob("*.jpg"))[:2]
    out = []
    for p in imgs:
        im = cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)
        im = cv2.resize(im, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255.0
        out.append(torch.from_numpy(im).permute(2, 0, 1))
    return torch.stack(out)


def build(mini: Path, cfg_rel: str, overrides: dict, scale: int):
    from mmdet import cv_core
    from mmdet.models import build_detector
    cfg = cv_core.Config.fromfile(str(mini / cfg_rel))
    for k, v in overrides.items():
        set_dotted(cfg, k, v)
    # the test image scale: MultiScaleFlipAug img_scale, and LetterResize's own for yolov5
    tp = cfg.data.test.pipeline
    tp[1]["img_scale"] = (scale, scale)
    for t in tp[1]["transforms"]:
        if t["type"] == "LetterResize":
            t["img_scale"] = (scale, scale)
    cfg.model.pretrained = None
    model = build_detector(cfg.model, test_cfg=cfg.test_cfg)
    return cfg, model


def make_weights(model, calib: torch.Tensor):
    """Formula weights, then BN running stats calibrated on `calib` (train-mode forward with
    cumulative averaging, i.e. the batch statistics), num_batches_tracked back to 0 as in a
    freshly converted checkpoint. Returns the state dict and the keys whose values are calibrated."""
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
        model.bbox_head(model.extract_feat(calib))
        model.eval()
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.num_batches_tracked.zero_()
    calibrated = [n for n in model.state_dict() if n.rpartition(".")[0] in bn_prefixes
                  and n.rpartition(".")[2] in ("running_mean", "running_var")]
    return OrderedDict((k, v.clone()) for k, v in model.state_dict().items()), calibrated, bn_prefixes


def run_pipeline(cfg, model, image: Path):
    """mini's inference_detector steps (Compose(test pipeline) -> collate -> simple_test), with the
    backbone input and the bbox_head outputs captured by hooks."""
    from mmdet.cv_core.parallel import collate
    from mmdet.datasets.pipelines import Compose
    got = {}
    h1 = model.backbone.register_forward_pre_hook(lambda m, a: got.__setitem__("input", a[0].clone()))
    h2 = model.bbox_head.register_forward_hook(lambda m, a, o: got.__setitem__("outs", [t.clone() for t in o[0]]))
    data = Compose(cfg.data.test.pipeline)(dict(img_info=dict(filename=str(image)), img_prefix=None))
    data = collate([data], samples_per_gpu=1)
    data["img_metas"] = data["img_metas"][0].data
    with torch.no_grad():
        img = data["img"][0]
        metas = data["img_metas"][0]
        feats = model.extract_feat(img)
        outs = model.bbox_head(feats)
        dets = {}
        for rescale in (False, True):
            b, l = model.bbox_head.get_bboxes(*[[t.clone() for t in outs[0]]], metas, rescale=rescale)[0]
            dets[rescale] = (b.clone(), l.clone())
        res = model(return_loss=False, rescale=True, img=[img], img_metas=[metas])[0]
    h1.remove()
    h2.remove()
    # the detector's own simple_test result must hold the same boxes as get_bboxes(rescale=True)
    n_res = sum(len(r) for r in res)
    assert n_res == len(dets[True][0]), (n_res, len(dets[True][0]))
    return got, metas[0], dets


def write_config(path: Path, cfg):
    """The effective config as a small mini-schema .py (model, test_cfg, the test pipeline): plain
    dict literals, readable by zooport's restricted config reader."""
    def plain(v):
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return type(v)(plain(x) for x in v)
        return v
    model = plain(cfg.model._cfg_dict if hasattr(cfg.model, "_cfg_dict") else cfg.model)
    model = {k: plain(v) for k, v in dict(cfg.model).items()}
    text = ["# effective mmdetection-mini config of this golden (written by scripts/make_golden_mini.py)",
            f"model = {model!r}", f"test_cfg = {plain(dict(cfg.test_cfg))!r}",
            f"data = {{'test': {{'pipeline': {plain([dict(t) for t in cfg.data.test.pipeline])!r}}}}}"]
    path.write_text("\n".join(text) + "\n")


def write_dets(path: Path, dets):
    b, l = dets
    with open(path, "w") as f:
        for row, lab in zip(b.tolist(), l.tolist()):
            f.write(" ".join(f"{v:.6f}" for v in row[:4]) + f" {row[4]:.8f} {int(lab)}\n")


def save_input(out: Path, x: torch.Tensor) -> str:
    """Store the preprocessed input as uint8 (mini's Normalize with mean 0, std 255 of a uint8
    image); checks that float32(u8) / 255 (mmcv's imnormalize: subtract mean, multiply by 1/std in
    float64 then float32) reproduces every value exactly, else stores float32."""
    a = x[0].numpy()
    u8 = np.rint(a * 255).clip(0, 255).astype(np.uint8)
    back = ((u8.astype(np.float32) - np.float32(0)) * np.float32(1 / 255.0)).astype(np.float32)
    exact = np.array_equal(back, a)
    assert exact, "input not reproducible from uint8"
    # one file per input size, shared by the models run at that size (asserted identical)
    name = f"input_bus_{a.shape[1]}x{a.shape[2]}.u8"
    if (out.parent / name).exists():
        assert (out.parent / name).read_bytes() == u8.tobytes(), name
    (out.parent / name).write_bytes(u8.tobytes())
    return f"input ../{name} u8 {' '.join(map(str, a.shape))}"


def gen_model(name, spec, mini, assets, out, index):
    cfg_rel, overrides, scale, ship = spec
    cfg, model = build(mini, cfg_rel, overrides, scale)
    calib = calib_batch(assets, *((320, 416) if scale == 416 else (160, 160)))
    sd, calibrated, bn_prefixes = make_weights(model, calib)
    d = out / name
    d.mkdir(parents=True, exist_ok=True)
    ck = (d if ship else Path("/work/oracle/out") / name)
    ck.mkdir(parents=True, exist_ok=True)
    pth = ck / f"{name}.pth"
    # mmdetection-mini ran on torch 1.3 (README "pytorch1.3+...+MMCV1.1.5"), which writes the legacy
    # (non-zip) torch.save format: the shipped checkpoints use it.
    torch.save({"state_dict": sd}, str(pth), _use_new_zipfile_serialization=False)
    from mmdet.cv_core.runner import load_checkpoint
    cfg2, model2 = build(mini, cfg_rel, overrides, scale)
    load_checkpoint(model2, str(pth), map_location="cpu", strict=True)
    model2.eval()
    got, meta, dets = run_pipeline(cfg2, model2, assets / "zoo/images/bus.jpg")
    stats = [sd[k].numpy().astype("<f4").ravel() for k in calibrated]
    (d / "bnstats.f32").write_bytes(np.concatenate(stats).tobytes())
    with open(d / "keys.tsv", "w") as f:
        f.write("key\tshape\tkind\tsha256\n")
        for k, v in sd.items():
            kind = "count" if k.endswith("num_batches_tracked") else (
                "calibrated" if k in calibrated else tensor_kind(k, v, bn_prefixes))
            f.write(f"{k}\t{','.join(map(str, v.shape))}\t{kind}\t{sha(v)}\n")
    lines = [f"config {cfg_rel}", "overrides " + repr(overrides), f"checkpoint {pth.name if ship else '-'}",
             save_input(d, got["input"]),
             "scale_factor " + " ".join(f"{v:.8f}" for v in np.asarray(meta["scale_factor"]).tolist()),
             "ori_shape " + " ".join(map(str, meta["ori_shape"])),
             "img_shape " + " ".join(map(str, meta["img_shape"])),
             "pad_shape " + " ".join(map(str, meta["pad_shape"]))]
    if "pad_param" in meta:
        lines.append("pad_param " + " ".join(str(int(v)) for v in meta["pad_param"]))
    for i, t in enumerate(got["outs"]):
        (d / f"out{i}.f32").write_bytes(t.numpy().astype("<f4").tobytes())
        lines.append(f"out{i} f32 {' '.join(map(str, t.shape))}")
    write_dets(d / "dets.txt", dets[True])
    write_dets(d / "dets_norescale.txt", dets[False])
    write_config(d / "config.py", cfg2)
    lines.append(f"dets {len(dets[True][0])}")
    (d / "index.txt").write_text("\n".join(lines) + "\n")
    index.append(f"{name}\t{cfg_rel}\t{len(dets[True][0])} dets")
    print(name, "ok", [tuple(t.shape) for t in got["outs"]], len(dets[True][0]), "dets", flush=True)


def gen_converter_digest(mini, assets, out, index):
    """Run mini's own tools/darknet/tiny_yolov3.py on the real yolov3-tiny.weights (the only Darknet
    file its hard-coded widths fit). The script's __main__ block is executed as written except for
    its two hard-coded paths (input weights, output .pth), which are substituted. Its output .pth
    (35 MB) is not shipped: keys, shapes and per-tensor sha256 go to digest.tsv. The same .pth is
    then run by mini's RRTinyYolov3 detector on bus.jpg (real weights, real detections)."""
    src = (mini / "tools/darknet/tiny_yolov3.py").read_text()
    wpath = assets / "zoo/darknet/yolov3-tiny.weights"
    opath = Path("/work/oracle/out/tiny_yolov3_real/tiny_yolov3.pth")
    opath.parent.mkdir(parents=True, exist_ok=True)
    a, b = "'/home/pi/yolo权重/tiny-yolov3/yolov3-tiny.weights'", "'../../tiny_yolov3.pth'"
    assert src.count(a) == 1 and src.count(b) == 1
    src = src.replace(a, repr(str(wpath))).replace(b, repr(str(opath)))
    g = {"__name__": "__main__", "__file__": str(mini / "tools/darknet/tiny_yolov3.py")}
    exec(compile(src, "tools/darknet/tiny_yolov3.py", "exec"), g)
    data = torch.load(str(opath), map_location="cpu", weights_only=True)
    d = out / "tiny_yolov3_real"
    d.mkdir(parents=True, exist_ok=True)
    with open(d / "digest.tsv", "w") as f:
        f.write("key\tshape\tdtype\tsha256\n")
        for k, v in data["state_dict"].items():
            f.write(f"{k}\t{','.join(map(str, v.shape))}\t{str(v.dtype).replace('torch.', '')}\t{sha(v)}\n")
    from mmdet.cv_core.runner import load_checkpoint
    cfg_rel = "configs/yolo/rr_tiny_yolov3_416_coco.py"
    cfg, model = build(mini, cfg_rel, {}, 416)
    load_checkpoint(model, str(opath), map_location="cpu", strict=True)
    model.eval()
    got, meta, dets = run_pipeline(cfg, model, assets / "zoo/images/bus.jpg")
    lines = [f"config {cfg_rel}", "overrides {}", "checkpoint - (digest.tsv)",
             save_input(d, got["input"]),
             "scale_factor " + " ".join(f"{v:.8f}" for v in np.asarray(meta["scale_factor"]).tolist()),
             "ori_shape " + " ".join(map(str, meta["ori_shape"])),
             "img_shape " + " ".join(map(str, meta["img_shape"])),
             "pad_shape " + " ".join(map(str, meta["pad_shape"]))]
    for i, t in enumerate(got["outs"]):
        (d / f"out{i}.f32").write_bytes(t.numpy().astype("<f4").tobytes())
        lines.append(f"out{i} f32 {' '.join(map(str, t.shape))}")
    write_dets(d / "dets.txt", dets[True])
    write_dets(d / "dets_norescale.txt", dets[False])
    write_config(d / "config.py", cfg)
    lines.append(f"dets {len(dets[True][0])}")
    (d / "index.txt").write_text("\n".join(lines) + "\n")
    index.append(f"tiny_yolov3_real\t{cfg_rel}\t{len(dets[True][0])} dets (real yolov3-tiny.weights via tools/darknet/tiny_yolov3.py)")
    print("tiny_yolov3_real ok", len(dets[True][0]), "dets", flush=True)


def gen_yolov5_v3(v3dir: Path, mini: Path, assets: Path, out: Path, index: list):
    """YOLOv5 v3.0's own code (tag v3.0) builds yolov5s at width 0.0625 (depth 0.33); Conv activations set
    to nn.Hardswish as the released v3.0 checkpoints pickle them; formula weights, BN calibrated as above;
    saved as a release checkpoint ({'model': model.half(), ...}; train.py's `nc`/`hyp` attributes set).
    Then mini's own convert_yolov5_weights_step1.py and step2.py run on it (paths substituted; step1 under
    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1, as its torch 1.6 torch.load unpickled models). The .pt is shipped
    (fp16, small); step2's output is recorded as digest.tsv."""
    import copy
    sys.path.insert(0, str(v3dir))
    os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
    import yaml as _yaml
    from models.common import Conv as V3Conv
    from models.yolo import Model
    cfg = _yaml.safe_load((v3dir / "models/yolov5s.yaml").read_text())
    cfg["width_multiple"] = 0.0625
    with torch.no_grad():  # v3.0's _initialize_biases edits a view of a leaf in place (allowed under no_grad)
        m = Model(cfg)
    for mod in m.modules():
        if isinstance(mod, V3Conv) and not isinstance(mod.act, torch.nn.Identity):
            mod.act = torch.nn.Hardswish()
    bn_prefixes = {n for n, mm in m.model.named_modules() if isinstance(mm, torch.nn.BatchNorm2d)}
    sd = m.model.state_dict()
    k = 0
    with torch.no_grad():
        for key, t in sd.items():
            if key.endswith("num_batches_tracked") or "anchor" in key:
                continue
            t.copy_(torch.from_numpy(formula(k, tuple(t.shape), tensor_kind(key, t, bn_prefixes))))
            k += 1
        for mm in m.modules():
            if isinstance(mm, torch.nn.BatchNorm2d):
                mm.reset_running_stats()
                mm.momentum = None
        m.train()
        m(calib_batch(assets, 64, 64))
        m.eval()
        for mm in m.modules():
            if isinstance(mm, torch.nn.BatchNorm2d):
                mm.num_batches_tracked.zero_()
    m.nc, m.hyp = 80, {}
    d = out / "yolov5_v3_convert"
    d.mkdir(parents=True, exist_ok=True)
    pt = d / "yolov5s_w0625_v3.pt"
    torch.save({"epoch": -1, "best_fitness": None, "training_results": None, "model": copy.deepcopy(m).half(),
                "optimizer": None}, str(pt))
    tmp = Path("/work/oracle/out/yolov5_v3")
    tmp.mkdir(parents=True, exist_ok=True)
    step1 = (mini / "tools/darknet/convert_yolov5_weights_step1.py").read_text()
    for a, b in (("is_download = True", "is_download = False"), ("'/home/pi/yolov5s.pt'", repr(str(pt))),
                 ("save_name = 'yolov5s.pth'", f"save_name = {str(tmp / 'yolov5s.pth')!r}")):
        assert step1.count(a) == 1, a
        step1 = step1.replace(a, b)
    exec(compile(step1, "convert_yolov5_weights_step1.py", "exec"), {"__name__": "__main__"})
    step2 = (mini / "tools/darknet/convert_yolov5_weights_step2.py").read_text()
    for a, b in (("'/home/pi/pytorch_2020/yolov5/yolov5s.pth'", repr(str(tmp / "yolov5s.pth"))),
                 ("'../../yolov5s_mm.pth'", repr(str(tmp / "yolov5s_mm.pth")))):
        assert step2.count(a) == 1, a
        step2 = step2.replace(a, b)
    exec(compile(step2, "convert_yolov5_weights_step2.py", "exec"), {"__name__": "__main__"})
    data = torch.load(str(tmp / "yolov5s_mm.pth"), map_location="cpu", weights_only=True)
    with open(d / "digest.tsv", "w") as f:
        f.write("key\tshape\tdtype\tsha256\n")
        for key, v in data["state_dict"].items():
            f.write(f"{key}\t{','.join(map(str, v.shape))}\t{str(v.dtype).replace('torch.', '')}\t{sha(v)}\n")
    commit = subprocess.run(["git", "--git-dir", "/work/.mirror/ultralytics+yolov5/repo", "rev-parse", "v3.0"],
                            capture_output=True, text=True).stdout.strip()
    (d / "index.txt").write_text(f"yolov5 {commit}\ncheckpoint {pt.name}\nwidth_multiple 0.0625\n"
                                 f"depth_multiple {cfg['depth_multiple']}\nkeys {len(data['state_dict'])}\n")
    index.append(f"yolov5_v3_convert\tYOLOv5 v3.0 yolov5s.yaml (width 0.0625)\tmini step1+step2 digest")
    print("yolov5_v3_convert ok", len(data["state_dict"]), "keys", pt.stat().st_size, "bytes", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mini", type=Path, required=True)
    ap.add_argument("--assets", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--yolov5-v3", type=Path, help="YOLOv5 tag v3.0 source tree (git archive v3.0)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    sys.path.insert(0, str(a.mini))
    a.out.mkdir(parents=True, exist_ok=True)
    index = []
    for name, spec in MODELS.items():
        if not a.only or name in a.only:
            gen_model(name, spec, a.mini, a.assets, a.out, index)
    if not a.only or "tiny_yolov3_real" in a.only:
        gen_converter_digest(a.mini, a.assets, a.out, index)
    if a.yolov5_v3 and (not a.only or "yolov5_v3_convert" in a.only):
        gen_yolov5_v3(a.yolov5_v3, a.mini, a.assets, a.out, index)
    commit = subprocess.run(["git", "--git-dir", "/work/.mirror/hhaAndroid+mmdetection-mini/repo", "rev-parse",
                             "HEAD"], capture_output=True, text=True).stdout.strip()
    (a.out / "VERSIONS.txt").write_text(
        f"mmdetection-mini {commit}\ntorch {torch.__version__}\nnumpy {np.__version__}\nopencv {cv2.__version__}\n"
        f"python {sys.version.split()[0]}\n")
    if not a.only:
        (a.out / "index.tsv").write_text("\n".join(index) + "\n")


if __name__ == "__main__":
    main()
