"""Any network and any dataset through config, no code change in cnnlab: a network written by the
user (its own package and config file, found through ``hydra.searchpath``, or named on the
command line) and Fashion-MNIST each train, evaluate, predict and resume through the real CLI."""

import json
import textwrap

import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from cnnlab.data.fashion_mnist import FashionMNIST
from cnnlab.data.mnist import MNIST
from tests.helpers import cli, result_of, run_dirs, train_run

USER_NET = '''
import torch
from torch import nn


class TinyNet(nn.Module):
    """A user's network for 28x28 images: one strided conv, a linear layer."""

    def __init__(self, channels: int, classes: int, width: int = 8) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, width, 5, stride=2)  # 28x28 -> 12x12
        self.head = nn.Linear(width * 12 * 12, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(x)).flatten(1))
'''
USER_CONFIG = """
_target_: mynets.TinyNet
channels: ${data.channels}
classes: ${data.num_classes}
width: 8
"""
# a quick run whatever the network: 30 batches of one epoch, a few to validate, all to test
QUICK = ["trainer.max_epochs=1", "trainer.limit_train_batches=30", "trainer.limit_val_batches=2",
         "print_config=false"]  # fmt: skip


@pytest.fixture
def user_files(tmp_path):
    """The user's package (on PYTHONPATH) and its config folder (for hydra.searchpath)."""
    (tmp_path / "code" / "mynets").mkdir(parents=True)
    (tmp_path / "code" / "mynets" / "__init__.py").write_text(textwrap.dedent(USER_NET))
    (tmp_path / "conf" / "model").mkdir(parents=True)
    (tmp_path / "conf" / "model" / "tinynet.yaml").write_text(USER_CONFIG)
    return {"PYTHONPATH": str(tmp_path / "code")}, f"hydra.searchpath=[file://{tmp_path / 'conf'}]"


def digit_png(path, data_dir, dataset=None) -> int:
    """The first test image of the dataset (Fashion-MNIST's: an ankle boot) saved as a PNG
    file; its label."""
    images, labels = (dataset or FashionMNIST()).load(data_dir, train=False)
    Image.fromarray(images[0, 0].numpy()).resize((56, 56)).save(path)
    return int(labels[0])


def test_a_users_network_from_its_own_config_file_trains_evaluates_predicts_and_resumes(
    mnist_dir, tmp_path, user_files
):
    env, searchpath = user_files
    out = tmp_path / "out"
    done = cli("cnnlab.train", searchpath, "model=tinynet", *QUICK, "trainer.max_epochs=2",
               "trainer.max_steps=40", output_dir=out, **env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = run_dirs(out)
    result = result_of(run_dir)
    assert result["params"] == 8 * 25 + 8 + 8 * 144 * 10 + 10
    assert result["status"] == "finished" and result["test/acc"] > 0.2
    assert (run_dir / "figures" / "feature_maps.png").is_file()  # hooks on its Conv2d
    evaluated = cli("cnnlab.evaluate", f"ckpt_path={run_dir}", output_dir=out, **env)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert f"Test accuracy: {result['test/acc']}" in evaluated.stdout
    image = tmp_path / "digit.png"
    label = digit_png(image, mnist_dir, MNIST())
    predicted = cli("cnnlab.predict", f"ckpt_path={run_dir}", f"images=[{image}]",
                    "json=" + str(tmp_path / "p.json"), output_dir=out, **env)  # fmt: skip
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    top = json.loads((tmp_path / "p.json").read_text())["predictions"][0]["top"]
    assert len(top) == 3 and 0 <= label <= 9
    longer = cli("cnnlab.train", f"resume={run_dir}", "trainer.max_epochs=3",
                 "trainer.max_steps=-1", output_dir=out, **env)  # fmt: skip
    assert longer.returncode == 0, longer.stderr[-3000:]
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 70 and last["config"]["model"]["_target_"] == "mynets.TinyNet"


def test_a_users_network_named_on_the_command_line(mnist_dir, tmp_path, user_files):
    env, _ = user_files
    net = ["model=custom", "model._target_=mynets.TinyNet", "+model.channels=1",
           "+model.classes=10", "+model.width=4"]  # fmt: skip
    run_dir, _ = train_run(tmp_path, *net, *QUICK, "test=false", "callbacks.figures=null",
                           env=env)  # fmt: skip
    assert result_of(run_dir)["params"] == 4 * 25 + 4 + 4 * 144 * 10 + 10
    bad = cli("cnnlab.train", *net, "+model.depth=3", *QUICK, output_dir=tmp_path / "bad", **env)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "cnnlab: error: model.depth: unknown key (known: channels, classes, width)"
    ]


def test_fashion_mnist_trains_evaluates_and_predicts_under_its_own_class_names(mnist_dir, tmp_path):
    run_dir, _ = train_run(tmp_path, "data=fashion_mnist", *QUICK, "model.filters=8")
    result = result_of(run_dir)
    assert result["status"] == "finished" and result["test/acc"] > 0.3
    events = EventAccumulator(str(run_dir / "tensorboard")).Reload()
    assert {"test_per_class/Trouser", "test_per_class/Ankle boot"} <= set(events.Tags()["scalars"])
    assert (run_dir / "figures" / "confusion_matrix.png").is_file()
    evaluated = cli("cnnlab.evaluate", f"ckpt_path={run_dir}", output_dir=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert f"Test accuracy: {result['test/acc']}" in evaluated.stdout  # Fashion's test set
    assert "  Trouser" in evaluated.stdout and "  Seven" not in evaluated.stdout
    image = tmp_path / "boot.png"
    digit_png(image, mnist_dir)
    predicted = cli("cnnlab.predict", f"ckpt_path={run_dir}", f"images=[{image}]",
                    output_dir=tmp_path)  # fmt: skip
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
             "Sneaker", "Bag", "Ankle boot"}  # fmt: skip
    said = predicted.stdout.split(": ", 1)[1].split("  ")
    assert all(item.rsplit(" ", 1)[0] in names for item in said)
