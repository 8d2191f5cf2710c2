"""``resume=<sweep dir>`` after the whole sweep was killed: the trial that was training continues
from its last.ckpt in place, with the weights and curves of a trial never stopped."""

from __future__ import annotations

import signal
import subprocess
import sys

import torch

from tests.helpers import (
    ROOT,
    TWO_EPOCHS,
    cli,
    cli_env,
    leaderboard,
    result_of,
    steps,
    sweep_dir_of,
    train_run,
    trial_dir,
    wait_for,
    weights,
)  # fmt: skip


def test_a_killed_sweep_resumed_continues_its_trial_from_last_ckpt(mnist_dir, tmp_path):
    reference, _ = train_run(tmp_path / "reference", "model.filters=8", *TWO_EPOCHS)
    output_dir = tmp_path / "sweep"
    sweep = ["-m", "model.filters=8,16", *TWO_EPOCHS]
    cmd = [sys.executable, "-m", "cnnlab.train", *sweep]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=cli_env(output_dir), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    epoch_0 = output_dir / "sweeps"
    wait_for(lambda: list(epoch_0.glob("*/0_*/checkpoints/last.ckpt")), "trial 0's epoch 0", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    sweep_dir = sweep_dir_of(output_dir)
    trial = trial_dir(sweep_dir, 0)
    assert not (trial / "result.json").exists()  # killed: nothing could be recorded

    done = cli("cnnlab.train", *sweep, f"resume={sweep_dir}", output_dir=output_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    result = result_of(trial)
    assert result["status"] == "finished"
    assert result["continued_from"] == str(trial / "checkpoints" / "last.ckpt")
    final = weights(trial / "checkpoints/last.ckpt")
    expected = weights(reference / "checkpoints/last.ckpt")
    assert all(torch.equal(final[k], expected[k]) for k in expected)
    assert result["test/acc"] == result_of(reference)["test/acc"]
    assert steps(trial, "train/loss") == steps(reference, "train/loss") == [19, 39]
    assert steps(trial, "val/acc") == steps(reference, "val/acc")
    assert not list(trial.glob("attempt-*"))  # continued in place, not started over
    assert [r["status"] for r in leaderboard(sweep_dir)] == ["finished", "finished"]
