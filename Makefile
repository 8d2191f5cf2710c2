# make train: set up .venv, fetch MNIST, train the lesson's model (TensorBoard logs in outputs/).
# make test: set up .venv and run the test suite (both tiers) on 2 workers. Both are idempotent.
# make test-fast: the fast tier only (tests/unit: config, model, layers, parity; under 2 minutes).
# make bench: cnnlab vs. a plain PyTorch loop vs. the Keras seed on TensorFlow (docs/speed.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS ?=
SWEEP ?= arch
TF_VENV := .venv-tf
TF_STAMP := $(TF_VENV)/.installed

.PHONY: train test test-fast bench lint format tensorboard clean

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
	$(PY) -m pytest -n 2 --dist loadgroup --durations=20 $(ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest tests/unit $(ARGS)

$(TF_STAMP): bench/requirements-tf.txt
	test -x $(TF_VENV)/bin/python || $(PYTHON) -m venv $(TF_VENV)
	$(TF_VENV)/bin/pip install -q -r bench/requirements-tf.txt
	touch $@

bench: $(STAMP) $(TF_STAMP)
	$(PY) -m bench --tf-python $(TF_VENV)/bin/python $(ARGS)

lint: $(STAMP)
	$(PY) -m ruff check cnnlab bench tests hydra_plugins
	$(PY) -m ruff format --check cnnlab bench tests hydra_plugins

format: $(STAMP)
	$(PY) -m ruff format cnnlab bench tests hydra_plugins
	$(PY) -m ruff check --fix cnnlab bench tests hydra_plugins

tensorboard: $(STAMP)
	$(VENV)/bin/tensorboard --logdir outputs

clean:
	rm -rf outputs/runs outputs/sweeps
