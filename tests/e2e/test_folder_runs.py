"""``data=folder`` through the real CLI on real MNIST digits written as PNG class folders: a run
stopped by SIGINT resumes to its end, sweeps and k-fold work, a changed file is decoded again,
``predict`` on a colour Fashion-MNIST folder's files agrees with the model's test set, and each
kind of bad folder is one line (an error that stops the run, or a warning and the run goes on)."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from cnnlab.data.fashion_mnist import FashionMNIST
from cnnlab.data.mnist import MNIST
from tests.helpers import (
    ROOT,
    cli,
    cli_env,
    leaderboard,
    result_of,
    run_dirs,
    signal_after_first_epoch,
    sweep_dir_of,
)
from tests.image_folders import write_folder

FASHION_NAMES = OmegaConf.load(ROOT / "conf" / "data" / "fashion_mnist.yaml").class_names
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


def test_a_folder_run_stopped_by_sigint_resumes_to_its_end(tmp_path, digits):
    """A real SIGINT once epoch 0 is saved (10 epochs of 7 batches: it lands while training),
    then ``resume=``: the same run ends with every step of every epoch, none twice."""
    folder = ["data=folder", f"data.root={digits}", f"paths.data_dir={tmp_path / 'cache'}",
              "data.batch_size=32", "trainer.max_epochs=10"]  # fmt: skip
    code, stderr, run_dir = signal_after_first_epoch(tmp_path, signal.SIGINT, *folder)
    assert code == 130 and "Traceback" not in stderr, stderr[-2000:]
    assert result_of(run_dir)["status"] == "interrupted"
    resumed = cli("cnnlab.train", f"resume={run_dir}", output_dir=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "from the cache" in resumed.stderr  # the folder as it was, not decoded again
    assert run_dirs(tmp_path) == [run_dir] and result_of(run_dir)["status"] == "finished"
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 9 and last["global_step"] == 70  # 216 training images / 32


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


def test_predict_on_a_colour_fashion_folder_agrees_with_the_test_set(tmp_path, mnist_dir):
    """Fashion-MNIST (the issue's case: predict once prepared every file as a digit) in
    tinted colour at 32x32: one run checks both kinds of folder."""
    FashionMNIST().prepare(mnist_dir)  # offline: from Debian's archive, once
    names = [name.replace("/", "-") for name in FASHION_NAMES]  # T-shirt/top: one folder
    write_folder(tmp_path / "colour", FashionMNIST(), 30, names, colour=True)
    write_folder(tmp_path / "test", FashionMNIST(), 8, names, colour=True, start=5000)
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
