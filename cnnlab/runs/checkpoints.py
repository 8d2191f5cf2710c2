"""Finding and loading checkpoints safely: a run directory or a file, ``weights_only`` loading."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from cnnlab.errors import CnnlabError
from cnnlab.models.classifier import MNISTClassifier
from cnnlab.runs.results import read_result


class CheckpointError(CnnlabError):
    """A checkpoint that is missing, unreadable or of the wrong kind (names the file)."""


def resolve_checkpoint(path: str | Path) -> Path:
    """A ``.ckpt`` file as given; for a run directory, its best checkpoint (else last.ckpt)."""
    path = Path(path).expanduser()
    if path.is_dir():
        recorded = (read_result(path) or {}).get("checkpoint")
        candidates = [Path(recorded)] if recorded else []
        candidates += sorted((path / "checkpoints").glob("best-*.ckpt"))
        candidates.append(path / "checkpoints" / "last.ckpt")
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise CheckpointError(f"ckpt_path={path}: run directory holds no checkpoints/*.ckpt")
        return found
    if not path.is_file():
        raise CheckpointError(f"ckpt_path={path}: no such file or run directory")
    return path


def run_dir_of(ckpt: Path) -> Path | None:
    """The run directory a checkpoint was saved in, if it sits in the usual place."""
    return ckpt.parent.parent if ckpt.parent.name == "checkpoints" else None


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint's contents, read ``weights_only``: the file cannot run pickled code."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip; the end of the file is its index
        raise CheckpointError(f"{path}: not a checkpoint (no zip index: truncated, or not torch's)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch/zip/pickle raise many types for a bad file
        raise CheckpointError(f"{path}: not a readable checkpoint ({first_line(e)})") from e
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"{path}: not a Lightning checkpoint (it holds no state_dict)")
    return ckpt


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text (torch's messages run to pages)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def shape_mismatches(model: torch.nn.Module, state_dict: dict[str, Tensor]) -> list[str]:
    """Tensors the checkpoint lacks, has extra, or holds in another shape than ``model``."""
    expected = model.state_dict()
    problems = []
    for key in sorted(expected.keys() | state_dict.keys()):
        ours, theirs = expected.get(key), state_dict.get(key)
        if theirs is None:
            problems.append(f"{key} missing")
        elif ours is None:
            problems.append(f"{key} not in this model")
        elif ours.shape != theirs.shape:
            problems.append(f"{key} {tuple(theirs.shape)} vs {tuple(ours.shape)} here")
    return problems


def check_fits(model: torch.nn.Module, ckpt: dict[str, Any], path: Path) -> None:
    """Raise CheckpointError naming the layers whose shapes differ (a different architecture)."""
    if problems := shape_mismatches(model, ckpt["state_dict"]):
        shown = "; ".join(problems[:4]) + (
            f"; and {len(problems) - 4} more" if problems[4:] else ""
        )
        raise CheckpointError(f"{path}: checkpoint of another architecture: {shown}")


def resume_point(model: torch.nn.Module, ckpt_path: str | None) -> str | None:
    """The checkpoint ``trainer.fit`` continues from, checked to fit ``model`` first."""
    if ckpt_path is None:
        return None
    path = resolve_checkpoint(ckpt_path)
    check_fits(model, read_checkpoint(path), path)
    return str(path)


def load_model(path: str | Path) -> MNISTClassifier:
    """Rebuild the model from a checkpoint's hyperparameters and weights, on the CPU."""
    ckpt_path = resolve_checkpoint(path)
    ckpt = read_checkpoint(ckpt_path)
    try:
        model = MNISTClassifier(**ckpt.get("hyper_parameters", {}))
    except (TypeError, CnnlabError) as e:
        raise CheckpointError(f"{ckpt_path}: unusable hyperparameters ({first_line(e)})") from e
    check_fits(model, ckpt, ckpt_path)
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()
