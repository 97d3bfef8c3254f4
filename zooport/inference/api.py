"""``zooport.predict``: one model on images, with the model family's own pipeline, boxes in image pixels.

The pipeline is the verifier's (:mod:`zooport.eval`), picked from the model's metadata:

* ``letterbox`` models (YOLOv5): YOLOv5 ``detect.py``'s letterbox straight from the original image
  (INTER_LINEAR, pad value from the model, minimal stride-aligned rectangle; ``square=True`` pads to
  ``imgsz`` x ``imgsz`` as ONNX exports and the goldens do), then
  :func:`zooport.postprocess.non_max_suppression` (best class per box) and YOLOv5's ``scale_boxes`` +
  clipping back to the image.
* ``resize`` Darknet models: Darknet's own bilinear stretch to the network size
  (:func:`zooport.eval.preprocess.preprocess_resize`) and Darknet's ``detector test`` post-processing
  (:func:`zooport.postprocess.darknet_detections`: objectness threshold, per-class
  ``do_nms_sort``), boxes scaled to the image and clipped as Darknet draws them.
* MMDetection models: keep-ratio resize (scale ``(long, short)`` from the model's input size, OpenCV
  bilinear), the model's normalisation, padding to its ``pad_size_divisor``, then the model's own
  ``predict`` (its ``test_cfg``), boxes divided by the resize factors.

Images are BGR uint8 (H, W, 3) arrays as ``cv2.imread`` returns them, or paths.
"""
from __future__ import annotations

import os
import time

import numpy as np

from ..errors import UsageError
from ..postprocess import verify_postprocess
from .detections import Detections

POSTS = ("yolov5", "darknet", "mmdet")


