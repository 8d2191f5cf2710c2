#!/usr/bin/env bash
# bash bench/gpu.sh RESULTS [--cpu-dry-run]: the GPU bench (bench/gpu.py) on a GPU machine that
# has no network and lacks hydra-core, omegaconf and antlr4: installs the wheels and MNIST that
# bench/gpu_bundle.sh put in the bundle folder (CNNLAB_GPU_BUNDLE, default .gpu/, carried along
# with the project), then measures, writing RESULTS/gpu.json and RESULTS/gpu.md.
# --cpu-dry-run: every step here, on CPU, with this checkout's .venv: run it before GPU time.
set -euo pipefail
cd "$(dirname "$0")/.."
results=${1:?usage: bash bench/gpu.sh RESULTS [--cpu-dry-run]}
shift
python=python3  # the GPU machine's own, with torch, lightning, torchmetrics, tensorboard
if [[ " $* " == *" --cpu-dry-run "* ]]; then python=.venv/bin/python; fi
bundle=${CNNLAB_GPU_BUNDLE:-.gpu}
if [[ ! -d $bundle/wheels || ! -f $bundle/mnist-raw.tar.gz ]]; then
  echo "cnnlab: error: $bundle: no GPU bundle; make it with: bash bench/gpu_bundle.sh" >&2
  exit 2
fi
work=$(mktemp -d)
"$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target "$work/site" "$bundle"/wheels/*.whl
# the carried packages first; the checkout itself for trial processes (it is not installed there)
export PYTHONPATH="$PWD:$work/site${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$work/data/MNIST/raw"
tar -xzf "$bundle/mnist-raw.tar.gz" -C "$work/data/MNIST/raw"
export CNNLAB_DATA_DIR="$work/data" CNNLAB_OUTPUT_DIR="$work/outputs" PYTHONUNBUFFERED=1
"$python" -m bench.gpu "$results" "$@"
