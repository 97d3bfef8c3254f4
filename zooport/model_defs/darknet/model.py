"""The native PyTorch model of a Darknet network: :class:`DarknetModel`.

Built from a parsed cfg (:func:`zooport.parsers.darknet.cfg.parse_cfg`) and its layer plan
(:func:`zooport.parsers.darknet.plan.build_plan`). ``layers[i]`` implements cfg layer ``i``; its
parameters are named as the plan names them, so ``state_dict()`` keys are exactly
``f"layers.{i}.{name}"`` for the plan's params, in ``.weights`` order (no ``num_batches_tracked``).
Parameters are allocated with ``torch.empty``: build is fast and loading overwrites them.

Input: (B, C, H, W) float32, RGB in [0, 1] (Darknet's own input convention). Outputs:

* ``raw(x)``: per head layer in cfg order, the (B, C, H, W) tensor feeding it (``headNNN_in``);
* ``heads_out(x)``: per head, Darknet's in-place head output (``headNNN_out``);
* ``forward(x)`` in eval: (B, N, 4 + 1 + nc) -- xywh in input pixels, objectness, class scores
  (see :mod:`zooport.model_defs.darknet.heads`); a network without heads (classifier) returns the
  output of its last non-[cost] layer (B, *out_shape).

Only the layers the outputs depend on are run, and each intermediate is released after its last use.
"""
from __future__ import annotations

import torch
from torch import nn

from ...errors import UnsupportedError
from ..base import Detector, default_preprocess
from .heads import HEAD_MODULES
from .layers import LAYER_MODULES, Identity


def _build_layer(lp, net_hw):
    if lp.type in HEAD_MODULES:
        return HEAD_MODULES[lp.type](lp, net_hw)
    cls = LAYER_MODULES.get(lp.type)
    if cls is None:
        sec = lp.section
        raise UnsupportedError(f"{sec.path or '<cfg>'}:{sec.line}: [{sec.type}] (layer {lp.index}) cannot be run "
                               f"by zooport's Darknet model")
    return cls(lp) if cls is not Identity else Identity()


class DarknetModel(Detector):
    """A Darknet cfg as an ``nn.Module`` (see module docstring). ``family = "darknet"``."""

    family = "darknet"

    def __init__(self, cfg, plan, names: list[str] | None = None, source: dict | None = None):
        c, h, w = plan[0].in_shape if plan else (3, 0, 0)
        net_hw = (h, w)
        layers = [_build_layer(lp, net_hw) for lp in plan]
        heads = [lp.index for lp in plan if lp.type in HEAD_MODULES]
        nc = None
        if heads:
            ncs = {layers[i].classes for i in heads}
            if len(ncs) != 1:
                raise UnsupportedError(f"{cfg.path or '<cfg>'}: heads disagree on the number of classes "
                                       f"{sorted(ncs)}; expected one value")
            nc = ncs.pop()
        else:
            # classifier: the number of outputs of the last non-cost layer
            last = [lp for lp in plan if lp.type != "cost"][-1]
            oc, oh, ow = last.out_shape
            nc = oc * oh * ow
        if names is not None and len(names) != nc:
            from ...errors import UsageError

            raise UsageError(f"{len(names)} class names given, the cfg {cfg.path or ''} has {nc} classes")
        names = list(names) if names is not None else [f"class{i}" for i in range(nc)]
        letter_box = bool(cfg.net.get_int("letter_box", 0))
        super().__init__(
            names=names,
            stride=[int(round(w / plan[i].in_shape[2])) for i in heads] if heads else [],
            input_size=[h, w],
            preprocess=default_preprocess("letterbox" if letter_box else "resize", pad_value=127),
            anchors=[layers[i].anchors for i in heads] if heads else None,
            source=source,
        )
        self.cfg = cfg
        self.plan = plan
        self.layers = nn.ModuleList(layers)
        self.head_indices = heads
        self.output_index = heads[-1] if heads else [lp.index for lp in plan if lp.type != "cost"][-1]
        self._schedules: dict = {}

    # -- graph -------------------------------------------------------------------------------------------------
    def _schedule(self, targets: tuple[int, ...]):
        """(layers to run in order, {layer: index of its last reader}) for computing ``targets``."""
        if targets not in self._schedules:
            need = set()
            stack = list(targets)
            while stack:
                i = stack.pop()
                if i < 0 or i in need:
                    continue
                need.add(i)
                stack.extend(self.plan[i].inputs)
            order = sorted(need)
            last_use = {}
            for i in order:
                for j in self.plan[i].inputs:
                    last_use[j] = i
            for t in targets:
                last_use[t] = len(self.plan)  # keep what the caller asked for
            self._schedules[targets] = (order, last_use)
        return self._schedules[targets]

    def _run(self, x, targets: tuple[int, ...]) -> dict[int, torch.Tensor]:
        order, last_use = self._schedule(targets)
        outs: dict[int, torch.Tensor] = {-1: x}
        for i in order:
            lp = self.plan[i]
            layer = self.layers[i]
            xs = [outs[j] for j in lp.inputs]
            if lp.type in HEAD_MODULES:
                y = layer.activate(xs[0])
            elif getattr(layer, "share", None) is not None:
                y = layer(xs, shared=self.layers[layer.share])
            else:
                y = layer(xs)
            outs[i] = y
            for j in lp.inputs:
                if last_use.get(j) == i and j != -1:
                    outs.pop(j, None)
        return outs

    def _head_inputs(self):
        return tuple(self.plan[i].inputs[0] for i in self.head_indices)

    # -- outputs -----------------------------------------------------------------------------------------------
    def raw(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Per head in cfg order, the (B, C, H, W) tensor feeding it (the previous layer's activated output)."""
        srcs = self._head_inputs()
        outs = self._run(x, srcs)
        return [x if s == -1 else outs[s] for s in srcs]

    def heads_out(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Per head, Darknet's in-place head output (B, C, H, W) (``headNNN_out.f32`` semantics)."""
        return [self.layers[i].activate(r) for i, r in zip(self.head_indices, self.raw(x))]

    def forward(self, x: torch.Tensor):
        """(B, N, 4 + 1 + nc) decoded detections; for a classifier the last non-cost layer's output."""
        if not self.head_indices:
            return self._run(x, (self.output_index,))[self.output_index]
        img_h, img_w = x.shape[2], x.shape[3]
        dets = [self.layers[i].decode(r, img_h, img_w) for i, r in zip(self.head_indices, self.raw(x))]
        return dets[0] if len(dets) == 1 else torch.cat(dets, 1)

    # -- conversion helpers ------------------------------------------------------------------------------------
    def fuse(self) -> "DarknetModel":
        """Fold every conv + BN pair in place (conv gets a bias); returns self. The state dict then no longer
        matches the cfg's ``.weights`` layout, so fuse only for inference/export."""
        for layer in self.layers:
            if hasattr(layer, "fuse"):
                layer.fuse()
        return self

    def native_arch(self) -> dict:
        return {"cfg": self.cfg.text}

    @classmethod
    def from_native(cls, arch: dict, meta: dict) -> "DarknetModel":
        from ...parsers.darknet.cfg import parse_cfg
        from ...parsers.darknet.plan import build_plan

        src = dict(meta.get("source") or {})
        cfg = parse_cfg(src.get("cfg_file") or "<native checkpoint cfg>", text=arch["cfg"])
        model = cls(cfg, build_plan(cfg), names=meta.get("names"), source=src)
        return model
