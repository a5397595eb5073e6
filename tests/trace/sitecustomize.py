"""Records what a pipeline step really used: on PYTHONPATH with ADJOINT_META_TRACE_DIR set,
every `python -m adjoint_meta <step>` process writes, at exit, the package modules it had
imported and the package files it opened (tests/test_codedeps.py compares them with the
dependencies derived statically from the imports)."""
import atexit
import json
import os
import sys

_DIR = os.environ.get("ADJOINT_META_TRACE_DIR")
_opened = set()


def _hook(event, args):
    if event == "open" and args and isinstance(args[0], (str, os.PathLike)):
        _opened.add(os.path.abspath(os.fspath(args[0])))


def _write():
    pkg = sys.modules.get("adjoint_meta")
    if pkg is None or not sys.argv or not sys.argv[0].endswith(os.path.join("adjoint_meta", "__main__.py")):
        return
    root = os.path.dirname(os.path.abspath(pkg.__file__))
    modules = {os.path.abspath(m.__file__) for name, m in list(sys.modules.items())
               if (name == "adjoint_meta" or name.startswith("adjoint_meta.")) and getattr(m, "__file__", None)}
    used = sorted(os.path.relpath(p, root) for p in modules | _opened
                  if p.startswith(root + os.sep) and "__pycache__" not in p)
    with open(os.path.join(_DIR, f"{os.getpid()}.json"), "w") as fh:
        json.dump({"argv": sys.argv[1:], "files": used}, fh)


if _DIR:
    sys.addaudithook(_hook)
    atexit.register(_write)
