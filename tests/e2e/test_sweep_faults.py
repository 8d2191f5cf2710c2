"""Sweeps under faults, through the real CLI with real signals: a signal stops the whole sweep
(the running trials save their checkpoints, no further trial trains, the leaderboard is written,
one line names the sweep's resume command, exit 130/143), that command finishes exactly the
unfinished trials, an interrupted Optuna trial resumes with its parameters, and no sweep
writes into another's directory."""

from __future__ import annotations

import hashlib
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from tests.helpers import (
    OPTUNA_EPOCHS_ONLY,
    ROOT,
    TINY,
    cli,
    cli_env,
    leaderboard,
    result_of,
    sweep_dir_of,
    trial_dir,
    wait_for,
)  # fmt: skip

# Trials of two epochs of 100 batches: epoch 1 lasts seconds, long enough to be stopped in.
TRIAL = ["trainer.max_epochs=2", "trainer.limit_train_batches=100", "trainer.limit_val_batches=2",
         "trainer.limit_test_batches=2", "callbacks.figures=null", "print_config=false",
         "trainer.enable_model_summary=false"]  # fmt: skip
GRID = ["-m", "model.filters=4,6,8", *TRIAL]


def start(output_dir: Path, *args: str, **env: str) -> subprocess.Popen:
    """A sweep through the real CLI, in a process group of its own (as a terminal's job)."""
    cmd = [sys.executable, "-m", "cnnlab.train", *args]
    return subprocess.Popen(cmd, cwd=ROOT, env=cli_env(output_dir, **env), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)  # fmt: skip


def in_epoch_1(output_dir: Path, *trials: int):
    """A condition: each of ``trials`` has saved its epoch 0 (so epoch 1 is training)."""

    def ready() -> bool:
        found = list((output_dir / "sweeps").glob("*/*_*/checkpoints/last.ckpt"))
        return {int(p.parent.parent.name.split("_")[0]) for p in found} >= set(trials)

    return ready


def stopped(proc: subprocess.Popen, signum: int) -> tuple[str, str, str]:
    """The sweep's one line after a signal, the command it names, and its whole stderr."""
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signum, stderr[-3000:]
    assert "Traceback" not in stderr
    (line,) = [line for line in stderr.splitlines() if line.startswith("cnnlab: ")]
    name = signal.Signals(signum).name
    assert line.startswith(f"cnnlab: interrupted: the sweep stopped by {name}; its unfinished ")
    return line, line.split("continue with: ", 1)[1], stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_the_whole_sweep_and_its_resume_finishes_it(mnist_dir, tmp_path, signum):
    proc = start(tmp_path, *GRID)
    wait_for(in_epoch_1(tmp_path, 0), "trial 0's epoch 1", proc)
    proc.send_signal(signum)
    line, command, _ = stopped(proc, signum)
    sweep_dir = sweep_dir_of(tmp_path)
    assert f"resume={sweep_dir}" in line and "model.filters=4,6,8" in line
    first = result_of(trial_dir(sweep_dir, 0))
    assert first["status"] == "interrupted" and first["exit_code"] == 128 + signum
    assert f"resume={sweep_dir}" in first["error"]  # the sweep's command, not the trial's
    assert (trial_dir(sweep_dir, 0) / "checkpoints" / "interrupted.ckpt").is_file()
    assert not list(sweep_dir.glob("[12]_*"))  # no further trial started
    assert [r["status"] for r in leaderboard(sweep_dir)] == ["interrupted"]
    if signum == signal.SIGINT:
        return  # resuming is the same after either signal: once is enough
    words = shlex.split(command)
    assert words[:4] == ["python", "-m", "cnnlab.train", "-m"]
    done = cli("cnnlab.train", *words[3:], output_dir=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [r["status"] for r in leaderboard(sweep_dir)] == ["finished"] * 3
    resumed = result_of(trial_dir(sweep_dir, 0))
    assert resumed["continued_from"] == str(
        trial_dir(sweep_dir, 0) / "checkpoints/interrupted.ckpt"
    )
    assert resumed["wall_time_s"] > first["wall_time_s"]  # the whole training, both parts


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_to_the_process_group_stops_a_parallel_sweep_cleanly(mnist_dir, tmp_path, signum):
    """launcher=joblib, 3 workers for 2 trials: SIGINT or SIGTERM to the whole process group
    (a terminal's Ctrl-C, `timeout`, systemd) stops both running trials, each with its
    interrupted checkpoint and result, and nothing follows the one line. The idle worker gets
    the signal too (as one between trials would): it used to die of it or raise
    KeyboardInterrupt, losing the results and leaking loky's semaphores (issue 33 case 2)."""
    grid = ["-m", "model.filters=4,6", *TRIAL, "launcher=joblib", "hydra.launcher.n_jobs=3"]
    proc = start(tmp_path, *grid)
    wait_for(in_epoch_1(tmp_path, 0, 1), "epoch 1 of trials 0 and 1", proc)
    os.killpg(proc.pid, signum)
    line, _, stderr = stopped(proc, signum)
    assert stderr.rstrip().endswith(line)  # no warning after it
    sweep_dir = sweep_dir_of(tmp_path)
    for num in (0, 1):
        result = result_of(trial_dir(sweep_dir, num))
        assert result["status"] == "interrupted" and result["exit_code"] == 128 + signum, result
        assert (trial_dir(sweep_dir, num) / "checkpoints" / "interrupted.ckpt").is_file()
    assert [r["status"] for r in leaderboard(sweep_dir)] == ["interrupted"] * 2
    assert not (sweep_dir / ".stopping").exists()
    deadline = time.monotonic() + 30  # the workers end once their parent has gone
    while subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True).stdout:
        assert time.monotonic() < deadline, "joblib's workers outlived the sweep"
        time.sleep(0.2)


