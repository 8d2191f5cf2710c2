# make train: set up .venv, fetch MNIST, train the lesson's model (TensorBoard logs in outputs/).
# make test: set up .venv and run the test suite. Both are idempotent and quick once set up.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: train test lint format tensorboard clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

train: $(STAMP)
	$(PY) -m cnnlab.train $(ARGS)

test: $(STAMP)
	$(PY) -m pytest $(ARGS)

lint: $(STAMP)
	$(PY) -m ruff check cnnlab tests
	$(PY) -m ruff format --check cnnlab tests

format: $(STAMP)
	$(PY) -m ruff format cnnlab tests
	$(PY) -m ruff check --fix cnnlab tests

tensorboard: $(STAMP)
	$(VENV)/bin/tensorboard --logdir outputs

clean:
	rm -rf outputs/runs outputs/sweeps
