"""The leaderboard's configurations table: repeats (seed, fold) grouped, mean ± std, ranked."""

import pytest

from cnnlab.sweeps.configurations import configuration_of, configurations, to_markdown


def trial(num: int, overrides: str, acc: float | None, status: str = "finished") -> dict:
    metrics = {"val/acc": acc, "test/acc": acc, "val/loss": 0.1, "test/loss": None}
    return {"trial": num, "overrides": overrides, "status": status, **metrics}


def test_seed_and_fold_overrides_do_not_make_a_configuration():
    assert configuration_of("seed=3 model.filters=16 +data.fold=2") == "model.filters=16"
    assert configuration_of("model.filters=16 optimizer.lr=0.01") == configuration_of(
        "optimizer.lr=0.01 model.filters=16 seed=1"
    )


def test_configurations_are_ranked_by_mean_with_sample_std_and_only_finished_trials():
    trials = [
        trial(0, "seed=1 model.filters=16", 0.98),
        trial(1, "seed=2 model.filters=16", 0.96),
        trial(2, "seed=1 model.filters=32", 0.985),
        trial(3, "seed=2 model.filters=32", 0.0, status="failed"),
        trial(4, "seed=3 model.filters=32", 0.975),
    ]
    best, second = configurations(trials)
    assert (best["configuration"], best["n"], best["trials"]) == ("model.filters=32", 2, "2 4")
    assert best["val/acc mean"] == pytest.approx(0.98)
    assert best["val/acc std"] == pytest.approx(0.00707, abs=1e-5)  # sample std of 2
    assert second["val/acc mean"] == pytest.approx(0.97) and second["rank"] == 2
    assert best["test/loss mean"] is None  # never measured: left blank, not 0
    table = to_markdown([best, second], shared=set())
    assert "| 1 | model.filters=32 | 2 | 0.9800 ± 0.0071 |" in table


def test_a_sweep_without_repeats_says_so():
    rows = configurations([trial(0, "model.filters=16", 0.98), trial(1, "model.filters=32", 0.97)])
    assert [row["n"] for row in rows] == [1, 1]
    assert to_markdown(rows, shared=set()).startswith("No trials differ only in seed or data.fold")
