"""--shard I/N + --merge: two local processes each score a shard; the merge gives the whole score.

The synthetic VOC split of eval_fake is hand-scored (see test_eval_voc): mAP VOC10 0.75,
VOC07 (6/11 + 1)/2. Batch 1 puts each image in its own batch, so shard 0/2 runs
img0 and img2 and shard 1/2 runs img1 (batches are dealt round-robin).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from eval_fake import make_voc_tree

TESTS = Path(__file__).resolve().parent
MAP10, MAP07 = 0.75, (6 / 11 + 1) / 2

SHARD_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from eval_fake import NAMES, TABLE, TableDetector
from zooport.eval.shard import write_json
from zooport.eval.verify import verify
part = verify(TableDetector(NAMES, TABLE), voc={root!r}, batch=1, shard={shard!r}, progress=False)
write_json(part, {out!r})
"""

DIST_SCRIPT = """
import json, sys
sys.path.insert(0, {tests!r})
from eval_fake import NAMES, TABLE, TableDetector
from zooport.eval.verify import verify
import torch.distributed as dist
res = verify(TableDetector(NAMES, TABLE), voc={root!r}, batch=1, progress=False, distributed=True)
assert not dist.is_initialized()  # the group verify created is torn down
rank = int(__import__("os").environ["RANK"])
assert res.rank == rank and res.scored == (rank == 0), (rank, res)
if res.scored:
    json.dump(res.metrics, open({out!r}, "w"))
"""


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(TESTS) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    if os.path.exists("/sys/class/net/lo"):
        # gloo otherwise picks its interface by resolving the hostname, which a sandboxed CI
        # machine may not resolve; the test's ranks only ever talk over loopback.
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    return env


@pytest.mark.slow
def test_two_process_shard_and_merge(tmp_path):
    root = make_voc_tree(tmp_path / "voc")
    outs = [tmp_path / f"part{i}.json" for i in range(2)]
    procs = [subprocess.Popen([sys.executable, "-c", SHARD_SCRIPT.format(tests=str(TESTS), root=str(root),
                                                                         shard=f"{i}/2", out=str(outs[i]))],
                              env=_env(), stderr=subprocess.PIPE, text=True) for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    parts = [json.loads(o.read_text()) for o in outs]
    assert [p["images"] for p in parts] == [["img0", "img2"], ["img1"]]
    final = tmp_path / "final.json"
    p = subprocess.run([sys.executable, "-m", "zooport", "verify", "--merge", str(outs[1]), str(outs[0]),
                        "--json", str(final)], capture_output=True, text=True, timeout=120, env=_env())
    assert p.returncode == 0, p.stderr
    res = json.loads(final.read_text())
    assert res["merged_shards"] == 2 and res["images"] == 3
    assert res["metrics"]["mAP_voc10"] == pytest.approx(MAP10)
    assert res["metrics"]["mAP_voc07"] == pytest.approx(MAP07)
    # a missing shard is an error, not a silently partial score
    p = subprocess.run([sys.executable, "-m", "zooport", "verify", "--merge", str(outs[0])],
                       capture_output=True, text=True, timeout=120, env=_env())
    assert p.returncode == 2 and "1/2" in p.stderr and "missing" in p.stderr


def test_merge_rejects_mixed_runs(tmp_path):
    from zooport.errors import UsageError
    from zooport.eval.verify import merge

    from eval_fake import NAMES, TABLE, TableDetector
    from zooport.eval.shard import write_json
    from zooport.eval.verify import verify

    root = make_voc_tree(tmp_path / "voc")
    a = verify(TableDetector(NAMES, TABLE), voc=root, batch=1, shard="0/2", progress=False)
    b = verify(TableDetector(NAMES, TABLE), voc=root, batch=1, shard="1/2", conf=0.5, progress=False)
    write_json(a, tmp_path / "a.json")
    write_json(b, tmp_path / "b.json")
    with pytest.raises(UsageError, match="settings differ"):
        merge([tmp_path / "a.json", tmp_path / "b.json"])
    with pytest.raises(UsageError, match="twice"):
        merge([tmp_path / "a.json", tmp_path / "a.json"])


@pytest.mark.skipif(shutil.which("torchrun") is None and not os.path.exists(
    os.path.join(os.path.dirname(sys.executable), "torchrun")), reason="torchrun not installed")
@pytest.mark.slow
def test_torchrun_gloo_two_ranks(tmp_path):
    root = make_voc_tree(tmp_path / "voc")
    script = tmp_path / "run.py"
    out = tmp_path / "metrics.json"
    script.write_text(DIST_SCRIPT.format(tests=str(TESTS), root=str(root), out=str(out)))
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    torchrun = torchrun if os.path.exists(torchrun) else shutil.which("torchrun")
    import socket

    with socket.socket() as sock:  # a free port, so parallel runs do not collide
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    p = subprocess.run([torchrun, "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(port),
                        str(script)],
                       capture_output=True, text=True, timeout=180, env=_env())
    assert p.returncode == 0, p.stderr[-3000:]
    m = json.loads(out.read_text())
    assert m["mAP_voc10"] == pytest.approx(MAP10) and m["mAP_voc07"] == pytest.approx(MAP07)


def test_world_size_alone_does_not_join_a_process_group(tmp_path, monkeypatch):
    """WORLD_SIZE > 1 without distributed=True: an ordinary full run (no silent torch.distributed join)."""
    import torch.distributed as dist

    from eval_fake import NAMES, TABLE, TableDetector
    from zooport.eval.verify import verify

    root = make_voc_tree(tmp_path / "voc")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    res = verify(TableDetector(NAMES, TABLE), voc=root, batch=1, progress=False)
    assert not dist.is_initialized()
    assert res.scored and res.rank is None and res.partial is None and res.images == 3
    assert res.metrics["mAP_voc10"] == pytest.approx(MAP10)
