"""``python -m bench.interleaved``: what Lightning and cnnlab add to a step of the real network,
measured in one process.

The rounds of ``make bench`` compare two processes, and a process runs a few per cent faster or
slower than its twin for its whole life (docs/speed.md): as much as is being measured. The
fixed-cost bench removes that with a network that computes nothing, but there the loop's Python
code stays in the CPU's caches; after a real network's forward and backward it does not, and the
same code costs several times more. Here one process trains cnnlab's Trainer (the real config,
callbacks and logger; ``overrides`` as for ``cnnlab.train``) and, at the end of each of its
training steps, runs one step of the plain loop (``bench.plain_loop.PlainStep``, its own copy of the
network and optimizer) on the next batch of its own loader. Step k of each side run back to
back in the same process, memory and machine. The plain step's time is read around it;
cnnlab's is the time from the end of one plain step to the start of the next, all of Lightning's
loop, hooks and callbacks included. With ``speed=executions`` a hook ends an execution of N
optimizer steps, and N plain steps run there: both sides are per optimizer step.

Reported: each side's median ms a step, the ratio of the medians, and the median of the
per-step differences (cnnlab minus plain) with a bootstrap 95 % interval.

Alone: ``python -m bench.interleaved [--steps 400] [--warmup 32] [--json PATH] [overrides]``;
in ``make bench`` with ``--interleaved``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from torch import Tensor

from bench.jobs import cpu_name, run_timed
from bench.plain_loop import (
    PlainStep,
    compose_train_config,
    pick_device,
    show_and_write,
    train_data,
)
from bench.rounds import median_interval
from cnnlab.perf.executions import flavour_warnings_ignored
from cnnlab.runs.training import build

STEPS = 400  # optimizer steps of each side (a quick check, --max-steps-per-epoch: that many)
QUIET = ["callbacks.figures=null", "trainer.num_sanity_val_steps=0", "trainer.limit_val_batches=1",
         "test=false", "speed.share_cores=false"]  # fmt: skip


def endless(loader: Iterable[tuple[Tensor, Tensor]]) -> Iterator[tuple[Tensor, Tensor]]:
    """The loader's batches, epoch after epoch, each epoch in its own order."""
    for epoch in itertools.count():
        loader.sampler.set_epoch(epoch)
        yield from loader


def now(device: torch.device) -> float:
    """The clock, once the device has done what it was given."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


class PlainStepsBetween(L.Callback):
    """At each training step's end, as many plain steps as the Trainer just took; both sides'
    seconds per optimizer step."""

    def __init__(self, plain: PlainStep, batches: Iterator[tuple[Tensor, Tensor]]) -> None:
        self.plain, self.batches = plain, batches
        self.cnnlab_s: list[float] = []
        self.plain_s: list[float] = []
        self.steps_done = 0
        self.plain_ended: float | None = None

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        started = now(self.plain.device)
        steps, self.steps_done = trainer.global_step - self.steps_done, trainer.global_step
        if self.plain_ended is not None:
            self.cnnlab_s.append((started - self.plain_ended) / steps)
        for _ in range(steps):
            self.plain(*next(self.batches))
        self.plain_ended = now(self.plain.device)
        self.plain_s.append((self.plain_ended - started) / steps)


def measure(overrides: list[str], steps: int, warmup: int) -> dict[str, Any]:
    """Train ``steps`` optimizer steps with the plain steps in between; the times after
    ``warmup`` steps' worth of hooks."""
    with tempfile.TemporaryDirectory() as run_dir:
        cfg = compose_train_config([*QUIET, *overrides, f"trainer.max_steps={steps}",
                                    f"paths.run_dir={run_dir}"])  # fmt: skip
        instantiate(cfg.speed).tune_process()  # as the command line does, before the run
        parts = build(cfg)
        device = pick_device(cfg.trainer.accelerator)
        torch.manual_seed(cfg.seed)  # the plain side starts from the same weights
        batches = endless(train_data(cfg, device).train_dataloader())
        between = PlainStepsBetween(PlainStep(cfg, device), batches)
        parts.trainer.callbacks.append(between)
        with flavour_warnings_ignored(parts.model):  # as cnnlab.runs.training fits
            parts.trainer.fit(parts.model, datamodule=parts.datamodule)
    skip = max(1, round(warmup * len(between.cnnlab_s) / steps))  # hooks, not steps, with N > 1
    cnnlab, plain = between.cnnlab_s[skip:], between.plain_s[skip : len(between.cnnlab_s)]
    differences = [1000 * (c - p) for c, p in zip(cnnlab, plain, strict=True)]
    difference, low, high = median_interval(differences)
    return {
        "cpu": cpu_name(),
        "precision": str(cfg.trainer.precision),
        "overrides": overrides,
        "pairs": len(differences),
        "plain_ms": round(1000 * statistics.median(plain), 3),
        "cnnlab_ms": round(1000 * statistics.median(cnnlab), 3),
        "cnnlab/plain": round(statistics.median(plain) / statistics.median(cnnlab), 4),
        "difference_ms": difference,
        "difference_ci95_ms": [low, high],
    }


def bench_interleaved(out: Path, overrides: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """``make bench --interleaved``: this measurement in a process of its own."""
    steps = args.max_steps_per_epoch or STEPS
    path = out / "interleaved.json"
    command = [sys.executable, "-m", "bench.interleaved", "--steps", str(steps),
               "--warmup", str(min(32, steps // 4)), "--json", str(path), *overrides]  # fmt: skip
    run_timed(command, out / "interleaved.log")
    result = json.loads(path.read_text())
    print(f"interleaved: cnnlab/plain {result['cnnlab/plain']}, "
          f"{result['difference_ms']} ms a step more")  # fmt: skip
    return result


def interleaved_lines(result: dict[str, Any]) -> list[str]:
    """The interleaved measurement for bench.md."""
    low, high = result["difference_ci95_ms"]
    return ["", "In one process, a plain step after each of cnnlab's (bench/interleaved.py): "
            f"plain {result['plain_ms']:.2f} ms, cnnlab {result['cnnlab_ms']:.2f} ms a step, "
            f"cnnlab/plain {result['cnnlab/plain']:.3f}; cnnlab minus plain "
            f"{result['difference_ms']:.3f} ms (95 % interval [{low}, {high}], "
            f"median of {result['pairs']} steps)"]  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=STEPS, help="optimizer steps of each side")
    p.add_argument("--warmup", type=int, default=32, help="first steps left untimed")
    p.add_argument("--json", type=Path, default=None, help="write the measurement here")
    p.add_argument("overrides", nargs="*", help="cnnlab.train overrides (both sides)")
    args = p.parse_args(argv)
    result = measure(args.overrides, args.steps, args.warmup)
    show_and_write(result, args.json)
    return result


if __name__ == "__main__":
    main()
