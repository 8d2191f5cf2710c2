"""Interrupt and resume through the real CLI: signals, checkpoints, TensorBoard, determinism."""

from __future__ import annotations

import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.helpers import (
    ROOT,
    TWO_EPOCHS,
    cli,
    cli_env,
    result_of,
    run_dirs,
    signal_after_first_epoch,
    steps,
    train_run,
    weights,
)


@pytest.fixture(scope="module")
def uninterrupted(mnist_dir, tmp_path_factory) -> Path:
    return train_run(tmp_path_factory.mktemp("uninterrupted"), *TWO_EPOCHS)[0]


def test_seeded_deterministic_runs_give_identical_metrics(uninterrupted, tmp_path):
    done = cli("cnnlab.train", *TWO_EPOCHS, output_dir=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    again, first = result_of(run_dirs(tmp_path)[0]), result_of(uninterrupted)
    for key in ("val/acc", "val/loss", "test/acc", "test/loss"):
        assert again[key] == first[key], key


def test_sigint_saves_a_checkpoint_and_resume_ends_as_if_never_stopped(uninterrupted, tmp_path):
    # a comma in the run's directory: the printed command quotes it for Hydra and the shell
    code, stderr, run_dir = signal_after_first_epoch(tmp_path, signal.SIGINT, 'name="a,b"')
    assert code == 130 and run_dir.name.endswith("_a,b")
    assert "cnnlab: interrupted: stopped by SIGINT; weights at that moment saved" in stderr
    (command,) = re.findall(r"Resume with: python (-m cnnlab.train .*)$", stderr, re.M)
    assert "Traceback" not in stderr
    result = result_of(run_dir)
    assert result["status"] == "interrupted" and result["exit_code"] == 130
    interrupted = run_dir / "checkpoints" / "interrupted.ckpt"
    assert torch.load(interrupted, weights_only=True)["global_step"] > 20  # inside epoch 1
    assert (run_dir / "checkpoints" / "best-epoch00.ckpt").is_file()
    before = result["wall_time_s"]

    resumed = subprocess.run(f"{shlex.quote(sys.executable)} {command}", shell=True, cwd=ROOT,
                             env=cli_env(tmp_path), capture_output=True, text=True)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert run_dirs(tmp_path) == [run_dir]  # the same run, not a new one
    result = result_of(run_dir)
    assert result["status"] == "finished" and result["best_epoch"] is not None
    assert result["wall_time_s"] > before  # the whole training, not only the resumed part
    final, reference = (
        weights(run_dir / "checkpoints/last.ckpt"),
        weights(uninterrupted / "checkpoints/last.ckpt"),
    )
    assert all(torch.equal(final[k], reference[k]) for k in reference)  # optimizer, RNG restored
    assert result["test/acc"] == result_of(uninterrupted)["test/acc"]
    assert torch.load(run_dir / "checkpoints/last.ckpt", weights_only=True)["epoch"] == 1
    # TensorBoard continues in the same curves: one point per epoch, no step twice
    assert steps(run_dir, "train/loss") == steps(uninterrupted, "train/loss") == [19, 39]
    assert steps(run_dir, "lr-Adam") == steps(uninterrupted, "lr-Adam")
    assert interrupted.is_file()  # kept: nothing the user had is deleted


def test_the_training_recipe_resumes_as_if_never_stopped(mnist_dir, tmp_path):
    """The one-cycle schedule's position and the augmentation's draws survive an interrupt."""
    recipe = ["scheduler=onecycle", "loss.label_smoothing=0.1", "data.augment.shift=1",
              "data.augment.rotate=10"]  # fmt: skip
    reference, _ = train_run(tmp_path / "whole", *TWO_EPOCHS, *recipe)
    code, stderr, run_dir = signal_after_first_epoch(tmp_path / "cut", signal.SIGINT, *recipe)
    assert code == 130, stderr[-2000:]
    resumed = cli("cnnlab.train", f"resume={run_dir}", output_dir=tmp_path / "cut")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    final, whole = (
        weights(run_dir / "checkpoints/last.ckpt"),
        weights(reference / "checkpoints/last.ckpt"),
    )
    assert all(torch.equal(final[k], whole[k]) for k in whole)
    assert result_of(run_dir)["test/acc"] == result_of(reference)["test/acc"]
    ckpt = torch.load(run_dir / "checkpoints/last.ckpt", weights_only=True)
    assert ckpt["lr_schedulers"][0]["last_epoch"] == 40  # stepped once per optimizer step


def test_sigterm_stops_cleanly_with_exit_143(mnist_dir, tmp_path):
    code, stderr, run_dir = signal_after_first_epoch(tmp_path, signal.SIGTERM)
    assert code == 143, stderr[-2000:]
    assert "cnnlab: interrupted: stopped by SIGTERM; weights at that moment saved" in stderr
    assert result_of(run_dir)["status"] == "interrupted"
    assert (run_dir / "checkpoints" / "interrupted.ckpt").is_file()


def test_after_sigkill_last_epoch_checkpoint_is_there_and_resumes(mnist_dir, tmp_path):
    code, _, run_dir = signal_after_first_epoch(tmp_path, signal.SIGKILL)
    assert code == -signal.SIGKILL
    assert not (run_dir / "result.json").exists()  # nothing could be written, by definition
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 0 and last["global_step"] == 20
    resumed = cli("cnnlab.train", f"resume={run_dir}", output_dir=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert result_of(run_dir)["status"] == "finished"
    # Validation metrics reach the disk before last.ckpt; epoch 0's train metrics are logged
    # just after it, so a kill in between may lose that one point, never duplicate it.
    assert steps(run_dir, "val/acc") == [19, 39]
    assert steps(run_dir, "train/loss") in ([19, 39], [39])


def test_resume_of_something_that_is_not_a_run_is_one_line(tmp_path):
    done = cli("cnnlab.train", f"resume={tmp_path / 'nope'}", output_dir=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"cnnlab: error: resume={tmp_path / 'nope'}: not a cnnlab run directory (no such directory)"
    )


def test_last_ckpt_holds_the_last_epoch_even_when_it_was_not_the_best(mnist_dir, tmp_path):
    # mode=min makes the best epoch the worst one: epoch 0, never improved on afterwards
    run_dir, _ = train_run(tmp_path, *TWO_EPOCHS[1:], "trainer.max_epochs=3", "test=false",
                           "callbacks.model_checkpoint.mode=min")  # fmt: skip
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 2 and last["global_step"] == 60
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [
        "best-epoch00.ckpt",
        "last.ckpt",
    ]


def digests(run_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}


@pytest.mark.parametrize(("override", "message"), [
    ("model.dropout=1.5", "model.dropout=1.5: must be in [0, 1)"),
    ("optimizer.lr=-1", "optimizer.lr=-1: must be > 0"),
    ("model.filters=16", "checkpoint of another architecture"),
    ("model.filterz=3", "Could not override 'model.filterz'"),
    ("trainer.max_epochs=1", "the run already trained 2 epochs; trainer.max_epochs=1 asks for"),
])  # fmt: skip
def test_a_refused_resume_changes_nothing_in_the_run(uninterrupted, tmp_path, override, message):
    run_dir = tmp_path / "run"
    shutil.copytree(uninterrupted, run_dir)
    before = digests(run_dir)
    done = cli("cnnlab.train", f"resume={run_dir}", override, output_dir=tmp_path)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("cnnlab: error: ") and message in line, line
    assert digests(run_dir) == before  # not one byte of the run changed
    assert not (tmp_path / "runs").exists()  # and no other run directory was made


def test_a_run_directory_in_use_or_holding_a_run_is_refused(uninterrupted, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(uninterrupted, run_dir)
    before = digests(run_dir)
    done = cli("cnnlab.train", *TWO_EPOCHS, f"hydra.run.dir={run_dir}", output_dir=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"cnnlab: error: hydra.run.dir={run_dir}: already holds a run; resume=<that dir> "
        "continues it, or choose another directory"
    )
    assert digests(run_dir) == before

    busy = tmp_path / "busy"
    first = subprocess.Popen(
        [sys.executable, "-m", "cnnlab.train", *TWO_EPOCHS, f"hydra.run.dir={busy}"],
        cwd=ROOT, env=cli_env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    while not (busy / "config.yaml").exists():  # the first run has started
        assert first.poll() is None
        time.sleep(0.05)
    second = cli(
        "cnnlab.train", *TWO_EPOCHS, "seed=7", f"hydra.run.dir={busy}", output_dir=tmp_path
    )
    assert second.returncode == 2
    assert second.stderr.strip() == (
        f"cnnlab: error: hydra.run.dir={busy}: another cnnlab run is using this directory"
    )
    assert first.wait(timeout=300) == 0  # the first run is untouched by the second
    assert result_of(busy)["status"] == "finished" and "seed=7" not in result_of(busy)["overrides"]
