# Two entry points (see README): `make demo` and `make test`. Both create .venv first.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
OUT ?= out/demo
export AMENT_PREFIX_PATH := $(CURDIR)/$(VENV)
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST

.PHONY: setup demo test lint crosscheck benchmark clean

setup:
	@bash scripts/setup.sh

demo: setup
	$(VENV)/bin/dfd-depth demo --out $(OUT)

lint: setup
	$(VENV)/bin/ruff check dfd_depth_ros training benchmark test launch scripts

test: setup lint
	$(PY) -m pytest -q test

crosscheck: setup
	$(PY) -m training.validate_mitsuba --out out/mitsuba

# The independent benchmark: render the Mitsuba bags that are missing (cached under data/benchmark/, resumable),
# evaluate every method and reference row on them, write docs/benchmark.md and its pictures.
benchmark: setup
	$(PY) -m benchmark.build --out data/benchmark
	@mkdir -p out
	@{ echo "Bags: path-traced with Mitsuba 3's thinlens camera by \`python -m benchmark.build\` (benchmark/; nothing trains on them). Metric depth, no alignment; each metric per frame, averaged over frames."; \
	   echo; $(PY) -m benchmark.build --list; } > out/benchmark_intro.md
	$(VENV)/bin/dfd-depth eval-bags data/benchmark --out out/benchmark --force --baselines \
	  --scoreboard docs/benchmark.md --scoreboard-intro out/benchmark_intro.md

clean:
	rm -rf out .pytest_cache .ruff_cache
