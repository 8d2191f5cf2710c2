"""A user's network and its mistakes: each mistake is one line, exit 2, before the run claims
its directory, which then takes the corrected command; lazy networks train; a network whose
output is not finite fails its run with one line that blames the network."""

import textwrap

import pytest
from PIL import Image

from tests.helpers import cli, result_of

NETS = """
import torch
from torch import nn


class Tiny(nn.Module):
    def __init__(self, channels: int = 1, classes: int = 10) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, 4, 5, stride=2)
        self.head = nn.Linear(4 * 12 * 12, classes)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).flatten(1))


class NotAModule:
    pass


class NoParams(nn.Module):
    def forward(self, x):
        return x.flatten(1)[:, :10]


class EvalNaN(Tiny):
    # finite while training, NaN in eval mode (as a broken dropout or batch norm can be)

    def forward(self, x):
        out = super().forward(x)
        return out if self.training else out * float("nan")


class NaNOut(Tiny):
    def forward(self, x):
        return super().forward(x) * float("nan")


class Lazy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.head = nn.LazyConv2d(4, 5, stride=2), nn.LazyLinear(10)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).flatten(1))
"""
QUICK = ["trainer.max_epochs=1", "trainer.limit_train_batches=3", "trainer.limit_val_batches=2",
         "trainer.limit_test_batches=2", "print_config=false",
         "callbacks.figures=null"]  # fmt: skip
MISTAKES = {
    "model._target_=mynets.Tinyy": "model._target_=mynets.Tinyy: mynets has no Tinyy",
    "model._target_=nomod.Tiny": "model._target_=nomod.Tiny: no module named nomod ",
    "model._target_=mynets.NotAModule": "builds a NotAModule, not a torch.nn.Module",
    "model._target_=mynets.NoParams": "the network has no trainable parameters",
    "model._target_=mynets.Tiny +model.classes=5": "model.classes=5: the network returns (2, 5)",
    "model._target_=mynets.Tiny +model.channels=3": "model.channels=3: the network's first conv",
}


@pytest.fixture
def env(tmp_path):
    (tmp_path / "code" / "mynets").mkdir(parents=True)
    (tmp_path / "code" / "mynets" / "__init__.py").write_text(textwrap.dedent(NETS))
    return {"PYTHONPATH": str(tmp_path / "code")}


def test_each_mistake_is_one_line_and_the_directory_then_trains_a_lazy_network(
    mnist_dir, tmp_path, env
):
    run_dir = tmp_path / "run"
    for override, said in [*MISTAKES.items(), ("", "model._target_ is required")]:
        done = cli("cnnlab.train", "model=custom", *override.split(), *QUICK,
                   f"hydra.run.dir={run_dir}", output_dir=tmp_path, **env)  # fmt: skip
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1, done.stderr[-2000:]
        assert lines[0].startswith("cnnlab: error: ") and said in lines[0], lines[0]
    lazy = cli("cnnlab.train", "model=custom", "model._target_=mynets.Lazy", *QUICK,
               f"hydra.run.dir={run_dir}", output_dir=tmp_path, **env)  # fmt: skip
    assert lazy.returncode == 0, lazy.stderr[-2000:]
    assert result_of(run_dir)["status"] == "finished"


@pytest.mark.parametrize(
    ("net", "said"),
    [
        ("EvalNaN", "the val loss is nan: model._target_=mynets.EvalNaN's output in eval mode"),
        ("NaNOut", "the first training step's loss is NaN or infinite, before any update: "
                   "model._target_=mynets.NaNOut's output is not finite"),
    ],
)  # fmt: skip
def test_a_network_whose_output_is_not_finite_fails_its_run_naming_it(
    mnist_dir, tmp_path, env, net, said
):
    run_dir = tmp_path / "run"
    done = cli("cnnlab.train", "model=custom", f"model._target_=mynets.{net}", *QUICK,
               f"hydra.run.dir={run_dir}", output_dir=tmp_path, **env)  # fmt: skip
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1, done.stderr[-2000:]
    assert lines[-1].startswith(f"cnnlab: error: {said}"), lines[-1]
    assert result_of(run_dir)["status"] == "failed"
    assert "lr" not in lines[-1]


def test_a_run_whose_module_is_gone_is_one_line_in_evaluate_predict_and_resume(
    mnist_dir, tmp_path, env
):
    sweep_dir = tmp_path / "sweep"
    sweep = ["-m", "model=custom", "model._target_=mynets.Tiny", "+model.classes=10", *QUICK]
    done = cli("cnnlab.train", *sweep, f"hydra.sweep.dir={sweep_dir}", output_dir=tmp_path, **env)
    assert done.returncode == 0, done.stderr[-2000:]
    (trial,) = [d for d in sweep_dir.iterdir() if (d / "result.json").is_file()]
    digit = tmp_path / "digit.png"
    Image.new("L", (28, 28)).save(digit)
    for command in (
        ["cnnlab.evaluate", f"ckpt_path='{trial}'"],  # quoted: a trial's name holds = and ,
        ["cnnlab.predict", f"ckpt_path='{trial}'", f"images={digit}"],
        ["cnnlab.train", *sweep, f"resume={sweep_dir}"],
    ):  # without PYTHONPATH: the user's module cannot be imported
        gone = cli(*command, output_dir=tmp_path)
        lines = gone.stderr.strip().splitlines()
        assert gone.returncode == 2 and len(lines) == 1, gone.stderr[-2000:]
        assert lines[0].startswith("cnnlab: error: ") and "no module named mynets " in lines[0]


def test_a_sweep_checks_every_trials_network_before_any_trains(mnist_dir, tmp_path, env):
    sweep = ["-m", "model=custom", "model._target_=mynets.Tiny", "+model.classes=10,5", *QUICK]
    done = cli("cnnlab.train", *sweep, f"hydra.sweep.dir={tmp_path / 's'}", output_dir=tmp_path,
               **env)  # fmt: skip
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr[-2000:]
    assert "model.classes=5: the network returns (2, 5)" in lines[0], lines[0]
    assert not (tmp_path / "s").exists()  # trial 0 (10 classes, good) never trained
