"""One implementation of each thing, by behaviour: the names-file reader and the one ``names=`` resolution, the
strict state-dict check, the MMDetection <-> Darknet key mapping. No assets needed."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import zooport

PKG = Path(zooport.__file__).resolve().parent


def test_names_file_reader_rules(tmp_path):
    from zooport.parsers.names import read_names

    (tmp_path / "ok.names").write_bytes(b"\xef\xbb\xbfa\r\n\r\n b \r\n")
    assert read_names(tmp_path / "ok.names") == ["a", "b"]
    (tmp_path / "bin.names").write_bytes(b"\xff\xfe\x00")
    (tmp_path / "empty.names").write_text(" \n")
    for bad in ("bin.names", "empty.names", "missing.names", "."):
        with pytest.raises(zooport.ParseError):
            read_names(tmp_path / bad)


def test_resolve_names_takes_a_list_a_tuple_or_a_file(tmp_path):
    from zooport.parsers.names import resolve_names

    (tmp_path / "two.names").write_text("cat\ndog\n")
    assert resolve_names(None) is None
    assert resolve_names(["cat", "dog"]) == resolve_names(("cat", "dog")) == resolve_names(tmp_path / "two.names") \
        == resolve_names(str(tmp_path / "two.names")) == ["cat", "dog"]
    for bad in ([], 3, {"a": 1}):
        with pytest.raises(zooport.UsageError, match="names"):
            resolve_names(bad)


def test_one_strict_state_dict_check():
    from zooport.converters import native

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
