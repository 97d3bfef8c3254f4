"""ONNX export of any :class:`~zooport.model_defs.base.Detector`.

Three output modes (one graph input ``images``: (B, 3, H, W) RGB in [0, 1],
float32, or float16 with ``half=True``):

* default: ``output`` (B, N, 4 + 1 + nc), decoded exactly as ``model(x)``:
  xywh in input pixels, objectness, class probabilities.
* ``raw=True``: the family's raw head tensors (``model.raw(x)``, nested lists
  flattened in order) as ``raw0``, ``raw1``, ...
* ``nms=True``: class-aware NMS in the graph (:mod:`zooport.export.nms_graph`):
  ``num_dets`` (B, 1) int64, ``boxes`` (B, max_det, 4) xyxy, ``scores``
  (B, max_det), ``classes`` (B, max_det) int64.

The model is deep-copied to the CPU (a CUDA model too; the caller's model
is not moved or changed) and Conv+BN-fused first; the trace uses the legacy
TorchScript exporter (``dynamo=False``: fast, and it keeps shape arithmetic
foldable for static exports, which OpenCV's importer needs). The file carries
the model's metadata as ``metadata_props`` (JSON values), passes
``onnx.checker.check_model(full_check=True)`` and is written atomically: on
any failure no file is left at ``path``.
"""
from __future__ import annotations

import copy
import io
import json
import os
import warnings
from pathlib import Path

from .._io import atomic_write, check_output
from ..errors import ExportError, UsageError

MIN_OPSET, MAX_OPSET = 11, 20
INPUT_NAME = "images"
NMS_OUTPUTS = ["num_dets", "boxes", "scores", "classes"]


def _flatten(obj) -> list:
    """Nested lists/tuples of tensors -> flat list, depth-first (MMDetection raw = [group][level])."""
    if isinstance(obj, (list, tuple)):
        out = []
        for o in obj:
            out.extend(_flatten(o))
        return out
    return [obj]


