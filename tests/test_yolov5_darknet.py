"""YOLOv5 -> Darknet export (issue 17): the exported cfg + weights, loaded by zooport's Darknet model,
give the YOLOv5 model's per-level outputs after the sigmoid and its decoded boxes; the weights map back
to the YOLOv5 state dict; unsupported pieces are clear errors that leave no file behind.

The YOLOv5 side is the native YOLOv5Model (parity with YOLOv5 itself: test_yolov5_real /
test_yolov5_releases); the real yolov5n export is compared with YOLOv5's own golden outputs directly.
"""
from __future__ import annotations

import struct

import numpy as np
import pytest
import torch

from helpers import assert_close, asset, read_f32, torch_threads
from yolov5_fakes import RELEASES, build_release, save_foreign

HEAD_REL = 1e-4    # head inputs: max |darknet - sigmoid(yolov5)| <= 1e-4 * max(1, |ref|)
BOX_PX = 1e-3      # decoded boxes, pixels (x, y, w and h)


def _box_error(got, ref) -> float:
    """max box error in px (x, y, w, h), asserted <= BOX_PX."""
    got, ref = torch.as_tensor(got).double(), torch.as_tensor(ref).double()
    err = (got[..., :4] - ref[..., :4]).abs().max().item()
    assert err <= BOX_PX, err
    return err


def _input(hw, seed=0):
    return torch.rand(1, 3, *hw, generator=torch.Generator().manual_seed(seed))


def _randomise(model, seed: int):
    """Seeded random weights and BN statistics (the scheme of yolov5_fakes: conv weights
    N(0, 1/fan_in), biases N(0, 0.1), BN gamma U(0.5, 1.5), running var U(0.5, 1.5)), so every tensor
    matters and the outputs stay far from saturation in networks of any depth."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            bn = isinstance(m, torch.nn.BatchNorm2d)
            for name, t in list(m.named_parameters(recurse=False)) + list(m.named_buffers(recurse=False)):
                if name == "num_batches_tracked" or name == "anchors":
                    continue
                if bn and name in ("weight", "running_var"):
                    t.copy_(torch.rand(t.shape, generator=g) + 0.5)
                elif t.dim() == 1:
                    t.copy_(torch.randn(t.shape, generator=g) * 0.1)
                else:
                    t.copy_(torch.randn(t.shape, generator=g) / t[0].numel() ** 0.5)
    return model.eval()


def _unfolded_error(model, hw) -> float:
    """Head-input error of an export WITHOUT the eps fold (stored variance k**2 * var, so Darknet normalises
    with var + 1e-5 / k**2 instead of var + eps): shows that the comparison sees the fold."""
    from zooport.converters.yolov5.bn_fold import BN_SCALE
    from zooport.converters.yolov5.to_darknet import yolov5_to_darknet
    from zooport.model_defs.darknet.model import DarknetModel
    from zooport.parsers.darknet.cfg import parse_cfg
    from zooport.parsers.darknet.plan import build_plan

    text, sd, lw = yolov5_to_darknet(model, hw)
    own = model.state_dict()
    for i, b in lw.convs.items():
        if b.bn is not None:
            lo, hi = b.bn_slice
            sd[f"layers.{i}.bn.running_var"] = own[b.bn + ".running_var"][lo:hi].float() * BN_SCALE ** 2
    cfg = parse_cfg("<unfolded>", text=text)
    d = DarknetModel(cfg, build_plan(cfg))
    d.load_state_dict(sd, strict=True)
    x = _input(hw)
    with torch.no_grad():
        return max((a - b.sigmoid()).abs().max().item() for a, b in zip(d.eval().raw(x), model.raw(x)))


def _export(model, tmp_path, hw=None):
    from zooport.converters.yolov5.to_darknet import save_darknet
    from zooport.parsers.darknet.cfg import parse_cfg
    from zooport.parsers.darknet.plan import build_plan, weights_bytes

    paths = [tmp_path / "m.cfg", tmp_path / "m.weights", tmp_path / "m.names"]
    info = save_darknet(model, *paths, input_size=hw)
    size = paths[1].stat().st_size
    assert size == info["weights_bytes"] == weights_bytes(build_plan(parse_cfg(paths[0])))
    head = paths[1].read_bytes()[:20]
    assert struct.unpack("<3iQ", head) == (0, 2, 5, 0)        # Darknet's own header: 0.2.5, 64-bit seen
    assert paths[2].read_text().splitlines() == [str(n) for n in model.names]
    return paths


def _compare(model, dmodel, x) -> tuple[float, float]:
    """(max head-input error, max box error in px) of the Darknet model against YOLOv5's."""
    with torch.no_grad():
        ref = [r.sigmoid() for r in model.raw(x)]
        got = dmodel.raw(x)
        assert len(got) == len(ref)
        live = torch.cat([((r > 1e-3) & (r < 1 - 1e-3)).flatten() for r in ref]).float().mean().item()
        assert live > 0.5, f"reference outputs saturated ({live:.2f} of them inside (1e-3, 1 - 1e-3))"
        head_err = max(assert_close(g, r, rel=HEAD_REL, what=f"level {k}") for k, (g, r) in
                       enumerate(zip(got, ref)))
        dref, dgot = model(x), dmodel(x)
    assert dgot.shape == dref.shape
    box_err = _box_error(dgot, dref)
    assert (dgot[..., 4:] - dref[..., 4:]).abs().max().item() <= HEAD_REL
    return head_err, box_err


