#!/usr/bin/env python
"""Maintenance check: zooport's YOLOv5 definitions against YOLOv5's own code, yaml by yaml.

For every model yaml of a YOLOv5 source tree (``models/*.yaml`` and
``models/hub/*.yaml``: P5/P6/P2/P7 heads, BiFPN, FPN, PANet, ghost,
transformer, LeakyReLU, YOLOv3 variants) this builds YOLOv5's own
``DetectionModel`` and zooport's ``create_yolov5`` from the same file, gives
YOLOv5's model random BatchNorm statistics, moves its state dict into zooport
(``from_yolov5_state_dict``, strict) and back (``to_yolov5_state_dict`` into
YOLOv5's model, strict), and compares parameter counts, the round-tripped
tensors and the eval outputs on one random image. Then the bundled
``create_yolov5("yolov5{n,s,m,l,x}[6]")`` against YOLOv5's yamls of the same name.

It imports YOLOv5's code (the source tree you pass, with its requirements
installed; nothing is unpickled), so it is a developer tool, not a test:

    python scripts/crosscheck_yolov5.py --yolov5-src PATH [--size 256]

``PATH`` is an Ultralytics checkout (``PATH/models/yolo.py``) or the folder
holding the PyPI ``yolov5`` package (``PATH/yolov5/models/yolo.py``). Exit
status 1 if any model differs.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import logging
import sys
from pathlib import Path


def _import_yolov5(src: Path):
    """YOLOv5's ``DetectionModel`` and ``Conv`` classes, and its models/ folder."""
    sys.path.insert(0, str(src))
    if (src / "models" / "yolo.py").is_file():
        from models.common import Conv  # noqa: E402  (YOLOv5's code, by request)
        from models.yolo import DetectionModel  # noqa: E402
        return DetectionModel, Conv, src / "models"
    if (src / "yolov5" / "models" / "yolo.py").is_file():
        from yolov5.models.common import Conv  # noqa: E402
        from yolov5.models.yolo import DetectionModel  # noqa: E402
        return DetectionModel, Conv, src / "yolov5" / "models"
    raise SystemExit(f"crosscheck_yolov5: {src}: no models/yolo.py or yolov5/models/yolo.py there")


def _theirs(DetectionModel, Conv, yaml_path: Path):
    import torch

    # YOLOv5's parse_model assigns the yaml's activation to the Conv *class*; it would leak into
    # every model built after a LeakyReLU yaml, so each build starts from YOLOv5's default.
    Conv.default_act = torch.nn.SiLU()
    with contextlib.redirect_stdout(io.StringIO()):
        return DetectionModel(str(yaml_path)).eval()


def _randomise_bn(model, gen) -> None:
    import torch

    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            for t, lo, hi in ((m.running_mean, -0.1, 0.1), (m.running_var, 0.5, 1.5), (m.weight.data, 0.5, 1.5),
                              (m.bias.data, -0.1, 0.1)):
                t.copy_(torch.rand(t.shape, generator=gen) * (hi - lo) + lo)


def check_yaml(DetectionModel, Conv, yaml_path: Path, size: int, gen, bundled: str | None = None) -> bool:
    import torch

    from zooport.converters.yolov5.load import from_yolov5_state_dict, to_yolov5_state_dict
    from zooport.model_defs.yolov5.create import create_yolov5

    label = bundled or yaml_path.name
    try:
        theirs = _theirs(DetectionModel, Conv, yaml_path)
        ours = create_yolov5(bundled or str(yaml_path))
        _randomise_bn(theirs, gen)
        sd = theirs.state_dict()
        ours.load_state_dict(from_yolov5_state_dict(ours, sd, label), strict=True)
        back = to_yolov5_state_dict(ours)
        same = list(back) == list(sd) and all(torch.equal(back[k], sd[k]) for k in sd)
        theirs.load_state_dict(back, strict=True)
        n_t = sum(p.numel() for p in theirs.parameters())
        n_o = sum(p.numel() for p in ours.parameters())
        x = torch.rand(1, 3, size, size, generator=gen)
        with torch.no_grad():
            a, b = theirs(x)[0], ours(x)
        rel = ((a - b).abs().max() / a.abs().max()).item() if a.shape == b.shape else float("inf")
    except Exception as e:  # report and go on: one broken yaml should not hide the others
        print(f"{label:28s} ERROR {type(e).__name__}: {str(e)[:300]}")
        return False
    ok = same and n_t == n_o and rel <= 1e-6
    print(f"{label:28s} params {n_t:>11,d} {'==' if n_t == n_o else '!='} {n_o:<11,d} "
          f"state dict round trip {'exact' if same else 'DIFFERS'}  out {tuple(a.shape)}  "
          f"max rel diff {rel:.1e}  {'ok' if ok else 'FAIL'}")
    return ok


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--yolov5-src", required=True, type=Path, metavar="PATH", help="a YOLOv5 source tree")
    ap.add_argument("--size", type=int, default=256, help="input size (a multiple of 128 suits P7 models)")
    args = ap.parse_args(argv)
    import torch

    logging.disable(logging.INFO)  # YOLOv5 logs a model summary per build
    DetectionModel, Conv, models_dir = _import_yolov5(args.yolov5_src.resolve())
    gen = torch.Generator().manual_seed(0)
    yamls = sorted(p for p in list(models_dir.glob("*.yaml")) + list((models_dir / "hub").glob("*.yaml"))
                   if p.name != "anchors.yaml")
    results = [check_yaml(DetectionModel, Conv, y, args.size, gen) for y in yamls]
    print("\nbundled architectures (zooport/cfgs/yolov5) against YOLOv5's yamls of the same name:")
    for size in "nsmlx":
        for suffix, sub in (("", ""), ("6", "hub")):
            name = f"yolov5{size}{suffix}"
            path = models_dir / sub / f"{name}.yaml"
            if path.is_file():
                results.append(check_yaml(DetectionModel, Conv, path, args.size, gen, bundled=name))
    print(f"\n{sum(results)} of {len(results)} models equal")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
