"""Speed options change speed only (the opt-in N steps per execution included: the same weights
and metrics as Lightning's automatic optimization); the throughput meter measures for real."""

import platform
import time
import warnings
from dataclasses import replace
from functools import partial

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.plugins import MixedPrecision

import cnnlab.perf.executions
from bench.plain_loop import autocast_for
from bench.throughput import ThroughputMeter
from cnnlab.errors import CnnlabError
from cnnlab.models.classifier import Classifier
from cnnlab.models.keras_cnn import KerasCNN
from cnnlab.perf.executions import (
    FLAVOUR_WARNINGS,
    ExecutionsClassifier,
    flavour_warnings_ignored,
    paced_steps,
    trainer_arguments,
)
from cnnlab.perf.heap import keep_freed_memory
from cnnlab.perf.speed import Speed
from cnnlab.perf.threads import cap_threads
from tests.helpers import speed_preset, warnings_shown

PLAIN = speed_preset("plain")  # every switch off
ADAM = partial(torch.optim.Adam, lr=0.001, eps=1e-07)  # conf/optimizer/adam.yaml


def adam_steps(steps: int = 1, dropout: bool = True, **switches: object) -> torch.nn.Module:
    """``steps`` Adam steps of the lesson's network in training mode (dropout on unless told),
    from one seed, under ``speed=plain`` with ``switches`` turned on."""
    torch.manual_seed(0)
    speed = replace(PLAIN, **switches)
    net = KerasCNN(**({} if dropout else {"dropout": 0.0, "dense_dropout": 0.0}))
    speed.apply_to(net)
    images, labels = torch.rand(16, 1, 28, 28), torch.randint(0, 10, (16,))
    net.train()
    optimizer = speed.optimizer(ADAM)(net.parameters())
    for _ in range(steps):
        optimizer.zero_grad()
        F.cross_entropy(net(images), labels).backward()
        optimizer.step()
    return net


def largest_difference(a: torch.nn.Module, b: torch.nn.Module) -> float:
    assert list(a.state_dict()) == list(b.state_dict())  # checkpoints interchangeable
    return max((a.state_dict()[k] - w).abs().max().item() for k, w in b.state_dict().items())


@pytest.mark.parametrize(
    "switch, changes_masks",
    [("fused_optimizer", False), ("channels_last", True), ("cpu_layers", True)],
)
def test_what_each_network_switch_changes_when_training(switch, changes_masks):
    """In training mode, dropout on: the fused optimizer changes only rounding; channels_last
    and cpu_layers change which elements dropout drops (speed.py's docstring says so), and
    nothing else: with dropout off they too change only rounding. Adam's first step moves
    every weight by lr = 1e-3, one way or the other: another mask turns some round (2e-3)."""
    plain, plain_no_dropout = adam_steps(), adam_steps(dropout=False)
    on = adam_steps(**{switch: True if switch != "cpu_layers" else "all"})
    rounding = 1e-4  # Adam divides by the gradient's size: a tiny gradient's rounding shows
    assert (largest_difference(on, plain) > 1e-3) is changes_masks
    off = adam_steps(dropout=False, **{switch: True if switch != "cpu_layers" else "all"})
    assert largest_difference(off, plain_no_dropout) < rounding


def test_cpu_layers_go_into_cnnlabs_networks_and_into_others_only_when_asked():
    def user_net() -> torch.nn.Module:  # a user's own network: its module is not cnnlab's
        nn = torch.nn
        return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.5),
                             nn.Flatten(), nn.Linear(4 * 13 * 13, 10))  # fmt: skip

    def layer_types(net: torch.nn.Module) -> list[type]:
        return [type(m) for m in net.modules()]

    written = layer_types(user_net())
    for speed, swapped in ((speed_preset("fast"), False), (replace(PLAIN, cpu_layers="all"), True)):
        net = user_net().train()
        speed.apply_to(net)
        assert (layer_types(net) != written) is swapped
    lesson = KerasCNN()
    speed_preset("fast").apply_to(lesson)
    assert type(lesson.features.dropout1).__module__ == "cnnlab.perf.cpu_layers"
    with pytest.raises(CnnlabError, match=r"speed\.cpu_layers='some'"):
        replace(PLAIN, cpu_layers="some")


def test_the_fused_kernel_is_left_out_where_lightning_clips_under_mixed_precision():
    assert speed_preset("fast").optimizer(ADAM).keywords["fused"] is True
    assert "fused" not in speed_preset("fast").optimizer(ADAM, clipped_mixed=True).keywords
    assert PLAIN.optimizer(ADAM) is ADAM
    sgd = partial(torch.optim.LBFGS)  # no fused kernel: as given
    assert speed_preset("fast").optimizer(sgd) is sgd