def _round_trip(model, dmodel):
    """Darknet tensors -> YOLOv5 state dict of a structure-only model == the original's."""
    from zooport.converters.yolov5.to_darknet import darknet_to_yolov5_state_dict
    from zooport.model_defs.yolov5.create import build_uninitialised

    template = build_uninitialised(model.native_arch())   # structure only: tensors on the meta device
    back = darknet_to_yolov5_state_dict(template, dmodel)
    own = model.state_dict()
    assert set(back) == set(own)
    worst = 0.0
    for k, v in own.items():
        if k.endswith("num_batches_tracked"):    # a training counter; Darknet stores none
            continue
        b = back[k]
        assert b.shape == v.shape and b.dtype == v.dtype, k
        if k.endswith("running_var"):           # the eps fold, undone: float32 rounding only
            rel = ((b.double() - v.double()).abs() / v.double().abs()).max().item()
            assert rel <= 1e-6, (k, rel)
            worst = max(worst, rel)
        else:
            assert torch.equal(b, v), k
    return worst


def _check(model, tmp_path, hw, seed=0):
    from zooport.converters.darknet.load import load_darknet

    cfg, weights, names = _export(model, tmp_path, hw)
    d = load_darknet(cfg, weights, names=names)
    assert d.names == list(model.names) and d.stride == list(model.stride)
    errs = _compare(model, d, _input(hw, seed))
    return errs + (_round_trip(model, d),)


# -- Focus -> [reorg3d]: the permutation, proved against Darknet's reorg_cpu loop ----------------------

def _reorg_cpu(x, w, h, c, stride, forward):
    """Darknet's ``reorg_cpu(x, w, h, c, batch=1, stride, forward, out)`` (src/blas.c) as its literal loop."""
    x = x.reshape(-1)
    out = np.zeros_like(x)
    out_c = c // (stride * stride)
    for k in range(c):
        for j in range(h):
            for i in range(w):
                in_index = i + w * (j + h * k)
                c2, offset = k % out_c, k // out_c
                w2, h2 = i * stride + offset % stride, j * stride + offset // stride
                out_index = w2 + w * stride * (h2 + h * stride * c2)
                if forward:
                    out[out_index] = x[in_index]
                else:
                    out[in_index] = x[out_index]
    return out


