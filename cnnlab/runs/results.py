"""What a run leaves behind besides checkpoints: result.json and the TensorBoard HPARAMS entry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf

from cnnlab.runs.files import write_text_atomically

RESULT_FILE = "result.json"
METRICS = ("val/acc", "val/loss", "test/acc", "test/loss")
# a run's status when it ended as asked: trained in full, or stopped by Optuna's pruner
DONE = ("finished", "pruned")


def write_json(path: Path, record: dict[str, Any]) -> None:
    """Write atomically: readers (a leaderboard, a resumed sweep) never see half a file."""
    write_text_atomically(path, json.dumps(record, indent=2) + "\n")


def read_result(run_dir: Path) -> dict[str, Any] | None:
    """The run's result record, or None if it has none (yet), or none that can be read: a
    half-written or foreign file is no record (``result_problem`` says what is wrong)."""
    try:
        record = json.loads((Path(run_dir) / RESULT_FILE).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def earlier_wall_time(run_dir: Path, ckpt_path: str | None) -> float:
    """The seconds the attempts before this one spent on the run that ``ckpt_path`` continues:
    a resumed run's wall_time_s counts the whole training, not only the part after the stop.
    0 for a fresh run, or a checkpoint from elsewhere."""
    record = read_result(run_dir) if ckpt_path else None
    inside = ckpt_path is not None and Path(ckpt_path).resolve().is_relative_to(
        Path(run_dir).resolve()
    )
    if not inside or record is None or record.get("status") in DONE:
        return 0.0
    spent = record.get("wall_time_s")
    return float(spent) if isinstance(spent, int | float) else 0.0


def result_problem(run_dir: Path) -> str | None:
    """Why ``run_dir``'s result.json is no record, if it exists and is none (else None)."""
    path = Path(run_dir) / RESULT_FILE
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        return f"{path}: unreadable ({' '.join(str(e).split())})"
    return (
        None
        if isinstance(record, dict)
        else f"{path}: not a run record (a JSON {type(record).__name__})"
    )


def hparams_of(cfg: DictConfig) -> dict[str, Any]:
    """The knobs that change results, flat, as TensorBoard's HPARAMS tab shows them; the speed
    switches change none, so they are in config.yaml only."""
    knobs = {f"{group.replace('.', '/')}/{k}": _plain(v)
             for group in ("model", "optimizer", "scheduler", "loss", "data.augment")
             for k, v in (OmegaConf.select(cfg, group) or {}).items()
             if not k.startswith("_")}  # fmt: skip
    folds = (
        {"data/folds": cfg.data.folds, "data/fold": cfg.data.fold} if cfg.data.get("folds") else {}
    )
    return {
        **knobs,
        "optimizer": cfg.optimizer._target_.rsplit(".", 1)[-1],
        "scheduler": cfg.scheduler._target_.rsplit(".", 1)[-1] if cfg.get("scheduler") else "none",
        "data/batch_size": cfg.data.batch_size,
        "data/validation": cfg.data.validation,
        **folds,
        "trainer/max_epochs": cfg.trainer.max_epochs,
        "trainer/precision": str(cfg.trainer.precision),
        "seed": cfg.seed,
    }


def _plain(value: Any) -> int | float | str | bool:
    return value if isinstance(value, int | float | str | bool) else str(value)


HP_METRICS = (*METRICS, "params", "wall_time_s")  # the result keys HPARAMS shows, as hp/...
SWEEP_EXPERIMENT = ".hparams"  # the suffix of a sweep's own HPARAMS event file


def hp_metric(key: str) -> str:
    return f"hp/{key.replace('/', '_')}"


def log_hparams(loggers: list, hparams: dict[str, Any], record: dict[str, Any]) -> None:
    """One HPARAMS entry per run, written at the end with its real metrics (no -1 placeholder):
    the session's hparams and its ``hp/*`` metrics. Not an HPARAMS experiment (the column
    list, which Lightning's ``log_hyperparams`` writes into every run): TensorBoard takes the
    columns from whichever run's experiment it reads first, so a sweep writes the one
    experiment (``write_sweep_experiment``) and without one TensorBoard derives the columns
    from the runs, those whose values differ first."""
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams as hparams_summary

    metrics = {hp_metric(k): record[k] for k in HP_METRICS if record.get(k) is not None}
    _, session_start, session_end = hparams_summary(hparams, metrics)
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):  # its writer is closed once testing ends
            with SummaryWriter(logger.log_dir) as writer:
                for summary in (session_start, session_end):
                    writer.file_writer.add_summary(summary)
                for name, value in metrics.items():
                    writer.add_scalar(name, value, 0)
            logger.finalize("success")


def write_sweep_experiment(sweep_dir: Path, hparams: dict[str, Any], swept: list[str]) -> None:
    """The HPARAMS experiment of a sweep (its columns: the hparams, the ``hp/*`` metrics), in
    its own event file at the sweep directory's top, the ``swept`` hparams (``model/filters``)
    marked as the ones that differ between trials. TensorBoard, opened on the sweep, orders the
    columns differing first, then by name, and shows the first few: the swept knobs. It is the
    sweep's only experiment (``log_hparams`` writes none). A rewrite replaces the earlier
    file."""
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams as hparams_summary

    for old in Path(sweep_dir).glob(f"events.out.tfevents.*{SWEEP_EXPERIMENT}"):
        old.unlink()
    experiment, _, _ = hparams_summary(hparams, {hp_metric(k): 0.0 for k in HP_METRICS})
    content = experiment.value[0].metadata.plugin_data
    data = HParamsPluginData.FromString(content.content)
    for info in data.experiment.hparam_infos:
        info.differs = info.name in swept
    content.content = data.SerializeToString()
    with SummaryWriter(str(sweep_dir), filename_suffix=SWEEP_EXPERIMENT) as writer:
        writer.file_writer.add_summary(experiment)
