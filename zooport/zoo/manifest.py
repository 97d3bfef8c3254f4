"""The model zoo manifest (``zooport/zoo_manifest.yaml``): loading, schema validation, lookup.

Torch-free. The yaml is plain data (``yaml.safe_load``); every entry is
checked when the manifest is loaded, and a bad entry is a
:class:`~zooport.errors.ManifestError` naming the file, the entry and the key.

Schema (version 1), per entry of ``models``::

    name: ARCH.TAG            # unique, e.g. yolov4.darknet_coco
    aliases: [ARCH, ...]      # unique across names and aliases
    format: darknet | yolov5 | mmdet   # mmdet: the config comes from the checkpoint's meta
    cfg: FILE.cfg             # darknet only: a cfg bundled in zooport/cfgs/darknet/
    arch: yolov5n             # yolov5 only: the bundled architecture (zooport.create_yolov5)
    files: [{filename, url (https), bytes (int > 0, or null when unknown), sha256 (64 hex)}]
                              # or, instead of sha256, sha256_prefix: 8-63 hex (MMDetection encodes the first
                              # 8 hex digits in its file names). A prefix is WEAKER than a full hash: it only
                              # guards against corrupt or wrong files, not a deliberate collision; replace it by
                              # the full sha256 (which zooport records in model.source) after a verified download.
    num_classes: int
    names: KEY                # a key of the top-level names_files table
    input_size: [h, w]
    stride: [int, ...]        # output strides, in the model's head order
    preprocessing: {mode: resize|letterbox|mmdet, pad_value, color: rgb, scale, ...}
    metrics: {dataset: {AP|AP50|AP75|mAP_voc07|mAP_voc10: fraction in [0, 1], img_size: int, note: str}}
    license: KEY              # a key of the top-level licenses table
    source: https URL         # the publisher's page
"""
from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .. import families
from ..errors import ManifestError

PACKAGE_DIR = Path(__file__).resolve().parent.parent
MANIFEST_PATH = PACKAGE_DIR / "zoo_manifest.yaml"
DARKNET_CFG_DIR = PACKAGE_DIR / "cfgs" / "darknet"

METRIC_KEYS = ("AP", "AP50", "AP75", "mAP_voc07", "mAP_voc10")
METRIC_INFO_KEYS = ("img_size", "note")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SHA256_PREFIX = re.compile(r"^[0-9a-f]{8,63}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_ENTRY_KEYS_REQUIRED = ("name", "aliases", "format", "files", "num_classes", "names", "input_size", "stride",
                        "preprocessing", "metrics", "license", "source")
_ENTRY_KEYS_OPTIONAL = ("cfg", "arch")


@dataclass(frozen=True)
class FileSpec:
    """One downloadable file of a zoo entry."""

    filename: str
    url: str
    bytes: int | None  # None: size not known, the sha256 is checked on every use instead
    sha256: str
    sha256_is_prefix: bool = False  # sha256 holds only the leading hex digits (see the module doc)

    def matches(self, digest: str) -> bool:
        """Whether a file's full sha256 ``digest`` is this file's (equal, or starting with the prefix)."""
        return digest.startswith(self.sha256) if self.sha256_is_prefix else digest == self.sha256


@dataclass(frozen=True)
class ZooEntry:
    name: str
    aliases: tuple[str, ...]
    format: str
    files: tuple[FileSpec, ...]
    num_classes: int
    names: str
    names_path: Path
    input_size: tuple[int, int]
    stride: tuple[int, ...]
    preprocessing: dict
    metrics: dict
    license: str
    license_text: str
    source: str
    cfg: str | None = None
    arch: str | None = None
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def weights(self) -> FileSpec:
        """The weights file (every current entry has exactly one file)."""
        return self.files[0]

    @property
    def cfg_path(self) -> Path | None:
        return DARKNET_CFG_DIR / self.cfg if self.cfg else None

    def as_dict(self) -> dict:
        """JSON-serialisable view (``zooport list --json`` / ``info NAME --json``)."""
        d = dict(self.raw)
        d["license_text"] = self.license_text
        if self.cfg:
            d["cfg_path"] = str(self.cfg_path)
        d["names_path"] = str(self.names_path)
        return d


class Manifest:
    """A validated manifest: entries in file order, lookup by name or alias."""

    def __init__(self, entries: list[ZooEntry], path: Path):
        self.path = path
        self.entries = list(entries)
        self._index: dict[str, ZooEntry] = {}
        for e in self.entries:
            for key in (e.name, *e.aliases):
                self._index[key] = e

    def names(self) -> list[str]:
        return [e.name for e in self.entries]

    def get(self, name: str) -> ZooEntry:
        """The entry called ``name`` (full name or alias, case-insensitive)."""
        key = str(name).strip().lower()
        if key in self._index:
            return self._index[key]
        close = difflib.get_close_matches(key, list(self._index), n=4, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ManifestError(f"unknown zoo model {name!r}{hint} ('zooport list' shows all {len(self.entries)} models)")

    def __contains__(self, name: str) -> bool:
        return str(name).strip().lower() in self._index

    def __iter__(self):
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)


