"""The input contract of every zooport model: RGB in [0, 1], (B, 3, H, W) float32.

Networks trained on other inputs (MMDetection's: pixel values 0-255, often BGR, minus a mean and
over a std; YOLOv5's classifiers: ImageNet mean / std) hold an :class:`InputNorm` as their first
step, as torchvision's detection models hold their transform, so ``raw``, ``forward``, ``predict``
and every ONNX export take the same input as the YOLO and Darknet models, and the normalisation
travels with the weights instead of living in each caller.

Exactness: for an image given as ``u8 / 255`` (what :func:`zooport.eval.preprocess.bgr_to_chw01`
and every zooport pipeline produce), ``x * 255`` gives back the integer pixel exactly (true for all
256 values in float32), and ``(x - mean) / std`` is then the same float32 arithmetic as
MMDetection's data preprocessor and torchvision's ``Normalize``: the network sees the same bits.
"""
from __future__ import annotations

import torch
from torch import nn


class InputNorm(nn.Module):
    """RGB [0, 1] -> the network's input: ``x * scale``, channels reversed when ``bgr``, then
    ``(x - mean) / std`` per channel (in the network's channel order).

    ``mean`` / ``std`` are plain numbers, made into tensors on the input's device and dtype at each
    call: no state (the state dict keeps the foreign checkpoint's keys; a meta-device build or
    ``to_empty`` cannot leave them uninitialised) and constants in an ONNX graph.
    ``forward(x, img_hw)``: with the valid (h, w) of a padded batch, everything outside it is set to
    0 after normalising, as MMDetection pads the normalised image with zeros.
    """

    def __init__(self, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), *, scale: float = 1.0, bgr: bool = False):
        super().__init__()
        self.scale, self.bgr = float(scale), bool(bgr)
        self._mean = [float(v) for v in mean]
        self._std = [float(v) for v in std]
        self._plain_mean = all(v == 0.0 for v in self._mean)
        self._plain_std = all(v == 1.0 for v in self._std)

    def _const(self, v, x):
        return torch.tensor(v, dtype=torch.float32, device=x.device).to(x.dtype).view(1, 3, 1, 1)

    @property
    def mean(self) -> torch.Tensor:
        """(1, 3, 1, 1) float32, in the network's channel order."""
        return torch.tensor(self._mean, dtype=torch.float32, device="cpu").view(1, 3, 1, 1)

    @property
    def std(self) -> torch.Tensor:
        return torch.tensor(self._std, dtype=torch.float32, device="cpu").view(1, 3, 1, 1)

    @property
    def identity(self) -> bool:
        return self.scale == 1.0 and not self.bgr and self._plain_mean and self._plain_std

    def spec(self) -> dict:
        """JSON-able description (recorded in the model's ``preprocess['model_normalises']``)."""
        return {"scale": self.scale, "bgr": self.bgr, "mean": self.mean.flatten().tolist(),
                "std": self.std.flatten().tolist()}  # float32 values, as the network sees them

    def forward(self, x: torch.Tensor, img_hw=None) -> torch.Tensor:
        if self.scale != 1.0:
            x = x * self.scale
        if self.bgr:
            x = x[:, [2, 1, 0]]  # a Gather in ONNX
        if not self._plain_mean:
            x = x - self._const(self._mean, x)
        if not self._plain_std:
            x = x / self._const(self._std, x)
        if img_hw is not None:
            h, w = int(img_hw[0]), int(img_hw[1])
            if h < x.shape[2] or w < x.shape[3]:
                x = x.clone()
                x[:, :, h:, :] = 0
                x[:, :, :, w:] = 0
        return x

    def extra_repr(self) -> str:
        return f"scale={self.scale}, bgr={self.bgr}, mean={self.mean.flatten().tolist()}, " \
               f"std={self.std.flatten().tolist()}"


def mmdet_input_norm(model_cfg: dict) -> InputNorm:
    """MMDetection's ``data_preprocessor`` (``mean`` / ``std`` in pixel units, ``bgr_to_rgb``; images
    load as BGR) as an :class:`InputNorm` on zooport's RGB [0, 1] input."""
    dp = model_cfg.get("data_preprocessor") or {}
    mean = dp.get("mean") or (0.0, 0.0, 0.0)
    std = dp.get("std") or (1.0, 1.0, 1.0)
    return InputNorm(mean, std, scale=255.0, bgr=not dp.get("bgr_to_rgb", False))
