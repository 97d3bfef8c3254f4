"""MMDetection configs without executing them (torch-free).

Three sources are read:

* a resolved config as JSON or YAML (a dict; either the whole config with a
  ``model`` key or the model dict itself, recognised by ``type`` + ``backbone``);
* an MMDetection ``.py`` config. Its AST is evaluated by a small restricted
  evaluator: only assignments ``name = EXPR`` at module level, docstrings, and
  expressions built from literals, lists, tuples, dicts, ``dict(k=v, ...)``,
  names assigned earlier (or inherited), unary/binary arithmetic and
  subscripts. Imports, attribute access, any other call, comprehensions,
  lambdas, control flow ... raise :class:`ConfigError` naming file and line.
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
import operator
import os
from pathlib import Path

from ...errors import ConfigError

_BINOPS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
_UNOPS = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_}
_MAX_BASE_DEPTH = 16
# Bounds on what untrusted config text may make us build (real configs stay far below them): an
# integer's size in bits, a string's / list's length, and the fully expanded size of a value
# (shared references counted as often as they appear, since str()/json/deepcopy expand them).
_MAX_INT_BITS = 4096
_MAX_LEN = 100_000
_MAX_EXPANDED = 1_000_000
_MAX_DEPTH = 64  # nesting of a value; real configs nest < 10


def _int_bits(v) -> int:
    return abs(v).bit_length() if isinstance(v, int) and not isinstance(v, bool) else 0


def _length(v) -> int | None:
    return len(v) if isinstance(v, (str, bytes, list, tuple)) else None


def _binop_bound(op, a, b) -> str | None:
    """Why ``a op b`` would be too large, judged BEFORE computing it (None: fine)."""
    if isinstance(op, ast.Pow) and isinstance(a, int) and isinstance(b, int) and abs(a) > 1 and b > 0:
        if b > _MAX_INT_BITS or b * (_int_bits(a) - 1) > _MAX_INT_BITS:  # |a|**b >= 2**(b*(bits-1))
            return f"power {a if _int_bits(a) < 64 else '<big int>'} ** {b if _int_bits(b) < 64 else '<big int>'} " \
                   f"exceeds {_MAX_INT_BITS} bits"
    if isinstance(op, ast.Mult):
        for seq, n in ((a, b), (b, a)):
            if _length(seq) is not None and isinstance(n, int) and _length(seq) * max(n, 0) > _MAX_LEN:
                return f"repetition of a length-{_length(seq)} {type(seq).__name__} by {n if _int_bits(n) < 64 else '<big int>'} " \
                       f"exceeds {_MAX_LEN:,} items"
        if _int_bits(a) + _int_bits(b) > _MAX_INT_BITS:
            return f"product exceeds {_MAX_INT_BITS} bits"
    if isinstance(op, ast.Add):
        if _length(a) is not None and _length(b) is not None and _length(a) + _length(b) > _MAX_LEN:
            return f"concatenation exceeds {_MAX_LEN:,} items"
    if isinstance(op, ast.Mod) and isinstance(a, (str, bytes)):
        return "'%' string formatting is not allowed"  # a width like '%999999999d' would allocate at will
    return None


def _expanded_size(v, memo: dict, depth: int = 0) -> int:
    """Items of ``v`` with shared sub-values counted at every occurrence (memoised per object)."""
    if depth > _MAX_DEPTH:
        raise RecursionError
    key = id(v)
    if key in memo:
        return memo[key]
    if isinstance(v, dict):
        n = 1 + sum(_expanded_size(k, memo, depth + 1) + _expanded_size(x, memo, depth + 1) for k, x in v.items())
    elif isinstance(v, (list, tuple, set)):
        n = 1 + sum(_expanded_size(x, memo, depth + 1) for x in v)
    elif isinstance(v, (str, bytes)):
        n = 1 + len(v) // 64
    else:
        n = 1
    memo[key] = n
    return n


def check_size(value, where: str):
    """ConfigError when ``value`` expands to more than the bound (see ``_MAX_EXPANDED``)."""
    try:
        n = _expanded_size(value, {})
    except RecursionError:
        raise ConfigError(f"{where}: config value nested more than {_MAX_DEPTH} levels deep") from None
    if n > _MAX_EXPANDED:
        raise ConfigError(f"{where}: config value expands to more than {_MAX_EXPANDED:,} items "
                          "(shared references repeated); refusing to build it")
    return value


class _Evaluator:
    """Evaluate the restricted expression subset; ``env`` maps names already defined."""

    def __init__(self, where: str, env: dict):
        self.where = where
        self.env = env

    def fail(self, node, what: str):
        line = getattr(node, "lineno", None)
        loc = f"{self.where}:{line}" if line else self.where
        raise ConfigError(f"{loc}: {what}; MMDetection configs are read without executing them, so only literals, "
                          "lists, tuples, dicts, dict(...) calls, names defined above and arithmetic are allowed")

    def ev(self, node):
        if isinstance(node, ast.Constant):
            if _int_bits(node.value) > _MAX_INT_BITS:
                self.fail(node, f"integer literal of more than {_MAX_INT_BITS} bits")
            return node.value
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            vals = []
            for e in node.elts:
                if isinstance(e, ast.Starred):
                    vals.extend(self.ev(e.value))
                else:
                    vals.append(self.ev(e))
            return tuple(vals) if isinstance(node, ast.Tuple) else vals
        if isinstance(node, ast.Dict):
            out = {}
            for k, v in zip(node.keys, node.values):
                if k is None:  # {**other}
                    val = self.ev(v)
                    if not isinstance(val, dict):
                        self.fail(v, "'**' of a non-dict")
                    out.update(copy.deepcopy(val))
                else:
                    out[self.ev(k)] = self.ev(v)
            return out
        if isinstance(node, ast.Call):
            if not (isinstance(node.func, ast.Name) and node.func.id == "dict"):
                name = ast.unparse(node.func) if hasattr(ast, "unparse") else "?"
                self.fail(node, f"function call {name}(...) is not allowed (only dict(...))")
            if node.args:
                self.fail(node, "dict(...) with positional arguments is not allowed")
            out = {}
            for kw in node.keywords:
                if kw.arg is None:
                    val = self.ev(kw.value)
                    if not isinstance(val, dict):
                        self.fail(kw.value, "'**' of a non-dict")
                    out.update(copy.deepcopy(val))
                else:
                    out[kw.arg] = self.ev(kw.value)
            return out
        if isinstance(node, ast.Name):
            if node.id in ("True", "False", "None"):
                return {"True": True, "False": False, "None": None}[node.id]
            if node.id not in self.env:
                self.fail(node, f"name {node.id!r} is not defined")
            return copy.deepcopy(self.env[node.id])
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            a, b = self.ev(node.left), self.ev(node.right)
            why = _binop_bound(node.op, a, b)
            if why:
                self.fail(node, why)
            try:
                return _BINOPS[type(node.op)](a, b)
            except (TypeError, ValueError, ZeroDivisionError, OverflowError) as e:
                self.fail(node, f"bad arithmetic ({e})")
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNOPS:
            try:
                return _UNOPS[type(node.op)](self.ev(node.operand))
            except TypeError as e:
                self.fail(node, f"bad arithmetic ({e})")
        if isinstance(node, ast.Subscript):
            base = self.ev(node.value)
            idx = self.ev(node.slice)
            try:
                return copy.deepcopy(base[idx])
            except (KeyError, IndexError, TypeError) as e:
                self.fail(node, f"bad subscript ({e!r})")
        if isinstance(node, ast.Slice):
            parts = [None if p is None else self.ev(p) for p in (node.lower, node.upper, node.step)]
            return slice(*parts)
        if isinstance(node, ast.Attribute):
            self.fail(node, f"attribute access '{ast.unparse(node)}' is not allowed")
        self.fail(node, f"{type(node).__name__} expressions are not allowed")


def _parse(text: str, where: str):
    try:
        return ast.parse(text, filename=where)
    except SyntaxError as e:
        raise ConfigError(f"{where}:{e.lineno}: Python syntax error in config: {e.msg}") from None
    except (ValueError, RecursionError, MemoryError) as e:  # e.g. a null byte, nesting beyond the parser
        raise ConfigError(f"{where}: config text cannot be parsed ({type(e).__name__}: {str(e)[:200]})") from None


def _eval_module(text: str, where: str, env: dict) -> dict:
    """Evaluate the assignments of a config module; returns the names it assigns (in order)."""
    try:
        return _eval_statements(_parse(text, where), where, env)
    except RecursionError:
        raise ConfigError(f"{where}: config expression nested too deeply") from None


def _eval_statements(tree, where: str, env: dict) -> dict:
    ev = _Evaluator(where, env)
    out: dict = {}
    for stmt in tree.body:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            ev.fail(stmt, "import statements are not allowed")
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str):
            continue  # docstring / bare string
        if isinstance(stmt, ast.Assign):
            value = check_size(ev.ev(stmt.value), f"{where}:{stmt.lineno}")
            for tgt in stmt.targets:
                if not isinstance(tgt, ast.Name):
                    ev.fail(tgt, "only plain 'name = value' assignments are allowed")
                out[tgt.id] = value
                env[tgt.id] = value
            continue
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
            out[stmt.target.id] = env[stmt.target.id] = check_size(ev.ev(stmt.value), f"{where}:{stmt.lineno}")
            continue
        ev.fail(stmt, f"{type(stmt).__name__} statements are not allowed")
    return out


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
        tree = _parse(text, str(path))
        bases_node = next((s for s in tree.body if isinstance(s, ast.Assign)
                           and any(isinstance(t, ast.Name) and t.id == "_base_" for t in s.targets)), None)
        merged: dict = {}
        if bases_node is not None:
            bases = _Evaluator(str(path), {}).ev(bases_node.value)
            merged = _merge_bases(path, bases, depth, chain, bases_node.lineno)
        own = _eval_module(text, str(path), dict(merged))
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
    out = _eval_module(text, where, env)
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
