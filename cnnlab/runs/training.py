"""One training run from a composed config: build, fit, test the best checkpoint, record.

``train`` is the work (the notebook calls it too); ``run`` wraps it so that every run leaves a
``result.json`` saying how it went; ``report`` prints the summary a user reads.
"""

from __future__ import annotations

import logging
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from cnnlab.callbacks.best_metrics import BestMetrics
from cnnlab.callbacks.config_in_checkpoints import ConfigInCheckpoints
from cnnlab.callbacks.pruning import OptunaPruning
from cnnlab.callbacks.signals import sweep_of_trial
from cnnlab.data.datamodule import batches_within
from cnnlab.errors import CnnlabError, exit_code, one_line, say
from cnnlab.models.classifier import Classifier
from cnnlab.perf.executions import (
    ExecutionsClassifier,
    flavour_warnings_ignored,
    trainer_arguments,
)
from cnnlab.perf.precision import Precision, device_type, resolve_precision, warn_if_emulated
from cnnlab.perf.speed import Speed
from cnnlab.runs.checkpoints import resume_point
from cnnlab.runs.checks import check_config
from cnnlab.runs.files import WriteError, write_text_atomically
from cnnlab.runs.network import build_network
from cnnlab.runs.preflight import check_memory, check_room
from cnnlab.runs.results import (
    DONE,
    METRICS,
    RESULT_FILE,
    earlier_wall_time,
    hparams_of,
    log_hparams,
    write_json,
)
from cnnlab.runs.resume import resume_command, resume_trial
from cnnlab.signals import Interrupted, as_interruption, signals_stop_the_run, stopping

log = logging.getLogger(__name__)


def build_classifier(cfg: DictConfig, speed: Speed) -> Classifier:
    """The LightningModule: the network (``model``, checked to take the data), the
    ``optimizer`` (fused where ``speed`` says), ``scheduler`` and ``loss``, and the data's
    class names; under N steps per execution the opt-in module of ``cnnlab.perf.executions``,
    with the Trainer's clipping and accumulation."""
    clipped = cfg.trainer.get("gradient_clip_val") not in (None, 0)
    mixed = str(cfg.trainer.precision).endswith("-mixed")
    parts = {
        "net": build_network(cfg.model, cfg.data),
        "optimizer": speed.optimizer(instantiate(cfg.optimizer), clipped_mixed=clipped and mixed),
        "scheduler": instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
        "loss": instantiate(cfg.loss),
        "class_names": list(cfg.data.class_names),
    }
    if speed.steps_per_execution is None:
        return Classifier(**parts)
    own, _ = trainer_arguments(cfg.trainer)
    return ExecutionsClassifier(**parts, steps_per_execution=speed.steps_per_execution, **own)


@dataclass
class Parts:
    """Everything a run is made of, built and checked before anything trains."""

    datamodule: L.LightningDataModule
    model: Classifier
    callbacks: list[L.Callback]
    trainer: L.Trainer
    ckpt_path: str | None  # the checkpoint to continue from, checked to fit the model
    precision: Precision  # trainer.precision as resolved for this machine, and why
    speed: Speed


def resolve_trainer_precision(cfg: DictConfig) -> Precision:
    """Resolve ``trainer.precision`` (``auto``: by the device's hardware) in ``cfg`` itself, so
    the saved config, result.json and HPARAMS hold the precision the run really used."""
    precision = resolve_precision(cfg.trainer.precision, str(cfg.trainer.accelerator))
    cfg.trainer.precision = precision.value
    return precision


def build(cfg: DictConfig) -> Parts:
    """Check the config and build the run from it: every constructor's own check has run, so a
    bad value is refused here, before the run prints or writes anything."""
    precision = resolve_trainer_precision(cfg)  # first: the checks read the value it trains in
    check_config(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)  # first: the initial weights too
    speed: Speed = instantiate(cfg.speed)
    datamodule = instantiate(cfg.data)
    if cfg.preflight_memory and device_type(str(cfg.trainer.accelerator)) == "cpu":
        check_memory(cfg.model, cfg.data)  # before the network is built: it may not fit
    model = build_classifier(cfg, speed)
    ckpt_path = resume_point(model, cfg.ckpt_path)  # before the Trainer: it prints at once
    check_room(Path(cfg.paths.run_dir), model, resuming=cfg.ckpt_path is not None)
    callbacks = [instantiate(c) for c in cfg.get("callbacks", {}).values() if c]
    callbacks += [*speed.callbacks(bool(cfg.trainer.deterministic)), ConfigInCheckpoints(cfg)]
    loggers = [instantiate(c) for c in cfg.get("logger", {}).values() if c]
    profiler = cfg.trainer.get("profiler") or speed.profiler()
    instead = {}
    if speed.steps_per_execution is not None:  # the training loader counts the batches
        datamodule.limit_train_batches = cfg.trainer.get("limit_train_batches")
        batches_within(datamodule.limit_train_batches, sys.maxsize)  # its range, checked now
        _, instead = trainer_arguments(cfg.trainer)
    trainer: L.Trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, profiler=profiler, **instead
    )
    return Parts(datamodule, model, callbacks, trainer, ckpt_path, precision, speed)


