"""``python -m cnnlab.export ckpt_path=<run dir or .ckpt> [format=onnx|pt2] [out=<file>]``: the
trained network as one file that classifies without cnnlab, Lightning or Hydra.

ONNX by default (``<run>/export/model.onnx``: onnxruntime, or any ONNX runtime), or
``format=pt2`` (``torch.export.save``). The file takes (N, C, H, W) float32 images in [0, 1]
and returns class probabilities; its metadata says the class names, the input shape, how an
image file becomes that input, the run's test accuracy and the cnnlab version. Before it is
written it is held against the checkpoint on the run's own test images (top class everywhere,
probabilities within ``check.atol``) and timed beside eager PyTorch; the figures go to
``export.json`` beside it. Nothing is written if anything fails.
"""

from __future__ import annotations

from cnnlab.signals import exit_on_signals

if __name__ == "__main__":
    exit_on_signals()  # first: a Ctrl-C while the imports below load is one line, no traceback

import json
import tempfile
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

import cnnlab.runs.resolvers  # noqa: F401  (registers ${cnnlab.root:})
from cnnlab.data.preparation import Preparation
from cnnlab.errors import CnnlabError
from cnnlab.evaluate import test_data
from cnnlab.runs.checkpoints import CheckpointError, load_model, resolve_checkpoint, run_dir_of
from cnnlab.runs.cli import compute_and_report, run_cli
from cnnlab.runs.files import write_bytes_atomically
from cnnlab.runs.results import read_result, write_json
from cnnlab.serving.checks import latency, parity
from cnnlab.serving.onnx_model import metadata
from cnnlab.serving.programs import FORMATS, eager_runner, onnx_bytes, pt2_bytes, runner, trace

RECORD_FILE = "export.json"  # beside the exported file: each file's check and latency figures


def output_path(cfg: DictConfig, ckpt: Path) -> Path:
    """Where the file goes (``<run>/export/model.<format>`` by default), refused before any
    work if it is a folder, an existing file (unless ``overwrite=true``) or not writable."""
    run_dir = run_dir_of(ckpt) or ckpt.parent
    out = Path(cfg.out).expanduser() if cfg.out else run_dir / "export" / f"model.{cfg.format}"
    if out.is_dir():
        example = out / f"model.{cfg.format}"
        raise CnnlabError(f"out={out}: is a folder; name the file, e.g. out={example}")
    if out.exists() and not cfg.overwrite:
        raise CnnlabError(f"out={out}: already exists; overwrite=true replaces it")
    folder = next(p for p in (out.parent, *out.parent.parents) if p.exists())  # made on write
    if not folder.is_dir():
        raise CnnlabError(f"out={out}: {folder} is a file, not a folder")
    try:
        tempfile.TemporaryFile(dir=folder).close()  # the real test: root ignores permissions
    except OSError as e:
        raise CnnlabError(f"out={out}: cannot write in {folder} ({e.strerror})") from None
    return out


def test_images(trained: dict[str, Any], cfg: DictConfig) -> tuple[np.ndarray, np.ndarray]:
    """The first ``check.images`` of the run's own test split, through its own DataModule."""
    data = test_data(trained, cfg)
    data.prepare_data()
    data.setup("test")
    images, labels, count = [], [], 0
    for batch_images, batch_labels in data.test_dataloader():
        images.append(batch_images.float().cpu())
        labels.append(batch_labels.cpu())
        count += len(batch_labels)
        if count >= cfg.check.images:
            break
    wanted = slice(0, cfg.check.images)
    return torch.cat(images)[wanted].contiguous().numpy(), torch.cat(labels)[wanted].numpy()


def test_accuracy(ckpt: Path) -> float | None:
    """The run's test accuracy (result.json), if it was tested."""
    run_dir = run_dir_of(ckpt)
    return (read_result(run_dir) or {}).get("test/acc") if run_dir else None


def export(cfg: DictConfig) -> dict[str, Any]:
    """Trace, convert, check, time, then write the file and its record."""
    if cfg.format not in FORMATS:
        raise CnnlabError(f"format={cfg.format}: must be one of {', '.join(FORMATS)}")
    if OmegaConf.is_missing(cfg, "ckpt_path"):
        raise CheckpointError("ckpt_path is required: ckpt_path=<checkpoint file or run dir>")
    ckpt = resolve_checkpoint(cfg.ckpt_path)
    out = output_path(cfg, ckpt)
    model, trained = load_model(ckpt)
    preparation = Preparation.of_data(trained["data"])
    described = metadata(model.class_names, preparation, test_accuracy(ckpt))
    program = trace(model.net, preparation.shape)
    build = onnx_bytes if cfg.format == "onnx" else pt2_bytes
    data = build(program, described)
    images, labels = test_images(trained, cfg)
    threads = torch.get_num_threads()  # onnxruntime gets as many as eager PyTorch has
    exported, eager = runner(cfg.format, data, threads), eager_runner(model.net)
    check = parity(exported, eager, images, labels, cfg.check.atol)
    timings = latency(exported, eager, images, list(cfg.latency.batches), cfg.latency.repeats)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomically(out, data)
    record = {
        "file": str(out),
        "format": cfg.format,
        "checkpoint": str(ckpt),
        "bytes": len(data),
        "check": check,
        "latency": {"runtime": RUNTIMES[cfg.format], "threads": threads, **timings},
    }
    save_record(out, record)
    return record


RUNTIMES = {"onnx": "onnxruntime", "pt2": "torch.export"}  # what runs each format's file


def save_record(out: Path, record: dict[str, Any]) -> None:
    """Add ``record`` to export.json beside ``out``, under the file's name: exporting ONNX and
    pt2 into one folder keeps both records."""
    path = out.parent / RECORD_FILE
    try:
        records = json.loads(path.read_text())
    except (OSError, ValueError):  # none yet (or not one of ours): this export's alone
        records = {}
    records = records if isinstance(records, dict) else {}
    write_json(path, {**records, out.name: record})


def report(record: dict[str, Any]) -> None:
    """One line: where the file is, how it agrees with the checkpoint, how fast it is."""
    check, timings = record["check"], record["latency"]
    speed = ", ".join(
        f"batch {key.split('_')[1]} {t['exported_ms']:.2f} ms vs {t['eager_ms']:.2f} ms"
        for key, t in timings.items()
        if key.startswith("batch_")
    )
    print(
        f"Exported {record['file']}: top class agrees with the checkpoint on "
        f"{check['top_class_agrees']}/{check['images']} test images, probabilities within "
        f"{check['max_abs_prob_diff']:.1e}; {timings['runtime']} vs eager torch: {speed} "
        f"({RECORD_FILE} beside it)"
    )


@hydra.main(version_base="1.3", config_path="../conf", config_name="export")
def main(cfg: DictConfig) -> None:
    compute_and_report(lambda: export(cfg), report, None)


if __name__ == "__main__":
    run_cli(main)
