"""Oracle goldens for MMDetection's own config files (issue 24): what MMDetection 3.3.0 builds from each.

Runs in the ORACLE venv (MMDetection 3.3.0 + mmcv 2.1.0 with CPU ops + mmengine 0.10.7), never in zooport's:

    /work/oracle/mmdet-venv/bin/python scripts/make_golden_mmdet_configs.py \
        --trees 3.3.0=/work/oracle/configs/3.3.0 2.28.2=/work/oracle/configs/2.28.2 --out tests/golden

The config trees are the ``mmdet/.mim/configs`` folders of the wheels ``mmdet-3.3.0-py3-none-any.whl`` and
``mmdet-2.28.2-py3-none-any.whl`` (``pip download --no-deps mmdet==3.3.0``); they are not stored in git.

For every ``*.py`` directly inside each family folder (FAMILIES): ``mmengine.Config.fromfile``, then the model
dict with every ``init_cfg`` and ``pretrained`` set to None (no weight download; a detector-level ``pretrained``
key, which 2.x configs carry and 3.x detectors do not accept, is removed), then ``mmdet.registry.MODELS.build``.
All configs are built in one process, one after another (building leaves no state that changes the next build).

Writes into ``--out``:

* ``mmdet_configs.tsv``: tree, config (path inside the tree), status (``ok`` or ``error: Type: message``, the
  stage that failed first: ``config:`` for Config.fromfile, ``build:`` for MODELS.build), model type, number of
  state-dict entries, number of parameters (sum of numel over ``parameters()``), and the sha256 of the sorted
  ``key<TAB>shape`` lines (shape as comma-separated ints, empty for 0-d), joined by newlines.
* ``mmdet_configs/keys.json.xz``: {sha256: [[key, [shape...]], ...]} for each distinct key list.
* ``mmdet_configs/models.json.xz``: {tree/config: resolved model dict as mmengine reads it (``cfg.model``,
  before the init_cfg/pretrained changes; tuples become lists)} for every config that mmengine could read.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import sys
import time
from pathlib import Path

FAMILIES = ("retinanet yolo yolox fcos atss ghm gfl pisa paa faster_rcnn cascade_rcnn libra_rcnn dynamic_rcnn ssd "
            "vfnet guided_anchoring sabl reppoints cornernet centripetalnet dcn dcnv2 gn gn+ws regnet res2net "
            "hrnet").split()


def _strip_init(obj, top=True):
    """init_cfg / pretrained -> None everywhere (pretrained removed at detector level)."""
    if isinstance(obj, dict):
        for k in list(obj):
            if k == "pretrained" and top:
                del obj[k]
            elif k in ("init_cfg", "pretrained"):
                obj[k] = None
            else:
                _strip_init(obj[k], False)
    elif isinstance(obj, list):
        for v in obj:
            _strip_init(v, False)


def _build_one(path: str) -> dict:
    """Build one config and return its record."""
    import torch
    from mmengine.config import Config

    torch.set_num_threads(1)
    rec = {"status": "ok", "type": "", "nkeys": 0, "nparams": 0, "sha": "", "keys": None, "model": None}
    try:
        cfg = Config.fromfile(path)
        model_cfg = cfg.to_dict()["model"]
    except Exception as e:  # recorded, not raised: the oracle's verdict on this file
        rec["status"] = f"error: config: {type(e).__name__}: {e}"
        return rec
    rec["model"] = model_cfg
    rec["type"] = str(model_cfg.get("type", ""))
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    register_all_modules(init_default_scope=True)
    import copy

    build_cfg = copy.deepcopy(model_cfg)
    _strip_init(build_cfg)
    try:
        model = MODELS.build(build_cfg)
    except Exception as e:
        rec["status"] = f"error: build: {type(e).__name__}: {e}"
        return rec
    sd = model.state_dict()
    keys = sorted([k, list(v.shape)] for k, v in sd.items())
    lines = "\n".join(f"{k}\t{','.join(map(str, s))}" for k, s in keys)
    rec.update(nkeys=len(keys), nparams=int(sum(p.numel() for p in model.parameters())),
               sha=hashlib.sha256(lines.encode()).hexdigest(), keys=keys)
    return rec


def _clean(s: str) -> str:
    return " ".join(str(s).split())[:300]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--trees", nargs="+", required=True, help="NAME=DIR of an mmdet/.mim/configs tree")
    ap.add_argument("--out", default="tests/golden")
    ap.add_argument("--families", nargs="*", default=list(FAMILIES))
    args = ap.parse_args()
    import mmcv
    import mmdet
    import mmengine
    import torch

    out = Path(args.out)
    (out / "mmdet_configs").mkdir(parents=True, exist_ok=True)
    rows, key_lists, models = [], {}, {}
    t0 = time.time()
    for spec in args.trees:
        name, root = spec.split("=", 1)
        for fam in args.families:
            for f in sorted(Path(root, fam).glob("*.py")):
                rel = f"{fam}/{f.name}"
                rec = json.loads(json.dumps(_build_one(str(f)), default=list))  # tuples -> lists
                if rec["keys"] is not None:
                    key_lists[rec["sha"]] = rec["keys"]
                if rec["model"] is not None:
                    models[f"{name}/{rel}"] = rec["model"]
                rows.append([name, rel, _clean(rec["status"]), rec["type"], str(rec["nkeys"]), str(rec["nparams"]),
                             rec["sha"]])
                print(f"{time.time() - t0:7.1f}s {name} {rel} {rows[-1][2][:100]}", flush=True)
    header = ["tree", "config", "status", "model_type", "nkeys", "nparams", "keys_sha256"]
    with open(out / "mmdet_configs.tsv", "w") as fh:
        fh.write(f"# oracle: mmdet {mmdet.__version__}, mmcv {mmcv.__version__}, mmengine {mmengine.__version__}, "
                 f"torch {torch.__version__}, python {sys.version.split()[0]}\n")
        fh.write("\t".join(header) + "\n")
        for row in rows:
            fh.write("\t".join(row) + "\n")
    for fname, obj in (("keys.json.xz", key_lists), ("models.json.xz", models)):
        with lzma.open(out / "mmdet_configs" / fname, "wt", preset=9 | lzma.PRESET_EXTREME) as fh:
            json.dump(obj, fh, sort_keys=True, separators=(",", ":"))
    print(f"{len(rows)} configs, {sum(r[2] == 'ok' for r in rows)} built, {len(key_lists)} distinct key lists, "
          f"{time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
