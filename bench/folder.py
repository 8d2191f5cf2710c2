"""``python -m bench.folder``: a folder of MNIST's 60,000 training images as PNG files against
MNIST's IDX files, as whole short runs through the real CLI (docs/speed.md, "Your own data:
a folder of PNG files against the IDX files").

The folder (``<data dir>/bench/mnist-png``, one folder per class) is written once and reused.
The same short training runs three times, its network's work the same each time (``--batches``
training batches, a few validation and test batches, no figures): on the folder with an empty
cache (every header read, every image decoded), on the folder again (both from the cache),
and with ``data=mnist``. Each one's wall time is the whole process, start to exit; the
folder runs' ``cnnlab: data:`` line says how long decoding took. The cache is made in the
bench's output folder and removed at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from PIL import Image

from bench.jobs import cpu_name, run_timed
from cnnlab.data.mnist import MNIST
from cnnlab.runs.resolvers import PROJECT_ROOT
from cnnlab.runs.results import write_json

IMAGES = 60_000  # MNIST's training images


def png_folder(data_dir: Path) -> tuple[Path, float | None]:
    """MNIST's training images as ``<class>/<index>.png``, written unless all are there; the
    folder and the seconds writing took (None: reused)."""
    root = data_dir / "bench" / "mnist-png"
    if root.is_dir() and sum(1 for _ in root.glob("*/*.png")) == IMAGES:
        return root, None
    started = time.perf_counter()
    MNIST().prepare(data_dir)
    images, labels = MNIST().load(data_dir, train=True)
    for index, (image, label) in enumerate(zip(images[:, 0].numpy(), labels.tolist(), strict=True)):
        path = root / str(label) / f"{index:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path)
    return root, time.perf_counter() - started


def timed_run(name: str, overrides: list[str], out: Path, data_dir: Path) -> dict[str, Any]:
    """One ``python -m cnnlab.train`` run: its wall time and the data line it printed."""
    cmd = [sys.executable, "-m", "cnnlab.train", *overrides]
    env = {"CNNLAB_OUTPUT_DIR": str(out / "runs"), "CNNLAB_DATA_DIR": str(data_dir)}
    timing = run_timed(cmd, out / f"{name}.log", env)
    lines = (out / f"{name}.log").read_text().splitlines()
    said = [line for line in lines if line.startswith("cnnlab: data:")]
    return {**timing, "data_line": said[0] if said else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=100, help="training batches per run")
    data_dir = Path(os.environ.get("CNNLAB_DATA_DIR", PROJECT_ROOT / "data"))  # paths.data_dir's
    parser.add_argument("--data-dir", type=Path, default=data_dir, help="MNIST's, and the PNGs'")
    args = parser.parse_args()
    root, wrote_s = png_folder(args.data_dir)
    out = PROJECT_ROOT / "outputs" / "bench" / f"folder-{datetime.now():%Y-%m-%d_%H-%M-%S}"
    short = ["trainer.max_epochs=1", f"trainer.limit_train_batches={args.batches}",
             "trainer.limit_val_batches=5", "trainer.limit_test_batches=5",
             "callbacks.figures=null", "print_config=false"]  # fmt: skip
    folder = ["data=folder", f"data.root={root}", *short]
    cache = out / "cache"  # empty: the first folder run reads and decodes everything
    runs = {
        "folder, first run (headers read, images decoded)": timed_run("cold", folder, out, cache),
        "folder, second run (both from the cache)": timed_run("warm", folder, out, cache),
        "MNIST's IDX files (data=mnist)": timed_run("mnist", short, out, args.data_dir),
    }
    shutil.rmtree(cache)
    record = {"cpu": cpu_name(), "batches": args.batches, "folder": str(root),
              "png_write_s": wrote_s, "runs": runs}  # fmt: skip
    write_json(out / "folder.json", record)
    written = "reused" if wrote_s is None else f"written in {wrote_s:.0f} s"
    print(f"{record['cpu']}; {IMAGES:,} PNG files {written}; {args.batches} training batches\n")
    print("| run | wall s | peak RSS MB |")
    print("|---|---:|---:|")
    for name, run in runs.items():
        print(f"| {name} | {run['wall_s']:.1f} | {run['peak_rss_mb']:.0f} |")
    print("", *(f"{name}: {run['data_line']}" for name, run in runs.items() if run["data_line"]),
          sep="\n")  # fmt: skip
    print(out / "folder.json", file=sys.stderr)


if __name__ == "__main__":
    main()
