#!/usr/bin/env bash
# Set up everything the pipeline and the tests need, idempotently:
#   * the Python environment: the active virtualenv/conda env if there is one,
#     otherwise ./.venv: isolated from the system's packages, unless they include a
#     PyTorch (then it is created with access to them, so that torch is seen and kept);
#   * PyTorch: an existing installation is never replaced.  Without one, a
#     machine with an NVIDIA GPU gets torch==$TORCH_VERSION from PyPI (CUDA build);
#     a machine without one gets the CPU build: pip is first asked what
#     torch==$TORCH_VERSION would resolve to, and if that would pull CUDA packages,
#     the CPU wheel index ($TORCH_CPU_INDEX) is used instead;
#   * this package (editable) with its workflow and test tools, at the exact versions
#     of requirements/main.lock (hash-checked; `make lock` refreshes it), then a check that
#     every requirement of the package is met (torch's range included).
# Usage: scripts/setup.sh [PYTHON]   (PYTHON: the interpreter of the env to use)
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
TORCH_CPU_INDEX="${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}"
PY="${1:-}"
if [ -z "$PY" ]; then
  if [ -n "${VIRTUAL_ENV:-}" ]; then PY="$VIRTUAL_ENV/bin/python"
  elif [ -n "${CONDA_PREFIX:-}" ]; then PY="$CONDA_PREFIX/bin/python"
  else PY=".venv/bin/python"
  fi
fi

if [ ! -x "$PY" ]; then
  if [ "$PY" != ".venv/bin/python" ]; then echo "setup: $PY is not an executable Python" >&2; exit 1; fi
  BASE="${PYTHON:-python3}"
  "$BASE" -c 'import sys; assert sys.version_info >= (3, 11), sys.version' \
    || { echo "setup: needs Python >= 3.11 (set PYTHON=/path/to/python3.11)" >&2; exit 1; }
  if "$BASE" -c "import torch" 2>/dev/null; then
    echo "setup: creating .venv with $("$BASE" --version), seeing its packages (they include torch)"
    "$BASE" -m venv --system-site-packages .venv
  else
    echo "setup: creating .venv with $("$BASE" --version)"
    "$BASE" -m venv .venv
  fi
fi

stamp=".setup.stamp"
LOCK=requirements/main.lock
key="$PY $(cat pyproject.toml scripts/setup.sh "$LOCK" | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ] \
   && "$PY" -c "import adjoint_meta, torch, torchdiffeq, snakemake, dvc, pytest" 2>/dev/null; then
  echo "setup: up to date ($PY)"
  exit 0
fi

pip_install() { "$PY" -m pip install --disable-pip-version-check "$@"; }

if "$PY" -c "import torch" 2>/dev/null; then
  echo "setup: keeping the installed torch $("$PY" -c 'import torch; print(torch.__version__)')"
elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  echo "setup: NVIDIA GPU found; installing torch==$TORCH_VERSION (CUDA build)"
  pip_install "torch==$TORCH_VERSION"
else
  report="$(mktemp)"
  trap 'rm -f "$report"' EXIT
  pip_install --dry-run --quiet --report "$report" "torch==$TORCH_VERSION"
  if "$PY" - "$report" <<'PY'
import json, sys
names = [i["metadata"]["name"].lower() for i in json.load(open(sys.argv[1]))["install"]]
sys.exit(0 if any(n.startswith("nvidia-") for n in names) else 1)
PY
  then
    echo "setup: no GPU; torch==$TORCH_VERSION would pull CUDA packages, using the CPU build from $TORCH_CPU_INDEX"
    pip_install "torch==$TORCH_VERSION" --index-url "$TORCH_CPU_INDEX"
  else
    echo "setup: no GPU; installing the CPU build of torch==$TORCH_VERSION"
    pip_install "torch==$TORCH_VERSION"
  fi
fi

# the torch now installed stays: a constraint pins it, so no requirement can swap it for another
# build; everything else comes at the lock's versions, then the package itself without dependencies
pin="$(mktemp)"
trap 'rm -f "$pin" "${report:-}"' EXIT
"$PY" -c 'import torch; print("torch==" + torch.__version__.split("+")[0])' > "$pin"
pip_install -r "$LOCK" -c "$pin" \
  || { echo "setup: could not install $LOCK beside torch $(cat "$pin")" >&2; exit 1; }
pip_install --no-deps -e .
# every requirement of adjoint-meta[workflow,test] met: a torch older than pyproject.toml accepts,
# or a dependency added to pyproject.toml without `make lock`, stops here
"$PY" - <<'PY'
import sys
from importlib import metadata
from packaging.requirements import Requirement

unmet = []
for req in map(Requirement, metadata.requires("adjoint-meta")):
    if req.marker and not any(req.marker.evaluate({"extra": e}) for e in ("", "workflow", "test")):
        continue
    try:
        version = metadata.version(req.name)
    except metadata.PackageNotFoundError:
        version = None
    if version is None or not req.specifier.contains(version, prereleases=True):
        unmet.append(f"{req} (installed: {version or 'none'})")
if unmet:
    sys.exit("setup: requirements of adjoint-meta not met: " + "; ".join(unmet)
             + "\n  (torch: this project needs torch>=2.1; others: run `make lock` after editing pyproject.toml)")
PY
echo "$key" > "$stamp"
echo "setup: done ($PY, torch $("$PY" -c 'import torch; print(torch.__version__, "cuda" if torch.cuda.is_available() else "cpu")'))"
