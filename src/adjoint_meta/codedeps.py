"""The package files each pipeline job can be changed by, derived from imports, and their fingerprints.

Both front ends give every job one code input: a file ``results/code/<step>[/<key>].sha256``
(``paths.CODE_INPUT``) holding a fingerprint of the files the job can be changed by.  Nothing here
is a list kept by hand: a step is a subcommand of the CLI, and its files are found by reading
``import`` statements, never by executing them.

A step runs ``python -m adjoint_meta <step>``: the package's ``__init__``, ``__main__`` and ``cli``
modules, the command's own function ``cli.cmd_<step>`` and what those import, then everything those
modules import, transitively.  Within ``cli`` the imports inside other steps' ``cmd_*`` functions
are left out (each command imports its own step lazily); everywhere else every import counts, at
module level or inside a function, whether or not a given run reaches it.  Importing ``a.b.c`` runs
``a`` and ``a.b`` too, so parent packages are included.  Two kinds of import are not followed:

* the plugins of a registry: a package that imports all of its modules with
  ``plugins.import_all(__name__, __path__)`` (the estimators, which register themselves).  A job
  depends on the plugins it runs (``job_plugins``: the module of each estimator kind it trains,
  evaluates against or profiles; summaries and the report, which read every class's label, on all
  of them), and a make-tasks job on its dataset's builder (``data.sources.builder``);
* validation: a module that declares ``VALIDATION_ONLY = True`` (the parameter schema and its
  cross-checks) only refuses parameters and never changes a result, so neither it nor what it
  imports is a code input.  Every command still validates before any work.

Package data is found the same way: a module reads a file shipped with the package only through
``importlib.resources.files(<package>).joinpath("<relative path>")`` with literal arguments
(``<package>`` a string or ``__name__``), and that call makes the file a dependency of every job
that imports the module.

A fingerprint hashes each file's content as the program sees it: a module's syntax tree without
docstrings (comments never reach it), a YAML file's parsed document, any other file's bytes.  So an
edit to a comment or docstring changes no fingerprint and reruns nothing.
"""
from __future__ import annotations

import ast
import hashlib
import json
import os
import pkgutil
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path

import yaml

from adjoint_meta.io import write_text

PACKAGE = "adjoint_meta"
PACKAGE_DIR = Path(__file__).resolve().parent
SOURCE_DIR = "src/" + PACKAGE  # where the package lives in the project, relative to its root
ENTRY = ("__main__", "cli")  # what `python -m adjoint_meta` runs before any step's own code


@cache
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


@cache
def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


VALIDATION_ONLY = "VALIDATION_ONLY"  # the module-level flag of a module that only refuses parameters


@cache
def validation_only(name: str) -> bool:
    """Whether package module ``name`` declares ``VALIDATION_ONLY = True`` at its top level."""
    path = module_path(name)
    return path is not None and any(
        isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == VALIDATION_ONLY for t in n.targets)
        and isinstance(n.value, ast.Constant) and n.value.value is True for n in _parse(path).body)


@cache
def _direct(path: Path, step: str | None) -> tuple[frozenset[str], frozenset[Path]]:
    """(modules, data files) ``path`` uses directly; in ``cli``, only those of command ``step``."""
    tree = _parse(path)
    nodes: list[ast.AST] = [tree]
    if _module_name(path) == f"{PACKAGE}.cli":
        own = f"cmd_{step.replace('-', '_')}" if step else None
        nodes = [n for n in tree.body if not (isinstance(n, ast.FunctionDef) and n.name.startswith("cmd_")
                                                and n.name != own)]
    return frozenset(_imports(nodes, path)), frozenset(_data_files(tree, path))


def _closure(roots: Iterable[str], step: str | None = None, *, cut: bool = True) -> set[Path]:
    """The files of ``roots`` and of everything they import; ``cut``: without registries' plugins and
    validation (the module docstring)."""
    todo = list(roots)
    seen: set[str] = set()
    data: set[Path] = set()
    while todo:
        name = todo.pop()
        if name in seen or (cut and validation_only(name)):
            continue
        seen.add(name)
        # only the CLI's imports depend on the step (its other commands' bodies are left out)
        modules, files = _direct(module_path(name), step if name == f"{PACKAGE}.cli" else None)
        if not cut:
            modules = modules | _plugins_of(name)
        data |= files
        todo.extend(modules - seen)
    return {module_path(n) for n in seen} | data