def test_an_interrupted_optuna_trial_resumes_with_its_parameters(mnist_dir, tmp_path):
    search = [*OPTUNA_EPOCHS_ONLY, *TRIAL, "model.dropout=interval(0.0,0.5)",
              "hydra.sweeper.n_trials=2"]  # fmt: skip
    proc = start(tmp_path, *search)
    wait_for(in_epoch_1(tmp_path, 0), "trial 0's epoch 1", proc)
    proc.send_signal(signal.SIGTERM)
    _, command, _ = stopped(proc, signal.SIGTERM)
    sweep_dir = sweep_dir_of(tmp_path)
    study = optuna.load_study(study_name="optuna_search",
                              storage=f"sqlite:///{sweep_dir}/optuna.db")  # fmt: skip
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.RUNNING  # interrupted is not failed
    done = cli("cnnlab.train", *shlex.split(command)[3:], output_dir=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    study = optuna.load_study(study_name="optuna_search",
                              storage=f"sqlite:///{sweep_dir}/optuna.db")  # fmt: skip
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    assert study.trials[0].params == trial.params  # the same trial, continued
    first = result_of(trial_dir(sweep_dir, 0))
    assert first["continued_from"] == str(trial_dir(sweep_dir, 0) / "checkpoints/interrupted.ckpt")
    assert f"model.dropout={trial.params['model.dropout']}" in first["overrides"]


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


def test_no_sweep_writes_into_another_sweeps_directory(mnist_dir, tmp_path):
    sweep_dir = tmp_path / "my_sweep"
    sweep = ["-m", "model.filters=4,8", *TINY, f"hydra.sweep.dir={sweep_dir}"]
    first = cli("cnnlab.train", *sweep, output_dir=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    before = digests(sweep_dir)
    again = cli("cnnlab.train", *sweep, output_dir=tmp_path)
    assert again.returncode == 2
    assert again.stderr.strip().splitlines() == [
        f"cnnlab: error: hydra.sweep.dir={sweep_dir}: already holds a sweep; resume=<that dir> "
        "continues it, or choose another directory"
    ]
    assert digests(sweep_dir) == before  # every byte as it was

    busy = tmp_path / "busy"
    running = start(tmp_path, *GRID, f"hydra.sweep.dir={busy}")
    wait_for(lambda: (busy / "multirun.yaml").is_file(), "the first sweep", running)
    second = cli("cnnlab.train", *sweep[:-1], f"hydra.sweep.dir={busy}", output_dir=tmp_path)
    assert second.returncode == 2
    assert second.stderr.strip().splitlines() == [
        f"cnnlab: error: hydra.sweep.dir={busy}: another cnnlab sweep is using this directory"
    ]
    assert "model.filters=4,6,8" in (busy / "multirun.yaml").read_text()  # not overwritten
    running.send_signal(signal.SIGINT)
    running.communicate(timeout=300)
