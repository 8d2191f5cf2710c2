"""Sweeps end to end through the real CLI on real MNIST: failure isolation, leaderboard, resume,
parallel (joblib) and submitit launchers. Trials are tiny (5 train batches) to stay quick."""

import csv
import shutil
import statistics

import optuna
import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from cnnlab.perf.threads import threads_per_job
from cnnlab.runs.resolvers import MAX_DIRNAME, short_dirname
from tests.helpers import TINY, cli, leaderboard, read_only_copy, result_of, sweep_dir_of, trial_dir

GRID = "optimizer.lr=0.001,0.002,0.003,1e10"  # 1e10: NaN loss, which only training finds


@pytest.fixture(scope="module")
def grid_sweep(mnist_dir, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("outputs")
    done = cli("cnnlab.train", "-m", GRID, *TINY, output_dir=output_dir)
    return sweep_dir_of(output_dir), done


def test_failed_trial_is_recorded_and_the_sweep_goes_on(grid_sweep):
    sweep_dir, done = grid_sweep
    assert done.returncode == 1, done.stderr[-3000:]
    rows = leaderboard(sweep_dir)
    assert [r["status"] for r in rows] == ["finished"] * 3 + ["failed"]
    failed = rows[-1]
    assert failed["trial"] == "3" and "likely too high" in failed["error"]
    accs = [float(r["val/acc"]) for r in rows[:3]]
    assert accs == sorted(accs, reverse=True) and all(0.2 < a <= 1 for a in accs)
    for row in rows[:3]:  # the trials around the failure are intact and complete
        result = result_of(sweep_dir / row["dir"])
        assert result["status"] == "finished" and float(row["test/acc"]) == result["test/acc"]
        assert (sweep_dir / row["dir"] / "checkpoints" / "last.ckpt").is_file()
    assert "| rank | trial | status | precision | val/acc" in done.stdout  # printed, written
    assert (sweep_dir / "leaderboard.md").read_text() in done.stdout
    assert "cnnlab: error: trial 3 failed: " in done.stderr


def test_every_trial_has_its_own_tensorboard_run_with_real_hparams(grid_sweep):
    sweep_dir, _ = grid_sweep
    for num, lr in [(0, "0.001"), (1, "0.002"), (2, "0.003")]:
        run = trial_dir(sweep_dir, num) / "tensorboard"
        events = EventAccumulator(str(run), size_guidance={"tensors": 0}).Reload()
        assert events.Scalars("hp/val_acc")[0].value == pytest.approx(
            result_of(run.parent)["val/acc"]
        )
        assert f"optimizer.lr={lr}" in result_of(run.parent)["overrides"]


def test_leaderboard_can_be_rebuilt_from_the_sweep_directory(grid_sweep, tmp_path):
    sweep_dir, _ = grid_sweep
    copy = shutil.copytree(sweep_dir, tmp_path / "sweep")
    (copy / "leaderboard.csv").unlink()
    done = cli("cnnlab.leaderboard", str(copy), output_dir=tmp_path)
    assert done.returncode == 1  # like the sweep: a trial failed
    assert leaderboard(copy) == leaderboard(sweep_dir)
    missing = cli("cnnlab.leaderboard", str(tmp_path / "nope"), output_dir=tmp_path)
    assert missing.returncode == 2 and "nope: not a sweep directory" in missing.stderr


def test_resume_skips_finished_continues_unfinished_and_reruns_failed_trials(grid_sweep, tmp_path):
    sweep_dir, _ = grid_sweep
    copy = shutil.copytree(sweep_dir, tmp_path / "sweep")  # copy2 keeps the mtimes
    # An interrupted trial: killed mid-training, it left checkpoints but no result.json.
    (trial_dir(copy, 1) / "result.json").unlink()
    before = {n: (trial_dir(copy, n) / "result.json").stat().st_mtime_ns for n in (0, 2, 3)}
    done = cli("cnnlab.train", "-m", GRID, *TINY, f"resume={copy}", output_dir=tmp_path)
    assert done.returncode == 1  # the invalid trial ran again and failed again
    assert not (tmp_path / "sweeps").exists()  # no new sweep directory
    after = {n: (trial_dir(copy, n) / "result.json").stat().st_mtime_ns for n in (0, 2, 3)}
    assert after[0] == before[0] and after[2] == before[2]  # finished: skipped
    assert after[3] > before[3]  # failed: rerun
    resumed = result_of(trial_dir(copy, 1))  # unfinished: continued in place from last.ckpt
    assert resumed["status"] == "finished"
    assert resumed["continued_from"] == str(trial_dir(copy, 1) / "checkpoints" / "last.ckpt")
    assert not (trial_dir(copy, 1) / "attempt-1").exists()
    assert (trial_dir(copy, 3) / "attempt-1" / "result.json").is_file()  # failed: set aside
    assert done.stdout.count("Already finished, skipped (resume)") == 2
    assert [r["status"] for r in leaderboard(copy)] == ["finished"] * 3 + ["failed"]


def test_resume_of_a_missing_sweep_directory_is_one_line(tmp_path):
    done = cli("cnnlab.train", "-m", *TINY, f"resume={tmp_path / 'typo'}", output_dir=tmp_path)
    assert done.returncode == 2
    assert (
        "cnnlab: error: resume=" in done.stderr and "typo: no such sweep directory" in done.stderr
    )
    assert not (tmp_path / "typo").exists()


@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_launchers_run_trials_in_other_processes_with_the_same_isolation(
    mnist_dir, tmp_path, launcher
):
    done = cli(
        "cnnlab.train", "-m", f"launcher={launcher}", "optimizer.lr=0.001,1e10", *TINY,
        output_dir=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr[-3000:]
    sweep_dir = sweep_dir_of(tmp_path)
    assert [r["status"] for r in leaderboard(sweep_dir)] == ["finished", "failed"]
    finished = trial_dir(sweep_dir, 0)
    assert result_of(finished)["test/acc"] > 0.2
    threads = threads_per_job(2) if launcher == "joblib" else 1  # 2 jobs x 1 thread on 2 cores
    assert f"threads: {threads}" in (finished / "config.yaml").read_text()
    assert not list(sweep_dir.glob("*launcher=*"))  # the launcher does not rename trials


def test_optuna_search_tells_the_study_and_resumes_it(mnist_dir, tmp_path):
    search = ["hparams_search=optuna", "optimizer.lr=choice(0.001,0.002,1e10)", *TINY]
    first = cli("cnnlab.train", *search, "hydra.sweeper.n_trials=3", output_dir=tmp_path)
    assert first.returncode in (0, 1), first.stderr[-3000:]
    sweep_dir = sweep_dir_of(tmp_path)
    rows = leaderboard(sweep_dir)
    assert len(rows) == 3 and "Best trial #" in first.stderr + first.stdout
    for row in rows:  # the knob fixed on the command line is out of the space; others sampled
        assert (
            row["overrides"].count("trainer.max_epochs=") == 1
            and "optimizer.lr=" in row["overrides"]
        )
        assert row["overrides"].count("model.filters=") == 1
        assert (row["status"] == "failed") == ("optimizer.lr=10000000000.0" in row["overrides"])
    again = cli("cnnlab.train", *search, "hydra.sweeper.n_trials=4", f"resume={sweep_dir}",
                output_dir=tmp_path)  # fmt: skip
    assert again.returncode in (0, 1), again.stderr[-3000:]
    study = optuna.load_study(
        study_name="optuna_search", storage=f"sqlite:///{sweep_dir}/optuna.db"
    )
    states = [t.state.name for t in study.trials]
    assert len(states) == 4 and len(leaderboard(sweep_dir)) == 4  # 3 earlier trials + 1 new
    assert (sweep_dir / "figures" / "optuna_history.png").is_file()  # Optuna's own plot
    values = {t.number: t.value for t in study.trials if t.state.name == "COMPLETE"}
    for row in leaderboard(sweep_dir):
        if row["status"] == "finished":
            assert values[int(row["trial"])] == pytest.approx(float(row["val/acc"]))


def test_sweep_preset_runs_without_dash_m_and_command_line_narrows_it(mnist_dir, tmp_path):
    narrowed = ["model.kernel_size=3", "model.pool_size=2", "model.dropout=0.0,0.5"]
    done = cli("cnnlab.train", "sweep=arch", *narrowed, *TINY, output_dir=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    sweep_dir = sweep_dir_of(tmp_path)
    assert sweep_dir.name.endswith("_arch_sweep")
    rows = leaderboard(sweep_dir)  # the preset's 36 trials, narrowed to 2 by the command line
    dropouts = [o for r in rows for o in r["overrides"].split() if o.startswith("model.dropout")]
    assert sorted(dropouts) == ["model.dropout=0.0", "model.dropout=0.5"]
    assert not list(sweep_dir.glob("*sweep=arch*"))


def test_trial_dirnames_are_one_level_and_short_enough():
    assert short_dirname("data.data_dir=/tmp/x,seed=1") == "data.data_dir=_tmp_x,seed=1"
    long_a, long_b = "model.filters=1," * 20 + "seed=1", "model.filters=1," * 20 + "seed=2"
    assert len(short_dirname(long_a).encode()) == MAX_DIRNAME
    assert short_dirname(long_a) != short_dirname(long_b)  # the hash keeps trials apart


def test_a_read_only_sweep_still_prints_its_leaderboard(grid_sweep, tmp_path):
    sweep_dir, _ = grid_sweep
    with read_only_copy(sweep_dir, tmp_path) as copy:
        done = cli("cnnlab.leaderboard", str(copy), output_dir=tmp_path)
        assert done.returncode == 1 and "| rank |" in done.stdout
        assert "Traceback" not in done.stderr
        assert done.stderr.splitlines()[0].startswith(
            f"cnnlab: error: {copy}: leaderboard printed but not saved: {copy / 'leaderboard.csv'}"
            ": cannot write (Read-only file system)"
        )


def test_resuming_a_sweep_without_dash_m_is_refused_before_any_run(grid_sweep, tmp_path):
    sweep_dir, _ = grid_sweep
    done = cli("cnnlab.train", *TINY, f"resume={sweep_dir}", output_dir=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"cnnlab: error: resume={sweep_dir}: a sweep; add -m (and the sweep's own overrides)"
    )
    assert not (tmp_path / "runs").exists()  # no junk run directory


def configurations_of(sweep_dir) -> list[dict]:
    with (sweep_dir / "leaderboard_configurations.csv").open() as f:
        return list(csv.DictReader(f))


def test_trials_that_differ_only_in_seed_are_one_configuration(mnist_dir, tmp_path):
    knob = ["seed=1,2", "model.dense_units=16,32"]
    done = cli("cnnlab.train", "-m", *TINY, *knob, output_dir=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    sweep_dir = sweep_dir_of(tmp_path)
    trials = {r["trial"]: r for r in leaderboard(sweep_dir)}
    rows = configurations_of(sweep_dir)
    assert sorted(r["trials"] for r in rows) == ["0 2", "1 3"]  # Hydra's order: seed outermost
    names = sorted(path.name for path in sweep_dir.glob("[0-9]_*"))  # the swept knobs only
    assert names == ["0_model.dense_units=16,seed=1", "1_model.dense_units=32,seed=1",
                     "2_model.dense_units=16,seed=2", "3_model.dense_units=32,seed=2"]  # fmt: skip
    events = EventAccumulator(str(sweep_dir)).Reload()  # the sweep's own HPARAMS experiment
    experiment = HParamsPluginData.FromString(
        events.PluginTagToContent("hparams")["_hparams_/experiment"]
    ).experiment
    differ = [h.name for h in experiment.hparam_infos if h.differs]
    assert differ == ["model/dense_units", "seed"]  # what TensorBoard shows first
    trial = EventAccumulator(str(sweep_dir / names[0] / "tensorboard")).Reload()
    assert set(trial.PluginTagToContent("hparams")) == {  # the one experiment is the sweep's
        "_hparams_/session_start_info", "_hparams_/session_end_info",
    }  # fmt: skip
    for row in rows:
        units = {o for o in row["configuration"].split() if o.startswith("model.dense_units=")}
        assert len(units) == 1 and row["n"] == "2" and "seed=" not in row["configuration"]
    for row in rows:  # each row is its two trials' mean and (sample) std
        accs = [float(trials[t]["val/acc"]) for t in row["trials"].split()]
        assert float(row["val/acc mean"]) == pytest.approx(statistics.fmean(accs))
        assert float(row["val/acc std"]) == pytest.approx(statistics.stdev(accs))
    means = [float(r["val/acc mean"]) for r in rows]
    assert means == sorted(means, reverse=True) and [r["rank"] for r in rows] == ["1", "2"]
    markdown = (sweep_dir / "leaderboard.md").read_text()
    assert "| rank | configuration | n | val/acc |" in markdown and " ± " in markdown
    assert markdown in done.stdout
    for name in ("sweep_knobs", "sweep_tradeoffs"):  # figures, as PNGs and in TensorBoard
        with Image.open(sweep_dir / "figures" / f"{name}.png") as png:
            assert png.width > 500 and png.height > 250
    images = EventAccumulator(str(sweep_dir / "sweep_figures")).Reload().Tags()["images"]
    assert sorted(images) == ["sweep/sweep_knobs", "sweep/sweep_tradeoffs"]


def test_folds_preset_cross_validates_as_one_configuration(mnist_dir, tmp_path):
    done = cli("cnnlab.train", "sweep=folds", *TINY, output_dir=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    sweep_dir = sweep_dir_of(tmp_path)
    overrides = [result_of(sweep_dir / r["dir"])["overrides"] for r in leaderboard(sweep_dir)]
    folds = sorted(o for trial in overrides for o in trial if o.startswith("data.fold="))
    assert folds == [f"data.fold={k}" for k in range(5)]
    (row,) = configurations_of(sweep_dir)
    assert row["n"] == "5" and float(row["val/acc std"]) > 0  # five different validation sets
    config = (trial_dir(sweep_dir, 0) / "config.yaml").read_text()
    assert "folds: 5" in config and "fold: 0" in config
