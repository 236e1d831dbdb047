# The README's commands. Each one sets up what it needs first (scripts/bootstrap.sh is idempotent).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python

# Keep third-party tools quiet and inside the project.
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export DVC_NO_ANALYTICS ?= 1
export TF_CPP_MIN_LOG_LEVEL ?= 3
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup demo test bench clean-data

setup:
	@scripts/bootstrap.sh

## Run the main job on embedded defaults (SQLite, local artifact folder, local Prefect).
demo: setup
	@$(VENV)/bin/videobert demo

## Run the test suite (starts its own PostgreSQL and S3-protocol server).
test: setup
	@$(PY) -m pytest $(PYTEST_ARGS)

## Benchmarks; figures go to bench/RESULTS.md by hand after review.
bench: setup
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean-data:
	rm -rf data/
