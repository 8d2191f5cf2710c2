"""Speed options change speed only; the throughput meter and `make bench` measure for real."""

import platform
import time
from dataclasses import replace

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.plugins import MixedPrecision

import cnnlab.perf.speed
from bench.plain_loop import autocast_for
from bench.throughput import ThroughputMeter
from cnnlab.errors import CnnlabError
from cnnlab.models.arch import Arch
from cnnlab.models.classifier import KERAS_ADAM, MNISTClassifier, make_classifier
from cnnlab.perf.heap import keep_freed_memory
from cnnlab.perf.threads import cap_threads
from tests.helpers import speed_preset

PLAIN = speed_preset("plain")  # every switch off


def with_speed(**switches: object) -> MNISTClassifier:
    return MNISTClassifier(speed=replace(PLAIN, **switches))


def one_adam_step(**switches: bool) -> MNISTClassifier:
    torch.manual_seed(0)
    model = with_speed(**switches)
    images, labels = torch.rand(16, 1, 28, 28), torch.randint(0, 10, (16,))
    model.eval()  # no dropout: both variants must compute the same function
    optimizer = model.configure_optimizers()
    F.cross_entropy(model(images), labels).backward()
    optimizer.step()
    return model


def test_channels_last_and_fused_optimizer_train_the_same_weights_under_the_same_names():
    plain = one_adam_step()
    fast = one_adam_step(channels_last=True, fused_optimizer=True)
    assert fast.net.features.conv2.weight.is_contiguous(memory_format=torch.channels_last)
    assert list(plain.state_dict()) == list(fast.state_dict())  # checkpoints interchangeable
    for name, weight in plain.state_dict().items():
        torch.testing.assert_close(
            fast.state_dict()[name], weight, rtol=0, atol=1e-4
        )  # a step is ±1e-3


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
    **options: object,
) -> tuple[MNISTClassifier, dict[str, float]]:
    """Real Trainer steps on fixed random batches (70 ``images``: four batches of 16 and one
    of 6), deterministic, plain speed switches but cnnlab's own optimizer step unless
    ``automatic_optimization=True``: the weights and the logged metrics. Clipping and
    accumulation (and ``max_steps``) go to the Trainer under automatic optimization, to
    cnnlab's own step otherwise (as ``build`` does); ``recipe``: the module's ``scheduler``
    and ``loss``; ``scaled``: 16-mixed with its gradient scaler (on a CPU, where Lightning
    would make ``precision="16-mixed"`` bf16, through its precision plugin)."""
    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(
        torch.rand(images, 1, 28, 28), torch.randint(0, 10, (images,))
    )
    stepping = {"gradient_clip_val": gradient_clip_val, "max_steps": max_steps,
                "accumulate_grad_batches": accumulate_grad_batches}  # fmt: skip
    options.setdefault("automatic_optimization", False)
    automatic = options["automatic_optimization"]
    speed = replace(PLAIN, **options)
    own_step = {} if automatic else stepping
    model = make_classifier(Arch(), KERAS_ADAM, speed, **own_step, **(recipe or {}))
    trainer = L.Trainer(max_epochs=epochs, limit_train_batches=steps,
                        logger=False, callbacks=[], deterministic=True,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, plugins=[fp16_scaled()] if scaled else None,
                        **(stepping if automatic else {}))  # fmt: skip
    trainer.fit(model, datamodule=Batches(data))
    return model, {k: float(v) for k, v in trainer.callback_metrics.items()}


def fp16_scaled() -> MixedPrecision:
    return MixedPrecision("16-mixed", "cpu", torch.amp.GradScaler("cpu", init_scale=2.0**10))


def assert_same_weights(a: MNISTClassifier, b: MNISTClassifier) -> None:
    for name, weight in a.state_dict().items():
        assert torch.equal(weight, b.state_dict()[name]), name


def test_own_optimizer_step_trains_exactly_as_lightnings_automatic_optimization():
    automatic, automatic_metrics = fit_steps(automatic_optimization=True)
    manual, manual_metrics = fit_steps(automatic_optimization=False)
    assert manual.optimizer_steps == automatic.optimizer_steps == 4
    assert set(manual_metrics) == {"train/loss", "train/acc", "lr-Adam", "step", "epoch"}
    assert manual_metrics == automatic_metrics
    assert_same_weights(automatic, manual)


@pytest.mark.parametrize("n", [3, 16])
def test_steps_per_execution_trains_the_same_weights_and_metrics(n):
    """Two epochs of 5 batches (the last one short): executions of 3 end mid-epoch and cut
    the epoch's last execution short; 16 covers each epoch in one partial execution."""
    one, one_metrics = fit_steps(None, epochs=2, automatic_optimization=False,
                                 steps_per_execution=1)  # fmt: skip
    many, many_metrics = fit_steps(None, epochs=2, automatic_optimization=False,
                                   steps_per_execution=n)  # fmt: skip
    assert one.steps_per_execution == 1 and many.steps_per_execution == n
    assert many.optimizer_steps == one.optimizer_steps == one.trainer.global_step == 10
    # Lightning counts executions: one per epoch at 16; 2 + 1 an epoch at 3 (3 + 2 steps)
    assert many.trainer.global_step == {3: 4, 16: 2}[n]
    assert many_metrics == one_metrics
    assert_same_weights(one, many)


