"""Figures of a whole sweep, to look at rather than read, drawn when its leaderboard is written.

- ``sweep_knobs.png``: validation accuracy against each knob the sweep varies, one point per
  configuration (its mean over seeds and folds, with ± std bars where n > 1);
- ``sweep_tradeoffs.png``: validation accuracy against parameter count and against wall time,
  the Pareto front (no other configuration both better and cheaper) marked;
- for an Optuna search, Optuna's own matplotlib plots: ``optuna_history.png`` (optimisation
  history) and ``optuna_importances.png`` (parameter importances).

PNGs go into ``<sweep dir>/figures/``; the same images into a TensorBoard run of the sweep
(``<sweep dir>/sweep_figures``, IMAGES tab), beside the trials' own runs.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

FIGURES_DIR = "figures"
TENSORBOARD_RUN = "sweep_figures"
OPTUNA_DB = "optuna.db"
MAX_LABELLED_KNOBS = 3  # a point's label lists at most this many knob values
# what a configuration costs: (trial result key, axis label, log scale)
COSTS = [("params", "parameters", True), ("wall_time_s", "wall time per trial (s)", False)]


def _as_numbers(values: list[str]) -> list[float] | None:
    try:
        return [float(v) for v in values]
    except ValueError:
        return None


def knobs_figure(configs: list[dict[str, Any]], knobs: dict[str, set[str]]) -> Figure:
    """Mean val/acc of each configuration against each varied knob, ± std where n > 1."""
    cols = min(3, len(knobs))
    rows = -(-len(knobs) // cols)
    fig = Figure(figsize=(max(6.0, 4.2 * cols), 3.6 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[len(knobs) :]:
        ax.set_axis_off()
    for ax, key in zip(axes, sorted(knobs), strict=False):
        shown = [c for c in configs if key in c["values"]]
        labels = [c["values"][key] for c in shown]
        numbers = _as_numbers(labels)
        if numbers is None:  # categories, in sorted order
            order = sorted(set(labels))
            xs = [order.index(label) for label in labels]
            ax.set_xticks(range(len(order)), order)
        else:
            xs = numbers
            if min(numbers) > 0 and max(numbers) / min(numbers) > 20:
                ax.set_xscale("log")  # a learning rate, say
        ys = [c["val/acc mean"] for c in shown]
        errors = [c["val/acc std"] or 0.0 for c in shown]
        ax.errorbar(xs, ys, yerr=errors, fmt="o", capsize=4, alpha=0.8)
        ax.margins(0.15)
        ax.set_xlabel(key)
        ax.set_ylabel("val/acc (mean ± std over seeds/folds)")
        ax.grid(alpha=0.3)
    fig.suptitle("val/acc against each swept knob (a point: one configuration)", fontsize=10)
    return fig


def pareto_front(costs: list[float], accs: list[float]) -> list[int]:
    """Indices of the points no other point beats on both counts (cheaper or equal and more
    accurate), cheapest first."""
    order = sorted(range(len(costs)), key=lambda i: (costs[i], -accs[i]))
    front, best = [], -math.inf
    for i in order:
        if accs[i] > best:
            front.append(i)
            best = accs[i]
    return front


def tradeoffs_figure(
    configs: list[dict[str, Any]], trials: list[dict[str, Any]], knobs: dict[str, set[str]]
) -> Figure:
    """Mean val/acc against parameters and against mean wall time, Pareto fronts marked, each
    point labelled with its values of the varied knobs."""
    by_number = {t["trial"]: t for t in trials}
    fig = Figure(figsize=(9.5, 3.8), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, (key, label, log) in zip(axes, COSTS, strict=True):
        means = [(c, _mean(by_number, c["trials"], key)) for c in configs]
        known = [(c, cost) for c, cost in means if cost is not None and (cost > 0 or not log)]
        costs = [cost for _, cost in known]
        accs = [c["val/acc mean"] for c, _ in known]
        labels = [_label(c, knobs) for c, _ in known]
        ax.scatter(costs, accs, alpha=0.7, label="configuration")
        front = pareto_front(costs, accs)
        ax.plot([costs[i] for i in front], [accs[i] for i in front], "r.-", label="Pareto front")
        for cost, acc, text in zip(costs, accs, labels, strict=True):
            ax.annotate(text, (cost, acc), fontsize=7, xytext=(4, 4), textcoords="offset points")
        ax.margins(0.2)
        if log:
            ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("val/acc (mean)")
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    fig.suptitle("val/acc against cost (red: the Pareto front, not beaten by a cheaper one)")
    return fig


def _label(config: dict[str, Any], knobs: dict[str, set[str]]) -> str:
    """``model.filters=16 model.dropout=0.5`` -> ``filters=16 dropout=0.5`` (varied knobs,
    numbers to 4 significant digits); with more knobs than a label can hold (an Optuna search),
    the trial numbers, as the leaderboard lists them: ``#3`` or ``#1,#4``."""
    values = config["values"]
    shown = [key for key in sorted(knobs) if key in values]
    if len(shown) > MAX_LABELLED_KNOBS:
        return ",".join(f"#{n}" for n in config["trials"].split())
    return " ".join(f"{key.rsplit('.', 1)[-1]}={_short(values[key])}" for key in shown)


