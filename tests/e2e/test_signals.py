"""Signals at any phase of a run, through the real CLI: a non-zero exit, one line saying what
is kept and how to go on, and a result.json that says "interrupted"."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.helpers import NO_FIGURES, ROOT, cli_env, result_of, run_dirs


def signal_when_printed(output_dir: Path, marker: str, signals: list[int], *overrides: str):
    """Run ``cnnlab.train`` and send ``signals`` (0.1 s apart) once ``marker`` is printed: its
    exit code, its whole output, its run directory."""
    cmd = [sys.executable, "-m", "cnnlab.train", *overrides]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=cli_env(output_dir), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)  # fmt: skip
    seen = bytearray()

    def read() -> None:
        while chunk := proc.stdout.read1():
            seen.extend(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    deadline = time.monotonic() + 300
    while marker.encode() not in seen:
        assert proc.poll() is None, seen.decode()[-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.02)
    for signum in signals:
        proc.send_signal(signum)
        time.sleep(0.1)
    proc.wait(timeout=300)
    reader.join()
    (run_dir,) = run_dirs(output_dir)
    return proc.returncode, seen.decode(), run_dir


# One epoch of 20 batches, then validation and testing one image at a time: slow phases to
# send a signal in.
SLOW_EVAL = ["trainer.max_epochs=1", "trainer.limit_train_batches=20", "print_config=false",
             "data.eval_batch_size=1"]  # fmt: skip


@pytest.mark.parametrize(("phase", "marker", "extra"), [
    ("sanity check", "Sanity Checking", ["trainer.num_sanity_val_steps=-1", NO_FIGURES]),
    ("testing", "Testing DataLoader", ["trainer.limit_val_batches=2", NO_FIGURES]),
    # the last test batch: then the figures are drawn (64 feature maps a layer: seconds)
    ("figures", "Testing DataLoader 0: 100%", ["trainer.limit_val_batches=2",
     "trainer.limit_test_batches=40", "callbacks.figures.channels=64"]),
])  # fmt: skip
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_outside_training_is_recorded_with_a_non_zero_exit(
    mnist_dir, tmp_path, phase, marker, extra, signum
):
    code, output, run_dir = signal_when_printed(tmp_path, marker, [signum], *SLOW_EVAL, *extra)
    assert code == 128 + signum, output[-2000:]
    (line,) = re.findall(r"(?m)^cnnlab: [^\r\n]*", output)  # on a line of its own
    name = signal.Signals(signum).name
    result = result_of(run_dir)
    assert result["status"] == "interrupted" and result["exit_code"] == 128 + signum
    if phase == "sanity check":  # nothing trained yet: nothing to resume
        assert line == f"cnnlab: interrupted: stopped by {name}; no epoch had finished, so " \
            "nothing was saved; run the command again"  # fmt: skip
    else:  # training finished: its last epoch is kept, and resuming goes on to the test
        last = run_dir / "checkpoints" / "last.ckpt"
        assert line == f"cnnlab: interrupted: stopped by {name}; {last} (the last finished " \
            f"epoch) is kept. Resume with: python -m cnnlab.train resume={run_dir}"  # fmt: skip
    assert "Traceback" not in output and "Received SIGTERM" not in output  # nothing but the line


def test_ctrl_c_twice_during_training_still_records_the_run(mnist_dir, tmp_path):
    """The second Ctrl-C lands inside a step (4096 images: most of a second) almost always;
    Lightning then exits(1) after a KeyboardInterrupt. Either way the run is recorded."""
    slow_steps = ["trainer.max_epochs=2", "trainer.limit_train_batches=6", "data.batch_size=4096",
                  "trainer.limit_val_batches=1", "print_config=false"]  # fmt: skip
    code, output, run_dir = signal_when_printed(
        tmp_path, "Epoch 1", [signal.SIGINT, signal.SIGINT], *slow_steps
    )
    assert code == 130, output[-2000:]
    result = result_of(run_dir)
    assert result["status"] == "interrupted" and result["exit_code"] == 130
    (line,) = re.findall(r"cnnlab: [^\r\n]*", output)  # a progress bar may precede it
    assert line.startswith("cnnlab: interrupted: stopped by SIGINT; ")
    assert f"Resume with: python -m cnnlab.train resume={run_dir}" in line
