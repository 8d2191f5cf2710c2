"""Finding and loading checkpoints safely: a run directory or a file, ``weights_only`` loading."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch import Tensor

from cnnlab.callbacks.config_in_checkpoints import CONFIG_KEY
from cnnlab.errors import CnnlabError, one_line
from cnnlab.models.classifier import Classifier
from cnnlab.runs.files import write_bytes_atomically
from cnnlab.runs.network import build_network
from cnnlab.runs.results import read_result

PARTS = ("model", "optimizer", "data")  # the config's nodes a checkpoint needs to be rebuilt


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
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
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
        elif not isinstance(theirs, Tensor):
            problems.append(f"{key} is no tensor")
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
    """The checkpoint ``trainer.fit`` continues from, checked to be cnnlab's and to fit
    ``model`` first."""
    if ckpt_path is None:
        return None
    path = resolve_checkpoint(ckpt_path)
    ckpt = read_checkpoint(path)
    checkpoint_config(ckpt, path)
    check_fits(model, ckpt, path)
    return str(path)


def load_model(path: str | Path) -> tuple[Classifier, dict[str, Any]]:
    """Rebuild the trained module from a checkpoint, on the CPU: its network from the config
    it carries (``ConfigInCheckpoints``), its weights, the data's class names; and that
    config."""
    ckpt_path = resolve_checkpoint(path)
    ckpt = read_checkpoint(ckpt_path)
    config = checkpoint_config(ckpt, ckpt_path)
    try:
        net = build_network(config["model"], config["data"])
        model = Classifier(net, instantiate(config["optimizer"]),
                           class_names=config["data"]["class_names"])  # fmt: skip
    except Exception as e:  # NetworkError, TypeError, Hydra's InstantiationException...
        raise CheckpointError(f"{ckpt_path}: unusable config: {one_line(e)}") from None
    check_fits(model, ckpt, ckpt_path)
    model.load_state_dict(ckpt["state_dict"])
    if broken := [name for name, t in model.state_dict().items() if not t.isfinite().all()]:
        raise CheckpointError(f"{ckpt_path}: holds non-finite weights ({', '.join(broken[:3])})")
    return model.eval(), config


def checkpoint_config(ckpt: dict[str, Any], path: Path) -> dict[str, Any]:
    """The config a checkpoint was trained with (``ConfigInCheckpoints``): what rebuilds its
    network and data. A checkpoint without one was not written by this cnnlab, and there is no
    way to tell what network its weights belong to."""
    config = ckpt.get(CONFIG_KEY)
    if config is None:
        raise CheckpointError(
            f"{path}: holds no config: written by an earlier cnnlab (before 2026-12-05) or not "
            "by cnnlab; train it again with this one"
        )
    if not (isinstance(config, dict) and all(instantiable(config.get(k)) for k in PARTS)):
        raise CheckpointError(f"{path}: holds no usable config ({', '.join(PARTS)})")
    return config


def instantiable(node: Any) -> bool:
    """A config node Hydra can instantiate (it names its ``_target_``)."""
    return isinstance(node, dict) and "_target_" in node
