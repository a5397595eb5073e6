# The README's two commands:
#   make run    set everything up, then run the main job (snakemake --cores all on params.yaml)
#   make test   set everything up, then run the whole test suite
# The environment is the active virtualenv/conda env if there is one, else ./.venv; its exact
# versions come from requirements/main.lock (make lock refreshes it).
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
# the uv that `make lock` installs into the environment to compile the locks
UV_VERSION ?= 0.13.9

.PHONY: setup run test lint lock push pull
setup:
	@bash scripts/setup.sh "$(PY)"

run: setup
	@if [ -d "$(RAW_COPIES)" ]; then $(PY) -m adjoint_meta place-raw --from "$(RAW_COPIES)"; fi
	PATH="$(abspath $(dir $(PY))):$$PATH" $(PY) -m snakemake --cores $(CORES)

# the suite on TEST_WORKERS processes (pytest-xdist), each test module whole on one of them, handed out
# in collection order: the modules with the most pipeline tests first (tests/conftest.py); the two
# full runs of the test configuration are made once and shared (tests/conftest.py)
TEST_WORKERS ?= 2
test: setup
	PATH="$(abspath $(dir $(PY))):$$PATH" $(PY) -m pytest -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder

# ruff and snakefmt at the versions of requirements/lint.lock (configured in pyproject.toml); CI runs it
lint: setup
	$(PY) -m pip install --disable-pip-version-check -q --require-hashes -r requirements/lint.lock
	$(PY) -m ruff check .
	$(PY) -m snakefmt --check Snakefile workflow/rules

# after a change to the dependencies in pyproject.toml: requirements/*.lock and the rules' conda
# environment, from PyPI (scripts/lock.py); then `make setup` installs the new versions
lock:
	@test -x "$(PY)" || { echo "lock: no environment at $(PY); run make setup first" >&2; exit 1; }
	$(PY) -m pip install --disable-pip-version-check -q "uv==$(UV_VERSION)"
	$(PY) scripts/lock.py

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
