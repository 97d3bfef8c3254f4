"""The zoo manifest: schema of every entry, agreement with the published facts
(shared/zoo/KNOWN_HASHES.md, shared/README.md) and with the models it builds; bad manifests
are clear errors; the ``list`` / ``info`` / ``fetch`` verbs."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
import torch
import yaml
from helpers import asset, sha256

from zooport.cli.main import main
from zooport.errors import ManifestError
from zooport.zoo.manifest import DARKNET_CFG_DIR, MANIFEST_PATH, PACKAGE_DIR, load_manifest

RAW = yaml.safe_load(MANIFEST_PATH.read_text())
ENTRIES = RAW["models"]
REQUIRED = {"name", "aliases", "format", "files", "num_classes", "names", "input_size", "stride",
            "preprocessing", "metrics", "license", "source"}
METRICS = {"AP", "AP50", "AP75", "mAP_voc07", "mAP_voc10"}


def _known_hashes():
    """{filename: (url, bytes or None, sha256, published "AP / AP50 (size)" or None)} from KNOWN_HASHES.md."""
    rows = {}
    for line in asset("zoo/KNOWN_HASHES.md").read_text().splitlines():
        m = re.match(r"\| (\S+\.weights) \| (\S+) \|\s*(\d*)\s*\| ([0-9a-f]{64}) \|", line)
        if m:
            rows[m.group(1)] = (m.group(2), int(m.group(3)) if m.group(3) else None, m.group(4), None)
        m = re.match(r"\| (yolov5\w+\.pt) \| (\d+) \| ([0-9a-f]{64}) \| (.*) \|", line)
        if m:
            url = "https://github.com/ultralytics/yolov5/releases/download/v7.0/" + m.group(1)
            rows[m.group(1)] = (url, int(m.group(2)), m.group(3), m.group(4).strip())
    return rows


def test_schema_of_every_entry():
    names = set()
    for e in ENTRIES:
        assert REQUIRED <= set(e), (e.get("name"), REQUIRED - set(e))
        for key in [e["name"], *e["aliases"]]:
            assert key not in names, f"duplicate name/alias {key}"
            names.add(key)
        arch, _, tag = e["name"].partition(".")
        assert tag and arch in e["aliases"], e["name"]
        assert e["format"] in ("darknet", "yolov5", "mmdet")
        for f in e["files"]:
            if e["format"] == "mmdet":  # MMDetection publishes the first 8 hex digits (in the file name)
                assert re.fullmatch(r"[0-9a-f]{8}", f["sha256_prefix"]) and "sha256" not in f, f
            else:
                assert re.fullmatch(r"[0-9a-f]{64}", f["sha256"]), f
            assert f["url"].startswith("https://") and f["url"].endswith("/" + f["filename"]), f
            assert f["bytes"] is None or (isinstance(f["bytes"], int) and f["bytes"] > 0)
        assert e["source"].startswith("https://")
        assert e["license"] in RAW["licenses"]
        assert (PACKAGE_DIR / RAW["names_files"][e["names"]]).is_file()
        if e["format"] == "darknet":
            assert (DARKNET_CFG_DIR / e["cfg"]).is_file()
        for ds, vals in e["metrics"].items():
            assert set(vals) - {"img_size", "note"} <= METRICS and set(vals) & METRICS, (e["name"], ds)
            for k in set(vals) & METRICS:
                assert 0.0 < vals[k] < 1.0, (e["name"], ds, k)
    assert len(ENTRIES) == 26
    assert len(load_manifest()) == 26  # the validating loader accepts it


def test_entries_match_known_hashes():
    known = _known_hashes()
    files = {f["filename"]: (e, f) for e in ENTRIES for f in e["files"] if e["format"] != "mmdet"}
    assert set(files) == set(known)
    for fn, (url, nbytes, sha, published) in known.items():
        e, f = files[fn]
        assert f["url"] == url and f["sha256"] == sha, fn
        if nbytes is not None:
            assert f["bytes"] == nbytes, fn
        if published:  # "28.0 / 45.7 (640)" -> coco-val2017 AP 0.280, AP50 0.457 at 640
            ap, ap50, size = re.match(r"([\d.]+) / ([\d.]+) \((\d+)\)", published).groups()
            m = e["metrics"]["coco-val2017"]
            assert m["AP"] == pytest.approx(float(ap) / 100) and m["AP50"] == pytest.approx(float(ap50) / 100)
            assert m["img_size"] == int(size) and e["input_size"] == [int(size)] * 2
    by_alias = {a: e for e in ENTRIES for a in e["aliases"]}
    # Darknet numbers quoted in KNOWN_HASHES.md (yolov4's on test-dev)
    assert by_alias["yolov4"]["metrics"]["coco-test-dev"]["AP"] == 0.435
    assert by_alias["yolov4"]["metrics"]["coco-test-dev"]["AP50"] == 0.657
    assert by_alias["yolov3-tiny"]["metrics"]["coco-test-dev"]["AP50"] == 0.331
    assert by_alias["yolov3"]["metrics"]["coco-test-dev"]["AP50"] == 0.553
    assert by_alias["yolov4-tiny"]["metrics"]["coco-test-dev"]["AP50"] == 0.402


def test_coco_tiny_reference_metrics_match_shared_readme():
    text = asset("README.md").read_text()
    rows = {}
    for m in re.finditer(r"^\| (yolov5n\.pt \(v7\.0\)|yolov3-tiny) \| [^|]+ \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|",
                         text, re.M):
        rows["yolov5n" if m.group(1).startswith("yolov5n") else "yolov3-tiny"] = tuple(map(float, m.groups()[1:]))
    assert set(rows) == {"yolov5n", "yolov3-tiny"}
    by_alias = {a: e for e in ENTRIES for a in e["aliases"]}
    for alias, (ap, ap50, ap75) in rows.items():
        m = by_alias[alias]["metrics"]["coco-tiny"]
        assert (m["AP"], m["AP50"], m["AP75"]) == (ap, ap50, ap75)


def test_bundled_files_are_the_published_ones():
    # the yolov3-tiny cfg must be the one matching the real weights (KNOWN_HASHES.md's cfg hash)
    cfg = DARKNET_CFG_DIR / "yolov3-tiny.cfg"
    assert sha256(cfg) == "84eb7a675ef87c906019ff5a6e0effe275d175adb75100dcb47f0727917dc2c7"
    assert cfg.read_bytes() == asset("zoo/darknet/yolov3-tiny.cfg").read_bytes()
    assert sha256(DARKNET_CFG_DIR / "coco.names") == \
        "634a1132eb33f8091d60f2c346ababe8b905ae08387037aed883953b7329af84"
    for e in ENTRIES:
        if e["format"] == "darknet":
            assert (DARKNET_CFG_DIR / e["cfg"]).read_bytes() == asset(f"darknet-cfg/{e['cfg']}").read_bytes()


def test_darknet_sizes_follow_darknets_accounting():
    """bytes = what Darknet's parameter accounting of the cfg gives (expected_weights_bytes.tsv, 20-byte
    header), except yolov2.weights, written with the older 16-byte header (32-bit 'seen')."""
    from zooport.converters.darknet.load import info

    tsv = dict(line.split("\t") for line in asset("darknet-cfg/expected_weights_bytes.tsv").read_text().split("\n")
               if "\t" in line)
    for e in ENTRIES:
        if e["format"] != "darknet":
            continue
        expected = int(tsv[e["cfg"]])
        assert info(DARKNET_CFG_DIR / e["cfg"])["weights_bytes"] == expected, e["cfg"]
        nb = e["files"][0]["bytes"]
        if e["cfg"] == "yolov2.cfg":
            assert nb == expected - 4
        elif nb is not None:
            assert nb == expected, e["name"]
        else:
            assert e["cfg"] == "yolov3-spp.cfg"  # the one size nobody published


# MMDetection entries take their architecture from the checkpoint's meta config (not bundled): their
# structure is checked when a checkpoint is loaded (tests/test_zoo_load.py), their schema below.
BUILDABLE = [e for e in ENTRIES if e["format"] in ("darknet", "yolov5")]


def test_mmdet_entries_schema():
    mm = [e for e in ENTRIES if e["format"] == "mmdet"]
    assert len(mm) == 10
    for e in mm:
        assert e["preprocessing"]["mode"] == "mmdet" and e["num_classes"] == 80, e["name"]
        for f in e["files"]:
            assert re.fullmatch(r"[0-9a-f]{8}", f["sha256_prefix"]) and f["sha256_prefix"] in f["filename"], f


@pytest.mark.slow
@pytest.mark.parametrize("entry", BUILDABLE, ids=[e["name"] for e in BUILDABLE])
def test_num_classes_and_strides_equal_the_built_model(entry):
    names = (PACKAGE_DIR / RAW["names_files"][entry["names"]]).read_text().split("\n")
    assert len([n for n in names if n.strip()]) == entry["num_classes"]
    if entry["format"] == "darknet":
        from zooport.converters.darknet.load import load_darknet

        with torch.device("meta"):  # only the structure is compared: no memory for the random weights
            model = load_darknet(DARKNET_CFG_DIR / entry["cfg"], random_weights=True)
    else:
        import zooport

        with torch.device("meta"):  # no memory, no init: only the structure is compared
            model = zooport.create_yolov5(entry["arch"])
    assert model.num_classes == entry["num_classes"]
    assert list(model.stride) == entry["stride"]
    assert list(model.input_size) == entry["input_size"]


# ------------------------------------------------------------------------- invalid manifests

def _mutate(path: Path, fn) -> Path:
    data = yaml.safe_load(MANIFEST_PATH.read_text())
    fn(data)
    path.write_text(yaml.safe_dump(data))
    return path


def _e(data, alias):
    return next(e for e in data["models"] if alias in e["aliases"])


BAD = {
    "short sha256": (lambda d: _e(d, "yolov4")["files"][0].update(sha256="ab" * 31),
                     r"model 'yolov4.darknet_coco'\.files\[0\]\.sha256: expected the full sha256"),
    "http url": (lambda d: _e(d, "yolov5s")["files"][0].update(url="http://x.org/yolov5s.pt"),
                 r"yolov5s.v7_coco'\.files\[0\]\.url: expected an https URL"),
    "duplicate alias": (lambda d: _e(d, "yolov5m")["aliases"].append("yolov5s"),
                        r"name/alias 'yolov5s' is already used by 'yolov5s.v7_coco'"),
    "missing license": (lambda d: _e(d, "yolov3").pop("license"), r"yolov3.darknet_coco': missing required keys"),
    "percent metric": (lambda d: _e(d, "yolov5n")["metrics"]["coco-val2017"].update(AP=28.0),
                       r"metrics\.coco-val2017\.AP: expected a fraction"),
    "unknown metric": (lambda d: _e(d, "yolov5n")["metrics"]["coco-val2017"].update(mAP=0.3),
                       r"metrics\.coco-val2017\.mAP: unknown key"),
    "bad bytes": (lambda d: _e(d, "yolov4")["files"][0].update(bytes=-3), r"\.bytes: expected a positive int"),
    "bad format": (lambda d: _e(d, "yolov4").update(format="onnx"), r"\.format: expected one of"),
    "missing cfg": (lambda d: _e(d, "yolov4").update(cfg="nope.cfg"), r"\.cfg: .*nope\.cfg is not bundled"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_manifest_is_a_clear_error(case, tmp_path):
    fn, pattern = BAD[case]
    path = _mutate(tmp_path / "m.yaml", fn)
    with pytest.raises(ManifestError, match=pattern) as ei:
        load_manifest(path)
    assert str(path) in str(ei.value)


def test_lookup_names_aliases_and_suggestions():
    m = load_manifest()
    assert m.get("yolov4").name == m.get("yolov4.darknet_coco").name == "yolov4.darknet_coco"
    assert m.get("YOLOv5S").name == "yolov5s.v7_coco"
    with pytest.raises(ManifestError, match=r"unknown zoo model 'yolo4'; did you mean yolov4"):
        m.get("yolo4")


# ------------------------------------------------------------------------------------- CLI

def test_cli_list_and_info(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("ZOOPORT_CACHE", str(tmp_path))
    assert main(["list", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [e["name"] for e in out] == [e["name"] for e in ENTRIES]
    assert not any(e["cached"] for e in out)
    assert main(["list"]) == 0
    table = capsys.readouterr().out
    assert "yolov5x6.v7_coco" in table and "coco-val2017 AP 0.550 AP50 0.727" in table
    assert main(["info", "yolov5s", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["name"] == "yolov5s.v7_coco" and info["files"][0]["bytes"] == 14808437
    assert info["cache_path"] == str(tmp_path / "yolov5s.pt")
    assert main(["info", "yolov4"]) == 0
    text = capsys.readouterr().out
    assert "e8a4f6c62188738d86dc6898d82724ec0964d0eb9d2ae0f0a9d53d65d108d562" in text and "test-dev" in text
    assert main(["info", "yolov9"]) == 2
    assert "did you mean" in capsys.readouterr().err


def test_cli_fetch_from_local_mirror_and_offline(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("ZOOPORT_CACHE", str(tmp_path))
    monkeypatch.setenv("ZOOPORT_OFFLINE", "1")
    assert main(["fetch", "yolov5n", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "yolov5n.pt" in err and "ZOOPORT_OFFLINE" in err and "Traceback" not in err
    monkeypatch.delenv("ZOOPORT_OFFLINE")
    monkeypatch.setenv("ZOOPORT_MIRROR", str(asset("zoo/yolov5")))
    assert main(["fetch", "yolov5n", "--no-progress"]) == 0
    assert capsys.readouterr().out.strip() == f"yolov5n.v7_coco: {tmp_path / 'yolov5n.pt'}"
    assert hashlib.sha256((tmp_path / "yolov5n.pt").read_bytes()).hexdigest() == \
        "4f180cf23ba0717ada0badd6c685026d73d48f184d00fc159c2641284b2ac0a3"
    assert main(["list", "--json"]) == 0
    cached = {e["name"]: e["cached"] for e in json.loads(capsys.readouterr().out)}
    assert cached["yolov5n.v7_coco"] and not cached["yolov5s.v7_coco"]
    assert main(["fetch"]) == 2
