"""No package module imports a module that imports it back, directly or through a chain.

The graph is read from every module's source (``ast``), imports inside functions included, so a
circle cannot be hidden by moving one of its imports into a function.  An edge goes to the module
an import names: ``from pkg import sub`` to ``pkg.sub`` when that is a module, else to ``pkg``;
the parent packages Python runs first are not edges (a package's ``__init__`` importing its own
modules is no circle by itself).  ``plugins.import_all(__name__, __path__)`` imports every module
of its package.
"""
from __future__ import annotations

import ast
import pkgutil
from pathlib import Path

import pytest

import adjoint_meta

PACKAGE = adjoint_meta.__name__
ROOT = Path(adjoint_meta.__file__).resolve().parent


def _modules() -> dict[str, Path]:
    """Module name -> source file, for every module of the package."""
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = [PACKAGE, *path.relative_to(ROOT).with_suffix("").parts]
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def _imported(node: ast.AST, name: str, path: Path) -> list[str]:
    """The package modules one AST node of module ``name`` (file ``path``) imports."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom):
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
        mod = ".".join(base + ([node.module] if node.module else []))
        return [f"{mod}.{a.name}" if f"{mod}.{a.name}" in MODULES else mod for a in node.names]
    if (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_all"
            and path.name == "__init__.py"):
        return [f"{name}.{m.name}" for m in pkgutil.iter_modules([str(path.parent)])]
    return []


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports anywhere in its source."""
    graph = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        graph[name] = {m for node in ast.walk(tree) for m in _imported(node, name, path)
                       if m in MODULES and m != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle per strongly connected component of more than one module (Tarjan's algorithm,
    iterative), as the component's modules in sorted order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_module_imports_one_that_imports_it_back():
    circles = cycles(import_graph())
    assert not circles, "import circles (each a set of modules that import one another):\n" + "\n".join(
        " <-> ".join(c) for c in circles)


def test_the_graph_sees_every_kind_of_import():
    graph = import_graph()
    assert f"{PACKAGE}.io" in graph[f"{PACKAGE}.summarize"]  # from pkg.mod import name
    assert f"{PACKAGE}.config" in graph[f"{PACKAGE}.summarize"]  # from pkg import module
    assert f"{PACKAGE}.estimators.maml" in graph[f"{PACKAGE}.estimators"]  # plugins.import_all
    inside = [n for n in ast.walk(ast.parse(MODULES[f"{PACKAGE}.cli"].read_text()))
              if isinstance(n, ast.FunctionDef) and any(isinstance(s, (ast.Import, ast.ImportFrom))
                                                         for s in ast.walk(n))]
    assert inside, "cli imports its commands' modules inside functions"
    lazy = {m for f in inside for s in ast.walk(f) for m in _imported(s, f"{PACKAGE}.cli", MODULES[f"{PACKAGE}.cli"])}
    assert lazy & set(MODULES) <= graph[f"{PACKAGE}.cli"]  # imports inside functions count


@pytest.mark.parametrize("graph, expected", [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ({"a": {"b"}, "b": set(), "c": {"a", "b"}}, []),
    ({"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"c"}}, [["a", "b"], ["c", "d"]]),
])
def test_cycles_finds_chains(graph, expected):
    assert sorted(cycles(graph)) == expected
