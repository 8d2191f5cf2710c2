"""Speed options change speed only; the throughput meter and `make bench` measure for real."""

import platform
import time
from dataclasses import replace

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from bench.plain_loop import autocast_for
from bench.throughput import ThroughputMeter
from cnnlab.errors import CnnlabError
from cnnlab.models.classifier import MNISTClassifier
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
    assert [images for images, _ in meter.windows] == [3 * 128] * 3
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


def fit_steps(
    steps: int = 4, gradient_clip_val: float | None = None, **options: object
) -> tuple[MNISTClassifier, dict[str, float]]:
    """A few real Trainer steps on fixed random batches: the weights and the logged metrics."""
    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.rand(64, 1, 28, 28), torch.randint(0, 10, (64,)))
    model = with_speed(**options)
    trainer = L.Trainer(max_epochs=1, limit_train_batches=steps, logger=False, callbacks=[],
                        gradient_clip_val=gradient_clip_val, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(model, torch.utils.data.DataLoader(data, batch_size=16))
    return model, {k: float(v) for k, v in trainer.callback_metrics.items()}


def test_own_optimizer_step_trains_exactly_as_lightnings_automatic_optimization():
    automatic, automatic_metrics = fit_steps(automatic_optimization=True)
    manual, manual_metrics = fit_steps(automatic_optimization=False)
    assert manual.trainer.global_step == automatic.trainer.global_step == 4
    assert set(manual_metrics) == {"train/loss", "train/acc"}
    assert manual_metrics == automatic_metrics
    for name, weight in automatic.state_dict().items():
        assert torch.equal(weight, manual.state_dict()[name]), name


def test_gradient_clipping_still_clips_under_automatic_optimization():
    unclipped, _ = fit_steps(1, automatic_optimization=True)
    clipped, _ = fit_steps(1, automatic_optimization=True, gradient_clip_val=1e-6)
    weight = "net.classifier.output.weight"
    assert not torch.equal(unclipped.state_dict()[weight], clipped.state_dict()[weight])
