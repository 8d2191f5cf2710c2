"""A sweep's leaderboard: one row per trial, best validation accuracy first; and one row per
configuration (trials that differ only in seed or fold, ``cnnlab.sweeps.configurations``).

Built only from the trials' own ``result.json`` files, so it can be rebuilt at any time (after a
crash, a resume, or while a sweep still runs) and every launcher (local, joblib, submitit,
Optuna) gets the same table. A trial directory without a result is listed as ``unfinished``;
a trial that Optuna's pruner stopped is ``pruned``, ranked after the finished ones.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from cnnlab.errors import say
from cnnlab.insight.sweep_figures import draw_sweep_figures, sweep_figures
from cnnlab.runs.files import WriteError, write_csv_atomically, write_text_atomically
from cnnlab.runs.results import (
    DONE,
    RESULT_FILE,
    hparams_of,
    read_result,
    result_problem,
    write_sweep_experiment,
)
from cnnlab.runs.swept import swept_keys
from cnnlab.sweeps import configurations

CSV_FILE = "leaderboard.csv"
MARKDOWN_FILE = "leaderboard.md"
COLUMNS = (
    "rank", "trial", "status", "precision", "val/acc", "test/acc", "val/loss", "test/loss",
    "params", "wall_time_s", "overrides", "error", "dir",
)  # fmt: skip
SHOWN = COLUMNS[:-1]  # the Markdown table leaves out the directory (the trial number names it)


def trial_dirs(sweep_dir: Path) -> list[Path]:
    """Directories Hydra made for trials (they hold ``.hydra``), in job-number order."""
    found = [
        d for d in sweep_dir.iterdir() if (d / ".hydra").is_dir() or (d / RESULT_FILE).is_file()
    ]
    return sorted(found, key=lambda d: (_job_number(d), d.name))


def _job_number(trial_dir: Path) -> int:
    head = trial_dir.name.split("_", 1)[0]
    return int(head) if head.isdigit() else sys.maxsize


def rows_of(sweep_dir: Path) -> list[dict[str, Any]]:
    """Leaderboard rows, ranked: finished trials by val/acc (best first), then pruned ones,
    then the others."""
    rows = []
    for trial_dir in trial_dirs(sweep_dir):
        record = read_result(trial_dir) or unfinished(trial_dir)
        row = {key: record.get(key) for key in COLUMNS}
        row.update(trial=_job_number(trial_dir), dir=trial_dir.name)
        shown = [o for o in record.get("overrides") or [] if not o.startswith("resume=")]
        row["overrides"] = " ".join(shown)
        rows.append(row)
    rows.sort(key=_rank_key)
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    return rows


def unfinished(trial_dir: Path) -> dict[str, Any]:
    """The row of a trial without a result: never started, still running, killed, or one whose
    result.json cannot be read (a disk fault), which the row says."""
    problem = result_problem(trial_dir)
    return {"status": "unfinished", "error": problem} if problem else {"status": "unfinished"}


def _rank_key(row: dict[str, Any]) -> tuple[int, float]:
    """Finished trials first, then pruned ones (their val/acc is of fewer epochs), each by
    val/acc; then the rest."""
    if row["status"] in DONE and row["val/acc"] is not None:
        return (DONE.index(row["status"]), -row["val/acc"])
    return (len(DONE), 0.0)


def _cell(value: Any, column: str) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.1f}" if column == "wall_time_s" else f"{value:.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("|", "\\|")


def shared_overrides(rows: list[dict[str, Any]]) -> set[str]:
    return set.intersection(*(set(row["overrides"].split()) for row in rows)) if rows else set()


def to_markdown(rows: list[dict[str, Any]], grouped: list[dict[str, Any]]) -> str:
    """The trials' table, then the configurations' (mean ± std over seeds and folds); the
    overrides every trial shares are listed once, above them."""
    shared = shared_overrides(rows)
    lines = [f"Overrides of every trial: {' '.join(sorted(shared)) or '(none)'}", ""]
    lines += ["| " + " | ".join(SHOWN) + " |", "|" + "---|" * len(SHOWN)]
    for row in rows:
        own = " ".join(o for o in row["overrides"].split() if o not in shared)
        cells = [_cell(own if c == "overrides" else row[c], c) for c in SHOWN]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Configurations (trials that differ only in seed or data.fold, finished ones):"]
    lines += ["", configurations.to_markdown(grouped, shared)]
    return "\n".join(lines)


def write_leaderboard(
    sweep_dir: Path, rows: list[dict[str, Any]], grouped: list[dict[str, Any]]
) -> None:
    """Write leaderboard.csv, leaderboard_configurations.csv and leaderboard.md into the sweep
    directory."""
    write_csv_atomically(sweep_dir / CSV_FILE, COLUMNS, rows)
    write_csv_atomically(sweep_dir / configurations.CSV_FILE, configurations.COLUMNS, grouped)
    write_text_atomically(sweep_dir / MARKDOWN_FILE, to_markdown(rows, grouped))


def _write_experiment(sweep_dir: Path, rows: list[dict[str, Any]]) -> None:
    """The sweep's HPARAMS columns, from a finished trial's resolved config, the swept
    knobs marked as differing."""
    configs = [sweep_dir / r["dir"] / "config.yaml" for r in rows if r["status"] == "finished"]
    if found := [path for path in configs if path.is_file()]:
        swept = swept_keys(sweep_dir) or []
        hparams = hparams_of(OmegaConf.load(found[0]))
        write_sweep_experiment(sweep_dir, hparams, [key.replace(".", "/") for key in swept])


def _write_hparams_and_figures(
    sweep_dir: Path, rows: list[dict[str, Any]], grouped: list[dict[str, Any]]
) -> bool:
    """The sweep's HPARAMS columns and figures (``cnnlab.insight.sweep_figures``); False if
    they could not be saved (said in one line: the leaderboard is written all the same)."""
    figures = sweep_figures(sweep_dir, rows, grouped, configurations.varied_knobs(rows))
    try:
        _write_experiment(sweep_dir, rows)
        drawn = draw_sweep_figures(sweep_dir, figures)
    except OSError as e:
        say(f"{sweep_dir}: sweep figures not saved: {e}")
        return False
    if drawn:
        print(f"Figures: {', '.join(str(path) for path in drawn)}")
    return True


def summarize(sweep_dir: Path, report_failures: bool = True) -> int:
    """Write and print the leaderboard; return the exit status a sweep should end with. Each
    trial that did not finish is one ``cnnlab: error:`` line (``report_failures``; a sweep a
    signal stopped says so in its own one line instead)."""
    rows = rows_of(sweep_dir)
    failed = [row for row in rows if row["status"] not in DONE]
    pruned = sum(row["status"] == "pruned" for row in rows)
    print(f"\nLeaderboard of {sweep_dir} ({len(rows)} trials, {pruned} pruned, "
          f"{len(failed)} not finished):")  # fmt: skip
    grouped = configurations.configurations(rows)  # one row per configuration
    print(to_markdown(rows, grouped))
    saved = True
    try:
        write_leaderboard(sweep_dir, rows, grouped)
        print(f"Written: {sweep_dir / MARKDOWN_FILE}, {sweep_dir / CSV_FILE}, "
              f"{sweep_dir / configurations.CSV_FILE}")  # fmt: skip
    except WriteError as e:  # a read-only sweep (an archive, a colleague's): printed, not saved
        say(f"{sweep_dir}: leaderboard printed but not saved: {e}")
        saved = False
    if saved:
        saved = _write_hparams_and_figures(sweep_dir, rows, grouped)
    print(f"TensorBoard: tensorboard --logdir {shlex.quote(str(sweep_dir))}")
    for row in failed if report_failures else []:
        say(f"trial {row['trial']} {row['status']}: {row['error'] or ''}")
    return 1 if failed or not saved else 0
