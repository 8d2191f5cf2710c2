"""Interrupt and resume through the real CLI: signals, checkpoints, TensorBoard, determinism."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.helpers import ROOT, cli, cli_env, result_of, run_dirs, train_run

# Two real epochs of 20 batches, deterministic: long enough to be interrupted in epoch 1.
TWO_EPOCHS = [
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=20",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "trainer.deterministic=true",
    "print_config=false",
]


def signal_after_first_epoch(output_dir: Path, signum: int) -> tuple[int, str, Path]:
    """Run TWO_EPOCHS, send ``signum`` once epoch 0's last.ckpt exists: exit, stderr, run dir."""
    cmd = [sys.executable, "-m", "cnnlab.train", *TWO_EPOCHS]
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


def weights(ckpt: Path) -> dict[str, torch.Tensor]:
    return torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]


def steps(run_dir: Path, tag: str) -> list[int]:
    events = EventAccumulator(str(run_dir / "tensorboard")).Reload()
    return [event.step for event in events.Scalars(tag)]


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
    code, stderr, run_dir = signal_after_first_epoch(tmp_path, signal.SIGINT)
    assert code == 130
    message = f"Resume with: python -m cnnlab.train resume={run_dir}"
    assert "cnnlab: interrupted: training stopped by SIGINT" in stderr and message in stderr
    assert "Traceback" not in stderr
    result = result_of(run_dir)
    assert result["status"] == "interrupted" and result["exit_code"] == 130
    interrupted = run_dir / "checkpoints" / "interrupted.ckpt"
    assert torch.load(interrupted, weights_only=True)["global_step"] > 20  # inside epoch 1
    assert (run_dir / "checkpoints" / "best-epoch00.ckpt").is_file()

    resumed = cli("cnnlab.train", f"resume={run_dir}", output_dir=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert run_dirs(tmp_path) == [run_dir]  # the same run, not a new one
    result = result_of(run_dir)
    assert result["status"] == "finished" and result["best_epoch"] is not None
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


def test_sigterm_stops_cleanly_with_exit_143(mnist_dir, tmp_path):
    code, stderr, run_dir = signal_after_first_epoch(tmp_path, signal.SIGTERM)
    assert code == 143, stderr[-2000:]
    assert "training stopped by SIGTERM" in stderr
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
