"""The restricted evaluator behind :mod:`.config`: MMDetection config text read without executing it (torch-free).

Allowed: module-level assignments ``name = EXPR`` (and ``_base_.a.b[i] = EXPR``, which changes the inherited
value as mmengine's live ``_base_`` object would), docstrings, and expressions made of literals, lists, tuples,
dicts, ``dict(k=v, ...)``, names assigned earlier, ``_base_.a.b`` / ``{{_base_.a.b}}`` (a value inherited from
the ``_base_`` files), ``.copy()`` of a dict or list, unary/binary arithmetic, subscripts, slices, conditional
expressions and list comprehensions over such values. Imports, any other attribute access or call, lambdas,
control flow ... raise :class:`ConfigError` naming file and line. Sizes are bounded (below) so that untrusted
text cannot make us allocate at will.
"""
from __future__ import annotations

import ast
import copy
import operator

from ...errors import ConfigError

_BINOPS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
_UNOPS = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_}
_CMPOPS = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
           ast.Gt: operator.gt, ast.GtE: operator.ge, ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
           ast.Is: operator.is_, ast.IsNot: operator.is_not}
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
                          "lists, tuples, dicts, dict(...) calls, names defined above, _base_ values, .copy(), "
                          "arithmetic and list comprehensions are allowed")

    def ev(self, node):
        if isinstance(node, ast.Constant):
            if _int_bits(node.value) > _MAX_INT_BITS:
                self.fail(node, f"integer literal of more than {_MAX_INT_BITS} bits")
            return node.value
        if isinstance(node, ast.Set) and len(node.elts) == 1 and isinstance(node.elts[0], ast.Set) \
                and len(node.elts[0].elts) == 1 and isinstance(node.elts[0].elts[0], ast.Attribute):
            return copy.deepcopy(self.base_ref(node.elts[0].elts[0]))  # {{_base_.a.b}}: mmengine's substitution
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
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "copy" \
                and not node.args and not node.keywords:
            val = self.ev(node.func.value)
            if not isinstance(val, (dict, list)):
                self.fail(node, f".copy() of a {type(val).__name__} (only of a dict or list)")
            return val  # self.ev already returned a private copy
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
            return copy.deepcopy(self.base_ref(node))
        if isinstance(node, ast.IfExp):
            return self.ev(node.body) if self.ev(node.test) else self.ev(node.orelse)
        if isinstance(node, ast.Compare) and all(type(o) in _CMPOPS for o in node.ops):
            # chained comparisons as Python does them (a < b < c), e.g. mmdetection-mini's `if _yolo_type == 0:`
            left = self.ev(node.left)
            for op, comp in zip(node.ops, node.comparators):
                right = self.ev(comp)
                try:
                    ok = _CMPOPS[type(op)](left, right)
                except TypeError as e:
                    self.fail(node, f"bad comparison ({e})")
                if not ok:
                    return False
                left = right
            return True
        if isinstance(node, ast.BoolOp):
            vals = (self.ev(v) for v in node.values)
            return all(vals) if isinstance(node.op, ast.And) else any(vals)
        if isinstance(node, ast.ListComp):
            return self.list_comp(node)
        self.fail(node, f"{type(node).__name__} expressions are not allowed")

    def base_ref(self, node):
        """The live inherited value named by ``_base_.a.b[i]...`` (attribute = key, as mmengine's ConfigDict)."""
        if isinstance(node, ast.Name):
            if node.id != "_base_" or not isinstance(self.env.get("_base_"), dict):
                self.fail(node, f"attribute access on {node.id!r} is not allowed (only on _base_, the inherited "
                                "config)")
            return self.env["_base_"]
        if isinstance(node, ast.Attribute):
            parent = self.base_ref(node.value)
            if not isinstance(parent, dict) or node.attr not in parent:
                self.fail(node, f"'{ast.unparse(node)}' is not defined by the _base_ files")
            return parent[node.attr]
        if isinstance(node, ast.Subscript):
            parent, idx = self.base_ref(node.value), self.ev(node.slice)
            try:
                return parent[idx]
            except (KeyError, IndexError, TypeError) as e:
                self.fail(node, f"bad subscript ({e!r})")
        self.fail(node, f"attribute access '{ast.unparse(node)}' is not allowed (only _base_.name...)")

    def base_assign(self, target, value):
        """``_base_.a.b = value`` / ``_base_.a[i] = value``: change the inherited config in place."""
        if not isinstance(target, (ast.Attribute, ast.Subscript)):
            self.fail(target, "only 'name = value' and '_base_.key... = value' assignments are allowed")
        parent = self.base_ref(target.value)
        key = target.attr if isinstance(target, ast.Attribute) else self.ev(target.slice)
        if isinstance(parent, dict) and isinstance(key, (str, int, float, bool, tuple)):
            parent[key] = value
        elif isinstance(parent, list) and isinstance(key, int) and -len(parent) <= key < len(parent):
            parent[key] = value
        else:
            self.fail(target, f"cannot assign to '{ast.unparse(target)}'")

    def list_comp(self, node):
        """``[elt for t in seq if cond ...]``: ``t`` a name or a tuple of names, ``seq`` a list / tuple / dict."""
        results: list = []
        saved = dict(self.env)

        def bind(tgt, val):
            if isinstance(tgt, ast.Name):
                self.env[tgt.id] = val
            elif isinstance(tgt, ast.Tuple) and isinstance(val, (list, tuple)) and len(val) == len(tgt.elts):
                for t, v in zip(tgt.elts, val):
                    bind(t, v)
            else:
                self.fail(tgt, "comprehension target must be a name or a tuple of names matching the items")

        def walk(i):
            if i == len(node.generators):
                if len(results) >= _MAX_LEN:
                    self.fail(node, f"list comprehension exceeds {_MAX_LEN:,} items")
                results.append(self.ev(node.elt))
                return
            gen = node.generators[i]
            if gen.is_async:
                self.fail(gen, "async comprehensions are not allowed")
            seq = self.ev(gen.iter)
            if not isinstance(seq, (list, tuple, dict, str)):
                self.fail(gen.iter, f"comprehension over a {type(seq).__name__} (expected a list, tuple or dict)")
            for item in list(seq):
                bind(gen.target, item)
                if all(self.ev(c) for c in gen.ifs):
                    walk(i + 1)

        try:
            walk(0)
        finally:
            self.env.clear()
            self.env.update(saved)
        return results


