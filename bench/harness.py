"""``python -m bench [overrides]`` (``make bench``): cnnlab vs. a plain loop vs. the seed.

In one run on one machine, each in its own process:

1. cnnlab through its real CLI and Trainer (default config + ``overrides``), 5 epochs, tested;
2. the hand-written PyTorch loop of ``bench.plain_loop`` with the same model, data tensors,
   optimizer and precision, against cnnlab in ``--rounds`` rounds of one epoch each, where
   both take turns window by window (``bench.turns``), so that both see the same machine;
3. the lesson's Keras code on TensorFlow (``bench/keras_seed.py`` in the ``.venv-tf`` venv:
   TensorFlow and torch must never share a process).

``--fixed-cost`` also measures what Lightning and cnnlab add to each step (``bench.fixed_cost``);
``--interleaved`` the same at the lesson's scale, in one process (``bench.interleaved``).
``--sweep N`` also times an N-trial sweep run one trial after another (all cores each) and in
parallel (joblib, one thread per trial) and compares their aggregate images/s. ``--pair`` times
two trainings at once against one alone (``bench.pair``).

Prints a table (images/s, ratios, end-to-end wall time, test accuracy, peak memory) and writes
it as ``bench.json`` and ``bench.md`` under ``outputs/bench/<time>/``.

Over 250 lines on purpose: one file reads top to bottom as the bench runs (rounds,
Keras, the sweep, the report); how jobs run is bench/jobs.py, the pair case bench/pair.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.fixed_cost import bench_fixed_cost, fixed_cost_lines
from bench.interleaved import bench_interleaved, interleaved_lines
from bench.jobs import (
    BenchError,
    cnnlab_job,
    cnnlab_result,
    cpu_name,
    epochs_of,
    run_timed,
    throughput_callback,
)  # fmt: skip
from bench.pair import bench_pair, pair_lines
from bench.rounds import bench_rounds, median
from cnnlab.errors import fail
from cnnlab.runs.resolvers import PROJECT_ROOT
from cnnlab.runs.results import write_json

TF_PYTHON = PROJECT_ROOT / ".venv-tf" / "bin" / "python"
KERAS_SEED = PROJECT_ROOT / "bench" / "keras_seed.py"


def median_of(rounds: list[dict], side: str) -> dict[str, float | None]:
    """A side's median images/s and ms/step over the rounds."""
    keys = ("images_per_s", "median_step_ms")
    return {key: median([r[side][key] for r in rounds]) for key in keys}


