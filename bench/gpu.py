"""``bash bench/gpu.sh RESULTS [--cpu-dry-run]``: cnnlab on a GPU machine, measured in one call.

Each side runs in its own process through the real CLI (``bench.jobs``), one after another:

1. cnnlab at its defaults (``trainer=gpu``, 5 epochs, tested): images/s, the fit's seconds
   (``train_s``), the whole command's seconds and test accuracy;
2. the plain PyTorch loop (eager) at the same precision, one epoch: the images/s to match;
3. cnnlab with N steps per execution (``speed=executions``: what it is for, steps of about a
   millisecond) and with ``speed.compile=reduce-overhead`` (CUDA graphs of the network's
   forward and backward), one epoch each;
4. a 4-trial sweep, one trial after another and 4 at once sharing the GPU
   (``launcher=joblib hydra.launcher.n_jobs=4``): aggregate images/s.

Writes ``gpu.json`` and ``gpu.md`` into RESULTS. ``--cpu-dry-run`` runs every step on this
machine's CPU with a few batches each, to check the script before spending GPU time on it.
"""

from __future__ import annotations

import argparse
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
import torch

from bench.harness import bench_sweep
from bench.jobs import BenchError, cnnlab_job, cnnlab_result, run_timed
from bench.rounds import plain_job, plain_result
from cnnlab.errors import fail
from cnnlab.runs.results import write_json

# The GPU bench's bars (the GPU run; a dry run reports them, meaningless on CPU)
BARS = {"cnnlab/plain images_per_s": 0.95, "fit_s": 1.5, "end_to_end_s": 15.0}
# a dry run's epoch: 80 batches, so both meters close a window (past the 32-step warm-up, a
# window of 32 steps; executions of 16 close theirs at 32 and 64 too)
DRY = ["trainer.limit_train_batches=80", "trainer.limit_val_batches=2",
       "trainer.limit_test_batches=2"]  # fmt: skip
DRY_EPOCHS = ["trainer.max_epochs=2"]  # the defaults' 5 epochs, in a dry run
ONE_EPOCH = ["trainer.max_epochs=1", "test=false"]
WAYS = {  # cnnlab variants timed for one epoch beside the defaults
    "cnnlab executions": ["speed=executions"],
    "cnnlab CUDA graphs": ["speed.compile=reduce-overhead"],
}


def measure(out: Path, dry: bool) -> dict[str, Any]:
    """Every side of the GPU bench, in order; each one's row. A side that fails is recorded
    (its log named) and the others still run: the GPU call is not repeated for one failure."""
    base = ["trainer=cpu" if dry else "trainer=gpu", *(DRY if dry else [])]
    rows = {
        "cnnlab": attempt(cnnlab_side, out / "cnnlab", [*base, *(DRY_EPOCHS if dry else [])]),
        "plain": attempt(plain_side, out / "plain", [*base, *ONE_EPOCH]),
    }
    for way, extra in WAYS.items():
        here = out / way.replace(" ", "_").replace("=", "-")
        rows[way] = attempt(cnnlab_side, here, [*base, *ONE_EPOCH, *extra])
    for name, row in rows.items():
        print(f"{name}: {row.get('images_per_s')} images/s, {row.get('train_s')} s training")
    sweep_args = argparse.Namespace(sweep=4, sweep_epochs=1, sweep_steps=10 if dry else None)
    parallel = ["launcher=joblib", "hydra.launcher.n_jobs=4"]
    sweep = attempt(bench_sweep, out / "sweep", base, sweep_args, parallel)
    return {"rows": rows, "sweep": sweep}


def cnnlab_side(here: Path, overrides: list[str]) -> dict[str, Any]:
    return cnnlab_result(here, run_timed(*cnnlab_job(here, overrides)))


def plain_side(here: Path, overrides: list[str]) -> dict[str, Any]:
    return plain_result(here, run_timed(*plain_job(here, overrides)))


