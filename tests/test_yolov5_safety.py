"""Malicious and broken .pt files are rejected with a ZooportError and no side effect;
the stand-ins that replace YOLOv5's classes are inert; no `models`/`utils` module is imported."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
import types
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

from yolov5_fakes import build_release, save_foreign
from zooport.errors import CheckpointError, UnsafeCheckpointError, ZooportError


class Ref:
    """A global reference written verbatim into the pickle (the referenced object need not exist)."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *a):  # pickle requires reduce callables to be callable; never called here
        raise AssertionError("not to be called")


class _RefPickler(pickle._Pickler):
    def save(self, obj, save_persistent_id=True):
        if isinstance(obj, Ref):
            self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
            return
        super().save(obj, save_persistent_id)


class _RefPickle:
    __name__ = "ref_pickle"
    Pickler = _RefPickler
    dump = staticmethod(pickle.dump)


class Gadget:
    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


def _save_ref(obj, path, protocol=2):
    torch.save(obj, path, pickle_module=_RefPickle, pickle_protocol=protocol)


def _gadgets(sentinel: Path) -> dict:
    s = str(sentinel)
    return {
        "os.system": Gadget(Ref("os", "system"), (f"touch {s}",)),
        "posix.system": Gadget(Ref("posix", "system"), (f"touch {s}",)),
        "builtins.eval": Gadget(Ref("builtins", "eval"), (f"open({s!r}, 'w')",)),
        "builtins.exec": Gadget(Ref("builtins", "exec"), (f"open({s!r}, 'w')",)),
        "builtins.getattr": Gadget(Ref("builtins", "getattr"), (Ref("os", "system"), "__call__")),
        "subprocess.Popen": Gadget(Ref("subprocess", "Popen"), (["touch", s],)),
        "torch.hub.load": Gadget(Ref("torch.hub", "load"), ("evil/repo", "model")),
        "models.common.os": Gadget(Ref("models.common", "os"), ()),  # an allowed module, a name not allowed
        "copyreg._reconstructor": Gadget(Ref("copyreg", "_reconstructor"), (Ref("os", "system"), object, None)),
    }


@pytest.fixture
def sentinel(tmp_path):
    p = tmp_path / "PWNED"
    yield p
    assert not p.exists(), "a payload ran"


def _load(path):
    from zooport.converters.yolov5.load import load_yolov5

    return load_yolov5(path)


@pytest.mark.parametrize("name", sorted(_gadgets(Path("x"))))
def test_code_execution_gadgets_rejected(name, tmp_path, sentinel):
    g = _gadgets(sentinel)[name]
    p = tmp_path / "evil.pt"
    _save_ref({"epoch": -1, "model": g}, p)
    with pytest.raises(UnsafeCheckpointError, match="allowlist"):
        _load(p)
    assert not sentinel.exists()


def test_gadget_hidden_in_real_structure_and_stack_global(tmp_path, sentinel):
    # a well-formed YOLOv5 checkpoint with a payload tucked into an unused entry
    ckpt, _ = build_release("v4.0")
    ckpt["opt"] = Gadget(os.system, (f"touch {sentinel}",))
    p = tmp_path / "hidden.pt"
    save_foreign(ckpt, p)
    with pytest.raises(UnsafeCheckpointError, match="posix.system|os.system"):
        _load(p)
    # the same payload in a legacy (pre-1.6, non-zip) file
    pl = tmp_path / "hidden_legacy.pt"
    torch.save(ckpt, pl, pickle_module=__import__("yolov5_fakes").FOREIGN_PICKLE, pickle_protocol=2,
               _use_new_zipfile_serialization=False)
    with pytest.raises(UnsafeCheckpointError, match="posix.system|os.system"):
        _load(pl)
    # protocol 4: STACK_GLOBAL instead of GLOBAL
    p4 = tmp_path / "proto4.pt"
    torch.save({"model": Gadget(os.system, (f"touch {sentinel}",))}, p4, pickle_protocol=4)
    with pytest.raises(UnsafeCheckpointError):
        _load(p4)
    assert not sentinel.exists()


def _valid(tmp_path) -> Path:
    ckpt, _ = build_release("v6.0")
    p = tmp_path / "valid.pt"
    save_foreign(ckpt, p)
    return p


