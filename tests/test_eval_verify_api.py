"""zooport.verify's contract: keyword-only arguments, one result type, MMDetection models scored through
their own predict / test_cfg, and the user's model never moved or modified. No real asset needed."""
from __future__ import annotations

import inspect
import json

import numpy as np
import pytest
import torch

from eval_fake import NAMES, TABLE, TableDetector, make_voc_tree, write_image

# A small but complete RetinaNet (ResNet-18 with 16 base channels + FPN), MMDetection's layout.
RETINA = {
    "type": "RetinaNet",
    "data_preprocessor": {"type": "DetDataPreprocessor", "mean": [0, 0, 0], "std": [1, 1, 1], "bgr_to_rgb": False},
    "backbone": {"type": "ResNet", "depth": 18, "base_channels": 16, "num_stages": 4, "out_indices": [0, 1, 2, 3],
                 "frozen_stages": -1, "norm_cfg": {"type": "BN", "requires_grad": True}, "norm_eval": True,
                 "style": "pytorch"},
    "neck": {"type": "FPN", "in_channels": [16, 32, 64, 128], "out_channels": 32, "start_level": 1,
             "add_extra_convs": "on_input", "num_outs": 5},
    "bbox_head": {"type": "RetinaHead", "num_classes": 2, "in_channels": 32, "stacked_convs": 2, "feat_channels": 32,
                  "anchor_generator": {"type": "AnchorGenerator", "octave_base_scale": 4, "scales_per_octave": 3,
                                       "ratios": [0.5, 1.0, 2.0], "strides": [8, 16, 32, 64, 128]},
                  "bbox_coder": {"type": "DeltaXYWHBBoxCoder", "target_means": [0.0] * 4, "target_stds": [1.0] * 4}},
    "test_cfg": {"nms_pre": 1000, "min_bbox_size": 0, "score_thr": 0.3, "nms": {"type": "nms", "iou_threshold": 0.5},
                 "max_per_img": 7},
}


def _retina():
    from zooport.model_defs.mmdet import MMDetModel

    torch.manual_seed(0)
    m = MMDetModel(RETINA, names=["cat", "dog"], input_size=(64, 64))
    with torch.no_grad():
        for p in m.parameters():  # weights that make scores spread over (0, 1)
            p.copy_(torch.randn_like(p) * 0.05)
    return m.eval()


def _coco_tree(root, n=3):
    """n grey JPEGs (64 x 80) with one box each, COCO layout with categories cat / dog."""
    (root / "val2017").mkdir(parents=True)
    (root / "annotations").mkdir()
    images, anns = [], []
    for k in range(n):
        write_image(root / "val2017" / f"{k + 1:012d}.jpg", k, 80, 64)
        images.append({"id": k + 1, "file_name": f"{k + 1:012d}.jpg", "width": 80, "height": 64})
        anns.append({"id": k + 1, "image_id": k + 1, "category_id": 1 + k % 2, "bbox": [10, 10, 30, 20],
                     "area": 600, "iscrowd": 0})
    cats = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]
    (root / "annotations" / "instances_val2017.json").write_text(
        json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return root / "val2017"


def test_arguments_after_model_are_keyword_only():
    from zooport.eval.verify import merge, verify

    params = list(inspect.signature(verify).parameters.values())
    assert params[0].name == "model"
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[1:])
    assert "distributed" in inspect.signature(verify).parameters
    with pytest.raises(TypeError):
        verify(TableDetector(NAMES, TABLE), "some/coco")  # noqa: the old positional call
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in list(inspect.signature(merge).parameters.values())[1:])


def test_one_result_type_for_full_and_shard_runs(tmp_path):
    from zooport.eval.result import VerifyResult
    from zooport.eval.verify import merge, verify
    from zooport.eval.shard import write_json

    root = make_voc_tree(tmp_path / "voc")
    full = verify(TableDetector(NAMES, TABLE), voc=root, batch=1, progress=False)
    parts = [verify(TableDetector(NAMES, TABLE), voc=root, batch=1, shard=f"{i}/2", progress=False) for i in range(2)]
    for i, p in enumerate(parts):
        write_json(p, tmp_path / f"p{i}.json")
    merged = merge([tmp_path / "p0.json", tmp_path / "p1.json"])
    for r in (full, *parts, merged):
        assert type(r) is VerifyResult
    assert full.scored and merged.scored and not any(p.scored for p in parts)
    assert parts[0].partial["shard"] == [0, 2] and parts[0].metrics == {}
    assert merged.metrics == pytest.approx(full.metrics) and merged.merged_shards == 2
    d = full.to_dict()  # the --json form: every field but per_image, JSON-able
    assert set(d) == {"metrics", "per_class", "settings", "model", "dataset", "images", "detections", "skipped",
                      "timing", "speed", "partial", "rank", "merged_shards"}
    json.dumps(d)
    assert full["metrics"] is full.metrics  # read by name too
    assert set(full.speed) == {"preprocess", "inference", "nms"}


