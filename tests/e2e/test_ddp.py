"""Lightning DDP under Hydra on CPU (2 gloo processes): one run directory, written once."""

import torch

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


def test_ddp_synchronises_every_optimizer_step_of_an_execution(mnist_dir, tmp_path):
    """Under speed.steps_per_execution one Lightning step runs N optimizer steps; each backward
    must still all-reduce the gradients across ranks (Lightning's manual_backward readies
    DDP's reducer): Lightning's own loop and N=8 train the same weights (20 batches a rank:
    executions of 8, 8 and 4)."""
    final = {}
    for n in ("null", 8):
        out = tmp_path / f"n{n}"
        args = [*DDP, *TINY, "trainer.limit_train_batches=20", "trainer.deterministic=true",
                f"speed.steps_per_execution={n}", "test=false"]  # fmt: skip
        done = cli("cnnlab.train", *args, output_dir=out)
        assert done.returncode == 0, done.stderr[-3000:]
        (run_dir,) = run_dirs(out)
        final[n] = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert final["null"]["global_step"] == final[8]["global_step"] == 20
    for name, weight in final["null"]["state_dict"].items():
        assert torch.equal(weight, final[8]["state_dict"][name]), name
