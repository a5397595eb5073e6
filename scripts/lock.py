"""Refresh the pinned environment after a change to the dependencies in pyproject.toml
(`make lock`, which installs the uv this needs). Writes:

* requirements/main.lock: the exact versions, with their hashes, of everything
  adjoint-meta[workflow,test] needs except torch; scripts/setup.sh installs from it;
* requirements/bench.lock: the same for the `bench` extra, constrained to main.lock's versions
  (pip install -r requirements/bench.lock);
* requirements/lint.lock: the same for the `lint` extra (ruff and snakefmt, which .ci/run installs);
* workflow/envs/adjoint-meta.yaml: the rules' conda environment (snakemake --sdm conda):
  Python 3.11, main.lock's versions and the CPU build of the torch scripts/setup.sh installs.

Both locks are universal (uv pip compile --universal): one file for every platform and every
Python that pyproject.toml's requires-python admits, with one version of a package wherever a
single one fits them all (--fork-strategy fewest). torch never enters the resolution
([tool.uv] exclude-dependencies in pyproject.toml), so neither torch nor the CUDA packages of its
PyPI build appear in them.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAIN = "requirements/main.lock"
BENCH = "requirements/bench.lock"
LINT = "requirements/lint.lock"
ENV = "workflow/envs/adjoint-meta.yaml"
ENV_PYTHON = "3.11"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
COMPILE = ["pip", "compile", "pyproject.toml", "--universal", "--fork-strategy", "fewest",
           "--generate-hashes", "--custom-compile-command", "make lock", "--quiet"]


def torch_version() -> str:
    """The torch version scripts/setup.sh installs (its TORCH_VERSION default)."""
    m = re.search(r'TORCH_VERSION="\$\{TORCH_VERSION:-([^}]+)\}"', (ROOT / "scripts" / "setup.sh").read_text())
    if not m:
        raise SystemExit("lock: no TORCH_VERSION default found in scripts/setup.sh")
    return m.group(1)


def pins(lock_text: str) -> list[str]:
    """The requirement lines of a lock (`name==version` with its marker), without hashes."""
    return [line.rstrip(" \\").strip() for line in lock_text.splitlines()
            if line and not line[0].isspace() and not line.startswith(("#", "-"))]


def name(pin: str) -> str:
    return re.match(r"[A-Za-z0-9_.-]+", pin).group(0).lower().replace("_", "-")


def torch_builds(lock_text: str) -> list[str]:
    """Pins of torch or of the packages only its builds bring (CUDA libraries, triton)."""
    return [p for p in pins(lock_text) if name(p) in ("torch", "triton") or name(p).startswith("nvidia-")]


def env_file(lock_text: str, torch: str) -> str:
    """The conda environment file of the rules, from main.lock's text."""
    lines = [
        f"# The conda environment of every rule (snakemake --sdm conda): Python {ENV_PYTHON},",
        f"# the exact versions of {MAIN} and the CPU build of torch {torch}; the package itself",
        "# is installed by adjoint-meta.post-deploy.sh. For GPU jobs run without --sdm conda, in",
        "# the environment scripts/setup.sh makes (it keeps a CUDA build of torch).",
        f"# Written by `make lock` (scripts/lock.py) from {MAIN}: do not edit by hand.",
        "channels:",
        "  - conda-forge",
        "  - nodefaults",
        "dependencies:",
        f"  - python={ENV_PYTHON}",
        "  - pip",
        "  - pip:",
        f'      - "--extra-index-url {TORCH_CPU_INDEX}"',
        # PyPI's Linux build is the CUDA one; its macOS and Windows builds are CPU builds
        f"      - \"torch=={torch}+cpu ; sys_platform == 'linux'\"",
        f"      - \"torch=={torch} ; sys_platform != 'linux'\"",
    ]
    lines += [f'      - "{pin}"' for pin in pins(lock_text)]
    return "\n".join(lines) + "\n"


def compile_lock(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "uv", *COMPILE, *args], cwd=ROOT, check=True)


def main() -> None:
    compile_lock("--extra", "workflow", "--extra", "test", "-o", MAIN)
    compile_lock("--extra", "bench", "--constraints", MAIN, "-o", BENCH)
    compile_lock("--extra", "lint", "--constraints", MAIN, "-o", LINT)
    for lock in (MAIN, BENCH, LINT):
        if leaked := torch_builds((ROOT / lock).read_text()):
            raise SystemExit(f"lock: {lock} holds {leaked}; torch must stay out (pyproject.toml [tool.uv])")
    text = (ROOT / MAIN).read_text()
    (ROOT / ENV).write_text(env_file(text, torch_version()))
    print(f"lock: wrote {MAIN} ({len(pins(text))} packages), {BENCH}, {LINT}, {ENV}")


if __name__ == "__main__":
    main()
