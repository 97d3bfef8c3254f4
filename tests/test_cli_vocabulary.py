"""One CLI vocabulary: ``--to`` for every convert source (``--format`` / ``--to native`` / ``--classes`` as
deprecated aliases), one default-output rule, one success line, ``-o`` optional for ``export onnx``,
``info darknet`` in cli/info.py, and ``num_classes=`` / ``names=`` / ``load(cfg, weights)`` in the Python API.
Synthetic models only: nothing here needs ZOOPORT_ASSETS."""
from __future__ import annotations

import argparse
import re

import numpy as np
import pytest
import torch

import zooport
from zooport.cli.main import main

# a 2-class YOLO detector small enough to build, convert and export in well under a second
DET_CFG = """[net]
width=32
height=32
channels=3

[convolutional]
batch_normalize=1
filters=4
size=3
stride=2
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[maxpool]
size=2
stride=2

[maxpool]
size=2
stride=2

[convolutional]
size=1
stride=1
pad=1
filters=21
activation=linear

[yolo]
mask=0,1,2
anchors=10,14, 23,27, 37,58
classes=2
num=3
"""
SUCCESS = re.compile(r"^wrote (\S+) \(\d+(\.\d)? (B|kB|MB|GB), ([\w ]+)\) in \d+\.\d s$")


def det_pair(folder, stem="det"):
    """(cfg, weights) of DET_CFG with seeded weights written in Darknet's layout."""
    from zooport.parsers.darknet.cfg import parse_cfg
    from zooport.parsers.darknet.plan import build_plan, weights_float_count

    cfg = folder / f"{stem}.cfg"
    cfg.write_text(DET_CFG)
    n = weights_float_count(build_plan(parse_cfg(cfg)))
    vals = np.random.default_rng(0).normal(0, 0.1, n).astype("<f4")
    vals[12:16] = np.abs(vals[12:16]) + 0.5  # BN running_var of the first conv (bias, scale, mean, var)
    w = folder / f"{stem}.weights"
    w.write_bytes(np.array([0, 2, 5], "<i4").tobytes() + np.array([0], "<u8").tobytes() + vals.tobytes())
    return cfg, w


def success_lines(text: str) -> list:
    return [m for m in (SUCCESS.match(ln) for ln in text.splitlines()) if m]


def test_convert_darknet_to_and_default_output_beside_weights(tmp_path, capsys):
    cfg, w = det_pair(tmp_path)
    assert main(["convert", "darknet", str(cfg), str(w), "--to", "safetensors"]) == 0
    out, err = capsys.readouterr()
    (m,) = success_lines(out)
    assert m.group(1) == str(tmp_path / "det.safetensors") and m.group(4) == "safetensors"
    assert err == ""
    assert zooport.load(tmp_path / "det.safetensors").names == ["class0", "class1"]
    # --to darknet: det.weights is the input, so the default inserts .converted; the input is untouched
    before = w.read_bytes()
    assert main(["convert", "darknet", str(cfg), str(w), "--to", "darknet"]) == 0
    assert (tmp_path / "det.converted.weights").read_bytes() == before == w.read_bytes()
    (m,) = success_lines(capsys.readouterr().out)
    assert m.group(4) == "darknet"


def test_convert_darknet_deprecated_aliases_warn_once(tmp_path, capsys):
    cfg, w = det_pair(tmp_path)
    out = tmp_path / "a.pt"
    assert main(["convert", "darknet", str(cfg), str(w), "--format", "pt", "--classes", "3", "-o", str(out)]) == 0
    o, err = capsys.readouterr()
    assert err.splitlines() == ["zooport: warning: --format is deprecated; use --to",
                                "zooport: warning: --classes is deprecated for convert darknet; use --num-classes"]
    assert success_lines(o) and "--num-classes 3: not loaded" in o
    assert zooport.load(out).names == ["class0", "class1", "class2"]