class Predictor:
    """A model plus its pipeline settings; call it on one BGR image.

    ``imgsz``: letterbox long side / Darknet network size (int) or (h, w); default the model's input size.
    ``conf``/``iou``: score and NMS IoU thresholds; ``max_det`` detections per image; ``classes``: keep only
    these class ids; ``resize_interp``: for ``resize`` models, ``darknet`` (Darknet's own bilinear, what
    ``darknet detector test`` and the verifier use) or ``opencv`` (``cv2.INTER_LINEAR``); ``backend``: ``torch`` (Conv+BN fused copy) or ``onnxruntime`` (the model exported
    with dynamic shapes, as the verifier runs it); ``decoder`` for image paths: ``opencv`` (``cv2.imread``),
    ``stb`` (JPEGs decoded bit for bit as Darknet's stb_image does) or ``auto`` (``stb`` when a Darknet model
    runs the Darknet way, i.e. Darknet post-processing and its own resize; else ``opencv``).
    """

    def __init__(self, model, *, imgsz=None, conf: float = 0.25, iou: float = 0.45, max_det: int = 300,
                 classes=None, square: bool = False, backend: str = "torch", preprocess: str | None = None,
                 postprocess: str | None = None, names=None, resize_interp: str = "darknet", decoder: str = "auto"):
        from ..loading import as_model

        self.model = as_model(model, names)
        m = self.model
        self.pre = dict(getattr(m, "preprocess", None) or {})
        self.post = postprocess or verify_postprocess(m)
        if self.post not in POSTS:
            raise UsageError(f"postprocess must be one of {', '.join(POSTS)}, got {self.post!r}")
        self.mode = preprocess or ("mmdet" if self.post == "mmdet" else self.pre.get("mode", "letterbox"))
        if self.mode == "keep_ratio":  # the earlier name of the MMDetection pipeline mode
            self.mode = "mmdet"
        if self.mode not in ("letterbox", "resize", "mmdet"):
            raise UsageError(f"preprocess must be 'letterbox', 'resize' or 'mmdet', got {self.mode!r}")
        if self.mode == "mmdet" and self.post != "mmdet":
            raise UsageError("preprocess 'mmdet' is MMDetection's pipeline: it needs an MMDetection model")
        in_hw = [int(v) for v in (getattr(m, "input_size", None) or [640, 640])]
        self._imgsz_given = imgsz is not None
        if imgsz is None:
            self.imgsz = in_hw
        elif np.isscalar(imgsz):
            self.imgsz = [int(imgsz), int(imgsz)]
        else:
            self.imgsz = [int(v) for v in imgsz][:2]
        if min(self.imgsz) < 1:
            raise UsageError(f"imgsz must be positive, got {imgsz}")
        if not (0.0 <= float(conf) <= 1.0 and 0.0 <= float(iou) <= 1.0):
            raise UsageError(f"conf and iou must lie in [0, 1], got conf={conf}, iou={iou}")
        if int(max_det) < 1:
            raise UsageError(f"max_det must be >= 1, got {max_det}")
        self.conf, self.iou, self.max_det = float(conf), float(iou), int(max_det)
        self.classes = None if classes is None else [int(c) for c in classes]
        # Darknet's letter_box=1 models: boxes are corrected for Darknet's square network input
        self.square = bool(square) or self.post == "darknet"
        if resize_interp not in ("darknet", "opencv"):
            raise UsageError(f"resize_interp must be 'darknet' or 'opencv', got {resize_interp!r}")
        self.resize_interp = resize_interp
        from ..eval.data import DECODERS

        if decoder not in DECODERS:
            raise UsageError(f"decoder must be one of {', '.join(DECODERS)}, got {decoder!r}")
        darknet_way = self.post == "darknet" and self.mode == "resize" and resize_interp == "darknet"
        self.decoder = ("stb" if darknet_way else "opencv") if decoder == "auto" else decoder
        self.stride = int(max(getattr(m, "stride", None) or [32]))
        self.backend = backend
        if backend not in ("torch", "onnxruntime"):
            raise UsageError(f"backend must be 'torch' or 'onnxruntime', got {backend!r}")
        if self.post == "mmdet" and backend != "torch":
            raise UsageError("predict runs MMDetection models with their own test_cfg: use backend 'torch'")
        self._runner = None  # made on first use (a fused copy, or an ONNX export)

    @property
    def runner(self):
        if self._runner is None and self.post != "mmdet":
            from ..eval.runner import make_backend

            self._runner = make_backend(self.model, self.backend)
        return self._runner

    # --------------------------------------------------------------- preprocessing
    def preprocess(self, img: np.ndarray):
        """BGR uint8 image -> (model input (1, 3, h, w) float32 RGB [0, 1], function mapping input-pixel
        xyxy to the image), by :func:`zooport.transforms.from_meta` (``purpose="predict"``).

        In ``mmdet`` mode the second item is MMDetection's image meta instead (``img_shape``,
        ``scale_factor``): the model's own ``predict`` clips and maps its boxes back with it."""
        from ..transforms import from_meta

        tf = from_meta(self.pre, mode=self.mode, purpose="predict", imgsz=self.imgsz, shape=tuple(self.imgsz),
                       stride=self.stride, square=self.square, resize_interp=self.resize_interp,
                       mmdet_scale=[max(self.imgsz), min(self.imgsz)] if self._imgsz_given else None)
        x, to_image = tf(img)
        return np.ascontiguousarray(x[None]), to_image

    # --------------------------------------------------------------- post-processing
    def postprocess(self, out, x_shape, to_image, orig_hw) -> np.ndarray:
        """Model output for one image -> (n, 6) x1, y1, x2, y2, score, class in image pixels."""
        import torch

        h0, w0 = orig_hw
        if self.post == "yolov5":
            from ..postprocess import non_max_suppression

            d = non_max_suppression(torch.as_tensor(out), self.conf, self.iou, classes=self.classes,
                                    max_det=self.max_det)[0].numpy()
            if len(d):
                d[:, :4] = to_image(d[:, :4])
            return d.reshape(-1, 6)
        if self.post == "darknet":
            from ..postprocess import darknet_detections

            net_wh = (int(x_shape[3]), int(x_shape[2]))
            rows = darknet_detections(torch.as_tensor(out[0]), net_wh, thresh=self.conf, nms=self.iou,
                                      letter_box=self.mode == "letterbox", image_wh=(w0, h0))
            d = np.array([[(x - w / 2) * w0, (y - h / 2) * h0, (x + w / 2) * w0, (y + h / 2) * h0, p, k]
                          for k, p, x, y, w, h in rows], dtype=np.float32).reshape(-1, 6)
            d[:, [0, 2]] = d[:, [0, 2]].clip(0, w0)  # Darknet's draw_detections clips to the image
            d[:, [1, 3]] = d[:, [1, 3]].clip(0, h0)
        else:  # mmdet: the model's own predict already ran, in original-image pixels (its (n, 6) result)
            d = np.asarray(out, dtype=np.float32).reshape(-1, 6)
            d = d[d[:, 4] >= self.conf]
        if self.classes is not None:
            d = d[np.isin(d[:, 5].astype(np.int64), self.classes)]
        return d[np.argsort(-d[:, 4], kind="stable")][: self.max_det]

    # --------------------------------------------------------------- one image
    def __call__(self, img: np.ndarray, image: str | None = None) -> Detections:
        t0 = time.perf_counter()
        x, to_image = self.preprocess(img)
        t1 = time.perf_counter()
        if self.runner is None:
            import torch

            meta = to_image  # mmdet mode: the image meta, see preprocess()
            with torch.inference_mode():
                out = self.model.predict(torch.from_numpy(x), img_hw=meta["img_shape"],
                                         scale_factor=meta["scale_factor"])[0].float().numpy()
        else:
            out = self.runner(x)
        t2 = time.perf_counter()
        d = self.postprocess(out, x.shape, to_image, img.shape[:2])
        t3 = time.perf_counter()
        return Detections.from_array(d, self.model.names, image=image, shape=tuple(img.shape[:2]),
                                     speed={"preprocess": 1e3 * (t1 - t0), "inference": 1e3 * (t2 - t1),
                                            "postprocess": 1e3 * (t3 - t2)})


