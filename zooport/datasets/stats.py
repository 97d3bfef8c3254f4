"""``zooport dataset stats``: counts and box/image size distributions, as JSON and PNG plots.

Per box (crowd/difficult boxes counted apart and left out of the distributions): width and height in
pixels, area ``w * h``, aspect ratio ``h / w``, scale ``sqrt(w * h)`` (COCO's small < 32 <= medium < 96 <=
large). Histograms hold ``edges`` (n + 1) and ``counts`` (n); sizes and areas use log-spaced bins.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def _hist(v, bins: int = 30, log: bool = False) -> dict:
    v = np.asarray(v, np.float64)
    v = v[np.isfinite(v) & (v > 0)] if log else v[np.isfinite(v)]
    if not len(v):
        return {"edges": [], "counts": []}
    lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        hi = lo + 1.0
    edges = np.geomspace(lo, hi, bins + 1) if log else np.linspace(lo, hi, bins + 1)
    counts, edges = np.histogram(v, edges)
    return {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}


def _summary(v) -> dict:
    v = np.asarray(v, np.float64)
    if not len(v):
        return {}
    return {"min": float(v.min()), "median": float(np.median(v)), "mean": float(v.mean()), "max": float(v.max())}


def dataset_stats(coco: dict, progress: bool = False) -> dict:
    """Statistics of a COCO dict (:mod:`zooport.datasets.formats`); JSON-serialisable."""
    cats = sorted(coco["categories"], key=lambda c: c["id"])
    counts = {c["id"]: 0 for c in cats}
    crowd = 0
    wh = []
    for a in coco["annotations"]:
        if a.get("iscrowd"):
            crowd += 1
            continue
        counts[a["category_id"]] += 1
        wh.append(a["bbox"][2:4])
    wh = np.asarray(wh, np.float64).reshape(-1, 2)
    w, h = wh[:, 0], wh[:, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        area, ratio, scale = w * h, h / w, np.sqrt(w * h)
    sizes = {}
    for im in coco["images"]:
        k = f"{im['width']}x{im['height']}"
        sizes[k] = sizes.get(k, 0) + 1
    per_img = {}
    for a in coco["annotations"]:
        per_img[a["image_id"]] = per_img.get(a["image_id"], 0) + 1
    iw = np.array([im["width"] for im in coco["images"]], np.float64)
    ih = np.array([im["height"] for im in coco["images"]], np.float64)
    return {
        "images": len(coco["images"]), "instances": int(len(wh)), "crowd_or_difficult": crowd,
        "images_without_boxes": int(sum(1 for im in coco["images"] if im["id"] not in per_img)),
        "per_class": [{"id": c["id"], "name": c["name"], "instances": counts[c["id"]]} for c in cats],
        "scale_groups": {"small": int((area < 32 ** 2).sum()), "medium": int(((area >= 32 ** 2) & (area < 96 ** 2)).sum()),
                         "large": int((area >= 96 ** 2).sum())},
        "summary": {"width": _summary(w), "height": _summary(h), "area": _summary(area), "aspect_ratio_h_w": _summary(ratio),
                    "scale": _summary(scale), "image_width": _summary(iw), "image_height": _summary(ih),
                    "boxes_per_image": _summary([per_img.get(im["id"], 0) for im in coco["images"]])},
        "histograms": {"width": _hist(w, log=True), "height": _hist(h, log=True), "area": _hist(area, log=True),
                       "aspect_ratio_h_w": _hist(ratio, log=True), "scale": _hist(scale, log=True)},
        "image_sizes": dict(sorted(sizes.items(), key=lambda kv: -kv[1])),
        "_wh": wh.tolist(), "_img_wh": np.stack([iw, ih], 1).tolist() if len(iw) else [],
    }


def write_stats(st: dict, out_dir) -> list:
    """``stats.json`` (without the raw size lists), ``classes.png``, ``boxes.png`` (w, h, area, aspect ratio,
    scale histograms and a w-h scatter) and ``images.png`` (image sizes) in ``out_dir``; returns the paths."""
    from ..analysis.plotting import figure, save
    from ..inference.outputs import write_json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "stats.json", {k: v for k, v in st.items() if not k.startswith("_")})
    files = [out / "stats.json"]
    names = [c["name"] for c in st["per_class"]]
    fig, ax = figure(max(6, 0.22 * len(names) + 2), 4)
    ax.bar(range(len(names)), [c["instances"] for c in st["per_class"]], color="tab:blue")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=90, fontsize=7)
    ax.set_ylabel("instances")
    ax.set_title(f"{st['instances']} instances in {st['images']} images")
    save(fig, out / "classes.png")
    files.append(out / "classes.png")
    fig, axes = figure(13, 7, 2, 3)
    for a, key, label in zip(axes.ravel(), ("width", "height", "area", "aspect_ratio_h_w", "scale"),
                             ("box width (px)", "box height (px)", "box area (px²)", "aspect ratio h / w",
                              "scale sqrt(w h) (px)")):
        hst = st["histograms"][key]
        if hst["edges"]:
            e = np.asarray(hst["edges"])
            a.bar(e[:-1], hst["counts"], width=np.diff(e), align="edge", color="tab:blue", edgecolor="white")
            a.set_xscale("log")
        a.set_xlabel(label)
        a.set_ylabel("boxes")
    wh = np.asarray(st["_wh"]).reshape(-1, 2)
    a = axes.ravel()[5]
    a.scatter(wh[:, 0], wh[:, 1], s=3, alpha=0.3, color="0.3")
    if len(wh) and (wh > 0).all():
        a.set_xscale("log")
        a.set_yscale("log")
    a.set_xlabel("box width (px)")
    a.set_ylabel("box height (px)")
    save(fig, out / "boxes.png")
    files.append(out / "boxes.png")
    fig, ax = figure(5, 4)
    iwh = np.asarray(st["_img_wh"]).reshape(-1, 2)
    ax.scatter(iwh[:, 0], iwh[:, 1], s=10, alpha=0.5, color="tab:green")
    ax.set_xlabel("image width (px)")
    ax.set_ylabel("image height (px)")
    ax.set_title(f"{len(st['image_sizes'])} distinct image sizes")
    save(fig, out / "images.png")
    files.append(out / "images.png")
    return files
