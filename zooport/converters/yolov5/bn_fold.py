"""A batch norm written for another program's epsilon, exactly in float32 (YOLOv5 -> Darknet export).

A BatchNorm2d in eval mode computes ``(x - mean) / sqrt(var + eps) * gamma + beta`` with its own ``eps``
(YOLOv5: 1e-3, 1e-4 in v1.0). Darknet hard-codes ``eps = 1e-5`` (``sqrt(variance[f] + .00001f)``), OpenCV 4's
Darknet importer uses 1e-6, pjreddie's Darknet adds 1e-6 to the standard deviation: the epsilon has to move
into the stored variance, and the written numbers should make every such program compute the source's
denominator.

:func:`fold_bn` does two exact things:

* it scales the conv weight and the running mean by ``k = 2**10`` and the variance by ``k**2``. The conv
  output is then exactly ``k`` times larger (a power of two commutes with float rounding) and batch norm,
  being scale-invariant, gives the same result bit for bit in inference (in training the batch
  statistics scale too, and only the eps shrinks by ``k**2``). The stored variance ``k**2 * (var + eps)``
  is then >= 1048 (YOLOv5's eps >= 1e-3), where half an ulp (6.1e-5) exceeds any small epsilon:
  ``var'' + 1e-5``, ``var'' + 1e-6`` and ``var''`` round to the same float32, so Darknet, OpenCV and
  anything else with eps <= 6e-5 see one denominator. (YOLOv5 v1.0's eps of 1e-4 gives variances
  >= 105: another eps <= 6e-5 then moves the denominator by at most 3e-7 relative, a few float32 ulps.)
* :func:`fold_variance` chooses ``var''`` as a float32 for which ``var'' + eps_to`` rounds to exactly
  ``k**2 * fl32(var + eps_from)``, the source's own float32 sum, scaled: ``sqrt`` and ``1/sqrt`` then
  give ``k`` times the source's values exactly, and the exported network computes what the source computes.

:func:`unfold_bn` is the inverse: weight and mean are divided exactly, the variance is the float32 whose sum
with ``eps_from`` rounds to the same denominator (the middle of that range): the original within one ulp of
``var + eps`` (float32 rounding of the fold), every other tensor bit-exact.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ...errors import UsageError, WeightsError

if TYPE_CHECKING:
    import torch

BN_SCALE = 1024    # k: a power of two, so the scaling is exact; k**2 * 1e-3 = 1048.6 (half an ulp 6.1e-5)

__all__ = ["BN_SCALE", "check_scale", "fold_variance", "fold_bn", "unfold_bn"]


def check_scale(k, what: str = "bn_scale") -> float:
    """``k`` as a float if it is a positive power of two (the scaling is exact only then), else UsageError.
    Needs no torch: the CLI checks ``--bn-scale`` with it before anything loads."""
    k = float(k)
    if not (k > 0 and math.frexp(k)[0] == 0.5):
        raise UsageError(f"{what} {k:g}: expected a positive power of two (so that the scaling is exact)")
    return k


def fold_variance(var: torch.Tensor, eps_from: float, eps_to: float, scale: float = 1.0) -> torch.Tensor:
    """float32 ``v`` with ``fl32(v + eps_to) == scale * fl32(var + eps_from)``.

    ``var``: (C,) running variances; ``scale``: a power of two (exact). Both sums are float32 additions of
    the float32 epsilons, which is what Darknet (``variance[f] + .00001f``) and torch's CPU batch norm
    (opmath float) compute. ``v`` is the float32 nearest ``T - eps_to`` (``T`` the scaled source sum) or, on a
    rounding tie, a neighbour that gives ``T``. A solution can be missing: when ``v`` and ``T`` share a binade
    and ``eps_to``'s bits below ulp(T) are exactly half an ulp, every ``v + eps_to`` is a tie and only even
    ``T`` are reached (for ``eps_to = 1e-5`` that is ``T`` in [2**-14, 2**-13)), or when ``T < eps_to / 2``;
    ``v`` is then the nearest, its sum one ulp of ``max(|T|, |v|)`` off. YOLOv5's eps of 1e-3 folds exactly
    for Darknet's 1e-5 and OpenCV's 1e-6, scaled or not. Raises WeightsError naming the channel of a
    non-finite variance.
    """
    import torch

    var = var.detach().to("cpu", torch.float32)
    bad = ~torch.isfinite(var)
    if bool(bad.any()):
        c = int(bad.nonzero()[0])
        raise WeightsError(f"batch-norm running variance of channel {c} is {var[c].item()!r}: expected a finite "
                           f"number")
    e_from, e_to = torch.tensor(eps_from, dtype=torch.float32), torch.tensor(eps_to, dtype=torch.float32)
    target = (var + e_from) * scale                                  # the source's float32 sum, scaled
    best = (target.double() - e_to.double()).float()
    found = (best + e_to) == target
    up, down = best.clone(), best.clone()
    for _ in range(4):                                               # ties and the T < eps_to / 2 corner
        if bool(found.all()):
            break
        up = torch.nextafter(up, torch.tensor(float("inf")))
        down = torch.nextafter(down, torch.tensor(-float("inf")))
        for cand in (down, up):
            ok = ~found & ((cand + e_to) == target)
            best = torch.where(ok, cand, best)
            found |= ok
    return best


def fold_bn(conv_weight, mean, var, eps_from: float, eps_to: float, k: float = BN_SCALE):
    """``(k * conv_weight, k * mean, var'')``: a conv + BN with ``eps_from`` for a program with ``eps_to``.

    ``conv_weight``: (O, I/g, kh, kw) of the conv feeding the BN's (O,) channels; all float32."""
    return (conv_weight.float() * k, mean.float() * k, fold_variance(var, eps_from, eps_to, k * k))


def unfold_bn(conv_weight, mean, var, eps_from: float, eps_to: float, k: float = BN_SCALE):
    """The inverse of :func:`fold_bn(..., eps_to, eps_from, k)`: ``eps_from`` is the exported files' epsilon,
    ``eps_to`` the model's own."""
    return (conv_weight.float() / k, mean.float() / k, fold_variance(var, eps_from, eps_to, 1.0 / (k * k)))
