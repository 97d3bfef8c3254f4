"""Early validation, sniff-and-hint messages and a clean terminal, for every verb.

Bad arguments fail with exit 2 and one ``zooport: error:`` line *before* anything is loaded (the loaders
are replaced by functions that fail the test if called). Synthetic files only: no ZOOPORT_ASSETS needed.
"""
from __future__ import annotations

import io
import time

import pytest
import torch

import zooport
from test_cli_vocabulary import det_pair
from zooport.cli.main import main


def _never(*a, **k):
    raise AssertionError("the model was loaded before the arguments were checked")


@pytest.fixture
def no_load(monkeypatch):
    """Every model loader replaced by one that fails the test."""
    import zooport.converters.darknet.load as dk
    import zooport.converters.mmdet.load as mm
    import zooport.converters.yolov5.load as y5
    import zooport.eval.verify as ev
    import zooport.loading as loading

    for mod, name in ((loading, "load_model"), (dk, "load_darknet"), (y5, "load_yolov5"), (mm, "load_mmdet"),
                      (mm, "read_checkpoint"), (ev, "verify"), (ev, "merge")):
        monkeypatch.setattr(mod, name, _never)


def run(argv, capsys):
    t = time.perf_counter()
    rc = main(argv)
    dt = time.perf_counter() - t
    out, err = capsys.readouterr()
    return rc, err, dt


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("zooport: error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def pair(tmp_path):
    cfg, w = det_pair(tmp_path)
    return str(cfg), str(w), tmp_path


@pytest.mark.parametrize("argv,msg", [
    (["--opset", "7"], "--opset 7: not supported; expected 11..20"),
    (["--opset", "99"], "--opset 99"),
    (["--conf", "1.5"], "--conf 1.5: expected a value in [0, 1]"),
    (["--iou", "-0.1"], "--iou -0.1"),
    (["--batch", "0"], "--batch 0: expected an integer >= 1"),
    (["--max-det", "0"], "--max-det 0"),
    (["--imgsz", "0"], "--imgsz 0: expected pixels"),
    (["--imgsz", "640", "640", "3"], "--imgsz takes H or H W"),
    (["-o", "nowhere/x.onnx"], "does not exist"),
    (["--names", "missing.names"], "missing.names: no such file"),
])
def test_export_bad_arguments_fail_before_loading(pair, capsys, no_load, monkeypatch, argv, msg):
    cfg, w, d = pair
    monkeypatch.chdir(d)
    rc, err, dt = run(["export", "onnx", cfg, w, *argv], capsys)
    assert rc == 2 and msg in one_error_line(err)
    assert dt < 1.0, dt  # milliseconds in practice; the model load alone takes longer than this bound
    assert sorted(p.name for p in d.iterdir()) == ["det.cfg", "det.weights"]


@pytest.mark.parametrize("argv,msg", [
    (["--imgsz", "0"], "--imgsz 0"),
    (["--imgsz", "99999"], "--imgsz 99999"),
    (["--batch", "0"], "--batch 0"),
    (["--workers", "-1"], "--workers -1"),
    (["--conf", "2"], "--conf 2.0"),
    (["--iou", "1.01"], "--iou 1.01"),
    (["--json", "missing/out.json"], "does not exist"),
    (["--json", "."], "is a directory"),
    (["--shard", "1of4", "--json", "p.json"], "--shard must look like I/N"),
    (["--class-map", "coco-voc"], "pass --names FILE"),
    (["--class-map", "nomap.yaml"], "nomap.yaml: no such file"),
    (["--tolerance", "-1"], "--tolerance -1.0"),
])
def test_verify_bad_arguments_fail_before_loading(pair, capsys, no_load, monkeypatch, argv, msg):
    cfg, w, d = pair
    monkeypatch.chdir(d)
    (d / "coco").mkdir()
    rc, err, _ = run(["verify", cfg, w, "--coco", "coco", *argv], capsys)
    assert rc == 2 and msg in one_error_line(err)


def test_verify_missing_dataset_and_model_fail_before_loading(pair, capsys, no_load):
    cfg, w, d = pair
    rc, err, _ = run(["verify", cfg, w, "--coco", str(d / "nope")], capsys)
    assert rc == 2 and "nope: no such folder (--coco)" in one_error_line(err)
    (d / "coco").mkdir()
    rc, err, _ = run(["verify", str(d / "m.pt"), "--coco", str(d / "coco")], capsys)
    assert rc == 2 and "m.pt: no such file" in one_error_line(err)
    rc, err, _ = run(["verify", "--merge", str(d / "p0.json")], capsys)
    assert rc == 2 and "p0.json: no such file" in one_error_line(err)


@pytest.mark.parametrize("argv,msg", [
    (["--num-classes", "0"], "--num-classes 0: expected an integer >= 1"),
    (["-o", "nowhere/x.pt"], "does not exist"),
    (["--names", "nope.names"], "nope.names: no such file"),
])
def test_convert_bad_arguments_fail_before_loading(pair, capsys, no_load, monkeypatch, argv, msg):
    cfg, w, d = pair
    monkeypatch.chdir(d)
    rc, err, _ = run(["convert", "darknet", cfg, w, *argv], capsys)
    assert rc == 2 and msg in one_error_line(err)


def test_swapped_and_directory_hints(pair, capsys, no_load):
    cfg, w, d = pair
    for argv in (["convert", "darknet", w, cfg], ["export", "onnx", w, cfg]):
        rc, err, _ = run(argv, capsys)
        assert rc == 2 and "arguments swapped? the order is CFG WEIGHTS" in one_error_line(err), argv
    rc, err, _ = run(["convert", "darknet", w, w], capsys)
    assert rc == 2 and "the order is CFG WEIGHTS" in one_error_line(err)
    for argv in (["convert", "darknet", str(d), w], ["convert", "yolov5", str(d)], ["convert", "mmdet", str(d)],
                 ["export", "onnx", str(d)], ["info", "darknet", str(d)]):
        rc, err, _ = run(argv, capsys)
        assert rc == 2 and "is a directory" in one_error_line(err), argv


def test_sniff_hints_name_the_right_verb(tmp_path, capsys, no_load):
    from yolov5_fakes import build_release, save_foreign

    ckpt, _ = build_release("v7.0", seed=3)
    y5 = tmp_path / "y.pt"
    save_foreign(ckpt, y5)
    cfg, w = det_pair(tmp_path)
    mm = tmp_path / "m.pth"
    torch.save({"meta": {"cfg": "model = dict()"}, "state_dict": {"a": torch.zeros(1)}}, mm)
    cases = [(["convert", "darknet", str(y5), str(w)], "looks like a YOLOv5 checkpoint: use `zooport convert yolov5"),
             (["convert", "darknet", str(cfg), str(y5)], "looks like a YOLOv5 checkpoint: use `zooport convert yolov5"),
             (["convert", "mmdet", str(y5)], "looks like a YOLOv5 checkpoint: use `zooport convert yolov5"),
             (["convert", "yolov5", str(mm)], "looks like an MMDetection checkpoint: use `zooport convert mmdet"),
             (["convert", "darknet", str(mm), str(w)], "use `zooport convert mmdet"),
             (["convert", "yolov5", str(w)], "looks like a Darknet file: use `zooport convert darknet CFG WEIGHTS`"),
             (["convert", "mmdet", str(cfg)], "use `zooport convert darknet")]
    for argv, msg in cases:
        rc, err, _ = run(argv, capsys)
        assert rc == 2 and msg in one_error_line(err), (argv, err)


def test_sniff_hint_for_a_native_checkpoint(tmp_path, capsys):
    cfg, w = det_pair(tmp_path)
    native = tmp_path / "n.pt"
    zooport.save_native(zooport.load(cfg, w), native)
    rc, err, _ = run(["convert", "yolov5", str(native)], capsys)
    assert rc == 2 and "looks like a zooport checkpoint (already converted)" in one_error_line(err)


class _Foreign:
    pass


def test_torch_advice_is_never_passed_on(tmp_path):
    """A pickle with a foreign global: the message names it, never torch's add_safe_globals/weights_only advice."""
    p = tmp_path / "evil.pt"
    torch.save({"zooport_format": 1, "x": _Foreign()}, p)
    for fn in (zooport.load_native, lambda f: zooport.load_mmdet(f, {})):
        with pytest.raises(zooport.UnsafeCheckpointError) as e:
            fn(p)
        msg = str(e.value)
        assert "_Foreign" in msg and "nothing was executed" in msg, msg
        for advice in ("add_safe_globals", "safe_globals", "weights_only=False", "trust", "\x1b["):
            assert advice not in msg, (advice, msg)


def test_class_map_without_names_says_pass_names():
    from zooport.eval.classmap import resolve_class_map

    with pytest.raises(zooport.DatasetError, match="pass --names FILE"):
        resolve_class_map("coco-voc", ["class0", "class1"], ["person", "dog"])
    with pytest.raises(zooport.DatasetError, match="pass --names FILE"):
        resolve_class_map(None, ["class0", "class1"], ["person", "dog"])
    assert resolve_class_map("coco-voc", ["person", "tv"], ["person", "tvmonitor"]) == ["person", "tvmonitor"]


# -- terminal ---------------------------------------------------------------------------------------------

class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_progress_only_on_a_terminal(monkeypatch):
    from zooport.cli._args import close_bars, progress

    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert progress(total=3).disable
    tty = _Tty()
    monkeypatch.setattr("sys.stderr", tty)
    bar = progress(total=3, desc="work")
    assert not bar.disable
    bar.update()
    close_bars()
    assert bar.disable  # tqdm marks a closed bar disabled
    assert "work" in tty.getvalue()


def test_error_never_shares_a_line_with_a_bar(pair, monkeypatch):
    """On a terminal the bar is drawn, then cleared before the error line: after the last carriage
    return there is only the error."""
    import zooport.converters.darknet.load as dk

    cfg, w, d = pair
    tty = _Tty()
    monkeypatch.setattr("sys.stderr", tty)

    def slow_fail(*a, **k):
        import sys

        from tqdm import tqdm

        t = tqdm(total=2, desc="inner", file=sys.stderr)  # a bar a library left open
        t.update()
        raise zooport.WeightsError("bad weights")

    monkeypatch.setattr(dk, "load_darknet", slow_fail)
    assert main(["convert", "darknet", cfg, w]) == 2
    err = tty.getvalue()
    assert "convert darknet" in err and "inner" in err
    tail = err.split("\r")[-1].split("\n")
    assert tail[0].startswith("zooport: error: bad weights") or tail[-2].startswith("zooport: error: bad weights"), err
    last = [ln for ln in err.splitlines() if "zooport: error:" in ln]
    assert len(last) == 1 and last[0].split("\r")[-1] == "zooport: error: bad weights", repr(err)


# -- fetch without network ---------------------------------------------------------------------------------

def test_fetch_without_network_one_short_line_and_no_lock_file(tmp_path):
    """A closed port on 127.0.0.1 (never any other address): one short line naming the host and the two
    variables, exit 2, in well under the retry back-off; nothing left in the cache, not even a lock file."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as s:  # bound, never listening, then closed: nobody answers on this port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cache = tmp_path / "cache"
    env = dict(os.environ, ZOOPORT_CACHE=str(cache), ZOOPORT_MIRROR=f"http://127.0.0.1:{port}",
               ZOOPORT_RETRY_BACKOFF="5")
    env.pop("ZOOPORT_OFFLINE", None)
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "zooport", "fetch", "yolov5n"], capture_output=True, text=True,
                       env=env, timeout=120)
    assert time.perf_counter() - t < 5 + 30  # no 5 s back-off retries (interpreter start-up aside)
    assert p.returncode == 2, p.stderr
    line = one_error_line(p.stderr)
    assert line == (f"zooport: error: cannot reach 127.0.0.1:{port}: Connection refused; "
                    "set ZOOPORT_MIRROR or ZOOPORT_OFFLINE=1"), line
    assert [str(q.relative_to(cache)) for q in cache.rglob("*") if not q.is_dir()] == []


def test_offline_hint_names_a_command_line_option(tmp_path, monkeypatch):
    from zooport.zoo.cache import fetch
    from zooport.zoo.manifest import load_manifest

    monkeypatch.setenv("ZOOPORT_CACHE", str(tmp_path))
    monkeypatch.setenv("ZOOPORT_OFFLINE", "1")
    with pytest.raises(zooport.DownloadError) as e:
        fetch(load_manifest().get("yolov5n").weights)
    assert "give its path as MODEL" in str(e.value)


def test_unreachable_reasons_are_short():
    from zooport.zoo.cache import _unreachable

    dns = ("HTTPSConnectionPool(host='example.org', port=443): Max retries exceeded with url: /w (Caused by "
           "NameResolutionError(\"<urllib3.connection.HTTPSConnection object at 0x7f>: Failed to resolve "
           "'example.org' ([Errno -3] Temporary failure in name resolution)\"))")
    msg = str(_unreachable("https://example.org/w", Exception(dns)))
    assert msg == ("cannot reach example.org: Temporary failure in name resolution; "
                   "set ZOOPORT_MIRROR or ZOOPORT_OFFLINE=1")


def test_warning_during_a_bar_gets_its_own_line(monkeypatch):
    from zooport.cli._args import progress, warn

    tty = _Tty()
    monkeypatch.setattr("sys.stderr", tty)
    with progress(total=2, desc="work") as bar:
        bar.update()
        warn("careful")
        bar.update()
    lines = [ln.split("\r")[-1] for ln in tty.getvalue().split("\n")]
    assert "zooport: warning: careful" in lines, repr(tty.getvalue())


def test_verify_darknet_imgsz_rounded_to_the_cfg_stride_before_loading(pair, capsys, monkeypatch):
    import zooport.eval.verify as ev

    cfg, w, d = pair
    (d / "coco").mkdir()
    seen = {}

    def fake_verify(model, **kw):
        seen.update(kw)
        raise zooport.DatasetError("stop here")

    monkeypatch.setattr(ev, "verify", fake_verify)
    rc, err, _ = run(["verify", cfg, w, "--coco", str(d / "coco"), "--imgsz", "20"], capsys)
    assert rc == 2 and seen["imgsz"] == 32  # the cfg's max stride is 16
    assert "zooport: warning: --imgsz 20 is not a multiple of the model's max stride 16; using 32" in err
