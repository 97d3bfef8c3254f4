"""The ``zooport predict`` loop: every source through a :class:`~zooport.inference.api.Predictor`, outputs written.

An input that cannot be read (missing, not an image, broken video) is recorded in ``failed`` and skipped;
everything else is still processed and written.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DatasetError
from .outputs import Names, write_image, write_json, write_text
from .sources import VideoOut, expand_sources, read_frames


def _summary(n_img: int, n_frames: int, n_det: int, speeds: list, pred) -> str:
    s = np.array([[d["preprocess"], d["inference"], d["postprocess"]] for d in speeds]).reshape(-1, 3)
    m = s.mean(0) if len(s) else np.zeros(3)
    what = f"{n_img} image{'s' * (n_img != 1)}" + (f", {n_frames} video frames" if n_frames else "")
    return (f"{what}, {n_det} detections; speed per image: {m[0]:.1f} ms preprocess, {m[1]:.1f} ms inference, "
            f"{m[2]:.1f} ms postprocess ({pred.backend}, {pred.mode})")


def run_sources(pred, words, out_dir, *, draw=True, save_json=False, save_txt=False, save_conf=False,
                ext="png", progress=False) -> dict:
    """Predict on every source word (files, folders, globs, videos); write into ``out_dir``.

    Returns ``{"results": [Detections...], "failed": [{"path", "error"}], "summary": str, "written": [paths]}``.
    """
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    from .api import decode_ahead

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if save_txt:
        (out_dir / "labels").mkdir(exist_ok=True)
    ext = "." + ext.lstrip(".").lower()
    names = Names()
    srcs = expand_sources(words)
    results, failed, written, speeds = [], [], [], []
    n_img = n_frames = 0
    # Images are decoded ahead in one thread and drawn + encoded + written behind in another, so
    # the model runs while the next image is read and the last one is saved (outputs in order).
    writer = ThreadPoolExecutor(1, thread_name_prefix="zooport-write")
    pending: list = []
    images = (s.path if s.kind == "image" else None for s in srcs)
    try:
        for src, (_p, fut) in zip(tqdm(srcs, desc="predict", unit="file", disable=not progress, leave=False),
                                 decode_ahead(images, pred.decoder)):
            if src.kind == "missing":
                failed.append({"path": str(src.path), "error": "no such file, or no image/video in it"})
                continue
            stem = names(src.path.stem)
            try:
                if src.kind == "video":
                    got = _video(pred, src.path, out_dir, stem, draw, save_txt, save_conf, written)
                    n_frames += len(got)
                else:
                    img, path = fut.result()
                    d = pred(img, path)
                    if draw:
                        written.append(out_dir / (stem + ext))
                    pending.append(writer.submit(_save, d, img, written[-1] if draw else None,
                                                 out_dir / "labels" / f"{stem}.txt" if save_txt else None, save_conf))
                    while len(pending) > 4:  # bound the images held for writing
                        pending.pop(0).result()
                    got = [d]
                    n_img += 1
            except DatasetError as e:
                failed.append({"path": str(src.path), "error": str(e).removeprefix(f"{src.path}: ")})
                continue
            results.extend(got)
            speeds.extend(d.speed for d in got)
        for f in pending:
            f.result()  # a write that failed raises here, as it would have inline
    finally:
        writer.shutdown(wait=True, cancel_futures=True)
    if save_json:
        written.append(out_dir / "predictions.json")
        write_json(written[-1], [d.to_json() for d in results])
    summary = _summary(n_img, n_frames, sum(len(d) for d in results), speeds, pred)
    return {"results": results, "failed": failed, "summary": summary, "written": written}


def _save(d, img, image_path, txt_path, save_conf) -> None:
    """Draw and write one image's outputs (the writer thread)."""
    if image_path is not None:
        write_image(image_path, d.draw(img))
    if txt_path is not None:
        write_text(txt_path, d.to_yolo_txt(save_conf))


def _video(pred, path, out_dir, stem, draw, save_txt, save_conf, written) -> list:
    frames = read_frames(path)
    fps, size, _count = next(frames)
    vout = VideoOut(out_dir / f"{stem}.mp4", fps, size) if draw else None
    got = []
    try:
        for k, frame in enumerate(frames):
            d = pred(frame, f"{path}#{k}")
            got.append(d)
            if vout is not None:
                vout.write(d.draw(frame))
            if save_txt:
                write_text(out_dir / "labels" / f"{stem}_{k}.txt", d.to_yolo_txt(save_conf))
    except BaseException:
        if vout is not None:
            vout.abort()
        raise
    if vout is not None:
        vout.close()
        written.append(out_dir / f"{stem}.mp4")
    return got
