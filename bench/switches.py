"""``python -m bench.switches``: what each speed switch buys on this machine (docs/speed.md keeps
one table, a column per CPU kind).

Each switch of ``speed=fast`` that acts on the training step (``channels_last``,
``fused_optimizer``, ``cpu_layers``, ``keep_freed_memory``, and ``threads`` against one
thread) is turned off alone; ``speed=plain`` turns them all off. Every variant trains with the
plain loop (``bench.plain_loop``: cnnlab's network, data, optimizer and precision, without
Lightning), each in a process of its own (``keep_freed_memory`` is process-wide), in rounds
that run every variant once, in a shuffled order: the machine's drift between rounds then
lands on every variant alike. A variant's time is the median over rounds of its median ms per
step; ``off/on`` above 1 means the switch pays.

``--precisions`` times each precision (default: the one ``auto`` picks here). To see another
CPU kind's instruction sets on this one, cap them before torch loads:
``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2`` (the report says what was in force).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.jobs import cpu_name, run_timed
from bench.rounds import median
from cnnlab.runs.resolvers import PROJECT_ROOT
from cnnlab.runs.results import write_json

VARIANTS = {  # name -> overrides on top of the default config (speed=fast)
    "speed=fast": [],
    "channels_last off": ["speed.channels_last=false"],
    "fused_optimizer off": ["speed.fused_optimizer=false"],
    "cpu_layers off": ["speed.cpu_layers=false"],
    "keep_freed_memory off": ["speed.keep_freed_memory=false"],
    "threads=1": ["speed.threads=1"],
    "speed=plain": ["speed=plain"],
}


def time_variant(out: Path, overrides: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """One process of the plain loop: its meter's summary (median ms per step, precision)."""
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "bench.plain_loop", "--steps", str(args.steps),
           "--warmup", str(args.warmup), "--window", str(args.window),
           "--json", str(out / "plain_loop.json"), *overrides]  # fmt: skip
    run_timed(cmd, out / "plain_loop.log")
    return json.loads((out / "plain_loop.json").read_text())


def bench_switches(out: Path, args: argparse.Namespace) -> dict[str, Any]:
    rows: dict[str, dict[str, Any]] = {}
    for precision in args.precisions:
        at = [f"trainer.precision={precision}", *args.overrides]
        times: dict[str, list[float]] = {name: [] for name in VARIANTS}
        for n in range(1, args.rounds + 1):
            order = random.Random(n).sample(list(VARIANTS), len(VARIANTS))
            for name in order:
                here = out / precision / f"round{n}" / name.replace(" ", "_").replace("=", "-")
                measured = time_variant(here, [*at, *VARIANTS[name]], args)
                times[name].append(measured["median_step_ms"])
        base = median(times["speed=fast"])
        resolved = measured["precision"]  # auto, as resolved here
        rows[resolved if precision == "auto" else precision] = {
            name: {
                "ms_per_step": median(t),
                "off/on": round(median(t) / base, 3),
                "rounds_ms": [round(x, 2) for x in t],
            }
            for name, t in times.items()
        }
    return {"cpu": cpu_name(), "steps": args.steps, "rounds": args.rounds, "rows": rows}


def markdown(report: dict[str, Any]) -> str:
    lines = [f"{report['cpu']}; plain loop, {report['steps']} steps a process, median of "
             f"{report['rounds']} rounds", ""]  # fmt: skip
    for precision, rows in report["rows"].items():
        lines += [f"| {precision} | ms/step | time vs speed=fast |", "|---|---:|---:|"]
        lines += [f"| {name} | {row['ms_per_step']:.1f} | {row['off/on']:.3f} |"
                  for name, row in rows.items()]  # fmt: skip
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--precisions", nargs="+", default=["auto"], help="trainer.precision values")
    p.add_argument("--rounds", type=int, default=3, help="rounds of every variant")
    p.add_argument("--steps", type=int, default=60, help="training steps per process")
    p.add_argument("--warmup", type=int, default=10, help="untimed first steps")
    p.add_argument("--window", type=int, default=10, help="steps per timed window")
    p.add_argument("--out", type=Path, default=None, help="default outputs/bench/<time>_switches")
    p.add_argument("overrides", nargs="*", help="cnnlab.train overrides (every variant)")
    args = p.parse_args(argv)
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    out = args.out or PROJECT_ROOT / "outputs" / "bench" / f"{stamp}_switches"
    report = bench_switches(out, args)
    write_json(out / "switches.json", report)
    (out / "switches.md").write_text(markdown(report))
    print(markdown(report) + f"\nwritten: {out / 'switches.json'}, {out / 'switches.md'}")
    return report


if __name__ == "__main__":
    main()
