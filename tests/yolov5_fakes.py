"""Builders of YOLOv5-release-like checkpoints for the tests (a fixture module: not collected).

Each release's checkpoint pickles a module tree whose classes carry YOLOv5's
qualified names (``models.common.Focus``, ``models.yolo.Model`` ...). The
classes below are written here, independently of zooport: each has a plain
functional ``forward`` (F.conv2d, explicit BN arithmetic, explicit
activations), which is the reference the native model is compared with.
The foreign names are written by a pickler that emits ``GLOBAL`` opcodes with
those names: no module named ``models`` exists on either side.
"""
from __future__ import annotations

import pickle
import pickletools
import types
import zipfile

import torch
import torch.nn.functional as F
from torch import nn

# --------------------------------------------------------------------------------------------
# A pickle "module" for torch.save whose Pickler writes foreign class names.


class ForeignNamePickler(pickle._Pickler):
    """Writes a class as ``GLOBAL module qualname`` of the foreign name :meth:`foreign_name` gives it (here:
    the class's own ``_foreign`` attribute), any other global as pickle does."""

    def foreign_name(self, obj) -> str | None:
        fq = getattr(obj, "_foreign", None) if isinstance(obj, type) else None
        return fq if fq and obj.__dict__.get("_foreign") == fq else None

    def save_global(self, obj, name=None):
        fq = self.foreign_name(obj)
        if fq:
            module, qual = fq.rsplit(".", 1)
            self.write(pickle.GLOBAL + f"{module}\n{qual}\n".encode())
            self.memoize(obj)
            return
        super().save_global(obj, name)

    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[type] = save_global


FOREIGN_PICKLE = types.SimpleNamespace(__name__="foreign_pickle", Pickler=ForeignNamePickler, dump=pickle.dump)


def save_foreign(obj, path) -> None:
    torch.save(obj, path, pickle_module=FOREIGN_PICKLE, pickle_protocol=2)


# --------------------------------------------------------------------------------------------
# Reference modules (pickled under YOLOv5's names)


def act_fn(act: nn.Module, x):
    if isinstance(act, nn.LeakyReLU):
        return torch.where(x >= 0, x, x * act.negative_slope)
    if isinstance(act, nn.Hardswish):
        return x * torch.clamp(x + 3, 0, 6) / 6
    if isinstance(act, nn.SiLU):
        return x * torch.sigmoid(x)
    if isinstance(act, nn.Identity):
        return x
    raise AssertionError(act)


def bn_fn(bn: nn.BatchNorm2d, x):
    v = lambda t: t.view(1, -1, 1, 1)  # noqa: E731
    return (x - v(bn.running_mean)) / torch.sqrt(v(bn.running_var) + bn.eps) * v(bn.weight) + v(bn.bias)


class Conv(nn.Module):
    _foreign = "models.common.Conv"

    def __init__(self, c1, c2, k=1, s=1, p=None, *, act, eps):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2 if p is None else p, bias=False)
        self.bn = nn.BatchNorm2d(c2, eps=eps, momentum=0.03)
        self.act = act()

    def forward(self, x):
        c = self.conv
        return act_fn(self.act, bn_fn(self.bn, F.conv2d(x, c.weight, None, c.stride, c.padding)))


class Focus(nn.Module):
    _foreign = "models.common.Focus"

    def __init__(self, c1, c2, k=1, *, act, eps):
        super().__init__()
        self.conv = Conv(c1 * 4, c2, k, act=act, eps=eps)

    def forward(self, x):
        # space to depth, written out: pixel (2i+dy, 2j+dx) -> channel block order (0,0),(1,0),(0,1),(1,1)
        return self.conv(torch.cat([x[:, :, dy::2, dx::2] for dx, dy in ((0, 0), (0, 1), (1, 0), (1, 1))], 1))


class Bottleneck(nn.Module):
    _foreign = "models.common.Bottleneck"

    def __init__(self, c1, c2, shortcut=True, *, act, eps):
        super().__init__()
        self.cv1 = Conv(c1, c2, 1, act=act, eps=eps)
        self.cv2 = Conv(c2, c2, 3, act=act, eps=eps)
        self.add = shortcut and c1 == c2

    def forward(self, x):
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class BottleneckCSP(nn.Module):
    _foreign = "models.common.BottleneckCSP"

    def __init__(self, c1, c2, n=1, shortcut=True, *, act, eps, csp_act):
        super().__init__()
        c_ = c2 // 2
        self.cv1 = Conv(c1, c_, 1, act=act, eps=eps)
        self.cv2 = nn.Conv2d(c1, c_, 1, 1, bias=False)
        self.cv3 = nn.Conv2d(c_, c_, 1, 1, bias=False)
        self.cv4 = Conv(2 * c_, c2, 1, act=act, eps=eps)
        self.bn = nn.BatchNorm2d(2 * c_, eps=eps)
        self.act = csp_act()
        self.m = nn.Sequential(*[Bottleneck(c_, c_, shortcut, act=act, eps=eps) for _ in range(n)])

    def forward(self, x):
        y1 = F.conv2d(self.m(self.cv1(x)), self.cv3.weight)
        y2 = F.conv2d(x, self.cv2.weight)
        return self.cv4(act_fn(self.act, bn_fn(self.bn, torch.cat((y1, y2), 1))))


