"""MMDetection checkpoints -> native :class:`~zooport.model_defs.mmdet.MMDetModel`.

Checkpoint format: ``{"meta": {...}, "state_dict": {key: tensor}}`` as
MMDetection saves it (``torch.load(weights_only=True)``; a bare state dict is
accepted too). The config comes from ``config`` (a ``.py`` MMDetection config
read without executing it, or a resolved ``.json`` / ``.yaml``) or from the
config text MMDetection stores in ``meta['cfg']`` (2.x: ``meta['config']``).
Loading is strict: a missing or unused key, or a shape mismatch, is a
:class:`~zooport.errors.CheckpointError` naming the key.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from ...errors import CheckpointError, ConfigError, UnsafeCheckpointError

_TRAINING_STATE = re.compile(r"(^|\.)loss_[A-Za-z0-9_]+\.")
DEFAULT_INPUT = {"YOLOX": [640, 640], "YOLOV3": [608, 608], "FasterRCNN": [800, 1333], "CascadeRCNN": [800, 1333]}


def read_checkpoint(path: str | os.PathLike) -> tuple[dict, dict]:
    """(state_dict, meta) of an MMDetection checkpoint file (float tensors cast to float32)."""
    import torch

    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{p}: no such file")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle/zip errors of many kinds: nothing from the file was executed
        from ..native import torch_load_reason

        unsafe, reason = torch_load_reason(e)
        if unsafe:
            raise UnsafeCheckpointError(f"{p}: the checkpoint is refused: {reason}") from None
        raise CheckpointError(f"{p}: not an MMDetection checkpoint loadable with weights_only=True ({reason})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{p}: expected a dict with 'state_dict', got {type(obj).__name__}")
    meta = obj.get("meta") if isinstance(obj.get("meta"), dict) else {}
    sd = obj.get("state_dict", obj if all(torch.is_tensor(v) for v in obj.values()) else None)
    if not isinstance(sd, dict) or not sd:
        raise CheckpointError(f"{p}: no 'state_dict' in the checkpoint")
    out = {}
    for k, v in sd.items():
        if not torch.is_tensor(v):
            raise CheckpointError(f"{p}: state_dict key {k!r} is not a tensor ({type(v).__name__})")
        out[k[len("module."):] if k.startswith("module.") else k] = v.float() if v.is_floating_point() else v
    return out, meta


def resolve_config(config, meta: dict, source: str) -> dict:
    """The full config dict: from a file / dict, else from the checkpoint's meta."""
    from ...parsers.mmdet.config import config_from_text, load_config

    if isinstance(config, dict):
        return config
    if config is not None:
        return load_config(config)
    text = meta.get("cfg", meta.get("config"))
    if isinstance(text, str) and text.strip():
        return config_from_text(text, f"{source} (meta config)")
    if isinstance(text, dict):
        return text
    raise ConfigError(f"{source}: the checkpoint carries no config (meta['cfg']); pass one with --config "
                      "(an MMDetection .py config, or a resolved .json / .yaml)")


def _test_steps(cfg: dict):
    """The test pipeline's steps: 3.x ``test_pipeline`` / ``test_dataloader.dataset.pipeline``, 2.x
    ``data.test.pipeline``; a 2.x ``MultiScaleFlipAug``'s ``transforms`` in its place (with its
    ``img_scale`` handed to the Resize inside, as mmdet 2.x does)."""
    pipes = [cfg.get("test_pipeline")]
    dl = cfg.get("test_dataloader")
    if isinstance(dl, dict) and isinstance(dl.get("dataset"), dict):
        pipes.append(dl["dataset"].get("pipeline"))
    data = cfg.get("data")
    if isinstance(data, dict) and isinstance(data.get("test"), dict):
        pipes.append(data["test"].get("pipeline"))
    for pipe in pipes:
        for step in pipe if isinstance(pipe, (list, tuple)) else []:
            if not isinstance(step, dict):
                continue
            if step.get("type") == "MultiScaleFlipAug" and isinstance(step.get("transforms"), (list, tuple)):
                scale = step.get("img_scale", step.get("scale"))
                for inner in step["transforms"]:
                    if isinstance(inner, dict) and inner.get("type") == "Resize" and scale is not None \
                            and "scale" not in inner:
                        inner = {**inner, "scale": scale[0] if isinstance(scale, list) and scale and
                                 isinstance(scale[0], (list, tuple)) else scale}
                    if isinstance(inner, dict):
                        yield inner
            else:
                yield step