def test_focus_permutation_matches_darknet_reorg3d():
    from zooport.converters.yolov5.darknet_lower import focus_perm
    from zooport.model_defs.darknet.pool import Reorg3d

    C, H, W = 3, 4, 6
    x = np.random.default_rng(0).standard_normal((C, H, W)).astype(np.float32)
    # Darknet's [reorg3d] (reorg_layer): reorg_cpu called with the OUTPUT's w, h, c and forward=0
    dark = _reorg_cpu(x, W // 2, H // 2, 4 * C, 2, forward=False).reshape(4 * C, H // 2, W // 2)
    # YOLOv5's Focus, as YOLOv5 writes it
    focus = np.concatenate([x[:, ::2, ::2], x[:, 1::2, ::2], x[:, ::2, 1::2], x[:, 1::2, 1::2]], 0)
    perm = focus_perm(C)
    assert sorted(perm) == list(range(4 * C))
    assert np.array_equal(dark, focus[perm])       # Darknet channel d holds Focus channel perm[d]
    assert perm != list(range(4 * C))              # not the identity: (1,0) and (0,1) blocks swap
    # zooport's Darknet layer (the one the export runs on) is that same reorg_cpu
    lp = type("LP", (), {"attrs": {"stride": 2, "reverse": False}})()  # what the plan gives [reorg3d] stride=2
    ours = Reorg3d(lp)([torch.from_numpy(x)[None]])[0].numpy()
    assert np.array_equal(ours, dark)


# -- the real yolov5n against YOLOv5's golden outputs ------------------------------------------------------

@pytest.fixture(scope="module")
def yolov5n_export(tmp_path_factory):
    import zooport

    model = zooport.load_yolov5(asset("zoo/yolov5/yolov5n.pt"))
    paths = _export(model, tmp_path_factory.mktemp("y5n"))
    return model, zooport.load_darknet(paths[0], paths[1], names=paths[2]), paths


@pytest.fixture
def golden_threads():
    """YOLOv5's golden outputs were computed with 2 intra-op threads: zooport's native yolov5n reproduces them
    bit for bit with 2 (and within 9.8e-4 px with 1, where oneDNN sums in another order)."""
    with torch_threads(2):
        yield


@pytest.mark.slow
def test_real_yolov5n_export_reproduces_golden(yolov5n_export, golden_threads):
    from zooport.postprocess import non_max_suppression

    model, d, _ = yolov5n_export
    gold = "golden/real/yolov5n_bus"
    x = torch.from_numpy(read_f32(asset(f"{gold}/input_640.f32"), (1, 3, 640, 640)).copy())
    assert d.input_size == [640, 640] and d.preprocess["mode"] == "letterbox"
    with torch.no_grad():
        raw = d.raw(x)     # decoded by the [yolo] layers themselves, without running the network twice
        dec = torch.cat([d.layers[i].decode(r, 640, 640) for i, r in zip(d.head_indices, raw)], 1)
        ref_raw = model.raw(x)
    for k, (h, w) in enumerate(((80, 80), (40, 40), (20, 20))):
        # the exported network computes what YOLOv5 computes, bit for bit (exact eps fold, SiLU kernel) ...
        assert torch.equal(raw[k], ref_raw[k].sigmoid()), f"head input {k}"
        ref = read_f32(asset(f"{gold}/raw{k}.f32"), (1, 3, h, w, 85))
        ref = 1 / (1 + np.exp(-ref.astype(np.float64).transpose(0, 1, 4, 2, 3).reshape(1, 255, h, w)))
        assert_close(raw[k], ref, rel=HEAD_REL, what=f"head input {k}")     # ... and what YOLOv5 wrote
    ref = read_f32(asset(f"{gold}/decoded.f32"), (1, 25200, 85))
    assert _box_error(dec, ref) <= BOX_PX             # x, y, w, h within 1e-3 px of YOLOv5's own decode
    assert np.abs(dec[..., 4:].numpy() - ref[..., 4:]).max() <= HEAD_REL
    dets = non_max_suppression(dec, 0.25, 0.45)[0].numpy().astype(np.float64)
    gd = np.array([list(map(float, ln.split())) for ln in asset(f"{gold}/dets.txt").read_text().splitlines()
                   if ln.strip()]).reshape(-1, 6)
    assert dets.shape == gd.shape
    o, r = dets[np.lexsort((dets[:, 0], dets[:, 5]))], gd[np.lexsort((gd[:, 0], gd[:, 5]))]
    assert np.array_equal(o[:, 5], r[:, 5])
    assert np.abs(o[:, :5] - r[:, :5]).max() <= BOX_PX     # dets.txt has 4 decimals


@pytest.mark.slow
def test_real_yolov5n_random_input_and_round_trip(yolov5n_export):
    model, d, paths = yolov5n_export
    text = paths[0].read_text()
    for key in ("letter_box=1", "width=640", "height=640", "channels=3", "new_coords=1", "scale_x_y=2.0",
                "size=6\nstride=2\npadding=2", "activation=swish", "activation=logistic", "[shortcut]",
                "anchors=10, 13, 16, 30, 33, 23, 30, 61, 62, 45, 59, 119, 116, 90, 156, 198, 373, 326"):
        assert key in text, key
    assert text.count("[maxpool]") == 3 and "size=5\nstride=1" in text    # SPPF: three chained 5x5 pools
    x = torch.rand(1, 3, 320, 256, generator=torch.Generator().manual_seed(3))
    _compare(model, d, x)
    assert _round_trip(model, d) <= 1e-6


# -- every bundled architecture, every fake release, the expressible blocks -------------------------------

ARCHS = ["yolov5n", "yolov5n6", "yolov5n-p2", "yolov5n-p7", "yolov5s", "yolov5m", "yolov5l", "yolov5x",
         "yolov5s6", "yolov5m6", "yolov5l6", "yolov5x6"]


def _arch_case(name, tmp_path):
    import zooport

    hw = (128, 128) if name.endswith("p7") else (64, 128)
    model = _randomise(zooport.create_yolov5(name, num_classes=5), seed=11)
    head, box, rt = _check(model, tmp_path, hw)
    assert _unfolded_error(model, hw) > 10 * max(head, 1e-7)
    assert rt <= 1e-6


@pytest.mark.slow     # building the random model alone takes 5-60 s
@pytest.mark.parametrize("name", ARCHS)
def test_bundled_architectures(name, tmp_path):
    _arch_case(name, tmp_path)


@pytest.mark.parametrize("release", sorted(r for r in RELEASES if r != "v3.1"))
def test_fake_releases(release, tmp_path):
    from zooport.converters.yolov5.load import load_yolov5

    ckpt, _ = build_release(release, seed=5)
    save_foreign(ckpt, tmp_path / "ck.pt")
    model = load_yolov5(tmp_path / "ck.pt")
    out = tmp_path / "out"
    out.mkdir()
    _check(model, out, (64, 96))
    text = (out / "m.cfg").read_text()
    r = RELEASES[release]
    assert ("[reorg3d]" in text) == (r["stem"] == "focus")
    assert ("activation=leaky" in text) == (release in ("v1.0", "v3.0"))


def _from_yaml(d, act=None):
    from zooport.model_defs.yolov5.create import compute_stride
    from zooport.model_defs.yolov5.model import YOLOv5Model

    base = {"act": act or {"type": "SiLU"}, "csp_act": act or {"type": "SiLU"}, "bn_eps": 1e-3,
            "bn_momentum": 0.03}
    return YOLOv5Model(dict(base, yaml=d, stride=compute_stride(d, base)), {})


BLOCKS = {
    "nc": 2, "depth_multiple": 1.0, "width_multiple": 1.0,
    "anchors": [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119]],
    "backbone": [
        [-1, 1, "Focus", [16, 3]],                  # 0  /2
        [-1, 1, "GhostConv", [32, 3, 2]],           # 1  /4
        [-1, 2, "C3Ghost", [32]],                   # 2
        [-1, 1, "DWConv", [64, 5, 2]],              # 3  /8
        [-1, 2, "C3x", [64]],                       # 4  (CrossConv (1,3)/(3,1) kernels)
        [-1, 1, "Conv", [64, 3, 2]],                # 5  /16
        [-1, 2, "BottleneckCSP", [64]],             # 6
        [-1, 1, "SPP", [64, [5, 9, 13]]],           # 7
    ],
    "head": [
        [-1, 1, "CrossConv", [64, 3, 1, 1, 1.0, True]],   # 8
        [-1, 1, "nn.Upsample", [None, 2, "nearest"]],     # 9  /8
        [[-1, 4], 1, "Concat", [1]],                      # 10
        [-1, 1, "C3", [32, False]],                       # 11 P3
        [-1, 1, "nn.MaxPool2d", [3, 1, 1]],               # 12
        [-1, 1, "GhostBottleneck", [32, 3, 2]],           # 13 /16 (DWConv shortcut path)
        [[-1, 8], 1, "Concat", [1]],                      # 14
        [-1, 1, "SPPF", [64, 5]],                         # 15 P4
        [-1, 1, "nn.Identity", []],                       # 16
        [[11, 16], 1, "Detect", ["nc", "anchors"]],
    ],
}


