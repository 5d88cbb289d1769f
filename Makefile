# Two commands for a newcomer: `make run` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean test-runtime test-mlflow-2.13

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

# The libraries of an LTS ML runtime: `make test-runtime RUNTIME=15.4|16.4|17.3` makes
# .venv-runtime-$(RUNTIME) with that runtime's Python and the versions in
# constraints/runtime-$(RUNTIME).txt (its release notes' table), and runs the whole suite there.
# Horovod only on 15.4, the last LTS ML runtime that ships it, and only where it builds against
# that torch; otherwise stage 6 runs through TorchDistributor and the Horovod tests skip.
RUNTIMES := 15.4 16.4 17.3
RUNTIME ?= 15.4
RUNTIME_PY_15.4 := 3.11
# 16.4 runs Python 3.12, but its pandas 1.5.3 has no wheel for 3.12 (a source build needs
# pkg_resources and an hour on 2 cores): 3.11 here, every library the runtime's; 17.3 runs 3.12.
RUNTIME_PY_16.4 := 3.11
RUNTIME_PY_17.3 := 3.12
RUNTIME_HOROVOD := 15.4
RT_VENV := .venv-runtime-$(RUNTIME)
RT_PINS := constraints/runtime-$(RUNTIME).txt
RT_PY := $(RUNTIME_PY_$(RUNTIME))
# pyenv's interpreter of that version when there is one, else pythonX.Y on PATH.
RUNTIME_PYTHON ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/$(RT_PY).*/bin/python$(RT_PY)) python$(RT_PY))
ifneq ($(filter test-runtime,$(MAKECMDGOALS)),)
ifeq ($(filter $(RUNTIME),$(RUNTIMES)),)
$(error RUNTIME=$(RUNTIME): one of $(RUNTIMES))
endif
endif

# The runtime's libraries and the project resolved together; then the test tools (which may raise
# databricks-sdk for `penguins submit`, a local command); then the runtime's versions again, so
# each is the runtime's (pip says where the project's `dev` extra wants more). Horovod is built
# without pip's wheel cache (a wheel cached for another torch would not load); against PyPI's
# torch, a CUDA build, it needs the CUDA toolkit, and without one the target goes on without it.
$(RT_VENV)/.installed: pyproject.toml $(RT_PINS) scripts/install_horovod.sh
	test -x $(RT_VENV)/bin/python || $(RUNTIME_PYTHON) -m venv $(RT_VENV)
	$(RT_VENV)/bin/python -m pip install -q --upgrade pip wheel
	$(RT_VENV)/bin/python -m pip install -q -r $(RT_PINS) -e ".[local]"
	$(RT_VENV)/bin/python -m pip install -q -e ".[dev]"
	$(RT_VENV)/bin/python -m pip install -q -r $(RT_PINS)
	$(if $(filter $(RUNTIME),$(RUNTIME_HOROVOD)),PIP_NO_CACHE_DIR=1 bash scripts/install_horovod.sh $(RT_VENV) \
		|| echo "horovod: does not build against this torch here (no CUDA toolkit): stage 6 runs through TorchDistributor")
	$(RT_VENV)/bin/python -m penguins.spark_classes
	touch $@

test-runtime: $(RT_VENV)/.installed
	@$(RT_VENV)/bin/python -c 'import sys; from importlib.metadata import version as v; \
	names = "pyspark torch mlflow pandas numpy pyarrow scikit-learn matplotlib databricks-sdk".split(); \
	print("Databricks Runtime $(RUNTIME) LTS ML libraries, Python", sys.version.split()[0]); \
	print("  " + ", ".join(f"{n} {v(n)}" for n in names)); \
	print("  torch: PyPI build of the runtime version (the runtime has +cpu), run on the CPU")'
	@test "$(RUNTIME)" != 16.4 || echo "  Python 3.11, not the runtime's 3.12: pandas 1.5.3 has no 3.12 wheel"
	@$(RT_VENV)/bin/python -c 'import horovod.torch' 2>/dev/null \
		&& echo "  stage 6: Horovod (horovod.run) and TorchDistributor" \
		|| echo "  stage 6: TorchDistributor only (no Horovod in $(RT_VENV): its tests skip; see $(RT_PINS))"
	$(RT_VENV)/bin/python -m pytest

# MLflow 2.13.1 is 15.4 LTS ML's: this runs the whole suite on that runtime's libraries.
test-mlflow-2.13:
	$(MAKE) test-runtime RUNTIME=15.4

bench: $(STAMP)
	$(BIN)/penguins bench loop

# The MLflow store beside the lab stays: its runs and registered models outlive a lab folder.
clean:
	rm -rf lab .pytest_cache
	@test ! -d mlruns || echo "kept mlruns/ (MLflow: runs, registered models); rm -rf mlruns to remove them too"
