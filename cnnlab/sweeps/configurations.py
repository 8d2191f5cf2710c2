"""The leaderboard's noise-aware table: trials that differ only in ``seed`` or ``data.fold`` are
one configuration, reported as n and mean ± std of each metric, ranked by mean val/acc.

Seeds alone move the lesson's test accuracy by about ±0.1 %, as much as most differences a
filters or dropout sweep finds, so the rank of single trials is mostly noise: the mean over
seeds (or cross-validation folds) is what to compare, and the std says how far apart two means
must be before the difference means anything. Only finished trials count.
"""

from __future__ import annotations

import statistics
from typing import Any

REPLICA_KEYS = ("seed", "data.fold")  # overrides that make repeats of one configuration
METRICS = ("val/acc", "test/acc", "val/loss", "test/loss")
CSV_FILE = "leaderboard_configurations.csv"
COLUMNS = (
    "rank", "configuration", "n",
    *(f"{metric} {stat}" for metric in METRICS for stat in ("mean", "std")),
    "trials",
)  # fmt: skip


def override_key(override: str) -> str:
    """The key a leaderboard's override text sets: ``+a.b=1``, ``~a.b`` and ``a.b=1`` all set
    ``a.b``. (A row's overrides are one string, split at spaces: text, which Hydra's parser
    may refuse, where a leaderboard must always be written.)"""
    return override.split("=", 1)[0].lstrip("+~")


def values_of(overrides: str) -> dict[str, str]:
    """``model.filters=16 +x=1`` -> ``{"model.filters": "16", "x": "1"}``."""
    pairs = (o.split("=", 1) for o in overrides.split() if "=" in o)
    return {override_key(key): value for key, value in pairs}


def varied_knobs(trials: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Override keys (and their values) that differ between finished trials, seeds and folds
    left out: what the sweep compares."""
    values: dict[str, set[str]] = {}
    for trial in trials:
        if trial["status"] == "finished":
            for key, value in values_of(trial["overrides"]).items():
                if key not in REPLICA_KEYS:
                    values.setdefault(key, set()).add(value)
    return {key: found for key, found in values.items() if len(found) > 1}


def configuration_of(overrides: str, precision: str | None = None) -> str:
    """A trial's overrides without those that only repeat it (seed, fold), in a fixed order,
    with the precision it trained in: ``trainer.precision=auto`` picks by the machine's
    hardware, so trials run on different machines are different configurations."""
    keys = (*REPLICA_KEYS, "trainer.precision") if precision else REPLICA_KEYS
    kept = [o for o in overrides.split() if override_key(o) not in keys]
    if precision:
        kept.append(f"trainer.precision={precision}")
    return " ".join(sorted(kept))


def configurations(trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per configuration of the finished trials, best mean val/acc first."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for trial in trials:
        if trial["status"] == "finished":
            key = configuration_of(trial["overrides"], trial.get("precision"))
            groups.setdefault(key, []).append(trial)
    rows = [_row(configuration, members) for configuration, members in groups.items()]
    rows.sort(key=lambda row: -row["val/acc mean"] if row["val/acc mean"] is not None else 1.0)
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    return rows


def _row(configuration: str, members: list[dict[str, Any]]) -> dict[str, Any]:
    row: dict[str, Any] = {"configuration": configuration, "n": len(members)}
    row["values"] = values_of(configuration)  # for figures; not a CSV column
    for metric in METRICS:
        values = [m[metric] for m in members if m.get(metric) is not None]
        row[f"{metric} mean"] = statistics.fmean(values) if values else None
        row[f"{metric} std"] = statistics.stdev(values) if len(values) > 1 else None
    row["trials"] = " ".join(str(m["trial"]) for m in sorted(members, key=lambda m: m["trial"]))
    return row


def has_repeats(rows: list[dict[str, Any]]) -> bool:
    return any(row["n"] > 1 for row in rows)


def to_markdown(rows: list[dict[str, Any]], shared: set[str]) -> str:
    """The table, configurations shown without the overrides every trial shares (the
    precision too, where every one trained in the same)."""
    if not has_repeats(rows):
        return "No trials differ only in seed or data.fold: one trial per configuration.\n"
    shared = shared | set.intersection(*(set(row["configuration"].split()) for row in rows))
    head = ["rank", "configuration", "n", *METRICS, "trials"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        own = " ".join(o for o in row["configuration"].split() if o not in shared) or "(shared)"
        stats = [_mean_std(row[f"{m} mean"], row[f"{m} std"]) for m in METRICS]
        lines.append(
            f"| {row['rank']} | {own} | {row['n']} | {' | '.join(stats)} | {row['trials']} |"
        )
    return "\n".join(lines) + "\n"


def _mean_std(mean: float | None, std: float | None) -> str:
    if mean is None:
        return ""
    return f"{mean:.4f}" if std is None else f"{mean:.4f} ± {std:.4f}"