def test_convert_target_not_supported_by_source(tmp_path, capsys):
    cfg, w = det_pair(tmp_path)
    assert main(["convert", "darknet", str(cfg), str(w), "--to", "yolov5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("zooport: error: convert darknet --to yolov5: not supported") and "pt, safetensors" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["det.cfg", "det.weights"]


@pytest.mark.parametrize("argv,target,warned", [
    (["--to", "native"], "pt", "--to native is deprecated"),
    (["--to", "native", "-o", "x.safetensors"], "safetensors", "--to native is deprecated"),
    (["--format", "darknet"], "darknet", "--format is deprecated"),
    (["-o", "x.weights"], "darknet", None),
    (["-o", "x.pth"], "pt", None),          # .pth is mmdet's suffix; mmdet is not a target of mmdet -> pt
    ([], "pt", None),
])
def test_resolve_target_rules(capsys, argv, target, warned):
    from zooport.cli.convert import add_output_args, resolve_target

    p = argparse.ArgumentParser()
    add_output_args(p, ("pt", "safetensors", "darknet"), "x")
    assert resolve_target(p.parse_args(argv), "mmdet", ("pt", "safetensors", "darknet")) == target
    err = capsys.readouterr().err
    assert (warned in err) if warned else err == ""


def test_convert_yolov5_names_and_success_line(tmp_path, capsys):
    from yolov5_fakes import build_release, save_foreign

    ckpt, _ = build_release("v7.0", seed=1)
    src = tmp_path / "y.pt"
    save_foreign(ckpt, src)
    names = tmp_path / "n.names"
    names.write_text("a\nb\nc\n")
    assert main(["convert", "yolov5", str(src), "--names", str(names)]) == 0
    (m,) = success_lines(capsys.readouterr().out)
    assert m.group(1) == str(tmp_path / "y.converted.pt") and m.group(4) == "pt"
    assert zooport.load(tmp_path / "y.converted.pt").names == ["a", "b", "c"]
    assert zooport.load_yolov5(src, names=["x", "y", "z"]).names == ["x", "y", "z"]
    assert zooport.load(src, names=str(names)).names == ["a", "b", "c"]
    with pytest.raises(zooport.UsageError, match="2 class names given"):
        zooport.load_yolov5(src, names=["x", "y"])


def test_export_onnx_output_defaults_beside_the_model(tmp_path, capsys):
    cfg, w = det_pair(tmp_path)
    assert main(["export", "onnx", str(cfg), str(w)]) == 0
    (m,) = success_lines(capsys.readouterr().out)
    assert m.group(1) == str(tmp_path / "det.onnx") and m.group(4) == "onnx default"
    assert (tmp_path / "det.onnx").stat().st_size > 1000


def test_export_imgsz_rounded_up_to_stride_with_warning(tmp_path, capsys):
    import onnx

    cfg, w = det_pair(tmp_path)
    out = tmp_path / "r.onnx"
    assert main(["export", "onnx", str(cfg), str(w), "-o", str(out), "--imgsz", "20", "33"]) == 0
    err = capsys.readouterr().err
    assert "zooport: warning: --imgsz 20 33 is not a multiple of the model's max stride 16; using 32 48" in err
    dims = [d.dim_value for d in onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 32, 48]


def test_info_darknet_lives_in_cli_info(tmp_path, capsys):
    import zooport.cli.convert_darknet as cd
    from zooport.cli import info

    assert not hasattr(cd, "info_darknet") and hasattr(info, "info_darknet")
    cfg, _ = det_pair(tmp_path)
    assert main(["info", "darknet", str(cfg)]) == 0
    assert capsys.readouterr().out.startswith(f"{cfg}: 6 layers")
    assert main(["info", "darknet", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err


def test_load_cfg_weights_two_arguments_and_list(tmp_path):
    cfg, w = det_pair(tmp_path)
    a = zooport.load(cfg, w)
    b = zooport.load([str(cfg), str(w)])
    c = zooport.load_darknet(cfg, w)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(a(x), b(x)) and torch.equal(a(x), c(x))
    assert zooport.load(cfg, w, num_classes=3).num_classes == 3
    assert zooport.load(cfg, w, names=["p", "q"]).names == ["p", "q"]
    with pytest.raises(zooport.UsageError, match="arguments swapped"):
        zooport.load(w, cfg)


def test_load_zoo_name_goes_to_the_zoo(monkeypatch):
    import zooport.zoo.api as api

    seen = []
    monkeypatch.setattr(api, "load_pretrained", lambda name: seen.append(name) or "model")
    assert zooport.load("yolov4") == "model" and seen == ["yolov4"]


def test_create_yolov5_num_classes_names_and_deprecated_nc():
    m = zooport.create_yolov5("yolov5n", names=["a", "b"])
    assert m.num_classes == 2 and m.names == ["a", "b"]
    assert zooport.create_yolov5("yolov5n", num_classes=3).num_classes == 3
    with pytest.warns(DeprecationWarning, match="num_classes"):
        assert zooport.create_yolov5("yolov5n", nc=4).num_classes == 4
    with pytest.raises(zooport.UsageError):
        zooport.create_yolov5("yolov5n", num_classes=3, names=["a"])


def test_load_mmdet_accepts_names_file(tmp_path):
    """``names=`` takes a list or a file everywhere; a bad names file is one ParseError type."""
    import inspect

    for fn in (zooport.load_darknet, zooport.load_yolov5, zooport.load_mmdet, zooport.load):
        assert "names" in inspect.signature(fn).parameters, fn
    for fn in (zooport.load_darknet, zooport.load, zooport.create_yolov5):
        assert "num_classes" in inspect.signature(fn).parameters, fn
    empty = tmp_path / "e.names"
    empty.write_text("\n\n")
    with pytest.raises(zooport.ParseError, match="empty"):
        zooport.load_mmdet(tmp_path / "none.pth", names=empty)


def test_readme_api_examples_bind_to_the_real_signatures():
    """Every ``zooport.NAME(...)`` call in the README's Python API block matches NAME's signature
    (``load(cfg, weights)`` raised TypeError while the README showed it)."""
    import ast
    import inspect
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = text.split("```python", 1)[1].split("```", 1)[0]
    calls = 0
    for node in ast.walk(ast.parse(block)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "zooport"):
            fn = getattr(zooport, node.func.attr)
            args = [object()] * len(node.args)
            kwargs = {k.arg: object() for k in node.keywords}
            inspect.signature(fn).bind(*args, **kwargs)  # raises TypeError on a mismatch
            calls += 1
    assert calls >= 12
    for needle in ("torch==2.13.0", "--index-url https://download.pytorch.org/whl/cpu", "--to TARGET",
                   "wrote PATH (SIZE, TARGET) in T s", "--num-classes N"):
        assert needle in text, needle
