"""The source files and package data each pipeline step runs, derived from its imports.

Both front ends declare these files as a step's inputs (Snakemake ``input:``, DVC
``deps:``), so editing one reruns exactly the steps that run it.  Nothing here is a
list kept by hand: a step is a subcommand of the CLI, and its files are found by
reading ``import`` statements, never by executing them.

A step runs ``python -m adjoint_meta <step>``: the package's ``__init__``, ``__main__``
and ``cli`` modules, the command's own function ``cli.cmd_<step>`` and what those
import, then everything those modules import, transitively.  Within ``cli`` the
imports inside other steps' ``cmd_*`` functions are left out (each command imports its
own step lazily); everywhere else every import counts, at module level or inside a
function, whether or not a given run reaches it.  Importing ``a.b.c`` runs ``a`` and
``a.b`` too, so parent packages are included.  A package that imports all of its modules
with ``plugins.import_all(__name__, __path__)`` (the estimators, which register themselves)
imports each of them.

Package data is found the same way: a module reads a file shipped with the package
only through ``importlib.resources.files(<package>).joinpath("<relative path>")``
with literal arguments (``<package>`` a string or ``__name__``), and that call makes
the file a dependency of every step that imports the module.
"""
from __future__ import annotations

import ast
import pkgutil
from functools import lru_cache
from pathlib import Path

from adjoint_meta.io import digests

PACKAGE = "adjoint_meta"
PACKAGE_DIR = Path(__file__).resolve().parent
SOURCE_DIR = "src/" + PACKAGE  # where the package lives in the project, relative to its root
ENTRY = ("__main__", "cli")  # what `python -m adjoint_meta` runs before any step's own code


def module_path(name: str) -> Path | None:
    """The source file of package module ``name`` (a package's ``__init__.py``), or None."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = PACKAGE_DIR.joinpath(*parts[1:])
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE_DIR).with_suffix("")
    parts = [PACKAGE, *rel.parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package_of(path: Path) -> str:
    """The package a module belongs to (itself for an ``__init__.py``)."""
    name = _module_name(path)
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def _resolve(node: ast.ImportFrom, path: Path) -> str:
    """The absolute module name of a ``from ... import`` statement."""
    if not node.level:
        return node.module or ""
    base = _package_of(path).split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _with_parents(name: str) -> set[str]:
    parts = name.split(".")
    return {".".join(parts[: i + 1]) for i in range(len(parts))}


def _imports(nodes: list[ast.AST], path: Path) -> set[str]:
    """Package modules imported anywhere under ``nodes`` (with their parent packages)."""
    found: set[str] = set()
    for root in nodes:
        for node in ast.walk(root):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                mod = _resolve(node, path)
                # `from pkg import name`: name is a submodule or something pkg defines
                names = [mod] + [f"{mod}.{a.name}" for a in node.names if module_path(f"{mod}.{a.name}")]
            if _imports_all(node) and path.name == "__init__.py":
                package = _module_name(path)
                names = [f"{package}.{m.name}" for m in pkgutil.iter_modules([str(path.parent)])]
            for name in names:
                if name.split(".")[0] == PACKAGE:
                    found |= {n for n in _with_parents(name) if module_path(n)}
    return found


def _imports_all(node: ast.AST) -> bool:
    """Whether ``node`` is the call ``import_all(__name__, __path__)`` (``adjoint_meta.plugins``)."""
    if not isinstance(node, ast.Call) or len(node.args) != 2:
        return False
    func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
    return func == "import_all" and [getattr(a, "id", None) for a in node.args] == ["__name__", "__path__"]


def _data_files(tree: ast.AST, path: Path) -> set[Path]:
    """Package files read as ``resources.files(<package>).joinpath("<literal>")``."""
    found = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "joinpath" and isinstance(node.func.value, ast.Call)):
            continue
        inner = node.func.value
        if not (isinstance(inner.func, ast.Attribute) and inner.func.attr == "files" and len(inner.args) == 1):
            continue
        (arg,) = inner.args
        if isinstance(arg, ast.Name) and arg.id in ("__name__", "__package__"):
            package = _package_of(path)
        elif isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            package = arg.value
        else:
            continue
        pkg_file = module_path(package)
        if pkg_file is None or not all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in node.args):
            continue
        target = pkg_file.parent.joinpath(*[a.value for a in node.args])
        if not target.is_file():
            raise FileNotFoundError(f"{path}: reads package data {target}, which does not exist")
        found.add(target)
    return found


@lru_cache(maxsize=None)
def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


@lru_cache(maxsize=None)
def _direct(path: Path, step: str | None) -> tuple[frozenset[str], frozenset[Path]]:
    """(modules, data files) ``path`` uses directly; in ``cli``, only those of command ``step``."""
    tree = _parse(path)
    nodes: list[ast.AST] = [tree]
    if _module_name(path) == f"{PACKAGE}.cli":
        own = f"cmd_{step.replace('-', '_')}" if step else None
        nodes = [n for n in tree.body if not (isinstance(n, ast.FunctionDef) and n.name.startswith("cmd_")
                                                and n.name != own)]
    return frozenset(_imports(nodes, path)), frozenset(_data_files(tree, path))


@lru_cache(maxsize=None)
def step_files(step: str) -> tuple[str, ...]:
    """Every package file that ``adjoint-meta <step>`` may run or read, as sorted paths relative
    to the project root (``src/adjoint_meta/...``)."""
    if module_path(f"{PACKAGE}.cli") is None or not _has_command(step):
        raise ValueError(f"no pipeline step {step!r} in {PACKAGE}.cli")
    todo = [PACKAGE] + [f"{PACKAGE}.{m}" for m in ENTRY]
    seen: set[str] = set()
    data: set[Path] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        modules, files = _direct(module_path(name), step)
        data |= files
        todo.extend(modules - seen)
    files = {module_path(n) for n in seen} | data
    return tuple(sorted(f"{SOURCE_DIR}/{p.relative_to(PACKAGE_DIR).as_posix()}" for p in files))


def _has_command(step: str) -> bool:
    cli = _parse(module_path(f"{PACKAGE}.cli"))
    return any(isinstance(n, ast.FunctionDef) and n.name == f"cmd_{step.replace('-', '_')}" for n in cli.body)


def fingerprint(step: str, root: str | Path = ".") -> str:
    """A line ``<sha256>  <path>`` for each file of ``step_files(step)``, read under the project
    ``root``: what DVC's stages of the step depend on instead of the files themselves (``dvc_yaml``),
    so it changes exactly when one of them does."""
    return "".join(f"{digests(Path(root, rel))['sha256']}  {rel}\n" for rel in step_files(step))


def package_files() -> list[str]:
    """Every module and data file of the package, as paths relative to the project root."""
    out = []
    for p in sorted(PACKAGE_DIR.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts and not p.name.endswith((".pyc", ".pyo")):
            out.append(f"{SOURCE_DIR}/{p.relative_to(PACKAGE_DIR).as_posix()}")
    return out