def fit_and_test(cfg: DictConfig, parts: Parts) -> dict[str, Any]:
    """Fit, test the best checkpoint; the metrics of both (and the trainer, for HPARAMS)."""
    model, trainer = parts.model, parts.trainer
    with flavour_warnings_ignored(model):
        trainer.fit(
            model, datamodule=parts.datamodule, ckpt_path=parts.ckpt_path, weights_only=True
        )
    record: dict[str, Any] = {"params": sum(p.numel() for p in model.parameters())}
    if skipped := getattr(parts.datamodule, "skipped", 0):  # a folder's unreadable images
        record["skipped_images"] = skipped
    best = next((c.best for c in parts.callbacks if isinstance(c, BestMetrics)), {})
    record.update(
        {k: best.get(k) for k in METRICS if k.startswith("val/")}, best_epoch=best.get("epoch")
    )
    pruned = next((c.pruned_after for c in parts.callbacks if isinstance(c, OptunaPruning)), None)
    if pruned is not None:
        record["pruned_after_epochs"] = pruned  # Optuna's pruner stopped it there
    ckpt = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    record["checkpoint"] = ckpt or None
    if cfg.test:
        (tested,) = trainer.test(model, datamodule=parts.datamodule, ckpt_path=ckpt or None)
        record.update({k: tested[k] for k in METRICS if k.startswith("test/")})
    return {"trainer": trainer, **record}


def train(cfg: DictConfig) -> dict[str, Any]:
    """Build, fit, test the best checkpoint; return the metrics. Touches nothing process-wide
    (the notebook calls it inside its kernel)."""
    return fit_and_test(cfg, build(cfg))


def run(cfg: DictConfig) -> dict[str, Any]:
    """The command's run: check, record the config, tune the process, train; always leave a
    result.json saying how it went (finished or failed, and why)."""
    run_dir = Path(cfg.paths.run_dir)
    sweep_dir = sweep_of_trial()
    if sweep_dir and (signum := stopping(sweep_dir)) is not None:  # dispatched as it stopped
        return {"status": "interrupted", "exit_code": 128 + signum, "run_dir": str(run_dir),
                "error": "not started: the sweep was stopping"}  # fmt: skip
    started = time.perf_counter()
    record: dict[str, Any] = {
        "status": "failed",
        "overrides": list(HydraConfig.get().overrides.task),
    }
    trainer = None
    try:
        with signals_stop_the_run():
            if (finished := resume_trial(cfg, run_dir)) is not None:
                return {**finished, "skipped": True}
            started -= earlier_wall_time(run_dir, cfg.ckpt_path)  # resume_trial may set it
            if cfg.ckpt_path:
                record["continued_from"] = str(cfg.ckpt_path)
            parts = build(cfg)  # checked before anything is printed or written
            log.info("%s", parts.precision)
            warn_if_emulated(parts.precision)
            record["precision"] = parts.precision.value
            write_text_atomically(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
            if cfg.print_config:
                log.info("Config:\n%s", OmegaConf.to_yaml(cfg, resolve=True))
            parts.speed.tune_process()
            outcome = fit_and_test(cfg, parts)
            trainer = outcome.pop("trainer")
            pruned = "pruned_after_epochs" in outcome
            record.update(outcome, status="pruned" if pruned else "finished")
    except BaseException as caught:  # any way out, a signal's included: recorded, never lost
        e = as_interruption(caught, run_dir)  # a line for the user, the traceback in the log
        if isinstance(e, Interrupted) and not e.requeue:  # the command that continues it
            e = e.with_resume(resume_command(run_dir, sweep_dir))
        if exit_code(e) == 1 and not isinstance(e, CnnlabError):
            log.exception("run failed")
        record.update(error=one_line(e), exit_code=exit_code(e))
        record["status"] = getattr(e, "status", "failed")  # or "interrupted": resumable
        if getattr(e, "requeue", False):
            record["requeued"] = True  # cnnlab.train hands the signal on to submitit
    record.update(wall_time_s=round(time.perf_counter() - started, 2), run_dir=str(run_dir))
    try:
        write_json(run_dir / RESULT_FILE, record)
    except WriteError as e:  # a full disk: the user still gets the run's own line, and this
        error = f"{record['error']}; and {e}" if record.get("error") else str(e)
        record.update(error=error, exit_code=record.get("exit_code") or e.exit_code)
        if record["status"] in DONE:
            record["status"] = "failed"
    if trainer is not None:
        log_hparams(trainer.loggers, hparams_of(cfg), record)
    return record


def report(record: dict[str, Any]) -> None:
    """The final summary a user reads, in the lesson's words."""
    if record["status"] not in DONE:
        if record["status"] == "interrupted":  # a progress bar may have been mid-line
            print(flush=True)
        label = "error" if record["status"] == "failed" else record["status"]
        say(record["error"], label)
        return
    if record.get("skipped"):
        print(f"Already finished, skipped (resume): {record['run_dir']}")
        return
    run_dir = record["run_dir"]
    print(f"\nTest loss: {record.get('test/loss')}\nTest accuracy: {record.get('test/acc')}")
    print(f"Best val accuracy: {record['val/acc']} (epoch {record['best_epoch']})")
    if record["status"] == "pruned":
        print(f"Pruned by Optuna after {record['pruned_after_epochs']} epoch(s)")
    print(f"Parameters: {record['params']:,}   wall time: {record['wall_time_s']} s")
    print(f"Run directory: {run_dir}\nTensorBoard:   tensorboard --logdir {shlex.quote(run_dir)}")
