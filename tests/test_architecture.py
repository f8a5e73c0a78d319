"""The house rules the file list relies on: no import circles (every import counts, lazy ones too), at module
and at subpackage level, and every subpackage shipped in the wheel."""

import ast
from collections import defaultdict
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10 (Jetson JetPack 6): the same parser as the tomli package
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "sepgzoo"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """sepgzoo modules a file imports anywhere (function bodies included), resolved to the known module names."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `a.b.attr` -> the module `a.b`
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    known = set(files)
    return {name: imported_modules(path, known) for name, path in files.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan), each sorted."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def subpackage_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The same graph with every module folded into its top-level subpackage (sepgzoo.deploy.tensorrt -> deploy)."""
    def top(name: str) -> str:
        parts = name.split(".")
        return ".".join(parts[:2])

    folded: dict[str, set[str]] = defaultdict(set)
    for source, targets in graph.items():
        folded[top(source)] |= {top(t) for t in targets if top(t) != top(source) and top(t) != "sepgzoo"}
    return folded


def test_the_circle_finder_finds_a_planted_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []
    folded = subpackage_graph({"sepgzoo.x.one": {"sepgzoo.y.two"}, "sepgzoo.y.two": {"sepgzoo.x.three"}})
    assert circles(folded) == [["sepgzoo.x", "sepgzoo.y"]]


def test_the_finder_sees_lazy_and_relative_imports(tmp_path):
    source = tmp_path / "mod.py"
    source.write_text("def f():\n    from sepgzoo.hub import zoo\n    import sepgzoo.deploy.runtime as r\n")
    known = {"sepgzoo.hub", "sepgzoo.hub.zoo", "sepgzoo.deploy", "sepgzoo.deploy.runtime"}
    assert {"sepgzoo.hub.zoo", "sepgzoo.deploy.runtime"} <= imported_modules_at(source, known, "sepgzoo.other")


def imported_modules_at(path: Path, known: set[str], name: str) -> set[str]:
    """`imported_modules` for a file outside the package (the test above), under a given module name."""
    original = globals()["module_name"]
    globals()["module_name"] = lambda p: name
    try:
        return imported_modules(path, known)
    finally:
        globals()["module_name"] = original


@pytest.mark.parametrize("level", ["module", "subpackage"])
def test_no_import_circles(level):
    graph = import_graph()
    found = circles(graph if level == "module" else subpackage_graph(graph))
    assert found == [], f"import circles at {level} level: {found}"


def test_every_subpackage_is_shipped_in_the_wheel():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {module_name(p.parent / "__init__.py") for p in PACKAGE.rglob("__init__.py")}
    assert on_disk <= listed, f"not listed in pyproject [tool.setuptools] packages: {sorted(on_disk - listed)}"
