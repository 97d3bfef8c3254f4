"""The allowlist unpickler for PyTorch checkpoints that pickle whole modules (YOLOv5, Ultralytics).

YOLOv5 ``.pt`` files are ``torch.save`` zip archives (``<root>/data.pkl`` plus
one raw little-endian storage per ``<root>/data/<key>`` entry) whose pickle
names classes such as ``models.yolo.DetectionModel`` or
``models.common.C3``. Importing those modules would run YOLOv5's code (and
whatever a hostile file names), so this reader never imports anything the
file names:

* every global is looked up in the explicit allowlist of :func:`resolve_global`; a
  foreign class becomes an inert :class:`StandIn` subclass that only records
  the arguments and the pickled ``__dict__`` it is given; a name outside the
  allowlist raises :class:`UnsafeCheckpointError` before anything runs;
* tensors are rebuilt by our own functions from validated storages (bounds
  checked against the storage size; sparse and quantized layouts rejected);
* the archive is checked first: no TorchScript (``code/``, ``constants.pkl``),
  no ``..`` or absolute member names; members must be stored uncompressed as
  ``torch.save`` writes them (no zip bomb), and each storage member must hold
  exactly ``numel * itemsize`` bytes, which is all that is read of it
  (:func:`zooport.parsers.torch_zip.read_member`).

Output: plain Python containers, :class:`StandIn` records and
``torch.Tensor`` objects in the file's own dtypes.
"""
from __future__ import annotations

import collections
import io
import pickle

import numpy as np
import torch

from ...errors import CheckpointError, UnsafeCheckpointError

# --------------------------------------------------------------------------------------------
# Stand-ins


class StandIn:
    """Inert record of a pickled object of a foreign class (never executes anything).

    ``foreign`` (class attribute of each generated subclass) is the pickled
    qualified name, e.g. ``"models.common.Conv"``; ``args`` the constructor
    arguments given by REDUCE/NEWOBJ; ``state`` the BUILD state (for
    ``nn.Module`` pickles: the module's ``__dict__`` with ``_modules``,
    ``_parameters``, ``_buffers`` and plain attributes).
    """

    foreign = ""
    __slots__ = ("args", "state")

    def __new__(cls, *args, **kwargs):
        # NEWOBJ calls __new__ only, REDUCE calls the class: both end here and store, nothing else.
        obj = object.__new__(cls)
        obj.args = args
        obj.state = {}
        return obj

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        # BUILD: a dict (``__dict__``), or (dict, slot dict) for classes with __slots__.
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], (dict, type(None))):
            merged = dict(state[0] or {})
            merged.update(state[1] or {})
            state = merged
        self.state = state if isinstance(state, dict) else {"__state__": state}

    def __repr__(self) -> str:
        return f"<StandIn {self.foreign}>"

    # Module helpers (pure reads of the recorded state)
    def get(self, key, default=None):
        return self.state.get(key, default) if isinstance(self.state, dict) else default

    @property
    def children(self) -> dict:
        mods = self.get("_modules")
        return dict(mods) if isinstance(mods, dict) else {}


_STANDIN_CACHE: dict[str, type] = {}


def standin_class(qualname: str) -> type:
    """The (memoised) inert class that stands for the foreign class ``qualname``."""
    cls = _STANDIN_CACHE.get(qualname)
    if cls is None:
        short = qualname.rsplit(".", 1)[-1]
        cls = type(f"StandIn_{short}", (StandIn,), {"__slots__": (), "foreign": qualname})
        _STANDIN_CACHE[qualname] = cls
    return cls


# --------------------------------------------------------------------------------------------
# The allowlist: pickled (module, name) -> how to resolve it. Nothing here is imported from the file.