class C3(nn.Module):
    _foreign = "models.common.C3"

    def __init__(self, c1, c2, n=1, shortcut=True, *, act, eps):
        super().__init__()
        c_ = c2 // 2
        self.cv1 = Conv(c1, c_, 1, act=act, eps=eps)
        self.cv2 = Conv(c1, c_, 1, act=act, eps=eps)
        self.cv3 = Conv(2 * c_, c2, 1, act=act, eps=eps)
        self.m = nn.Sequential(*[Bottleneck(c_, c_, shortcut, act=act, eps=eps) for _ in range(n)])

    def forward(self, x):
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


def _maxpool_same(x, k):
    return F.max_pool2d(F.pad(x, (k // 2,) * 4, value=float("-inf")), k, 1)


class SPP(nn.Module):
    _foreign = "models.common.SPP"

    def __init__(self, c1, c2, k=(5, 9, 13), *, act, eps):
        super().__init__()
        c_ = c1 // 2
        self.cv1 = Conv(c1, c_, 1, act=act, eps=eps)
        self.cv2 = Conv(c_ * (len(k) + 1), c2, 1, act=act, eps=eps)
        self.m = nn.ModuleList([nn.MaxPool2d(x, 1, x // 2) for x in k])
        self.k = list(k)

    def forward(self, x):
        x = self.cv1(x)
        return self.cv2(torch.cat([x] + [_maxpool_same(x, k) for k in self.k], 1))


class SPPF(nn.Module):
    _foreign = "models.common.SPPF"

    def __init__(self, c1, c2, k=5, *, act, eps):
        super().__init__()
        c_ = c1 // 2
        self.cv1 = Conv(c1, c_, 1, act=act, eps=eps)
        self.cv2 = Conv(c_ * 4, c2, 1, act=act, eps=eps)
        self.m = nn.MaxPool2d(k, 1, k // 2)

    def forward(self, x):
        # SPPF(5) == SPP(5, 9, 13): computed here the SPP way, as an independent check
        x = self.cv1(x)
        return self.cv2(torch.cat([x] + [_maxpool_same(x, k) for k in (5, 9, 13)], 1))


class Concat(nn.Module):
    _foreign = "models.common.Concat"

    def __init__(self, d=1):
        super().__init__()
        self.d = d

    def forward(self, xs):
        return torch.cat(xs, self.d)


class Upsample(nn.Upsample):
    """nn.Upsample with a reference forward (pickled under torch's own name)."""

    _foreign = "torch.nn.modules.upsampling.Upsample"

    def forward(self, x):
        return x.repeat_interleave(2, 2).repeat_interleave(2, 3)


class Detect(nn.Module):
    _foreign = "models.yolo.Detect"

    def __init__(self, nc, anchors, ch, stride, anchor_grid: bool, convs: bool):
        super().__init__()
        self.nc, self.no, self.nl, self.na = nc, nc + 5, len(anchors), len(anchors[0]) // 2
        self.grid = [torch.zeros(1)] * self.nl
        a = torch.tensor(anchors, dtype=torch.float32).view(self.nl, -1, 2)
        st = torch.tensor(stride, dtype=torch.float32)
        self.register_buffer("anchors", a / st.view(-1, 1, 1))
        if anchor_grid:
            self.register_buffer("anchor_grid", a.clone().view(self.nl, 1, -1, 1, 1, 2))
        self.stride = st
        self.m = nn.ModuleList(nn.Conv2d(c, self.no * self.na, 1) for c in ch) if convs else None
        self.export = False

    def forward(self, xs):
        return [F.conv2d(x, m.weight, m.bias) for m, x in zip(self.m, xs)] if self.m is not None else list(xs)


class Model(nn.Module):
    _foreign = "models.yolo.Model"

    def __init__(self, layers, froms, yaml_key, yaml, names, stride):
        super().__init__()
        setattr(self, yaml_key, yaml)
        self.model = nn.Sequential(*layers)
        self.froms = froms
        self.save = sorted({j for f in froms for j in ([f] if isinstance(f, int) else f) if j != -1})
        self.names = names
        self.stride = torch.tensor(stride, dtype=torch.float32)

    def forward(self, x):
        y = []
        for m, f in zip(self.model, self.froms):
            if f != -1:
                x = y[f] if isinstance(f, int) else [x if j == -1 else y[j] for j in f]
            x = m(x)
            y.append(x)
        return x


class DetectionModel(Model):
    _foreign = "models.yolo.DetectionModel"


class PlainConv2d(nn.Conv2d):
    """v1.0's head convs: nn.Conv2d layers (pickled as torch.nn.modules.conv.Conv2d)."""

    _foreign = "torch.nn.modules.conv.Conv2d"

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias)


# --------------------------------------------------------------------------------------------
# Release recipes: small architectures (channels 8..64) with each release's blocks and quirks.


def _randomise(model: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in list(model.named_parameters()) + list(model.named_buffers()):
            if name.endswith(("anchors", "anchor_grid", "num_batches_tracked")):
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif name.endswith(("running_mean", "bias")):
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)
            elif t.dim() == 1:  # BN weight
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            else:
                fan_in = t[0].numel()
                t.copy_(torch.randn(t.shape, generator=g) / fan_in ** 0.5)


RELEASES = {
    # name: (stem, csp, spp, act, eps, yaml_key, detect style, levels, model class, ckpt keys)
    "v1.0": dict(stem="focus", csp="BottleneckCSP", spp="SPP", act=lambda: nn.LeakyReLU(0.1), eps=1e-4,
                 yaml_key="md", v1_head=True, anchor_grid=True, p6=False, cls=Model,
                 keys=["epoch", "best_fitness", "training_results", "model", "optimizer"]),
    "v3.0": dict(stem="focus", csp="BottleneckCSP", spp="SPP", act=lambda: nn.LeakyReLU(0.1), eps=1e-3,
                 yaml_key="yaml", v1_head=False, anchor_grid=True, p6=False, cls=Model,
                 keys=["epoch", "best_fitness", "training_results", "model", "optimizer"]),
    "v3.1": dict(stem="focus", csp="BottleneckCSP", spp="SPP", act=nn.Hardswish, eps=1e-3, yaml_key="yaml",
                 v1_head=False, anchor_grid=True, p6=False, cls=Model,
                 keys=["epoch", "best_fitness", "training_results", "model", "optimizer"]),
    "v4.0": dict(stem="focus", csp="C3", spp="SPP", act=nn.SiLU, eps=1e-3, yaml_key="yaml", v1_head=False,
                 anchor_grid=True, p6=False, cls=Model,
                 keys=["epoch", "best_fitness", "training_results", "model", "optimizer", "wandb_id"]),
    "v5.0-p6": dict(stem="focus", csp="C3", spp="SPP", act=nn.SiLU, eps=1e-3, yaml_key="yaml", v1_head=False,
                    anchor_grid=True, p6=True, cls=Model,
                    keys=["epoch", "best_fitness", "training_results", "model", "ema", "updates", "optimizer",
                          "wandb_id"]),
    "v6.0": dict(stem="conv6", csp="C3", spp="SPPF", act=nn.SiLU, eps=1e-3, yaml_key="yaml", v1_head=False,
                 anchor_grid=False, p6=False, cls=Model,
                 keys=["epoch", "best_fitness", "model", "ema", "updates", "optimizer", "wandb_id", "date"]),
    "v7.0": dict(stem="conv6", csp="C3", spp="SPPF", act=nn.SiLU, eps=1e-3, yaml_key="yaml", v1_head=False,
                 anchor_grid=False, p6=True, cls=DetectionModel,
                 keys=["epoch", "best_fitness", "model", "ema", "updates", "optimizer", "opt", "git", "date"]),
}

NC = 3


def build_release(name: str, seed: int = 0):
    """(checkpoint dict, reference model in float32 with the fp16-rounded weights, yaml)."""
    r = RELEASES[name]
    act, eps = r["act"], r["eps"]
    kw = dict(act=act, eps=eps)
    rows, layers, froms, ch = [], [], [], []

    def add(f, n, mname, args, module, c2):
        rows.append([f, n, mname, args])
        i = len(layers)
        module.i, module.f, module.type, module.np = i, f, mname, sum(p.numel() for p in module.parameters())
        layers.append(module)
        froms.append(f if f == -1 or isinstance(f, list) else f)
        ch.append(c2)

    def csp(c1, c2, n, shortcut=True):
        if r["csp"] == "BottleneckCSP":
            return BottleneckCSP(c1, c2, n, shortcut, csp_act=act, **kw)
        return C3(c1, c2, n, shortcut, **kw)

    cin = 3
    if r["stem"] == "focus":
        add(-1, 1, "Focus", [8, 3], Focus(cin, 8, 3, **kw), 8)
    else:
        add(-1, 1, "Conv", [8, 6, 2, 2], Conv(cin, 8, 6, 2, 2, **kw), 8)
    add(-1, 1, "Conv", [16, 3, 2], Conv(8, 16, 3, 2, **kw), 16)                # 1 P2/4
    add(-1, 1, r["csp"], [16], csp(16, 16, 1), 16)                              # 2
    add(-1, 1, "Conv", [32, 3, 2], Conv(16, 32, 3, 2, **kw), 32)                # 3 P3/8
    add(-1, 2, r["csp"], [32], csp(32, 32, 2), 32)                              # 4
    top = 64
    add(-1, 1, "Conv", [top, 3, 2], Conv(32, top, 3, 2, **kw), top)             # 5 P4/16
    if r["p6"]:
        add(-1, 1, "Conv", [top, 3, 2], Conv(top, top, 3, 2, **kw), top)        # 6 P5/32
    if r["spp"] == "SPP":
        add(-1, 1, "SPP", [top, [5, 9, 13]], SPP(top, top, (5, 9, 13), **kw), top)
    else:
        add(-1, 1, "SPPF", [top, 5], SPPF(top, top, 5, **kw), top)
    deep = len(layers) - 1
    add(-1, 1, r["csp"], [top, False], csp(top, top, 1, False), top)           # P4 (or P5) head
    heads = [len(layers) - 1]
    if r["p6"]:
        add(-1, 1, "Conv", [32, 1, 1], Conv(top, 32, 1, 1, **kw), 32)
        add(-1, 1, "nn.Upsample", [None, 2, "nearest"], Upsample(None, 2, "nearest"), 32)
        add([-1, 5], 1, "Concat", [1], Concat(1), 32 + top)
        add(-1, 1, r["csp"], [top, False], csp(32 + top, top, 1, False), top)
        heads.insert(0, len(layers) - 1)
    add(-1, 1, "Conv", [32, 1, 1], Conv(top, 32, 1, 1, **kw), 32)
    add(-1, 1, "nn.Upsample", [None, 2, "nearest"], Upsample(None, 2, "nearest"), 32)
    add([-1, 4], 1, "Concat", [1], Concat(1), 64)
    add(-1, 1, r["csp"], [32, False], csp(64, 32, 1, False), 32)              # P3 head
    heads.insert(0, len(layers) - 1)
    strides = [8, 16, 32] if r["p6"] else [8, 16]
    anchors = [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]][:len(strides)]
    no = 3 * (NC + 5)
    if r["v1_head"]:
        # v1.0: head convs are separate nn.Conv2d layers; Detect takes them P5-first; anchors P5-first
        conv_ids = []
        for h in heads:  # shallow to deep, as in v1.0's yaml
            add(h, 1, "nn.Conv2d", ["na * (nc + 5)", 1, 1], PlainConv2d(ch[h], no, 1, 1), no)
            conv_ids.append(len(layers) - 1)
        conv_ids = conv_ids[::-1]
        anchors, strides = anchors[::-1], strides[::-1]
        det = Detect(NC, anchors, [], strides, anchor_grid=True, convs=False)
        add([], 1, "Detect", ["nc", "anchors"], det, no)
        froms[-1] = conv_ids  # what v1.0's parse_model infers (layers with na*(nc+5) channels, P5 first)
        det.f = conv_ids
    else:
        det = Detect(NC, anchors, [ch[h] for h in heads], strides, anchor_grid=r["anchor_grid"], convs=True)
        add(heads, 1, "Detect", ["nc", "anchors"], det, no)
    assert deep >= 0
    yaml = {"nc": NC, "depth_multiple": 1.0, "width_multiple": 1.0, "anchors": anchors,
            "backbone": rows[:deep + 1], "head": rows[deep + 1:]}
    names = ["cat", "dog", "bird"]
    model = r["cls"](layers, froms, r["yaml_key"], yaml, names if name != "v7.0" else dict(enumerate(names)), strides)
    _randomise(model, seed)
    model.eval()
    half = model.half()
    ckpt = {k: None for k in r["keys"]}
    ckpt.update(epoch=-1, model=half)
    if "date" in ckpt:
        ckpt["date"] = "2022-11-22T00:00:00"
    if "git" in ckpt:
        ckpt["git"] = {"remote": "https://github.com/ultralytics/yolov5", "branch": "master", "commit": "915bbf29"}
    if "opt" in ckpt:
        ckpt["opt"] = {"imgsz": 640, "epochs": 300}
    return ckpt, yaml


def reference_raw(ckpt, x):
    """Raw Detect outputs of the pickled reference tree (float32 copy of its fp16 weights)."""
    import copy

    ref = copy.deepcopy(ckpt["model"]).float().eval()
    with torch.no_grad():
        return ref(x)


def globals_of(path) -> set:
    with zipfile.ZipFile(path) as zf:
        data = zf.read([n for n in zf.namelist() if n.endswith("data.pkl")][0])
    return {arg.replace(" ", ".") for op, arg, _ in pickletools.genops(data) if op.name == "GLOBAL"}
