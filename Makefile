# The README's two commands:
#   make run    set everything up, then run the main job (snakemake --cores all on params.yaml)
#   make test   set everything up, then run the whole test suite
# The environment is the active virtualenv/conda env if there is one, else ./.venv.
ifdef VIRTUAL_ENV
PY ?= $(VIRTUAL_ENV)/bin/python
else ifdef CONDA_PREFIX
PY ?= $(CONDA_PREFIX)/bin/python
else
PY ?= .venv/bin/python
endif
CORES ?= all
# a directory holding copies of the raw datasets (for machines that cannot reach the official
# download addresses); `make run` copies what data/raw/ lacks from it when it exists
RAW_COPIES ?= ../shared/data

.PHONY: setup run test push pull
setup:
	@bash scripts/setup.sh "$(PY)"

run: setup
	@if [ -d "$(RAW_COPIES)" ]; then $(PY) -m adjoint_meta place-raw --from "$(RAW_COPIES)"; fi
	PATH="$(abspath $(dir $(PY))):$$PATH" $(PY) -m snakemake --cores $(CORES)

test: setup
	PATH="$(abspath $(dir $(PY))):$$PATH" $(PY) -m pytest

# DVC with a remote check first: a remote DVC cannot use is named with the setting to change
# (DVC's own message does not say), and nothing in the local cache is touched
push:
	$(PY) scripts/dvc_remote_check.py --for push
	$(PY) -m dvc push

# after the pull, mark the pulled outputs up to date for Snakemake (their times are the pull's)
pull:
	$(PY) scripts/dvc_remote_check.py --for pull
	$(PY) -m dvc pull
	PATH="$(abspath $(dir $(PY))):$$PATH" $(PY) -m snakemake --touch --cores 1
