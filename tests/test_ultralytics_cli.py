"""``zooport convert ultralytics CKPT --to pt|safetensors|ultralytics`` on an Ultralytics-shaped checkpoint."""
from __future__ import annotations

import pytest
import torch

from ultralytics_fakes import checkpoint, save_ultralytics, tiny_model, ultralytics_shaped


@pytest.fixture
def ckpt(tmp_path):
    ref = tiny_model()
    p = tmp_path / "tiny.pt"
    save_ultralytics(checkpoint(ultralytics_shaped(ref)), p)
    return p, ref


@pytest.mark.parametrize("to", ["pt", "safetensors"])
def test_convert_to_native_and_back(to, ckpt, tmp_path, capsys):
    import zooport
    from zooport.cli.main import main

    src, ref = ckpt
    out = tmp_path / f"native.{to}"
    assert main(["convert", "ultralytics", str(src), "--to", to, "-o", str(out)]) == 0
    assert "v11 head, 3 classes" in capsys.readouterr().out
    m = zooport.load(str(out))
    assert type(m).__name__ == "UltralyticsModel" and m.names == ["a", "b", "c"]
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(m(x), ref(x))


def test_convert_to_ultralytics_state_dict(ckpt, tmp_path):
    from zooport.cli.main import main
    from zooport.parsers.ultralytics_ckpt import parse_ultralytics_checkpoint

    src, _ = ckpt
    out = tmp_path / "sd.pt"
    assert main(["convert", "ultralytics", str(src), "--to", "ultralytics", "-o", str(out)]) == 0
    sd = torch.load(out, weights_only=True)
    pickled = parse_ultralytics_checkpoint(src).state_dict
    assert list(sd) == list(pickled) and all(torch.equal(sd[k], pickled[k]) for k in sd)


def test_convert_errors(ckpt, tmp_path, capsys):
    from zooport.cli.main import main

    src, _ = ckpt
    assert main(["convert", "ultralytics", str(tmp_path / "none.pt")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["convert", "ultralytics", str(src), "-o", str(src)]) == 2
    assert "overwrite the input" in capsys.readouterr().err
