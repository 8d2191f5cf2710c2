"""Helpers the tests share: the real CLI run as a user runs it, and what a run leaves behind."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from cnnlab.data.datamodule import ImageDataModule
from cnnlab.data.mnist import MNIST
from cnnlab.perf.speed import Speed

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("CNNLAB_DATA_DIR", ROOT / "data"))

# Figures cost each run seconds (docs/speed.md, the suite's note); only tests of figures draw them.
NO_FIGURES = "callbacks.figures=null"

# A tiny sweep trial: a narrow model, a few batches of each split, no figures.
TINY = [
    "model.filters=8",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=5",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "trainer.enable_model_summary=false",
    "print_config=false",
    NO_FIGURES,
]

# A quick but real run: 1 epoch of 20 batches, 5 val batches, the full test set.
QUICK = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=20",
    "trainer.limit_val_batches=5",
    "print_config=false",
]


# Two real epochs of 20 batches, deterministic: long enough to be interrupted in epoch 1.
# No figures.
TWO_EPOCHS = [
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=20",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "trainer.deterministic=true",
    "print_config=false",
    NO_FIGURES,
]


# The Optuna preset's space with every knob fixed but the epochs, which TPE (seeded by seed=42)
# draws from choice(1,<n>) as n, 1, 1, n: a search whose trials are known in advance.
OPTUNA_EPOCHS_ONLY = [
    "hparams_search=optuna", *TINY, "model.kernel_size=3", "model.pool_size=2",
    "model.dropout=0.25", "model.dense_dropout=0.5", "optimizer.lr=0.001",
]  # fmt: skip


def threshold_pruner(from_epoch: int) -> list[str]:
    """Optuna's ThresholdPruner judged from ``from_epoch`` on: every trial still running then is
    pruned (val/acc < 0.999 after a few tiny batches), so which trials are pruned does not
    depend on the CPU."""
    return ["pruner._target_=optuna.pruners.ThresholdPruner", "~pruner.n_startup_trials",
            "+pruner.lower=0.999", f"pruner.n_warmup_steps={from_epoch}"]  # fmt: skip


def cli_env(output_dir: Path, **env: str) -> dict[str, str]:
    """The environment of a CLI run: the shared MNIST, outputs to ``output_dir``, 2 threads."""
    return {
        **os.environ,
        "CNNLAB_DATA_DIR": str(DATA_DIR),
        "CNNLAB_OUTPUT_DIR": str(output_dir),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"),
        **env,
    }


def cli(module: str, *overrides: str, output_dir: Path, timeout: int = 600, **env: str):
    """Run ``python -m <module> overrides...`` as a user would; outputs go to ``output_dir``."""
    return subprocess.run(
        [sys.executable, "-m", module, *overrides],
        cwd=ROOT,
        env=cli_env(output_dir, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def train_run(
    output_dir: Path, *overrides: str, env: dict[str, str] | None = None
) -> tuple[Path, subprocess.CompletedProcess]:
    """A successful ``cnnlab.train`` run through the real CLI: its run directory and process."""
    done = cli("cnnlab.train", *overrides, output_dir=output_dir, **(env or {}))
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = run_dirs(output_dir)
    return run_dir, done


def signal_after_first_epoch(
    output_dir: Path, signum: int, *overrides: str
) -> tuple[int, str, Path]:
    """Run TWO_EPOCHS, send ``signum`` once epoch 0's last.ckpt exists: exit, stderr, run dir."""
    cmd = [sys.executable, "-m", "cnnlab.train", *TWO_EPOCHS, *overrides]
    env = cli_env(output_dir)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not list((output_dir / "runs").glob("*/checkpoints/last.ckpt")):
        assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=300)
    (run_dir,) = run_dirs(output_dir)
    return proc.returncode, stderr.decode(), run_dir


def run_dirs(output_dir: Path) -> list[Path]:
    """Single-run directories under ``output_dir/runs``, oldest first."""
    return sorted((output_dir / "runs").glob("*"))


def result_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "result.json").read_text())


def sweep_dir_of(output_dir: Path) -> Path:
    (sweep_dir,) = (output_dir / "sweeps").iterdir()
    return sweep_dir


def leaderboard(sweep_dir: Path) -> list[dict]:
    with open(sweep_dir / "leaderboard.csv", newline="") as f:
        return list(csv.DictReader(f))


MNIST_NAMES = list(OmegaConf.load(ROOT / "conf" / "data" / "mnist.yaml").class_names)


def mnist_data(data_dir: Path | str, **settings: object) -> ImageDataModule:
    """The general DataModule on MNIST, as ``conf/data/mnist.yaml`` describes it (its hold-out:
    5000 images)."""
    settings = {"val_size": 5000, **settings}
    return ImageDataModule(str(data_dir), MNIST(), 1, 28, 10, MNIST_NAMES, **settings)


def speed_preset(name: str) -> Speed:
    """The speed switches of ``conf/speed/<name>.yaml``."""
    return instantiate(OmegaConf.load(ROOT / "conf" / "speed" / f"{name}.yaml"))


@contextmanager
def tmpfs(mount: Path, size: str) -> Iterator[Path]:
    """A real tmpfs of ``size`` mounted at ``mount`` (made); skips the test where mounting is
    not allowed (not root, a container without the capability)."""
    import pytest  # a helper of the tests: it skips where mounting is not allowed

    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@contextmanager
def read_only_copy(source: Path, where: Path) -> Iterator[Path]:
    """``source`` copied onto a real tmpfs under ``where``, then remounted read-only."""
    with tmpfs(where / "read-only", "200m") as mount:
        copy = mount / source.name
        shutil.copytree(source, copy)
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        yield copy


@contextmanager
def warnings_shown() -> Iterator[list[str]]:
    """The messages of the warnings the code within lets through (every one, every time), once
    it is done; and a check that it left the process's warning filters as it found them: a
    filter the code needs is scoped (``warnings.catch_warnings``), or it leaks into a notebook
    or a user's program."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        before = list(warnings.filters)
        shown: list[str] = []
        yield shown
        assert warnings.filters == before, "a process-wide warning filter was set"
        shown.extend(str(w.message) for w in seen)


def trial_dir(sweep_dir: Path, num: int) -> Path:
    """Trial ``num``'s directory in a sweep."""
    (found,) = sweep_dir.glob(f"{num}_*")
    return found


def weights(ckpt: Path) -> dict[str, torch.Tensor]:
    return torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]


def steps(run_dir: Path, tag: str) -> list[int]:
    """The steps at which a run's TensorBoard events hold ``tag``."""
    events = EventAccumulator(str(run_dir / "tensorboard")).Reload()
    return [event.step for event in events.Scalars(tag)]


def wait_for(condition, what: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    """Poll ``condition`` while ``proc`` runs; fail if it ends first or time runs out."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"the command ended while waiting for {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
