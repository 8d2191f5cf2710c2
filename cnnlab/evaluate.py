"""``python -m cnnlab.evaluate ckpt_path=<checkpoint or run dir>``: Keras' ``model.evaluate``.

Prints test loss and accuracy (the lesson's two lines) and the accuracy of every class, on the
checkpoint's test set or, with ``data.test_root=<dir>``, on another folder of its classes.
"""

from __future__ import annotations

from cnnlab.signals import exit_on_signals

if __name__ == "__main__":
    exit_on_signals()  # first: a Ctrl-C while the imports below load is one line, no traceback

import math
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

import cnnlab.runs.resolvers  # noqa: F401  (registers ${cnnlab.root:})
from cnnlab.data.scan import class_folders
from cnnlab.errors import CnnlabError
from cnnlab.perf.precision import resolve_precision
from cnnlab.runs.checkpoints import CheckpointError, load_model, resolve_checkpoint, run_dir_of
from cnnlab.runs.cli import compute_and_report, run_cli


class EvaluationError(CnnlabError):
    """The checkpoint's model computes nothing usable on the test set."""

    exit_code = 1


def trained_precision(ckpt: Path) -> str:
    """The precision the checkpoint's run trained with, from its saved config."""
    run_dir = run_dir_of(ckpt)
    config = run_dir / "config.yaml" if run_dir else None
    if config and config.is_file():
        return str(OmegaConf.load(config).trainer.get("precision", "32-true"))
    return "32-true"


def test_data(trained: dict[str, Any], cfg: DictConfig) -> L.LightningDataModule:
    """The checkpoint's own dataset, read from this machine's data directory (the run may have
    been trained elsewhere); its test set ``data.test_root`` when given (evaluate's config has
    the key; export's, which tests on the checkpoint's own test set, has none)."""
    data = {**trained["data"], "data_dir": cfg.paths.data_dir}
    if "test_root" in data:  # a folder: its scan's cache is this machine's data directory too
        data["images"] = {**data["images"], "data_dir": cfg.paths.data_dir}
    if (test_root := OmegaConf.select(cfg, "data.test_root")) is not None:
        test_root = str(test_root)
        check_test_root(test_root, data)
        data["test_root"] = test_root
        data["images"] = {**data["images"], "test_root": test_root}
    return instantiate(data)


def check_test_root(test_root: str, data: dict[str, Any]) -> None:
    """A new test folder must hold the checkpoint's classes only: the network has no output for
    another (training warns and leaves such a class out; here its images are the point)."""
    if "test_root" not in data:
        raise CnnlabError(
            f"data.test_root={test_root}: the checkpoint was trained on "
            f"{data['images']['_target_']}, not a folder (data=folder); evaluate it on its own "
            "test set"
        )
    classes = class_folders(Path(test_root), "data.test_root")
    if unknown := [name for name in classes if name not in data["class_names"]]:
        raise CnnlabError(
            f"data.test_root={test_root}: class folders {', '.join(unknown)} are not among the "
            f"checkpoint's classes ({', '.join(data['class_names'])})"
        )


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Test a checkpoint on its dataset's test images; return loss, accuracy, per class."""
    if OmegaConf.is_missing(cfg, "ckpt_path"):
        raise CheckpointError("ckpt_path is required: ckpt_path=<checkpoint file or run dir>")
    ckpt = resolve_checkpoint(cfg.ckpt_path)
    model, trained = load_model(ckpt)
    trainer = L.Trainer(
        accelerator=cfg.accelerator,
        devices=1,
        precision=resolve_precision(
            cfg.precision or trained_precision(ckpt), cfg.accelerator
        ).value,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
    )
    (metrics,) = trainer.test(model, datamodule=test_data(trained, cfg), verbose=False)
    if not math.isfinite(metrics["test/loss"]):
        raise EvaluationError(f"{ckpt}: test loss {metrics['test/loss']}: not a usable model")
    per_class = {k.split("/", 1)[1]: v for k, v in metrics.items() if k.startswith("test_per_")}
    return {
        "checkpoint": str(ckpt),
        "test/loss": metrics["test/loss"],
        "test/acc": metrics["test/acc"],
        "per_class_acc": per_class,
    }


def report(result: dict[str, Any]) -> None:
    print(f"Checkpoint: {result['checkpoint']}")
    print(f"Test loss: {result['test/loss']}\nTest accuracy: {result['test/acc']}")
    print("Per-class accuracy:")
    for name, acc in result["per_class_acc"].items():
        print(f"  {name:<6} {acc:.4f}")


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    compute_and_report(lambda: evaluate(cfg), report, cfg.json)


if __name__ == "__main__":
    run_cli(main)