def _plugins_of(name: str) -> frozenset[str]:
    """The modules package ``name`` imports through ``import_all`` (none for other modules)."""
    path = module_path(name)
    if path.name != "__init__.py" or not any(_imports_all(n) for n in ast.walk(_parse(path))):
        return frozenset()
    return frozenset(f"{name}.{m.name}" for m in pkgutil.iter_modules([str(path.parent)]))


def _rel(files: Iterable[Path]) -> tuple[str, ...]:
    return tuple(sorted(f"{SOURCE_DIR}/{p.relative_to(PACKAGE_DIR).as_posix()}" for p in files))


def _check_step(step: str) -> None:
    if module_path(f"{PACKAGE}.cli") is None or not _has_command(step):
        raise ValueError(f"no pipeline step {step!r} in {PACKAGE}.cli")


@cache
def step_files(step: str) -> tuple[str, ...]:
    """The package files of ``adjoint-meta <step>``'s own code (no plugin, no validation), as sorted
    paths relative to the project root (``src/adjoint_meta/...``)."""
    _check_step(step)
    return _rel(_closure([PACKAGE] + [f"{PACKAGE}.{m}" for m in ENTRY], step))


@cache
def imported_files(step: str) -> tuple[str, ...]:
    """Every package file ``adjoint-meta <step>`` may import or read, plugins (a dataset builder too) and
    validation included: what a run of the step can load, whichever job it is."""
    _check_step(step)
    return _rel(_closure([PACKAGE] + [f"{PACKAGE}.{m}" for m in ENTRY] + list(step_plugins(step)), step, cut=False))


@cache
def module_files(name: str) -> tuple[str, ...]:
    """The files of package module ``name`` and of what it imports (no plugin, no validation)."""
    if module_path(name) is None:
        raise ValueError(f"no module {name!r} in {PACKAGE}")
    return _rel(_closure([name]))


def job_files(step: str, plugins: Iterable[str] = ()) -> tuple[str, ...]:
    """The files a job of ``step`` that runs the plugin modules ``plugins`` can be changed by."""
    return tuple(sorted(set(step_files(step)).union(*(module_files(m) for m in plugins))))


def _has_command(step: str) -> bool:
    cli = _parse(module_path(f"{PACKAGE}.cli"))
    return any(isinstance(n, ast.FunctionDef) and n.name == f"cmd_{step.replace('-', '_')}" for n in cli.body)


# -- the jobs' plugins and code inputs -----------------------------------------------------------
# The wildcard that tells apart the jobs of a step with different plugins; a step not named here has
# one code input for all its jobs.
KEYS: dict[str, str] = {"make-tasks": "dataset", "train": "estimator", "fewshot": "estimator",
                        "profile": "profile", "accuracy": "name"}


def _estimator_modules(params: Mapping, names: Iterable[str]) -> set[str]:
    from adjoint_meta.estimators import REGISTRY

    return {REGISTRY[params["estimators"][n]["kind"]].__module__ for n in names}


def job_plugins(params: Mapping, step: str, key: str | None = None) -> tuple[str, ...]:
    """The plugin modules the job of ``step`` with ``key`` (its ``KEYS[step]`` wildcard) runs."""
    from adjoint_meta.data.sources import builder
    from adjoint_meta.estimators import REGISTRY

    if step == "make-tasks":
        found = {builder(params["datasets"][key]["source"])}
    elif step in ("train", "fewshot"):
        found = _estimator_modules(params, [key])
    elif step == "profile":
        prof = params["profiles"][key]
        found = _estimator_modules(params, [*prof["estimators"], *([prof["trained"]["estimator"]]
                                                                    if prof.get("trained") else [])])
    elif step == "accuracy":
        from adjoint_meta.accuracy import REFERENCE

        found = _estimator_modules(params, params["accuracy"][key]["estimators"]) | {
            REGISTRY[REFERENCE[0]].__module__}
    elif step in ("summarize", "report"):  # every estimator's label, role and kind
        found = {cls.__module__ for cls in REGISTRY.values()}
    else:
        found = set()
    return tuple(sorted(found))


