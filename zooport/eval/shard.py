"""Shard partials: make, write, read, merge, and torch.distributed gathering (scoring: :mod:`.score`).

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
from .score import score

FORMAT_KEY = "zooport_verify_partial"
RUN_ONLY = ("backend", "device")


# ----------------------------------------------------------------------------- partials


def make_partial(shard, settings, model_info, ds, plan, run) -> dict:
    keys = [ds.images[i].key for idx, _ in plan.batches for i in idx]
    dets = [[k, np.asarray(run["detections"][k], np.float64).tolist()] for k in keys if k in run["detections"]]
    return {FORMAT_KEY: 1, "partial": True, "shard": list(shard), "settings": settings, "model": model_info,
            "dataset": ds.describe(), "images": keys, "detections": dets, "skipped": run["skipped"],
            "timing": run["timing"], "speed": run.get("speed", {})}


def write_json(obj, path) -> None:
    """``obj`` as JSON, atomically; a VerifyResult as its shard ``partial`` if it has one, else ``to_dict()``."""
    from .._io import atomic_write

    if hasattr(obj, "to_dict"):
        obj = obj.partial if obj.partial is not None else obj.to_dict()
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
            # where a shard ran (backend, device) may differ; what it computed may not
            a = {k: v for k, v in p[key].items() if k not in RUN_ONLY} if key == "settings" else p[key]
            b = {k: v for k, v in ref[key].items() if k not in RUN_ONLY} if key == "settings" else ref[key]
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
    from .result import VerifyResult

    speed = {k: float(np.mean([p.get("speed", {}).get(k, 0.0) for p in parts])) for k in ("preprocess", "inference", "nms")}
    return VerifyResult.from_score(score(ds, dets, ref["model"], ref["settings"], skipped), merged_shards=n,
                                   speed=speed)


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
