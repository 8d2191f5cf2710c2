"""``python -m bench.export``: how fast an exported model answers on this CPU, onnxruntime beside
eager PyTorch, for each shipped network (docs/speed.md, "Exported models", one table per CPU).

Each network is built from its config (``conf/model/``, on MNIST's shape; latency depends on
neither the weights nor the pixels, so none is trained and the images are random), traced and
converted as ``cnnlab.export`` does (``cnnlab.serving.programs``), and timed by
``cnnlab.serving.checks.latency``: the median of ``--repeats`` calls per batch size, the two
taking turns, with torch's thread count for both.
``cnnlab.export`` times a trained run the same way with fewer repeats (its export.json).
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import Any

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from bench.jobs import cpu_name
from cnnlab.runs.resolvers import PROJECT_ROOT
from cnnlab.runs.results import write_json
from cnnlab.serving.checks import latency
from cnnlab.serving.programs import eager_runner, onnx_bytes, runner, trace

NETWORKS = ("keras_cnn", "torch_mnist", "mlp")


def network(name: str) -> torch.nn.Module:
    """The shipped network ``name`` as ``model=<name>`` builds it for MNIST."""
    with initialize_config_dir(str(PROJECT_ROOT / "conf"), version_base="1.3"):
        return instantiate(compose("train", overrides=[f"model={name}"]).model)


def bench_network(name: str, images: Any, args: argparse.Namespace) -> dict[str, Any]:
    net = network(name)
    exported = runner("onnx", onnx_bytes(trace(net, (1, 28, 28)), {}), torch.get_num_threads())
    return latency(exported, eager_runner(net), images, args.batches, args.repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=200, help="timed calls per batch size")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 128])
    args = parser.parse_args()
    images = np.random.default_rng(0).random((max(args.batches), 1, 28, 28), dtype=np.float32)
    rows = {name: bench_network(name, images, args) for name in NETWORKS}
    record = {"cpu": cpu_name(), "threads": torch.get_num_threads(), "repeats": args.repeats,
              "networks": rows}  # fmt: skip
    out = PROJECT_ROOT / "outputs" / "bench" / f"export-{datetime.now():%Y-%m-%d_%H-%M-%S}"
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "export.json", record)
    print(f"{record['cpu']}, {record['threads']} threads, median of {args.repeats} calls\n")
    print("| network | batch | onnxruntime ms | eager torch ms | torch / onnxruntime |")
    print("|---|---|---|---|---|")
    for name, row in rows.items():
        for batch, t in row.items():
            ratio = t["eager_ms"] / t["exported_ms"]
            print(f"| {name} | {batch.split('_')[1]} | {t['exported_ms']:.3f} | "
                  f"{t['eager_ms']:.3f} | {ratio:.2f} |")  # fmt: skip
    print(f"\n{out / 'export.json'}", file=sys.stderr)


if __name__ == "__main__":
    main()
