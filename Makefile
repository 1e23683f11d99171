# Two entry points (see README): `make demo` and `make test`. Both create .venv first.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
OUT ?= out/demo
export AMENT_PREFIX_PATH := $(CURDIR)/$(VENV)
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST

.PHONY: setup demo test lint crosscheck clean

setup:
	@bash scripts/setup.sh

demo: setup
	$(VENV)/bin/dfd-depth demo --out $(OUT)

lint: setup
	$(VENV)/bin/ruff check dfd_depth_ros training test launch scripts

test: setup lint
	$(PY) -m pytest -q test

crosscheck: setup
	$(PY) -m training.validate_mitsuba --out out/mitsuba

clean:
	rm -rf out .pytest_cache .ruff_cache