_YOLO_COMMON = (
    "Conv DWConv DWConvTranspose2d Focus Bottleneck BottleneckCSP C3 C3x C3TR C3SPP C3Ghost GhostConv "
    "GhostBottleneck SPP SPPF Concat Contract Expand TransformerLayer TransformerBlock CrossConv Sum "
    "MixConv2d Classify Proto Flatten AutoShape NMS"
).split()
_YOLO_MODELS = "Model DetectionModel Detect BaseModel SegmentationModel Segment ClassificationModel".split()
_TORCH_NN = {
    "torch.nn.modules.conv": ["Conv2d", "ConvTranspose2d"],
    "torch.nn.modules.batchnorm": ["BatchNorm2d"],
    "torch.nn.modules.activation": ["SiLU", "LeakyReLU", "Hardswish", "ReLU", "Sigmoid", "Mish", "Tanh",
                                    "MultiheadAttention", "GELU"],
    "torch.nn.modules.linear": ["Linear", "Identity", "NonDynamicallyQuantizableLinear"],
    "torch.nn.modules.container": ["Sequential", "ModuleList"],
    "torch.nn.modules.upsampling": ["Upsample"],
    "torch.nn.modules.pooling": ["MaxPool2d", "AdaptiveAvgPool2d"],
    "torch.nn.modules.padding": ["ZeroPad2d"],
    "torch.nn.modules.dropout": ["Dropout"],
    "torch.nn.modules.flatten": ["Flatten"],
}
# Ultralytics (YOLOv8 / YOLO11 / YOLO26 / YOLOv10, package ``ultralytics`` 8.0-8.4): module path -> class names
# recorded as stand-ins.
# Task heads other than Detect are allowed so the reader can name them in an UnsupportedError.
_ULTRALYTICS = {
    "ultralytics.nn.tasks": "BaseModel DetectionModel SegmentationModel PoseModel OBBModel ClassificationModel "
                            "WorldModel RTDETRDetectionModel".split(),
    "ultralytics.nn.modules.conv": "Conv Conv2 DWConv LightConv GhostConv RepConv Concat Focus ConvTranspose "
                                   "DWConvTranspose2d ChannelAttention SpatialAttention CBAM Index".split(),
    "ultralytics.nn.modules.block": "DFL Proto Bottleneck C1 C2 C2f C3 C3x C3k C3k2 C2PSA C2fPSA PSABlock "
                                    "Attention SPP SPPF SPPELAN ELAN1 RepNCSPELAN4 RepNCSP RepBottleneck ADown "
                                    "AConv CBLinear CBFuse SCDown PSA C2fCIB CIB RepVGGDW GhostBottleneck C3Ghost "
                                    "C3TR BottleneckCSP A2C2f ABlock AAttn HGStem HGBlock Proto26 RealNVP".split(),
    "ultralytics.nn.modules.head": "Detect Segment Pose OBB Classify v10Detect WorldDetect RTDETRDecoder "
                                   "YOLOEDetect YOLOESegment Segment26 Pose26 OBB26 YOLOESegment26 Depth "
                                   "SemanticSegment".split(),  # the last line: 8.4's
    "ultralytics.nn.modules.transformer": "TransformerLayer TransformerBlock MLP MLPBlock LayerNorm2d "
                                          "AIFI".split(),
    "ultralytics.utils": ["IterableSimpleNamespace"],
    "ultralytics.yolo.utils": ["IterableSimpleNamespace"],  # 8.0.x trainers' ``args``
}
# 8.0.x pickles some classes under the flat package path ``ultralytics.nn.modules``
_ULTRALYTICS["ultralytics.nn.modules"] = [n for k in ("conv", "block", "head", "transformer")
                                          for n in _ULTRALYTICS[f"ultralytics.nn.modules.{k}"]]
# YOLOv5's export-friendly activations (utils.activations) are recorded by name only.
_YOLO_ACTS = "SiLU Hardswish Mish MemoryEfficientSwish MemoryEfficientMish FReLU".split()
# Non-module objects classification checkpoints pickle (the model's ``transforms``, ``opt`` paths):
# recorded as inert stand-ins by name, never imported (no torchvision, no YOLOv5).
_INERT_RECORDS = {
    "utils.augmentations": ["CenterCrop", "ToTensor", "LetterBox"],
    "torchvision.transforms.transforms": ["Compose", "Normalize", "ToTensor", "Resize", "CenterCrop"],
    "pathlib": ["PosixPath", "WindowsPath", "PurePosixPath", "PureWindowsPath", "Path"],
}

