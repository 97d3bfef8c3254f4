"""Darknet cfg + ``.weights`` <-> native :class:`~zooport.model_defs.darknet.model.DarknetModel`.

* :func:`load_darknet` parses the cfg, plans it, builds the model (uninitialised tensors) and puts the
  weights in place: the file is read once into one float32 array and the model's parameters become
  views of it (``load_state_dict(assign=True)``), so a 250 MB file costs one copy and ~its size in RAM.
* :func:`read_weights` / :func:`save_darknet_weights`: ``.weights`` I/O; writing back a loaded file is
  byte-identical (the header, including revision and ``seen``, is kept in ``model.source``).
* ``num_classes=N`` rebuilds the cfg with N classes (head convs resized) and loads every layer whose
  tensors keep their shape; the others (the head convs) are freshly initialised and reported.

Formats: see :mod:`zooport.converters.darknet.weights` and :mod:`zooport.parsers.darknet.plan`.
"""
from __future__ import annotations

import logging
import math
import os

from ...errors import UsageError, WeightsError, ZooportError
from ...parsers.darknet.cfg import DarknetCfg, parse_cfg
from ...parsers.darknet.plan import build_plan
from .meta import LazySource, file_source, model_metadata, resolve_names, with_num_classes
from .weights import (DEFAULT_HEADER, buffer_to_state_dict, is_transposed, read_weights_buffer,
                              state_dict_to_buffer, write_weights)

__all__ = ["load_darknet", "read_weights", "save_darknet_weights", "state_dict_to_buffer",
           "buffer_to_state_dict", "DarknetLoad"]

log = logging.getLogger(__name__)


def _as_cfg(cfg) -> DarknetCfg:
    return cfg if isinstance(cfg, DarknetCfg) else parse_cfg(cfg)


def read_weights(path, plan) -> tuple[dict, dict]:
    """``(header, state_dict)`` of a ``.weights`` file for ``plan``.

    ``header``: {"major", "minor", "revision", "seen"}. ``state_dict``: ``f"layers.{i}.{name}"`` ->
    float32 tensor, all views of one buffer holding the file's payload. Raises WeightsError when the file
    is truncated, has trailing data or a bad header (expected vs found float counts, and the layer).
    """
    header, buf = read_weights_buffer(path, plan)
    return header, buffer_to_state_dict(plan, buf, transposed=is_transposed(header))


def _fresh_init(name: str, shape):
    """Initial values for a tensor that was not loaded (a resized head conv under ``num_classes``)."""
    import torch

    if name.endswith("running_var") or name == "bn.weight":
        return torch.ones(shape)
    if name.endswith("conv.weight"):
        t = torch.empty(shape)
        torch.nn.init.kaiming_uniform_(t, a=math.sqrt(5))  # what nn.Conv2d.reset_parameters does
        return t
    return torch.zeros(shape)


class DarknetLoad:
    """What :func:`load_darknet` did besides building the model (``model.darknet_load``)."""

    def __init__(self, skipped: list[str], original_classes: int | None = None):
        self.skipped = skipped                  # "layers.N" prefixes left freshly initialised
        self.original_classes = original_classes


