"""Rounds of cnnlab against the plain loop, taking turns window by window (``make bench``)."""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from pathlib import Path
from typing import Any

from bench.jobs import Job, cnnlab_job, cnnlab_result, epochs_of, run_together
from bench.throughput import WINDOW
from bench.turns import pipes

PLAIN_TIMING = "plain_loop.json"  # the plain loop meter's output


def plain_job(
    out: Path, overrides: list[str], turns: list[str] | None = None, window: int = WINDOW
) -> Job:
    """The plain PyTorch loop on the same config and epochs; throughput only (it does not test).
    ``window``: steps of warm-up and per timed window."""
    take_turns = ["--turns-dir", turns[0], "--turns-role", turns[1]] if turns else []
    cmd = [sys.executable, "-m", "bench.plain_loop", "--json", str(out / PLAIN_TIMING),
           "--warmup", str(window), "--window", str(window), *take_turns, *overrides]  # fmt: skip
    return cmd, out / "plain_loop.log", {}


def plain_result(out: Path, proc: dict[str, Any]) -> dict[str, Any]:
    return {**json.loads((out / PLAIN_TIMING).read_text()), **proc}


def window_ratios(plain: dict[str, Any], cnnlab: dict[str, Any]) -> list[float]:
    """cnnlab/plain for each pair of windows that ran one right after the other."""
    pairs = zip(plain["window_images_per_s"], cnnlab["window_images_per_s"], strict=False)
    return [round(c / p, 3) for p, c in pairs]


def bench_rounds(
    out: Path, overrides: list[str], args: argparse.Namespace, window: int = WINDOW
) -> list[dict]:
    """Throughput of the plain loop and cnnlab, ``--rounds`` times. In each round both run at
    once but take turns window by window (``bench.turns``; odd rounds the plain loop goes
    first, even rounds cnnlab), so every window of one side has a partner window of the other
    on the same machine a moment apart; the round's cnnlab/plain is the median over its pairs.
    Timed one after the other, the machine's drift within minutes went straight into the
    ratio; and since a process can run a few % faster or slower than its twin for its whole
    life, many short rounds beat a few long ones (docs/speed.md). ``window``: steps of warm-up
    and per timed window, on both sides."""
    rounds = []
    for n in range(1, args.rounds + 1):
        train, here = [*overrides, *epochs_of(args.round_epochs, args)], out / f"round{n}"
        roles = ("first", "second") if n % 2 else ("second", "first")
        # Taking turns, the two never compute at once: nothing to share, and
        # speed.share_cores would count the partner's turn as a busy neighbour.
        timed = [*train, "test=false", "speed.share_cores=false"]
        with pipes(here / "turns") as turns:
            done = run_together({
                "plain": plain_job(here, train, [str(turns), roles[0]], window),
                "cnnlab": cnnlab_job(here, timed, [str(turns), roles[1]], window),
            })  # fmt: skip
        plain = plain_result(here, done["plain"])
        cnnlab = cnnlab_result(here, done["cnnlab"])
        pairs = window_ratios(plain, cnnlab)
        ratio = round(median(pairs), 3) if pairs else None
        rounds.append({"plain": plain, "cnnlab": cnnlab, "pairs": pairs, "cnnlab/plain": ratio})
        plain_rate, cnnlab_rate = plain["images_per_s"] or 0, cnnlab["images_per_s"] or 0
        rates = f"plain {plain_rate:.0f}, cnnlab {cnnlab_rate:.0f} images/s"
        print(f"round {n}: {rates}, cnnlab/plain {ratio} over {len(pairs)} window pairs")
    return rounds


def median(values: list[float | None]) -> float | None:
    """The median of the measured values (a side too short to time one window gives None)."""
    measured = [value for value in values if value is not None]
    return statistics.median(measured) if measured else None


def median_interval(values: list[float], draws: int = 1000) -> tuple[float, float, float]:
    """The median and a bootstrap 95 % interval of it (seeded: the same values give the same
    interval), in the values' unit, rounded to 0.1 us for milliseconds."""
    rng = random.Random(0)
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(draws))
    low, high = medians[int(0.025 * draws)], medians[int(0.975 * draws) - 1]
    return round(statistics.median(values), 4), round(low, 4), round(high, 4)
