"""Ultralytics-shaped checkpoints (built here, no `ultralytics` package): the tree reader, ema preference,
unsupported task heads, and malicious payloads (gadgets in train_args, forged module classes), all rejected
with nothing executed."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from test_yolov5_safety import Gadget, Ref, _save_ref, sentinel  # noqa: F401  (sentinel: a fixture)
from ultralytics_fakes import checkpoint, save_ultralytics, tiny_model, ultralytics_shaped
from zooport.errors import CheckpointError, UnsafeCheckpointError, UnsupportedError


def _load(path):
    import zooport

    return zooport.load(str(path))  # sniffs the family from the pickle's globals, then the safe reader


@pytest.mark.parametrize("head", ["v8", "v11"])
def test_tree_reader_rebuilds_the_pickled_model(head, tmp_path):
    from zooport.checkpoints import sniff_checkpoint

    ref = tiny_model(head)
    p = tmp_path / "tiny.pt"
    save_ultralytics(checkpoint(ultralytics_shaped(ref).half()), p)
    assert sniff_checkpoint(p) == "ultralytics"
    m = _load(p)
    assert type(m).__name__ == "UltralyticsModel" and m.source["head"] == head
    assert m.names == ["a", "b", "c"] and m.stride == [8, 16] and m.input_size == [320, 320]
    own = ref.half().float().state_dict()
    assert list(m.state_dict()) == list(own) and all(torch.equal(v, own[k]) for k, v in m.state_dict().items())
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        assert torch.equal(m(x), ref.eval()(x))
        assert [tuple(r.shape) for r in m.raw(x)] == [(1, 67, 8, 12), (1, 67, 4, 6)]


def test_ema_preferred(tmp_path):
    a, b = tiny_model(seed=0), tiny_model(seed=1)
    p = tmp_path / "last.pt"
    save_ultralytics(checkpoint(ultralytics_shaped(a), ema=ultralytics_shaped(b)), p)
    m = _load(p)
    assert m.source["weights"] == "ema"
    assert torch.equal(m.state_dict()["model.0.conv.weight"], b.state_dict()["model.0.conv.weight"])


@pytest.mark.parametrize("cls,task", [("ultralytics.nn.modules.head.Segment", "segment"),
                                      ("ultralytics.nn.modules.head.Pose", "pose"),
                                      ("ultralytics.nn.modules.head.OBB", "obb"),
                                      ("ultralytics.nn.modules.head.Segment26", "segment"),
                                      ("ultralytics.nn.modules.head.Pose26", "pose")])
def test_task_heads_unsupported_by_name(cls, task, tmp_path):
    from zooport.model_defs.ultralytics.blocks import Detect

    p = tmp_path / "task.pt"
    save_ultralytics(checkpoint(ultralytics_shaped(tiny_model())), p, renames={Detect: cls})
    with pytest.raises(UnsupportedError, match=rf"{cls.replace('.', '[.]')} \({task}"):
        _load(p)


def test_task_model_class_unsupported(tmp_path):
    from zooport.model_defs.ultralytics.model import UltralyticsModel

    p = tmp_path / "seg.pt"
    save_ultralytics(checkpoint(ultralytics_shaped(tiny_model())), p,
                     renames={UltralyticsModel: "ultralytics.nn.tasks.SegmentationModel"})
    with pytest.raises(UnsupportedError, match="SegmentationModel .segment task"):
        _load(p)


def test_gadget_in_train_args_rejected(tmp_path, sentinel):
    top = checkpoint(ultralytics_shaped(tiny_model()))
    top["train_args"]["cfg"] = Gadget(os.system, (f"touch {sentinel}",))
    p = tmp_path / "train_args.pt"
    save_ultralytics(top, p)
    with pytest.raises(UnsafeCheckpointError, match="posix.system|os.system"):
        _load(p)
    # the same payload as train_metrics / an extra key with a builtins gadget
    top["train_args"]["cfg"] = None
    top["train_metrics"] = {"fitness": Gadget(eval, (f"open({str(sentinel)!r}, 'w')",))}
    save_ultralytics(top, p)
    with pytest.raises(UnsafeCheckpointError, match="__builtin__.eval|builtins.eval"):
        _load(p)


@pytest.mark.parametrize("forged", ["ultralytics.nn.modules.block.Exploit", "ultralytics.nn.tasks.torch_safe_load",
                                    "ultralytics.utils.downloads.attempt_download_asset",
                                    "ultralytics.nn.modules.conv.os", "ultralytics.utils.checks.check_requirements"])
def test_forged_module_class_rejected(forged, tmp_path, sentinel):
    from zooport.model_defs.ultralytics.blocks import Bottleneck

    p = tmp_path / "forged.pt"
    save_ultralytics(checkpoint(ultralytics_shaped(tiny_model())), p, renames={Bottleneck: forged})
    with pytest.raises(UnsafeCheckpointError, match="allowlist"):
        _load(p)
    # a forged callable in REDUCE position, with a shell payload
    mod, name = forged.rsplit(".", 1)
    _save_ref(checkpoint(None, train_args={"model": Gadget(Ref(mod, name), (f"touch {sentinel}",))}), p)
    with pytest.raises(UnsafeCheckpointError, match="allowlist"):
        _load(p)


def test_allowlisted_class_called_with_payload_stays_inert(tmp_path, sentinel):
    """An allowed Ultralytics class used as a REDUCE callable only records its arguments."""
    top = checkpoint(ultralytics_shaped(tiny_model()))
    top["train_args"]["hook"] = Gadget(Ref("ultralytics.nn.modules.conv", "Conv"), (f"touch {sentinel}",))
    p = tmp_path / "inert.pt"
    save_ultralytics(top, p)
    from zooport.parsers.pickled.reader import read_torch_zip

    rec = read_torch_zip(p)["train_args"]["hook"]
    assert rec.foreign == "ultralytics.nn.modules.conv.Conv" and rec.args == (f"touch {sentinel}",)
    assert type(_load(p)).__name__ == "UltralyticsModel"


def test_no_model_entry_and_non_detection_top(tmp_path):
    p = tmp_path / "empty.pt"
    save_ultralytics(checkpoint(None), p)
    from zooport.converters.ultralytics.load import load_ultralytics

    with pytest.raises(CheckpointError, match="expected a pickled ultralytics.nn.tasks.DetectionModel"):
        load_ultralytics(p)


@pytest.mark.slow
def test_cli_refuses_payload_without_traceback(tmp_path, sentinel):
    top = checkpoint(ultralytics_shaped(tiny_model()))
    top["train_args"]["cfg"] = Gadget(os.system, (f"touch {sentinel}",))
    p = tmp_path / "evil.pt"
    save_ultralytics(top, p)
    out = tmp_path / "out.pt"
    r = subprocess.run([sys.executable, "-m", "zooport", "convert", "ultralytics", str(p), "-o", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and "allowlist" in r.stderr
    assert not out.exists()


def test_verify_uses_ultralytics_validation_settings():
    from zooport.eval.verify import _settings

    m = tiny_model()
    st = _settings(m, None, None, None, None, None, None, 300, "torch", None, True, None)
    assert (st["preprocess"], st["conf"], st["iou"], st["max_det"], st["rect"], st["imgsz"]) == \
        ("letterbox", 0.001, 0.7, 300, True, 640)
    # an explicit flavour or threshold still wins
    assert _settings(m, None, "yolov5", None, None, None, None, 300, "torch", None, True, None)["iou"] == 0.65
    assert _settings(m, None, None, None, None, None, 0.5, 300, "torch", None, True, None)["iou"] == 0.5


def test_anchor_free_nms_multi_label_and_layout():
    from zooport.postprocess import non_max_suppression_anchor_free

    # (B, 4+nc, N): two overlapping boxes, one scoring for two classes
    pred = torch.zeros(1, 4 + 3, 3)
    pred[0, :4, 0] = torch.tensor([50.0, 50, 20, 20])
    pred[0, :4, 1] = torch.tensor([51.0, 50, 20, 20])
    pred[0, :4, 2] = torch.tensor([200.0, 200, 10, 10])
    pred[0, 4:, 0] = torch.tensor([0.9, 0.6, 0.0])
    pred[0, 4:, 1] = torch.tensor([0.8, 0.0, 0.0])
    pred[0, 4:, 2] = torch.tensor([0.0, 0.0, 0.0005])
    d = non_max_suppression_anchor_free(pred)[0]
    assert d[:, 4].tolist() == pytest.approx([0.9, 0.6]) and d[:, 5].tolist() == [0.0, 1.0]
    d1 = non_max_suppression_anchor_free(pred, multi_label=False)[0]
    assert d1[:, 5].tolist() == [0.0] and d1[0, :4].tolist() == [40.0, 40.0, 60.0, 60.0]


def test_fused_checkpoint_read_as_fused(tmp_path):
    """A model saved after Ultralytics' fuse() (Conv blocks without bn, conv with bias)."""
    import copy

    from zooport.model_defs.yolov5.blocks import Conv

    ref = copy.deepcopy(tiny_model()).fuse()
    shaped = ultralytics_shaped(ref)
    for mod in shaped.modules():
        if isinstance(mod, Conv):
            del mod._modules["bn"]  # Ultralytics' fuse() deletes the attribute
    p = tmp_path / "fused.pt"
    save_ultralytics(checkpoint(shaped), p)
    m = _load(p)
    assert m.native_arch()["fused"] and "model.0.bn.weight" not in m.state_dict()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(m(x), ref(x))


