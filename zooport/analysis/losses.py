"""Focal loss (Lin et al. 2017) against cross-entropy: values and gradients over the predicted probability.

For a logit ``z`` with ``p = sigmoid(z)`` and target ``y``: ``p_t = p`` (y = 1) or ``1 - p`` (y = 0),
``alpha_t = alpha`` or ``1 - alpha``; ``CE = -log(p_t)``, ``FL = -alpha_t (1 - p_t)^gamma log(p_t)``.
Gradients with respect to the logit come from autograd (the tests check them against the closed form).
"""
from __future__ import annotations

import numpy as np


def focal_curves(alpha: float = 0.25, gammas=(0.0, 0.5, 1.0, 2.0, 5.0), n: int = 199) -> dict:
    """Loss and d loss / d logit for a positive target over ``p_t`` in (0, 1): ``{"p_t": [...],
    "ce": {"loss", "grad"}, "focal": {gamma: {"loss", "grad"}}}`` (alpha applied to focal only)."""
    import torch

    pt = np.linspace(0.005, 0.995, n)
    z = torch.tensor(np.log(pt / (1 - pt)), dtype=torch.float64, requires_grad=True)

    def run(gamma, a):
        p = torch.sigmoid(z)
        loss = -a * (1 - p) ** gamma * torch.log(p)
        (g,) = torch.autograd.grad(loss.sum(), z)
        return {"loss": loss.detach().numpy().tolist(), "grad": g.numpy().tolist()}

    return {"p_t": pt.tolist(), "alpha": alpha, "ce": run(0.0, 1.0),
            "focal": {float(g): run(float(g), alpha) for g in gammas}}


def plot_focal(path, curves: dict) -> None:
    """Two panels, loss and -d loss / d logit against p_t; cross-entropy dashed, one line per gamma."""
    from .plotting import figure, save

    fig, axes = figure(11, 4, 1, 2)
    a, b = axes[0]
    pt = curves["p_t"]
    a.plot(pt, curves["ce"]["loss"], "k--", label="cross-entropy")
    b.plot(pt, [-v for v in curves["ce"]["grad"]], "k--", label="cross-entropy")
    for g, c in curves["focal"].items():
        a.plot(pt, c["loss"], label=f"focal gamma={g:g}")
        b.plot(pt, [-v for v in c["grad"]], label=f"focal gamma={g:g}")
    a.set_ylim(0, 5)
    a.set_xlabel("p_t (probability of the true class)")
    a.set_ylabel("loss")
    a.set_title(f"focal loss, alpha={curves['alpha']:g} (positive target)")
    b.set_xlabel("p_t")
    b.set_ylabel("-d loss / d logit")
    b.set_title("gradient magnitude")
    a.legend()
    b.legend()
    save(fig, path)
