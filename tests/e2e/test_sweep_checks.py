"""Sweeps checked before any trial trains (issue 33), through the real CLI: bad values,
sizes, duplicates and a resume with other values are refused in one line with nothing
written; a resumed Optuna search explores new points; a resumed finished sweep rewrites
nothing."""

from __future__ import annotations

import optuna

from tests.helpers import OPTUNA_EPOCHS_ONLY, TINY, cli, leaderboard, sweep_dir_of, trial_dir


def refused(done, *words: str) -> str:
    assert done.returncode == 2, done.stderr[-3000:]
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("cnnlab: error: ") and all(w in line for w in words), line
    return line


def test_a_bad_value_is_refused_before_any_trial_trains(mnist_dir, tmp_path):
    done = cli("cnnlab.train", "-m", "model.dropout=0.1,-0.2", *TINY, output_dir=tmp_path)
    refused(done, "model.dropout=-0.2")
    assert not (tmp_path / "sweeps").exists()  # trial 0 (a good value) never trained
    search = cli("cnnlab.train", *OPTUNA_EPOCHS_ONLY, "model.dropout=interval(-0.5,-0.1)",
                 output_dir=tmp_path)  # fmt: skip
    refused(search, "model.dropout=-0.5")
    assert not (tmp_path / "sweeps").exists()


def test_an_empty_value_makes_no_sweep_directory(mnist_dir, tmp_path):
    refused(cli("cnnlab.train", "-m", "model.filters=", *TINY[1:], output_dir=tmp_path), "filters")
    assert not (tmp_path / "sweeps").exists()


def test_a_big_grid_is_sized_at_once_and_refused(tmp_path):
    grid = ["model.filters=1,2,3,4,5,6,7,8,9,10", "seed=range(10)", "model.dense_units=range(1,11)"]
    done = cli("cnnlab.train", "-m", *grid, *TINY[1:], output_dir=tmp_path, timeout=60)
    refused(done, "1000 trials", "hydra.sweeper.max_trials=1000")
    assert not (tmp_path / "sweeps").exists()


def test_a_value_given_twice_is_one_trial(mnist_dir, tmp_path):
    done = cli("cnnlab.train", "-m", "model.filters=8,8", *TINY[1:], output_dir=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Sweep: 1 trial," in done.stdout
    assert len(leaderboard(sweep_dir_of(tmp_path))) == 1


def test_resume_with_other_values_is_refused_and_a_finished_sweep_is_left_as_it_was(
    mnist_dir, tmp_path
):
    sweep = ["-m", "model.dense_units=4,8", *TINY]
    assert cli("cnnlab.train", *sweep, output_dir=tmp_path).returncode == 0
    sweep_dir = sweep_dir_of(tmp_path)
    files = sorted(p for p in sweep_dir.rglob("*") if p.is_file())
    before = {p: p.read_bytes() for p in files}
    other = cli("cnnlab.train", "-m", "model.dense_units=4,16", *TINY, f"resume={sweep_dir}",
                output_dir=tmp_path)  # fmt: skip
    refused(other, "model.dense_units=4,8", "model.dense_units=4,16")
    assert {p: p.read_bytes() for p in files} == before  # nothing changed
    again = cli("cnnlab.train", *sweep, f"resume={sweep_dir}", output_dir=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("Already finished, skipped (resume)") == 2
    for num in (0, 1):  # not launched again: Hydra did not rewrite its .hydra/ files
        overrides = trial_dir(sweep_dir, num) / ".hydra" / "overrides.yaml"
        assert overrides.read_bytes() == before[overrides]


def test_a_resumed_optuna_search_draws_new_points(mnist_dir, tmp_path):
    search = [*OPTUNA_EPOCHS_ONLY, "model.dropout=interval(0.0,0.5)"]
    first = cli("cnnlab.train", *search, "hydra.sweeper.n_trials=2", output_dir=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    sweep_dir = sweep_dir_of(tmp_path)
    again = cli("cnnlab.train", *search, "hydra.sweeper.n_trials=4", f"resume={sweep_dir}",
                output_dir=tmp_path)  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    study = optuna.load_study(study_name="optuna_search",
                              storage=f"sqlite:///{sweep_dir}/optuna.db")  # fmt: skip
    dropouts = [t.params["model.dropout"] for t in study.trials]
    assert len(dropouts) == 4 and len(set(dropouts)) == 4  # not the first two again


def test_a_directory_that_is_a_file_is_one_line_for_a_run_and_a_sweep(mnist_dir, tmp_path):
    (tmp_path / "afile").write_text("mine")
    run = [f"hydra.run.dir={tmp_path / 'afile' / 'run'}"]
    sweep = ["-m", "model.filters=8,16", f"hydra.sweep.dir={tmp_path / 'afile'}"]
    for args in (run, sweep):
        done = cli("cnnlab.train", *args, *TINY[1:], output_dir=tmp_path)
        refused(done, f"{tmp_path / 'afile'} is a file, not a directory")
    assert (tmp_path / "afile").read_text() == "mine"
