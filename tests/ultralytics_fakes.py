"""Ultralytics-shaped checkpoints for the tests, without the `ultralytics` package.

A small native model is deep-copied, given the attributes Ultralytics' modules
carry (``f``, ``i``, model ``stride`` tensor, ``names`` dict, ``yaml``), and
pickled by a pickler that writes Ultralytics' class names (``GLOBAL
ultralytics.nn.modules.block C2f`` ...) for zooport's classes, in the layout
``strip_optimizer`` writes (``model``, ``ema``, ``train_args`` ...). Payloads
are added by the tests.
"""
from __future__ import annotations

import copy
import pickle
import types

import torch
from yolov5_fakes import ForeignNamePickler

B = "ultralytics.nn.modules.block."
BOTTLE = {"type": "Bottleneck", "k": [3, 3], "g": 1}


def tiny_arch(head: str = "v11") -> dict:
    """Every block type, 2 levels (strides 8, 16), nc 3."""
    return {"stride": [8, 16], "act": {"type": "SiLU"}, "bn_eps": 1e-3, "bn_momentum": 0.03, "nc": 3,
            "reg_max": 16, "fused": False, "layers": [
                {"type": "Conv", "from": -1, "c1": 3, "c2": 8, "k": 3, "s": 2, "p": 1, "g": 1, "d": 1, "act": True},
                {"type": "Conv", "from": -1, "c1": 8, "c2": 16, "k": 3, "s": 2, "p": 1, "g": 1, "d": 1, "act": True},
                {"type": "C2f", "from": -1, "c1": 16, "c2": 16, "c": 8,
                 "blocks": [dict(BOTTLE, c1=8, c2=8, c_=8, add=True)]},
                {"type": "Conv", "from": -1, "c1": 16, "c2": 32, "k": 3, "s": 2, "p": 1, "g": 1, "d": 1, "act": True},
                {"type": "C3k2", "from": -1, "c1": 32, "c2": 32, "c": 16,
                 "blocks": [{"type": "C3k", "c1": 16, "c2": 16, "c_": 8,
                             "blocks": [dict(BOTTLE, c1=8, c2=8, c_=8, add=True)] * 2}]},
                {"type": "Conv", "from": -1, "c1": 32, "c2": 64, "k": 3, "s": 2, "p": 1, "g": 1, "d": 1, "act": True},
                {"type": "SPPF", "from": -1, "c1": 64, "c2": 64, "k": 5},
                {"type": "C2PSA", "from": -1, "c1": 64, "c2": 64, "c": 32,
                 "blocks": [{"num_heads": 1, "key_dim": 16, "head_dim": 32, "hidden": 64, "add": True}]},
                {"type": "Upsample", "from": -1, "size": None, "scale_factor": 2.0, "mode": "nearest"},
                {"type": "Concat", "from": [-1, 4], "d": 1},
                {"type": "C2f", "from": -1, "c1": 96, "c2": 32, "c": 16,
                 "blocks": [dict(BOTTLE, c1=16, c2=16, c_=16, add=False)]},
                {"type": "Detect", "from": [10, 7], "nc": 3, "ch": [32, 64], "c2": 64, "c3": 16, "reg_max": 16,
                 "head": head}]}


def tiny_model(head: str = "v11", seed: int = 0, end2end: bool = False, reg_max: int = 16):
    """``end2end``/``reg_max``: a YOLO26-style head (one-to-one copies of both branches, reg_max 1)."""
    from zooport.model_defs.ultralytics.model import UltralyticsModel

    torch.manual_seed(seed)
    arch = tiny_arch(head)
    arch["layers"][-1].update(end2end=end2end, reg_max=reg_max)
    arch["reg_max"] = reg_max
    m = UltralyticsModel(arch, {"names": ["a", "b", "c"]})
    with torch.no_grad():  # non-trivial BN statistics so a wrong layout shows in the outputs
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 1.5)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.normal_(0, 0.1)
    return m.eval()


def _names(model) -> dict:
    """id(class) -> Ultralytics qualified name, for the classes of a native model."""
    from zooport.model_defs.ultralytics import model as UM
    from zooport.model_defs.ultralytics import blocks as U
    from zooport.model_defs.yolov5 import blocks as Y

    return {id(UM.UltralyticsModel): "ultralytics.nn.tasks.DetectionModel",
            id(Y.Conv): "ultralytics.nn.modules.conv.Conv", id(Y.Concat): "ultralytics.nn.modules.conv.Concat",
            id(Y.SPPF): B + "SPPF", id(Y.C3): B + "C3k", id(U.C2f): B + "C2f", id(U.Bottleneck): B + "Bottleneck",
            id(U.C2PSA): B + "C2PSA", id(U.PSABlock): B + "PSABlock", id(U.Attention): B + "Attention",
            id(U.DFL): B + "DFL", id(U.Detect): "ultralytics.nn.modules.head.Detect", id(U.SPPF): B + "SPPF"}


def ultralytics_shaped(model):
    """A deep copy of ``model`` carrying the attributes an Ultralytics DetectionModel pickles."""
    m = copy.deepcopy(model)
    for i, (layer, spec) in enumerate(zip(m.model, m.native_arch()["layers"])):
        layer.f, layer.i = spec["from"], i
    m.model[-1].anchors = torch.zeros(2, 5)  # cached head state: read and ignored
    m.model[-1].shape = torch.Size([1, 2, 3, 4])
    m.stride = torch.tensor([float(s) for s in model.stride])
    m.names = dict(enumerate(model.names))
    m.args = {"imgsz": 320}
    return m


class _UltraPickler(ForeignNamePickler):
    renames: dict = {}

    def save(self, obj, save_persistent_id=True):
        if type(obj).__name__ == "Ref":  # test_yolov5_safety.Ref: a global written verbatim
            self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
            return
        super().save(obj, save_persistent_id)

    def foreign_name(self, obj) -> str | None:
        return self.renames.get(id(obj))


def save_ultralytics(top: dict, path, renames: dict | None = None) -> None:
    """``torch.save`` ``top`` with zooport classes written under Ultralytics names (``renames``:
    extra {class: qualified name} entries, e.g. to forge a class)."""
    table = _names(None)
    for cls, fq in (renames or {}).items():
        table[id(cls)] = fq
    pickler = type("P", (_UltraPickler,), {"renames": table})
    mod = types.SimpleNamespace(__name__="ultra_pickle", Pickler=pickler, dump=pickle.dump)
    torch.save(top, path, pickle_module=mod, pickle_protocol=2)


def checkpoint(model, **extra) -> dict:
    """The top-level dict ``strip_optimizer`` writes, around ``model``."""
    top = {"date": "2026-01-01T00:00:00", "version": "8.3.253", "license": "AGPL-3.0", "docs": "", "epoch": -1,
           "best_fitness": None, "model": model, "ema": None, "updates": None, "optimizer": None, "scaler": None,
           "train_args": {"task": "detect", "imgsz": 320}, "train_metrics": {}, "train_results": {}, "git": {}}
    top.update(extra)
    return top
