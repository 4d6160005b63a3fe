# qunbot: two commands to get going (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= $(if $(wildcard config.toml),config.toml,)
CONFIG_ARG := $(if $(CONFIG),--config $(CONFIG),)

.PHONY: install dev run test lint bench bench-smoke sandbox clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install --quiet -e ".[dev]"
	@touch $@

install: $(VENV)/.installed

dev: $(VENV)/.installed-dev

run: install
	$(BIN)/qunbot $(CONFIG_ARG) migrate
	$(BIN)/qunbot $(CONFIG_ARG) run

sandbox: install
	$(BIN)/qunbot $(CONFIG_ARG) sandbox

test: dev
	$(BIN)/ruff check .
	$(BIN)/pytest -q -m "not soak"

lint: dev
	$(BIN)/ruff check .

bench: dev
	$(BIN)/python -m bench.run

bench-smoke: dev
	$(BIN)/python -m bench.run --smoke

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
