"""The training recipe's knobs (scheduler, label smoothing, augmentation) keep cnnlab's exactness:
the same weights under Lightning's automatic optimization and every steps_per_execution,
resumable augmentation, and a schedule that spans the run's optimizer steps exactly."""

from functools import partial

import pytest
import torch
import torch.nn.functional as F

from bench.plain_loop import compose_train_config
from cnnlab.data.augment import RandomAffine
from cnnlab.data.datamodule import EpochOrder, TensorLoader
from cnnlab.errors import CnnlabError
from cnnlab.models.classifier import Classifier
from cnnlab.models.keras_cnn import KerasCNN
from cnnlab.runs.checks import ConfigError, check_config
from tests.unit.test_speed import ADAM, assert_same_weights, fit_steps

ONE_CYCLE = partial(torch.optim.lr_scheduler.OneCycleLR, max_lr=0.003, pct_start=0.25)
RECIPE = {"scheduler": ONE_CYCLE, "loss": torch.nn.CrossEntropyLoss(label_smoothing=0.1)}


def final_lr(model: Classifier) -> float:
    return model.optimizers(use_pl_optimizer=False).param_groups[0]["lr"]


def test_one_cycle_and_label_smoothing_train_the_same_weights_for_every_n_and_lightning():
    lightning, lightning_metrics = fit_steps(None, epochs=2, recipe=RECIPE)
    one, one_metrics = fit_steps(None, epochs=2, recipe=RECIPE, steps_per_execution=1)
    many, many_metrics = fit_steps(None, epochs=2, recipe=RECIPE, steps_per_execution=16)
    assert one_metrics.pop("step") == many_metrics.pop("step") == 9  # optimizer steps
    assert one_metrics == many_metrics == lightning_metrics
    assert_same_weights(one, many)
    assert_same_weights(one, lightning)
    for model in (lightning, one, many):  # the schedule spans the run's 10 optimizer steps
        scheduler = model.lr_schedulers()
        assert scheduler.last_epoch == 10 == scheduler.total_steps - 1
        assert final_lr(model) == pytest.approx(0.003 / 25 / 1e4)
    plain, _ = fit_steps(None, epochs=2, steps_per_execution=16)
    weight = "net.classifier.output.weight"
    assert not torch.equal(plain.state_dict()[weight], many.state_dict()[weight])


def test_the_schedule_counts_optimizer_steps_under_accumulation_and_max_steps():
    for n in (None, 16):  # Lightning's accumulation, and the executions layer's own
        accumulated, _ = fit_steps(None, epochs=2, accumulate_grad_batches=2, recipe=RECIPE,
                                   steps_per_execution=n)  # fmt: skip
        scheduler = accumulated.lr_schedulers()
        assert scheduler.last_epoch == accumulated.trainer.global_step == 6  # 3 an epoch
        assert scheduler.total_steps == 7
        assert final_lr(accumulated) == pytest.approx(0.003 / 25 / 1e4)
    stopped, _ = fit_steps(None, epochs=3, max_steps=7, recipe=RECIPE)
    scheduler = stopped.lr_schedulers()
    assert scheduler.total_steps - 1 == scheduler.last_epoch == 7
    assert final_lr(stopped) == pytest.approx(0.003 / 25 / 1e4)


def test_label_smoothing_is_the_training_loss_only():
    torch.manual_seed(0)
    smoothed = torch.nn.CrossEntropyLoss(label_smoothing=0.2)
    model = Classifier(KerasCNN(), ADAM, loss=smoothed).eval()
    images, labels = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    with torch.no_grad():
        train_loss = model.training_step((images, labels), 0)
        model.validation_step((images, labels), 0)  # what val/test report
        logits = model(images)
    assert float(train_loss) == pytest.approx(float(smoothed(logits, labels)))
    val_loss = model.val_metrics.compute()["loss"]
    assert float(val_loss) == pytest.approx(float(F.cross_entropy(logits, labels)))
    with pytest.raises(ConfigError, match=r"loss.label_smoothing=1.0: must be in \[0, 1\)"):
        check_config(compose_train_config(["loss.label_smoothing=1.0"]))


def digit() -> torch.Tensor:
    """A 28x28 image with a bright 6x6 square at its centre."""
    image = torch.zeros(1, 1, 28, 28)
    image[..., 11:17, 11:17] = 1.0
    return image


def centre_of_mass(images: torch.Tensor) -> torch.Tensor:
    grid = torch.arange(28.0)
    mass = images.sum(dim=(1, 2, 3))
    rows = (images.sum(dim=(1, 3)) * grid).sum(dim=1) / mass
    cols = (images.sum(dim=(1, 2)) * grid).sum(dim=1) / mass
    return torch.stack((rows, cols), 1)


def test_random_affine_shifts_and_rotates_each_image_within_its_bounds():
    images = digit().repeat(256, 1, 1, 1)
    shifted = RandomAffine(shift=2)(images, torch.Generator().manual_seed(0))
    moved = centre_of_mass(shifted) - centre_of_mass(images)
    assert moved.abs().max() <= 2.0 + 1e-4 and moved.abs().max() > 1.5  # up to 2 px, each axis
    assert moved.std(dim=0).min() > 0.5  # every image its own draw
    assert torch.allclose(shifted.sum(dim=(1, 2, 3)), images.sum(dim=(1, 2, 3)), rtol=1e-4)
    rotated = RandomAffine(rotate=45)(images, torch.Generator().manual_seed(0))
    assert torch.allclose(centre_of_mass(rotated), centre_of_mass(images), atol=1e-3)
    assert not torch.equal(rotated, images)
    again = RandomAffine(shift=2)(images, torch.Generator().manual_seed(0))
    assert torch.equal(again, shifted)  # the generator decides everything
    assert not RandomAffine().active
    for key, value in (("shift", -1), ("rotate", 200)):
        with pytest.raises(CnnlabError, match=f"data.augment.{key}={value}: must be in"):
            RandomAffine(**{key: value})


def test_augmented_batches_depend_only_on_seed_epoch_and_position_so_resume_is_exact():
    images, labels = torch.rand(40, 1, 28, 28), torch.arange(40) % 10

    def loader() -> TensorLoader:
        order = EpochOrder(40, shuffle=True, seed=3)
        return TensorLoader(images, labels, 8, order, augment=RandomAffine(shift=2, rotate=10))

    full = list(loader())
    resumed = loader()
    resumed.load_state_dict({"batches_done": 3})  # a checkpoint taken after batch 3
    for (a, y_a), (b, y_b) in zip(full[3:], list(resumed), strict=True):
        assert torch.equal(a, b) and torch.equal(y_a, y_b)
    next_epoch = loader()
    next_epoch.sampler.set_epoch(1)
    assert not torch.equal(next(iter(next_epoch))[0], full[0][0])
    first_images, _ = loader().first_batch()  # what the figures show: not warped
    assert torch.equal(first_images, images[EpochOrder(40, True, 3).indices()[:8]])
