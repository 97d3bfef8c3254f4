"""YOLO26 (end-to-end, reg_max 1) and YOLOv10 (v10Detect) checkpoints written by ultralytics 8.4 itself
(tests/golden/ultralytics, made by scripts/make_golden_ultralytics.py): safe loading of release-style and
trainer-style files, both head branches, the one-to-one top-k output and the final detections of
Ultralytics' predictor, against the reference outputs."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import assert_close

GOLDEN = Path(__file__).resolve().parent / "golden" / "ultralytics"
CASES = [("yolo26n", "yolo26n.pt"), ("yolo26n", "last.pt"), ("yolov10n", "yolov10n.pt")]
IMAGES = ("bus", "zidane")
_CACHE: dict = {}


def _model(name, file):
    key = (name, file)
    if key not in _CACHE:
        from zooport.converters.ultralytics.load import load_ultralytics

        _CACHE[key] = load_ultralytics(GOLDEN / name / file)
    return _CACHE[key]


def _golden(name, img):
    d = dict(np.load(GOLDEN / name / f"{img}.npz"))
    u8 = np.load(GOLDEN / "inputs" / str(d["input_file"]))
    assert bool(d["input_exact"])  # the model input is exactly u8 / 255
    x = torch.from_numpy(u8).permute(2, 0, 1).float().div(255)[None].contiguous()
    return d, x


def _flat(raw):
    return torch.cat([r.reshape(r.shape[0], r.shape[1], -1) for r in raw], 2)


def _match_rows(ours: np.ndarray, ref: np.ndarray, box_tol: float, score_tol: float) -> None:
    """Rows equal in order, except that rows whose scores tie within float noise may swap places."""
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    used = np.zeros(len(ref), bool)
    for i, row in enumerate(ours):
        near = [j for j in range(max(0, i - 3), min(len(ref), i + 4)) if not used[j]
                and abs(ref[j, 4] - row[4]) <= score_tol and ref[j, 5] == row[5]
                and np.abs(ref[j, :4] - row[:4]).max() <= box_tol]
        assert near, f"row {i} {row} has no reference row nearby (ref row {ref[i]})"
        used[near[0]] = True


@pytest.mark.parametrize("name,file", CASES)
def test_reads_8_4_checkpoint(name, file):
    m = _model(name, file)
    info = json.loads((GOLDEN / name / "info.json").read_text())
    assert m.end2end and m.names == info["names"]
    assert m.source["weights"] == ("ema" if file == "last.pt" else "model")
    assert m.source["version"] == info["versions"]["ultralytics"]
    assert sum(p.numel() for p in m.parameters()) == info["params"]
    assert m.detect.reg_max == (1 if name == "yolo26n" else 16)


def test_trainer_checkpoint_holds_the_release_weights():
    a, b = _model("yolo26n", "yolo26n.pt").state_dict(), _model("yolo26n", "last.pt").state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("name,file", CASES)
@pytest.mark.parametrize("img", IMAGES)
def test_both_branches_and_decoded_match_ultralytics(name, file, img):
    m = _model(name, file)
    d, x = _golden(name, img)
    with torch.no_grad():
        for branch in ("one2many", "one2one"):
            out = _flat(m.raw(x, branch))
            nb = d[f"raw.{branch}.boxes"].shape[1]
            assert_close(out[:, :nb], d[f"raw.{branch}.boxes"], 1e-4, f"{name} {img} {branch} boxes")
            assert_close(out[:, nb:], d[f"raw.{branch}.scores"], 1e-4, f"{name} {img} {branch} scores")
        assert_close(m.decoded(x), d["decoded"], 1e-4, f"{name} {img} decoded")
        e2e = m.end2end_output(x)
    assert e2e.shape == (1, 300, 6)
    ref = d["e2e.decoded"][0]
    _match_rows(e2e[0].numpy(), ref, 1e-4 * max(1.0, float(np.abs(ref[:, :4]).max())), 1e-5)


@pytest.mark.parametrize("name,file", CASES)
@pytest.mark.parametrize("img", IMAGES)
def test_final_detections_match_predict(name, file, img):
    """Ultralytics' predictor (conf 0.25, iou 0.7): one-to-many + NMS (default) and nms=False (one-to-one)."""
    from zooport.postprocess import filter_end2end, non_max_suppression_anchor_free
    from zooport.postprocess.ultralytics import scale_boxes

    m = _model(name, file)
    d, x = _golden(name, img)
    with torch.no_grad():
        nms = non_max_suppression_anchor_free(m.decoded(x), 0.25, 0.7, multi_label=False)[0]
        e2e = filter_end2end(m.end2end_output(x), 0.25)[0]
    for v, dets in (("nms", nms), ("e2e", e2e)):
        ref = d[f"{v}.boxes"]
        dets = dets.clone()
        dets[:, :4] = scale_boxes(x.shape[2:], dets[:, :4], d[f"{v}.orig_shape"])
        assert dets.shape == ref.shape, (v, dets.shape, ref.shape)
        ours = dets.numpy()
        assert np.abs(ours[:, :4] - ref[:, :4]).max(initial=0) < 0.01, v
        assert np.abs(ours[:, 4] - ref[:, 4]).max(initial=0) < 1e-4, v
        assert np.array_equal(ours[:, 5], ref[:, 5]), v


@pytest.mark.parametrize("name", ["yolo26n", "yolov10n"])
def test_outputs_depend_on_the_image(name):
    """A constant grey input moves every output far beyond the 1e-4 parity tolerance (the weights are not
    degenerate), as the generator recorded and as the native model shows."""
    m = _model(name, f"{name}.pt")
    info = json.loads((GOLDEN / name / "info.json").read_text())
    _, x = _golden(name, "bus")
    with torch.no_grad():
        a, b = m.decoded(x), m.decoded(torch.full_like(x, 114 / 255))
    tol = 1e-4 * max(1.0, float(a.abs().max()))
    assert float((a - b).abs().max()) > 100 * tol
    rec = info["grey_vs_image"]["bus"]
    assert all(v["max_abs_diff"] > 100 * 1e-4 * max(1.0, v["rms_out"]) for v in rec.values())
