"""The classes YOLOv5 v7.0 seg / cls / rarely-used-module checkpoints pickle are on the allowlist only as
inert records; ``builtins.getattr`` is read only as (allowlisted class, attribute name) -> record."""
from __future__ import annotations

import pickle

import pytest
import torch

from zooport.errors import UnsafeCheckpointError

NEW = [("models.yolo", "SegmentationModel"), ("models.yolo", "Segment"), ("models.yolo", "ClassificationModel"),
       ("models.common", "Proto"), ("models.common", "Classify"), ("models.common", "DWConvTranspose2d"),
       ("models.experimental", "MixConv2d"), ("models.experimental", "Sum"),
       ("utils.augmentations", "CenterCrop"), ("utils.augmentations", "ToTensor"),
       ("torchvision.transforms.transforms", "Compose"), ("torchvision.transforms.transforms", "Normalize"),
       ("pathlib", "PosixPath"), ("torch.nn.modules.conv", "ConvTranspose2d")]


@pytest.mark.parametrize("module,name", NEW)
def test_new_classes_are_inert_records(module, name):
    from zooport.parsers.pickled.allowlist import StandIn, resolve_global

    cls = resolve_global(module, name)
    assert isinstance(cls, type) and issubclass(cls, StandIn) and not issubclass(cls, torch.nn.Module)
    assert cls.foreign == f"{module}.{name}"
    obj = cls("runs", "train-cls")
    obj.__setstate__({"transforms": [1, 2], "__call__": print})
    assert obj.args == ("runs", "train-cls") and not callable(obj)


@pytest.mark.parametrize("module,name", [("torchvision.transforms.transforms", "Lambda"), ("pathlib", "Path.open"),
                                         ("utils.augmentations", "Albumentations"), ("torchvision.io", "read_file"),
                                         ("pathlib", "os")])
def test_neighbours_of_new_classes_still_refused(module, name):
    from zooport.parsers.pickled.allowlist import resolve_global

    with pytest.raises(UnsafeCheckpointError, match="allowlist"):
        resolve_global(module, name)


def test_getattr_only_on_allowlisted_classes():
    import collections

    from zooport.parsers.pickled.allowlist import StandIn, resolve_global, standin_class

    ga = resolve_global("builtins", "getattr")
    rec = ga(standin_class("models.yolo.Detect"), "forward")
    assert issubclass(rec, StandIn) and rec.foreign == "models.yolo.Detect.forward"
    for obj, attr in ((collections.OrderedDict, "fromkeys"), (torch, "load"), (standin_class("models.yolo.Detect")(),
                                                                                "forward"),
                      (standin_class("models.yolo.Detect"), "__init__; x"), (pickle, "loads"),
                      (standin_class("models.yolo.Detect"), "__class__")):
        with pytest.raises(UnsafeCheckpointError):
            ga(obj, attr)


def test_getattr_gadget_in_a_file_is_refused(tmp_path):
    """getattr(OrderedDict, 'fromkeys') reduced in a checkpoint: refused before anything runs."""
    import collections

    from zooport.converters.yolov5.load import load_yolov5

    class G:
        def __reduce__(self):
            return (getattr, (collections.OrderedDict, "fromkeys"))

    p = tmp_path / "g.pt"
    torch.save({"model": G()}, p)
    with pytest.raises(UnsafeCheckpointError):
        load_yolov5(p)
