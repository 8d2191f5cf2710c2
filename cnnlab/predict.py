"""``python -m cnnlab.predict ckpt_path=<ckpt or run dir> images=[a.png,b.jpg]``: classify your
own images with a trained model.

Each image is prepared as the checkpoint's data was (``cnnlab.data.preparation``: MNIST's digit
recipe for digit data, else converted and resized) and gets its top classes with
probabilities. A file that can't be used costs one ``cnnlab: error:`` line naming it; the other
images are still predicted, and the exit code is 2 if any image failed.
"""

from __future__ import annotations

from cnnlab.signals import exit_on_signals

if __name__ == "__main__":
    exit_on_signals()  # first: a Ctrl-C while the imports below load is one line, no traceback

import sys
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, ListConfig

from cnnlab.data.digits import ImageFileError, image_files, invert_mode
from cnnlab.data.preparation import Preparation
from cnnlab.errors import CnnlabError, one_line, say
from cnnlab.models.classifier import Classifier
from cnnlab.runs.checkpoints import load_model, resolve_checkpoint
from cnnlab.runs.cli import compute_and_report, run_cli
from cnnlab.serving.onnx_model import OnnxModel


def top_classes(model: Classifier | OnnxModel, images: torch.Tensor, k: int) -> list[list[dict]]:
    """For each image (N, C, H, W): its ``k`` most probable classes, most probable first."""
    with torch.no_grad():
        probs = model.predict_step(images, 0)
    values, indices = probs.topk(min(k, probs.shape[1]), dim=1)
    return [
        [
            {"class": model.class_names[i], "index": i, "prob": p}
            for i, p in zip(ix, pv, strict=True)
        ]
        for ix, pv in zip(indices.tolist(), values.tolist(), strict=True)
    ]


def check_takes(model: Classifier, preparation: Preparation, ckpt: object) -> None:
    """Refuse a network that does not take the images its data's preparation makes."""
    try:
        with torch.no_grad():
            model(torch.zeros(1, *preparation.shape))
    except RuntimeError as e:
        raise CnnlabError(
            f"ckpt_path={ckpt}: its network does not take {'x'.join(map(str, preparation.shape))} "
            f"images, which is what its data config makes of yours ({one_line(e)})"
        ) from None


def predict(cfg: DictConfig) -> dict[str, Any]:
    """Predict every image that can be read; collect one error line for each that can't."""
    if cfg.top_k < 1:
        raise CnnlabError(f"top_k={cfg.top_k}: must be >= 1")
    invert = invert_mode(cfg.invert)
    paths = list(cfg.images) if isinstance(cfg.images, ListConfig) else [cfg.images]
    files = image_files([str(p) for p in paths])
    if str(cfg.ckpt_path).endswith(".onnx"):  # an exported file: onnxruntime, its metadata
        ckpt = Path(cfg.ckpt_path).expanduser()
        model = OnnxModel(ckpt)
        preparation = model.preparation
    else:
        ckpt = resolve_checkpoint(cfg.ckpt_path)
        model, config = load_model(ckpt)
        preparation = Preparation.of_data(config["data"])
        check_takes(model, preparation, ckpt)
    images, good, errors = [], [], []
    for path in files:
        try:
            images.append(preparation.load(path, invert))
            good.append(path)
        except ImageFileError as e:
            errors.append({"image": str(path), "error": str(e)})
    tops = top_classes(model, torch.stack(images), cfg.top_k) if images else []
    predictions = [{"image": str(p), "top": t} for p, t in zip(good, tops, strict=True)]
    return {
        "checkpoint": str(ckpt),
        "preparation": preparation.as_dict(),
        "predictions": predictions,
        "errors": errors,
    }


def report(result: dict[str, Any]) -> None:
    """One line per image: its classes with probabilities; errors on stderr."""
    for item in result["predictions"]:
        classes = "  ".join(f"{t['class']} {t['prob']:.3f}" for t in item["top"])
        print(f"{item['image']}: {classes}")
    for item in result["errors"]:
        say(item["error"])


@hydra.main(version_base="1.3", config_path="../conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    result = compute_and_report(lambda: predict(cfg), report, cfg.json)
    if result["errors"]:
        sys.exit(ImageFileError.exit_code)


if __name__ == "__main__":
    run_cli(main)