_CACHE: dict[tuple[str, float], Manifest] = {}


def load_manifest(path: str | os.PathLike | None = None) -> Manifest:
    """Load and validate a manifest (default: the bundled one). Results are cached per file version."""
    import yaml

    p = Path(path) if path is not None else MANIFEST_PATH
    try:
        key = (str(p.resolve()), p.stat().st_mtime)
    except OSError as e:
        raise ManifestError(f"{p}: cannot read the zoo manifest ({e.strerror})") from None
    if key in _CACHE:
        return _CACHE[key]
    try:
        with open(p, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise ManifestError(f"{p}: not valid YAML ({e})") from None
    manifest = Manifest(_validate(data, p), p)
    _CACHE[key] = manifest
    return manifest


def _validate(data, path: Path) -> list[ZooEntry]:
    def fail(where: str, msg: str):
        raise ManifestError(f"{path}: {where}: {msg}")

    if not isinstance(data, dict):
        fail("top level", "expected a mapping with keys version, names_files, licenses, models")
    if data.get("version") != 1:
        fail("version", f"expected 1, got {data.get('version')!r}")
    names_files = data.get("names_files")
    licenses = data.get("licenses")
    if not isinstance(names_files, dict) or not names_files:
        fail("names_files", "expected a mapping KEY: relative path of a names file")
    if not isinstance(licenses, dict) or not licenses:
        fail("licenses", "expected a mapping KEY: license text")
    models = data.get("models")
    if not isinstance(models, list) or not models:
        fail("models", "expected a non-empty list of entries")
    seen: dict[str, str] = {}
    out = []
    for i, raw in enumerate(models):
        where = f"models[{i}]"
        if not isinstance(raw, dict):
            fail(where, "expected a mapping")
        if isinstance(raw.get("name"), str):
            where = f"model {raw['name']!r}"
        missing = [k for k in _ENTRY_KEYS_REQUIRED if k not in raw]
        if missing:
            fail(where, f"missing required keys {missing}")
        unknown = [k for k in raw if k not in _ENTRY_KEYS_REQUIRED + _ENTRY_KEYS_OPTIONAL]
        if unknown:
            fail(where, f"unknown keys {unknown}")
        name = raw["name"]
        if not isinstance(name, str) or not _NAME.match(name) or "." not in name:
            fail(where, f"name must be lower-case ARCH.TAG, got {name!r}")
        aliases = raw["aliases"]
        if not isinstance(aliases, list) or not all(isinstance(a, str) and _NAME.match(a) for a in aliases):
            fail(where, "aliases must be a list of lower-case names")
        for key in (name, *aliases):
            if key in seen:
                fail(where, f"name/alias {key!r} is already used by {seen[key]!r}")
            seen[key] = name
        fmt = raw["format"]
        formats = families.zoo_formats()
        if fmt not in formats:
            fail(where + ".format", f"expected one of {list(formats)}, got {fmt!r}")
        if fmt == "darknet":
            cfg = raw.get("cfg")
            if not isinstance(cfg, str) or not cfg.endswith(".cfg") or "/" in cfg:
                fail(where + ".cfg", "a darknet entry needs cfg: FILE.cfg (bundled in zooport/cfgs/darknet)")
            if not (DARKNET_CFG_DIR / cfg).is_file():
                fail(where + ".cfg", f"{DARKNET_CFG_DIR / cfg} is not bundled")
        if fmt != "darknet" and "cfg" in raw:
            fail(where + ".cfg", f"only darknet entries name a cfg (a {fmt} checkpoint carries its architecture)")
        if fmt == "yolov5" and not isinstance(raw.get("arch"), str):
            fail(where + ".arch", "a yolov5 entry needs arch: (e.g. yolov5s)")
        files = raw["files"]
        if not isinstance(files, list) or not files:
            fail(where + ".files", "expected a non-empty list")
        specs = []
        for j, fs in enumerate(files):
            fw = f"{where}.files[{j}]"
            prefix = isinstance(fs, dict) and "sha256_prefix" in fs
            if not isinstance(fs, dict) or set(fs) != {"filename", "url", "bytes", "sha256_prefix" if prefix else "sha256"}:
                fail(fw, "expected exactly the keys filename, url, bytes, sha256 (or sha256_prefix)")
            fn, url, nb, sha = fs["filename"], fs["url"], fs["bytes"], fs["sha256_prefix" if prefix else "sha256"]
            if not isinstance(fn, str) or not fn or "/" in fn or "\\" in fn or fn.startswith("."):
                fail(fw + ".filename", f"expected a plain file name, got {fn!r}")
            if not isinstance(url, str) or not url.startswith("https://") or not url.endswith("/" + fn):
                fail(fw + ".url", f"expected an https URL ending in /{fn}, got {url!r}")
            if nb is not None and (not isinstance(nb, int) or isinstance(nb, bool) or nb <= 0):
                fail(fw + ".bytes", f"expected a positive int (or null when unknown), got {nb!r}")
            if prefix and (not isinstance(sha, str) or not _SHA256_PREFIX.match(sha)):
                fail(fw + ".sha256_prefix", f"expected 8 to 63 lower-case hex digits, got {sha!r}")
            if not prefix and (not isinstance(sha, str) or not _SHA256.match(sha)):
                fail(fw + ".sha256", f"expected the full sha256 as 64 lower-case hex digits, got {sha!r}")
            specs.append(FileSpec(fn, url, nb, sha, prefix))
        nc = raw["num_classes"]
        if not isinstance(nc, int) or isinstance(nc, bool) or nc < 1:
            fail(where + ".num_classes", f"expected a positive int, got {nc!r}")
        if raw["names"] not in names_files:
            fail(where + ".names", f"expected a key of names_files {sorted(names_files)}, got {raw['names']!r}")
        names_path = PACKAGE_DIR / names_files[raw["names"]]
        if not names_path.is_file():
            fail(where + ".names", f"names file {names_path} is not bundled")
        size = raw["input_size"]
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
            fail(where + ".input_size", f"expected [h, w] positive ints, got {size!r}")
        stride = raw["stride"]
        if not (isinstance(stride, list) and stride and all(isinstance(v, int) and v > 0 for v in stride)):
            fail(where + ".stride", f"expected a list of positive ints, got {stride!r}")
        pre = raw["preprocessing"]
        if not isinstance(pre, dict) or pre.get("mode") not in ("resize", "letterbox", "mmdet") \
                or pre.get("color") not in ("rgb", "bgr") or not isinstance(pre.get("scale"), float) \
                or not isinstance(pre.get("pad_value"), (int, float)):
            fail(where + ".preprocessing", "expected {mode: resize|letterbox|mmdet, pad_value: number, color: rgb|bgr, "
                 f"scale: float}}, got {pre!r}")
        _check_metrics(raw["metrics"], where + ".metrics", fail)
        if raw["license"] not in licenses:
            fail(where + ".license", f"expected a key of licenses {sorted(licenses)}, got {raw['license']!r}")
        if not isinstance(raw["source"], str) or not raw["source"].startswith("https://"):
            fail(where + ".source", f"expected the publisher's https page, got {raw['source']!r}")
        out.append(ZooEntry(
            name=name, aliases=tuple(aliases), format=fmt, files=tuple(specs), num_classes=nc,
            names=raw["names"], names_path=names_path, input_size=(size[0], size[1]), stride=tuple(stride),
            preprocessing=dict(pre), metrics=raw["metrics"], license=raw["license"],
            license_text=str(licenses[raw["license"]]), source=raw["source"], cfg=raw.get("cfg"),
            arch=raw.get("arch"), raw=raw))
    return out


def _check_metrics(metrics, where: str, fail) -> None:
    if not isinstance(metrics, dict):
        fail(where, "expected a mapping {dataset: {metric: value}} (may be empty)")
    for ds, vals in metrics.items():
        dw = f"{where}.{ds}"
        if not isinstance(ds, str) or not _NAME.match(ds):
            fail(dw, "dataset keys are lower-case names such as coco-val2017")
        if not isinstance(vals, dict) or not any(k in METRIC_KEYS for k in vals):
            fail(dw, f"expected at least one of {list(METRIC_KEYS)}")
        for k, v in vals.items():
            if k in METRIC_KEYS:
                if not isinstance(v, float) or not 0.0 <= v <= 1.0:
                    fail(f"{dw}.{k}", f"expected a fraction in [0, 1] (0.457, not 45.7), got {v!r}")
            elif k == "img_size":
                if not isinstance(v, int) or v <= 0:
                    fail(f"{dw}.{k}", f"expected a positive int, got {v!r}")
            elif k == "note":
                if not isinstance(v, str):
                    fail(f"{dw}.{k}", "expected a string")
            else:
                fail(f"{dw}.{k}", f"unknown key; expected {list(METRIC_KEYS + METRIC_INFO_KEYS)}")
