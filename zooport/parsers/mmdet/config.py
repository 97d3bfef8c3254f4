"""MMDetection configs without executing them (torch-free).

Three sources are read:

* a resolved config as JSON or YAML (a dict; either the whole config with a
  ``model`` key or the model dict itself, recognised by ``type`` + ``backbone``);
* an MMDetection ``.py`` config. Its AST is evaluated by the small restricted
  evaluator of :mod:`.evaluate` (what it allows is listed there: literals,
  ``dict(...)``, names, ``_base_.x`` / ``{{_base_.x}}``, ``.copy()``,
  arithmetic, list comprehensions ...); imports, other attribute access or
  calls, lambdas, control flow ... raise :class:`ConfigError` naming file and line.
  ``_base_`` (a path or list of paths relative to the file) is resolved first
  and merged the way mmengine does: dicts merge recursively, a child dict with
  ``_delete_=True`` replaces its base, anything else replaces;
* the config text MMDetection stores in a checkpoint's ``meta`` (``cfg`` in
  3.x, ``config`` in 2.x): evaluated the same way (no ``_base_`` allowed).
"""
from __future__ import annotations

import ast
import copy
import json
import os
from pathlib import Path

from ...errors import ConfigError
from .evaluate import _Evaluator, check_size, eval_module, parse

_MAX_BASE_DEPTH = 16


def merge(base: dict, child: dict) -> dict:
    """mmengine's merge: dicts recurse, ``_delete_=True`` replaces, other values replace."""
    out = copy.deepcopy(base)
    for k, v in child.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and not v.get("_delete_", False):
            out[k] = merge(out[k], v)
        else:
            if isinstance(v, dict):
                v = {kk: vv for kk, vv in v.items() if kk != "_delete_"}
            out[k] = copy.deepcopy(v)
    return out


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config ({e.strerror or e})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: config is not UTF-8 text") from None


def _load_file(path: Path, depth: int, chain: tuple) -> dict:
    if depth > _MAX_BASE_DEPTH or path.resolve() in chain:
        raise ConfigError(f"{path}: _base_ inheritance is cyclic or deeper than {_MAX_BASE_DEPTH} files")
    chain = chain + (path.resolve(),)
    suffix = path.suffix.lower()
    text = _read_text(path)
    if suffix == ".json":
        try:
            own = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None
        except (ValueError, RecursionError) as e:  # e.g. an integer beyond Python's digit limit
            raise ConfigError(f"{path}: invalid JSON ({str(e)[:200]})") from None
    elif suffix in (".yaml", ".yml"):
        import yaml

        try:
            own = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: invalid YAML ({e})") from None
    elif suffix == ".py":
        # bases first: a child may use names its bases define
        tree = parse(text, str(path))
        bases_node = next((s for s in tree.body if isinstance(s, ast.Assign)
                           and any(isinstance(t, ast.Name) and t.id == "_base_" for t in s.targets)), None)
        merged: dict = {}
        if bases_node is not None:
            bases = _Evaluator(str(path), {}).ev(bases_node.value)
            merged = _merge_bases(path, bases, depth, chain, bases_node.lineno)
        env = dict(merged)
        if bases_node is not None:
            env["_base_"] = merged  # live: '_base_.a.b = v' changes what the file inherits (as in mmengine)
        own = eval_module(text, str(path), env)
        own.pop("_base_", None)
        return merge(merged, own)
    else:
        raise ConfigError(f"{path}: unknown config format {suffix!r}; expected .py, .json, .yaml or .yml")
    if not isinstance(own, dict):
        raise ConfigError(f"{path}: config must be a mapping at top level, got {type(own).__name__}")
    check_size(own, str(path))  # YAML aliases can share one value many times
    bases = own.pop("_base_", None)
    if bases is not None:
        return merge(_merge_bases(path, bases, depth, chain, None), own)
    return own


def _merge_bases(path: Path, bases, depth: int, chain: tuple, line) -> dict:
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, (list, tuple)) or not all(isinstance(b, str) for b in bases):
        loc = f"{path}:{line}" if line else str(path)
        raise ConfigError(f"{loc}: _base_ must be a path or a list of paths")
    merged: dict = {}
    for b in bases:
        bp = (path.parent / b)
        if not bp.exists():
            loc = f"{path}:{line}" if line else str(path)
            raise ConfigError(f"{loc}: _base_ file {b!r} not found (looked at {bp})")
        part = _load_file(bp, depth + 1, chain)
        dup = set(part) & set(merged)
        if dup:
            raise ConfigError(f"{path}: _base_ files define the same key(s) {sorted(dup)}")
        merged.update(part)
    return merged


def load_config(path: str | os.PathLike) -> dict:
    """The full config dict of a ``.py`` / ``.json`` / ``.yaml`` file, ``_base_`` resolved."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{p}: config file not found")
    return _load_file(p, 0, ())


def config_from_text(text: str, where: str = "<checkpoint meta>") -> dict:
    """Evaluate config text (Python syntax as MMDetection stores it, or JSON)."""
    s = text.lstrip()
    if s.startswith("{"):
        try:
            return check_size(json.loads(text), where)
        except (ValueError, RecursionError):  # not JSON (or a number beyond the digit limit): read as Python
            pass
    env: dict = {}
    out = eval_module(text, where, env)
    if "_base_" in out:
        raise ConfigError(f"{where}: config text with _base_ cannot be resolved (no files beside it)")
    return out


def model_section(cfg: dict, where: str = "config") -> dict:
    """The model dict: ``cfg['model']`` (test_cfg folded in from the top level when the model lacks
    it) or ``cfg`` itself when it already is a model dict."""
    if not isinstance(cfg, dict):
        raise ConfigError(f"{where}: config is not a mapping")
    if "backbone" in cfg and "type" in cfg:
        return copy.deepcopy(cfg)
    model = cfg.get("model")
    if not isinstance(model, dict) or "type" not in model:
        raise ConfigError(f"{where}: no 'model' dict with a 'type' key (and the config is not a model dict itself)")
    model = copy.deepcopy(model)
    if "test_cfg" not in model and isinstance(cfg.get("test_cfg"), dict) and "score_thr" in str(cfg["test_cfg"]):
        model["test_cfg"] = copy.deepcopy(cfg["test_cfg"])  # mmdet 2.x kept test_cfg beside the model
    return model


def class_names(cfg: dict) -> list[str] | None:
    """Class names from ``metainfo.classes`` / ``classes`` / dataset metainfo, when the config names them."""
    for holder in (cfg, cfg.get("metainfo") if isinstance(cfg.get("metainfo"), dict) else None):
        if holder and isinstance(holder.get("classes"), (list, tuple)):
            return [str(c) for c in holder["classes"]]
    for key in ("test_dataloader", "val_dataloader"):
        ds = cfg.get(key, {}).get("dataset", {}) if isinstance(cfg.get(key), dict) else {}
        meta = ds.get("metainfo") if isinstance(ds, dict) else None
        if isinstance(meta, dict) and isinstance(meta.get("classes"), (list, tuple)):
            return [str(c) for c in meta["classes"]]
    return None


def to_python_text(cfg: dict) -> str:
    """Config dict -> Python config text (one ``name = literal`` per key) readable by
    :func:`config_from_text` and by MMDetection itself."""
    import pprint

    lines = []
    for k, v in cfg.items():
        lines.append(f"{k} = {pprint.pformat(v, indent=1, width=100, sort_dicts=False)}")
    return "\n".join(lines) + "\n"
