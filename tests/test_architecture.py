"""The house rules, checked on the package as it is: no import circles, the layering (parsers and model_defs
never import the tools), no file names that say nothing, about 400 lines per module at most."""
from __future__ import annotations

import ast
from pathlib import Path

import zooport

PKG = Path(zooport.__file__).resolve().parent


def _modules() -> dict:
    mods = {}
    for p in PKG.rglob("*.py"):
        parts = p.relative_to(PKG.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = p
    return mods


def _graph() -> dict:
    """module -> the zooport modules it imports anywhere in its text (function-level imports included)."""
    mods = _modules()
    graph = {}
    for name, path in mods.items():
        is_pkg = path.name == "__init__.py"
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                    pkg = pkg[:len(pkg) - node.level + 1]
                    base = ".".join(pkg + ([base] if base else []))
                targets = [f"{base}.{a.name}" for a in node.names] + [base]
            for t in targets:
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t.startswith("zooport") and t != name:
                    deps.add(t)
        graph[name] = deps
    return graph


def test_no_import_circles():
    graph = _graph()
    # a package importing its own sub-modules (re-exports) is not a circle; everything else is
    def edges(a):
        return {b for b in graph[a] if not (b.startswith(a + "."))}

    state, cycles = {}, []

    def visit(v, stack):
        state[v] = 1
        stack.append(v)
        for w in edges(v):
            if state.get(w) == 1:
                cycles.append(stack[stack.index(w):] + [w])
            elif w not in state:
                visit(w, stack)
        stack.pop()
        state[v] = 2

    for v in sorted(graph):
        if v not in state:
            visit(v, [])
    assert cycles == [], cycles


def test_parsers_and_model_defs_never_import_the_tools():
    bad = [(a, b) for a, deps in _graph().items() if a.startswith(("zooport.parsers", "zooport.model_defs"))
           for b in deps if b.startswith(("zooport.cli", "zooport.export", "zooport.eval", "zooport.inference"))]
    assert bad == [], bad


def test_the_dataset_readers_are_datasets_and_eval_consumes_them():
    """One dataset reader: zooport.datasets reads the files (images, COCO JSON, VOC XML) and never reaches
    into zooport.eval; the verifier's dataset module takes its readers from there."""
    g = _graph()
    bad = [(a, b) for a, deps in g.items() if a.startswith("zooport.datasets") for b in deps
           if b.startswith("zooport.eval")]
    assert bad == [], bad
    assert "zooport.datasets.files" in g["zooport.eval.data"]
    import zooport.datasets.files as files
    import zooport.eval.data as data

    assert data.read_image is files.read_image and data.parse_voc_xml is files.parse_voc_xml


def test_file_names_say_something_and_files_stay_small():
    vague = [p.name for p in PKG.rglob("*.py") if p.stem.endswith(("_extra", "_more", "_misc", "_utils"))]
    assert vague == []
    big = {str(p.relative_to(PKG)): n for p in PKG.rglob("*.py") if (n := len(p.read_text().splitlines())) > 450}
    assert big == {}, big