def test_expressible_blocks(tmp_path):
    model = _randomise(_from_yaml(BLOCKS), seed=4)
    head, box, rt = _check(model, tmp_path, (64, 96))
    assert _unfolded_error(model, (64, 96)) > 10 * max(head, 1e-7)
    text = (tmp_path / "m.cfg").read_text()
    assert "groups=" in text and "stride_x" not in text and "[reorg3d]" in text
    fused = model.fuse()                                     # conv + bias, no BN: also exportable
    out = tmp_path / "fused"
    out.mkdir()
    _check(fused, out, (64, 96))


def test_blocks_checkpoint_refused_naming_the_layer(tmp_path):
    """golden blocks.pt holds C3TR (a transformer) and ConvTranspose2d: not expressible in Darknet."""
    import zooport
    from zooport.errors import UnsupportedError

    model = zooport.load_yolov5(asset("golden/yolov5-more/blocks/blocks.pt"))  # every block loads (issue 13)
    with pytest.raises(UnsupportedError, match=r"model\.8\b.*(TransformerBlock|C3TR)"):
        zooport.save_darknet(model, tmp_path / "b.cfg", tmp_path / "b.weights", tmp_path / "b.names")
    assert list(tmp_path.iterdir()) == []


# -- errors: named layer, nothing written ------------------------------------------------------------------

