"""Parity of the native DarknetModel with Darknet itself (golden outputs computed by AlexeyAB/darknet).

Acceptance: for the 19 slim topologies and the real yolov3-tiny, ``raw(x)`` matches every
``headNNN_in.f32`` and ``heads_out(x)`` every ``headNNN_out.f32`` within 1e-4 * max(1, max|ref|);
the real yolov3-tiny's final detections match Darknet's ``dets.txt``; the decode of ``forward`` agrees
with Darknet's box formulas applied (here, independently, in NumPy) to Darknet's own head outputs;
fusing conv+BN changes outputs by at most 1e-5 (relative).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import assert_close, asset, read_f32, sha256

from zooport.converters.darknet.load import load_darknet
from zooport.postprocess import darknet_detections, read_detections

SLIM = [
    "Gaussian_yolov3_BDD", "csresnext50-panet-spp", "enet-coco", "yolov2", "yolov2-tiny", "yolov3",
    "yolov3-spp", "yolov3-tiny", "yolov3-tiny-prn", "yolov4", "yolov4-csp", "yolov4-csp-swish",
    "yolov4-p6", "yolov4-sam-mish-csp-reorg-bfm", "yolov4-tiny", "yolov4-tiny-3l", "yolov4x-mish",
    "yolov7", "yolov7-tiny",
]
REAL = ["bus", "zidane"]
# models whose forward() decode is also checked (every head type, new_coords, scale_x_y; the small ones,
# to keep the file fast on 2 cores)
DECODE_CHECKED = {"yolov2", "yolov2-tiny", "Gaussian_yolov3_BDD", "yolov4-csp", "yolov4", "yolov3-tiny",
                  "yolov7-tiny", "yolov4-tiny-3l", "enet-coco"}
YOLOV3_TINY_SHA256 = "dccea06f59b781ec1234ddf8d1e94b9519a97f4245748a7d4db75d5b7080a42c"
TYPE_NAMES = {27: "region", 28: "yolo", 29: "Gaussian_yolo"}



def read_index(path):
    """index.txt: ``net W H C`` then ``head NNN type T shape C H W`` lines."""
    net, heads = None, []
    for line in path.read_text().splitlines():
        t = line.split()
        if not t:
            continue
        if t[0] == "net":
            net = tuple(int(v) for v in t[1:4])
        elif t[0] == "head":
            heads.append((int(t[1]), TYPE_NAMES[int(t[3])], tuple(int(v) for v in t[5:8])))
    return net, heads


def read_input(path, net):
    w, h, c = net
    return torch.from_numpy(read_f32(path, (1, c, h, w)).copy())


def check_heads(model, folder, x, label):
    net, heads = read_index(folder / "index.txt")
    assert model.head_indices == [h[0] for h in heads], f"{label}: head layers differ from index.txt"
    with torch.no_grad():
        raw = model.raw(x)
        out = model.heads_out(x)
    for k, (idx, typ, shape) in enumerate(heads):
        assert model.plan[idx].type == typ
        ref_in = read_f32(folder / f"head{idx:03d}_in.f32", (1, *shape))
        ref_out = read_f32(folder / f"head{idx:03d}_out.f32", (1, *shape))
        assert_close(raw[k], ref_in, what=f"{label} head{idx:03d}_in")
        assert_close(out[k], ref_out, what=f"{label} head{idx:03d}_out")
    return heads


def test_slim_folder_list_is_complete():
    root = asset("golden/darknet-slim")
    found = sorted(p.name for p in root.iterdir() if p.is_dir())
    assert found == sorted(SLIM)


@pytest.fixture(scope="module")
def slim_input():
    return read_input(asset("golden/darknet-slim/input_bus_256.f32"), (256, 256, 3))


@pytest.mark.slow
@pytest.mark.parametrize("name", SLIM)
def test_slim_heads_match_darknet(name, slim_input):
    folder = asset(f"golden/darknet-slim/{name}")
    model = load_darknet(folder / f"{name}.cfg", folder / f"{name}.weights")
    heads = check_heads(model, folder, slim_input, name)
    if name not in DECODE_CHECKED:
        return
    # forward's decode == Darknet's box formulas applied (in NumPy) to Darknet's own head outputs
    with torch.no_grad():
        pred = model(slim_input)
    expected = np.concatenate([decode_reference(model.plan[idx].section, folder, idx, typ, shape, 256, 256)
                               for idx, typ, shape in heads])
    assert_close(pred[0], expected, what=f"{name} decoded forward")


def decode_reference(sec, folder, idx, typ, shape, net_h, net_w):
    """Darknet's get_*_box / detection probabilities, from the golden head files, written out in NumPy.
    Rows: anchor-major, then grid row, then column; (x, y, w, h) in network pixels, obj, class scores."""
    c, h, w = shape
    out = read_f32(folder / f"head{idx:03d}_out.f32", shape).astype(np.float64)
    gy, gx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    anchors = [float(v) for v in sec.options["anchors"].split(",") if v]
    if typ == "region":
        n, classes = int(sec.options["num"]), int(sec.options["classes"])
        size = 5 + classes
        p = out.reshape(h, w, n, size).transpose(2, 3, 0, 1)                 # Darknet's flattened layout
        sig = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731  (get_region_box applies the logistic)
        aw = np.array(anchors[0::2][:n]).reshape(n, 1, 1)
        ah = np.array(anchors[1::2][:n]).reshape(n, 1, 1)
        box = [(sig(p[:, 0]) + gx) / w * net_w, (sig(p[:, 1]) + gy) / h * net_h,
               np.exp(p[:, 2]) * aw / w * net_w, np.exp(p[:, 3]) * ah / h * net_h]
        rest = p[:, 4:]
    else:
        mask = [int(v) for v in sec.options["mask"].split(",")]
        n = len(mask)
        aw = np.array([anchors[2 * m] for m in mask]).reshape(n, 1, 1)
        ah = np.array([anchors[2 * m + 1] for m in mask]).reshape(n, 1, 1)
        p = out.reshape(n, c // n, h, w)
        if typ == "yolo":
            if sec.options.get("new_coords", "0") == "1":
                bw, bh = p[:, 2] ** 2 * 4 * aw, p[:, 3] ** 2 * 4 * ah
            else:
                bw, bh = np.exp(p[:, 2]) * aw, np.exp(p[:, 3]) * ah
            box = [(p[:, 0] + gx) / w * net_w, (p[:, 1] + gy) / h * net_h, bw, bh]
            rest = p[:, 4:]
        else:  # Gaussian_yolo: means at 0, 2, 4, 6; sigmas at 1, 3, 5, 7; obj 8; classes 9..
            box = [(p[:, 0] + gx) / w * net_w, (p[:, 2] + gy) / h * net_h, np.exp(p[:, 4]) * aw,
                   np.exp(p[:, 6]) * ah]
            uc = (p[:, 1] + p[:, 3] + p[:, 5] + p[:, 7]) / 4.0
            rest = np.concatenate([p[:, 8:9], p[:, 9:] * (1.0 - uc)[:, None]], 1)
    full = np.concatenate([np.stack(box, 1), rest], 1)                       # (n, no, h, w)
    return full.transpose(0, 2, 3, 1).reshape(n * h * w, -1)


@pytest.fixture(scope="module")
def yolov3_tiny():
    weights = asset("zoo/darknet/yolov3-tiny.weights")
    assert sha256(weights) == YOLOV3_TINY_SHA256
    return load_darknet(asset("zoo/darknet/yolov3-tiny.cfg"), weights, names=asset("zoo/darknet/coco.names"))


@pytest.mark.slow
@pytest.mark.parametrize("image", REAL)
def test_real_yolov3_tiny_heads_and_detections(image, yolov3_tiny):
    folder = asset(f"golden/real/yolov3-tiny_{image}")
    x = read_input(asset(f"golden/real/input_{image}_416.f32"), (416, 416, 3))
    check_heads(yolov3_tiny, folder, x, f"yolov3-tiny_{image}")
    with torch.no_grad():
        pred = yolov3_tiny(x)
    ours = darknet_detections(pred, (416, 416), thresh=0.25, nms=0.45)
    ref = read_detections((folder / "dets.txt").read_text())
    assert ref, "dets.txt is empty"
    assert len(ours) == len(ref), f"{len(ours)} detections, Darknet printed {len(ref)}"
    ours.sort(key=lambda r: (r[0], -r[1]))
    ref.sort(key=lambda r: (r[0], -r[1]))
    for o, r in zip(ours, ref):
        assert o[0] == r[0], f"class {o[0]} != {r[0]}"
        assert abs(o[1] - r[1]) <= 1e-3, f"prob {o[1]} vs {r[1]}"
        for a, b in zip(o[2:], r[2:]):
            assert abs(a - b) <= 1e-3 * abs(b) + 1e-6, f"box {o[2:]} vs {r[2:]}"


def test_real_yolov3_tiny_metadata(yolov3_tiny):
    m = yolov3_tiny
    assert m.names[:3] == ["person", "bicycle", "car"] and len(m.names) == 80
    assert m.input_size == [416, 416]
    assert m.stride == [32, 16]
    assert m.anchors == [[[81, 82], [135, 169], [344, 319]], [[10, 14], [23, 27], [37, 58]]]
    assert m.preprocess["mode"] == "resize"
    assert m.native_arch()["cfg"] == asset("zoo/darknet/yolov3-tiny.cfg").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["yolov4-tiny", "yolov3-tiny-prn", "yolov2-tiny"])
def test_fused_equals_unfused(name, slim_input):
    folder = asset(f"golden/darknet-slim/{name}")
    model = load_darknet(folder / f"{name}.cfg", folder / f"{name}.weights")
    with torch.no_grad():
        raw0, pred0 = model.raw(slim_input), model(slim_input)
        model.fuse()
        raw1, pred1 = model.raw(slim_input), model(slim_input)
    assert not any(getattr(layer, "bn", None) is not None for layer in model.layers)
    for a, b in zip(raw1, raw0):
        assert_close(a, b.numpy(), rel=1e-5, what=f"{name} fused raw")
    assert_close(pred1, pred0.numpy(), rel=1e-5, what=f"{name} fused forward")


@pytest.mark.slow
def test_native_round_trip(tmp_path, yolov3_tiny):
    from zooport.converters.native import load_native, save_native

    x = torch.rand(1, 3, 128, 160, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = yolov3_tiny(x)
    for suffix in (".pt", ".safetensors"):
        path = save_native(yolov3_tiny, tmp_path / f"m{suffix}")
        m2 = load_native(path)
        assert m2.names == yolov3_tiny.names and m2.anchors == yolov3_tiny.anchors
        with torch.no_grad():
            assert torch.equal(m2(x), ref)
