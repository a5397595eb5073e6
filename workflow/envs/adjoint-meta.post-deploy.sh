#!/usr/bin/env bash
# Runs once in a new conda environment of the rules (snakemake --sdm conda), in the project
# directory: the package itself, editable and without dependencies (adjoint-meta.yaml pins them
# all), then pip's check that every installed requirement is met.
set -euo pipefail
python -m pip install --disable-pip-version-check --no-deps -e .
python -m pip check