def test_hardswish_release_is_refused_and_nothing_written(tmp_path):
    import zooport
    from zooport.errors import UnsupportedError

    ckpt, _ = build_release("v3.1", seed=1)
    save_foreign(ckpt, tmp_path / "ck.pt")
    model = zooport.load_yolov5(tmp_path / "ck.pt")
    out = tmp_path / "out"
    out.mkdir()
    (out / "m.cfg").write_text("keep me")
    with pytest.raises(UnsupportedError, match=r"model\.0\.conv .*Hardswish"):
        zooport.save_darknet(model, out / "m.cfg", out / "m.weights", out / "m.names")
    assert sorted(p.name for p in out.iterdir()) == ["m.cfg"] and (out / "m.cfg").read_text() == "keep me"


def _tiny(row, nc=1):
    """A stride-4 one-level model with ``row`` as its second layer."""
    last = [-1, 1, "Conv", [16, 3, 1 if row[2] == "Contract" else 2]]
    return {"nc": nc, "depth_multiple": 1.0, "width_multiple": 1.0, "anchors": [[10, 13, 16, 30]],
            "backbone": [[-1, 1, "Conv", [8, 3, 2]], row, last], "head": [[[-1], 1, "Detect", ["nc", "anchors"]]]}


def test_failure_while_writing_leaves_nothing(tmp_path, monkeypatch):
    import zooport
    from zooport.converters.darknet import weights as darknet_weights
    from zooport.errors import UsageError, WriteError

    model = _randomise(_from_yaml(_tiny([-1, 1, "Conv", [8, 3, 1]], nc=2)), seed=1)
    out = tmp_path / "out"
    out.mkdir()
    (out / "m.weights").write_bytes(b"old")
    paths = [out / "m.cfg", out / "m.weights", out / "m.names"]

    def boom(path, *a, **k):
        path.write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(darknet_weights, "write_weights", boom)
    with pytest.raises(WriteError, match="No space left on device"):  # one clear error naming the file
        zooport.save_darknet(model, *paths)
    assert sorted(p.name for p in out.iterdir()) == ["m.weights"] and (out / "m.weights").read_bytes() == b"old"
    monkeypatch.undo()
    model.names = ["a", "b\nc"]
    with pytest.raises(UsageError, match="class name 1"):
        zooport.save_darknet(model, *paths)
    with pytest.raises(UsageError, match="multiples of the model's largest stride 4"):
        zooport.save_darknet(model, out / "x.cfg", out / "x.weights", input_size=102)
    assert sorted(p.name for p in out.iterdir()) == ["m.weights"]


