"""The R-CNN family (Faster, Cascade, Libra, Dynamic, PISA, SABL) against MMDetection 3.3.0 goldens.

Weights come from each golden folder's ``keys.tsv`` formula: the test writes an MMDetection-style
checkpoint and loads it with the folder's ``config.json`` through ``load_mmdet``.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import assert_close, asset, assets_root, contract_input, formula_checkpoint, read_f32

TWO_STAGE = ["faster_rcnn_r18s_fpn", "cascade_rcnn_r18s_fpn", "libra_faster_rcnn_r18s_fpn", "dynamic_rcnn_r18s_fpn",
             "pisa_faster_rcnn_r18s_fpn", "sabl_faster_rcnn_r18s_fpn"]
_CACHE: dict = {}


def index(folder):
    """name -> (shape, path) from index.txt (``file PATH`` lines point to another folder's tensor)."""
    out = {}
    for line in (folder / "index.txt").read_text().splitlines():
        p = line.split()
        if len(p) > 2 and p[1] == "shape":
            end = p.index("file") if "file" in p else len(p)
            path = (assets_root() / p[end + 1]) if "file" in p else folder / f"{p[0]}.f32"
            out[p[0]] = (tuple(int(v) for v in p[2:end]), path)
    return out


def golden(folder, key):
    shape, path = index(folder)[key]
    return read_f32(path, shape)


def load(name, tmp_path_factory):
    """(folder, model, input, raw outputs), cached per module run (building + raw takes ~1 s)."""
    if name not in _CACHE:
        from zooport.converters.mmdet.load import load_mmdet

        folder = asset(f"golden/mmdet-more/{name}")
        ckpt = formula_checkpoint(folder, tmp_path_factory.mktemp(name))
        model = load_mmdet(ckpt, folder / "config.json")
        x = contract_input(model, torch.from_numpy(read_f32(asset("golden/mmdet/input_bus_256.f32"),
                                                           (1, 3, 256, 256)).copy()))
        with torch.no_grad():
            raw = model.raw(x)
        _CACHE[name] = (folder, model, x, raw)
    return _CACHE[name]


def same_rows(ours, ref, score_col, label_col=None, score_tol=1e-4, perm=False):
    """Row i of ``ours`` equals row i of ``ref`` (box within 0.01 px, score within ``score_tol``, same
    label), except that rows whose scores differ by less than ``score_tol`` may trade places (their order
    is float noise: 1e-7 differences in the logits, e.g. with 2 threads instead of 1). Returns the largest
    box difference (and with ``perm=True`` also ``idx``: ours[idx[i]] matches ref[i]); fails naming the
    first unmatched reference row."""
    assert ours.shape == ref.shape, f"{ours.shape[0]} rows, MMDetection {ref.shape[0]}"
    used = np.zeros(len(ours), bool)
    worst, idx = 0.0, np.zeros(len(ref), np.int64)
    for i, r in enumerate(ref):
        near = np.abs(ours[:, score_col] - r[score_col]) <= score_tol
        ok = (~used) & near & (np.abs(ours[:, :4] - r[:4]).max(1) <= 0.01)
        if label_col is not None:
            ok &= ours[:, label_col] == r[label_col]
        if ok[i]:
            j = i
        else:
            hits = np.nonzero(ok)[0]
            assert hits.size, f"reference row {i} {r.tolist()} has no match"
            j = int(hits[0])
            assert abs(float(ours[i, score_col]) - float(r[score_col])) <= score_tol, f"row {i}: order differs"
        used[j] = True
        idx[i] = j
        worst = max(worst, float(np.abs(ours[j, :4] - r[:4]).max()))
    return (worst, idx) if perm else worst


def check_dets(ours, ref, what):
    """Same count, labels and order (up to near-tied scores); boxes within 0.01 px, scores within 1e-4
    (the file has %.5f)."""
    assert ours.shape == ref.shape, f"{what}: {ours.shape[0]} detections, MMDetection {ref.shape[0]}"
    box = same_rows(ours, ref, score_col=4, label_col=5)
    assert box <= 0.01, f"{what}: boxes differ by {box:.3g} px"
    return box


@pytest.mark.slow
@pytest.mark.parametrize("name", TWO_STAGE)
def test_neck_rpn_proposals(name, tmp_path_factory):
    folder, model, x, raw = load(name, tmp_path_factory)
    with torch.no_grad():
        feats = model.extract_feat(x)
    assert len(feats) == 5
    for i, f in enumerate(feats):
        assert_close(f, golden(folder, f"neck_{i}"), what=f"{name} neck_{i}")
    for i in range(5):
        assert_close(raw[0][i], golden(folder, f"rpn_cls_{i}"), what=f"{name} rpn_cls_{i}")
        assert_close(raw[1][i], golden(folder, f"rpn_reg_{i}"), what=f"{name} rpn_reg_{i}")
    ref = golden(folder, "proposals")
    assert len(raw[2]) == 1 and raw[2][0].shape == ref.shape
    assert same_rows(raw[2][0].numpy(), ref, score_col=4) <= 0.01, f"{name}: proposals differ"


@pytest.mark.slow
@pytest.mark.parametrize("name", TWO_STAGE)
def test_roi_head_outputs(name, tmp_path_factory):
    folder, model, x, raw = load(name, tmp_path_factory)
    # rows follow the proposals; near-tied proposals may trade places (see same_rows)
    _, p = same_rows(raw[2][0].numpy(), golden(folder, "proposals"), score_col=4, perm=True)
    p = torch.from_numpy(p)
    roi = [[t[p] for t in st] for st in raw[3]] if "roi_s0_cls" in index(folder) else \
        [raw[3][0][p], raw[3][1][p] if torch.is_tensor(raw[3][1]) else [t[p] for t in raw[3][1]]]
    sh = index(folder)
    if "roi_s0_cls" in sh:  # cascade: per stage rois / logits / deltas, then the averaged logits
        for s in range(3):
            for j, k in enumerate(["rois", "cls", "reg"]):
                assert_close(roi[s][j], golden(folder, f"roi_s{s}_{k}"), what=f"{name} stage {s} {k}")
        assert_close(model.roi_head.mean_scores(roi), golden(folder, "roi_cls"), what=f"{name} roi_cls")
        assert_close(roi[-1][2], golden(folder, "roi_reg"), what=f"{name} roi_reg")
    elif "roi_reg" in sh:
        assert_close(roi[0], golden(folder, "roi_cls"), what=f"{name} roi_cls")
        assert_close(roi[1], golden(folder, "roi_reg"), what=f"{name} roi_reg")
    else:  # SABL
        assert_close(roi[0], golden(folder, "roi_cls"), what=f"{name} roi_cls")
        assert_close(roi[1][0], golden(folder, "roi_reg_bucket_cls"), what=f"{name} bucket cls")
        assert_close(roi[1][1], golden(folder, "roi_reg_bucket_offset"), what=f"{name} bucket offsets")


@pytest.mark.slow
@pytest.mark.parametrize("name", TWO_STAGE)
def test_roi_head_on_golden_proposals(name, tmp_path_factory):
    """The RoI head alone, fed MMDetection's proposals and neck features."""
    from zooport.model_defs.mmdet.roi_heads import CascadeRoIHead

    folder, model, x, raw = load(name, tmp_path_factory)
    feats = [torch.from_numpy(golden(folder, f"neck_{i}").copy()) for i in range(5)]
    props = torch.from_numpy(golden(folder, "proposals").copy())
    rois = torch.cat([torch.zeros(props.shape[0], 1), props[:, :4]], 1)
    with torch.no_grad():
        if isinstance(model.roi_head, CascadeRoIHead):
            stages = model.roi_head(feats, rois, (256, 256))
            cls, reg = model.roi_head.mean_scores(stages), stages[-1][2]
        else:
            cls, reg = model.roi_head(feats, rois)
        dets = model.roi_head.predict(feats, [props], (256, 256), model.test_cfg["rcnn"])[0].numpy()
    assert_close(cls, golden(folder, "roi_cls"), what=f"{name} roi_cls from golden proposals")
    if torch.is_tensor(reg):
        assert_close(reg, golden(folder, "roi_reg"), what=f"{name} roi_reg from golden proposals")
    else:
        assert_close(reg[1], golden(folder, "roi_reg_bucket_offset"), what=f"{name} bucket offsets")
    check_dets(dets, np.loadtxt(folder / "dets.txt", ndmin=2), f"{name} RoI head on golden proposals")


@pytest.mark.slow
@pytest.mark.parametrize("name", TWO_STAGE)
def test_predict_matches_dets(name, tmp_path_factory):
    folder, model, x, raw = load(name, tmp_path_factory)
    dets = model.predict(x)
    assert len(dets) == 1
    check_dets(dets[0].numpy().astype(np.float64), np.loadtxt(folder / "dets.txt", ndmin=2), name)