def _rewrite_zip(src: Path, dst: Path, drop=(), add=(), patch=None):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            if info.filename in drop:
                continue
            data = zin.read(info.filename)
            if patch:
                data = patch(info.filename, data)
            zout.writestr(info.filename, data)
        for name, data in add:
            zout.writestr(zipfile.ZipInfo(name), data)


def test_torchscript_rejected(tmp_path):
    p = tmp_path / "ts.pt"
    torch.jit.save(torch.jit.script(nn.Linear(2, 2)), str(p))
    with pytest.raises(UnsafeCheckpointError, match="TorchScript"):
        _load(p)


@pytest.mark.parametrize("member", ["../escape.txt", "/tmp/zooport_abs_escape.txt", "archive/../../x"])
def test_path_traversal_rejected(member, tmp_path):
    src = _valid(tmp_path)
    bad = tmp_path / "traversal.pt"
    _rewrite_zip(src, bad, add=[(member, b"boom")])
    with pytest.raises(UnsafeCheckpointError, match="absolute or '..'"):
        _load(bad)
    assert not (tmp_path.parent / "escape.txt").exists()
    assert not Path("/tmp/zooport_abs_escape.txt").exists()


def test_broken_files_rejected(tmp_path):
    src = _valid(tmp_path)
    raw = src.read_bytes()
    cases = {}
    (tmp_path / "empty.pt").write_bytes(b"")
    cases["empty.pt"] = "empty file"
    (tmp_path / "random.pt").write_bytes(os.urandom(4096))
    cases["random.pt"] = "not a PyTorch zip"
    (tmp_path / "truncated.pt").write_bytes(raw[: len(raw) // 2])
    cases["truncated.pt"] = "broken or truncated|unreadable|missing"
    with zipfile.ZipFile(src) as zf:
        storage = [n for n in zf.namelist() if "/data/" in n][0]
        root = zf.namelist()[0].split("/")[0]
    _rewrite_zip(src, tmp_path / "missing_storage.pt", drop=(storage,))
    cases["missing_storage.pt"] = "missing from the archive"
    _rewrite_zip(src, tmp_path / "short_storage.pt", patch=lambda n, d: d[:2] if n == storage else d)
    cases["short_storage.pt"] = "holds 2 bytes"
    _rewrite_zip(src, tmp_path / "no_pickle.pt", drop=(f"{root}/data.pkl",))
    cases["no_pickle.pt"] = "data.pkl"
    _rewrite_zip(src, tmp_path / "bad_pickle.pt", patch=lambda n, d: d[:100] if n.endswith("data.pkl") else d)
    cases["bad_pickle.pt"] = "malformed pickle"
    torch.save({"model": torch.zeros(1000)}, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    leg = (tmp_path / "legacy.pt").read_bytes()
    (tmp_path / "legacy_truncated.pt").write_bytes(leg[:-100])
    cases["legacy_truncated.pt"] = "truncated"
    cases["legacy.pt"] = "expected a pickled models.yolo"
    torch.save({"model": 1}, tmp_path / "not_yolo.pt")
    cases["not_yolo.pt"] = "expected a pickled models.yolo"
    for name, msg in cases.items():
        with pytest.raises(CheckpointError, match=msg) as ei:
            _load(tmp_path / name)
        assert name in str(ei.value) or "valid.pt" in str(ei.value), str(ei.value)


def _claiming_pickle(numel: int):
    """A pickle module for torch.save whose storage records claim ``numel`` elements, whatever they hold."""

    class _Pickler(pickle._Pickler):
        def save_pers(self, pid):
            if isinstance(pid, tuple) and pid and pid[0] == "storage":
                pid = pid[:4] + (numel,) + pid[5:]
            super().save_pers(pid)

    return types.SimpleNamespace(__name__=f"claim{numel}_pickle", Pickler=_Pickler, dump=pickle.dump)


def test_tensor_larger_than_storage_rejected(tmp_path):
    """The record and the member agree on 2 elements, the tensor view needs 100: the view bound catches it."""
    p = tmp_path / "oob_src.pt"
    torch.save({"model": torch.zeros(10, 10)}, p, pickle_module=_claiming_pickle(2), pickle_protocol=2)
    bad = tmp_path / "oob.pt"
    _rewrite_zip(p, bad, patch=lambda n, d: d[:8] if "/data/" in n else d)
    with pytest.raises(CheckpointError, match="needs 100 elements but its storage holds 2"):
        _load(bad)


def _with_member(src: Path, dst: Path, name: str, data_chunks, compress: int):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            if info.filename == name:
                zi = zipfile.ZipInfo(name)
                zi.compress_type = compress
                with zout.open(zi, "w", force_zip64=True) as w:
                    for chunk in data_chunks(zin.read(name)):
                        w.write(chunk)
            else:
                zout.writestr(info.filename, zin.read(info.filename))


def _first_storage(src: Path) -> tuple[str, str]:
    with zipfile.ZipFile(src) as zf:
        names = zf.namelist()
    return [n for n in names if "/data/" in n][0], [n for n in names if n.endswith("/data.pkl")][0]


def test_compressed_storage_zip_bomb_rejected_fast(tmp_path):
    """A deflated storage that inflates to 64 MiB: refused from the zip directory, nothing inflated."""
    import time

    src = _valid(tmp_path)
    storage, _ = _first_storage(src)
    bomb = tmp_path / "bomb.pt"
    _with_member(src, bomb, storage, lambda d: [d] + [bytes(1 << 24)] * 4, zipfile.ZIP_DEFLATED)
    assert bomb.stat().st_size < 1 << 20  # 64 MiB of zeros in well under 1 MiB
    t0 = time.perf_counter()
    with pytest.raises(UnsafeCheckpointError, match=r"bomb\.pt: storage .* is compressed"):
        _load(bomb)
    assert time.perf_counter() - t0 < 1.0
    # the same storage deflated but of the right size, and a deflated data.pkl: refused too
    same = tmp_path / "deflated.pt"
    _with_member(src, same, storage, lambda d: [d], zipfile.ZIP_DEFLATED)
    with pytest.raises(UnsafeCheckpointError, match="compressed"):
        _load(same)
    _, pkl = _first_storage(src)
    dpkl = tmp_path / "deflated_pkl.pt"
    _with_member(src, dpkl, pkl, lambda d: [d], zipfile.ZIP_DEFLATED)
    with pytest.raises(UnsafeCheckpointError, match="data.pkl is compressed"):
        _load(dpkl)
    from zooport.loading import sniff_checkpoint

    with pytest.raises(UnsafeCheckpointError, match="data.pkl is compressed"):
        sniff_checkpoint(dpkl)


def test_storage_member_larger_than_needed_rejected_fast(tmp_path):
    """A stored member bigger than its record needs (here by 64 MiB) is refused before it is read."""
    import time

    src = _valid(tmp_path)
    storage, _ = _first_storage(src)
    big = tmp_path / "big.pt"
    _with_member(src, big, storage, lambda d: [d] + [bytes(1 << 24)] * 4, zipfile.ZIP_STORED)
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError, match=r"big\.pt: storage .* holds \d+ bytes, its record needs \d+"):
        _load(big)
    assert time.perf_counter() - t0 < 1.0


def test_legacy_storage_claims_bounded_together(tmp_path):
    """Legacy records claiming 8000 elements (32 KB) each: each alone fits in the file, together they do not."""
    p = tmp_path / "claims.pt"
    torch.save({"model": [torch.zeros(5000) for _ in range(10)]}, p, pickle_module=_claiming_pickle(8000), pickle_protocol=2,
               _use_new_zipfile_serialization=False)
    assert p.stat().st_size > 32000  # every single claim fits in the file; together they do not
    with pytest.raises(CheckpointError, match="more than the file holds"):
        _load(p)


@pytest.mark.parametrize("kind", ["sparse", "quantized"])
def test_sparse_and_quantized_rejected(kind, tmp_path):
    t = torch.eye(3).to_sparse() if kind == "sparse" else torch.quantize_per_tensor(torch.rand(4), 0.1, 0, torch.qint8)
    p = tmp_path / f"{kind}.pt"
    torch.save({"model": t}, p)
    with pytest.raises(CheckpointError, match=kind):
        _load(p)


def test_non_float_weight_rejected(tmp_path):
    ckpt, _ = build_release("v4.0")
    conv = ckpt["model"].model[0].conv.conv
    conv.weight = nn.Parameter(torch.ones_like(conv.weight, dtype=torch.int32), requires_grad=False)
    p = tmp_path / "intw.pt"
    save_foreign(ckpt, p)
    with pytest.raises(CheckpointError, match=r"model\.0\.conv\.conv\.weight.*float weights expected"):
        _load(p)


def test_standins_are_inert(tmp_path):
    from zooport.parsers.pickled.allowlist import StandIn, resolve_global, standin_class
    from zooport.parsers.pickled.reader import read_torch_zip

    before = set(sys.modules)
    calls = []
    cls = resolve_global("models.common", "Conv")
    assert cls is standin_class("models.common.Conv") and issubclass(cls, StandIn)
    assert not issubclass(cls, nn.Module)
    obj = cls(lambda: calls.append("ctor"), 1)
    obj.__setstate__({"forward": lambda *a: calls.append("state"), "_modules": {}})
    assert not callable(obj)
    with pytest.raises(AttributeError):
        obj.forward  # noqa: B018  the pickled dict is data, not attributes
    with pytest.raises(AttributeError):
        obj.anything = 1  # __slots__: nothing can be attached
    assert calls == []
    assert set(StandIn.__dict__) - {"__module__", "__doc__", "__slots__", "args", "state", "__new__", "__init__",
                                    "__setstate__", "__repr__", "get", "children", "foreign"} == set()
    # a whole real-structure checkpoint comes out as data only
    p = _valid(tmp_path)
    top = read_torch_zip(p)
    assert isinstance(top["model"], StandIn) and top["model"].foreign == "models.yolo.Model"
    assert not any(m.split(".")[0] in ("models", "utils") for m in set(sys.modules) - before)


@pytest.mark.slow
def test_sys_modules_never_gains_models_or_utils(tmp_path):
    """In a fresh interpreter with booby-trapped `models`/`utils` packages first on sys.path."""
    from helpers import asset, assets_root

    fake = _valid(tmp_path)
    ckpt7, _ = build_release("v7.0")  # models.yolo.DetectionModel, as the real v7.0 release pickles it
    save_foreign(ckpt7, tmp_path / "v7.pt")
    paths = [str(fake), str(tmp_path / "v7.pt")]
    if assets_root() is not None:  # the real release too, when the assets are there
        paths.append(str(asset("zoo/yolov5/yolov5n.pt")))
    trap = tmp_path / "trap"
    for pkg in ("models", "utils"):
        (trap / pkg).mkdir(parents=True)
        (trap / pkg / "__init__.py").write_text(f"open({str(tmp_path / ('IMPORTED_' + pkg))!r}, 'w').close()\n")
    code = textwrap.dedent(f"""
        import sys
        seen = []
        sys.addaudithook(lambda ev, a: seen.append(a[0]) if ev == "import" and
                         str(a[0]).split(".")[0] in ("models", "utils") else None)
        sys.path.insert(0, {str(trap)!r})
        import zooport
        for p in {paths!r}:
            m = zooport.load_yolov5(p)
            assert type(m).__module__ == "zooport.model_defs.yolov5.model"
        bad = [k for k in sys.modules if k.split(".")[0] in ("models", "utils")]
        assert not seen and not bad, (seen, bad)
        print("CLEAN")
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "CLEAN" in r.stdout, r.stderr[-2000:]
    assert not (tmp_path / "IMPORTED_models").exists() and not (tmp_path / "IMPORTED_utils").exists()


@pytest.mark.slow
def test_cli_rejects_without_traceback_or_output(tmp_path, sentinel):
    p = tmp_path / "evil.pt"
    _save_ref({"model": _gadgets(sentinel)["os.system"]}, p)
    out = tmp_path / "out.pt"
    r = subprocess.run([sys.executable, "-m", "zooport", "convert", "yolov5", str(p), "-o", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and "allowlist" in r.stderr
    assert not out.exists() and not list(tmp_path.glob(".out.pt*"))
    assert isinstance(UnsafeCheckpointError("x"), ZooportError)