def test_default_postprocess_by_family():
    from zooport.eval.verify import DEFAULTS
    from zooport.postprocess import verify_postprocess

    assert verify_postprocess(_retina()) == "mmdet"
    assert verify_postprocess(TableDetector(NAMES, TABLE)) == "yolov5"
    # Darknet's validate_detector hard-codes these (its -thresh has no effect there)
    assert DEFAULTS["darknet"]["conf"] == 0.001 and DEFAULTS["darknet"]["iou"] == 0.6


@pytest.mark.slow
def test_mmdet_model_is_scored_by_its_own_predict(tmp_path):
    """verify's detections for an MMDetection model are model.predict's (its test_cfg), mapped to the image."""
    from zooport.eval.runner import _load_one
    from zooport.eval.data import load_coco
    from zooport.eval.verify import verify

    model = _retina()
    coco = _coco_tree(tmp_path / "coco")
    # preprocess "resize" here; the default "mmdet" mode (MMDetection's own pipeline) is tested with the
    # R-CNN goldens in tests/test_mmdet_rcnn_verify.py
    res = verify(model, coco=coco, preprocess="resize", batch=2, progress=False, keep_detections=True)
    assert res.settings["postprocess"] == "mmdet" and res.settings["backend"] == "torch"
    ds = load_coco(coco)
    total = 0
    for rec in ds.images:
        x, to_image, _hw, _dt = _load_one(rec, "resize", (64, 64), 64, model.preprocess)
        with torch.no_grad():
            ref = model.predict(torch.from_numpy(x[None]))[0].numpy()
        ref[:, :4] = to_image(ref[:, :4])
        got = res.per_image[rec.key]
        # verify runs a Conv+BN-fused copy: same detections, float rounding apart
        assert got.shape == ref.shape and np.allclose(got, ref, rtol=1e-3, atol=1e-3), (rec.key, got, ref)
        assert len(got) <= 7 and (got[:, 4] > 0.3).all()  # test_cfg's max_per_img and score_thr
        total += len(got)
    assert total > 0, "the test model detected nothing: the comparison would prove nothing"
    # explicit conf overrides test_cfg's score_thr; onnxruntime cannot carry test_cfg
    low = verify(model, coco=coco, preprocess="resize", batch=2, progress=False, conf=float(np.median(np.concatenate([d[:, 4] for d in res.per_image.values()]))))
    assert low.detections < res.detections
    from zooport.errors import UsageError

    with pytest.raises(UsageError, match="test_cfg"):
        verify(model, coco=coco, backend="onnxruntime", progress=False)


def _snapshot(model):
    return (model.training, [(n, p.data_ptr(), p.device, p.clone()) for n, p in model.named_parameters()],
            [n for n, _ in model.named_modules()])


def _same(a, b):
    assert a[0] == b[0] and a[2] == b[2]
    for (n1, ptr1, d1, v1), (n2, ptr2, d2, v2) in zip(a[1], b[1]):
        assert n1 == n2 and ptr1 == ptr2 and d1 == d2 and torch.equal(v1, v2)


def test_user_model_is_not_moved_or_modified(tmp_path):
    """The torch backend runs a fused copy on the chosen device; the caller's model stays as it was."""
    from zooport.eval.verify import verify

    model = _retina().train()
    before = _snapshot(model)
    verify(model, coco=_coco_tree(tmp_path / "coco"), device="cpu", progress=False)
    _same(before, _snapshot(model))


def test_cuda_model_gets_a_cpu_copy_for_onnxruntime(monkeypatch, tmp_path):
    """A model on a GPU is exported from a CPU copy (onnxruntime runs on the CPU); the model itself is not
    moved. Without a GPU here, the runner is told the model lives on cuda:0."""
    from zooport.eval import runner

    model = _retina()
    before = _snapshot(model)
    seen = {}
    monkeypatch.setattr(runner, "model_device", lambda m: torch.device("cuda:0") if m is model else torch.device("cpu"))
    monkeypatch.setattr(torch.nn.Module, "to", lambda self, *a, **k: (seen.setdefault("to", (self, a)), self)[1])
    cpu = runner._on_cpu(model)
    assert cpu is not model and seen["to"] == (cpu, ("cpu",))
    monkeypatch.undo()
    _same(before, _snapshot(model))
    # and the torch backend puts its own copy on the requested device, leaving the model's device alone
    r = runner._TorchRunner(model, device="cpu")
    assert r.model is not model and str(r.device) == "cpu"
    _same(before, _snapshot(model))


