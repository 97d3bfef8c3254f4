"""Every writer against a failing file system: a file-size limit (RLIMIT_FSIZE) in a subprocess.

With SIGXFSZ ignored, a write beyond the limit fails with EFBIG, as a full disk fails with ENOSPC.
Each verb must then print exactly one ``zooport: error:`` line naming the output, exit 2, and leave
nothing in the output folder (no partial file, no temp file).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import zooport

ROOT = Path(__file__).resolve().parent.parent
PKG = Path(zooport.__file__).resolve().parent
TINY = PKG / "cfgs" / "darknet" / "yolov3-tiny.cfg"
NAMES = PKG / "cfgs" / "darknet" / "coco.names"

# The child: ignore SIGXFSZ (so write() raises EFBIG instead of killing the process), cap the
# size of any file it writes, then run the CLI.
HARNESS = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
from zooport.cli.main import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Small real inputs of every kind, written before any limit applies."""
    from eval_fake import make_voc_tree
    from yolov5_fakes import build_release, save_foreign

    from zooport.converters.darknet.load import load_darknet, save_darknet_weights
    from zooport.converters.mmdet.darknet_bridge import save_mmdet_checkpoint

    d = tmp_path_factory.mktemp("inputs")
    save_darknet_weights(load_darknet(TINY, random_weights=True), d / "tiny.weights")
    # Darknet yolov3.cfg's layout with every width / 16: the MMDetection bridge's shape, 1 MB instead of 248
    text = (PKG / "cfgs" / "darknet" / "yolov3.cfg").read_text()
    text = re.sub(r"(?m)^filters\s*=\s*(\d+)",
                  lambda m: "filters=%d" % (255 if m.group(1) == "255" else max(2, int(m.group(1)) // 16)), text)
    (d / "y3s.cfg").write_text(text)
    y3s = load_darknet(d / "y3s.cfg", random_weights=True)
    save_darknet_weights(y3s, d / "y3s.weights")
    save_mmdet_checkpoint(y3s, d / "y3s.pth")
    ckpt, _ = build_release("v7.0", seed=2)
    save_foreign(ckpt, d / "v5.pt")
    make_voc_tree(d / "voc")
    return d


def _cases(d: Path) -> dict:
    """writer -> (argv with OUT for the output folder, size limit in bytes)."""
    tiny = [str(TINY), str(d / "tiny.weights")]
    return {
        "native-pt": (["convert", "darknet", *tiny, "-o", "OUT/x.pt"], 4096),
        "safetensors": (["convert", "darknet", *tiny, "-o", "OUT/x.safetensors"], 4096),
        "darknet-weights": (["convert", "darknet", *tiny, "--to", "darknet", "-o", "OUT/x.weights"], 4096),
        "mmdet-pth": (["convert", "darknet", str(d / "y3s.cfg"), str(d / "y3s.weights"), "--to", "mmdet",
                       "-o", "OUT/x.pth"], 4096),
        "mmdet-to-darknet-weights": (["convert", "mmdet", str(d / "y3s.pth"), "--to", "darknet",
                                      "-o", "OUT/x.weights"], 4096),
        "yolov5-state-dict": (["convert", "yolov5", str(d / "v5.pt"), "--to", "yolov5", "-o", "OUT/x.pt"], 4096),
        "yolov5-native": (["convert", "yolov5", str(d / "v5.pt"), "-o", "OUT/x.pt"], 4096),
        "onnx": (["export", "onnx", *tiny, "--imgsz", "64", "-o", "OUT/x.onnx"], 4096),
        "verify-json": (["verify", *tiny, "--voc", str(d / "voc"), "--imgsz", "64", "--names", str(NAMES),
                         "--class-map", "coco-voc", "--backend", "torch", "--json", "OUT/r.json"], 64),
    }


@pytest.mark.slow
@pytest.mark.parametrize("writer", list(_cases(Path("."))))
def test_write_failure_is_one_line_exit_2_nothing_left(inputs, tmp_path, writer):
    argv, limit = _cases(inputs)[writer]
    out = tmp_path / "out"
    out.mkdir()
    argv = [a.replace("OUT", str(out)) if a.startswith("OUT/") else a for a in argv]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", HARNESS, str(limit), *argv], capture_output=True, text=True,
                       env=env, timeout=300, cwd=tmp_path)
    lines = [ln for ln in r.stderr.strip().splitlines() if not ln.startswith("zooport: note: ")]  # notes are their own lines
    assert r.returncode == 2, (r.returncode, r.stderr[-3000:])
    assert len(lines) == 1 and lines[0].startswith("zooport: error: "), r.stderr[-3000:]
    assert str(out) in lines[0] and "File too large" in lines[0], lines[0]
    assert sorted(os.listdir(out)) == []
