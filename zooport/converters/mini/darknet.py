"""mmdetection-mini's Darknet-derived models <-> native DarknetModel, and Darknet ``.weights`` <-> mini ``.pth``.

mini's RRDarknet53 / RRCSPDarknet53 / RRTinyYolov3Backbone / RRTinyYolov4Backbone detectors are Darknet's
yolov3 / yolov4 / yolov3-tiny / yolov4-tiny, layer for layer (mini built them so that its converters can
read a ``.weights`` file by walking the modules in order). Each maps onto a native
:class:`~zooport.model_defs.darknet.model.DarknetModel` built from the bundled cfg
(``zooport/cfgs/darknet``), rewritten from the mini config (:func:`cfg_text`): ``classes`` and the
head convs' ``filters``; the anchors, one mask per head and ``scale_x_y`` from the config's
anchor generator and coder; for yolov3 every other ``filters`` scaled by ``input_channels / 32``;
``width``/``height`` from the test ``img_scale``.

The tensors are the same, only named differently: the k-th conv of :func:`~.keys.conv_prefixes` is the
k-th convolutional layer of the cfg (same OIHW weight, same BN vectors). Values are copied, never
recomputed, so ``.weights`` -> mini ``.pth`` -> ``.weights`` is byte-identical (the Darknet header rides
along in the ``.pth``'s ``meta["darknet_header"]``, which mini's ``load_checkpoint`` ignores).
"""
from __future__ import annotations

import os
import re
from collections import OrderedDict
from pathlib import Path

from ...errors import CheckpointError, ConfigError, UnsupportedError
from .keys import BN_SUFFIXES, CONV_SUFFIXES, HEAD_ORDER, TO_DARKNET, conv_prefixes

CFG_DIR = Path(__file__).resolve().parents[2] / "cfgs" / "darknet"
BASE_CFG = {"yolov3": "yolov3.cfg", "yolov4": "yolov4.cfg", "tiny_yolov3": "yolov3-tiny.cfg",
            "tiny_yolov4": "yolov4-tiny.cfg"}
_KEY = re.compile(r"^\s*([A-Za-z_0-9]+)\s*=")


def _sections(text: str) -> list[list[str]]:
    """The cfg's lines grouped by section (the first group: lines before any header)."""
    groups: list[list[str]] = [[]]
    for line in text.split("\n"):
        if line.strip().startswith("["):
            groups.append([])
        groups[-1].append(line)
    return groups


def _set(sec: list[str], key: str, value) -> None:
    for i, line in enumerate(sec):
        m = _KEY.match(line)
        if m and m.group(1) == key:
            sec[i] = f"{key}={value}"
            return
    sec.insert(1, f"{key}={value}")


def _get(sec: list[str], key: str):
    for line in sec:
        m = _KEY.match(line)
        if m and m.group(1) == key:
            return line.split("=", 1)[1].strip()
    return None