def as_image(src, decoder: str = "opencv") -> tuple[np.ndarray, str | None]:
    """A path (decoded by ``decoder``: see :func:`zooport.eval.data.read_image`) or an array (BGR uint8,
    (H, W, 3) or (H, W)) -> (image, path)."""
    if isinstance(src, (str, os.PathLike)):
        from ..eval.data import read_image

        return read_image(src, decoder), str(src)
    a = np.asarray(src)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4) or a.size == 0:
        raise UsageError(f"an image array must be (H, W, 3) BGR, got shape {a.shape}")
    if a.dtype != np.uint8:
        raise UsageError(f"an image array must be uint8 BGR (as cv2.imread gives), got {a.dtype}")
    return np.ascontiguousarray(a[:, :, :3]), None


def decode_ahead(items, decoder: str = "opencv", depth: int = 3):
    """Yield ``(item, future)`` in order, each future decoding ``item`` with :func:`as_image` in one
    background thread up to ``depth`` items ahead, so the next images are read while the current one
    runs (OpenCV's and numpy's decoding release the GIL). ``future.result()`` returns
    ``(image, path)`` or raises the decoding error; ``None`` items are passed through without a future."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="zooport-decode") as pool:
        it, queue = iter(items), deque()

        def fill():
            while len(queue) < depth:
                nxt = next(it, StopIteration)
                if nxt is StopIteration:
                    return
                queue.append((nxt, None if nxt is None else pool.submit(as_image, nxt, decoder)))

        fill()
        while queue:
            item = queue.popleft()
            fill()
            yield item


def predict(model, source, **kw):
    """``zooport.predict(model, image_or_path_or_array, ...)`` -> :class:`Detections` (a list for a list).

    ``model``: a Detector, a MODEL spec for :func:`zooport.load`, or a :class:`Predictor`; keyword
    arguments as for :class:`Predictor` (``imgsz``, ``conf=0.25``, ``iou=0.45``, ``max_det=300``,
    ``classes``, ``square``, ``backend``). Boxes are in original-image pixels.
    """
    pred = model if isinstance(model, Predictor) else Predictor(model, **kw)
    if isinstance(source, (list, tuple)):  # the next images decode while one runs
        return [pred(*fut.result()) for _s, fut in decode_ahead(source, pred.decoder)]
    return pred(*as_image(source, pred.decoder))
