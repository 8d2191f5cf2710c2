"""What a run leaves behind besides checkpoints: result.json and the TensorBoard HPARAMS entry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig

from cnnlab.runs.files import write_text_atomically

RESULT_FILE = "result.json"
METRICS = ("val/acc", "val/loss", "test/acc", "test/loss")


def write_json(path: Path, record: dict[str, Any]) -> None:
    """Write atomically: readers (a leaderboard, a resumed sweep) never see half a file."""
    write_text_atomically(path, json.dumps(record, indent=2) + "\n")


def read_result(run_dir: Path) -> dict[str, Any] | None:
    """The run's result record, or None if it has none (yet)."""
    try:
        return json.loads((Path(run_dir) / RESULT_FILE).read_text())
    except (OSError, ValueError):
        return None


def hparams_of(cfg: DictConfig) -> dict[str, Any]:
    """The knobs that change results, flat, as TensorBoard's HPARAMS tab shows them; the speed
    switches change none, so they are in config.yaml only."""
    knobs = {f"{group}/{k}": v if isinstance(v, int | float | str | bool) else str(v)
             for group in ("model", "optimizer")
             for k, v in cfg[group].items() if not k.startswith("_")}  # fmt: skip
    return {
        **knobs,
        "optimizer": cfg.optimizer._target_.rsplit(".", 1)[-1],
        "data/batch_size": cfg.data.batch_size,
        "data/validation": cfg.data.validation,
        "trainer/max_epochs": cfg.trainer.max_epochs,
        "trainer/precision": str(cfg.trainer.precision),
        "seed": cfg.seed,
    }


def log_hparams(loggers: list, hparams: dict[str, Any], record: dict[str, Any]) -> None:
    """One HPARAMS entry per run, written at the end with its real metrics (no -1 placeholder)."""
    metrics = {f"hp/{k.replace('/', '_')}": record[k] for k in (*METRICS, "params", "wall_time_s")
               if record.get(k) is not None}  # fmt: skip
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(hparams, metrics)
            logger.finalize("success")
