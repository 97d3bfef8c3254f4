"""The one family registry (zooport.families) and the defects its absence caused: each test failed before it."""
from __future__ import annotations

import pytest
import torch

import zooport
from zooport import families


def test_every_record_resolves_and_the_tables_read_it():
    from zooport.cli.convert import SOURCES, TARGETS
    from zooport.zoo import manifest

    for fam in families.FAMILIES.values():
        assert callable(fam.load_fn()), fam.name
        for key in fam.native:
            assert callable(families.native_builder(key)), key
        assert set(fam.targets) <= set(TARGETS)
        assert SOURCES[fam.name] == fam.cli_module
    assert set(families.zoo_formats()) == {"darknet", "yolov5", "mmdet"}
    assert {e.format for e in manifest.load_manifest()} <= set(families.zoo_formats())
    with pytest.raises(zooport.CheckpointError, match="unknown model family 'nope'"):
        families.native_builder("nope")


def test_sniff_rules_per_family():
    assert families.sniff({"ultralytics.nn.tasks.DetectionModel"}, set()) == "ultralytics"
    assert families.sniff({"models.yolo.DetectionModel"}, set()) == "yolov5"
    assert families.sniff(set(), {"state_dict", "meta"}) == "mmdet"
    assert families.sniff({"collections.OrderedDict"}, {"state_dict"}) is None


def test_model_questions_are_asked_of_the_family():
    from eval_fake import TableDetector

    seg = zooport.create_yolov5("yolov5n-seg", num_classes=2)
    cls = zooport.create_yolov5("yolov5n-cls", num_classes=2)
    det = zooport.create_yolov5("yolov5n", num_classes=2)
    assert [families.task_of(m) for m in (det, seg, cls)] == ["detect", "segment", "classify"]
    fake = TableDetector(["a"], {})
    assert families.lookup(fake) is None and families.task_of(fake) == "detect"
    assert families.postprocess_of(fake) == "yolov5" and families.postprocess_of(det) == "yolov5"


@pytest.fixture
def ultra_pt(tmp_path):
    from ultralytics_fakes import checkpoint, save_ultralytics, tiny_model, ultralytics_shaped

    p = tmp_path / "tiny.pt"
    save_ultralytics(checkpoint(ultralytics_shaped(tiny_model())), p)
    return p


@pytest.mark.parametrize("verb", ["yolov5", "mmdet"])
def test_ultralytics_file_to_another_verb_is_one_line_with_the_right_verb(verb, ultra_pt, capsys):
    from zooport.cli.main import main

    assert main(["convert", verb, str(ultra_pt)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("zooport: error:"), err
    assert "looks like an Ultralytics checkpoint: use `zooport convert ultralytics CKPT`" in err[0]


def test_convert_ultralytics_follows_the_shared_vocabulary(ultra_pt, tmp_path, capsys):
    from zooport.cli.main import main

    (tmp_path / "abc.names").write_text("x\ny\nz\n")
    assert main(["convert", "ultralytics", str(ultra_pt), "--names", str(tmp_path / "abc.names")]) == 0
    out = tmp_path / "tiny.converted.pt"  # beside the input, '.converted' since tiny.pt is the input
    assert capsys.readouterr().out.startswith(f"wrote {out} (")
    assert zooport.load(str(out)).names == ["x", "y", "z"]
    assert main(["convert", "ultralytics", str(ultra_pt), "--to", "yolov5"]) == 2
    assert "ultralytics converts to pt, safetensors, ultralytics" in capsys.readouterr().err


def test_names_as_a_list_in_load_predict_and_verify(tmp_path):
    import numpy as np

    m = zooport.create_yolov5("yolov5n", num_classes=2).eval()
    img = np.full((64, 64, 3), 114, np.uint8)
    d = zooport.predict(m, img, names=["cat", "dog"], imgsz=64)
    assert d.names == ["cat", "dog"] and m.names == ["class0", "class1"]  # the user's model is untouched
    with pytest.raises(zooport.UsageError, match="3 class names given, the model has 2"):
        zooport.predict(m, img, names=["a", "b", "c"])
    from zooport.loading import as_model  # what verify() and predict() resolve MODEL / names= with

    assert as_model(m, ("x", "y")).names == ["x", "y"] and m.names == ["class0", "class1"]
    with pytest.raises(zooport.UsageError, match="names"):
        as_model(m, [])


def test_create_ultralytics_takes_num_classes_and_names_like_create_yolov5():
    m = zooport.create_ultralytics("yolov8n", num_classes=3)
    assert m.num_classes == 3
    m = zooport.create_ultralytics("yolov8n", names=["a", "b"])
    assert m.names == ["a", "b"]
    with pytest.raises(zooport.UsageError, match="2 names for num_classes=3"):
        zooport.create_ultralytics("yolov8n", num_classes=3, names=["a", "b"])
    with pytest.warns(DeprecationWarning, match="num_classes"):
        assert zooport.create_ultralytics("yolov8n", nc=4).num_classes == 4
