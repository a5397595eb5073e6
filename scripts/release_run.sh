#!/usr/bin/env bash
# Run (or resume) a release's whole protocol in its own clone, the paper's claims first:
#   scripts/release_run.sh /work/release          # a clone of the release's tag, set up with `make setup`
# Phases, in order (the loop below): Tables 1-2; the Figures 3-4 profile, one job of minutes that decides
# two claims, ahead of Figure 2's day of training; Figure 2; the ablations; then everything else
# (`snakemake` with no target). Each phase is one `snakemake --keep-going --rerun-incomplete` on that
# part's evaluations, so rerunning the script after any stop resumes where the run left off (training
# jobs from their checkpoints). Niced, so that work beside it keeps the machine responsive.
# On a new machine, what an earlier session saved with `adjoint-meta progress save` (this checkout's
# published/<release>.progress/) is restored first, after the data step, so the run goes on from there.
# Publish what has finished with `adjoint-meta publish --run <clone> --release <name>` (docs/release.md).
set -uo pipefail
RUN="$(cd "${1:?usage: scripts/release_run.sh CLONE [CORES]}" && pwd)"
CORES="${2:-2}"
HERE="$(cd "$(dirname "$0")/.." && pwd)"
PY="$RUN/.venv/bin/python"
RAW_COPIES="${RAW_COPIES:-$RUN/../shared/data}"
RELEASE="${RELEASE:-$(git -C "$RUN" describe --tags --exact-match HEAD 2>/dev/null)}"
PROGRESS="$HERE/published/$RELEASE.progress"
cd "$RUN"
export PATH="$RUN/.venv/bin:$PATH"
if [ -d "$RAW_COPIES" ]; then "$PY" -m adjoint_meta place-raw --from "$RAW_COPIES"; fi
if [ -n "$RELEASE" ] && [ -f "$PROGRESS/manifest.json" ]; then
  echo "=== restoring $PROGRESS $(date -u +%FT%TZ)"
  mapfile -t tables < <("$PY" -c 'from adjoint_meta import config, paths
for d in config.load(config.DEFAULT_PARAMS)["datasets"]: print(paths.TASKS.format(dataset=d))')
  nice -n 10 "$PY" -m snakemake --cores "$CORES" --rerun-incomplete "${tables[@]}" || exit 1
  "$HERE/.venv/bin/python" -m adjoint_meta progress restore --run "$RUN" --release "$RELEASE" --folder "$PROGRESS" \
    || exit 1
fi
targets() {  # the evaluations of one experiment, or profile:<name>, with the clone's own code
  "$PY" - "$1" <<'PY'
import sys
from adjoint_meta import config, paths
P = config.load(config.DEFAULT_PARAMS)
phase = sys.argv[1]
if phase.startswith("profile:"):
    print(paths.PROFILE.format(profile=phase.split(":", 1)[1]))
for c in config.cells(P):
    if c.experiment == phase:
        print(paths.EVAL.format(**c.as_dict()))
        print(paths.EVAL_CURVE.format(**c.as_dict()))
PY
}
for phase in table1 table2 profile:fig34 fig2_50shot fig2_100shot ablation_real ablation_synthetic all; do
  echo "=== phase $phase $(date -u +%FT%TZ)"
  if [ "$phase" = all ]; then list=(); else mapfile -t list < <(targets "$phase"); fi
  if [ "$phase" != all ] && [ "${#list[@]}" -eq 0 ]; then echo "(no such part in params.yaml)"; continue; fi
  nice -n 10 "$PY" -m snakemake --cores "$CORES" --keep-going --rerun-incomplete "${list[@]}"
done
echo "=== finished $(date -u +%FT%TZ)"