def test_device_needs_torch_backend(tmp_path):
    from zooport.errors import UsageError
    from zooport.eval.verify import verify

    with pytest.raises(UsageError, match="device"):
        verify(TableDetector(NAMES, TABLE), voc=make_voc_tree(tmp_path / "voc"), backend="onnxruntime",
               device="cuda", progress=False)


def test_cli_table_speed_line_and_quiet(tmp_path, capsys):
    """The CLI's yolo-val table (Class Images Instances P R + AP columns, an "all" row), the speed line,
    and --quiet printing the metrics line alone."""
    from zooport.cli.verify import _print_table
    from zooport.eval.verify import verify

    res = verify(TableDetector(NAMES, TABLE), voc=make_voc_tree(tmp_path / "voc"), batch=1, progress=False)
    _print_table(res)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("mAP_voc07 ")
    assert out[1].split() == ["Class", "Images", "Instances", "P", "R", "AP_voc07", "AP_voc10"]
    assert out[2].split()[:3] == ["all", "3", str(sum(r["instances"] for r in res.per_class))]
    assert out[-1].startswith("Speed: ") and "ms preprocess" in out[-1] and "ms NMS per image" in out[-1]
    _print_table(res, quiet=True)
    assert capsys.readouterr().out.splitlines() == [out[0]]


def test_precision_recall_at_max_f1_by_hand():
    """One class, 2 instances; detections 0.9 TP, 0.8 FP, 0.7 TP. Confidence above 0.8: P 1, R 0.5 (F1 .67);
    0.7..0.8: P .5, R .5 (F1 .5); up to 0.7: P 2/3, R 1 (F1 .8, the maximum) -> P 2/3, R 1."""
    from zooport.eval.precision import match_image, precision_recall

    p, r = precision_recall([1, 0, 1], [0.9, 0.8, 0.7], [0, 0, 0], [0, 0], [0])
    assert p[0] == pytest.approx(2 / 3, abs=1e-3) and r[0] == pytest.approx(1.0, abs=1e-3)
    # YOLOv5 v7.0's matching at IoU 0.5: one ground truth takes one detection of its class; after the per-detection
    # pass the per-truth pass keeps the lowest detection index (v7.0 leaves the re-sort by IoU commented out)
    gt = np.array([[0, 0, 10, 10]], float)
    dets = np.array([[0, 0, 10, 9, 0.5, 0], [0, 0, 10, 10, 0.4, 0], [0, 0, 10, 10, 0.9, 1]], float)
    assert match_image(gt, np.array([0]), dets).tolist() == [True, False, False]


def test_auto_backend(monkeypatch):
    """auto = onnxruntime (installed here) for Darknet / YOLOv5 models on the CPU; torch for a model on a GPU,
    an explicit GPU device, MMDetection (its test_cfg needs the head outputs) and families without ONNX parity."""
    from zooport.eval import runner
    from zooport.eval.verify import _default_backend

    class Tiny(torch.nn.Module):
        family = "yolov5"

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

    m = Tiny()
    assert _default_backend(m, "yolov5", None) == "onnxruntime"
    assert _default_backend(m, "yolov5", "cuda:0") == "torch"
    assert _default_backend(_retina(), "mmdet", None) == "torch"
    assert _default_backend(TableDetector(NAMES, TABLE), "yolov5", None) == "torch"
    monkeypatch.setattr(runner, "model_device", lambda model: torch.device("cuda:0"))
    assert _default_backend(m, "yolov5", None) == "torch"


def test_eval_does_not_import_zoo_and_score_has_its_own_module():
    """zooport.eval needs only a cache path from the zoo's world (zooport._cache), never zooport.zoo."""
    import ast
    from pathlib import Path

    import zooport.eval

    for f in Path(zooport.eval.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom):
                mod = "." * node.level + (node.module or "")
                assert not mod.startswith(("..zoo", "zooport.zoo")), (f.name, mod)
    from zooport.eval import score as score_mod
    from zooport.eval import shard

    assert shard.score is score_mod.score and not hasattr(shard, "env_world")


def test_one_post_processing_module():
    """zooport.postprocess is the one place: the old copies and dead helpers are gone, the names stay."""
    import importlib

    import zooport.postprocess as pp

    from pathlib import Path

    import zooport

    here = Path(zooport.__file__).resolve().parent
    for gone in ("darknet_postprocess.py", "eval/post.py"):
        assert not (here / gone).exists(), gone
    assert importlib.import_module("zooport.postprocess").__file__.startswith(str(here))
    assert not hasattr(pp, "format_detections") and not hasattr(pp, "MODES")
    from zooport.postprocess import MAX_WH, nms, non_max_suppression, xywh2xyxy  # noqa: F401  (names kept)

    assert MAX_WH == 7680
    from zooport.model_defs.mmdet import predict

    assert predict.batched_nms is pp.batched_nms