def test_meter_times_whole_windows_after_warmup_and_drops_a_window_cut_by_an_epoch():
    meter = ThroughputMeter(torch.device("cpu"), warmup=2, window=3)
    for _ in range(11):  # steps 1: warm-up, 2: opens the clock, 3-11: three windows
        time.sleep(0.01)
        meter.step_done(128)
    meter.step_done(128)
    meter.restart()  # an epoch edge: the open window (1 step) is dropped
    summary = meter.summary()
    assert summary["timed_windows"] == 3
    assert [images for images, _, _ in meter.windows] == [3 * 128] * 3
    assert 0 < summary["images_per_s"] <= 128 / 0.01  # each step slept at least 10 ms
    assert summary["median_step_ms"] >= 10


def test_bad_threads_and_precision_are_named():
    with pytest.raises(CnnlabError, match=r"speed\.threads=0"):
        cap_threads(0)
    with pytest.raises(CnnlabError, match=r"trainer\.precision=bf16-true"):
        autocast_for("bf16-true", torch.device("cpu"))


def test_keep_freed_memory_is_a_switch():
    assert keep_freed_memory(True) is (platform.libc_ver()[0] == "glibc")  # glibc took all three
    assert keep_freed_memory(None) is False
    assert keep_freed_memory(False) is False
    with pytest.raises(CnnlabError, match=r"speed\.keep_freed_memory='yes'"):
        keep_freed_memory("yes")


class Batches(L.LightningDataModule):
    """A dataset in batches of 16, in order, as a datamodule (a scheduler's length reads it)."""

    def __init__(self, data: torch.utils.data.Dataset) -> None:
        super().__init__()
        self.data = data

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(self.data, batch_size=16)


def fit_steps(
    steps: int | float | None = 4,
    gradient_clip_val: float | None = None,
    accumulate_grad_batches: int = 1,
    max_steps: int = -1,
    epochs: int = 1,
    recipe: dict | None = None,
    scaled: bool = False,
    images: int = 70,
    steps_per_execution: int | str | None = None,
) -> tuple[Classifier, dict[str, float]]:
    """Real Trainer steps on fixed random batches (70 ``images``: four batches of 16 and one
    of 6), deterministic, every speed switch off: the weights and the logged metrics.
    ``steps_per_execution`` None: the textbook ``Classifier`` under Lightning's automatic
    optimization, clipping and accumulation the Trainer's; else the opt-in
    ``ExecutionsClassifier``, given them as ``build`` does. ``recipe``: the module's
    ``scheduler`` and ``loss``; ``scaled``: 16-mixed with its gradient scaler (on a CPU, where
    Lightning would make ``precision="16-mixed"`` bf16, through its precision plugin)."""
    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(
        torch.rand(images, 1, 28, 28), torch.randint(0, 10, (images,))
    )
    stepping = {"gradient_clip_val": gradient_clip_val,
                "accumulate_grad_batches": accumulate_grad_batches}  # fmt: skip
    parts = {"net": KerasCNN(), "optimizer": ADAM, **(recipe or {})}
    if steps_per_execution is None:
        model, trainer_args = Classifier(**parts), stepping
    else:
        own, trainer_args = trainer_arguments(stepping)
        del trainer_args["limit_train_batches"]  # a DataLoader: Lightning's limit counts batches
        model = ExecutionsClassifier(**parts, steps_per_execution=steps_per_execution, **own)
    trainer = L.Trainer(max_epochs=epochs, limit_train_batches=steps, max_steps=max_steps,
                        logger=False, callbacks=[], deterministic=True,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, plugins=[fp16_scaled()] if scaled else None,
                        **trainer_args)  # fmt: skip
    with flavour_warnings_ignored(model):
        trainer.fit(model, datamodule=Batches(data))
    return model, {k: float(v) for k, v in trainer.callback_metrics.items()}


def fp16_scaled() -> MixedPrecision:
    return MixedPrecision("16-mixed", "cpu", torch.amp.GradScaler("cpu", init_scale=2.0**10))


def assert_same_weights(a: Classifier, b: Classifier) -> None:
    for name, weight in a.state_dict().items():
        assert torch.equal(weight, b.state_dict()[name]), name


@pytest.mark.parametrize("n", [1, 3, 16])
def test_steps_per_execution_trains_the_same_weights_and_metrics_as_lightning(n):
    """Two epochs of 5 batches (the last one short): executions of 3 end mid-epoch and cut
    the epoch's last execution short; 16 covers each epoch in one partial execution."""
    automatic, automatic_metrics = fit_steps(None, epochs=2)
    many, many_metrics = fit_steps(None, epochs=2, steps_per_execution=n)
    assert many.steps_per_execution == n and not many.automatic_optimization
    assert many.trainer.global_step == automatic.trainer.global_step == 10  # optimizer steps
    assert many_metrics.pop("step") == 9  # logged on the optimizer step's axis
    assert set(many_metrics) == {"train/loss", "train/acc"}
    assert many_metrics == automatic_metrics
    assert_same_weights(automatic, many)


