"""The one registry of model families: what each family is, read by every tool that used to keep its own table.

A :class:`Family` record says, as data, everything the rest of zooport asks of a family:

* ``name``: the key (``"darknet"``, ``"yolov5"``, ``"ultralytics"``, ``"mmdet"``), also the ``SOURCE`` of
  ``zooport convert SOURCE`` and a zoo manifest ``format`` when ``zoo`` is true;
* ``what`` / ``convert``: how hints name a file of the family ("looks like a YOLOv5 checkpoint: use
  `zooport convert yolov5 CKPT`");
* ``loader``: ``"module:function"`` reading the family's own files into a native model;
* ``native``: native-checkpoint ``family`` key -> (``from_native(arch, meta)`` builder, task) for each model
  class of the family (a YOLOv5 segmentation model is saved as ``"yolov5-seg"``, task ``"segment"``);
* ``targets``: what ``zooport convert SOURCE --to`` writes; ``cli_module``: the module registering that verb;
* ``pickle_globals`` / ``pickle_strings``: prefixes of the module paths a pickled checkpoint of the family
  names as globals / as strings (the sniff rule; ``sniff_strings``: the dict keys that identify a family
  whose checkpoints pickle no classes);
* ``postprocess``: the verifier's and predictor's default post-processing flavour; ``eval_defaults``: its
  conf / iou / max_det as the family's own validator uses them; ``onnx_parity``: the exported ONNX decodes
  exactly like the eager model, so ``verify --backend auto`` may run it on onnxruntime; ``stride_rounding``:
  input sizes must be multiples of the maximum stride;
* ``assigner``: the training assigner ``analyze assign`` draws (None: decided by the model's head);
  ``raw_layout``: ``"levels"`` (``raw(x)`` is one tensor per level) or ``"groups"`` (output groups, each a
  list of per-level tensors); ``anchors_writer``: the function writing new anchors into the family's own
  architecture file (``analyze anchors --write-cfg``), if any.

Adding a family means its sub-packages (``parsers/<family>/``, ``converters/<family>/``, ``model_defs/<family>/``,
a ``postprocess`` module if it needs one), one record in :data:`FAMILIES` and its tests (``docs/ARCHITECTURE.md``).
Torch-free and light: records hold import paths, resolved only when called.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import MappingProxyType

from .errors import CheckpointError, UsageError


@dataclass(frozen=True)
class Family:
    name: str
    what: str
    convert: str
    loader: str
    native: dict = field(default_factory=dict)
    targets: tuple = ()
    cli_module: str = ""
    pickle_globals: tuple = ()
    pickle_strings: tuple = ()
    sniff_strings: frozenset = frozenset()
    postprocess: str = "yolov5"
    eval_defaults: dict = field(default_factory=dict)
    onnx_parity: bool = False
    stride_rounding: bool = True
    zoo: bool = False
    takes_config: bool = False
    assigner: str | None = None
    raw_layout: str = "levels"
    anchors_writer: str | None = None

    def load_fn(self):
        """The family's loader function (imported on first use)."""
        return resolve(self.loader)

    def task(self, native_key: str) -> str:
        return self.native[native_key][1]


def resolve(target: str):
    """``"package.module:attr.attr"`` -> the object (imported lazily)."""
    mod, _, attr = target.partition(":")
    obj = importlib.import_module(mod)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


_YOLO_EVAL = MappingProxyType({"conf": 0.001, "iou": 0.65, "max_det": 300})

