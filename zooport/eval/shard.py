"""Scoring of collected detections, and shard partials: make, write, read, merge, torch.distributed.

A partial (``--shard I/N``) is a JSON object::

    {"zooport_verify_partial": 1, "shard": [I, N], "settings": {...}, "model": {...},
     "dataset": {kind, root, ann | year, split, images}, "images": [keys run],
     "detections": [[key, [[x1, y1, x2, y2, score, class], ...]], ...], "skipped": [...]}

Boxes are original-image pixels, floats written with full precision (repr),
so merging N partials scores exactly like one unsharded run.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import DatasetError, UsageError

FORMAT_KEY = "zooport_verify_partial"


def check_mapping(ds, names, class_map) -> None:
    """Fail early (before inference) when the model's classes cannot be scored on ``ds``."""
    if ds.kind == "coco":
        from .coco import category_ids

        category_ids(names, ds, class_map)
    else:
        _voc_targets(ds, names, class_map)


def _voc_targets(ds, names, class_map) -> list:
    from .classmap import resolve_class_map

    if class_map is None:
        if not set(names) & set(ds.names):
            raise DatasetError(f"{ds.root}: none of the model's class names is a VOC class of this split; "
                               "pass --class-map (e.g. coco-voc)")
        return list(names)
    return resolve_class_map(class_map, names, ds.names)


def _round_dets(d: np.ndarray, post: str) -> np.ndarray:
    """The detections as the reference pipeline writes them (COCO JSON rounding), back as xyxy."""
    from .coco import ROUNDING

    bd, sd = ROUNDING[post]
    d = np.asarray(d, np.float64).reshape(-1, 6).copy()
    x1, y1 = np.round(d[:, 0], bd), np.round(d[:, 1], bd)
    w, h = np.round(d[:, 2] - d[:, 0], bd), np.round(d[:, 3] - d[:, 1], bd)
    d[:, 0], d[:, 1], d[:, 2], d[:, 3] = x1, y1, x1 + w, y1 + h
    d[:, 4] = np.round(d[:, 4], sd)
    return d


def score(ds, detections: dict, model_info: dict, settings: dict, skipped: list) -> dict:
    """Score ``detections`` (image key -> (n, 6)) on ``ds``; returns the verify result dict."""
    names = model_info["names"]
    skipped_keys = {s["image"] for s in skipped}
    keys = [r.key for r in ds.images if r.key not in skipped_keys]
    if ds.kind == "coco":
        from .coco import ROUNDING, category_ids, results_json, score_coco

        cat_ids = category_ids(names, ds, settings.get("class_map"))
        results = results_json({k: detections.get(k, np.zeros((0, 6))) for k in keys}, cat_ids,
                               ROUNDING[settings["postprocess"]])
        sc = score_coco(ds.ann_file, results, keys)
        ndet = len(results)
    else:
        from .voc import score_voc, to_voc_box

        targets = _voc_targets(ds, names, settings.get("class_map"))
        vdets, ndet = {}, 0
        for k in keys:
            lst = []
            for x1, y1, x2, y2, s, c in _round_dets(detections.get(k, np.zeros((0, 6))), settings["postprocess"]):
                t = targets[int(c)]
                if t is not None:
                    lst.append((t, float(s), to_voc_box(x1, y1, x2, y2)))
            vdets[k] = lst
            ndet += len(lst)
        sc = score_voc({k: ds.objects[k] for k in keys}, vdets, ds.names)
        sc = {"metrics": {"mAP_voc07": sc["mAP_voc07"], "mAP_voc10": sc["mAP_voc10"]}, "per_class": sc["per_class"]}
    info = {k: v for k, v in model_info.items() if k != "names"}
    info["num_classes"] = len(names)
    return {"metrics": sc["metrics"], "per_class": sc["per_class"], "settings": settings, "model": info,
            "dataset": ds.describe(), "images": len(keys), "detections": ndet, "skipped": list(skipped)}


# ----------------------------------------------------------------------------- partials


