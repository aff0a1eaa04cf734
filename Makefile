# DSRL workspace. A newcomer needs two commands: `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
ENV := source env.sh &&

.PHONY: help setup build demo test test-fast lint bench clean

help:
	@echo "make demo   - set up if needed, then run the main job on the simulated arm"
	@echo "make test   - set up if needed, then run every test (lint included)"
	@echo "make setup  - install everything (apt when root, pip into .venv) and colcon build"
	@echo "make lint   - ruff (ament_flake8 rules: 99 columns, single quotes, pep257)"
	@echo "make bench  - print the benchmark figures"

setup:
	@bash scripts/setup.sh

build: setup

demo: setup
	@$(ENV) bash scripts/demo.sh

lint: setup
	@$(ENV) ruff check --no-cache .

test: setup
	@$(ENV) bash scripts/test.sh

bench: setup
	@$(ENV) python -m dsrl_core.bench.policy

clean:
	rm -rf build install log
