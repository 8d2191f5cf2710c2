#!/usr/bin/env bash
# bash bench/gpu_bundle.sh: what bench/gpu.sh needs on the GPU machine (Python 3.12, no network),
# made here into the bundle folder (CNNLAB_GPU_BUNDLE, default .gpu/, git-ignored; carry it with
# the call): wheels of the packages that machine lacks, at this checkout's pins
# (constraints.txt), antlr4's sdist built into its pure-Python wheel here, and MNIST's four raw
# files compressed. Needs this checkout's .venv (make train) and PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
python=.venv/bin/python
bundle=${CNNLAB_GPU_BUNDLE:-.gpu}
pin() { grep -i "^$1==" constraints.txt | cut -d' ' -f1; }  # the pin, without its comment
rm -rf "$bundle"
mkdir -p "$bundle/wheels"
"$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  -d "$bundle/wheels" "$(pin hydra-core)" "$(pin omegaconf)" "$(pin hydra-joblib-launcher)"
"$python" -m pip wheel -q --no-deps -w "$bundle/wheels" "$(pin antlr4-python3-runtime)"
raw=$("$python" -c 'import os; from cnnlab.data.mnist import MNIST
print(MNIST().prepare(os.environ.get("CNNLAB_DATA_DIR", "data")))')
tar -czf "$bundle/mnist-raw.tar.gz" -C "$raw" \
  train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte
du -sh "$bundle"
ls "$bundle/wheels"
