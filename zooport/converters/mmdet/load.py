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


def _test_resize(cfg: dict):
    """((w, h), keep_ratio) of the test pipeline's ``Resize``, or None when the config has none."""
    pipes = [cfg.get("test_pipeline")]
    dl = cfg.get("test_dataloader")
    if isinstance(dl, dict) and isinstance(dl.get("dataset"), dict):
        pipes.append(dl["dataset"].get("pipeline"))
    for pipe in pipes:
        for step in pipe or []:
            if isinstance(step, dict) and step.get("type") == "Resize" and isinstance(step.get("scale"), (list, tuple)):
                w, h = step["scale"][:2]
                return (int(w), int(h)), bool(step.get("keep_ratio", False))
    return None


def _input_size(cfg: dict, model_type: str) -> list[int]:
    """[h, w] from the test pipeline's Resize scale (w, h) when present."""
    r = _test_resize(cfg)
    if r is not None:
        return [r[0][1], r[0][0]]
    return list(DEFAULT_INPUT.get(model_type, [640, 640]))


def build_model(config: dict, *, names=None, source=None, where: str = "config"):
    """An MMDetModel or TwoStageDetector (weights uninitialised) from a full config or model dict."""
    from ...model_defs.mmdet.build import model_class
    from ...model_defs.mmdet.registry import preprocess_spec
    from ...parsers.mmdet.config import class_names, model_section

    model_cfg = model_section(config, where)
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
    if isinstance(names, (str, os.PathLike)):
        from ...parsers.names import read_names

        names = read_names(names)
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