def test_max_steps_and_limit_train_batches_count_optimizer_steps():
    one, _ = fit_steps(None, max_steps=7, epochs=3, steps_per_execution=1)
    many, _ = fit_steps(None, max_steps=7, epochs=3, steps_per_execution=16)
    assert many.optimizer_steps == 7  # stopped inside an execution, exactly
    assert many.trainer.global_step == 2  # 5 steps in epoch 0, then 2 of epoch 1
    assert_same_weights(one, many)
    limited, _ = fit_steps(3, epochs=2, steps_per_execution=16)
    assert limited.optimizer_steps == 6
    fraction, _ = fit_steps(0.5, steps_per_execution=16)
    assert fraction.optimizer_steps == 2  # Lightning's int(5 batches x 0.5)


def test_clipping_and_accumulation_in_cnnlabs_step_equal_lightnings():
    """2-batch accumulation over 5 batches steps 3 times (the last on one batch, its loss
    still halved, as Lightning does); clipped hard enough to change every step."""
    kwargs = {"steps": None, "epochs": 2, "gradient_clip_val": 0.05, "accumulate_grad_batches": 2}
    automatic, automatic_metrics = fit_steps(**kwargs, automatic_optimization=True)
    own, own_metrics = fit_steps(**kwargs, automatic_optimization=False, steps_per_execution=16)
    assert own.optimizer_steps == automatic.optimizer_steps == 6
    assert own_metrics == automatic_metrics
    assert_same_weights(automatic, own)
    unclipped, _ = fit_steps(**{**kwargs, "gradient_clip_val": None}, steps_per_execution=16)
    weight = "net.classifier.output.weight"
    assert not torch.equal(unclipped.state_dict()[weight], own.state_dict()[weight])


def test_16_mixed_steps_scale_unscale_and_clip_as_lightnings_plugin():
    """The execution's steps past its first step the torch optimizer through 16-mixed's
    gradient scaler (unscale, clip, step, update) as Lightning's precision plugin does."""
    kwargs = {"steps": None, "epochs": 2, "scaled": True, "fused_optimizer": False}
    automatic, _ = fit_steps(**kwargs, gradient_clip_val=0.05, automatic_optimization=True)
    own, _ = fit_steps(**kwargs, gradient_clip_val=0.05, steps_per_execution=16)
    assert own.scaler is not None and own.optimizer_steps == 10
    assert_same_weights(automatic, own)
    unclipped, _ = fit_steps(**kwargs, steps_per_execution=16)
    weight = "net.classifier.output.weight"
    assert not torch.equal(unclipped.state_dict()[weight], own.state_dict()[weight])


def test_value_clipping_clips_every_gradient():
    model = MNISTClassifier(speed=PLAIN, gradient_clip_val=1e-4, gradient_clip_algorithm="value")
    F.cross_entropy(model(torch.rand(8, 1, 28, 28)), torch.randint(0, 10, (8,))).backward()
    model.on_before_optimizer_step(model.configure_optimizers())
    assert max(p.grad.abs().max() for p in model.parameters()) <= 1e-4


def test_auto_steps_double_while_an_execution_fits_in_its_time():
    cpu, fast = torch.device("cpu"), speed_preset("fast")
    assert fast.paced_steps(cpu, 0.030) == 16  # the lesson's model on a CPU: the start value
    assert fast.paced_steps(cpu, 0.0024) == 64  # 64 x 2.4 ms fit in 0.25 s, 128 do not
    assert fast.paced_steps(torch.device("cuda"), 1e-6) == 1024  # at most AUTO_MAX_STEPS
    assert PLAIN.paced_steps(cpu, 1e-6) == 1  # Lightning's automatic optimization: one
    assert replace(fast, steps_per_execution=8).paced_steps(cpu, 1e-6) == 8  # as given


def test_auto_steps_follow_the_pace_and_train_the_same_weights(monkeypatch):
    """100 batches with every pace fitting in the time: an execution of the start value (16),
    then the 84 left, in one execution of up to AUTO_MAX_STEPS (1024)."""
    monkeypatch.setattr(cnnlab.perf.speed, "AUTO_SECONDS", 1e9)
    paced, metrics = fit_steps(None, images=1600, steps_per_execution="auto")
    assert paced.paced and paced.optimizer_steps == 100
    assert paced.trainer.global_step == 2 and paced.steps_per_execution == 1024
    one, one_metrics = fit_steps(None, images=1600, steps_per_execution=1)
    assert metrics == one_metrics
    assert_same_weights(one, paced)


def test_steps_per_execution_resolves_by_device_and_refuses_automatic_optimization():
    assert speed_preset("fast").resolve_steps_per_execution(torch.device("cpu")) == 16
    assert speed_preset("fast").resolve_steps_per_execution(torch.device("cuda")) == 64
    assert PLAIN.resolve_steps_per_execution(torch.device("cpu")) == 1
    with pytest.raises(CnnlabError, match=r"speed\.steps_per_execution=4: Lightning's automatic"):
        replace(PLAIN, steps_per_execution=4)
