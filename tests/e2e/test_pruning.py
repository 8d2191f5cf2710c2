"""Optuna pruning for real: trials in their own processes (the joblib launcher) report val/acc
to the study's SQLite storage every epoch; a pruned trial stops, keeps its files, exits 0, is
"pruned" in result.json, the leaderboard and Optuna, and frees its slot for the next trial."""

import optuna
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.helpers import (
    OPTUNA_EPOCHS_ONLY,
    cli,
    leaderboard,
    result_of,
    sweep_dir_of,
    threshold_pruner,
)

SEARCH = [*OPTUNA_EPOCHS_ONLY, "trainer.max_epochs=choice(1,12)", *threshold_pruner(10),
          "launcher=joblib", "hydra.sweeper.n_jobs=2"]  # fmt: skip


def test_pruned_trials_stop_keep_their_files_free_their_slot_and_resume(mnist_dir, tmp_path):
    done = cli("cnnlab.train", *SEARCH, "hydra.sweeper.n_trials=4", output_dir=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "(4 trials, 2 pruned, 0 not finished)" in done.stdout
    sweep_dir = sweep_dir_of(tmp_path)
    study = optuna.load_study(
        study_name="optuna_search", storage=f"sqlite:///{sweep_dir}/optuna.db"
    )
    trials = {t.number: t for t in study.trials}
    assert [trials[n].params["trainer.max_epochs"] for n in range(4)] == [12, 1, 1, 12]  # seeded
    rows = {int(row["trial"]): row for row in leaderboard(sweep_dir)}
    for number, trial in trials.items():
        result = result_of(sweep_dir / rows[number]["dir"])
        if trial.params["trainer.max_epochs"] == 1:
            assert trial.state.name == "COMPLETE" and result["status"] == "finished"
            assert trial.value == result["val/acc"] and list(trial.intermediate_values) == [1]
            continue
        assert trial.state.name == "PRUNED" and result["status"] == "pruned"
        assert result["pruned_after_epochs"] == 10 and rows[number]["status"] == "pruned"
        assert list(trial.intermediate_values) == list(range(1, 11))  # one report an epoch
        assert trial.value == trial.intermediate_values[10]  # Optuna: the last report
        run_dir = sweep_dir / rows[number]["dir"]
        assert (run_dir / "checkpoints" / "last.ckpt").is_file() and result["test/acc"] > 0
        curves = EventAccumulator(str(run_dir / "tensorboard")).Reload()
        assert len(curves.Scalars("val/acc")) == 10  # its curves, up to where it stopped
    ranked = [row["status"] for row in leaderboard(sweep_dir)]
    assert ranked == ["finished", "finished", "pruned", "pruned"]
    # the slot freed: trial 2 started as trial 1 ended, while trial 0 was still training
    assert trials[1].datetime_complete <= trials[2].datetime_start < trials[0].datetime_complete

    again = cli("cnnlab.train", *SEARCH, "hydra.sweeper.n_trials=5", f"resume={sweep_dir}",
                output_dir=tmp_path)  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    states = [t.state.name for t in optuna.load_study(
        study_name="optuna_search", storage=f"sqlite:///{sweep_dir}/optuna.db").trials]  # fmt: skip
    assert states[:4] == [trials[n].state.name for n in range(4)] and len(states) == 5
    assert len(leaderboard(sweep_dir)) == 5
