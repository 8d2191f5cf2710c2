"""Figures: PNGs in the run directory and images in the TensorBoard event file, or none at all."""

import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from cnnlab.insight.figures import confident_mistakes, confusion, feature_stages, per_class_accuracy
from cnnlab.models.arch import Arch
from cnnlab.models.keras_cnn import KerasCNN
from tests.conftest import QUICK, cli, result_of, train_run

FIGURES = {
    "train_samples", "test_predictions", "confident_mistakes", "confusion_matrix",
    "per_class_accuracy", "conv1_filters", "feature_maps",
}  # fmt: skip


def quick_run(output_dir, *overrides):
    run_dir, _ = train_run(output_dir, *QUICK, "trainer.limit_test_batches=2", *overrides)
    assert result_of(run_dir)["status"] == "finished"
    return run_dir


def image_tags(run_dir):
    return set(EventAccumulator(str(run_dir / "tensorboard")).Reload().Tags()["images"])


@pytest.fixture(scope="module")
def run_with_figures(mnist_dir, tmp_path_factory):
    return quick_run(tmp_path_factory.mktemp("figures_on"))


def test_run_writes_every_figure_as_png(run_with_figures):
    pngs = sorted((run_with_figures / "figures").glob("*.png"))
    assert {p.stem for p in pngs} == FIGURES
    for png in pngs:
        with Image.open(png) as image:
            assert image.format == "PNG" and min(image.size) >= 200


def test_tensorboard_event_file_holds_the_figures(run_with_figures):
    events = EventAccumulator(str(run_with_figures / "tensorboard")).Reload()
    assert set(events.Tags()["images"]) == {f"figures/{name}" for name in FIGURES}
    (confusion_image,) = events.Images("figures/confusion_matrix")
    assert confusion_image.width >= 400 and confusion_image.step == 20  # after 20 train steps
    (samples,) = events.Images("figures/train_samples")
    assert samples.step == 0  # drawn when training starts


def test_figures_off_writes_none(mnist_dir, tmp_path):
    run_dir = quick_run(tmp_path, "callbacks.figures=null")
    assert not (run_dir / "figures").exists()
    assert image_tags(run_dir) == set()


def test_bad_figure_setting_is_one_line(tmp_path):
    done = cli("cnnlab.train", "callbacks.figures.num_images=0", output_dir=tmp_path,
               CNNLAB_DATA_DIR=str(tmp_path / "data"))  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("cnnlab: error:")]
    assert errors == ["cnnlab: error: callbacks.figures.num_images=0: must be >= 1"]
    assert not (tmp_path / "data").exists()


def test_confusion_counts_and_per_class_accuracy():
    labels = torch.tensor([0, 0, 1, 1, 1, 2])
    preds = torch.tensor([0, 1, 1, 1, 0, 2])
    matrix = confusion(labels, preds, 3)
    assert matrix.tolist() == [[1, 1, 0], [1, 2, 0], [0, 0, 1]]
    assert per_class_accuracy(matrix).tolist() == pytest.approx([0.5, 2 / 3, 1.0])
    assert per_class_accuracy(confusion(labels[:2], preds[:2], 3)).tolist() == [0.5, 0, 0]


def test_confident_mistakes_are_the_wrong_ones_most_confident_first():
    labels = torch.tensor([3, 3, 3, 3, 3])
    preds = torch.tensor([3, 5, 5, 3, 8])
    conf = torch.tensor([0.99, 0.6, 0.9, 0.7, 0.8])
    assert confident_mistakes(labels, preds, conf, k=2).tolist() == [2, 4]
    assert confident_mistakes(labels, labels, conf, k=2).tolist() == []


def test_feature_stages_follow_the_lessons_layers():
    stages = feature_stages(KerasCNN(Arch()).features.eval(), torch.rand(1, 28, 28))
    assert [(name, tuple(maps.shape)) for name, maps in stages] == [
        ("conv1+relu1", (32, 26, 26)), ("conv2+relu2", (64, 24, 24)), ("pool1", (64, 12, 12)),
    ]  # fmt: skip
    assert all(maps.min() >= 0 for _, maps in stages)  # after ReLU
