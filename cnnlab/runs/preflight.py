"""Checks before training starts: a run that cannot save its results should not start at all."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from omegaconf import DictConfig

from cnnlab.errors import CnnlabError
from cnnlab.models.footprint import Footprint, footprint

CHECKPOINTS_KEPT = 3  # best, last and, after a Ctrl-C, interrupted
LOGS_BYTES = 16 * 2**20  # TensorBoard events, train.log, config and result files


def check_room(run_dir: Path, model: torch.nn.Module, resuming: bool = False) -> None:
    """Raise CnnlabError if ``run_dir``'s disk cannot hold the run's checkpoints and logs. A
    resumed run counts only what it adds: the checkpoints it does not have yet, and room for
    one checkpoint written beside its old version before replacing it."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    checkpoint = 3 * weights  # the weights and Adam's two moments
    files = CHECKPOINTS_KEPT
    if resuming:
        files = max(0, files - len(list(run_dir.glob("checkpoints/*.ckpt")))) + 1
    need = files * checkpoint + LOGS_BYTES
    free = shutil.disk_usage(run_dir).free
    if free < need:
        mb = 2**20
        raise CnnlabError(
            f"paths.output_dir: {run_dir} has {free / mb:.1f} MB free, this run needs about "
            f"{need / mb:.0f} MB ({files} checkpoints of {checkpoint / mb:.1f} MB and logs); "
            "free some space or set CNNLAB_OUTPUT_DIR"
        )


def check_memory(model: DictConfig, data: DictConfig) -> None:
    """Raise CnnlabError if training the network ``model`` on this CPU would need more memory
    than is available: a model too large for the machine swaps, or is killed, after minutes in
    its first batch (and a signal waits for the running convolution to end). An estimate, not a
    measurement, made before the network is built; skipped on a GPU, whose caching allocator
    reports its own out-of-memory at once, and for a network the estimate cannot run."""
    available = available_memory()
    found = footprint(model, (data.channels, data.image_size, data.image_size))
    if available is None or found is None:
        return
    need = training_memory(found, data.batch_size)
    if need > available:
        gb = 2**30
        raise CnnlabError(
            f"model: this run needs about {need / gb:.1f} GB of memory (weights, gradients, "
            f"Adam's moments and a batch's activations), {available / gb:.1f} GB are available; "
            "choose a smaller model or data.batch_size, or preflight_memory=false to try anyway"
        )


def training_memory(found: Footprint, batch_size: int) -> int:
    """Bytes a training step holds: 16 per parameter (fp32 weights, gradients, Adam's two
    moments) and, per image, 8 bytes per element of every layer's output (fp32, kept for the
    backward pass, and its gradient)."""
    return 16 * found.params + 8 * batch_size * found.activations


def available_memory() -> int | None:
    """MemAvailable of /proc/meminfo in bytes (None where there is no such file)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None
