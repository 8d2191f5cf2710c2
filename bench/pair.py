"""``python -m bench --pair``: two default trainings at once against one alone.

Users run two things at once (a sweep and a notebook, a test run beside training). Each
training runs one epoch through the real CLI; "each/solo" is the slower of the pair's images/s
over the lone run's. Both ways are measured in the same bench run: cnnlab's default
(``speed.share_cores``: threads follow the free cores) and ``speed.share_cores=false`` (one
thread per core each, whatever else runs).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bench.jobs import cnnlab_job, cnnlab_result, epochs_of, run_timed, run_together

WAYS = {"share_cores": [], "share_cores=false": ["speed.share_cores=false"]}


def bench_pair(out: Path, overrides: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Images/s of one training alone and of two at once, for each way."""
    train = [*overrides, *epochs_of(1, args), "test=false"]
    result: dict[str, Any] = {}
    for way, extra in WAYS.items():
        here = out / "pair" / way.replace("=", "-")
        solo = cnnlab_result(here / "solo", run_timed(*cnnlab_job(here / "solo", [*train, *extra])))
        jobs = {side: cnnlab_job(here / side, [*train, *extra]) for side in ("a", "b")}
        done = run_together(jobs)
        pair = [cnnlab_result(here / side, done[side])["images_per_s"] for side in jobs]
        result[way] = {"solo": solo["images_per_s"], "pair": pair,
                       "each/solo": round(min(pair) / solo["images_per_s"], 3)}  # fmt: skip
        rates = f"solo {solo['images_per_s']:.0f}, pair {pair[0]:.0f} + {pair[1]:.0f} images/s"
        print(f"pair, {way}: {rates}, each/solo {result[way]['each/solo']}")
    return result


def pair_lines(pair: dict[str, Any]) -> list[str]:
    """The pair case for bench.md."""
    return ["", "Two trainings at once (1 epoch each) vs one alone, images/s:"] + [
        f"- {way}: solo {row['solo']:.0f}, pair {row['pair'][0]:.0f} + {row['pair'][1]:.0f}, "
        f"each/solo {row['each/solo']:.3f}"
        for way, row in pair.items()
    ]