_FLOAT_STORAGES = {
    "HalfStorage": torch.float16, "FloatStorage": torch.float32, "DoubleStorage": torch.float64,
    "BFloat16Storage": torch.bfloat16,
}
_OTHER_STORAGES = {
    "LongStorage": torch.int64, "IntStorage": torch.int32, "ShortStorage": torch.int16,
    "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
}

_REJECTED_REBUILDS = {
    "_rebuild_sparse_tensor": "sparse tensors are not supported",
    "_rebuild_sparse_csr_tensor": "sparse tensors are not supported",
    "_rebuild_qtensor": "quantized tensors are not supported",
    "_rebuild_meta_tensor_no_storage": "meta tensors carry no data",
    "_rebuild_wrapper_subclass": "tensor subclasses are not supported",
    "_rebuild_device_tensor_from_numpy": "numpy-backed tensors are not supported",
    "_rebuild_xla_tensor": "XLA tensors are not supported",
    "_rebuild_mkldnn_tensor": "mkldnn tensors are not supported",
    "_rebuild_nested_tensor": "nested tensors are not supported",
}


_NUMPY_FLOATS = {torch.float16: np.dtype("<f2"), torch.float32: np.dtype("<f4"), torch.float64: np.dtype("<f8")}


class _StorageType:
    """Marker for ``torch.XxxStorage`` globals: only its dtype is used."""

    __slots__ = ("dtype", "name")

    def __init__(self, name: str, dtype: torch.dtype):
        self.name = name
        self.dtype = dtype


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    """Validated replacement of ``torch._utils._rebuild_tensor_v2`` (a strided view of a storage)."""
    if not isinstance(storage, torch.Tensor) or storage.dim() != 1 or storage.storage_offset() != 0 \
            or storage.untyped_storage().nbytes() != storage.numel() * storage.element_size():
        # only the flat, whole-storage tensors made by the storage loaders qualify, so the bounds
        # check below is against the real allocation
        raise CheckpointError("tensor record does not reference a storage")
    if not (isinstance(storage_offset, int) and isinstance(size, tuple) and isinstance(stride, tuple)):
        raise CheckpointError("tensor record has a malformed offset/size/stride")
    if len(size) != len(stride) or not all(isinstance(v, int) and v >= 0 for v in size + stride) \
            or storage_offset < 0:
        raise CheckpointError(f"tensor record has invalid size {size} / stride {stride} / offset {storage_offset}")
    numel = storage.numel()
    if all(s > 0 for s in size):
        extent = storage_offset + 1 + sum((s - 1) * st for s, st in zip(size, stride))
        if extent > numel:
            raise CheckpointError(f"tensor of shape {list(size)} (offset {storage_offset}, stride {list(stride)}) "
                                  f"needs {extent} elements but its storage holds {numel}")
    return storage.as_strided(size, stride, storage_offset)


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _rebuild_tensor_v2(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *state):
    if not isinstance(data, torch.Tensor):
        raise CheckpointError("parameter record does not hold a tensor")
    return data


def _make_size(dims=()):
    """``torch.Size`` records (Ultralytics' cached ``Detect.shape``) become plain int tuples."""
    dims = tuple(dims) if isinstance(dims, (tuple, list)) else None
    if dims is None or not all(isinstance(d, int) and not isinstance(d, bool) for d in dims):
        raise CheckpointError("torch.Size record holds something other than integers")
    return dims


def _make_set(items=()):
    return set(items)


def _getattr_record(obj, name):
    """``builtins.getattr`` restricted to (stand-in class, attribute name) -> an inert record.

    YOLOv5 v7.0's ``Segment`` stores ``self.detect = Detect.forward``, which pickles as
    ``getattr(models.yolo.Detect, 'forward')``; anything else is refused.
    """
    if isinstance(obj, type) and issubclass(obj, StandIn) and isinstance(name, str) and name.isidentifier() \
            and not name.startswith("_"):
        return standin_class(f"{obj.foreign}.{name}")
    raise UnsafeCheckpointError(f"the pickle calls builtins.getattr on {type(obj).__name__}; only attributes "
                                f"of allowlisted YOLOv5 classes are read (as inert records)")


