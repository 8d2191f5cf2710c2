"""``python -m bench --fixed-cost``: what Lightning and cnnlab add to each optimizer step.

A network that computes almost nothing (``TINY``: one 4x4 conv filter with stride 4, a 7x7
pool and the output layer, 37 parameters, batch 16, fp32, one thread) makes a step nearly all
fixed cost: PyTorch's own per-op cost, on both sides, and what Lightning and cnnlab add. cnnlab
(its real CLI and Trainer, default callbacks and logger) and the plain loop take turns window
by window, as in the throughput rounds; the fixed cost is cnnlab's ms per optimizer step minus
the plain loop's, in Lightning's own loop (the default, ``speed.steps_per_execution=null``) and
with N steps per execution (``auto``, the opt-in ``speed=executions``). It is the
median over all rounds of the window pairs' differences (window k of each side, run a moment
apart), with a bootstrap 95 % interval of that median: the difference is a small part of a
step, below the machine's drift between rounds, so it is measured where both sides saw the
same machine. The VM's jitter is a share of the step, so the smaller the step, the finer the
difference it resolves: with the larger network used before, the interval was wider than the
goal (docs/speed.md, "The fixed cost of a step that computes nothing").

Alone: ``python -m bench.fixed_cost [--rounds 4] [--ways null 1 16 auto] [--out DIR] [overrides]``.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.rounds import bench_rounds, median, median_interval
from cnnlab.perf.executions import AUTO_STEPS
from cnnlab.runs.resolvers import PROJECT_ROOT

TINY = ["model.filters=1", "model.convs_per_block=1", "model.kernel_size=4", "model.stride=4",
        "model.pool_size=7", "model.dense_layers=0", "data.batch_size=16",
        "trainer.precision=32-true", "speed.threads=1"]  # fmt: skip
STEPS = 3072  # training steps per side and epoch (--max-steps-per-epoch if given)
ROUND_EPOCHS = 4  # epochs per round: more window pairs per process start (a quick check: 1)
QUICK_STEPS, QUICK_WINDOW = 1024, 256  # a quick check (--max-steps-per-epoch): at least these
# steps per timed window: a multiple of every N auto reaches at TINY's pace on the CPUs
# measured (the most steps that fit in AUTO_SECONDS, docs/speed.md)
FIXED_WINDOW = 512
WAYS = ["null", "auto"]  # speed.steps_per_execution values timed by default


def bench_fixed_cost(out: Path, overrides: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """ms per optimizer step of both sides and their difference, for each way."""
    # a quick check (--max-steps-per-epoch) still runs QUICK_STEPS: at TINY's pace auto's
    # second execution is already hundreds of steps, and the meters need whole windows after
    steps = max(args.max_steps_per_epoch, QUICK_STEPS) if args.max_steps_per_epoch else STEPS
    full = steps >= 4 * FIXED_WINDOW
    window, epochs = (FIXED_WINDOW, ROUND_EPOCHS) if full else (QUICK_WINDOW, 1)
    sized = {"max_steps_per_epoch": steps, "round_epochs": epochs}
    sized_args = argparse.Namespace(**{**vars(args), **sized})
    result: dict[str, Any] = {"model": TINY, "steps_per_epoch": steps, "epochs_per_round": epochs,
                              "window_steps": window}  # fmt: skip
    for n in getattr(args, "ways", WAYS):  # make bench's --fixed-cost: all of them
        way = way_name(n)
        here = out / "fixed_cost" / f"N-{n}"
        tiny = [*overrides, *TINY, f"speed.steps_per_execution={n}"]
        rounds = bench_rounds(here, tiny, sized_args, window)
        per_round = [window_differences(r) for r in rounds]
        pooled = [ms for differences in per_round for ms in differences]
        fixed, low, high = median_interval(pooled) if pooled else (None, None, None)
        result[way] = {
            "plain_ms": median([r["plain"]["median_step_ms"] for r in rounds]),
            "cnnlab_ms": median([r["cnnlab"]["median_step_ms"] for r in rounds]),
            "fixed_cost_ms": fixed,
            "fixed_cost_ci95_ms": [low, high],
            "window_pairs": len(pooled),
            "fixed_cost_ms_per_round": [round(median(d), 4) for d in per_round if d],
        }
        print(f"fixed cost, {way}: {result[way]['fixed_cost_ms']} ms per optimizer step")
    return result


def way_name(n: str) -> str:
    """How the bench names a ``speed.steps_per_execution`` value."""
    if n == "null":
        return "Lightning's loop (the default)"
    return f"N=auto (from {AUTO_STEPS['cpu']} on CPU)" if n == "auto" else f"N={n}"


def window_differences(round_: dict[str, Any]) -> list[float]:
    """cnnlab's ms per optimizer step minus the plain loop's, for each pair of windows."""
    pairs = zip(round_["plain"]["window_step_ms"], round_["cnnlab"]["window_step_ms"], strict=False)
    return [cnnlab - plain for plain, cnnlab in pairs]


def fixed_cost_lines(fixed: dict[str, Any]) -> list[str]:
    """The fixed cost for bench.md."""
    head = f"Fixed cost per optimizer step ({' '.join(fixed['model'])}; cnnlab minus plain loop):"
    return ["", head] + [
        f"- {way}: plain {row['plain_ms']:.3f} ms, cnnlab {row['cnnlab_ms']:.3f} ms, "
        f"fixed cost {row['fixed_cost_ms']:.3f} ms (95 % interval {row['fixed_cost_ci95_ms']}; "
        f"median of {row['window_pairs']} window pairs; rounds' medians: "
        f"{row['fixed_cost_ms_per_round']})"
        for way, row in fixed.items()
        if isinstance(row, dict)
    ]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=4, help="rounds of cnnlab vs. the plain loop")
    p.add_argument("--max-steps-per-epoch", type=int, default=None,
                   help=f"steps per side and epoch (default {STEPS})")  # fmt: skip
    p.add_argument("--ways", nargs="+", default=WAYS,
                   help="speed.steps_per_execution values (default: null auto)")  # fmt: skip
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