def _test_resize(cfg: dict):
    """((w, h), keep_ratio) of the test pipeline's ``Resize``, or None when the config has none."""
    for step in _test_steps(cfg):
        if step.get("type") == "Resize":
            scale = step.get("scale", step.get("img_scale"))
            if isinstance(scale, (list, tuple)) and len(scale) >= 2 and not isinstance(scale[0], (list, tuple)):
                return (int(scale[0]), int(scale[1])), bool(step.get("keep_ratio", False))
    return None


def _with_pipeline_normalisation(model_cfg: dict, cfg: dict) -> dict:
    """An mmdet 2.x config normalises in its pipeline (``Normalize(mean, std, to_rgb)``, ``Pad(size_divisor)``)
    instead of a ``data_preprocessor``: give the model that one, so its InputNorm does what the pipeline did."""
    if model_cfg.get("data_preprocessor") is not None:
        return model_cfg
    dp = None
    for step in _test_steps(cfg):
        if step.get("type") == "Normalize":
            dp = {"type": "DetDataPreprocessor", "mean": [float(v) for v in step.get("mean", (0, 0, 0))],
                  "std": [float(v) for v in step.get("std", (1, 1, 1))], "bgr_to_rgb": bool(step.get("to_rgb", True))}
        elif step.get("type") == "Pad" and dp is not None and step.get("size_divisor"):
            dp["pad_size_divisor"] = int(step["size_divisor"])
    return model_cfg if dp is None else {**model_cfg, "data_preprocessor": dp}


def _input_size(cfg: dict, model_type: str) -> list[int]:
    """[h, w] from the test pipeline's Resize scale (w, h) when present."""
    r = _test_resize(cfg)
    if r is not None:
        return [r[0][1], r[0][0]]
    return list(DEFAULT_INPUT.get(model_type, [640, 640]))


def _refuse_mini(model_cfg: dict, where: str) -> None:
    """mmdetection-mini's RR* models share mmdet 2.x's schema but not MMDetection's layout: point to their reader."""
    from ...errors import UnsupportedError
    from ...parsers.mini.config import KINDS

    bb = (model_cfg.get("backbone") or {}).get("type") if isinstance(model_cfg.get("backbone"), dict) else None
    if any(bb == sig[0] for sig in KINDS):
        raise UnsupportedError(f"{where}: backbone {bb} is one of mmdetection-mini's own models, not MMDetection's; "
                               "read it with `zooport convert mmdet-mini CKPT --config FILE` "
                               "(zooport.converters.mini.load.load_mini)")


def build_model(config: dict, *, names=None, source=None, where: str = "config"):
    """An MMDetModel or TwoStageDetector (weights uninitialised) from a full config or model dict."""
    from ...model_defs.mmdet.build import model_class
    from ...model_defs.mmdet.registry import preprocess_spec
    from ...parsers.mmdet.config import class_names, model_section

    model_cfg = _with_pipeline_normalisation(model_section(config, where), config)
    _refuse_mini(model_cfg, where)
    names = names or class_names(config)
    return model_class(model_cfg)(model_cfg, names=names, input_size=_input_size(config, model_cfg.get("type")), source=source,
               preprocess=preprocess_spec(model_cfg, _test_resize(config)))


def load_mmdet(checkpoint, config=None, *, names=None):
    """Load an MMDetection checkpoint (path) into a native MMDetModel in eval mode.

    ``config``: path of a .py/.json/.yaml config, a config dict, or None (use the checkpoint's meta).
    ``names``: class names (a list or a names file) overriding the config's / checkpoint's.
    """
    from ..._io import sha256_file
    from ..native import load_state_dict_strict

    p = Path(checkpoint)
    from ...parsers.names import resolve_names

    names = resolve_names(names)
    sd, meta = read_checkpoint(p)
    cfg = resolve_config(config, meta, str(p))
    if names is None:
        dm = meta.get("dataset_meta") or {}
        names = dm.get("classes") or meta.get("CLASSES")
        names = [str(n) for n in names] if names else None
    source = {"format": "mmdet", "file": p.name, "sha256": sha256_file(p)}
    for key in ("mmdet_version", "darknet_header"):
        if key in meta:
            source[key] = meta[key]
    model = build_model(cfg, names=names, source=source, where=str(config or p))
    # loss modules with state (GHMC / GHMR ``edges`` and ``acc_sum`` buffers) are training-only: a
    # checkpoint trained with them carries their keys, which inference never reads
    dropped = sorted(k for k in sd if _TRAINING_STATE.search(k))
    sd = {k: v for k, v in sd.items() if k not in dropped}
    if dropped:
        model.source["ignored_training_keys"] = dropped
    load_state_dict_strict(model, sd, str(p))
    return model.eval()
