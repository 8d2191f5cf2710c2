"""``python -m bench --fixed-cost``: what Lightning and cnnlab add to each optimizer step.

A network so small that its step computes almost nothing (``TINY``: 2,454 parameters, batch
16, fp32, one thread) makes a step nearly all fixed cost. cnnlab (its real CLI and Trainer,
default callbacks and logger) and the plain loop take turns window by window, as in the
throughput rounds; the fixed cost is cnnlab's ms per optimizer step minus the plain loop's,
at ``speed.steps_per_execution=1`` and at the default (``auto``). It is the median over all
rounds of the window pairs' differences (window k of each side, run a moment apart): the
difference is a small part of a step, below the machine's drift between rounds, so it is
measured where both sides saw the same machine, in windows of ``FIXED_WINDOW`` steps, long
enough to average out the VM's jitter within a window (docs/speed.md, "`auto` follows the
pace").

Alone: ``python -m bench.fixed_cost [--rounds 4] [--ways 1 16 64 auto] [--out DIR] [overrides]``.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.rounds import bench_rounds, median
from bench.throughput import WINDOW
from cnnlab.perf.speed import AUTO_STEPS
from cnnlab.runs.resolvers import PROJECT_ROOT

TINY = ["model.filters=2", "model.dense_units=4", "data.batch_size=16",
        "trainer.precision=32-true", "speed.threads=1"]  # fmt: skip
STEPS = 3072  # training steps per side and round (--max-steps-per-epoch if given)
QUICK_STEPS = 256
FIXED_WINDOW = 128  # steps per timed window: a multiple of 1, 16, 64 and 128 (auto's here)
WAYS = ["1", "auto"]  # speed.steps_per_execution values timed by default


def bench_fixed_cost(out: Path, overrides: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """ms per optimizer step of both sides and their difference, for each way."""
    # a quick check (--max-steps-per-epoch) still runs QUICK_STEPS: auto's executions grow
    # past its first 16 steps to the pace's, and the meters need whole windows after them
    steps = max(args.max_steps_per_epoch, QUICK_STEPS) if args.max_steps_per_epoch else STEPS
    window = FIXED_WINDOW if steps >= 4 * FIXED_WINDOW else WINDOW  # a quick check: 32
    quick = argparse.Namespace(**{**vars(args), "max_steps_per_epoch": steps, "round_epochs": 1})
    result: dict[str, Any] = {"model": TINY, "steps_per_round": steps, "window_steps": window}
    for n in getattr(args, "ways", WAYS):  # make bench's --fixed-cost: all of them
        way = f"N=auto (from {AUTO_STEPS['cpu']} on CPU)" if n == "auto" else f"N={n}"
        here = out / "fixed_cost" / f"N-{n}"
        tiny = [*overrides, *TINY, f"speed.steps_per_execution={n}"]
        rounds = bench_rounds(here, tiny, quick, window)
        per_round = [window_differences(r) for r in rounds]
        pooled = [ms for differences in per_round for ms in differences]
        result[way] = {
            "plain_ms": median([r["plain"]["median_step_ms"] for r in rounds]),
            "cnnlab_ms": median([r["cnnlab"]["median_step_ms"] for r in rounds]),
            "fixed_cost_ms": round(median(pooled), 4) if pooled else None,
            "window_pairs": len(pooled),
            "fixed_cost_ms_per_round": [round(median(d), 4) for d in per_round if d],
        }
        print(f"fixed cost, {way}: {result[way]['fixed_cost_ms']} ms per optimizer step")
    return result


def window_differences(round_: dict[str, Any]) -> list[float]:
    """cnnlab's ms per optimizer step minus the plain loop's, for each pair of windows."""
    pairs = zip(round_["plain"]["window_step_ms"], round_["cnnlab"]["window_step_ms"], strict=False)
    return [cnnlab - plain for plain, cnnlab in pairs]


def fixed_cost_lines(fixed: dict[str, Any]) -> list[str]:
    """The fixed cost for bench.md."""
    head = f"Fixed cost per optimizer step ({' '.join(fixed['model'])}; cnnlab minus plain loop):"
    return ["", head] + [
        f"- {way}: plain {row['plain_ms']:.3f} ms, cnnlab {row['cnnlab_ms']:.3f} ms, "
        f"fixed cost {row['fixed_cost_ms']:.3f} ms (median of {row['window_pairs']} window "
        f"pairs; rounds' medians: {row['fixed_cost_ms_per_round']})"
        for way, row in fixed.items()
        if isinstance(row, dict)
    ]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=4, help="rounds of cnnlab vs. the plain loop")
    p.add_argument("--max-steps-per-epoch", type=int, default=None,
                   help=f"steps per side and round (default {STEPS})")  # fmt: skip
    p.add_argument("--ways", nargs="+", default=WAYS,
                   help="speed.steps_per_execution values to time (default: 1 auto)")  # fmt: skip
    p.add_argument("--out", type=Path, default=None, help="default outputs/bench/<time>")
    p.add_argument("overrides", nargs="*", help="cnnlab.train overrides (both sides)")
    args = p.parse_args(argv)
    out = args.out or PROJECT_ROOT / "outputs" / "bench" / datetime.now().strftime("%F_%H-%M-%S")
    result = bench_fixed_cost(out, args.overrides, args)
    (out / "fixed_cost.json").write_text(json.dumps(result, indent=2) + "\n")
    print("\n".join(fixed_cost_lines(result)))
    return result


if __name__ == "__main__":
    main()
