"""`make bench` measures for real, through the real CLI; the profiler and thread switches work
there."""

import json
import statistics

import pytest

from bench.harness import TF_PYTHON
from bench.plain_loop import compose_train_config
from cnnlab.perf.profilers import NoProfiler
from cnnlab.perf.speed import Speed
from tests.helpers import cli, speed_preset, train_run

PLAIN = speed_preset("plain")  # every switch off


def test_the_default_profiler_is_free_and_a_real_one_is_an_override(mnist_dir, tmp_path):
    cfg = compose_train_config([])
    assert cfg.trainer.profiler is None and cfg.speed.lean_profiler
    assert isinstance(Speed().profiler(), NoProfiler) and PLAIN.profiler() is None
    off = NoProfiler()
    assert off.profile("a") is off.profile("b")  # one shared null context, nothing built
    fast = ["debug=fast", "print_config=false", "test=false", "callbacks.figures=null"]
    _, profiled = train_run(tmp_path, *fast, "trainer.profiler=simple")
    assert "FIT Profiler Report" in profiled.stdout + profiled.stderr
    assert "run_training_batch" in profiled.stdout + profiled.stderr


def test_train_cli_rejects_bad_threads_in_one_line(tmp_path):
    done = cli("cnnlab.train", "speed.threads=0", output_dir=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "cnnlab: error: speed.threads=0: must be an integer >= 1 or null"
    )


def run_bench(tmp_path, *extra: str) -> dict:
    out = tmp_path / "bench"
    quick = [
        "trainer.limit_val_batches=2",
        "trainer.limit_test_batches=2",
        "callbacks.figures=null",
    ]
    done = cli("bench", "--epochs", "1", "--max-steps-per-epoch", "64",
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


def test_bench_measures_trainer_plain_loop_sweeps_and_pairs(mnist_dir, tmp_path):
    sweep = ["--sweep", "2", "--sweep-steps", "5"]
    report = run_bench(tmp_path, "--no-keras", "--rounds", "1", *sweep, "--pair", "--fixed-cost",
                       "--interleaved")  # fmt: skip
    rounds = report["rounds"]
    assert len(rounds) == 1  # one round: the suite checks the bench works, not the numbers
    for n, r in enumerate(rounds, 1):  # both sides timed, taking turns, in every round
        assert r["plain"] > 0 and r["cnnlab"] > 0
        meters = [json.loads((tmp_path / "bench" / f"round{n}" / name).read_text())
                  for name in ("plain_loop.json", "cnnlab_throughput.json")]  # fmt: skip
        for meter in meters:
            assert meter["images_trained"] == 64 * 128  # the same batches on both sides
            # both: 32 warm-up steps, one window of 32 steps
            assert len(meter["window_images_per_s"]) == 1
        (plain_window,), (cnnlab_window,) = (m["window_images_per_s"] for m in meters)
        assert r["window_pairs"] == 1
        assert r["cnnlab/plain"] == pytest.approx(cnnlab_window / plain_window, abs=1e-3)
        assert not (tmp_path / "bench" / f"round{n}" / "turns").exists()
    cnnlab, plain = report["rows"]["cnnlab"], report["rows"]["plain"]
    assert plain["images_per_s"] == pytest.approx(statistics.median(r["plain"] for r in rounds))
    assert cnnlab["images_per_s"] == pytest.approx(statistics.median(r["cnnlab"] for r in rounds))
    assert cnnlab["run_images_per_s"] > 0  # the tested run is timed too
    assert cnnlab["test_acc"] > 0.7  # a real run, tested: 64 batches learn a lot
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
    fixed = report["fixed_cost"]  # the tiny network, Lightning's loop and executions, both timed
    default, auto = "Lightning's loop (the default)", "N=auto (from 16 on CPU)"
    assert [way for way in fixed if isinstance(fixed[way], dict)] == [default, auto]
    assert fixed["steps_per_epoch"] == 1024 and fixed["window_steps"] == 256  # a quick check
    assert fixed["epochs_per_round"] == 1
    for way, n in ((default, "null"), (auto, "auto")):
        assert fixed[way]["plain_ms"] > 0 and fixed[way]["cnnlab_ms"] > 0
        differences = []  # window k of cnnlab minus window k of the plain loop, every round
        for r in (1,):
            meters = [json.loads((tmp_path / "bench" / "fixed_cost" / f"N-{n}" / f"round{r}" /
                                  name).read_text())["window_step_ms"]
                      for name in ("plain_loop.json", "cnnlab_throughput.json")]  # fmt: skip
            differences += [c - p for p, c in zip(*meters, strict=False)]
        assert fixed[way]["window_pairs"] == len(differences) > 0
        median = statistics.median(differences)
        assert fixed[way]["fixed_cost_ms"] == pytest.approx(median, abs=1e-4)
        low, high = fixed[way]["fixed_cost_ci95_ms"]  # a bootstrap interval around it (to 1e-4)
        assert low <= fixed[way]["fixed_cost_ms"] <= high
        assert min(differences) - 1e-4 <= low and high <= max(differences) + 1e-4
    assert "Fixed cost per optimizer step" in (tmp_path / "bench" / "bench.md").read_text()
    interleaved = report["interleaved"]  # 64 steps of each side, one process, after 16 untimed
    assert interleaved["pairs"] == 64 - 1 - 16  # the first hook has no cnnlab step before it
    assert_interleaved(interleaved)
    assert "a plain step after each of cnnlab's" in (tmp_path / "bench" / "bench.md").read_text()
    for way, share in (("share_cores", "true"), ("share_cores=false", "false")):
        row = report["pair"][way]  # one training alone, then two at once, each timed
        assert row["solo"] > 0 and len(row["pair"]) == 2 and min(row["pair"]) > 0
        assert row["each/solo"] == pytest.approx(min(row["pair"]) / row["solo"], abs=1e-3)
        here = tmp_path / "bench" / "pair" / way.replace("=", "-")
        for side in ("solo", "a", "b"):
            (config,) = (here / side / "cnnlab" / "runs").glob("*/config.yaml")
            assert f"share_cores: {share}" in config.read_text()
    assert "Two trainings at once" in (tmp_path / "bench" / "bench.md").read_text()


@pytest.mark.skipif(not TF_PYTHON.is_file(), reason="no .venv-tf (make bench creates it)")
def test_bench_runs_the_keras_seed_in_its_own_venv(mnist_dir, tmp_path):
    keras = run_bench(tmp_path)["rows"]["keras"]
    assert keras["images_per_s"] > 0 and 0.5 < keras["test_acc"] <= 1


def assert_interleaved(result: dict) -> None:
    """Both sides timed, their ratio and the bootstrap interval around the median difference."""
    assert result["plain_ms"] > 0 and result["cnnlab_ms"] > 0
    assert result["cnnlab/plain"] == pytest.approx(result["plain_ms"] / result["cnnlab_ms"], 1e-3)
    low, high = result["difference_ci95_ms"]
    assert low <= result["difference_ms"] <= high
    assert "CPUs, ATen" in result["cpu"]  # the machine is named


def test_interleaved_bench_times_executions_per_optimizer_step(mnist_dir, tmp_path):
    out = tmp_path / "interleaved.json"
    done = cli("bench.interleaved", "--steps", "48", "--warmup", "16", "--json", str(out),
               "speed=executions", "speed.steps_per_execution=4", output_dir=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    # 12 executions of 4 steps: 11 cnnlab executions between plain ones, the first 4 untimed
    assert result["pairs"] == 12 - 1 - 4 and result["overrides"][0] == "speed=executions"
    assert_interleaved(result)