def _export_module(model, mode: str, conf: float, iou: float, max_det: int):
    import torch

    from .nms_graph import NMSWrapper

    if getattr(model, "two_stage", False):  # R-CNN: proposals, RoiAlign and both NMS in the graph
        from .two_stage import TwoStageNMS

        return TwoStageNMS(model)
    if mode == "nms":
        return NMSWrapper(model, conf, iou, max_det)

    class _Raw(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.model = m

        def forward(self, x):
            return tuple(_flatten(self.model.raw(x)))

    class _Decoded(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.model = m

        def forward(self, x):
            return self.model(x)

    return _Raw(model) if mode == "raw" else _Decoded(model)


def _as_list(out) -> list:
    return list(out) if isinstance(out, (list, tuple)) else [out]


def _output_dims(wrapper, x, names: list[str], dynamic: bool, smax: int) -> list[list] | None:
    """Each output's dims: ints where static, names where dynamic (``batch``, ``anchors`` for the
    detections dim of ``output``, ``<raw>_height`` / ``<raw>_width`` for raw feature maps; other names
    would claim equal sizes across outputs). Static: the shapes of a forward at the export size.
    Dynamic: which dims follow H or W is measured by forwards at three small sizes (H and W grown
    apart). None when a probe fails (a layer fixed to one size): the exporter's own names stay."""
    import torch

    with torch.no_grad():
        if not dynamic:
            return [list(t.shape) for t in _as_list(wrapper(x))]
        try:
            base, tall, wide = (_as_list(wrapper(torch.zeros(1, 3, h, w)))
                                for h, w in ((smax, smax), (2 * smax, smax), (smax, 2 * smax)))
            base, tall, wide = [[list(t.shape) for t in o] for o in (base, tall, wide)]
        except Exception:  # noqa: BLE001 - e.g. Darknet [connected]: no dynamic size to describe
            return None
    dims = []
    for n, s0, sh, sw in zip(names, base, tall, wide):
        d: list = ["batch"]  # every output is batch-first
        for i in range(1, len(s0)):
            by_h, by_w = sh[i] != s0[i], sw[i] != s0[i]
            if n == "output" and (by_h or by_w):
                d.append("anchors")
            elif by_h or by_w:
                d.append(f"{n}_height" if not by_w else f"{n}_width" if not by_h else f"{n}_d{i}")
            else:
                d.append(s0[i])
        dims.append(d)
    return dims


def _dynamic_axes(names: list[str], mode: str, dims: list[list] | None, raw_ranks: list[int]) -> dict:
    axes = {INPUT_NAME: {0: "batch", 2: "height", 3: "width"}}
    if dims is not None:
        for n, d in zip(names, dims):
            axes[n] = {i: v for i, v in enumerate(d) if isinstance(v, str)}
    elif mode == "default":
        axes["output"] = {0: "batch", 1: "anchors"}
    elif mode == "nms":
        for n in names:
            axes[n] = {0: "batch"}
    else:  # no probe: every dim after the channels may depend on the input size
        for n, r in zip(names, raw_ranks):
            axes[n] = {0: "batch", **{d: f"{n}_d{d}" for d in range(2, r)}}
    return axes


def _set_output_dims(proto, dims: list[list]) -> None:
    """Write ``dims`` (int or name per axis) into the graph's declared output shapes."""
    for out, d in zip(proto.graph.output, dims):
        shape = out.type.tensor_type.shape
        del shape.dim[:]
        for v in d:
            dim = shape.dim.add()
            if isinstance(v, str):
                dim.dim_param = v
            else:
                dim.dim_value = int(v)


def cpu_copy(model):
    """A deep copy of ``model`` with every tensor on the CPU, made without a second copy on the
    model's own device (a CUDA model is copied tensor by tensor to host memory); ``model`` itself is
    not touched (device, mode, fusion). Raises :class:`ExportError` for tensors without data (meta)."""
    import torch

    memo: dict = {}
    for t in list(model.parameters()) + list(model.buffers()):
        if id(t) in memo:
            continue
        if t.is_meta:
            raise ExportError("the model has tensors on the 'meta' device (no data); load its weights before exporting")
        data = t.detach().to("cpu", copy=True)
        memo[id(t)] = torch.nn.Parameter(data, requires_grad=t.requires_grad) if isinstance(t, torch.nn.Parameter) \
            else data
    m = copy.deepcopy(model, memo)
    for mod in m.modules():  # unregistered tensor attributes (cached grids ...) follow too
        for k, v in list(vars(mod).items()):
            if isinstance(v, torch.Tensor) and v.device.type != "cpu":
                setattr(mod, k, v.to("cpu"))
    return m


def _model_axes(model, names: list[str], mode: str, dims: list[list] | None, raw_ranks: list[int]) -> dict:
    """Dynamic axes; a model that names its own outputs gives their axes (``onnx_dynamic_axes()``)."""
    if mode == "default" and hasattr(model, "onnx_dynamic_axes"):
        return {INPUT_NAME: {0: "batch", 2: "height", 3: "width"}, **model.onnx_dynamic_axes()}
    return _dynamic_axes(names, mode, dims, raw_ranks)


def _check_args(model, imgsz, batch, nms, raw, conf, iou, max_det, opset):
    if nms and raw:
        raise UsageError("export: --nms and --raw are mutually exclusive")
    if nms and getattr(model, "output_names", None):  # YOLOv5 segmentation / classification
        raise UsageError(f"export: --nms is for detectors; a {model.family} model exports its own outputs "
                         f"({', '.join(model.output_names)})")
    if int(batch) < 1:
        raise UsageError(f"export: batch must be >= 1, got {batch}")
    if not MIN_OPSET <= int(opset) <= MAX_OPSET:
        raise UsageError(f"export: opset {opset} not supported; expected {MIN_OPSET}..{MAX_OPSET}")
    if nms:
        if not 0.0 <= conf < 1.0:
            raise UsageError(f"export: conf must be in [0, 1), got {conf}")
        if not 0.0 <= iou <= 1.0:
            raise UsageError(f"export: iou must be in [0, 1], got {iou}")
        if int(max_det) < 1:
            raise UsageError(f"export: max_det must be >= 1, got {max_det}")
    if imgsz is None:
        imgsz = list(getattr(model, "input_size", None) or [640, 640])
    elif isinstance(imgsz, int):
        imgsz = [imgsz, imgsz]
    imgsz = [int(v) for v in imgsz]
    if len(imgsz) == 1:
        imgsz = imgsz * 2
    if len(imgsz) != 2 or min(imgsz) < 1:
        raise UsageError(f"export: imgsz must be H or (H, W) positive, got {imgsz}")
    smax = max(getattr(model, "stride", None) or [1])
    if imgsz[0] % smax or imgsz[1] % smax:
        raise UsageError(f"export: image size {imgsz[0]}x{imgsz[1]} must be a multiple of the model's "
                         f"largest stride {smax}")
    return imgsz


def metadata_props(model, *, mode: str, imgsz, dynamic: bool, half: bool, nms_args: dict | None) -> dict:
    """The ``metadata_props`` written into the file: str -> str (JSON for structured values)."""
    from .. import __version__

    meta = model.meta
    props = {
        "names": json.dumps(meta.get("names")),
        "stride": json.dumps(meta.get("stride")),
        "anchors": json.dumps(meta.get("anchors")),
        "input_size": json.dumps(list(imgsz)),
        "preprocessing": json.dumps(meta.get("preprocess")),
        "source": json.dumps(meta.get("source")),
        "family": str(meta.get("family")),
        "zooport_version": __version__,
        "mode": mode,
        "dynamic": json.dumps(bool(dynamic)),
        "dtype": "float16" if half else "float32",
    }
    if nms_args is not None:
        props["nms"] = json.dumps(nms_args)
    return props


def _to_half(proto):
    """float32 graph -> float16 weights, activations, input and outputs.

    The graph is traced in float32 and converted afterwards (onnxruntime's
    converter), because the legacy tracer cannot export ``torch.arange`` with a
    float16 dtype, which the families' grid code uses. Ops onnxruntime runs in
    float32 only (NonMaxSuppression, TopK, Range, ...) stay float32 behind Casts.
    """
    from onnxruntime.transformers.float16 import convert_float_to_float16

    proto = convert_float_to_float16(proto, keep_io_types=False)
    _toposort(proto.graph)  # the converter appends some Casts (e.g. Resize scales) after their consumers
    return proto


def _toposort(graph) -> None:
    """Reorder ``graph.node`` so every node comes after the producers of its inputs (Kahn, stable)."""
    ready = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending = list(graph.node)
    order = []
    while pending:
        rest = []
        for n in pending:
            if all(i in ready for i in n.input):
                order.append(n)
                ready.update(n.output)
            else:
                rest.append(n)
        if len(rest) == len(pending):
            raise ExportError(f"float16 conversion left a cycle or a dangling input at node {rest[0].name!r}")
        pending = rest
    nodes = [type(n)() for n in order]
    for dst, src in zip(nodes, order):
        dst.CopyFrom(src)
    del graph.node[:]
    graph.node.extend(nodes)


def build_onnx(model, *, imgsz=None, batch: int = 1, dynamic: bool = False, nms: bool = False,
               conf: float = 0.25, iou: float = 0.45, max_det: int = 300, opset: int = 17,
               half: bool = False, raw: bool = False):
    """Trace ``model`` and return the checked ``onnx.ModelProto`` (nothing written)."""
    import onnx
    import torch

    imgsz = _check_args(model, imgsz, batch, nms, raw, conf, iou, max_det, opset)
    mode = "nms" if nms else "raw" if raw else "default"
    nms_args = {"conf": conf, "iou": iou, "max_det": max_det, "class_aware": True} if nms else None
    if getattr(model, "two_stage", False):  # always the test_cfg post-processing (the only exact output)
        if opset < 16:
            raise UsageError(f"two-stage models need opset >= 16 (RoiAlign half_pixel), got {opset}")
        if dynamic or raw:
            raise UsageError("two-stage models export with static shapes and their NMS outputs only "
                             "(no --dynamic, no --raw)")
        mode, nms_args = "nms", {"test_cfg": model.test_cfg}
    try:
        m = cpu_copy(model).eval()  # traced on the CPU whatever the model's device; the user's model stays as is
        m.fuse()
        x = torch.rand(int(batch), 3, imgsz[0], imgsz[1], generator=torch.Generator().manual_seed(0))
        wrapper = _export_module(m, mode, conf, iou, max_det).eval()
        names, ranks = (["output"] if mode == "default" else list(NMS_OUTPUTS)), []
        smax = max(getattr(model, "stride", None) or [32])
        if mode == "default" and getattr(model, "output_names", None):  # e.g. YOLOv5 seg: output0, output1
            names = list(model.output_names)
        if mode == "raw":  # count the heads on the smallest valid input (a full-size forward is costly)
            with torch.no_grad():
                try:
                    probe = wrapper(torch.zeros(1, 3, smax, smax))
                except Exception:  # a layer fixed to the cfg's size (e.g. Darknet [connected])
                    probe = wrapper(x)
            names, ranks = [f"raw{i}" for i in range(len(probe))], [t.dim() for t in probe]
        dims = _output_dims(wrapper, x, names, dynamic, smax)
        buf = io.BytesIO()
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer/deprecation chatter, not actionable for users
            torch.onnx.export(
                wrapper, (x,), buf, dynamo=False, opset_version=int(opset),
                input_names=[INPUT_NAME], output_names=names,
                dynamic_axes=_model_axes(model, names, mode, dims, ranks) if dynamic else None,
                do_constant_folding=True,
            )
        proto = onnx.load_from_string(buf.getvalue())
        if dims is not None:  # concrete where static, meaningful names where dynamic
            _set_output_dims(proto, dims)
        if half:
            proto = _to_half(proto)
    except (UsageError, ExportError):
        raise
    except Exception as e:  # tracing/exporter failures come in many types
        raise ExportError(f"export of {getattr(model, 'family', '?')} model failed while tracing "
                          f"({mode} mode, {imgsz[0]}x{imgsz[1]}, opset {opset}): {type(e).__name__}: {e}") from e
    props = metadata_props(model, mode=mode, imgsz=imgsz, dynamic=dynamic, half=half, nms_args=nms_args)
    del proto.metadata_props[:]
    for k, v in props.items():
        p = proto.metadata_props.add()
        p.key, p.value = k, v
    proto.producer_name = "zooport"
    proto.doc_string = f"zooport export of a {props['family']} detector ({mode} outputs)"
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as e:
        raise ExportError(f"exported {mode}-mode graph fails onnx.checker (full_check): {e}") from e
    return proto


def export_onnx(model, path: str | os.PathLike, *, imgsz=None, batch: int = 1, dynamic: bool = False,
                nms: bool = False, conf: float = 0.25, iou: float = 0.45, max_det: int = 300,
                opset: int = 17, half: bool = False, raw: bool = False) -> Path:
    """Export ``model`` (a Detector) to ONNX at ``path``; returns the path.

    ``imgsz``: H or (H, W), default ``model.input_size``; ``batch``: traced
    batch size; ``dynamic``: batch, height and width (and N) dynamic;
    ``nms``/``raw``: output mode (module doc); ``conf``/``iou``/``max_det``:
    NMS settings; ``half``: float16 weights, input and outputs.
    Raises :class:`UsageError` for bad arguments, :class:`ExportError` when
    tracing or checking fails, :class:`~zooport.errors.WriteError` when the file
    cannot be written; no file is left at ``path`` in any case.
    """
    path = Path(path)
    check_output(path)  # a directory, socket, missing folder ... fails before the (slow) trace
    proto = build_onnx(model, imgsz=imgsz, batch=batch, dynamic=dynamic, nms=nms, conf=conf, iou=iou,
                       max_det=max_det, opset=opset, half=half, raw=raw)
    with atomic_write(path, "wb") as f:  # OSError -> WriteError naming path, nothing left behind
        f.write(proto.SerializeToString())
    return path
