"""Finding and loading checkpoints safely: a run directory or a file, ``weights_only`` loading."""

from __future__ import annotations

from pathlib import Path

from cnnlab.errors import CnnlabError
from cnnlab.module import MNISTClassifier
from cnnlab.results import read_result


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


def load_model(path: str | Path) -> MNISTClassifier:
    """Rebuild the model from a checkpoint's hyperparameters and weights, on the CPU.

    ``weights_only=True``: the file cannot run pickled code while it is read.
    """
    ckpt = resolve_checkpoint(path)
    try:
        model = MNISTClassifier.load_from_checkpoint(ckpt, map_location="cpu", weights_only=True)
    except Exception as e:  # torch/zip/pickle raise many types for a bad file
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"ckpt_path={ckpt}: not a readable cnnlab checkpoint ({reason})"
        ) from e
    return model.eval()
