"""Speed options change speed only; the throughput meter and `make bench` measure for real."""

import json
import platform
import statistics
import time

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from bench.harness import TF_PYTHON
from bench.plain_loop import autocast_for, compose_train_config
from bench.throughput import ThroughputMeter
from cnnlab.errors import CnnlabError
from cnnlab.models.classifier import MNISTClassifier
from cnnlab.perf.heap import keep_freed_memory
from cnnlab.perf.profilers import NoProfiler
from cnnlab.perf.threads import cap_threads
from tests.conftest import cli, train_run


def one_adam_step(**speed: bool) -> MNISTClassifier:
    torch.manual_seed(0)
    model = MNISTClassifier(**speed)
    images, labels = torch.rand(16, 1, 28, 28), torch.randint(0, 10, (16,))
    model.eval()  # no dropout: both variants must compute the same function
    optimizer = model.configure_optimizers()
    F.cross_entropy(model(images), labels).backward()
    optimizer.step()
    return model


def test_channels_last_and_fused_adam_train_the_same_weights_under_the_same_names():
    plain = one_adam_step()
    fast = one_adam_step(channels_last=True, fused_adam=True)
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


def test_the_default_profiler_is_free_and_a_real_one_is_an_override(mnist_dir, tmp_path):
    assert compose_train_config([]).trainer.profiler._target_ == "cnnlab.perf.profilers.NoProfiler"
    off = NoProfiler()
    assert off.profile("a") is off.profile("b")  # one shared null context, nothing built
    fast = ["debug=fast", "print_config=false", "test=false", "callbacks.figures=null"]
    _, profiled = train_run(tmp_path, *fast, "trainer.profiler=simple")
    assert "FIT Profiler Report" in profiled.stdout + profiled.stderr
    assert "run_training_batch" in profiled.stdout + profiled.stderr


def test_bad_threads_and_precision_are_named():
    with pytest.raises(CnnlabError, match="threads=0"):
        cap_threads(0)
    with pytest.raises(CnnlabError, match=r"trainer\.precision=bf16-true"):
        autocast_for("bf16-true", torch.device("cpu"))


def test_keep_freed_memory_is_a_switch():
    assert keep_freed_memory(True) is (platform.libc_ver()[0] == "glibc")  # glibc took all three
    assert keep_freed_memory(None) is False
    assert keep_freed_memory(False) is False
    with pytest.raises(CnnlabError, match="keep_freed_memory='yes'"):
        keep_freed_memory("yes")


def test_train_cli_rejects_bad_threads_in_one_line(tmp_path):
    done = cli("cnnlab.train", "threads=0", output_dir=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "cnnlab: error: threads=0: must be an integer >= 1 or null"
    )