@pytest.mark.parametrize("row, match", [
    ([-1, 1, "Contract", [2]], r"model\.1 \(Contract\)"),
    ([-1, 1, "C3TR", [16]], r"model\.1\.m \(TransformerBlock\)"),
    ([-1, 1, "Conv", [16, [1, 3], 1]], None),                       # non-square kernel alone: fine
    ([-1, 1, "Conv", [16, 3, 1, None, 1, 2]], r"model\.1 \(Conv\).*dilation"),
])
def test_unsupported_modules_are_named(row, match, tmp_path):
    import zooport
    from zooport.errors import UnsupportedError

    model = _randomise(_from_yaml(_tiny(row)), seed=2)
    if match is None:
        _check(model, tmp_path, (32, 32))
        return
    with pytest.raises(UnsupportedError, match=match):
        zooport.save_darknet(model, tmp_path / "m.cfg", tmp_path / "m.weights", tmp_path / "m.names")
    assert list(tmp_path.iterdir()) == []


def test_cli_convert_yolov5_to_darknet(tmp_path, capsys):
    from zooport.cli.main import main
    from zooport.converters.darknet.load import load_darknet
    from zooport.converters.yolov5.load import load_yolov5

    ckpt, _ = build_release("v7.0", seed=3)
    src = tmp_path / "y.pt"
    save_foreign(ckpt, src)
    assert main(["convert", "yolov5", str(src), "--to", "darknet", "-o", str(tmp_path / "out")]) == 0
    assert "out.weights" in capsys.readouterr().out
    d = load_darknet(tmp_path / "out.cfg", tmp_path / "out.weights", names=tmp_path / "out.names")
    assert d.names == ["cat", "dog", "bird"] and d.input_size == [640, 640]
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    _compare(load_yolov5(src), d, x)
    assert main(["convert", "yolov5", str(src), "--to", "darknet", "--bn-eps", "1e-6", "-o", str(tmp_path / "cv")]) == 0
    assert "eps 1e-06" in (tmp_path / "cv.cfg").read_text()
    assert main(["convert", "yolov5", str(src), "--bn-eps", "1e-6", "-o", str(tmp_path / "n.pt")]) == 2
    assert main(["convert", "yolov5", str(src), "--to", "darknet", "--bn-scale", "1", "-o", str(tmp_path / "p")]) == 0
    plain = load_darknet(tmp_path / "p.cfg", tmp_path / "p.weights").state_dict()
    scaled = d.state_dict()
    assert torch.equal(scaled["layers.0.conv.weight"], plain["layers.0.conv.weight"] * 1024)
    q = str(tmp_path / "q")
    assert main(["convert", "yolov5", str(src), "--to", "darknet", "--bn-scale", "1000", "-o", q]) == 2
    assert "power of two" in capsys.readouterr().err and not (tmp_path / "q.cfg").exists()
    # an unsupported model through the CLI: one error line, exit 2, nothing written
    bad, _ = build_release("v3.1")
    save_foreign(bad, tmp_path / "h.pt")
    assert main(["convert", "yolov5", str(tmp_path / "h.pt"), "--to", "darknet"]) == 2
    err = capsys.readouterr().err
    assert "Hardswish" in err and "Traceback" not in err
    assert not any(p.suffix in (".cfg", ".weights", ".names") and p.stem == "h" for p in tmp_path.iterdir())


def test_save_darknet_writes_the_names_beside_the_cfg_by_default(tmp_path):
    import zooport
    from zooport.parsers.names import read_names

    ckpt, _ = build_release("v7.0", seed=3)
    save_foreign(ckpt, tmp_path / "y.pt")
    model = zooport.load_yolov5(tmp_path / "y.pt")
    out = tmp_path / "a"
    out.mkdir()
    info = zooport.save_darknet(model, out / "net.cfg", out / "net.weights")
    assert sorted(p.name for p in out.iterdir()) == ["net.cfg", "net.names", "net.weights"]
    assert info["names"] == str(out / "net.names") and read_names(out / "net.names") == ["cat", "dog", "bird"]
    out = tmp_path / "b"
    out.mkdir()
    assert zooport.save_darknet(model, out / "net.cfg", out / "net.weights", names_path=False)["names"] is None
    assert sorted(p.name for p in out.iterdir()) == ["net.cfg", "net.weights"]