def _short(value: str) -> str:
    try:
        number = float(value)
    except ValueError:
        return value
    return value if number.is_integer() or len(value) <= 6 else f"{number:.4g}"


def _mean(by_number: dict[int, dict[str, Any]], numbers: str, key: str) -> float | None:
    """The trials' mean ``key``; None where none of them recorded it (a network without
    parameters, a trial skipped on resume that never recorded its wall time)."""
    values = [float(v) for n in numbers.split() if (v := by_number[int(n)].get(key)) is not None]
    return sum(values) / len(values) if values else None


def optuna_figures(sweep_dir: Path) -> dict[str, Figure]:
    """Optuna's own history and importance plots of the sweep's study, if it has one."""
    if not (sweep_dir / OPTUNA_DB).is_file():
        return {}
    import optuna  # only Optuna searches need it
    from matplotlib import pyplot
    from optuna.visualization import matplotlib as optuna_plots

    storage = f"sqlite:///{sweep_dir / OPTUNA_DB}"
    figures = {}
    for name in optuna.get_all_study_names(storage):
        study = optuna.load_study(study_name=name, storage=storage)
        with warnings.catch_warnings():  # "experimental" warnings of optuna's matplotlib API
            warnings.simplefilter("ignore")
            figures["optuna_history"] = optuna_plots.plot_optimization_history(study).figure
            complete = [t for t in study.trials if t.state.name == "COMPLETE"]
            if len(complete) >= 2 and len({str(t.params) for t in complete}) >= 2:
                figures["optuna_importances"] = optuna_plots.plot_param_importances(study).figure
    for fig in figures.values():
        pyplot.close(fig)  # Optuna draws through pyplot: out of its registry (still savable)
        fig.set_size_inches(8, 4.5)
        fig.tight_layout()  # room for the parameters' names
        fig.axes[0].set_ylabel("val/acc" if fig is figures["optuna_history"] else "parameter")
    return figures


def sweep_figures(
    sweep_dir: Path,
    trials: list[dict[str, Any]],
    configs: list[dict[str, Any]],
    knobs: dict[str, set[str]],
) -> dict[str, Any]:
    """Every figure this sweep has data for, by name: from its trials (leaderboard rows), their
    configurations (``cnnlab.sweeps.configurations``) and the knobs that vary."""
    configs = [c for c in configs if c["val/acc mean"] is not None]
    figures: dict[str, Any] = {}
    if configs and knobs:
        figures["sweep_knobs"] = knobs_figure(configs, knobs)
    if configs:
        figures["sweep_tradeoffs"] = tradeoffs_figure(configs, trials, knobs)
    return {**figures, **optuna_figures(sweep_dir)}


def draw_sweep_figures(sweep_dir: Path, figures: dict[str, Any]) -> list[Path]:
    """Save the sweep's figures as PNGs and as TensorBoard images; the PNGs' paths."""
    from torch.utils.tensorboard import SummaryWriter  # torch's, as Lightning's logger uses

    if not figures:
        return []
    out = sweep_dir / FIGURES_DIR
    out.mkdir(exist_ok=True)
    paths = []
    with SummaryWriter(str(sweep_dir / TENSORBOARD_RUN)) as writer:
        for name, fig in figures.items():
            fig.savefig(out / f"{name}.png", dpi=110)
            paths.append(out / f"{name}.png")
            writer.add_figure(f"sweep/{name}", fig, close=False)
    return paths
