"""Checks before training starts: a run that cannot save its results should not start at all."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from cnnlab.errors import CnnlabError

CHECKPOINTS_KEPT = 3  # best, last and, after a Ctrl-C, interrupted
LOGS_BYTES = 16 * 2**20  # TensorBoard events, train.log, config and result files


def check_room(run_dir: Path, model: torch.nn.Module) -> None:
    """Raise CnnlabError if ``run_dir``'s disk cannot hold the run's checkpoints and logs."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    checkpoint = 3 * weights  # the weights and Adam's two moments
    need = CHECKPOINTS_KEPT * checkpoint + LOGS_BYTES
    free = shutil.disk_usage(run_dir).free
    if free < need:
        mb = 2**20
        raise CnnlabError(
            f"paths.output_dir: {run_dir} has {free / mb:.1f} MB free, this run needs about "
            f"{need / mb:.0f} MB ({CHECKPOINTS_KEPT} checkpoints of {checkpoint / mb:.1f} MB "
            "and logs); free some space or set CNNLAB_OUTPUT_DIR"
        )
