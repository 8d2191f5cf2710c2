"""An exported file held against its checkpoint before it is written: the same answers on the
run's own test images, and how long each takes to give them."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

import numpy as np

from cnnlab.errors import CnnlabError
from cnnlab.serving.programs import Runner


class ParityError(CnnlabError):
    """The exported model answers otherwise than the checkpoint: it is not written."""

    exit_code = 1


def parity(
    exported: Runner, eager: Runner, images: np.ndarray, labels: np.ndarray, atol: float
) -> dict[str, float | int]:
    """Both models on ``images``: how many top classes agree, the largest probability
    difference, and each one's accuracy; ParityError if any top class or probability differs
    by more than ``atol``."""
    ours, theirs = exported(images), eager(images)
    top, reference = ours.argmax(axis=1), theirs.argmax(axis=1)
    figures = {
        "images": len(images),
        "top_class_agrees": int((top == reference).sum()),
        "max_abs_prob_diff": float(np.abs(ours - theirs).max()),
        "atol": atol,
        "exported_acc": float((top == labels).mean()),
        "eager_acc": float((reference == labels).mean()),
    }
    if figures["top_class_agrees"] < len(images) or figures["max_abs_prob_diff"] > atol:
        raise ParityError(
            f"the exported model disagrees with the checkpoint on the run's test images: top "
            f"class agrees on {figures['top_class_agrees']}/{len(images)}, probabilities differ "
            f"by up to {figures['max_abs_prob_diff']:.2g} (at most {atol:g} allowed); "
            "nothing written"
        )
    return figures


def latency(
    exported: Runner, eager: Runner, images: np.ndarray, batches: Sequence[int], repeats: int
) -> dict[str, dict[str, float]]:
    """Median milliseconds of one call per batch size, the exported model beside eager
    PyTorch, each warmed up first; the two take turns so that a busy machine slows both."""
    figures = {}
    for size in batches:
        batch = np.ascontiguousarray(np.resize(images, (size, *images.shape[1:])))
        times: dict[str, list[float]] = {"exported_ms": [], "eager_ms": []}
        for run in (exported, eager):
            run(batch)  # warm-up: first calls allocate and pick kernels
        for _ in range(repeats):
            for key, run in (("exported_ms", exported), ("eager_ms", eager)):
                start = time.perf_counter()
                run(batch)
                times[key].append((time.perf_counter() - start) * 1000)
        figures[f"batch_{size}"] = {k: statistics.median(v) for k, v in times.items()}
    return figures
