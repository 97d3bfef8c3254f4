"""The batch-norm epsilon of the YOLOv5 -> Darknet export (issue 17): zooport.converters.yolov5.bn_fold.

fold_variance gives the source's float32 denominator exactly; the default export (fold for Darknet's 1e-5,
conv weights and means x1024, variances x2**20) runs bit-identically under any consumer eps up to 6e-5
(OpenCV 4's importer uses 1e-6); bn_scale=1 writes YOLOv5's own magnitudes.
"""
from __future__ import annotations

import pytest
import torch

from yolov5_fakes import build_release, save_foreign


@pytest.mark.parametrize("eps_from, eps_to, all_exact", [(1e-3, 1e-5, True), (1e-3, 1e-6, True),
                                                        (1e-4, 1e-5, False), (1e-5, 1e-3, False)])
def test_fold_variance_gives_the_same_float32_denominator(eps_from, eps_to, all_exact):
    """fold_variance(var, a, b) + b rounds to exactly var + a in float32, so sqrt(var' + b) is the source's own
    denominator: for every variance when a = 1e-3 (YOLOv5) and b = 1e-5 (Darknet) or 1e-6 (OpenCV); else
    where a float32 solution exists, one ulp of the sum off where none does. Folding back gives var's sum."""
    from zooport.converters.yolov5.bn_fold import fold_variance

    g = torch.Generator().manual_seed(0)
    var = torch.cat([torch.rand(20000, generator=g) * 10 ** torch.randint(-7, 3, (20000,), generator=g).float(),
                     torch.tensor([0.0, 1e-30, 3e-3, 1.0, 123456.7])])
    a, b = torch.tensor(eps_from), torch.tensor(eps_to)
    v = fold_variance(var, eps_from, eps_to)
    target = var + a
    big = torch.maximum(target.abs(), v.abs())
    ulp = torch.nextafter(big, torch.tensor(float("inf"))) - big
    exact = (v + b) == target
    assert v.dtype == torch.float32 and bool(exact.all()) == all_exact
    assert exact.double().mean() > 0.5 and bool(((v + b - target).abs() <= ulp).all())
    # where it misses, no float32 near the fold does better
    for direction in (float("inf"), -float("inf")):
        w = v
        for _ in range(4):
            w = torch.nextafter(w, torch.tensor(direction))
            assert not bool(((w + b) == target)[~exact].any())
    if all_exact:
        naive = (var.double() + eps_from - eps_to).float()          # rounding once in float64 is not enough
        assert not torch.equal(naive + b, target)
        back = fold_variance(fold_variance(var, eps_from, eps_to), eps_to, eps_from)
        assert torch.equal(back + a, target)


def test_fold_variance_refuses_a_non_finite_variance():
    from zooport.converters.yolov5.bn_fold import fold_variance
    from zooport.errors import WeightsError

    with pytest.raises(WeightsError, match=r"channel 2 is nan"):
        fold_variance(torch.tensor([1.0, 2.0, float("nan")]), 1e-3, 1e-5)


def _small_variance_release(tmp_path):
    """v6.0 test checkpoint with YOLOv5-like small running variances (where the eps matters), outputs in scale."""
    from zooport.converters.yolov5.load import load_yolov5

    ckpt, _ = build_release("v6.0", seed=8)
    save_foreign(ckpt, tmp_path / "ck.pt")
    model = load_yolov5(tmp_path / "ck.pt")
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_var.mul_(0.005)
                m.weight.mul_(0.005 ** 0.5)
    return model


@pytest.mark.parametrize("consumer_eps", [1e-5, 1e-6, 0.0, 5e-5])
def test_default_export_is_exact_for_any_small_consumer_eps(tmp_path, monkeypatch, consumer_eps):
    """The default export (fold for Darknet's 1e-5, scale k = 1024): a Darknet that normalises with OpenCV 4's
    1e-6, with no eps, or with 5e-5 computes YOLOv5's outputs bit for bit, as Darknet's own 1e-5 does; the
    unscaled fold (bn_scale=1) is visibly off for those. Conv weights, means and variances carry k, k, k**2."""
    from zooport.converters.darknet.load import load_darknet
    from zooport.converters.yolov5.to_darknet import save_darknet
    from zooport.model_defs.darknet import layers as darknet_layers

    model = _small_variance_release(tmp_path)
    paths = [tmp_path / "m.cfg", tmp_path / "m.weights"]
    save_darknet(model, *paths)
    assert "x1024, variances x1.04858e+06" in paths[0].read_text()
    plain = [tmp_path / "p.cfg", tmp_path / "p.weights"]
    save_darknet(model, *plain, bn_scale=1)
    monkeypatch.setattr(darknet_layers, "BN_EPS", consumer_eps)
    d, p = load_darknet(*paths), load_darknet(*plain)
    own, dsd = model.state_dict(), d.state_dict()
    assert torch.equal(dsd["layers.0.conv.weight"], own["model.0.conv.weight"] * 1024)
    assert torch.equal(dsd["layers.0.bn.running_mean"], own["model.0.bn.running_mean"] * 1024)
    assert torch.equal(dsd["layers.0.bn.weight"], own["model.0.bn.weight"])
    var = own["model.0.bn.running_var"]
    assert torch.equal(dsd["layers.0.bn.running_var"] + torch.tensor(1e-5), (var + torch.tensor(1e-3)) * 2 ** 20)
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = [r.sigmoid() for r in model.raw(x)]
        assert all(torch.equal(a, b) for a, b in zip(d.raw(x), ref))
        off = max((a - b).abs().max().item() for a, b in zip(p.raw(x), ref))
    assert (off == 0.0) == (consumer_eps == 1e-5), off       # the plain fold is exact for 1e-5 only
    if consumer_eps != 1e-5:
        assert off > 1e-5


def test_bn_eps_fold_for_another_consumer(tmp_path, monkeypatch):
    """bn_eps=1e-6, bn_scale=1: rolling variance = var + eps - 1e-6 (YOLOv5's magnitudes), and a Darknet that
    normalises with 1e-6 then computes YOLOv5's outputs; the inverse with the same settings is exact."""
    from zooport.converters.darknet.load import load_darknet
    from zooport.converters.yolov5.to_darknet import darknet_to_yolov5_state_dict, save_darknet
    from zooport.errors import UsageError
    from zooport.model_defs.darknet import layers as darknet_layers

    model = _small_variance_release(tmp_path)
    paths = [tmp_path / "m.cfg", tmp_path / "m.weights"]
    save_darknet(model, *paths, bn_eps=1e-6, bn_scale=1)
    assert "eps 1e-06" in paths[0].read_text() and "x1024" not in paths[0].read_text()
    monkeypatch.setattr(darknet_layers, "BN_EPS", 1e-6)
    d = load_darknet(*paths)
    var = model.state_dict()["model.0.bn.running_var"]
    folded = d.state_dict()["layers.0.bn.running_var"]
    assert torch.allclose(folded.double(), var.double() + 1e-3 - 1e-6, rtol=1e-7)
    assert torch.equal(folded + torch.tensor(1e-6), var + torch.tensor(1e-3))
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert all(torch.equal(a, b.sigmoid()) for a, b in zip(d.raw(x), model.raw(x)))
    back = darknet_to_yolov5_state_dict(model, d, bn_eps=1e-6, bn_scale=1)
    assert ((back["model.0.bn.running_var"].double() - var.double()).abs() / var.double()).max() <= 1e-6
    with pytest.raises(UsageError, match="power of two"):
        save_darknet(model, *paths, bn_scale=1000)
