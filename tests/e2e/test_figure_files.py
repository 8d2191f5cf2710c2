"""Figures: PNGs in the run directory and images in the TensorBoard event file, or none at all."""

import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.helpers import QUICK, cli, result_of, train_run

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
