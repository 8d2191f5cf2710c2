"""``data=folder`` through the real CLI on real MNIST digits written as PNG class folders: a run
resumes from its last checkpoint, sweeps and k-fold work, a changed file is decoded again,
``predict`` on a colour folder's files agrees with the model's test set, and each kind of bad
folder is one line (an error that stops the run, or a warning and the run goes on)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cnnlab.data.mnist import MNIST
from tests.helpers import cli_env, leaderboard, result_of, sweep_dir_of
from tests.image_folders import write_folder

SMALL = ["data=folder", "trainer.max_epochs=1", "trainer.limit_train_batches=2",
         "trainer.enable_model_summary=false", "print_config=false"]  # fmt: skip


def run(module: str, tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    """``python -m <module> overrides...`` as a user runs it, outputs and cache under tmp_path."""
    command = [sys.executable, "-m", module, *overrides]
    env = cli_env(tmp_path / "out", CNNLAB_DATA_DIR=str(tmp_path / "cache"))
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def train(tmp_path: Path, root: Path, *overrides: str) -> subprocess.CompletedProcess:
    return run("cnnlab.train", tmp_path, *SMALL, f"data.root={root}", *overrides)


@pytest.fixture
def digits(tmp_path, mnist_dir) -> Path:
    """300 real MNIST test digits as PNG files, 30 per class folder."""
    write_folder(tmp_path / "digits", MNIST(), 30)
    return tmp_path / "digits"


def test_a_folder_run_resumes_from_its_last_checkpoint(tmp_path, digits):
    first = train(tmp_path, digits, f"hydra.run.dir={tmp_path / 'a'}")
    assert first.returncode == 0, first.stderr[-2000:]
    last = tmp_path / "a" / "checkpoints" / "last.ckpt"
    resumed = train(tmp_path, digits, f"ckpt_path={last}", "trainer.max_epochs=2",
                    f"hydra.run.dir={tmp_path / 'b'}")  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    ckpt = torch.load(tmp_path / "b" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["epoch"] == 1 and ckpt["global_step"] == 4  # epoch 0's 2 steps, then 2 more


def test_a_folder_sweeps_and_cross_validates(tmp_path, digits):
    sweep = run("cnnlab.train", tmp_path, "-m", *SMALL, f"data.root={digits}", "model.filters=8,16")
    assert sweep.returncode == 0, sweep.stderr[-2000:]
    sweep_dir = sweep_dir_of(tmp_path / "out")
    rows = leaderboard(sweep_dir)
    assert sorted("model.filters=16" in row["overrides"] for row in rows) == [False, True]
    assert all(result_of(sweep_dir / row["dir"])["status"] == "finished" for row in rows)
    fold = train(tmp_path, digits, "data.folds=3", "data.fold=1", f"hydra.run.dir={tmp_path / 'k'}")
    assert fold.returncode == 0, fold.stderr[-2000:]
    assert result_of(tmp_path / "k")["status"] == "finished"


def test_a_changed_file_is_decoded_again(tmp_path, digits):
    def data_line(name: str) -> str:
        done = train(tmp_path, digits, f"hydra.run.dir={tmp_path / name}")
        assert done.returncode == 0, done.stderr[-2000:]
        (line,) = [line for line in done.stderr.splitlines() if line.startswith("cnnlab: data:")]
        return line

    assert "decoded in" in data_line("first")
    assert "from the cache" in data_line("second")
    changed = sorted((digits / "7").glob("*.png"))[0]
    changed.write_bytes(sorted((digits / "1").glob("*.png"))[0].read_bytes())
    os.utime(changed, (changed.stat().st_atime, changed.stat().st_mtime + 10))
    assert "decoded in" in data_line("third")


def test_predict_on_a_colour_folder_agrees_with_the_test_set(tmp_path, mnist_dir):
    write_folder(tmp_path / "colour", MNIST(), 30, colour=True)
    write_folder(tmp_path / "test", MNIST(), 8, colour=True, start=5000)
    done = train(
        tmp_path,
        tmp_path / "colour",
        f"data.test_root={tmp_path / 'test'}",
        "trainer.limit_train_batches=4",
        f"hydra.run.dir={tmp_path / 'a'}",
        "trainer.precision=32-true",
    )  # fp32, predict's: so the two agree exactly
    assert done.returncode == 0, done.stderr[-2000:]
    folders = sorted(str(p) for p in (tmp_path / "test").iterdir())
    report = tmp_path / "predict.json"
    predicted = run("cnnlab.predict", tmp_path, f"ckpt_path={tmp_path / 'a'}",
                    f"images=[{','.join(folders)}]", f"json={report}")  # fmt: skip
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    result = json.loads(report.read_text())
    assert result["preparation"]["channels"] == 3 and result["preparation"]["height"] == 32
    right = [Path(p["image"]).parent.name == p["top"][0]["class"] for p in result["predictions"]]
    assert len(right) == 80
    assert sum(right) / len(right) == pytest.approx(result_of(tmp_path / "a")["test/acc"])


def single_class(root: Path) -> str:
    for extra in sorted(root.iterdir())[1:]:
        for file in extra.iterdir():
            file.unlink()
        extra.rmdir()
    return "images of 1 class (0); a classifier needs two or more"


def root_is_a_file(root: Path) -> str:
    for file in sorted(root.rglob("*.png")):
        file.unlink()
    for folder in sorted(root.iterdir()):
        folder.rmdir()
    root.rmdir()
    root.write_text("not a folder\n")
    return "a file, not a folder of class folders"


def empty_class(root: Path) -> str:
    (root / "empty").mkdir()
    return "empty: class folder holds no images"


def symlink_loop(root: Path) -> str:
    (root / "3" / "loop").symlink_to(root / "3")
    return "a symlink loop"


def case_twins(root: Path) -> str:
    (root / "3").rename(root / "a")
    (root / "4").rename(root / "A")
    return "class folders A, a differ only in case"


def unknown_test_class(root: Path) -> str:
    (root.parent / "test" / "cat").mkdir()
    return "classes cat are not in data.root"


BAD = {  # each makes the folder bad and returns what its one line says; the exit code
    "empty class folder": (empty_class, 0),
    "single class": (single_class, 2),
    "root is a file": (root_is_a_file, 2),
    "symlink loop": (symlink_loop, 0),
    "case twins": (case_twins, 0),
    "test class not in root": (unknown_test_class, 0),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_folders_are_one_line_each(tmp_path, mnist_dir, case):
    write_folder(tmp_path / "digits", MNIST(), 6)
    write_folder(tmp_path / "test", MNIST(), 2, start=5000)
    make_bad, code = BAD[case]
    said = make_bad(tmp_path / "digits")
    done = train(tmp_path, tmp_path / "digits", f"data.test_root={tmp_path / 'test'}",
                 f"hydra.run.dir={tmp_path / 'a'}")  # fmt: skip
    assert done.returncode == code, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if said in line]
    assert len(lines) == 1, done.stderr[-2000:]
    assert lines[0].startswith("cnnlab: error:" if code else "cnnlab: warning:")
    if code:
        assert done.stderr.strip() == lines[0]
    else:
        assert result_of(tmp_path / "a")["status"] == "finished"
