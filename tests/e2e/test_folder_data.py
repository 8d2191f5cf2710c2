"""``data=folder``: real MNIST digits written as PNG class folders, with the odd files a learner's
folder holds, train through the real CLI; the second run reads the decoded cache; bad roots are
one line."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from torchvision.datasets import ImageFolder

from cnnlab.data.mnist import MNIST
from cnnlab.data.scan import scan
from tests.helpers import cli_env
from tests.image_folders import add_odd_files, write_folder

RUN = ["data=folder", "trainer.max_epochs=1", "trainer.limit_train_batches=2", "print_config=false"]


def train(tmp_path, *overrides):
    command = [sys.executable, "-m", "cnnlab.train", *RUN, *overrides]
    env = cli_env(tmp_path / "out")
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def test_scan_keeps_imagefolders_order_and_leaves_odd_files_out(tmp_path, mnist_dir, capsys):
    write_folder(tmp_path / "digits", MNIST(), 3)
    clean = [path for path, _ in ImageFolder(str(tmp_path / "digits")).samples]
    odd = add_odd_files(tmp_path / "digits")
    train, _ = scan(str(tmp_path / "digits"), None, str(tmp_path / "cache"))
    kept = [str(p) for p in train.paths if "digits/0/0" in str(p) or "/0/" not in str(p)]
    assert kept == clean
    assert str(odd["text"]) in capsys.readouterr().err


def test_a_folder_trains_then_trains_from_its_cache(tmp_path, mnist_dir):
    write_folder(tmp_path / "digits", MNIST(), 12)
    add_odd_files(tmp_path / "digits")
    cache = f"paths.data_dir={tmp_path / 'cache'}"
    first = train(
        tmp_path, f"data.root={tmp_path / 'digits'}", cache, f"hydra.run.dir={tmp_path / 'a'}"
    )
    assert first.returncode == 0, first.stderr[-2000:]
    assert "notes.txt: not an image file" in first.stderr
    assert "truncated.png: unreadable image" in first.stderr
    assert "images in memory" in first.stderr and "decoded in" in first.stderr
    result = json.loads((tmp_path / "a" / "result.json").read_text())
    assert result["status"] == "finished" and result["skipped_images"] == 1
    second = train(  # one image a batch: the truncated file's batch holds no image
        tmp_path,
        f"data.root={tmp_path / 'digits'}",
        cache,
        f"hydra.run.dir={tmp_path / 'b'}",
        "data.in_memory=false",
        "data.batch_size=1",
        "data.eval_batch_size=1",
        "trainer.limit_train_batches=null",
    )
    assert second.returncode == 0, second.stderr[-2000:]
    assert "streamed by 2 workers (data.in_memory=false)" in second.stderr
    assert second.stderr.count("truncated.png: unreadable image") == 1  # once, every epoch/pass
    assert json.loads((tmp_path / "b" / "result.json").read_text())["skipped_images"] == 1


def test_a_missing_root_is_one_line(tmp_path):
    done = train(tmp_path, f"data.root={tmp_path / 'nowhere'}")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("cnnlab: error:")
    assert "no such folder" in done.stderr


def test_evaluate_tests_a_trained_model_on_another_folder(tmp_path, mnist_dir):
    write_folder(tmp_path / "digits", MNIST(), 12)
    write_folder(tmp_path / "new", MNIST(), 5, start=5000)
    for folder in (tmp_path / "new").iterdir():  # two of the ten classes: labels are the ckpt's
        if folder.name not in ("3", "7"):
            shutil.rmtree(folder)
    (tmp_path / "new" / "3" / "notes.txt").write_text("not an image\n")
    cache, run_dir = f"paths.data_dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / 'a'}"
    fp32 = "trainer.precision=32-true"  # predict's: so evaluate and predict agree exactly
    done = train(tmp_path, f"data.root={tmp_path / 'digits'}", run_dir, cache, fp32)
    assert done.returncode == 0, done.stderr[-2000:]
    report = tmp_path / "eval.json"
    env = cli_env(tmp_path / "out")
    evaluate = [sys.executable, "-m", "cnnlab.evaluate", f"ckpt_path={tmp_path / 'a'}", cache]
    new = subprocess.run([*evaluate, f"data.test_root={tmp_path / 'new'}", f"json={report}"],
                         env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert new.returncode == 0, new.stderr[-2000:]
    assert f"{tmp_path / 'new' / '3' / 'notes.txt'}: not an image file" in new.stderr
    files = [f"images=[{tmp_path / 'new' / '3'},{tmp_path / 'new' / '7'}]"]
    predict = [sys.executable, "-m", "cnnlab.predict", f"ckpt_path={tmp_path / 'a'}", *files]
    predicted = subprocess.run([*predict, f"json={tmp_path / 'p.json'}"],
                               env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    tops = json.loads((tmp_path / "p.json").read_text())["predictions"]
    right = [Path(p["image"]).parent.name == p["top"][0]["class"] for p in tops]
    assert predicted.returncode == 0 and len(right) == 10, predicted.stderr[-2000:]
    assert json.loads(report.read_text())["test/acc"] == pytest.approx(sum(right) / 10)
    (tmp_path / "other" / "3").mkdir(parents=True)
    (tmp_path / "other" / "cat").mkdir()
    unknown = subprocess.run([*evaluate, f"data.test_root={tmp_path / 'other'}"],
                             env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert unknown.returncode == 2
    assert unknown.stderr.strip().splitlines() == [unknown.stderr.strip()]
    assert unknown.stderr.startswith("cnnlab: error: data.test_root=") and "cat" in unknown.stderr
