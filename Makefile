# make train: set up .venv, fetch MNIST, train the lesson's model (TensorBoard logs in outputs/).
# make test: set up .venv and run the test suite. Both are idempotent and quick once set up.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS ?=
SWEEP ?= arch

.PHONY: train test lint format tensorboard clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

train: $(STAMP)
	$(PY) -m cnnlab.train $(ARGS)

# make sweep [SWEEP=arch|epochs] [ARGS='launcher=joblib trainer.max_epochs=2']: a sweep preset.
.PHONY: sweep
sweep: $(STAMP)
	$(PY) -m cnnlab.train sweep=$(SWEEP) $(ARGS)

test: $(STAMP)
	$(PY) -m pytest $(ARGS)

lint: $(STAMP)
	$(PY) -m ruff check cnnlab tests hydra_plugins
	$(PY) -m ruff format --check cnnlab tests hydra_plugins

format: $(STAMP)
	$(PY) -m ruff format cnnlab tests hydra_plugins
	$(PY) -m ruff check --fix cnnlab tests hydra_plugins

tensorboard: $(STAMP)
	$(VENV)/bin/tensorboard --logdir outputs

clean:
	rm -rf outputs/runs outputs/sweeps