def make_partial(shard, settings, model_info, ds, plan, run) -> dict:
    keys = [ds.images[i].key for idx, _ in plan.batches for i in idx]
    dets = [[k, np.asarray(run["detections"][k], np.float64).tolist()] for k in keys if k in run["detections"]]
    return {FORMAT_KEY: 1, "partial": True, "shard": list(shard), "settings": settings, "model": model_info,
            "dataset": ds.describe(), "images": keys, "detections": dets, "skipped": run["skipped"],
            "timing": run["timing"]}


def write_json(obj, path) -> None:
    from .._io import atomic_write

    with atomic_write(path, "w") as f:
        json.dump(obj, f)


def read_partial(path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{p}: partial result file does not exist")
    try:
        obj = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"{p}: not a JSON partial result ({e})") from None
    if not isinstance(obj, dict) or obj.get(FORMAT_KEY) != 1:
        raise DatasetError(f"{p}: not a zooport verify partial (written by 'zooport verify --shard I/N --json FILE')")
    obj["_path"] = str(p)
    return obj


def _dataset_from(desc: dict):
    from .data import load_coco, load_voc

    if desc["kind"] == "coco":
        return load_coco(desc["root"], desc["ann"])
    return load_voc(desc["root"], desc["year"], desc["split"])


def merge_partials(parts: list, dataset=None) -> dict:
    if not parts:
        raise UsageError("--merge needs at least one partial result file")
    ref = parts[0]
    n = int(ref["shard"][1])
    where = lambda p: p.get("_path", f"shard {p['shard'][0]}/{p['shard'][1]}")  # noqa: E731
    seen = {}
    for p in parts:
        i, pn = (int(v) for v in p["shard"])
        if pn != n:
            raise UsageError(f"{where(p)}: shard {i}/{pn} does not belong to a {n}-shard run")
        if i in seen:
            raise UsageError(f"{where(p)}: shard {i}/{n} given twice (also {where(seen[i])})")
        seen[i] = p
        for key in ("settings", "model", "dataset"):
            a = {k: v for k, v in p[key].items() if k != "backend"} if key == "settings" else p[key]
            b = {k: v for k, v in ref[key].items() if k != "backend"} if key == "settings" else ref[key]
            if a != b:
                raise UsageError(f"{where(p)}: its {key} differ from {where(ref)}'s: partials of different runs")
    missing = sorted(set(range(n)) - set(seen))
    if missing:
        raise UsageError(f"--merge: shards {', '.join(f'{i}/{n}' for i in missing)} are missing")
    ds = dataset or _dataset_from(ref["dataset"])
    dets, skipped = {}, []
    for i in range(n):
        p = seen[i]
        for k, d in p["detections"]:
            dets[k] = np.asarray(d, np.float64).reshape(-1, 6)
        skipped.extend(p["skipped"])
    known = {r.key for r in ds.images}
    ran = {k for p in parts for k in p["images"]}
    if ran != known:
        raise UsageError(f"--merge: the partials cover {len(ran)} images, the dataset has {len(known)}")
    res = score(ds, dets, ref["model"], ref["settings"], skipped)
    res["merged_shards"] = n
    return res


# ----------------------------------------------------------------------------- torch.distributed


def dist_init() -> dict:
    """Join the torchrun process group (gloo) if not already joined; rank = shard index."""
    import torch.distributed as dist

    owned = not dist.is_initialized()
    if owned:
        dist.init_process_group(backend="gloo")
    return {"rank": dist.get_rank(), "world": dist.get_world_size(), "owned": owned}


def dist_gather(part: dict, ctx: dict) -> list:
    """Every rank's partial, on every rank. A process group this module created is torn down here:
    gloo's threads left running at interpreter exit abort the process ("terminate called without an
    active exception")."""
    import torch.distributed as dist

    out = [None] * ctx["world"]
    try:
        dist.all_gather_object(out, part)
    finally:
        if ctx.get("owned"):
            dist.destroy_process_group()
    return out