def _reject(reason: str):
    def f(*args, **kwargs):
        raise CheckpointError(reason)
    return f


def resolve_global(module: str, name: str):
    """Map a pickled global to a safe object, or raise :class:`UnsafeCheckpointError`."""
    full = f"{module}.{name}"
    if module in ("models.common", "models.experimental") and name in _YOLO_COMMON:
        return standin_class(full)
    if module == "models.yolo" and (name in _YOLO_MODELS or name in _YOLO_COMMON):
        return standin_class(full)
    if module == "utils.activations" and name in _YOLO_ACTS:
        return standin_class(full)
    if any(name in table.get(module, ()) for table in (_TORCH_NN, _ULTRALYTICS, _INERT_RECORDS)):
        return standin_class(full)
    if module == "collections" and name == "OrderedDict":
        return collections.OrderedDict
    if module in ("__builtin__", "builtins") and name in ("set", "frozenset"):
        return _make_set if name == "set" else frozenset
    if module in ("__builtin__", "builtins") and name == "getattr":
        return _getattr_record
    if module == "torch._utils":
        if name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if name == "_rebuild_tensor":
            return _rebuild_tensor
        if name in ("_rebuild_parameter", "_rebuild_parameter_with_state"):
            return _rebuild_parameter
        if name in _REJECTED_REBUILDS:
            return _reject(f"{_REJECTED_REBUILDS[name]} (global {full})")
    if module == "torch":
        if name in _FLOAT_STORAGES:
            return _StorageType(name, _FLOAT_STORAGES[name])
        if name in _OTHER_STORAGES:
            return _StorageType(name, _OTHER_STORAGES[name])
        if name == "Size":
            return _make_size
        if name in ("float16", "float32", "float64", "bfloat16", "int64", "int32", "uint8", "bool"):
            return getattr(torch, name)
        if name in ("QInt8Storage", "QUInt8Storage", "QInt32Storage"):
            return _reject(f"quantized tensors are not supported (global {full})")
    if module == "torch._tensor" and name == "_rebuild_from_type_v2":
        return _reject(f"tensor subclasses are not supported (global {full})")
    raise UnsafeCheckpointError(f"the pickle references global {full!r}, which is outside zooport's allowlist "
                                f"of YOLOv5 / Ultralytics module classes and tensor helpers; nothing was executed")


class _RestrictedUnpickler(pickle.Unpickler):
    """``find_class`` consults only :func:`resolve_global`; storages come from ``load_storage``."""

    def __init__(self, data, load_storage):
        super().__init__(io.BytesIO(data) if isinstance(data, bytes) else data, encoding="utf-8")
        self._load_storage = load_storage

    def find_class(self, module, name):  # noqa: D401 - pickle hook
        return resolve_global(module, name)

    def persistent_load(self, pid):
        if isinstance(pid, tuple) and len(pid) == 4 and pid[0] == "module":
            # legacy format: an nn.Module class with its source text. The class was already
            # resolved through find_class (a stand-in); the source is data and is ignored.
            if not (isinstance(pid[1], type) and issubclass(pid[1], StandIn)):
                raise CheckpointError(f"legacy module record names {pid[1]!r}, not an allowlisted class")
            return pid[1]
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise CheckpointError(f"unsupported persistent record {str(pid)[:80]!r} (expected a storage)")
        _, stype, key, _location, numel = pid[:5]
        if len(pid) > 5 and pid[5] is not None:
            raise CheckpointError(f"storage {key!r} is a view of another storage (legacy format); not supported")
        if isinstance(stype, torch.dtype):
            dtype = stype
        elif isinstance(stype, _StorageType):
            dtype = stype.dtype
        else:
            raise CheckpointError(f"storage {key!r} has an unknown storage type")
        if not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
            raise CheckpointError(f"storage record {str(pid)[:80]!r} is malformed")
        return self._load_storage(key, dtype, numel)


# --------------------------------------------------------------------------------------------
# Archive
