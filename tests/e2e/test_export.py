"""``cnnlab.export`` through the real CLI: each shipped network, a user's own and a Fashion-MNIST
model exported from a tiny real training and read back with onnx and onnxruntime; the served
path with torch made unimportable; predict from the file; every bad input one line, no file."""

import json
import os
import re
import subprocess
import sys
import textwrap
from importlib.metadata import version
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from cnnlab.callbacks.config_in_checkpoints import CONFIG_KEY
from cnnlab.data.fashion_mnist import FashionMNIST
from cnnlab.data.mnist import MNIST
from cnnlab.data.preparation import Preparation
from cnnlab.runs.checkpoints import load_model
from tests.helpers import DATA_DIR, ROOT, cli, result_of, train_run

USER_NET = '''
import torch
from torch import nn


class TinyNet(nn.Module):
    """A user's network for 28x28 images: one strided conv, a linear layer."""

    def __init__(self, channels: int, classes: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, 8, 5, stride=2)  # 28x28 -> 12x12
        self.head = nn.Linear(8 * 12 * 12, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(x)).flatten(1))


class Branchy(TinyNet):
    """TinyNet that takes a Python branch on its input's values: torch.export cannot trace it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x if x.mean() > 0.5 else 1 - x)


class Noisy(TinyNet):
    """TinyNet with noise at inference: its exported file cannot answer as the checkpoint does."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x + 0.1 * torch.randn_like(x))
'''
TINY = ["trainer.max_epochs=1", "trainer.limit_train_batches=30", "trainer.limit_val_batches=2",
        "trainer.limit_test_batches=5", "callbacks.figures=null", "print_config=false"]  # fmt: skip
NETWORKS = {
    "keras_cnn": [],
    "torch_mnist": ["model=torch_mnist"],
    "mlp": ["model=mlp"],
    "user": ["model=custom", "model._target_=mynets.TinyNet", "+model.channels=1",
             "+model.classes=10"],
    "fashion": ["data=fashion_mnist", "model.filters=8"],
}  # fmt: skip


@pytest.fixture(scope="module")
def user_env(tmp_path_factory):
    """The user's package, on PYTHONPATH for the CLI and on sys.path here."""
    code = tmp_path_factory.mktemp("code")
    (code / "mynets").mkdir()
    (code / "mynets" / "__init__.py").write_text(textwrap.dedent(USER_NET))
    sys.path.insert(0, str(code))
    yield {"PYTHONPATH": os.pathsep.join([str(code), os.environ.get("PYTHONPATH", str(ROOT))])}
    sys.path.remove(str(code))


@pytest.fixture(scope="module")
def trained(mnist_dir, tmp_path_factory, user_env):
    """``trained(name)``: a tiny real training of that network (30 batches), once per module."""
    runs = {}

    def get(name: str):
        if name not in runs:
            out = tmp_path_factory.mktemp(name)
            runs[name] = train_run(out, *NETWORKS[name], *TINY, env=user_env)[0]
        return runs[name]

    return get


@pytest.fixture(scope="module")
def exported(trained, user_env):
    """``exported(name)``: that run exported by the CLI's defaults; the run dir and the process."""
    done = {}

    def get(name: str):
        if name not in done:
            run_dir = trained(name)
            done[name] = run_dir, export(f"ckpt_path={run_dir}", env=user_env)
        return done[name]

    return get


