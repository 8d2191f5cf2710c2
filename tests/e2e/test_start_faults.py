"""Start-up and bad input, through the real CLI: a signal at any moment is one line and 130/143;
a run directory left half-written, or holding a run refused at start-up, is no dead end; and
every refusal is one ``cnnlab: error:`` line with nothing before it."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time

import pytest
import torch

from tests.helpers import ROOT, TINY, cli, cli_env, result_of, train_run

FAST = ["debug=fast", "print_config=false", "callbacks.figures=null"]


@pytest.mark.parametrize("after_s", [0.3, 1.5, 3.0])
def test_a_signal_while_starting_is_one_line(tmp_path, after_s):
    """Imports, Hydra's start, the run's checks: wherever it lands, one line, exit 130, no
    traceback (a run that has begun records itself as interrupted)."""
    proc = subprocess.Popen([sys.executable, "-m", "cnnlab.train", *FAST], cwd=ROOT,
                            env=cli_env(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    time.sleep(after_s)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr + stdout
    lines = [line for line in stderr.splitlines() if line.startswith("cnnlab: ")]
    assert len(lines) == 1 and lines[0].startswith("cnnlab: interrupted: stopped by SIGINT")


def test_a_half_written_run_directory_is_no_dead_end(mnist_dir, tmp_path):
    """What a signal leaves while Hydra writes .hydra/: an empty hydra.yaml, no overrides."""
    run_dir = tmp_path / "half"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "hydra.yaml").write_text("")
    resumed = cli("cnnlab.train", f"resume={run_dir}", output_dir=tmp_path)
    assert resumed.returncode == 2
    assert resumed.stderr.strip().splitlines() == [
        f"cnnlab: error: resume={run_dir}: this run was stopped or refused before it began, so "
        f"there is nothing to resume; run its command again (hydra.run.dir={run_dir} reuses the "
        "directory)"
    ]
    again = cli("cnnlab.train", *FAST, f"hydra.run.dir={run_dir}", output_dir=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert result_of(run_dir)["status"] == "finished"


def test_a_run_refused_at_start_up_does_not_block_its_directory(mnist_dir, tmp_path):
    run_dir = tmp_path / "mine"
    refused = cli("cnnlab.train", *FAST, "model.dropout=1.5", f"hydra.run.dir={run_dir}",
                  output_dir=tmp_path)  # fmt: skip
    assert refused.returncode == 2 and result_of(run_dir)["status"] == "failed"
    fixed = cli("cnnlab.train", *FAST, f"hydra.run.dir={run_dir}", output_dir=tmp_path)
    assert fixed.returncode == 0, fixed.stderr[-2000:]
    assert result_of(run_dir)["status"] == "finished"


def only_line(done: subprocess.CompletedProcess, code: int = 2) -> str:
    """The one line a refused command prints, with nothing before it (stdout empty)."""
    assert done.returncode == code, done.stderr[-2000:]
    assert done.stdout == "", done.stdout[-2000:]
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("cnnlab: error: ")
    return line


@pytest.fixture(scope="module")
def tiny_run(mnist_dir, tmp_path_factory):
    return train_run(tmp_path_factory.mktemp("outputs"), *TINY, "callbacks.figures=null")[0]


def test_bad_checkpoints_and_data_dirs_are_one_line_before_anything(tiny_run, tmp_path):
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    line = only_line(cli("cnnlab.train", *TINY, f"ckpt_path={garbage}", output_dir=tmp_path))
    assert f"{garbage}: not a checkpoint" in line
    a_file = tmp_path / "data_file"
    a_file.write_text("")
    done = cli("cnnlab.train", *TINY, output_dir=tmp_path, CNNLAB_DATA_DIR=str(a_file))
    assert f"data directory {a_file} is a file" in only_line(done)
    ckpt = torch.load(tiny_run / "checkpoints" / "last.ckpt", weights_only=True)
    ckpt["config"] = ["not", "a", "mapping"]
    odd = tmp_path / "odd.ckpt"
    torch.save(ckpt, odd)
    for command in ("cnnlab.evaluate", "cnnlab.predict"):
        extra = [f"images=[{odd}]"] if command == "cnnlab.predict" else []
        line = only_line(cli(command, f"ckpt_path={odd}", *extra, output_dir=tmp_path))
        assert f"{odd}: holds no usable config" in line


def test_evaluating_non_finite_weights_fails_in_one_line(tiny_run, tmp_path):
    ckpt = torch.load(tiny_run / "checkpoints" / "last.ckpt", weights_only=True)
    ckpt["state_dict"]["net.classifier.output.bias"][0] = math.nan
    broken = tmp_path / "nan.ckpt"
    torch.save(ckpt, broken)
    line = only_line(cli("cnnlab.evaluate", f"ckpt_path={broken}", output_dir=tmp_path))
    assert line.endswith(f"{broken}: holds non-finite weights (net.classifier.output.bias)")


def test_malformed_result_files_are_no_traceback(tiny_run, tmp_path):
    """A result.json that is a JSON list, or half written: the leaderboard names the file, and
    resume= of the run goes on from its checkpoint."""
    sweep_dir = tmp_path / "sweep"
    for num, text in ((0, "[1, 2]"), (1, '{"status": "fini')):
        trial = sweep_dir / f"{num}_x"
        (trial / ".hydra").mkdir(parents=True)
        (trial / "result.json").write_text(text)
    done = subprocess.run([sys.executable, "-m", "cnnlab.leaderboard", str(sweep_dir)], cwd=ROOT,
                          env=cli_env(tmp_path), capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 1 and "Traceback" not in done.stderr
    rows = {row.split("|")[2].strip(): row for row in done.stdout.splitlines() if "| unfin" in row}
    assert "not a run record (a JSON list)" in rows["0"]
    assert "unreadable" in rows["1"]
    (tiny_run / "result.json").write_text("[]")
    resumed = cli("cnnlab.train", f"resume={tiny_run}", "trainer.max_epochs=2",
                  output_dir=tmp_path)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads((tiny_run / "result.json").read_text())["status"] == "finished"
