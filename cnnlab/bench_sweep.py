"""``python -m cnnlab.bench_sweep``: trial throughput of a parallel sweep vs the same sweep run
sequentially on this machine (a benchmark that prints numbers, not a test).

Sequential: Hydra's basic launcher, one trial at a time with PyTorch's default threads (all
cores). Parallel: ``launcher=joblib`` with ``n_jobs`` trials at once, each capped to
cores // n_jobs threads. Both run the same real trials through the real CLI.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cnnlab.leaderboard import rows_of
from cnnlab.threads import cores

GRID = ["model.filters=16,32", "model.kernel_size=3,5"]
TRIAL = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=60",
    "trainer.limit_val_batches=5",
    "trainer.limit_test_batches=2",
    "trainer.enable_model_summary=false",
    "~callbacks.progress_bar",
    "+trainer.enable_progress_bar=false",
    "print_config=false",
]


def timed_sweep(output_dir: Path, extra: list[str]) -> tuple[float, int]:
    """Run the sweep; return (wall seconds, finished trials)."""
    env = {**os.environ, "CNNLAB_OUTPUT_DIR": str(output_dir)}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "cnnlab.train", "-m", *GRID, *TRIAL, *extra],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"cnnlab: error: sweep failed ({extra}):\n{done.stderr[-2000:]}")
    (sweep_dir,) = (output_dir / "sweeps").iterdir()
    return wall, sum(row["status"] == "finished" for row in rows_of(sweep_dir))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m cnnlab.bench_sweep", description=__doc__)
    parser.add_argument("--jobs", type=int, default=2, help="parallel trials (joblib n_jobs)")
    args = parser.parse_args()
    print(f"cores: {cores()}   load average: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        seq_wall, seq_n = timed_sweep(Path(tmp, "sequential"), [])
        par_wall, par_n = timed_sweep(
            Path(tmp, "parallel"), ["launcher=joblib", f"hydra.launcher.n_jobs={args.jobs}"]
        )
    seq, par = seq_n / seq_wall * 60, par_n / par_wall * 60
    print(f"sequential: {seq_n} trials in {seq_wall:.1f} s = {seq:.2f} trials/min")
    print(f"parallel ({args.jobs} jobs): {par_n} trials in {par_wall:.1f} s = {par:.2f} trials/min")
    print(f"parallel / sequential throughput: {par / seq:.2f}x   load average: {os.getloadavg()}")


if __name__ == "__main__":
    main()
