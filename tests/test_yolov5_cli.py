"""``zooport convert yolov5``: native .pt / .safetensors / YOLOv5-style state dict, atomic, exit 2 on errors."""
from __future__ import annotations

import pytest
import torch

from yolov5_fakes import build_release, reference_raw, save_foreign


@pytest.mark.slow
def test_convert_yolov5_all_formats(tmp_path, capsys):
    from zooport.cli.main import main
    from zooport.converters.native import load_native

    ckpt, _ = build_release("v7.0", seed=2)
    src = tmp_path / "y.pt"
    save_foreign(ckpt, src)
    x = torch.rand(1, 3, 64, 64)
    ref = reference_raw(ckpt, x)
    for args, out in ((["-o", str(tmp_path / "n.pt")], "n.pt"),
                      (["-o", str(tmp_path / "n.safetensors")], "n.safetensors"),
                      (["--to", "yolov5", "-o", str(tmp_path / "sd.pt")], "sd.pt")):
        assert main(["convert", "yolov5", str(src), *args]) == 0
        assert (tmp_path / out).is_file()
    assert f"wrote {tmp_path / 'sd.pt'} (" in capsys.readouterr().out
    for f in ("n.pt", "n.safetensors"):
        m = load_native(tmp_path / f)
        with torch.no_grad():
            assert all((a - b).abs().max() <= 1e-4 for a, b in zip(m.raw(x), ref))
        assert m.names == ["cat", "dog", "bird"] and m.source["format"] == "yolov5"
    sd = torch.load(tmp_path / "sd.pt", weights_only=True)
    own = {k: v for k, v in ckpt["model"].float().state_dict().items()}
    assert set(sd) == set(own)
    assert all(torch.equal(sd[k].to(own[k].dtype), own[k]) for k in own)
    # a YOLOv5-structured module tree takes the exported state dict strictly
    ckpt["model"].float().load_state_dict(sd, strict=True)
    # default output beside the input: y.pt would be the input itself, so y.converted.pt
    assert main(["convert", "yolov5", str(src)]) == 0
    assert (tmp_path / "y.converted.pt").is_file()
    assert main(["convert", "yolov5", str(src), "--to", "safetensors"]) == 0
    assert (tmp_path / "y.safetensors").is_file()


def test_convert_yolov5_errors_exit_2_without_output(tmp_path, capsys):
    from zooport.cli.main import main

    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    out = tmp_path / "o.pt"
    assert main(["convert", "yolov5", str(bad), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "bad.pt" in err and "Traceback" not in err
    assert not out.exists() and list(tmp_path.iterdir()) == [bad]
    assert main(["convert", "yolov5", str(tmp_path / "missing.pt")]) == 2
    assert main(["convert", "yolov5", str(bad), "-o", str(bad)]) == 2