def cfg_text(arch) -> str:
    """The Darknet cfg of a :class:`~zooport.parsers.mini.config.MiniArch` (see module docstring)."""
    groups = _sections((CFG_DIR / BASE_CFG[arch.kind]).read_text(encoding="utf-8"))
    names = [g[0].strip() if g else "" for g in groups]
    heads = [i for i, n in enumerate(names) if n == "[yolo]"]
    order = HEAD_ORDER[arch.kind]
    if len(heads) != len(order):
        raise AssertionError(f"bundled {BASE_CFG[arch.kind]} has {len(heads)} heads")
    na, nc = arch.num_anchors, arch.num_classes
    per_head = [None] * len(heads)
    for level, j in enumerate(order):
        per_head[j] = arch.anchors[level]
    flat = ",  ".join(f"{w:g},{h:g}" for lvl in per_head for w, h in lvl)
    head_convs = set()
    for j, si in enumerate(heads):
        sec = groups[si]
        _set(sec, "mask", ",".join(str(j * na + a) for a in range(na)))
        _set(sec, "anchors", flat)
        _set(sec, "classes", nc)
        _set(sec, "num", na * len(heads))
        _set(sec, "scale_x_y", f"{arch.scale_x_y:g}")
        conv = max(i for i in range(si) if names[i] == "[convolutional]")
        head_convs.add(conv)
        _set(groups[conv], "filters", na * (5 + nc))
    ic = int(arch.input_channels)
    for i, n in enumerate(names):
        if n == "[convolutional]" and i not in head_convs and ic != 32:
            f = int(_get(groups[i], "filters"))
            if (f * ic) % 32:
                raise UnsupportedError(f"{arch.where}: input_channels={ic} gives {f}*{ic}/32 channels, not an integer")
            _set(groups[i], "filters", f * ic // 32)
        if n in ("[net]", "[network]") and arch.test_scale:
            _set(groups[i], "width", int(arch.test_scale[0]))
            _set(groups[i], "height", int(arch.test_scale[1]))
    return "\n".join(line for g in groups for line in g)


def native_cfg(arch):
    """(DarknetCfg, plan) of :func:`cfg_text`."""
    from ...parsers.darknet.cfg import parse_cfg
    from ...parsers.darknet.plan import build_plan

    cfg = parse_cfg(f"mini-{arch.kind}.cfg", text=cfg_text(arch))
    return cfg, build_plan(cfg)


def _conv_layers(plan):
    return [lp for lp in plan if lp.type == "convolutional"]


def _pairs(plan, kind: str, where: str):
    convs, prefixes = _conv_layers(plan), conv_prefixes(kind)
    if len(convs) != len(prefixes):
        raise CheckpointError(f"{where}: mini's {kind} has {len(prefixes)} convolutions, the Darknet cfg "
                              f"{len(convs)}")
    for lp, (prefix, bn) in zip(convs, prefixes):
        has_bn = any(n.startswith("bn.") for n, _ in lp.params)
        if has_bn != bn:
            raise CheckpointError(f"{where}: layer {lp.index} {'has' if has_bn else 'lacks'} batch_normalize, "
                                  f"mini's {prefix} {'has' if bn else 'has no'} BN")
        yield lp, prefix, bn


def mini_to_darknet_state_dict(mini_sd: dict, plan, kind: str, where: str = "mini state dict") -> dict:
    """Darknet state dict (``layers.{i}.{name}``) of a mini state dict; every mini key must be used
    and every tensor must have the plan's shape (CheckpointError naming the key otherwise)."""
    from ..strict import check_state_dict

    expected, spec = {}, []
    for lp, prefix, bn in _pairs(plan, kind, where):
        shapes = dict(lp.params)
        for suffix in (BN_SUFFIXES if bn else CONV_SUFFIXES):
            counter = suffix.endswith("num_batches_tracked")
            expected[f"{prefix}.{suffix}"] = None if counter else shapes[TO_DARKNET[suffix]]
            if not counter:
                spec.append((f"{prefix}.{suffix}", f"layers.{lp.index}.{TO_DARKNET[suffix]}"))
    check_state_dict(expected, mini_sd, where, subject=f"mini's {kind}")
    out = {dk: mini_sd[k] for k, dk in spec}
    return out


def darknet_to_mini_state_dict(darknet_sd: dict, plan, kind: str) -> "OrderedDict":
    """mini's state dict, in the order and with the tensors its converter writes: float32 copies of the
    Darknet tensors and an int64 ``num_batches_tracked`` of 0 per BN."""
    import torch

    out = OrderedDict()
    for lp, prefix, bn in _pairs(plan, kind, "Darknet state dict"):
        for suffix in (BN_SUFFIXES if bn else CONV_SUFFIXES):
            if suffix.endswith("num_batches_tracked"):
                out[f"{prefix}.{suffix}"] = torch.tensor(0, dtype=torch.int64)
                continue
            t = darknet_sd[f"layers.{lp.index}.{TO_DARKNET[suffix]}"]
            out[f"{prefix}.{suffix}"] = t.detach().to(torch.float32).contiguous().clone()
    return out


def _signature(plan):
    return [(lp.type, lp.section.get_int("size", 0) if lp.type in ("convolutional", "maxpool") else 0,
             lp.section.get_int("stride", 1) if lp.type in ("convolutional", "maxpool") else 0,
             len(lp.inputs)) for lp in plan]


def kind_of_plan(plan, where: str = "cfg") -> str:
    """Which of mini's four Darknet-derived models a Darknet plan is (layer types, kernel sizes, strides
    and routes compared with the bundled cfgs; widths and classes may differ)."""
    from ...parsers.darknet.cfg import parse_cfg
    from ...parsers.darknet.plan import build_plan

    sig = _signature(plan)
    for kind, name in BASE_CFG.items():
        if _signature(build_plan(parse_cfg(CFG_DIR / name))) == sig:
            return kind
    raise UnsupportedError(f"{where}: not the topology of any mmdetection-mini Darknet model "
                           f"(yolov3, yolov4, yolov3-tiny, yolov4-tiny)")


def check_widths(plan, kind: str, where: str) -> int:
    """The ``input_channels`` of a plan of ``kind``: every non-head conv's filters must be the bundled
    cfg's (yolov3: all scaled by one input_channels / 32), as mini's modules hard-code them."""
    from ...parsers.darknet.cfg import parse_cfg
    from ...parsers.darknet.plan import build_plan

    base = build_plan(parse_cfg(CFG_DIR / BASE_CFG[kind]))
    heads = {lp.inputs[0] for lp in plan if lp.is_head}
    convs = [(a, b) for a, b in zip(_conv_layers(plan), _conv_layers(base)) if a.index not in heads]
    first = convs[0][0].out_shape[0]
    ic = first if kind == "yolov3" else 32
    for a, b in convs:
        if a.out_shape[0] * 32 != b.out_shape[0] * ic:
            raise UnsupportedError(f"{where}: layer {a.index} has {a.out_shape[0]} filters; mini's {kind} hard-codes "
                                   f"{b.out_shape[0] * ic // 32}" + (f" (input_channels={ic})" if kind == "yolov3" else ""))
    return ic


def build_model(arch, mini_sd: dict, where: str, names=None):
    """The native DarknetModel of ``arch`` holding ``mini_sd``'s tensors (strict)."""
    from ...model_defs.darknet.model import DarknetModel
    from ..darknet.meta import model_metadata, cfg_names
    from ..native import load_state_dict_strict

    cfg, plan = native_cfg(arch)
    sd = mini_to_darknet_state_dict(mini_sd, plan, arch.kind, where)
    names_list = cfg_names(names, plan)
    model = DarknetModel(cfg, plan, names=names_list,
                         source={"format": "mmdet-mini", "file": os.path.basename(where), "kind": arch.kind})
    for key, value in model_metadata(cfg, plan).items():
        if not getattr(model, key, None):
            setattr(model, key, value)
    load_state_dict_strict(model, sd, where, assign=True)
    from ...model_defs.mini.layers import apply_mini_arithmetic

    # mini's own Mish formula, and tiny-yolov3's zero-padded stride-1 maxpool (zooport.model_defs.mini.layers)
    pad = [lp.index for lp in plan if lp.type == "maxpool" and lp.section.get_int("stride", 2) == 1] \
        if arch.kind == "tiny_yolov3" else []
    apply_mini_arithmetic(model, {"mish": True, "zero_pad_maxpool": pad})
    return model.eval()


def darknet_to_mini_checkpoint(cfg, weights) -> tuple[dict, str]:
    """(``{"state_dict": ..., "meta": {"darknet_header": ...}}``, kind) of a Darknet cfg + ``.weights``."""
    from ...parsers.darknet.cfg import parse_cfg
    from ...parsers.darknet.plan import build_plan
    from ..darknet.weights import buffer_to_state_dict, is_transposed, read_weights_buffer

    dcfg = parse_cfg(cfg)
    plan = build_plan(dcfg)
    kind = kind_of_plan(plan, os.fspath(cfg))
    check_widths(plan, kind, os.fspath(cfg))
    header, buf = read_weights_buffer(weights, plan)
    sd = buffer_to_state_dict(plan, buf, transposed=is_transposed(header))
    return {"state_dict": darknet_to_mini_state_dict(sd, plan, kind), "meta": {"darknet_header": dict(header)}}, kind


def save_mini_from_darknet(cfg, weights, out) -> int:
    """``zooport convert darknet CFG WEIGHTS --to mmdet-mini -o OUT.pth``; returns the number of keys."""
    from ..._io import save_torch

    ckpt, _ = darknet_to_mini_checkpoint(cfg, weights)
    save_torch(ckpt, out)
    return len(ckpt["state_dict"])


def write_darknet_from_mini(mini_sd: dict, meta: dict, arch, out_weights, where: str, out_cfg=None) -> None:
    """Darknet ``.weights`` (and optionally its cfg) of a mini checkpoint; the header is the one kept
    in ``meta["darknet_header"]``, else Darknet's default."""
    from ..._io import atomic_write
    from ..darknet.weights import DEFAULT_HEADER, write_weights

    cfg, plan = native_cfg(arch)
    sd = mini_to_darknet_state_dict(mini_sd, plan, arch.kind, where)
    header = dict(DEFAULT_HEADER)
    kept = meta.get("darknet_header") if isinstance(meta, dict) else None
    if isinstance(kept, dict):
        header.update({k: int(kept[k]) for k in ("major", "minor", "revision", "seen") if k in kept})
    write_weights(out_weights, plan, sd, header)
    if out_cfg is not None:
        with atomic_write(out_cfg, "w") as f:
            f.write(cfg_text(arch))


__all__ = ["cfg_text", "native_cfg", "mini_to_darknet_state_dict", "darknet_to_mini_state_dict", "kind_of_plan",
           "build_model", "darknet_to_mini_checkpoint", "save_mini_from_darknet", "write_darknet_from_mini",
           "ConfigError"]
