# Two commands for a newcomer: `make run` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean test-mlflow-2.13

$(STAMP): pyproject.toml constraints.txt scripts/install_horovod.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	bash scripts/install_horovod.sh $(VENV)
	$(BIN)/python -m penguins.spark_classes  # Spark starts from it: 2-3 s sooner
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/penguins run

test: lint
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check notebooks penguins tests && $(BIN)/ruff format --check notebooks penguins tests

# MLflow 2.13.1 as on Databricks Runtime 15.4 LTS ML (Spark 3.5.0, pandas 1.5.3, pyarrow 14.0.1,
# numpy < 2); mlflow 2.13 still imports pkg_resources (setuptools < 81) and predates SQLAlchemy 2.1.
VENV_213 ?= .venv-mlflow-2.13
test-mlflow-2.13:
	test -x $(VENV_213)/bin/python || $(PYTHON) -m venv $(VENV_213)
	$(VENV_213)/bin/python -m pip install -q -e ".[dev]" mlflow==2.13.1 pyspark==3.5.0 \
		pandas==1.5.3 pyarrow==14.0.1 "numpy<2" "setuptools<81" "sqlalchemy<2.1" torch==2.13.0
	$(VENV_213)/bin/python -m pytest tests/test_mlflow.py tests/test_scoring.py tests/test_evaluate.py

bench: $(STAMP)
	$(BIN)/penguins bench

# The MLflow store beside the lab stays: its runs and registered models outlive a lab folder.
clean:
	rm -rf lab .pytest_cache
	@test ! -d mlruns || echo "kept mlruns/ (MLflow: runs, registered models); rm -rf mlruns to remove them too"
