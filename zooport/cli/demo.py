"""``zooport demo``: the whole pipeline offline in a few seconds, with a parity report.

Bundled Darknet yolov3-tiny cfg -> deterministic random weights (seed 0,
written in Darknet's layout) -> ``load_darknet`` -> native checkpoint ->
reload -> ``.weights`` round trip (byte-identical) -> ONNX export (default,
raw and --nms) -> onnxruntime, compared with PyTorch output by output.
Exit status 1 when any check fails. No network, no external assets.
"""
from __future__ import annotations

SEED = 0
REL_TOL = 1e-4


def register(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="offline end-to-end demo: cfg -> weights -> native -> ONNX -> onnxruntime parity",
        description="Build yolov3-tiny from the bundled Darknet cfg with seeded random weights, convert it "
        "(Darknet -> native checkpoint -> Darknet, byte-identical), export ONNX and compare onnxruntime with "
        "PyTorch (tolerance 1e-4*max(1,max|ref|) per output). Exits 1 if a check fails.",
    )
    p.add_argument("-o", "--output", metavar="DIR",
                   help="keep the generated files in DIR (created if missing; default: a temp dir, removed)")
    p.add_argument("--imgsz", type=int, default=416, help="input size (default 416, multiple of 32)")
    p.set_defaults(func=_run)


def bundled_cfg():
    """The Darknet cfg the demo uses (shipped in zooport/cfgs/darknet)."""
    from pathlib import Path

    from ..errors import UsageError

    p = Path(__file__).resolve().parent.parent / "cfgs" / "darknet" / "yolov3-tiny.cfg"
    if not p.is_file():
        raise UsageError(f"{p}: bundled cfg missing (broken installation?)")
    return p


def randomize_(model, seed: int = SEED) -> None:
    """Seeded random parameters in place (:func:`zooport.model_defs.random_init.randomize_`)."""
    from ..model_defs.random_init import randomize_ as _randomize

    _randomize(model, seed)


class _Report:
    def __init__(self):
        import time

        self.ok = True
        self._t = time.perf_counter()
        self.t0 = self._t

    def step(self, what: str, ok: bool = True, detail: str = "") -> None:
        import time

        now = time.perf_counter()
        self.ok &= ok
        print(f"  [{'ok  ' if ok else 'FAIL'}] {what:<44s} {now - self._t:6.2f} s  {detail}")
        self._t = now


def _run(args) -> int:
    import tempfile
    from pathlib import Path

    from ..errors import UsageError
    from ._args import imgsz

    imgsz(args.imgsz, max_len=1)
    if args.imgsz < 32 or args.imgsz % 32:
        raise UsageError(f"--imgsz must be a positive multiple of 32, got {args.imgsz}")
    if args.output:
        out = Path(args.output)
        out.mkdir(parents=True, exist_ok=True)
        return _demo(out, args.imgsz)
    with tempfile.TemporaryDirectory(prefix="zooport-demo-") as d:
        return _demo(Path(d), args.imgsz)


def _demo(out, imgsz: int) -> int:
    import numpy as np
    import torch

    from .._io import sha256_file
    from ..converters.darknet.load import load_darknet, save_darknet_weights
    from ..converters.native import load_native, save_native
    from ..export.checks import compare, compare_nms, ort_session, run_ort, torch_reference
    from ..export.onnx import export_onnx
    from ..postprocess import non_max_suppression

    cfg = bundled_cfg()
    print(f"zooport demo: {cfg.name}, seeded random weights (seed {SEED}), input {imgsz}x{imgsz}, files in {out}")
    rep = _Report()
    model = load_darknet(cfg, random_weights=True, seed=SEED)  # on purpose: the demo needs no download
    w1 = out / "yolov3-tiny.weights"
    save_darknet_weights(model, w1)
    rep.step("random weights -> Darknet .weights", True, f"{w1.stat().st_size:,} bytes")

    dk = load_darknet(cfg, w1).eval()
    rep.step("load_darknet(cfg, weights)")
    ckpt = out / "yolov3-tiny.safetensors"
    save_native(dk, ckpt)
    native = load_native(ckpt).eval()
    x = np.random.default_rng(SEED).random((1, 3, imgsz, imgsz), dtype=np.float32)
    with torch.no_grad():
        a, b = dk(torch.from_numpy(x)), native(torch.from_numpy(x))
    rep.step("native checkpoint -> reload (outputs identical)", torch.equal(a, b), ckpt.name)

    w2 = out / "yolov3-tiny.roundtrip.weights"
    save_darknet_weights(native, w2)
    same = sha256_file(w1) == sha256_file(w2)
    rep.step("native -> .weights (byte-identical)", same, f"sha256 {sha256_file(w2)[:16]}")

    for mode, kw in (("default", {}), ("raw", {"raw": True}), ("nms", {"nms": True, "conf": 0.1})):
        path = export_onnx(native, out / f"yolov3-tiny.{mode}.onnx", imgsz=imgsz, **kw)
        rep.step(f"export ONNX ({mode})", True, f"{path.stat().st_size / 1e6:.2f} MB")
        sess = ort_session(path)
        ours = run_ort(sess, x)
        rep.step(f"onnxruntime run ({mode})")
        refs = torch_reference(native, x, mode, conf=0.1)
        for r in (compare_nms if mode == "nms" else compare)(ours, refs, REL_TOL):
            rep.step(f"  parity {mode}:{r.name} {r.shape}", r.ok, f"max abs err {r.max_abs_err:.3g} "
                     f"(tol {r.tol:.3g})")
        if mode == "nms":
            with torch.no_grad():
                dets = non_max_suppression(native(torch.from_numpy(x)), 0.1, 0.45)[0].numpy()
            n = len(dets)
            ref4 = [np.array([[n]]), np.zeros((1, 300, 4), np.float32), np.zeros((1, 300), np.float32),
                    np.zeros((1, 300), np.int64)]
            ref4[1][0, :n], ref4[2][0, :n], ref4[3][0, :n] = dets[:, :4], dets[:, 4], dets[:, 5]
            bad = [r.name for r in compare_nms(ours, ref4, REL_TOL) if not r.ok]
            rep.step("  in-graph NMS == zooport non_max_suppression", not bad,
                     f"{n} detections" + (f", differs in {bad}" if bad else ""))
    total = rep._t - rep.t0
    print(f"zooport demo: {'PASS' if rep.ok else 'FAIL'} in {total:.1f} s")
    return 0 if rep.ok else 1
