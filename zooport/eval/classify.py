"""Classification: YOLOv5 v7.0's classifier preprocessing and top-1 / top-5 accuracy on an ImageFolder tree.

* :func:`classify_input`: ``classify/predict.py``'s path for one image,
  ``LoadImages(..., transforms=classify_transforms(size))``: the BGR image
  (as ``cv2.imread`` gives it) centre-cropped to a square of side min(h, w)
  (top = (h - m) // 2, left = (w - m) // 2), ``cv2.resize`` to size x size with
  INTER_LINEAR, HWC -> CHW, BGR -> RGB, float32 / 255 -> (3, size, size) float32 in [0, 1]. YOLOv5's
  ImageNet ``(x - mean) / std`` (torchvision ``Normalize``) is the model's own first step.
* :func:`load_image_folder`: an ImageFolder-style directory (one sub-directory
  per class, sorted names = class indices, as torchvision's ``ImageFolder``).
* :func:`topk_accuracy`: top-1 / top-5 as ``classify/val.py`` counts them.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DatasetError, UsageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def classify_input(img_bgr: np.ndarray, pre: dict) -> np.ndarray:
    """(H, W, 3) uint8 BGR -> (3, s, s) float32 RGB [0, 1] per the preprocessing dict ``pre`` (mode
    ``center_crop``): :func:`zooport.eval.preprocess.preprocess_center_crop`."""
    from .preprocess import preprocess_center_crop

    return preprocess_center_crop(img_bgr, pre.get("size", [224, 224]))


def load_image_folder(root) -> tuple[list, list]:
    """``(classes, samples)``: sorted sub-directory names and [(path, class index)] sorted by path."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a directory (expected an ImageFolder tree: one folder per class)")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise DatasetError(f"{root}: no class sub-directories (expected ROOT/CLASS/IMAGE.jpg)")
    samples = []
    for i, c in enumerate(classes):
        samples += [(p, i) for p in sorted((root / c).iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    if not samples:
        raise DatasetError(f"{root}: no images ({', '.join(IMAGE_SUFFIXES)}) in its class folders")
    return classes, samples


def topk_accuracy(logits: np.ndarray, targets: np.ndarray) -> dict:
    """``{"top1", "top5", "n"}``: fraction of rows whose target is the best / among the 5 best scores
    (descending ``argsort``, as ``classify/val.py``: ``(targets[:, None] == pred).float()``, max over 5)."""
    logits = np.asarray(logits, np.float64)
    targets = np.asarray(targets).reshape(-1)
    order = np.argsort(-logits, axis=1, kind="stable")[:, :5]
    hit = order == targets[:, None]
    return {"top1": float(hit[:, 0].mean()) if len(targets) else 0.0,
            "top5": float(hit.any(1).mean()) if len(targets) else 0.0, "n": int(len(targets))}


def verify_classifier(model, folder, *, class_map: dict | None = None, batch: int = 16) -> dict:
    """Top-1 / top-5 of ``model`` (a YOLOv5ClsModel) on an ImageFolder tree ``folder``.

    Folder names map to model classes by name (``model.names``) unless ``class_map`` ({folder: model
    index}) is given; a folder with no model class is a :class:`DatasetError`. Returns ``top1``,
    ``top5``, ``n``, ``metrics`` ({top1, top5}), ``dataset``, ``classes`` and per-image ``predictions``
    (top-5 model indices).
    """
    import torch

    from .data import read_image

    classes, samples = load_image_folder(folder)
    from ..families import task_of

    if task_of(model) != "classify":
        raise UsageError(f"top-k verification needs a classification model, got family "
                           f"{getattr(model, 'family', type(model).__name__)!r}")
    index = {n: i for i, n in enumerate(model.names)}
    mapping = dict(class_map or {})
    for c in classes:
        if c not in mapping:
            if c not in index:
                raise DatasetError(f"{folder}: class folder {c!r} names no class of the model "
                                   f"(give a class map folder -> model index)")
            mapping[c] = index[c]
    from ..transforms import from_meta

    tf = from_meta(model.preprocess, mode="center_crop", purpose="val")
    was_training = model.training
    model.eval()
    logits = []
    with torch.no_grad():
        for s in range(0, len(samples), batch):
            x = np.stack([tf(read_image(p))[0] for p, _ in samples[s:s + batch]])
            logits.append(model(torch.from_numpy(x)).float().numpy())
    model.train(was_training)
    logits = np.concatenate(logits)
    targets = np.array([mapping[classes[i]] for _, i in samples])
    res = topk_accuracy(logits, targets)
    res["metrics"] = {"top1": res["top1"], "top5": res["top5"]}
    res["per_class"] = []
    res["dataset"] = {"kind": "imagefolder", "root": str(Path(folder).resolve()), "images": len(samples)}
    res["classes"] = classes
    res["predictions"] = np.argsort(-logits, axis=1, kind="stable")[:, :5].tolist()
    return res
