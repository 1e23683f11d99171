# Two entry points (see README): `make demo` and `make test`. Both create .venv first.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
OUT ?= out/demo
export AMENT_PREFIX_PATH := $(CURDIR)/$(VENV)
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST

.PHONY: setup demo test lint crosscheck benchmark dev-benchmark clean

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

# The model-selection set: the same kinds of sequence re-seeded (benchmark.sequences.DEV_SEQUENCES, 12 bags under
# data/benchmark_dev/); choose between trained models here, report on the benchmark. Writes docs/benchmark_dev.md.
dev-benchmark: setup
	$(PY) -m benchmark.build --set dev --out data/benchmark_dev
	@mkdir -p out
	@{ echo "Bags: the model-selection (dev) set, path-traced like the benchmark by \`python -m benchmark.build --set dev\` with other seeds (new scene content; nothing trains on them). Choose between models here; the benchmark (docs/benchmark.md) stays the report."; \
	   echo; $(PY) -m benchmark.build --set dev --list; } > out/benchmark_dev_intro.md
	$(VENV)/bin/dfd-depth eval-bags data/benchmark_dev --out out/benchmark_dev --force --baselines \
	  --scoreboard docs/benchmark_dev.md --scoreboard-intro out/benchmark_dev_intro.md \
	  --scoreboard-title "Model-selection (dev) set: path-traced bags, re-seeded"

clean:
	rm -rf out .pytest_cache .ruff_cache
