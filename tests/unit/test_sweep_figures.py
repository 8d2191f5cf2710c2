"""What the sweep figures show: the knobs a sweep varies and the Pareto front of its costs."""

from cnnlab.insight.sweep_figures import pareto_front, sweep_figures
from cnnlab.sweeps.configurations import configurations, varied_knobs


def trial(num: int, overrides: str, acc: float, params: int, status: str = "finished") -> dict:
    return {"trial": num, "overrides": overrides, "status": status, "val/acc": acc,
            "test/acc": acc, "val/loss": 0.1, "test/loss": 0.1, "params": params,
            "wall_time_s": 10.0 + num}  # fmt: skip


TRIALS = [
    trial(0, "seed=1 model.filters=16 trainer.max_epochs=2", 0.97, 100),
    trial(1, "seed=2 model.filters=16 trainer.max_epochs=2", 0.96, 100),
    trial(2, "seed=1 model.filters=32 trainer.max_epochs=2", 0.98, 400),
    trial(3, "seed=1 model.filters=64 trainer.max_epochs=2", 0.975, 1600),
    trial(4, "seed=1 model.kernel_size=30 trainer.max_epochs=2", 0.0, 0, status="failed"),
]


def test_the_knobs_are_what_varies_between_finished_trials_but_seeds():
    assert varied_knobs(TRIALS) == {"model.filters": {"16", "32", "64"}}


def test_the_pareto_front_keeps_what_no_cheaper_point_beats():
    costs, accs = [100, 400, 1600, 50, 400], [0.965, 0.98, 0.975, 0.9, 0.97]
    assert pareto_front(costs, accs) == [3, 0, 1]  # 1600 is beaten by the cheaper 400


def test_a_sweep_gets_knob_and_tradeoff_figures_and_no_optuna_ones(tmp_path):
    figures = sweep_figures(tmp_path, TRIALS, configurations(TRIALS), varied_knobs(TRIALS))
    assert sorted(figures) == ["sweep_knobs", "sweep_tradeoffs"]
    (knobs,) = [ax for ax in figures["sweep_knobs"].axes if ax.get_xlabel()]
    assert knobs.get_xlabel() == "model.filters"
    labels = [text.get_text() for text in figures["sweep_tradeoffs"].axes[0].texts]
    assert sorted(labels) == ["filters=16", "filters=32", "filters=64"]


def test_trials_without_a_cost_are_left_off_the_tradeoffs_not_a_typeerror(tmp_path):
    costless = [{**t, "params": None} if t["trial"] == 2 else t for t in TRIALS]
    figures = sweep_figures(tmp_path, costless, configurations(costless), varied_knobs(costless))
    by_params, by_time = figures["sweep_tradeoffs"].axes[:2]
    assert sorted(t.get_text() for t in by_params.texts) == ["filters=16", "filters=64"]
    assert len(by_time.texts) == 3