# The registry (explicit, ordered: a file is sniffed against the families in this order).
FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family(
        name="darknet", what="a Darknet file", convert="zooport convert darknet CFG WEIGHTS",
        loader="zooport.converters.darknet.load:load_darknet",
        native={"darknet": ("zooport.model_defs.darknet.model:DarknetModel.from_native", "detect")},
        targets=("pt", "safetensors", "darknet", "mmdet", "mmdet-mini"), cli_module="zooport.cli.convert_darknet",
        postprocess="darknet", eval_defaults=MappingProxyType({"conf": 0.001, "iou": 0.6, "max_det": None}),
        onnx_parity=True, zoo=True, assigner="yolov3"),
    Family(
        name="ultralytics", what="an Ultralytics checkpoint", convert="zooport convert ultralytics CKPT",
        loader="zooport.converters.ultralytics.load:load_ultralytics",
        native={"ultralytics": ("zooport.model_defs.ultralytics.model:UltralyticsModel.from_native", "detect"),
                "ultralytics-cls": ("zooport.model_defs.ultralytics.classify:UltralyticsClsModel.from_native",
                                    "classify")},
        targets=("pt", "safetensors", "ultralytics"), cli_module="zooport.cli.convert_ultralytics",
        pickle_globals=("ultralytics.",), pickle_strings=("ultralytics.nn",),
        # Ultralytics' own val: conf 0.001, iou 0.7, max_det 300, YOLOv5-style multi-label NMS (objectness 1)
        postprocess="yolov5", eval_defaults=MappingProxyType({"conf": 0.001, "iou": 0.7, "max_det": 300})),
    Family(
        name="yolov5", what="a YOLOv5 checkpoint", convert="zooport convert yolov5 CKPT",
        loader="zooport.converters.yolov5.load:load_yolov5",
        native={"yolov5": ("zooport.model_defs.yolov5.model:YOLOv5Model.from_native", "detect"),
                "yolov5-seg": ("zooport.model_defs.yolov5.tasks:YOLOv5SegModel.from_native", "segment"),
                "yolov5-cls": ("zooport.model_defs.yolov5.tasks:YOLOv5ClsModel.from_native", "classify")},
        targets=("pt", "safetensors", "yolov5", "darknet", "mmdet-mini"), cli_module="zooport.cli.convert_yolov5",
        pickle_globals=("models.yolo", "models.common"), pickle_strings=("models.yolo", "models.common"),
        postprocess="yolov5", eval_defaults=_YOLO_EVAL, onnx_parity=True, zoo=True, assigner="yolov5",
        anchors_writer="zooport.analysis.anchors_io:write_yolov5_yaml"),
    Family(
        name="mmdet", what="an MMDetection checkpoint", convert="zooport convert mmdet CKPT",
        loader="zooport.converters.mmdet.load:load_mmdet",
        native={"mmdet": ("zooport.model_defs.mmdet.build:from_native", "detect")},
        targets=("pt", "safetensors", "darknet"), cli_module="zooport.cli.convert_mmdet",
        sniff_strings=frozenset({"state_dict", "meta"}),
        # None: the model's own test_cfg value
        postprocess="mmdet", eval_defaults=MappingProxyType({"conf": None, "iou": None, "max_det": None}),
        stride_rounding=False, zoo=True, takes_config=True, raw_layout="groups"),
    Family(
        # hhaAndroid/mmdetection-mini's own RR* YOLO checkpoints: read into the darknet / yolov5 families'
        # native models (no native key of its own); its files carry no class names, so nothing sniffs them
        name="mmdet-mini", what="an mmdetection-mini checkpoint", convert="zooport convert mmdet-mini CKPT --config FILE",
        loader="zooport.converters.mini.load:load_mini",
        targets=("pt", "safetensors", "darknet", "yolov5"), cli_module="zooport.cli.convert_mini",
        postprocess="mmdet", eval_defaults=MappingProxyType({"conf": None, "iou": None, "max_det": None}),
        stride_rounding=False, takes_config=True),
)}

# native checkpoint ``family`` key -> its Family
_BY_NATIVE = {key: fam for fam in FAMILIES.values() for key in fam.native}


def get(name: str) -> Family:
    """The record of family ``name`` (:class:`UsageError` naming the known ones otherwise)."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise UsageError(f"unknown model family {name!r}; expected one of {', '.join(FAMILIES)}") from None


def lookup(model) -> Family | None:
    """The :class:`Family` of a model by its native key (``model.family``: ``"yolov5-seg"`` ...), or None for a
    :class:`~zooport.model_defs.base.Detector` of no registered family (a user's own, a test double): tools
    then treat it as a YOLO-style detector (YOLOv5 post-processing, torch backend)."""
    return _BY_NATIVE.get(getattr(model, "family", None))


def task_of(model) -> str:
    """``"detect"``, ``"segment"`` or ``"classify"``: what the model's outputs are (``"detect"`` when the
    family is not registered)."""
    fam = lookup(model)
    return fam.task(model.family) if fam is not None else "detect"


def postprocess_of(model) -> str:
    """The default post-processing flavour of a model (``"darknet"``, ``"mmdet"`` or ``"yolov5"``)."""
    fam = lookup(model)
    return fam.postprocess if fam is not None else "yolov5"


def native_builder(key: str):
    """The ``from_native(arch, meta)`` of a native checkpoint's ``family`` key."""
    fam = _BY_NATIVE.get(key)
    if fam is None:
        raise CheckpointError(f"unknown model family {key!r}; expected one of {sorted(_BY_NATIVE)}")
    return resolve(fam.native[key][0])


def sniff(globals_: set, strings: set) -> str | None:
    """The family whose pickled checkpoint names these globals / holds these short strings, else None."""
    for fam in FAMILIES.values():
        if (fam.pickle_globals and any(g.startswith(fam.pickle_globals) for g in globals_)) or \
                (fam.pickle_strings and any(s.startswith(fam.pickle_strings) for s in strings)):
            return fam.name
    for fam in FAMILIES.values():
        if fam.sniff_strings and fam.sniff_strings <= strings:
            return fam.name
    return None


def zoo_formats() -> tuple:
    """The manifest ``format`` values: families the zoo can download and build."""
    return tuple(name for name, fam in FAMILIES.items() if fam.zoo)


def convert_targets() -> tuple:
    """Every ``zooport convert ... --to`` target, in a stable order."""
    out: list = []
    for fam in FAMILIES.values():
        out += [t for t in fam.targets if t not in out]
    return tuple(out)
