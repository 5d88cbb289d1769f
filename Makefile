# Two commands for a newcomer: `make run` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml constraints.txt scripts/install_horovod.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	bash scripts/install_horovod.sh $(VENV)
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/penguins run

test: lint
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check notebooks penguins tests && $(BIN)/ruff format --check notebooks penguins tests

bench: $(STAMP)
	$(BIN)/penguins bench

clean:
	rm -rf lab .pytest_cache