def export(*overrides: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return cli("cnnlab.export", *overrides, output_dir=DATA_DIR / "unused", **(env or {}))


def first_test_images(run_dir, count: int) -> torch.Tensor:
    """The first test images of the run's dataset as the DataModule gives them (/255)."""
    fashion = OmegaConf.load(run_dir / "config.yaml").data.images._target_.endswith("FashionMNIST")
    images, _ = (FashionMNIST() if fashion else MNIST()).load(DATA_DIR, train=False)
    return images[:count].float() / 255


@pytest.mark.parametrize("name", list(NETWORKS))
def test_each_network_exports_a_file_that_answers_as_its_checkpoint(name, exported):
    run_dir, done = exported(name)
    assert done.returncode == 0, done.stderr[-3000:]
    path = run_dir / "export" / "model.onnx"
    assert done.stdout.count("\n") == 1 and done.stdout.startswith(
        f"Exported {path}: top class agrees with the checkpoint on 1000/1000 test images"
    )
    record = json.loads((run_dir / "export" / "export.json").read_text())["model.onnx"]
    assert record["check"]["images"] == record["check"]["top_class_agrees"] == 1000
    assert record["check"]["max_abs_prob_diff"] <= 1e-5
    assert all(record["latency"][f"batch_{n}"]["exported_ms"] > 0 for n in (1, 128))
    model = onnx.load(path)
    onnx.checker.check_model(model)
    meta = {p.key: p.value for p in model.metadata_props}
    config = OmegaConf.to_container(OmegaConf.load(run_dir / "config.yaml"), resolve=True)
    assert json.loads(meta["class_names"]) == config["data"]["class_names"]
    assert json.loads(meta["input_shape"]) == ["N", 1, 28, 28]
    preparation = json.loads(meta["preparation"])
    assert preparation == Preparation.of_data(config["data"]).as_dict()
    assert preparation["recipe"] == ("resize" if name == "fashion" else "digit")
    assert json.loads(meta["test_acc"]) == result_of(run_dir)["test/acc"]
    assert meta["cnnlab_version"] == version("cnnlab")
    (graph_input,) = model.graph.input
    dims = graph_input.type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [1, 28, 28]
    kinds = {t.data_type for t in model.graph.initializer} - {onnx.TensorProto.INT64}  # shapes
    assert kinds == {onnx.TensorProto.FLOAT}  # the weights
    images = first_test_images(run_dir, 37)  # a batch size the export never saw
    with torch.no_grad():
        eager = load_model(run_dir)[0](images).softmax(dim=1).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (probs,) = session.run(["probabilities"], {"images": images.numpy()})
    assert probs.shape == (37, 10) and np.abs(probs - eager).max() <= 1e-5
    assert (probs.argmax(axis=1) == eager.argmax(axis=1)).all()


def test_pt2_is_a_torch_export_program_with_the_same_answers(exported):
    run_dir, _ = exported("keras_cnn")  # the ONNX file first: export.json keeps both records
    done = export(f"ckpt_path={run_dir}", "format=pt2")
    assert done.returncode == 0, done.stderr[-3000:]
    extra = {"metadata.json": ""}
    program = torch.export.load(run_dir / "export" / "model.pt2", extra_files=extra)
    assert json.loads(json.loads(extra["metadata.json"])["class_names"])[7] == "Seven"
    images = first_test_images(run_dir, 5)
    with torch.no_grad():
        eager = load_model(run_dir)[0](images).softmax(dim=1)
        assert torch.allclose(program.module()(images), eager, atol=1e-5, rtol=0)
    records = json.loads((run_dir / "export" / "export.json").read_text())
    assert set(records) == {"model.onnx", "model.pt2"}
    assert records["model.pt2"]["latency"]["runtime"] == "torch.export"


def save_digits(folder, count: int) -> dict[str, int]:
    """The first ``count`` MNIST test digits as PNG files, exactly their bytes; name -> label."""
    images, labels = MNIST().load(DATA_DIR, train=False)
    folder.mkdir()
    for n in range(count):
        Image.fromarray(images[n, 0].numpy()).save(folder / f"{n:04d}.png")
    return {f"{n:04d}.png": int(labels[n]) for n in range(count)}


def test_the_docs_script_serves_real_digits_with_torch_unimportable(exported, tmp_path):
    script = (ROOT / "examples" / "serve_onnx.py").read_text()
    docs = (ROOT / "docs" / "export.md").read_text()
    assert script in re.findall(r"```python\n(.*?)```", docs, re.S), "docs/export.md quotes it"
    run_dir, _ = exported("keras_cnn")
    truth = save_digits(tmp_path / "digits", 300)
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "torch.py").write_text("raise ImportError('torch is blocked in this test')\n")
    env = {**os.environ, "PYTHONPATH": str(blocked)}
    probe = subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True)
    assert probe.returncode != 0 and b"torch is blocked" in probe.stderr
    files = [str(tmp_path / "digits" / name) for name in truth]
    served = subprocess.run([sys.executable, str(ROOT / "examples" / "serve_onnx.py"),
                             str(run_dir / "export" / "model.onnx"), *files],
                            env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert served.returncode == 0, served.stderr[-2000:]
    names = OmegaConf.load(run_dir / "config.yaml").data.class_names
    lines = served.stdout.splitlines()
    assert len(lines) == len(truth)
    right = sum(line.split(": ")[1].split()[0] == names[truth[line.split("/")[-1].split(":")[0]]]
                for line in lines)  # fmt: skip
    assert abs(right / len(truth) - result_of(run_dir)["test/acc"]) < 0.05


def test_predict_from_the_onnx_file_answers_as_from_the_checkpoint(exported, tmp_path):
    run_dir, _ = exported("keras_cnn")
    save_digits(tmp_path / "digits", 6)
    images, _ = MNIST().load(DATA_DIR, train=False)
    paper = Image.fromarray(255 - images[7, 0].numpy()).resize((90, 90)).convert("RGB")
    paper.save(tmp_path / "digits" / "paper.png")  # the digit recipe: inverted, cropped, centred
    answers = []
    for ckpt in (run_dir, run_dir / "export" / "model.onnx"):
        out = tmp_path / f"{ckpt.name}.json"
        done = cli("cnnlab.predict", f"ckpt_path={ckpt}", f"images={tmp_path / 'digits'}",
                   f"json={out}", output_dir=tmp_path)  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        answers.append(json.loads(out.read_text()))
    from_ckpt, from_onnx = answers
    assert from_onnx["preparation"] == from_ckpt["preparation"]
    assert len(from_onnx["predictions"]) == 7
    for ours, theirs in zip(from_onnx["predictions"], from_ckpt["predictions"], strict=True):
        assert [t["class"] for t in ours["top"]] == [t["class"] for t in theirs["top"]]
        assert np.allclose([t["prob"] for t in ours["top"]], [t["prob"] for t in theirs["top"]],
                           atol=1e-5, rtol=0)  # fmt: skip


def with_network(run_dir, tmp_path, target: str):
    """A copy of the run's checkpoint whose config names another class (same weights)."""
    (ckpt,) = (run_dir / "checkpoints").glob("best-*.ckpt")
    state = torch.load(ckpt, weights_only=True)
    state[CONFIG_KEY]["model"]["_target_"] = target
    path = tmp_path / f"{target.rsplit('.', 1)[1]}.ckpt"
    torch.save(state, path)
    return path


def truncated(run_dir, tmp_path):
    (ckpt,) = (run_dir / "checkpoints").glob("best-*.ckpt")
    (tmp_path / "cut.ckpt").write_bytes(ckpt.read_bytes()[:5000])
    return tmp_path / "cut.ckpt"


BAD = {  # case -> (overrides, the error line's start, exit code) from (run dir, tmp_path)
    "missing checkpoint": lambda r, t: ([f"ckpt_path={t}/none.ckpt"],
                                        f"ckpt_path={t}/none.ckpt: no such file", 2),
    "corrupt checkpoint": lambda r, t: ([f"ckpt_path={truncated(r, t)}"],
                                        f"{t}/cut.ckpt: not a checkpoint (no zip index", 2),
    "out is a folder": lambda r, t: ([f"ckpt_path={r}", f"out={t}"], f"out={t}: is a folder", 2),
    "out exists": lambda r, t: ([f"ckpt_path={r}", f"out={t}/old.onnx"],
                                f"out={t}/old.onnx: already exists; overwrite=true replaces it", 2),
    "out under a file": lambda r, t: ([f"ckpt_path={r}", f"out={t}/old.onnx/m.onnx"],
                                      f"out={t}/old.onnx/m.onnx: {t}/old.onnx is a file", 2),
    "out unwritable": lambda r, t: ([f"ckpt_path={r}", "out=/proc/cnnlab/m.onnx"],
                                    "out=/proc/cnnlab/m.onnx: cannot write in /proc", 2),
    "unknown format": lambda r, t: ([f"ckpt_path={r}", "format=tflite"],
                                    "format=tflite: must be one of onnx, pt2", 2),
    "untraceable network": lambda r, t: (
        [f"ckpt_path={with_network(r, t, 'mynets.Branchy')}"],
        "torch.export cannot trace the network Branchy: Could not guard on data-dependent", 2),
    "exported model disagrees": lambda r, t: (
        [f"ckpt_path={with_network(r, t, 'mynets.Noisy')}"],
        "the exported model disagrees with the checkpoint on the run's test images", 1),
}  # fmt: skip


def files_in(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` and its bytes (none if it does not exist)."""
    return {str(f): f.read_bytes() for f in sorted(folder.rglob("*")) if f.is_file()}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_and_leaves_no_file(case, trained, user_env, tmp_path):
    run_dir = trained("user")
    (tmp_path / "old.onnx").write_bytes(b"an earlier file")
    overrides, message, code = BAD[case](run_dir, tmp_path)
    before = files_in(run_dir / "export")  # other tests share the run: it may hold their exports
    done = export(*overrides, env=user_env)
    assert (done.returncode, done.stdout) == (code, ""), done.stderr[-2000:]
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(f"cnnlab: error: {message}")
    assert files_in(run_dir / "export") == before and not (tmp_path / "export").exists()
    assert (tmp_path / "old.onnx").read_bytes() == b"an earlier file"
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix != ".ckpt") == ["old.onnx"]


def test_overwrite_true_replaces_the_file(trained, user_env, tmp_path):
    old = tmp_path / "model.onnx"
    old.write_bytes(b"an earlier file")
    done = export(f"ckpt_path={trained('user')}", f"out={old}", "overwrite=true", env=user_env)
    assert done.returncode == 0, done.stderr[-2000:]
    onnx.checker.check_model(onnx.load(old))
    assert set(json.loads((tmp_path / "export.json").read_text())) == {"model.onnx"}