def attempt(side: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """``side(*args)``, or what stopped it (``bench.jobs`` exits naming the side's log)."""
    try:
        return side(*args)
    except SystemExit as stopped:
        return {"error": f"exit {stopped.code}: see the line above and the side's log"}


def summary(measured: dict[str, Any], dry: bool) -> dict[str, Any]:
    """The numbers the bars are about (None where a side failed)."""
    rows = measured["rows"]
    cnnlab = rows["cnnlab"]
    return {
        "device": platform.processor() or "cpu" if dry else torch.cuda.get_device_name(0),
        "dry_run": dry,
        "torch": torch.__version__,
        "hydra": hydra.__file__,  # the carried wheel's copy, on the GPU machine
        "cnnlab/plain images_per_s": ratio(cnnlab, rows["plain"], "images_per_s"),
        "fit_s": cnnlab.get("train_s"),
        "end_to_end_s": cnnlab.get("wall_s"),
        "test_acc": cnnlab.get("test_acc"),
        "executions/default images_per_s": ratio(rows["cnnlab executions"], cnnlab, "images_per_s"),
        "CUDA graphs/default images_per_s": ratio(
            rows["cnnlab CUDA graphs"], cnnlab, "images_per_s"
        ),
        "sweep parallel/sequential": measured["sweep"].get("parallel/sequential"),
    }


def ratio(a: dict[str, Any], b: dict[str, Any], key: str) -> float | None:
    return round(a[key] / b[key], 3) if a.get(key) and b.get(key) else None


def markdown(report: dict[str, Any]) -> str:
    head = report["summary"]
    kind = "CPU DRY RUN (numbers mean nothing)" if head["dry_run"] else head["device"]
    lines = [f"# GPU bench: {kind}, torch {head['torch']}", "",
             "| side | images/s | ms/step | training s | end-to-end s | test acc |",
             "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for name, row in report["rows"].items():
        cells = [row.get("images_per_s"), row.get("median_step_ms"), row.get("train_s"),
                 row.get("wall_s"), row.get("test_acc")]  # fmt: skip
        lines.append(f"| {name} | " + " | ".join(_cell(c) for c in cells) + " |")
    lines += ["", "| measure | value | bar |", "|---|---:|---:|"]
    for key, value in head.items():
        if key not in ("device", "dry_run", "torch", "hydra"):
            lines.append(f"| {key} | {_cell(value)} | {BARS.get(key, '')} |")
    if "sequential" in (sweep := report["sweep"]):
        lines += ["", "Sweep of 4 trials: " + ", ".join(
            f"{way} {sweep[way]['images_per_s']:.0f} images/s in {sweep[way]['wall_s']:.1f} s"
            for way in ("sequential", "parallel"))]  # fmt: skip
    failed = [name for name, row in {**report["rows"], "sweep": sweep}.items() if "error" in row]
    if failed:
        lines += ["", f"Failed (see their logs under runs/): {', '.join(failed)}"]
    return "\n".join(lines) + "\n"


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", type=Path, help="folder for gpu.json and gpu.md (new or empty)")
    p.add_argument("--cpu-dry-run", action="store_true", help="every step on CPU, a few batches")
    args = p.parse_args(argv)
    if args.results.is_dir() and any(args.results.iterdir()):
        fail(BenchError(f"{args.results}: not empty; the GPU bench needs a new folder"))
    if not args.cpu_dry_run and not torch.cuda.is_available():
        fail(BenchError("no CUDA device here; --cpu-dry-run checks the script on CPU"))
    measured = measure(args.results / "runs", args.cpu_dry_run)
    report = {"summary": summary(measured, args.cpu_dry_run), **measured}
    write_json(args.results / "gpu.json", report)
    (args.results / "gpu.md").write_text(markdown(report))
    print(markdown(report))
    return report


if __name__ == "__main__":
    main()