def bench_keras(out: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The seed's Keras code, unchanged, on TensorFlow CPU in its own venv."""
    if not Path(args.tf_python).is_file():
        fail(BenchError(f"--tf-python={args.tf_python}: no such interpreter "
                        "(make bench creates .venv-tf; --no-keras skips this part)"))  # fmt: skip
    measured = out / "keras_seed.json"
    cmd = [str(args.tf_python), str(KERAS_SEED), "--data-dir", str(data_dir()),
           "--json", str(measured), "--verbose", "2", "--epochs", str(args.epochs)]  # fmt: skip
    if args.max_steps_per_epoch:
        cmd += ["--max-steps-per-epoch", str(args.max_steps_per_epoch)]
    # The seed is Keras on TensorFlow, whatever KERAS_BACKEND the caller's environment holds.
    proc = run_timed(cmd, out / "keras_seed.log", env={"KERAS_BACKEND": "tensorflow"})
    seed = json.loads(measured.read_text())
    keep = ("images_per_s", "median_step_ms", "test_acc", "test_loss", "fit_wall_s", "threads")
    return {**{k: seed[k] for k in keep}, **proc}


def bench_sweep(
    out: Path, overrides: list[str], args: argparse.Namespace, parallel: list[str] | None = None
) -> dict[str, Any]:
    """Aggregate throughput of an N-trial sweep (all trials' training images / the sweep's wall
    time), sequential vs. ``parallel`` (default: ``launcher=joblib``, 2 jobs x cores // 2
    threads). Trials are default runs (validation, test and figures included) of
    ``--sweep-epochs`` epochs that differ only in their seed."""
    seeds = ",".join(str(seed) for seed in range(1, args.sweep + 1))
    limit = [f"trainer.limit_train_batches={args.sweep_steps}"] if args.sweep_steps else []
    trial = [*overrides, "print_config=false", "name=bench_sweep", f"seed={seeds}",
             f"trainer.max_epochs={args.sweep_epochs}", *limit,
             *throughput_callback("${paths.run_dir}/throughput.json")]  # fmt: skip
    ways = {"sequential": [], "parallel": parallel or ["launcher=joblib"]}
    result: dict[str, Any] = {"trials": args.sweep, "epochs_per_trial": args.sweep_epochs,
                              "steps_per_epoch": args.sweep_steps}  # fmt: skip
    for way, extra in ways.items():
        cmd = [sys.executable, "-m", "cnnlab.train", "-m", *trial, *extra]
        proc = run_timed(cmd, out / f"sweep_{way}.log", env={"CNNLAB_OUTPUT_DIR": str(out / way)})
        meters = sorted((out / way / "sweeps").glob("*/*/throughput.json"))
        images = sum(json.loads(meter.read_text())["images_trained"] for meter in meters)
        result[way] = {**proc, "images": images, "images_per_s": round(images / proc["wall_s"], 1)}
    result["parallel/sequential"] = round(
        result["parallel"]["images_per_s"] / result["sequential"]["images_per_s"], 3
    )
    return result


def data_dir() -> Path:
    return Path(os.environ.get("CNNLAB_DATA_DIR", PROJECT_ROOT / "data"))


def ratios(rows: dict[str, dict[str, Any]], rounds: list[dict]) -> dict[str, float | None]:
    """The bench's bar: throughput vs. plain (median over all rounds' window pairs) and vs.
    Keras, end-to-end time vs. Keras."""

    def ratio(a: str, b: str, key: str) -> float | None:
        if a in rows and b in rows and rows[a].get(key) and rows[b].get(key):
            return round(rows[a][key] / rows[b][key], 3)
        return None

    return {
        "cnnlab/plain images_per_s": median([pair for r in rounds for pair in r["pairs"]]),
        "cnnlab/keras images_per_s": ratio("cnnlab", "keras", "images_per_s"),
        "cnnlab/keras end_to_end_s": ratio("cnnlab", "keras", "wall_s"),
    }


LABELS = {"cnnlab": "cnnlab Trainer", "plain": "plain PyTorch loop", "keras": "Keras seed on TF"}


def markdown(report: dict[str, Any]) -> str:
    """The results as a Markdown table plus the ratios."""

    def cell(value: object, fmt: str) -> str:
        return format(value, fmt) if isinstance(value, int | float) else "-"

    lines = [
        f"{report['epochs']} epochs, batch 128, {report['machine']}, load {report['load']}",
        f"config overrides: {' '.join(report['overrides']) or '(default config)'}",
        "",
        "| | images/s | ms/step | end-to-end s | test acc | peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, row in report["rows"].items():
        wall = row["wall_s"] if key != "plain" else None  # the plain loop does not test
        cells = (cell(row.get("images_per_s"), ".0f"), cell(row.get("median_step_ms"), ".1f"),
                 cell(wall, ".1f"), cell(row.get("test_acc"), ".4f"),
                 cell(row["peak_rss_mb"], ".0f"))  # fmt: skip
        lines.append(f"| {LABELS[key]} | {' | '.join(cells)} |")
    rounds = "; ".join(f"{cell(r['plain'], '.0f')} / {cell(r['cnnlab'], '.0f')}, "
                       f"{cell(r['cnnlab/plain'], '.3f')} over {r['window_pairs']} pairs"
                       for r in report["rounds"])  # fmt: skip
    run = cell(report["rows"]["cnnlab"]["run_images_per_s"], ".0f")
    lines += ["", f"images/s of the plain loop and cnnlab: medians of {len(report['rounds'])} "
              f"rounds taking turns window by window (plain / cnnlab, cnnlab/plain: {rounds}); "
              f"cnnlab/plain below is the median over all window pairs. The "
              f"{report['epochs']}-epoch cnnlab run itself: {run} images/s.", ""]  # fmt: skip
    lines += [f"- {name}: {cell(value, '.3f')}" for name, value in report["ratios"].items()]
    if sweep := report.get("sweep"):
        size = f"{sweep['epochs_per_trial']} epoch(s)" + (
            f" of {sweep['steps_per_epoch']} batches" if sweep["steps_per_epoch"] else ""
        )
        lines += ["", f"Sweep of {sweep['trials']} trials x {size}: "
                  + ", ".join(f"{way} {sweep[way]['images_per_s']:.0f} images/s in "
                              f"{sweep[way]['wall_s']:.1f} s" for way in ("sequential", "parallel"))
                  + f" (parallel/sequential {sweep['parallel/sequential']:.3f})"]  # fmt: skip
    if pair := report.get("pair"):
        lines += pair_lines(pair)
    if fixed := report.get("fixed_cost"):
        lines += fixed_cost_lines(fixed)
    if interleaved := report.get("interleaved"):
        lines += interleaved_lines(interleaved)
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=5, help="epochs for cnnlab and Keras")
    p.add_argument("--max-steps-per-epoch", type=int, default=None, help="quick check: N batches")
    p.add_argument("--rounds", type=int, default=6, help="rounds of cnnlab vs. the plain loop")
    p.add_argument("--round-epochs", type=int, default=1, help="epochs of each side per round")
    p.add_argument("--no-keras", action="store_true", help="skip the TensorFlow side (GPU)")
    p.add_argument("--tf-python", default=str(TF_PYTHON), help="python of the TensorFlow venv")
    p.add_argument("--sweep", type=int, default=0, help="also time an N-trial sweep, 2 ways")
    p.add_argument("--sweep-epochs", type=int, default=1, help="epochs per sweep trial")
    p.add_argument("--sweep-steps", type=int, default=None,
                   help="quick check: N training batches per trial epoch")  # fmt: skip
    p.add_argument("--pair", action="store_true", help="also time 2 trainings at once vs 1")
    p.add_argument("--fixed-cost", action="store_true",
                   help="also time Lightning+cnnlab's cost per step on a tiny network")  # fmt: skip
    p.add_argument("--interleaved", action="store_true",
                   help="also time it on the real network, in one process")  # fmt: skip
    p.add_argument("--out", type=Path, default=None, help="default outputs/bench/<time>")
    p.add_argument("overrides", nargs="*", help="cnnlab.train overrides (both torch sides)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    output_dir = Path(os.environ.get("CNNLAB_OUTPUT_DIR", PROJECT_ROOT / "outputs"))
    out = args.out or output_dir / "bench" / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    if out.is_dir() and any(out.iterdir()):  # an earlier bench's results, or one running now
        fail(BenchError(f"--out={out}: not empty; a bench needs a new directory"))
    out.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    rounds = bench_rounds(out, args.overrides, args)
    run_job = cnnlab_job(out, [*args.overrides, *epochs_of(args.epochs, args)])
    run = cnnlab_result(out, run_timed(*run_job))
    rows = {
        "cnnlab": {**run, **median_of(rounds, "cnnlab"), "run_images_per_s": run["images_per_s"]},
        "plain": {
            **median_of(rounds, "plain"),
            "peak_rss_mb": max(r["plain"]["peak_rss_mb"] for r in rounds),
        },
    }
    if not args.no_keras:
        rows["keras"] = bench_keras(out, args)
    report = {
        "epochs": args.epochs,
        "max_steps_per_epoch": args.max_steps_per_epoch,
        "overrides": args.overrides,
        "machine": cpu_name(),
        "load": "before {:.2f} {:.2f} {:.2f}, after {:.2f} {:.2f} {:.2f}".format(
            *load_before, *os.getloadavg()
        ),
        "rows": {k: rows[k] for k in LABELS if k in rows},
        "rounds": [
            {
                "plain": r["plain"]["images_per_s"],
                "cnnlab": r["cnnlab"]["images_per_s"],
                "cnnlab/plain": r["cnnlab/plain"],
                "window_pairs": len(r["pairs"]),
            }
            for r in rounds
        ],
        "ratios": ratios(rows, rounds),
    }
    if args.sweep:
        report["sweep"] = bench_sweep(out, args.overrides, args)
    if args.pair:
        report["pair"] = bench_pair(out, args.overrides, args)
    if args.fixed_cost:
        report["fixed_cost"] = bench_fixed_cost(out, args.overrides, args)
    if args.interleaved:
        report["interleaved"] = bench_interleaved(out, args.overrides, args)
    write_json(out / "bench.json", report)
    (out / "bench.md").write_text(markdown(report))
    print(markdown(report) + f"\nwritten: {out / 'bench.json'}, {out / 'bench.md'}")
    return report


if __name__ == "__main__":
    main()
