"""One training run from a composed config: build, fit, test the best checkpoint, record.

``train`` is the work (the notebook calls it too); ``run`` wraps it so that every run leaves a
``result.json`` saying how it went; ``report`` prints the summary a user reads.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from cnnlab.callbacks.best_metrics import BestMetrics
from cnnlab.errors import CnnlabError, exit_code, one_line, say
from cnnlab.models.classifier import MNISTClassifier
from cnnlab.runs.checkpoints import resume_point
from cnnlab.runs.checks import check_config
from cnnlab.runs.preflight import check_room
from cnnlab.runs.results import METRICS, RESULT_FILE, hparams_of, log_hparams, write_json
from cnnlab.runs.resume import resume_trial

log = logging.getLogger(__name__)


def build_model(cfg: DictConfig) -> MNISTClassifier:
    """The LightningModule from the config's ``model`` (the Arch), ``optimizer`` and ``speed``."""
    return MNISTClassifier(
        instantiate(cfg.model), instantiate(cfg.optimizer), instantiate(cfg.speed)
    )


def train(cfg: DictConfig) -> dict[str, Any]:
    """Check the config, build everything from it, fit, test the best checkpoint; return the
    metrics. Touches nothing process-wide (the notebook calls it inside its kernel)."""
    check_config(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)  # first: the initial weights too
    datamodule = instantiate(cfg.data)
    model = build_model(cfg)
    check_room(Path(cfg.paths.run_dir), model)
    callbacks = [instantiate(c) for c in cfg.get("callbacks", {}).values() if c]
    loggers = [instantiate(c) for c in cfg.get("logger", {}).values() if c]
    profiler = cfg.trainer.get("profiler") or model.speed.profiler()
    trainer: L.Trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, profiler=profiler
    )

    ckpt_path = resume_point(model, cfg.ckpt_path)
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    record: dict[str, Any] = {"params": sum(p.numel() for p in model.parameters())}
    best = next((c.best for c in callbacks if isinstance(c, BestMetrics)), {})
    record.update(
        {k: best.get(k) for k in METRICS if k.startswith("val/")}, best_epoch=best.get("epoch")
    )
    ckpt = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    record["checkpoint"] = ckpt or None
    if cfg.test:
        (tested,) = trainer.test(model, datamodule=datamodule, ckpt_path=ckpt or None)
        record.update({k: tested[k] for k in METRICS if k.startswith("test/")})
    return {"trainer": trainer, **record}


def run(cfg: DictConfig) -> dict[str, Any]:
    """The command's run: check, record the config, tune the process, train; always leave a
    result.json saying how it went (finished or failed, and why)."""
    run_dir = Path(cfg.paths.run_dir)
    started = time.perf_counter()
    record: dict[str, Any] = {
        "status": "failed",
        "overrides": list(HydraConfig.get().overrides.task),
    }
    trainer = None
    try:
        if (finished := resume_trial(cfg, run_dir)) is not None:
            return {**finished, "skipped": True}
        check_config(cfg)  # before anything is printed or written
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
        if cfg.print_config:
            log.info("Config:\n%s", OmegaConf.to_yaml(cfg, resolve=True))
        instantiate(cfg.speed).tune_process()
        outcome = train(cfg)
        trainer = outcome.pop("trainer")
        record.update(outcome, status="finished")
    except Exception as e:  # recorded, never lost: a line for the user, the traceback in the log
        if exit_code(e) == 1 and not isinstance(e, CnnlabError):
            log.exception("run failed")
        record.update(error=one_line(e), exit_code=exit_code(e))
        record["status"] = getattr(e, "status", "failed")  # or "interrupted": resumable
    record.update(wall_time_s=round(time.perf_counter() - started, 2), run_dir=str(run_dir))
    write_json(run_dir / RESULT_FILE, record)
    if trainer is not None:
        log_hparams(trainer.loggers, hparams_of(cfg), record)
    return record


def report(record: dict[str, Any]) -> None:
    """The final summary a user reads, in the lesson's words."""
    if record["status"] != "finished":
        label = "error" if record["status"] == "failed" else record["status"]
        say(record["error"], label)
        return
    if record.get("skipped"):
        print(f"Already finished, skipped (resume): {record['run_dir']}")
        return
    run_dir = record["run_dir"]
    print(f"\nTest loss: {record.get('test/loss')}\nTest accuracy: {record.get('test/acc')}")
    print(f"Best val accuracy: {record['val/acc']} (epoch {record['best_epoch']})")
    print(f"Parameters: {record['params']:,}   wall time: {record['wall_time_s']} s")
    print(f"Run directory: {run_dir}\nTensorBoard:   tensorboard --logdir {run_dir}")
