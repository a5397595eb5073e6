#!/usr/bin/env bash
# For a machine with a CUDA GPU and this project's environment (make setup, or the packages of
# requirements/main.lock importable), from the project root:
#
#   bash benchmarks/gpu_check.sh            # RTOL=1e-3 by default: RTOL=... bash benchmarks/gpu_check.sh
#
# 1. the tests that run on CUDA when one is visible (tests/test_funcmodel.py, tests/test_memory.py,
#    tests/test_api.py);
# 2. the test configuration through Snakemake twice, with runtime.device cpu and then cuda, in two
#    scratch copies, and every nRMSE and RMSE of reports/metrics.json compared: the largest relative
#    difference is printed, and the check fails above RTOL (float32 on two devices: the same
#    arithmetic in another order, amplified by training and fine-tuning);
# 3. benchmarks/bench_backends.py on CUDA, with torch.cuda.max_memory_allocated per method;
# 4. benchmarks/bench_library.py on CUDA at K = $STEPS and 2,000.
# Nothing here is needed on a machine without a GPU; the project never depends on one.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-python}"
RTOL="${RTOL:-1e-3}"
STEPS="${STEPS:-200}"
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu_check: no CUDA device is visible')"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "== 1. tests on CUDA"
"$PY" -m pytest -q -p no:cacheprovider tests/test_funcmodel.py tests/test_memory.py tests/test_api.py -k cuda

echo "== 2. the test configuration on cpu and on cuda"
for dev in cpu cuda; do
  "$PY" - "$work/$dev" <<'EOF'
import sys
from pathlib import Path
sys.path.insert(0, "tests")
from conftest import TEST_PARAMS, copy_project, place_test_data
place_test_data(copy_project(Path(sys.argv[1]), TEST_PARAMS))
EOF
  start=$(date +%s)
  (cd "$work/$dev" && "$PY" -m snakemake --cores all --quiet --config "runtime={device: $dev}")
  echo "$dev: $(( $(date +%s) - start )) s"
done
"$PY" - "$work/cpu/reports/metrics.json" "$work/cuda/reports/metrics.json" "$RTOL" <<'EOF'
import json, math, sys
cpu, gpu, rtol = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), float(sys.argv[3])

def leaves(node, path=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from leaves(v, (*path, k))
    elif isinstance(node, (int, float)) and path[-1].startswith(("nrmse", "rmse")):
        yield ".".join(path), float(node)

a, b = dict(leaves(cpu)), dict(leaves(gpu))
assert a.keys() == b.keys() and a, "the two runs report different cells"
diffs = {k: abs(a[k] - b[k]) / max(abs(a[k]), 1e-300) for k in a}
worst = max(diffs, key=diffs.get)
print(f"{len(a)} nRMSE/RMSE figures; largest relative difference cuda vs cpu {diffs[worst]:.2e} ({worst}); "
      f"median {sorted(diffs.values())[len(diffs) // 2]:.2e}; tolerance {rtol:g}")
sys.exit(0 if diffs[worst] <= rtol else f"gpu_check: {worst} differs by {diffs[worst]:.2e} > {rtol:g}")
EOF

echo "== 3. the backends benchmark on cuda"
"$PY" benchmarks/bench_backends.py --device cuda --steps "$STEPS"

echo "== 4. the library's benchmark on cuda (the API against TorchOpt, higher and MixFlow)"
"$PY" benchmarks/bench_library.py --device cuda --steps "$STEPS" 2000