def parse(text: str, where: str):
    try:
        return ast.parse(text, filename=where)
    except SyntaxError as e:
        raise ConfigError(f"{where}:{e.lineno}: Python syntax error in config: {e.msg}") from None
    except (ValueError, RecursionError, MemoryError) as e:  # e.g. a null byte, nesting beyond the parser
        raise ConfigError(f"{where}: config text cannot be parsed ({type(e).__name__}: {str(e)[:200]})") from None


def eval_module(text: str, where: str, env: dict) -> dict:
    """Evaluate the assignments of a config module; returns the names it assigns (in order)."""
    try:
        return _eval_statements(parse(text, where), where, env)
    except RecursionError:
        raise ConfigError(f"{where}: config expression nested too deeply") from None


def _eval_statements(tree, where: str, env: dict) -> dict:
    out: dict = {}
    _eval_body(tree.body, _Evaluator(where, env), where, env, out)
    return out


def _eval_body(body, ev, where: str, env: dict, out: dict) -> None:
    """Assignments (and ``if`` blocks of assignments, whose test the evaluator computes; only the taken
    branch is read) in order; ``raise`` in the taken branch is the config's own check failing."""
    for stmt in body:
        if isinstance(stmt, ast.If):
            _eval_body(stmt.body if ev.ev(stmt.test) else stmt.orelse, ev, where, env, out)
            continue
        if isinstance(stmt, ast.Raise):
            raise ConfigError(f"{where}:{stmt.lineno}: the config's own check fails here "
                              f"({ast.unparse(stmt).strip()}): the values above select no valid branch")
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            ev.fail(stmt, "import statements are not allowed")
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str):
            continue  # docstring / bare string
        if isinstance(stmt, ast.Assign):
            value = check_size(ev.ev(stmt.value), f"{where}:{stmt.lineno}")
            for tgt in stmt.targets:
                if not isinstance(tgt, ast.Name):
                    ev.base_assign(tgt, value)
                elif tgt.id == "_base_" and isinstance(env.get("_base_"), dict):
                    out["_base_"] = value  # the list of base files (already merged into env['_base_'])
                else:
                    out[tgt.id] = value
                    env[tgt.id] = value
            continue
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
            out[stmt.target.id] = env[stmt.target.id] = check_size(ev.ev(stmt.value), f"{where}:{stmt.lineno}")
            continue
        ev.fail(stmt, f"{type(stmt).__name__} statements are not allowed")
