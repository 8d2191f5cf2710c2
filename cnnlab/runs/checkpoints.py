"""Finding and loading checkpoints safely: a run directory or a file, ``weights_only`` loading."""

from __future__ import annotations

import io
import zipfile
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch import Tensor

from cnnlab.errors import CnnlabError, one_line
from cnnlab.models.arch import Arch
from cnnlab.models.classifier import MNISTClassifier
from cnnlab.runs.files import write_bytes_atomically
from cnnlab.runs.results import read_result


class CheckpointError(CnnlabError):
    """A checkpoint that is missing, unreadable or of the wrong kind (names the file)."""


class SameDirCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, writing each checkpoint beside its old version and renaming
    it into place (``cnnlab.runs.files``): last.ckpt survives a full disk or a kill mid-write."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()  # serialised in memory: torch's own writer fails a full disk with
        torch.save(checkpoint, buffer)  # an unreadable RuntimeError, a plain write with ENOSPC
        write_bytes_atomically(Path(path), buffer.getbuffer())


def resolve_checkpoint(path: str | Path) -> Path:
    """A ``.ckpt`` file as given; for a run directory, its best checkpoint (else last.ckpt)."""
    path = Path(path).expanduser()
    if path.is_dir():
        recorded = (read_result(path) or {}).get("checkpoint")  # by name: the run may have moved
        candidates = [path / "checkpoints" / Path(recorded).name] if recorded else []
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
    check_crcs(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch/zip/pickle raise many types for a bad file
        raise CheckpointError(f"{path}: not a readable checkpoint ({one_line(e)})") from e
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"{path}: not a Lightning checkpoint (it holds no state_dict)")
    return ckpt


def check_crcs(path: Path) -> None:
    """Every member's bytes against the CRC-32 its zip index recorded when it was written: a
    flipped byte in the weights would otherwise load as weights (torch does not check)."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise CheckpointError(f"{path}: corrupted checkpoint ({one_line(e)})") from e
    if bad is not None:
        raise CheckpointError(f"{path}: corrupted checkpoint ({bad} fails its CRC check)")


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
    hparams = current_layout(ckpt.get("hyper_parameters", {}))
    try:
        model = MNISTClassifier(Arch(**hparams["arch"]), instantiate(hparams["optimizer"]))
    except Exception as e:  # TypeError, Hydra's InstantiationException, ArchError...
        raise CheckpointError(f"{ckpt_path}: unusable hyperparameters ({one_line(e)})") from e
    check_fits(model, ckpt, ckpt_path)
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()


def current_layout(hparams: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's hyperparameters as ``{"arch": ..., "optimizer": ...}``. cnnlab 0.1 saved
    one flat dict: the Arch fields, Adam's lr/eps/weight_decay and the speed switches."""
    if "arch" in hparams:
        return hparams
    names = {f.name for f in fields(Arch)}
    adam = {k: hparams[k] for k in ("lr", "eps", "weight_decay") if k in hparams}
    return {
        "arch": {k: v for k, v in hparams.items() if k in names},
        "optimizer": {"_target_": "torch.optim.Adam", "_partial_": True, **adam},
    }
