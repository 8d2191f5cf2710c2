"""Lightning DDP under Hydra on CPU (2 gloo processes): one run directory, written once."""

from tests.helpers import TINY, cli, leaderboard, result_of, run_dirs, sweep_dir_of

DDP = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]


def test_ddp_run_has_one_directory_one_log_one_result(mnist_dir, tmp_path):
    done = cli("cnnlab.train", *DDP, *TINY, output_dir=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in done.stderr + done.stdout  # really 2 processes
    (run_dir,) = run_dirs(tmp_path)  # rank 1 joined rank 0's directory
    assert result_of(run_dir)["status"] == "finished" and result_of(run_dir)["test/acc"] > 0.2
    assert sorted(p.name for p in run_dir.glob("*.log")) == ["train.log"]
    assert done.stdout.count("Test accuracy:") == 1  # one report, from rank 0
    assert len(list((run_dir / "checkpoints").glob("best-*.ckpt"))) == 1


def test_ddp_trials_of_a_sweep_stay_in_their_own_directories(mnist_dir, tmp_path):
    done = cli("cnnlab.train", "-m", *DDP, *TINY, "model.kernel_size=3,5", output_dir=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not (tmp_path / "runs").exists()  # ranks > 0 did not start runs (or sweeps) of their own
    sweep_dir = sweep_dir_of(tmp_path)
    assert [r["status"] for r in leaderboard(sweep_dir)] == ["finished", "finished"]
    assert (done.stderr + done.stdout).count("GLOBAL_RANK: 1, MEMBER: 2/2") == 2
    for trial in sweep_dir.glob("[01]_*"):
        assert sorted(p.name for p in trial.glob("*.log")) == ["train.log"]
