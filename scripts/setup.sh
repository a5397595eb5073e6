#!/usr/bin/env bash
# Set up everything the pipeline and the tests need, idempotently:
#   * the Python environment: the active virtualenv/conda env if there is one,
#     otherwise ./.venv (created with access to system packages, so a PyTorch
#     installed system-wide is seen and kept);
#   * PyTorch: an existing installation is never replaced.  Without one, a
#     machine with an NVIDIA GPU gets torch==$TORCH_VERSION from PyPI (CUDA build);
#     a machine without one gets the CPU build: pip is first asked what
#     torch==$TORCH_VERSION would resolve to, and if that would pull CUDA packages,
#     the CPU wheel index ($TORCH_CPU_INDEX) is used instead;
#   * this package (editable) with its workflow and test tools.
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
  "$BASE" -c 'import sys; assert sys.version_info >= (3, 10), sys.version' \
    || { echo "setup: needs Python >= 3.10 (set PYTHON=/path/to/python3.11)" >&2; exit 1; }
  echo "setup: creating .venv with $("$BASE" --version)"
  "$BASE" -m venv --system-site-packages .venv
fi

stamp=".setup.stamp"
key="$PY $(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"
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
# build (an older one than pyproject.toml accepts stops here with pip's conflict message instead)
pin="$(mktemp)"
trap 'rm -f "$pin" "${report:-}"' EXIT
"$PY" -c 'import torch; print("torch==" + torch.__version__.split("+")[0])' > "$pin"
pip_install -e ".[workflow,test]" -c "$pin" \
  || { echo "setup: could not install beside torch $(cat "$pin") (this project needs torch>=2.1)" >&2; exit 1; }
echo "$key" > "$stamp"
echo "setup: done ($PY, torch $("$PY" -c 'import torch; print(torch.__version__, "cuda" if torch.cuda.is_available() else "cpu")'))"
