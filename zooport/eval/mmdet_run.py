"""Inference in ``mmdet`` mode: MMDetection's own pipeline, one image per step, scored through the
model's ``test_cfg`` post-processing (``model.predict``), never through YOLOv5-style NMS.

Each image is read (BGR), preprocessed by :func:`~.preprocess.preprocess_mmdet`
and passed to ``model.predict(x, img_hw=..., scale_factor=...)``, which clips
to the resized image and divides the boxes by the scale factor before NMS
exactly as MMDetection's ``inference_detector`` does (``rescale=True``). The
result has the layout of :func:`~.runner.run_inference`'s.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .data import BadImage, read_image, skip_or_raise


def _load(rec, pre, decoder):
    from ..transforms import from_meta

    im = read_image(rec.path, decoder)
    x, info = from_meta(pre, mode="mmdet", purpose="val")(im)
    return x, info, im.shape[:2]


def run_mmdet(model, images, plan, *, workers=2, skip_bad=False, progress=True, predict_cfg=None,
              device=None, decoder="opencv") -> dict:
    """Run the images of ``plan`` (batches of image indices) -> {"detections", "skipped", "timing", "speed"}.

    ``predict_cfg``: the model's ``test_cfg`` with the verifier's overrides (None: its own). The model runs
    as an eval-mode copy on ``device`` (default the CPU): the caller's model is not moved or modified."""
    import torch
    from tqdm import tqdm

    pre = dict(model.preprocess)
    t0 = time.perf_counter()
    import copy

    dev = torch.device(device or "cpu")
    model = copy.deepcopy(model).eval().to(dev)
    order = [i for idx, _shape in plan.batches for i in idx]
    dets, skipped, t_infer = {}, [], 0.0
    bar = tqdm(total=len(order), desc="verify (torch, mmdet)", unit="img", disable=not progress, leave=False)
    with ThreadPoolExecutor(max_workers=max(1, int(workers))) as pool:
        futs = [(images[i], pool.submit(_load, images[i], pre, decoder)) for i in order]
        for rec, fut in futs:
            try:
                x, info, hw = fut.result()
            except BadImage as e:
                skip_or_raise(rec, e, skip_bad, skipped)
                bar.update(1)
                continue
            t1 = time.perf_counter()
            with torch.inference_mode():
                d = model.predict(torch.from_numpy(x[None]).to(dev), cfg=predict_cfg, img_hw=info["img_shape"],
                                  scale_factor=info["scale_factor"])[0].cpu()
            t_infer += time.perf_counter() - t1
            dets[rec.key] = d.float().numpy().astype(np.float32).reshape(-1, 6)
            bar.update(1)
    bar.close()
    total = time.perf_counter() - t0
    n = max(1, len(dets))
    # predict() includes the test_cfg post-processing; loading + preprocessing overlap it in the pool
    return {"detections": dets, "skipped": skipped,
            "timing": {"backend_setup_s": 0.0, "inference_s": t_infer, "postprocess_wait_s": 0.0, "total_s": total},
            "speed": {"preprocess": 1000 * max(0.0, total - t_infer) / n, "inference": 1000 * t_infer / n,
                      "nms": 0.0}}
