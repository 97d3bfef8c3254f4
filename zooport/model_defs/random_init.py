"""Seeded random parameters for any Detector: the explicit ``random_weights=True`` path.

Models are built with uninitialised tensors (``torch.empty``) because loading overwrites them;
a model that is not loaded must get these values instead, never whatever memory held.
"""
from __future__ import annotations


def randomize_(model, seed: int = 0) -> None:
    """Deterministic random parameters in place: conv weights N(0, 1/fan_in), biases N(0, 0.05),
    BN scale U(0.4, 0.8), running mean N(0, 0.05), running var U(0.5, 1.5) (the goldens' recipe),
    every other tensor N(0, 0.05). Identified by tensor name and rank, so any family works;
    the same ``seed`` gives the same tensors on every machine (CPU generator)."""
    import torch

    g = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for name, t in sorted(model.state_dict().items()):
            if not t.is_floating_point():
                continue
            leaf = name.rsplit(".", 1)[-1]
            is_bn = name.split(".")[-2:-1] == ["bn"]
            if t.dim() >= 2:
                fan_in = max(1, t[0].numel())
                t.copy_(torch.randn(t.shape, generator=g) / fan_in ** 0.5)
            elif leaf == "running_var":
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif is_bn and leaf == "weight":
                t.copy_(torch.rand(t.shape, generator=g) * 0.4 + 0.4)
            else:
                t.copy_(torch.randn(t.shape, generator=g) * 0.05)
