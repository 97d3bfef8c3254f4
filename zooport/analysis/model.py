"""``analyze_model``: the per-layer table, totals, head receptive fields and (optionally) timing."""
from __future__ import annotations

from .flops import analyze_layers
from .receptive import receptive_fields


def analyze_model(model, imgsz=None, *, convention: str | None = None, timing: bool = False,
                  backends=("eager", "fused", "onnxruntime"), warmup: int = 2, repeats: int = 10) -> dict:
    """``{"params": int, "flops": float, "convention", "imgsz", "layers": [{"index", "type", "shape",
    "params", "flops"}], "heads": [{"layer", "stride", "receptive_field"}], "timing": {...}}``
    (``timing`` only when asked; see :mod:`zooport.analysis.flops` for the FLOPs conventions)."""
    res = analyze_layers(model, imgsz, convention)
    res["heads"] = [{k: r[k] for k in ("layer", "stride", "receptive_field")} for r in receptive_fields(model)]
    if timing:
        from .timing import time_backends

        res["timing"] = time_backends(model, res["imgsz"], backends, warmup, repeats)
    return res


def format_table(res: dict) -> str:
    """The report as text: one row per layer, totals, heads, timing."""
    def shp(s):
        if s is None:
            return "-"
        if s and isinstance(s[0], list):
            return " ".join("x".join(map(str, v)) if isinstance(v, list) else str(v) for v in s)
        return "x".join(map(str, s))

    lines = [f"{'layer':>14} {'type':<18} {'output':<22} {'params':>11} {'GFLOPs':>10}"]
    for r in res["layers"]:
        lines.append(f"{str(r['index']):>14} {r['type'][:18]:<18} {shp(r['shape'])[:22]:<22} {r['params']:>11,} "
                     f"{r['flops'] / 1e9:>10.3f}")
    lines.append(f"total: {res['params']:,} parameters, {res['flops'] / 1e9:.3f} GFLOPs at {res['imgsz'][0]}x"
                 f"{res['imgsz'][1]} ({res['convention']} convention)")
    for h in res.get("heads", []):
        lines.append(f"head {h['layer']}: stride {h['stride']}, receptive field {h['receptive_field']} px")
    for b, t in (res.get("timing") or {}).items():
        if "error" in t:
            lines.append(f"time {b}: {t['error']}")
        else:
            lines.append(f"time {b}: median {t['median_ms']:.1f} ms (min {t['min_ms']:.1f}, max {t['max_ms']:.1f}, "
                         f"IQR {t['iqr_ms']:.1f}; {t['repeats']} runs)")
    return "\n".join(lines)
