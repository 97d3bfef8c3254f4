"""One implementation of each thing: the names-file reader, the strict state-dict check, the
MMDetection <-> Darknet key mapping; dead code gone. No assets needed."""
from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
import torch

import zooport

PKG = Path(zooport.__file__).resolve().parent


def test_one_names_reader_one_error_type(tmp_path):
    from zooport.converters.darknet import meta as darknet_meta
    from zooport.parsers.names import read_names
    from zooport.zoo import api, manifest

    assert darknet_meta.read_names is read_names and api.read_names is read_names
    assert not hasattr(manifest, "read_names")
    # no other module reads "one name per line" by itself
    pattern = re.compile(r"\[\s*\w+\.strip\(\) for \w+ in .*splitlines\(\)\s+if\s+\w+\.strip\(\)")
    others = [str(p.relative_to(PKG)) for p in PKG.rglob("*.py")
              if p.name != "names.py" and pattern.search(p.read_text())]
    assert others == [], others
    (tmp_path / "ok.names").write_bytes(b"\xef\xbb\xbfa\r\n\r\n b \r\n")
    assert read_names(tmp_path / "ok.names") == ["a", "b"]
    (tmp_path / "bin.names").write_bytes(b"\xff\xfe\x00")
    (tmp_path / "empty.names").write_text(" \n")
    for bad in ("bin.names", "empty.names", "missing.names", "."):
        with pytest.raises(zooport.ParseError):
            read_names(tmp_path / bad)


def test_one_strict_state_dict_check():
    from zooport.converters import native
    from zooport.converters.darknet import load as darknet

    assert not hasattr(darknet, "_assign")
    assert "load_state_dict_strict" in inspect.getsource(darknet.load_darknet)
    m = torch.nn.Linear(2, 3)
    sd = {"weight": torch.ones(3, 2), "bias": torch.zeros(3)}
    native.load_state_dict_strict(m, sd, "x", assign=True)
    assert m.weight.data_ptr() == sd["weight"].data_ptr()  # assigned, not copied
    with pytest.raises(zooport.CheckpointError, match=r"x: key 'bias' has shape \(4,\)"):
        native.load_state_dict_strict(m, {"weight": torch.ones(3, 2), "bias": torch.zeros(4)}, "x")
    with pytest.raises(zooport.CheckpointError, match="missing keys"):
        native.load_state_dict_strict(m, {"weight": torch.ones(3, 2)}, "x")


def test_one_mmdet_darknet_mapping(monkeypatch):
    """Both directions and the cfg-free payload go through the one per-conv key table."""
    from zooport.converters.mmdet import darknet_bridge as md
    from zooport.parsers.darknet.cfg import parse_cfg
    from zooport.parsers.darknet.plan import build_plan

    calls = []
    real = md._conv_keys
    monkeypatch.setattr(md, "_conv_keys", lambda *a: calls.append(a) or real(*a))
    plan = build_plan(parse_cfg(PKG / "cfgs" / "darknet" / "yolov3.cfg"))
    for fn in (lambda: md.darknet_payload({}), lambda: md.mmdet_to_darknet_state_dict({}, plan)):
        calls.clear()
        with pytest.raises(zooport.CheckpointError, match="missing key 'backbone.conv1.bn.bias'"):
            fn()
        assert calls, fn
    assert md._name_map("p", True)["bn.running_var"] == "p.bn.running_var"
    assert md._name_map("p", False) == {"conv.bias": "p.bias", "conv.weight": "p.weight"}


def test_dead_code_and_stale_docstrings_gone():
    from zooport import parsers
    from zooport.parsers.darknet import plan as darknet_plan

    assert not hasattr(darknet_plan, "head_layers")
    assert "Torch-free parsers" not in parsers.__doc__ and "yolov5_ckpt" in parsers.__doc__