def test_end_to_end_head_read_with_both_branches(tmp_path):
    """A YOLO26-style head (one2one_cv2 / one2one_cv3 copies, reg_max 1) is read, both branches kept."""
    ref = tiny_model(end2end=True, reg_max=1)
    with torch.no_grad():  # make the two branches differ
        for p in ref.detect.one2one_cv3.parameters():
            p.add_(0.1)
    p = tmp_path / "e2e.pt"
    save_ultralytics(checkpoint(ultralytics_shaped(ref)), p)
    m = _load(p)
    assert m.end2end and m.detect.reg_max == 1 and any(k.startswith("model.11.one2one_cv3") for k in m.state_dict())
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        for br in ("one2many", "one2one"):
            assert all(torch.equal(a, b) for a, b in zip(m.raw(x, br), ref.raw(x, br)))
        assert not torch.equal(m.raw(x, "one2one")[0], m.raw(x)[0])
        assert m.end2end_output(x, max_det=7).shape == (1, 7, 6)


def _trainer_84(model, **extra) -> dict:
    """The dict ultralytics 8.4's ``BaseTrainer.save_model`` writes (``model`` None, weights in ``ema``)."""
    return checkpoint(None, ema=model, epoch=3, best_fitness=0.1, updates=12,
                      stopper={"best_fitness": 0.1, "best_epoch": 2}, modelopt=None,
                      optimizer={"state": {0: {"momentum_buffer": torch.zeros(3)}},
                                 "param_groups": [{"lr": 0.01, "momentum": 0.937, "params": [0]}]},
                      scaler={}, train_metrics={"metrics/mAP50(B)": 0.2, "fitness": 0.1}, **extra)


