"""load_mmdet strictness, config from checkpoint meta, native round trip and the `convert mmdet` CLI."""
from __future__ import annotations

import json

import pytest
import torch
from helpers import assert_close, asset, contract_input, read_f32

from zooport.errors import CheckpointError, ConfigError

NAME = "atss_r18s_fpn"


@pytest.fixture()
def golden():
    folder = asset(f"golden/mmdet/{NAME}")
    ckpt = torch.load(folder / f"{NAME}.pth", weights_only=True)
    cfg = json.loads((folder / "config.json").read_text())
    x = torch.from_numpy(read_f32(asset("golden/mmdet/input_bus_256.f32"), (1, 3, 256, 256)).copy())
    ref = read_f32(folder / "out2_0.f32", (1, 1, 32, 32))
    return folder, ckpt, cfg, x, ref


def _save(tmp_path, ckpt, name="m.pth"):
    p = tmp_path / name
    torch.save(ckpt, p)
    return p


@pytest.mark.parametrize("edit, key", [
    ("drop", "bbox_head.scales.3.scale"),
    ("extra", "bbox_head.unexpected.weight"),
    ("shape", "neck.fpn_convs.2.conv.weight"),
])
def test_strict_keys(golden, tmp_path, edit, key):
    from zooport.converters.mmdet.load import load_mmdet

    folder, ckpt, cfg, _, _ = golden
    sd = dict(ckpt["state_dict"])
    if edit == "drop":
        del sd[key]
    elif edit == "extra":
        sd[key] = torch.zeros(3)
    else:
        sd[key] = torch.zeros(1, 2, 3, 3)
    p = _save(tmp_path, {"meta": ckpt["meta"], "state_dict": sd})
    with pytest.raises(CheckpointError, match=key.replace(".", r"\.")):
        load_mmdet(p, folder / "config.json")


def test_config_from_meta_and_missing_config(golden, tmp_path):
    from zooport.converters.mmdet.load import load_mmdet
    from zooport.parsers.mmdet.config import to_python_text

    folder, ckpt, cfg, x, ref = golden
    bare = _save(tmp_path, ckpt, "bare.pth")
    with pytest.raises(ConfigError, match="--config"):
        load_mmdet(bare)
    meta = dict(ckpt["meta"], cfg=to_python_text({"model": cfg}), dataset_meta={"classes": [f"c{i}" for i in range(80)]})
    p = _save(tmp_path, {"meta": meta, "state_dict": ckpt["state_dict"]}, "with_cfg.pth")
    model = load_mmdet(p)
    assert model.names[:2] == ["c0", "c1"]
    with torch.no_grad():
        assert_close(model.raw(contract_input(model, x))[2][0], ref, what="centerness level 0 (config from meta)")


def test_unknown_type_names_it(golden, tmp_path):
    from zooport.converters.mmdet.load import load_mmdet

    folder, ckpt, cfg, _, _ = golden
    cfg["bbox_head"]["type"] = "NoSuchHead"
    c = tmp_path / "c.json"
    c.write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match="NoSuchHead"):
        load_mmdet(folder / f"{NAME}.pth", c)


def test_not_a_checkpoint(tmp_path):
    from zooport.converters.mmdet.load import load_mmdet

    p = tmp_path / "junk.pth"
    p.write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="junk.pth"):
        load_mmdet(p, None)


@pytest.mark.slow
def test_cli_to_native_and_back(golden, tmp_path, capsys):
    from zooport.cli.main import main
    from zooport.converters.native import load_native

    folder, ckpt, cfg, x, ref = golden
    out = tmp_path / "atss.safetensors"
    rc = main(["convert", "mmdet", str(folder / f"{NAME}.pth"), "--config", str(folder / "config.json"),
               "-o", str(out)])
    assert rc == 0 and out.exists()
    model = load_native(out).eval()
    assert model.family == "mmdet" and model.stride == [8, 16, 32, 64, 128]
    with torch.no_grad():
        assert_close(model.raw(contract_input(model, x))[2][0], ref, what="centerness level 0 (native reload)")
        assert model.predict(contract_input(model, x))[0].shape == (100, 6)


def test_cli_error_exits_2_without_output(golden, tmp_path, capsys):
    from zooport.cli.main import main

    folder, *_ = golden
    out = tmp_path / "x.pt"
    rc = main(["convert", "mmdet", str(folder / f"{NAME}.pth"), "-o", str(out)])  # no config anywhere
    assert rc == 2 and not out.exists()
    assert "--config" in capsys.readouterr().err
    rc = main(["convert", "mmdet", str(folder / f"{NAME}.pth"), "--config", str(folder / "config.json"),
               "--to", "darknet", "-o", str(tmp_path / "y.weights")])
    assert rc == 2 and not (tmp_path / "y.weights").exists()


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo should-never-run",))


def test_pickled_code_is_refused(tmp_path):
    from zooport.converters.mmdet.load import load_mmdet
    from zooport.errors import UnsafeCheckpointError

    p = tmp_path / "evil.pth"
    torch.save({"meta": {}, "state_dict": {"a": torch.zeros(1)}, "x": _Evil()}, p)
    with pytest.raises(UnsafeCheckpointError, match="evil.pth"):
        load_mmdet(p)
