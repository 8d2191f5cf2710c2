"""A disk that fills up during training: the checkpoint being written fails with one line naming
it, exit 1, recorded in result.json, and the checkpoints already there stay whole. On a real,
small tmpfs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import zipfile

import pytest
import torch

from tests.helpers import ROOT, cli_env, result_of, run_dirs, tmpfs

EPOCHS = ["trainer.max_epochs=3", "trainer.limit_train_batches=60", "trainer.limit_val_batches=2",
          "test=false", "callbacks.figures=null", "print_config=false"]  # fmt: skip


@pytest.fixture
def small_disk(tmp_path):
    """An 80 MB tmpfs: room for the run's preflight (3 checkpoints of 14.4 MB and logs)."""
    with tmpfs(tmp_path / "disk", "80m") as mount:
        yield mount


def test_a_disk_filling_up_mid_run_keeps_last_ckpt_whole(mnist_dir, small_disk):
    proc = subprocess.Popen([sys.executable, "-m", "cnnlab.train", *EPOCHS], cwd=ROOT,
                            env=cli_env(small_disk), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 300
    while not list(small_disk.glob("runs/*/checkpoints/last.ckpt")):
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # last.ckpt is renamed into place whole: epoch 1 (60 steps, a second or more) has begun
    filler = small_disk / "filler"
    with open(filler, "wb") as f:  # everything but 2 MB: no room for another checkpoint
        os.posix_fallocate(f.fileno(), 0, shutil.disk_usage(small_disk).free - 2 * 2**20)
    _, stderr = proc.communicate(timeout=300)
    (run_dir,) = run_dirs(small_disk)
    assert proc.returncode == 1, stderr[-2000:]
    (line,) = [line for line in stderr.splitlines() if line.startswith("cnnlab: ")]
    assert line.startswith(f"cnnlab: error: {run_dir / 'checkpoints'}/")
    assert ".ckpt: cannot write (No space left on device)" in line
    assert "Traceback" not in stderr and "Logging error" not in stderr
    result = result_of(run_dir)
    assert result["status"] == "failed" and result["exit_code"] == 1 and result["error"] in line
    last = run_dir / "checkpoints" / "last.ckpt"
    with zipfile.ZipFile(last) as archive:
        assert archive.testzip() is None  # whole: every member's CRC holds
    assert torch.load(last, weights_only=True)["epoch"] == 0
    assert not list(run_dir.glob("checkpoints/.*.tmp"))  # the failed write left nothing behind
    filler.unlink()


def test_a_full_tmpdir_does_not_stop_a_run(mnist_dir, small_disk, tmp_path):
    """Checkpoints are staged beside their final place, never in $TMPDIR."""
    with open(small_disk / "filler", "wb") as f:  # the tmpfs as $TMPDIR, full to the last byte
        os.posix_fallocate(f.fileno(), 0, shutil.disk_usage(small_disk).free)
    output_dir = tmp_path / "outputs"
    done = subprocess.run([sys.executable, "-m", "cnnlab.train", *EPOCHS[2:], "debug=fast"],
                          cwd=ROOT, env=cli_env(output_dir, TMPDIR=str(small_disk)),
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    (run_dir,) = run_dirs(output_dir)
    assert result_of(run_dir)["status"] == "finished"
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 0


def fill_to(disk, free_mb: int) -> None:
    """Fill ``disk`` until ``free_mb`` MB are left."""
    with open(disk / f"filler-{free_mb}", "wb") as f:
        os.posix_fallocate(f.fileno(), 0, shutil.disk_usage(disk).free - free_mb * 2**20)


def test_a_resume_counts_only_the_room_it_adds_and_a_refused_one_changes_nothing(
    mnist_dir, tmp_path
):
    """A checkpoint is 13.7 MB: a new run needs 3 and logs (57 MB); resuming a run that has 2
    needs one more and one written beside its old version (43 MB)."""
    with tmpfs(tmp_path / "disk", "120m") as disk:
        one = [*EPOCHS[1:], "trainer.max_epochs=1"]
        done = subprocess.run([sys.executable, "-m", "cnnlab.train", *one], cwd=ROOT,
                              env=cli_env(disk), capture_output=True, text=True)  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        (run_dir,) = run_dirs(disk)
        fill_to(disk, 50)
        fresh = subprocess.run([sys.executable, "-m", "cnnlab.train", *one], cwd=ROOT,
                               env=cli_env(disk), capture_output=True, text=True)  # fmt: skip
        assert fresh.returncode == 2 and "this run needs about 57 MB" in fresh.stderr
        resume = [sys.executable, "-m", "cnnlab.train", f"resume={run_dir}"]
        longer = subprocess.run([*resume, "trainer.max_epochs=2"], cwd=ROOT, env=cli_env(disk),
                                capture_output=True, text=True)  # fmt: skip
        assert longer.returncode == 0, longer.stderr[-2000:]
        assert result_of(run_dir)["status"] == "finished"
        fill_to(disk, 20)
        kept = {name: (run_dir / name).read_bytes()
                for name in (".hydra/overrides.yaml", "result.json", "config.yaml")}  # fmt: skip
        refused = subprocess.run([*resume, "trainer.max_epochs=3"], cwd=ROOT, env=cli_env(disk),
                                 capture_output=True, text=True)  # fmt: skip
        assert refused.returncode == 2
        (line,) = refused.stderr.strip().splitlines()
        assert line.startswith(f"cnnlab: error: paths.output_dir: {run_dir} has ")
        assert "this run needs about 43 MB (2 checkpoints of 13.7 MB and logs)" in line
        assert {name: (run_dir / name).read_bytes() for name in kept} == kept
