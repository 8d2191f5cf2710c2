"""``launcher=slurm`` on a real single-node SLURM cluster (tests/slurm_cluster.py), through the
real CLI: the shipped defaults, failures, refused submissions, DDP ranks started by SLURM, and a
trial requeued mid-training that continues from its checkpoint."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import torch

from tests.helpers import (
    OPTUNA_EPOCHS_ONLY,
    ROOT,
    TINY,
    cli,
    cli_env,
    leaderboard,
    result_of,
    steps,
    sweep_dir_of,
    threshold_pruner,
    train_run,
    trial_dir,
    wait_for,
    weights,
)
from tests.slurm_cluster import CannotStart, SlurmCluster, start_cluster

REQUIRED = os.environ.get("CNNLAB_REQUIRE_SLURM") == "1"  # .ci/run: CI must not skip these
pytestmark = pytest.mark.xdist_group("slurm")  # one cluster, on one of make test's workers


@pytest.fixture(scope="module")
def slurm(tmp_path_factory, mnist_dir) -> Iterator[SlurmCluster]:
    try:
        cluster = start_cluster(tmp_path_factory.mktemp("slurm"))
    except CannotStart as e:
        if REQUIRED:
            pytest.fail(f"the SLURM test cluster did not start: {e}")
        pytest.skip(f"no SLURM test cluster: {e}")
    yield cluster
    cluster.stop()


def slurm_cli(cluster: SlurmCluster, *overrides: str, output_dir: Path, **env: str):
    return cli("cnnlab.train", "-m", "launcher=slurm", *overrides, output_dir=output_dir,
               SLURM_CONF=str(cluster.conf), **env)  # fmt: skip


def submission_scripts(sweep_dir: Path) -> list[str]:
    return [p.read_text() for p in sorted(sweep_dir.glob(".submitit/*/*_submission.sh"))]


def test_a_sweep_with_the_shipped_defaults_runs_and_a_failed_trial_is_recorded(slurm, tmp_path):
    done = slurm_cli(slurm, "optimizer.lr=0.001,1e10", *TINY, output_dir=tmp_path)
    assert done.returncode == 1, done.stderr[-3000:] + slurm.log()
    sweep_dir = sweep_dir_of(tmp_path)
    rows = leaderboard(sweep_dir)
    assert [r["status"] for r in rows] == ["finished", "failed"]
    assert "likely too high" in rows[1]["error"]  # NaN loss: only training finds it
    assert "cnnlab: error: trial 1 failed: " in done.stderr
    assert result_of(trial_dir(sweep_dir, 0))["test/acc"] > 0.2
    (script,) = submission_scripts(sweep_dir)  # one job array, a task per trial
    assert "--array=0-1" in script
    # what the trial uses: no GPU on CPU, this node's 2 cores, 3 GB for the lesson's model
    assert "--gpus-per-node=0\n" in script and "--gres" not in script
    assert f"--cpus-per-task={min(4, slurm.cpus)}\n" in script and "--mem=3GB\n" in script
    assert "--signal=USR2@120\n" in script
    threads = f"threads: {min(4, slurm.cpus)}"
    assert threads in (trial_dir(sweep_dir, 0) / "config.yaml").read_text()


@pytest.mark.parametrize(
    "override, line",
    [
        ("hydra.launcher.partition=nope", "hydra.launcher.partition=nope: SLURM refuses it ("),
        ("hydra.launcher.cpus_per_task=64", "hydra.launcher.cpus_per_task=64: SLURM refuses it"),
        ("hydra.launcher.mem_gb=100000", "hydra.launcher.mem_gb=100000: SLURM refuses it"),
        ("hydra.launcher.gpus_per_node=1", "hydra.launcher.gpus_per_node=1: SLURM refuses it"),
    ],
)
def test_a_submission_slurm_refuses_is_one_line_naming_the_setting(slurm, tmp_path, override, line):
    done = slurm_cli(slurm, override, *TINY, output_dir=tmp_path)
    assert done.returncode == 2, done.stderr[-3000:]
    assert done.stderr.startswith(f"cnnlab: error: {line}"), done.stderr[-3000:]
    assert len(done.stderr.strip().splitlines()) == 1 and done.stdout == ""
    assert not (tmp_path / "sweeps").exists()  # nothing written, nothing submitted
    assert slurm.jobs() == []


def test_no_sbatch_on_the_path_is_one_line(slurm, tmp_path):
    path = os.pathsep.join(
        d for d in os.environ["PATH"].split(os.pathsep) if not Path(d, "sbatch").exists()
    )
    done = slurm_cli(slurm, *TINY, output_dir=tmp_path, PATH=path)
    assert done.returncode == 2
    assert done.stderr.startswith("cnnlab: error: launcher=slurm: no sbatch on the PATH")
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "sweeps").exists()


def test_ddp_ranks_are_started_by_slurm_and_rank_zero_writes_alone(slurm, tmp_path):
    done = slurm_cli(
        slurm, "trainer=ddp", "trainer.accelerator=cpu", "model.filters=8", *TINY,
        output_dir=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    sweep_dir = sweep_dir_of(tmp_path)
    (script,) = submission_scripts(sweep_dir)
    assert "--ntasks-per-node=2" in script and "--cpus-per-task=1" in script
    trial = trial_dir(sweep_dir, 0)
    assert result_of(trial)["status"] == "finished"
    assert sorted(p.name for p in trial.glob("*.log")) == ["train.log"]
    logs = "".join(p.read_text() for p in sweep_dir.glob(".submitit/*/*_log.err"))
    assert "MEMBER: 1/2" in logs and "MEMBER: 2/2" in logs  # two ranks, one world


# Three deterministic epochs of 40 batches: long enough to be stopped inside epoch 1.
LONGER = [
    "model.filters=8",
    "trainer.max_epochs=3",
    "trainer.limit_train_batches=40",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "trainer.deterministic=true",
    "print_config=false",
]


def running_job(cluster: SlurmCluster) -> str:
    """The id of the one job the cluster runs."""
    (line,) = cluster.jobs()
    job, state = line.split()
    assert state == "RUNNING", line
    return job


def test_a_requeued_trial_continues_from_its_checkpoint_as_if_never_stopped(slurm, tmp_path):
    reference, _ = train_run(tmp_path / "reference", *LONGER, f"speed.threads={min(4, slurm.cpus)}")
    output_dir = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "cnnlab.train", "-m", "launcher=slurm", *LONGER]
    env = cli_env(output_dir, SLURM_CONF=str(slurm.conf))
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        sweeps = output_dir / "sweeps"
        wait_for(lambda: list(sweeps.glob("*/0_*/checkpoints/last.ckpt")), "epoch 0", proc)
        sweep_dir = sweep_dir_of(output_dir)
        trial = trial_dir(sweep_dir, 0)
        job = running_job(slurm)
        # What SLURM does before a time limit or a preemption: submitit's --signal, USR2
        slurm.run("scancel", "--signal=USR2", job)
        wait_for(lambda: "PENDING" in " ".join(slurm.jobs()), "the requeue", proc)
        stopped = result_of(trial)
        assert stopped["status"] == "interrupted" and stopped["requeued"] is True
        assert "SIGUSR2" in stopped["error"]
        step = torch.load(trial / "checkpoints/interrupted.ckpt", weights_only=True)["global_step"]
        assert 40 < step < 80  # inside epoch 1
        # SLURM holds a requeued job for its credential's lifetime (cred_expire, 20 s here: a
        # job started sooner finds its credential still revoked and fails), then starts it
        _, stderr = proc.communicate(timeout=420)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr.decode()[-3000:] + slurm.log()
    result = result_of(trial)
    assert result["status"] == "finished"
    assert result["continued_from"] == str(trial / "checkpoints" / "interrupted.ckpt")
    final = weights(trial / "checkpoints/last.ckpt")
    expected = weights(reference / "checkpoints/last.ckpt")
    assert all(torch.equal(final[k], expected[k]) for k in expected)
    assert result["test/acc"] == result_of(reference)["test/acc"]
    assert steps(trial, "train/loss") == steps(reference, "train/loss") == [39, 79, 119]
    assert steps(trial, "val/acc") == steps(reference, "val/acc")
    assert not list(trial.glob("attempt-*"))  # continued in place, not started over
    assert [r["status"] for r in leaderboard(sweep_dir)] == ["finished"]


def test_an_optuna_search_on_slurm_runs_each_trial_as_a_job_and_prunes_it_there(slurm, tmp_path):
    """Two slots: each trial its own sbatch job (no batch waits for its slowest); the trials
    report to the study's SQLite storage from the job, and the 4-epoch ones are pruned."""
    search = [*OPTUNA_EPOCHS_ONLY, "trainer.max_epochs=choice(1,4)", *threshold_pruner(2),
              "hydra.sweeper.n_jobs=2", "hydra.sweeper.n_trials=3"]  # fmt: skip
    done = slurm_cli(slurm, *search, output_dir=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:] + slurm.log()
    sweep_dir = sweep_dir_of(tmp_path)
    study = optuna.load_study(
        study_name="optuna_search", storage=f"sqlite:///{sweep_dir}/optuna.db"
    )
    assert [t.params["trainer.max_epochs"] for t in study.trials] == [4, 1, 1]  # seeded
    assert [t.state.name for t in study.trials] == ["PRUNED", "COMPLETE", "COMPLETE"]
    assert list(study.trials[0].intermediate_values) == [1, 2]
    statuses = {int(r["trial"]): r["status"] for r in leaderboard(sweep_dir)}
    assert statuses == {0: "pruned", 1: "finished", 2: "finished"}
    assert result_of(trial_dir(sweep_dir, 0))["pruned_after_epochs"] == 2
    assert len(submission_scripts(sweep_dir)) == 3  # a submission per trial
