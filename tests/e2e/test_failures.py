"""Runs that go wrong say so: divergence, foreign or broken checkpoints, bad resume targets.

Every case goes through the real CLI and checks the one line, the exit code, and that the
files the user already had are untouched.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
import torch

from tests.helpers import NO_FIGURES, ROOT, cli, read_only_copy, result_of, run_dirs, train_run
from tests.hostile import Exploit, one_error

FAST = ["debug=fast", "print_config=false", NO_FIGURES]
OLD_CHECKPOINT = ROOT / "tests" / "data" / "cnnlab-0.1-layout.ckpt"  # cnnlab 0.1's: no config


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def narrow_run(mnist_dir, tmp_path_factory) -> Path:
    """A real run of another architecture: 16 first-layer filters instead of 32."""
    return train_run(tmp_path_factory.mktemp("narrow"), *FAST, "model.filters=16")[0]


def test_nan_loss_fails_the_run_with_the_reason(mnist_dir, tmp_path):
    done = cli("cnnlab.train", *FAST, "optimizer.lr=1e10", output_dir=tmp_path)
    assert done.returncode == 1
    line = one_error(done.stderr)
    assert "training diverged: the training loss became NaN or infinite" in line
    assert "optimizer.lr=10000000000.0 is likely too high" in line
    (run_dir,) = run_dirs(tmp_path)
    result = result_of(run_dir)
    assert result["status"] == "failed" and result["exit_code"] == 1
    assert result["error"] in line and "test/acc" not in result
    assert not list(run_dir.glob("checkpoints/*.ckpt"))  # no NaN weights saved as "best"


def test_resuming_another_architecture_names_the_file_and_the_layers(narrow_run, tmp_path):
    ckpt = narrow_run / "checkpoints" / "last.ckpt"
    before = digest(ckpt)
    done = cli("cnnlab.train", *FAST, f"ckpt_path={ckpt}", output_dir=tmp_path)
    assert done.returncode == 2
    line = one_error(done.stderr)
    assert f"cnnlab: error: {ckpt}: checkpoint of another architecture: " in line
    assert "net.features.conv1.weight (16, 1, 3, 3) vs (32, 1, 3, 3) here" in line
    assert digest(ckpt) == before


def test_evaluating_weights_that_contradict_their_config_names_the_layers(narrow_run, tmp_path):
    ckpt = torch.load(narrow_run / "checkpoints" / "last.ckpt", weights_only=True)
    ckpt["config"]["model"]["dense_units"] = 64
    forged = tmp_path / "forged.ckpt"
    torch.save(ckpt, forged)
    done = cli("cnnlab.evaluate", f"ckpt_path={forged}", output_dir=tmp_path)
    assert done.returncode == 2
    line = one_error(done.stderr)
    assert f"{forged}: checkpoint of another architecture" in line
    assert "net.classifier.dense1.weight (128, 4608) vs (64, 4608) here" in line


@pytest.mark.parametrize("module", ["cnnlab.evaluate", "cnnlab.train"])
def test_missing_checkpoint_is_one_line(module, tmp_path):
    missing = tmp_path / "nope.ckpt"
    overrides = FAST if module == "cnnlab.train" else []
    done = cli(module, *overrides, f"ckpt_path={missing}", output_dir=tmp_path)
    assert done.returncode == 2
    assert one_error(done.stderr) == (
        f"cnnlab: error: ckpt_path={missing}: no such file or run directory"
    )


def broken(kind: str, good: Path, dest: Path) -> tuple[Path, str]:
    """A checkpoint-looking file that is not one, and the reason cnnlab should give."""
    path = dest / f"{kind}.ckpt"
    if kind == "truncated":
        path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
        return path, "not a checkpoint (no zip index: truncated, or not torch's)"
    if kind == "flipped":  # the zip index is intact; one byte of the weights is not
        data = bytearray(good.read_bytes())
        data[len(data) * 6 // 10] ^= 0xFF
        path.write_bytes(bytes(data))
        return path, "corrupted checkpoint ("
    if kind == "text":
        path.write_text("val/acc: 0.99\n")
        return path, "not a checkpoint (no zip index: truncated, or not torch's)"
    torch.save({"weights": torch.zeros(3)}, path)
    return path, "not a Lightning checkpoint (it holds no state_dict)"


@pytest.mark.parametrize("kind", ["truncated", "flipped", "text", "no_state_dict"])
def test_broken_checkpoints_are_one_line_naming_the_file(narrow_run, tmp_path, kind):
    path, reason = broken(kind, narrow_run / "checkpoints" / "last.ckpt", tmp_path)
    done = cli("cnnlab.evaluate", f"ckpt_path={path}", output_dir=tmp_path)
    assert done.returncode == 2
    assert one_error(done.stderr).startswith(f"cnnlab: error: {path}: {reason}")


@pytest.mark.parametrize("command", ["cnnlab.evaluate", "cnnlab.predict", "cnnlab.train"])
def test_a_checkpoint_of_an_earlier_cnnlab_is_one_line(tmp_path, command):
    """A checkpoint without the config it was trained with (cnnlab 0.1 wrote its knobs as
    hyperparameters): evaluating, predicting or resuming from it says so, and nothing else."""
    before = digest(OLD_CHECKPOINT)
    extra = {"cnnlab.predict": [f"images=[{OLD_CHECKPOINT}]"], "cnnlab.train": FAST}
    done = cli(command, f"ckpt_path={OLD_CHECKPOINT}", *extra.get(command, []),
               output_dir=tmp_path, CNNLAB_DATA_DIR=str(tmp_path / "d"))  # fmt: skip
    assert done.returncode == 2
    assert one_error(done.stderr) == (
        f"cnnlab: error: {OLD_CHECKPOINT}: holds no config: written by an earlier cnnlab "
        "(before 2026-12-05) or not by cnnlab; train it again with this one"
    )
    assert done.stdout == "" and len(done.stderr.strip().splitlines()) == 1  # nothing else
    assert digest(OLD_CHECKPOINT) == before and not (tmp_path / "d").exists()


def test_checkpoint_with_pickled_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": Exploit(marker)}, evil)
    done = cli("cnnlab.evaluate", f"ckpt_path={evil}", output_dir=tmp_path)
    assert done.returncode == 2
    line = one_error(done.stderr)
    assert re.search(rf"{re.escape(str(evil))}: not a readable checkpoint \(.*[Ww]eights", line)
    assert not marker.exists()


def test_resume_with_a_truncated_last_checkpoint_is_one_line(narrow_run, tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / ".hydra").mkdir()
    for name in (".hydra/overrides.yaml", "config.yaml"):
        (run_dir / name).write_bytes((narrow_run / name).read_bytes())
    last, _ = broken("truncated", narrow_run / "checkpoints" / "last.ckpt", tmp_path)
    last.replace(run_dir / "checkpoints" / "last.ckpt")
    done = cli("cnnlab.train", f"resume={run_dir}", output_dir=tmp_path)
    assert done.returncode == 2
    assert one_error(done.stderr).startswith(
        f"cnnlab: error: {run_dir / 'checkpoints' / 'last.ckpt'}: not a checkpoint (no zip index"
    )


def test_read_only_places_are_one_line_naming_them(narrow_run, tmp_path):
    with read_only_copy(narrow_run, tmp_path) as run_dir:
        done = cli("cnnlab.train", f"resume={run_dir}", output_dir=tmp_path)
        assert done.returncode == 2
        assert done.stderr.strip() == (
            f"cnnlab: error: hydra.run.dir={run_dir}: read-only; a run (or a resume) writes "
            "there: copy the run somewhere writable first"
        )
        out = run_dir / "eval.json"
        done = cli("cnnlab.evaluate", f"ckpt_path={run_dir}", f"json={out}", output_dir=tmp_path)
        assert done.returncode == 1
        assert done.stderr.strip().splitlines()[-1] == (
            f"cnnlab: error: {out}: cannot write (Read-only file system)"
        )
        assert "Test accuracy:" in done.stdout  # computed and printed all the same


def test_a_name_with_a_slash_makes_one_directory_level(mnist_dir, tmp_path):
    run_dir, _ = train_run(tmp_path, *FAST, "name=a/b", "test=false", "callbacks.figures=null")
    assert run_dir.parent == tmp_path / "runs" and run_dir.name.endswith("_a_b")
