"""``python -m bench --fixed-cost``: what Lightning and cnnlab add to each optimizer step.

A network so small that its step computes almost nothing (``TINY``: 2,454 parameters, batch
16, fp32, one thread) makes a step nearly all fixed cost. cnnlab (its real CLI and Trainer,
default callbacks and logger) and the plain loop take turns window by window, as in the
throughput rounds; the fixed cost is cnnlab's ms per optimizer step minus the plain loop's,
the median over rounds, at ``speed.steps_per_execution=1`` and at the default (``auto``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bench.rounds import bench_rounds, median
from cnnlab.perf.speed import AUTO_STEPS

TINY = ["model.filters=2", "model.dense_units=4", "data.batch_size=16",
        "trainer.precision=32-true", "speed.threads=1"]  # fmt: skip
STEPS = 1500  # training steps per side and round (--max-steps-per-epoch if given)
WAYS = {"N=1": "1", f"N=auto ({AUTO_STEPS['cpu']} on CPU)": "auto"}


def bench_fixed_cost(out: Path, overrides: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """ms per optimizer step of both sides and their difference, for each way."""
    steps = args.max_steps_per_epoch or STEPS
    quick = argparse.Namespace(**{**vars(args), "max_steps_per_epoch": steps, "round_epochs": 1})
    result: dict[str, Any] = {"model": TINY, "steps_per_round": steps}
    for way, n in WAYS.items():
        here = out / "fixed_cost" / f"N-{n}"
        rounds = bench_rounds(here, [*overrides, *TINY, f"speed.steps_per_execution={n}"], quick)
        sides = [(r["plain"]["median_step_ms"], r["cnnlab"]["median_step_ms"]) for r in rounds]
        added = [cnnlab - plain for plain, cnnlab in sides if plain and cnnlab]
        result[way] = {
            "plain_ms": median([plain for plain, _ in sides]),
            "cnnlab_ms": median([cnnlab for _, cnnlab in sides]),
            "fixed_cost_ms": round(median(added), 4) if added else None,
            "fixed_cost_ms_per_round": [round(ms, 4) for ms in added],
        }
        print(f"fixed cost, {way}: {result[way]['fixed_cost_ms']} ms per optimizer step")
    return result


def fixed_cost_lines(fixed: dict[str, Any]) -> list[str]:
    """The fixed cost for bench.md."""
    head = f"Fixed cost per optimizer step ({' '.join(fixed['model'])}; cnnlab minus plain loop):"
    return ["", head] + [
        f"- {way}: plain {row['plain_ms']:.3f} ms, cnnlab {row['cnnlab_ms']:.3f} ms, "
        f"fixed cost {row['fixed_cost_ms']:.3f} ms (rounds: {row['fixed_cost_ms_per_round']})"
        for way, row in fixed.items()
        if isinstance(row, dict)
    ]