def test_max_steps_and_limit_train_batches_count_optimizer_steps():
    automatic, _ = fit_steps(None, max_steps=7, epochs=3)
    many, _ = fit_steps(None, max_steps=7, epochs=3, steps_per_execution=16)
    assert many.trainer.global_step == automatic.trainer.global_step == 7  # stopped mid-execution
    assert many.trainer.current_epoch == automatic.trainer.current_epoch  # 5 steps, then 2
    assert_same_weights(automatic, many)
    limited, _ = fit_steps(3, epochs=2, steps_per_execution=16)
    assert limited.trainer.global_step == 6
    fraction, _ = fit_steps(0.5, steps_per_execution=16)
    assert fraction.trainer.global_step == 2  # Lightning's int(5 batches x 0.5)


def test_clipping_and_accumulation_in_the_executions_step_equal_lightnings():
    """2-batch accumulation over 5 batches steps 3 times (the last on one batch, its loss
    still halved, as Lightning does); clipped hard enough to change every step."""
    kwargs = {"steps": None, "epochs": 2, "gradient_clip_val": 0.05, "accumulate_grad_batches": 2}
    automatic, automatic_metrics = fit_steps(**kwargs)
    own, own_metrics = fit_steps(**kwargs, steps_per_execution=16)
    assert own.trainer.global_step == automatic.trainer.global_step == 6
    assert own_metrics.pop("step") == 5 and own_metrics == automatic_metrics
    assert_same_weights(automatic, own)
    unclipped, _ = fit_steps(**{**kwargs, "gradient_clip_val": None}, steps_per_execution=16)
    weight = "net.classifier.output.weight"
    assert not torch.equal(unclipped.state_dict()[weight], own.state_dict()[weight])


def test_16_mixed_steps_scale_unscale_and_clip_as_lightnings_plugin():
    """Every execution step goes through Lightning's optimizer and 16-mixed's gradient scaler
    (unscale, clip, step, update) as under automatic optimization."""
    kwargs = {"steps": None, "epochs": 2, "scaled": True}
    automatic, _ = fit_steps(**kwargs, gradient_clip_val=0.05)
    own, _ = fit_steps(**kwargs, gradient_clip_val=0.05, steps_per_execution=16)
    assert own.trainer.global_step == 10
    assert_same_weights(automatic, own)
    unclipped, _ = fit_steps(**kwargs, steps_per_execution=16)
    weight = "net.classifier.output.weight"
    assert not torch.equal(unclipped.state_dict()[weight], own.state_dict()[weight])


def test_value_clipping_clips_every_gradient():
    model = ExecutionsClassifier(KerasCNN(), ADAM, gradient_clip_val=1e-4,
                                 gradient_clip_algorithm="value")  # fmt: skip
    F.cross_entropy(model(torch.rand(8, 1, 28, 28)), torch.randint(0, 10, (8,))).backward()
    model.on_before_optimizer_step(ADAM(model.parameters()))
    assert max(p.grad.abs().max() for p in model.parameters()) <= 1e-4


def test_auto_steps_double_while_an_execution_fits_in_its_time():
    cpu = torch.device("cpu")
    assert paced_steps(cpu, 0.030) == 16  # the lesson's model on a CPU: the start value
    assert paced_steps(cpu, 0.0024) == 64  # 64 x 2.4 ms fit in 0.25 s, 128 do not
    assert paced_steps(torch.device("cuda"), 1e-6) == 1024  # at most AUTO_MAX_STEPS


def test_auto_steps_follow_the_pace_and_train_the_same_weights(monkeypatch):
    """100 batches with every pace fitting in the time: an execution of the start value (16),
    then the 84 left, in one execution of up to AUTO_MAX_STEPS (1024)."""
    monkeypatch.setattr(cnnlab.perf.executions, "AUTO_SECONDS", 1e9)
    paced, metrics = fit_steps(None, images=1600, steps_per_execution="auto")
    assert paced.paced and paced.trainer.global_step == 100
    assert paced.steps_per_execution == 1024
    automatic, automatic_metrics = fit_steps(None, images=1600)
    assert metrics.pop("step") == 99 and metrics == automatic_metrics
    assert_same_weights(automatic, paced)


def test_steps_per_execution_is_checked():
    assert speed_preset("executions").steps_per_execution == "auto"
    assert Speed().steps_per_execution is None  # the default: Lightning's own loop
    for bad in (0, "many", True):
        with pytest.raises(CnnlabError, match=r"speed\.steps_per_execution="):
            replace(PLAIN, steps_per_execution=bad)


def test_lightnings_executions_warnings_are_ignored_only_while_it_fits_one():
    """A scoped filter: after the fit, and for any other module, the process's filters are as
    they were (a notebook or a user's program keeps its own)."""
    with warnings_shown() as shown:
        fit_steps(steps_per_execution=2)  # through flavour_warnings_ignored, as training.py
    assert not [message for message in shown if "dataloader_iter" in message]
    textbook = Classifier(net=KerasCNN(), optimizer=ADAM)
    with warnings_shown() as shown, flavour_warnings_ignored(textbook):
        warnings.warn(FLAVOUR_WARNINGS[0], UserWarning, stacklevel=1)
    assert len(shown) == 1  # a textbook Classifier's fit ignores nothing
