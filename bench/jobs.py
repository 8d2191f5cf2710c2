"""Running the bench's jobs: processes side by side, each with its wall time and peak memory,
and cnnlab runs through the real CLI with the Trainer's throughput meter."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from bench.throughput import WINDOW
from cnnlab.errors import CnnlabError, fail
from cnnlab.runs.resolvers import PROJECT_ROOT

CNNLAB_TIMING = "cnnlab_throughput.json"  # the Trainer meter's output


class BenchError(CnnlabError):
    """The bench cannot measure (a side failed, a missing venv, a used --out)."""

    exit_code = 1


Job = tuple[list[str], Path, dict[str, str]]  # command, its log file, extra environment
CAPS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")  # instruction-set caps, when set


def cpu_name() -> str:
    """The CPU as ``lscpu`` names it, with ATen's instruction set and any caps in force."""
    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
        model = next(line.split(":", 1)[1].strip() for line in lines if "Model name" in line)
    except (OSError, StopIteration):
        model = platform.processor() or "unknown CPU"
    caps = " ".join(f"{k}={os.environ[k]}" for k in CAPS if k in os.environ)
    isa = torch.backends.cpu.get_cpu_capability()
    return f"{model}, {os.cpu_count()} CPUs, ATen {isa}" + (f", capped: {caps}" if caps else "")


def run_together(jobs: dict[str, Job]) -> dict[str, dict[str, Any]]:
    """Run the jobs side by side (each one's output to its log); each one's wall time and its
    own peak RSS. If one fails, the others are stopped and the bench exits naming its log."""
    started = time.perf_counter()
    procs = {}
    for name, (cmd, log, env) in jobs.items():
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("w") as out:
            procs[name] = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env={**os.environ, **env},
                                           stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    names = {proc.pid: name for name, proc in procs.items()}
    done: dict[str, dict[str, Any]] = {}
    while len(done) < len(procs):
        pid, status, usage = os.wait4(-1, 0)  # this child's rusage, not all children's
        if pid not in names:
            continue
        name = names[pid]
        if (code := os.waitstatus_to_exitcode(status)) != 0:
            for other in procs.values():
                other.kill()
            cmd, log, _ = jobs[name]
            tail = log.read_text().strip().splitlines()[-5:]
            fail(BenchError(f"{' '.join(cmd[:3])} failed (exit {code}), "
                            f"see {log}: {' | '.join(tail)}"))  # fmt: skip
        done[name] = {
            "wall_s": round(time.perf_counter() - started, 2),
            "peak_rss_mb": usage.ru_maxrss / 1024,
        }
    return done


def run_timed(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``cmd`` alone (output to ``log``); its wall time and its own peak RSS."""
    return run_together({"job": (cmd, log, env or {})})["job"]


def epochs_of(epochs: int, args: argparse.Namespace) -> list[str]:
    """Overrides for ``epochs`` epochs of ``--max-steps-per-epoch`` batches (both torch sides)."""
    limit = [f"trainer.limit_train_batches={args.max_steps_per_epoch}"]
    return [f"trainer.max_epochs={epochs}", *(limit if args.max_steps_per_epoch else [])]


def throughput_callback(
    path: str, turns: list[str] | None = None, window: int = WINDOW
) -> list[str]:
    """Overrides that add the Trainer's throughput meter, writing to ``path``; ``window``:
    steps of warm-up and per timed window."""
    take_turns = [f"+callbacks.throughput.turns_dir={turns[0]}",
                  f"+callbacks.throughput.turns_role={turns[1]}"] if turns else []  # fmt: skip
    return ["+callbacks.throughput._target_=bench.throughput.ThroughputCallback",
            f"+callbacks.throughput.path={path}", f"+callbacks.throughput.warmup={window}",
            f"+callbacks.throughput.window={window}", *take_turns]  # fmt: skip


def cnnlab_job(
    out: Path, overrides: list[str], turns: list[str] | None = None, window: int = WINDOW
) -> Job:
    """A run through ``python -m cnnlab.train``, timed by a callback in the Trainer."""
    cmd = [sys.executable, "-m", "cnnlab.train", *overrides, "print_config=false", "name=bench",
           *throughput_callback(str(out / CNNLAB_TIMING), turns, window)]  # fmt: skip
    return cmd, out / "cnnlab.log", {"CNNLAB_OUTPUT_DIR": str(out / "cnnlab")}


def cnnlab_result(out: Path, proc: dict[str, Any]) -> dict[str, Any]:
    (run_dir,) = sorted((out / "cnnlab" / "runs").glob("*_bench"))
    result = json.loads((run_dir / "result.json").read_text())
    timing = json.loads((out / CNNLAB_TIMING).read_text())
    return {**timing, **proc, "test_acc": result.get("test/acc"),
            "test_loss": result.get("test/loss"), "run_dir": str(run_dir)}  # fmt: skip