@pytest.mark.parametrize("where", ["train_args", "train_metrics", "optimizer", "ema_attr", "stopper"])
def test_payloads_in_8_4_trainer_checkpoint_execute_nothing(where, tmp_path, sentinel):
    """Every container of an 8.4 trainer checkpoint (train_args, train_metrics, the optimizer state, an attribute
    of a module inside ``ema``, ``stopper``) carrying an os.system gadget: refused, nothing runs."""
    shaped = ultralytics_shaped(tiny_model(end2end=True, reg_max=1))
    top = _trainer_84(shaped)
    gadget = Gadget(os.system, (f"touch {sentinel}",))
    if where == "ema_attr":
        shaped.model[0].hook = gadget
    elif where == "optimizer":
        top["optimizer"]["state"][0]["momentum_buffer"] = gadget
    elif where == "stopper":
        top["stopper"]["best_epoch"] = gadget
    else:
        top[where] = {"cfg": gadget}
    p = tmp_path / "last.pt"
    save_ultralytics(top, p)
    with pytest.raises(UnsafeCheckpointError, match="posix.system|os.system"):
        _load(p)
    # the same file without the payload loads (from ema), so the refusal is the payload's
    if where == "ema_attr":
        del shaped.model[0].hook
    elif where == "optimizer":
        top["optimizer"]["state"][0]["momentum_buffer"] = torch.zeros(3)
    elif where == "stopper":
        top["stopper"]["best_epoch"] = 2
    else:
        top[where] = {}
    save_ultralytics(top, p)
    m = _load(p)
    assert m.source["weights"] == "ema" and m.end2end
