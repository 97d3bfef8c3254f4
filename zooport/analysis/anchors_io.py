"""Outputs of ``zooport analyze anchors``: the scatter plot and new anchors written into a cfg / yaml."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .._io import atomic_write
from ..errors import UsageError


def plot_anchors(path, wh, anchors=None, kmeans=None, title: str = "") -> None:
    """Scatter of box sizes (log-log) with the given anchors and the k-means anchors, as a PNG."""
    from .plotting import figure, save

    fig, ax = figure(6, 5)
    ax.scatter(wh[:, 0], wh[:, 1], s=4, alpha=0.35, color="0.4", label=f"boxes ({len(wh)})")
    if anchors is not None:
        ax.scatter(*np.asarray(anchors).T, marker="x", s=70, color="tab:red", label="anchors")
    if kmeans is not None:
        ax.scatter(*np.asarray(kmeans).T, marker="+", s=90, color="tab:blue", label="k-means anchors")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("box width (input pixels)")
    ax.set_ylabel("box height (input pixels)")
    ax.set_title(title or "box sizes and anchors")
    ax.legend(loc="upper left")
    save(fig, path)


def _fmt(k) -> str:
    return ", ".join(f"{int(round(w))},{int(round(h))}" for w, h in np.asarray(k).reshape(-1, 2))


def write_darknet_cfg(cfg_path, out_path, anchors) -> int:
    """Copy of the cfg with every head's ``anchors=`` line replaced (rounded to whole pixels); returns the
    number of lines replaced. The anchor count must equal each head's ``num``."""
    text = Path(cfg_path).read_text()
    n = len(np.asarray(anchors).reshape(-1, 2))
    nums = [int(v) for v in re.findall(r"(?m)^\s*num\s*=\s*(\d+)", text)]
    if nums and any(v != n for v in nums):
        raise UsageError(f"{cfg_path}: heads have num={sorted(set(nums))} anchors but {n} were computed; use -n")
    new, count = re.subn(r"(?m)^(\s*anchors\s*=).*$", lambda m: f"{m.group(1)} {_fmt(anchors)}", text)
    if not count:
        raise UsageError(f"{cfg_path}: no 'anchors=' line to replace")
    with atomic_write(out_path, "w") as f:
        f.write(new)
    return count


def write_yolov5_yaml(model, out_path, anchors) -> None:
    """The YOLOv5 model yaml (``native_arch()["yaml"]``) with ``anchors`` replaced, one row per level."""
    import yaml

    arch = model.native_arch()
    y = dict(arch["yaml"])
    levels = len(model.anchors or [])
    k = np.asarray(anchors).reshape(-1, 2)
    if not levels or len(k) % levels:
        raise UsageError(f"{len(k)} anchors cannot be split over the model's {levels} levels")
    per = len(k) // levels
    y["anchors"] = [[int(round(v)) for v in k[i * per:(i + 1) * per].ravel()] for i in range(levels)]
    with atomic_write(out_path, "w") as f:
        yaml.safe_dump(y, f, sort_keys=False, default_flow_style=None)