def load_darknet(cfg, weights=None, *, names=None, num_classes: int | None = None,
                 random_weights: bool = False, seed: int = 0):
    """Build a :class:`~zooport.model_defs.darknet.model.DarknetModel` from a cfg and optional ``.weights``.

    ``cfg``: path or parsed :class:`DarknetCfg`. ``names``: a ``.names`` file, a list, or None
    (``class0``...). ``num_classes``: rebuild the heads for N classes and load every layer but the
    class-dependent ones; the skipped layers are logged and listed in ``model.darknet_load.skipped``.
    Returns the model in eval mode. Without ``weights`` it raises :class:`UsageError` unless
    ``random_weights=True`` asks for seeded random parameters
    (:func:`~zooport.model_defs.random_init.randomize_` with ``seed``; same seed, same tensors).
    """
    from ...model_defs.darknet.model import DarknetModel

    cfg = _as_cfg(cfg)
    plan = build_plan(cfg)
    orig_cfg, orig_plan = cfg, plan
    if num_classes is not None:
        cfg = with_num_classes(cfg, plan, int(num_classes))
        plan = build_plan(cfg)
    names_list = resolve_names(names, plan)
    if weights is None and not random_weights:
        where = orig_cfg.path or orig_cfg.name
        raise UsageError(f"{where}: a Darknet cfg without weights has no trained parameters; give its "
                         ".weights file (CFG WEIGHTS), or ask for seeded random weights explicitly "
                         "(--random-weights, random_weights=True)")
    if weights is not None and random_weights:
        raise UsageError(f"{os.fspath(weights)}: weights given together with random_weights=True; choose one")
    header = None
    sd = None
    skipped: list[str] = []
    if weights is not None:
        header, buf = read_weights_buffer(weights, orig_plan)
        sd = buffer_to_state_dict(orig_plan, buf, transposed=is_transposed(header))
        if num_classes is not None:
            for old, new in zip(orig_plan, plan):
                if old.params == new.params:
                    continue
                skipped.append(f"layers.{new.index}")
                for name, shape in new.params:
                    sd[f"layers.{new.index}.{name}"] = _fresh_init(name, shape)
            for s in skipped:
                log.info("not loaded (class-dependent, freshly initialised): %s", s)
    src = file_source(weights, header, cfg)
    if random_weights:
        src["weights"] = f"random (seed {int(seed)})"
    model = DarknetModel(cfg, plan, names=names_list, source=dict(src))
    model.names = names_list
    for key, value in model_metadata(cfg, plan).items():
        if not getattr(model, key, None):  # the model derives these itself; fill only what it left empty
            setattr(model, key, value)
    if sd is not None:
        from ..native import load_state_dict_strict

        load_state_dict_strict(model, sd, os.fspath(weights), assign=True)  # tensors become views, no copy
        model.source = LazySource(src, weights)
    else:
        from ...model_defs.random_init import randomize_

        randomize_(model, seed)
    model.darknet_load = DarknetLoad(skipped, None if num_classes is None else _classes(orig_plan))
    return model.eval()


def _classes(plan):
    for lp in plan:
        if lp.is_head:
            return lp.attrs.get("classes")
    return None


def _plan_of(model):
    plan = getattr(model, "plan", None)
    if plan is not None:
        return list(plan)
    cfg = getattr(model, "cfg", None)
    if cfg is None:
        raise UsageError("save_darknet_weights: the model has no .plan/.cfg; pass plan=")
    return build_plan(cfg)


def save_darknet_weights(model_or_state_dict, path, *, plan=None, header: dict | None = None):
    """Write a Darknet ``.weights`` file atomically.

    ``model_or_state_dict``: a DarknetModel (its plan and ``source["darknet_header"]`` are used) or a
    state dict with exactly the plan's keys (then ``plan=`` is required). ``header`` overrides the kept
    header; the default is Darknet's own 0.2.5 with ``seen`` 0.
    """
    if isinstance(model_or_state_dict, dict):
        if plan is None:
            raise UsageError("save_darknet_weights(state_dict, ...) needs plan=")
        sd = model_or_state_dict
    else:
        model = model_or_state_dict
        plan = plan if plan is not None else _plan_of(model)
        sd = model.state_dict()
        if header is None:
            src = getattr(model, "source", None) or {}
            header = src.get("darknet_header") if src.get("format") == "darknet" else None
    h = dict(DEFAULT_HEADER)
    if header:
        h.update({k: int(header[k]) for k in ("major", "minor", "revision", "seen") if k in header})
    write_weights(path, plan, sd, h)
    return path


def info(cfg) -> dict:
    """Facts about a cfg without building a model: layer count, parameter count, ``.weights`` size."""
    from ...parsers.darknet.plan import accounting_plan, weights_bytes, weights_float_count

    cfg = _as_cfg(cfg)
    plan = accounting_plan(cfg)
    kinds: dict[str, int] = {}
    for lp in plan:
        kinds[lp.type] = kinds.get(lp.type, 0) + 1
    try:  # the strict plan knows the heads' classes; the accounting plan skips head checks
        heads = [lp for lp in build_plan(cfg) if lp.is_head]
    except ZooportError:
        heads = [lp for lp in plan if lp.is_head]
    return {
        "cfg": cfg.path,
        "layers": len(plan),
        "params": weights_float_count(plan),
        "weights_bytes": weights_bytes(plan),
        "input": list(plan[0].in_shape),
        "output": list(plan[-1].out_shape),
        "heads": [{"layer": lp.index, "type": lp.type, "shape": list(lp.in_shape),
                   "classes": lp.attrs.get("classes")} for lp in heads],
        "layer_types": kinds,
    }


# kept for callers that want the raw pieces
__all__ += ["info", "WeightsError"]