def run_bench(tmp_path, *extra: str) -> dict:
    out = tmp_path / "bench"
    quick = [
        "trainer.limit_val_batches=2",
        "trainer.limit_test_batches=2",
        "callbacks.figures=null",
    ]
    done = cli("bench", "--epochs", "1", "--max-steps-per-epoch", "50",
               "--out", str(out), *extra, *quick, output_dir=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads((out / "bench.json").read_text())
    assert "| cnnlab Trainer |" in (out / "bench.md").read_text()
    return report


def test_bench_never_writes_over_an_earlier_bench(tmp_path):
    earlier = tmp_path / "bench"
    earlier.mkdir()
    (earlier / "bench.json").write_text("{}")
    done = cli("bench", "--no-keras", "--out", str(earlier), output_dir=tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"cnnlab: error: --out={earlier}: not empty; a bench needs a new directory"
    ]
    assert (earlier / "bench.json").read_text() == "{}"


def test_bench_measures_trainer_plain_loop_and_sweeps(mnist_dir, tmp_path):
    sweep = ["--sweep", "2", "--sweep-steps", "5"]
    report = run_bench(tmp_path, "--no-keras", "--rounds", "2", *sweep)
    rounds = report["rounds"]
    assert len(rounds) == 2
    for n, r in enumerate(rounds, 1):  # both sides timed, taking turns, in every round
        assert r["plain"] > 0 and r["cnnlab"] > 0
        meters = [json.loads((tmp_path / "bench" / f"round{n}" / name).read_text())
                  for name in ("plain_loop.json", "cnnlab_throughput.json")]  # fmt: skip
        for meter in meters:
            assert meter["images_trained"] == 50 * 128  # the same batches on both sides
            assert len(meter["window_images_per_s"]) == 1  # 50 = 20 warm-up + 1 + 25 + 4
        (plain_window,), (cnnlab_window,) = (m["window_images_per_s"] for m in meters)
        assert r["window_pairs"] == 1
        assert r["cnnlab/plain"] == pytest.approx(cnnlab_window / plain_window, abs=1e-3)
        assert not (tmp_path / "bench" / f"round{n}" / "turns").exists()
    cnnlab, plain = report["rows"]["cnnlab"], report["rows"]["plain"]
    assert plain["images_per_s"] == pytest.approx(statistics.median(r["plain"] for r in rounds))
    assert cnnlab["images_per_s"] == pytest.approx(statistics.median(r["cnnlab"] for r in rounds))
    assert cnnlab["run_images_per_s"] > 0  # the tested run is timed too
    assert cnnlab["test_acc"] > 0.7  # a real run, tested: 50 batches learn a lot
    assert cnnlab["peak_rss_mb"] > 100 and cnnlab["wall_s"] > 0
    ratio = statistics.median(r["cnnlab/plain"] for r in rounds)  # one pair a round here
    assert report["ratios"]["cnnlab/plain images_per_s"] == pytest.approx(ratio, abs=1e-3)
    assert report["ratios"]["cnnlab/keras images_per_s"] is None
    sweep = report["sweep"]
    for way in ("sequential", "parallel"):  # both sweeps really ran both trials
        trials = sorted((tmp_path / "bench" / way / "sweeps").glob("*/*/result.json"))
        assert [json.loads(t.read_text())["status"] for t in trials] == ["finished"] * 2
        assert sweep[way]["images"] == 2 * 5 * 128  # counted by each trial's meter
        assert sweep[way]["images_per_s"] == pytest.approx(2 * 5 * 128 / sweep[way]["wall_s"], 0.01)
    parallel_trial = next((tmp_path / "bench" / "parallel" / "sweeps").glob("*/0_*/config.yaml"))
    assert "threads: 1" in parallel_trial.read_text()


@pytest.mark.skipif(not TF_PYTHON.is_file(), reason="no .venv-tf (make bench creates it)")
def test_bench_runs_the_keras_seed_in_its_own_venv(mnist_dir, tmp_path):
    keras = run_bench(tmp_path)["rows"]["keras"]
    assert keras["images_per_s"] > 0 and 0.5 < keras["test_acc"] <= 1


def test_hook_names_skip_module_bookkeeping_and_everything_else_keeps_it():
    model = MNISTClassifier()
    model._current_fx_name = "training_step"  # what Lightning sets around every hook
    assert model.__dict__["_current_fx_name"] == "training_step"
    model.probe = torch.nn.Linear(1, 1)  # any other attribute still registers as before
    model.scale = torch.nn.Parameter(torch.ones(1))
    assert "probe" in dict(model.named_children())
    assert "scale" in dict(model.named_parameters())
    assert "probe" not in model.__dict__ and "scale" not in model.__dict__


def fit_steps(
    steps: int = 4, gradient_clip_val: float | None = None, **options: object
) -> tuple[MNISTClassifier, dict[str, float]]:
    """A few real Trainer steps on fixed random batches: the weights and the logged metrics."""
    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.rand(64, 1, 28, 28), torch.randint(0, 10, (64,)))
    model = MNISTClassifier(**options)
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
