"""An exported ONNX file, run through onnxruntime: what ``cnnlab.predict ckpt_path=model.onnx``
classifies with, and what ``cnnlab.export`` checks the file with before writing it.

The file describes itself in its metadata (``metadata``): a server reads the class names and
the preparation (``cnnlab.data.preparation``) from it and needs nothing else
(``examples/serve_onnx.py`` does it with onnxruntime, numpy and PIL alone).
"""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import Tensor

from cnnlab.data.preparation import Preparation
from cnnlab.errors import one_line
from cnnlab.runs.checkpoints import CheckpointError

INPUT, OUTPUT = "images", "probabilities"  # the graph's names; its input is (N, C, H, W)


def metadata(
    class_names: list[str], preparation: Preparation, test_acc: float | None
) -> dict[str, str]:
    """What the file says of itself, as ONNX metadata_props (strings: JSON where structured)."""
    return {
        "class_names": json.dumps(class_names),
        "input_shape": json.dumps(["N", *preparation.shape]),
        "input": f"{INPUT}: float32 (N, C, H, W) in [0, 1], prepared as 'preparation' says",
        "output": f"{OUTPUT}: float32 (N, classes), softmax, in class_names' order",
        "preparation": json.dumps(preparation.as_dict()),
        "test_acc": json.dumps(test_acc),
        "cnnlab_version": version("cnnlab"),
    }


def session(model: bytes | str, threads: int | None = None) -> ort.InferenceSession:
    """An onnxruntime CPU session on the file (or its bytes), with ``threads`` intra-op threads
    (onnxruntime's default: one per core)."""
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


class OnnxModel:
    """An exported file as ``cnnlab.predict`` uses a checkpoint's model: ``class_names``,
    ``predict_step`` (probabilities), and the ``preparation`` its images need."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise CheckpointError(f"ckpt_path={path}: no such file")
        try:
            self.session = session(str(path))
            meta = self.session.get_modelmeta().custom_metadata_map
            self.class_names = json.loads(meta["class_names"])
            self.preparation = Preparation.from_dict(json.loads(meta["preparation"]))
        except KeyError as e:
            raise CheckpointError(f"{path}: not exported by cnnlab (no {e} metadata)") from None
        except Exception as e:  # onnxruntime raises its own types for a corrupt file
            raise CheckpointError(f"{path}: not a readable ONNX model ({one_line(e)})") from e

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        (probs,) = self.session.run([OUTPUT], {INPUT: np.ascontiguousarray(images, np.float32)})
        return probs

    def predict_step(self, images: Tensor, batch_idx: int = 0) -> Tensor:
        """Softmax probabilities, as ``Classifier.predict_step`` gives them."""
        return torch.from_numpy(self.probabilities(images.numpy()))