def step_plugins(step: str) -> tuple[str, ...]:
    """Every plugin module some job of ``step`` may run, whatever the parameters."""
    from adjoint_meta.data.sources import BUILDERS
    from adjoint_meta.estimators import REGISTRY

    if step == "make-tasks":
        return tuple(sorted(BUILDERS))
    if step in ("train", "fewshot", "profile", "accuracy", "summarize", "report"):
        return tuple(sorted({cls.__module__ for cls in REGISTRY.values()}))
    return ()


@cache
def possible_files(step: str | None = None) -> tuple[str, ...]:
    """Every file some job of ``step`` (default: of any step) can be changed by, whatever the parameters."""
    from adjoint_meta import config

    steps = [step] if step else list(config.RELEVANT_KEYS)
    return tuple(sorted(set().union(*(job_files(s, step_plugins(s)) for s in steps))))


def code_input(step: str, key: str | None = None) -> str:
    """The code input file of the jobs of ``step`` with ``key`` (``paths.CODE_INPUT``)."""
    from adjoint_meta import paths

    return paths.CODE_INPUT.format(job=step if key is None else f"{step}/{key}")


def step_keys(params: Mapping, step: str) -> list[str | None]:
    """The keys of the jobs of ``step`` in ``params``: one ``None`` for a step without ``KEYS``."""
    from adjoint_meta import config

    if step not in KEYS:
        return [None]
    if step == "make-tasks":
        return sorted(params["datasets"])
    if step == "train":
        return sorted({c.estimator for c in config.cells(params)})
    if step == "fewshot":
        return sorted({j["estimator"] for j in config.fewshot_jobs(params)})
    return sorted(params["profiles" if step == "profile" else "accuracy"])


def code_inputs(params: Mapping, steps: Iterable[str] | None = None) -> dict[str, tuple[str, ...]]:
    """{code input file: the package files its jobs can be changed by} for every job of ``params``
    (of ``steps``; default every step)."""
    from adjoint_meta import config

    return {code_input(step, key): job_files(step, job_plugins(params, step, key))
            for step in (steps or config.RELEVANT_KEYS) for key in step_keys(params, step)}


def _digest(path: Path) -> str:
    st = path.stat()
    return _digest_of(str(path), st.st_mtime_ns, st.st_size)


@cache
def _digest_of(path: str, mtime_ns: int, size: int) -> str:
    """sha256 of ``_content`` (the file's date and size only key the cache)."""
    return hashlib.sha256(_content(Path(path))).hexdigest()


def _content(path: Path) -> bytes:
    """What a file means to the program: a module's syntax tree without docstrings, a YAML file's
    document, another file's bytes."""
    if path.suffix == ".py":
        tree = ast.parse(path.read_bytes(), filename=str(path))
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                    and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                node.body = body[1:] or [ast.Pass()]
        return ast.dump(tree).encode()
    if path.suffix in (".yaml", ".yml"):
        return json.dumps(yaml.safe_load(path.read_text()), sort_keys=True, default=str).encode()
    return path.read_bytes()


def fingerprint(files: Iterable[str], root: str | Path = ".") -> str:
    """A line ``<sha256>  <path>`` for each of ``files`` (paths relative to the project ``root``),
    hashing what the file means to the program (``_content``), so a comment or docstring changes nothing."""
    return "".join(f"{_digest(Path(root, rel))}  {rel}\n" for rel in sorted(files))


def write_code_inputs(params: Mapping, root: str | Path = ".", steps: Iterable[str] | None = None) -> list[str]:
    """Write the code input of every job of ``params`` (of ``steps``) under ``root``, each only where its
    fingerprint changed, and dated like the newest of its files, so a job whose code did not change
    keeps its inputs' dates and one whose code did sees an input newer than its outputs.  Returns
    the files written."""
    written = []
    for rel, files in code_inputs(params, steps).items():
        text = fingerprint(files, root)
        out = Path(root, rel)
        if out.is_file() and out.read_text() == text:
            continue
        write_text(out, text)
        newest = max(Path(root, f).stat().st_mtime for f in files)
        os.utime(out, (newest, newest))
        written.append(rel)
    return written


def package_files() -> list[str]:
    """Every module and data file of the package, as paths relative to the project root."""
    out = []
    for p in sorted(PACKAGE_DIR.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts and not p.name.endswith((".pyc", ".pyo")):
            out.append(f"{SOURCE_DIR}/{p.relative_to(PACKAGE_DIR).as_posix()}")
    return out
