"""Which images train, validate and test: seeded hold-outs, stratified folds and splits. The same
images for every run and sweep trial with the same ``split_seed``, whatever the source."""

from __future__ import annotations

import torch
from torch import Tensor

from cnnlab.errors import CnnlabError


def check_folds(folds: int | None, fold: int, validation: str, images: int) -> None:
    if folds is None:
        return
    if validation != "holdout":
        raise CnnlabError(f"data.folds={folds}: cross-validation needs data.validation=holdout")
    if not 2 <= folds <= images:
        raise CnnlabError(f"data.folds={folds}: must be in [2, {images}] (or null: no folds)")
    if not 0 <= fold < folds:
        raise CnnlabError(f"data.fold={fold}: must be in [0, {folds - 1}] for data.folds={folds}")


def fold_assignment(labels: Tensor, folds: int, seed: int) -> Tensor:
    """Each image's fold, 0 to ``folds - 1``: a shuffle seeded by ``seed``, then each class's
    images dealt round-robin over the folds. Stratified: every fold holds each class's share
    to within one image; disjoint, and the same for every trial of a sweep."""
    shuffled = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    by_class = shuffled[torch.argsort(labels[shuffled], stable=True)]  # shuffled within a class
    sorted_labels = labels[by_class]
    rank_in_class = torch.arange(len(labels)) - torch.searchsorted(sorted_labels, sorted_labels)
    assignment = torch.empty_like(labels)
    assignment[by_class] = rank_in_class % folds
    return assignment


def held_out(labels: Tensor, fraction: float, seed: int) -> Tensor:
    """A stratified, seeded hold-out (a folder's test set when it has no ``test_root``): True
    for the images held out, ``fraction`` of each class rounded, shuffled within the class."""
    if not 0.0 < fraction < 1.0:
        raise CnnlabError(f"data.test_fraction={fraction}: a fraction in (0, 1)")
    shuffled = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    by_class = shuffled[torch.argsort(labels[shuffled], stable=True)]
    sorted_labels = labels[by_class]
    rank_in_class = torch.arange(len(labels)) - torch.searchsorted(sorted_labels, sorted_labels)
    share = torch.round(torch.bincount(labels).double() * fraction).long()[sorted_labels]
    mask = torch.zeros(len(labels), dtype=torch.bool)
    mask[by_class] = rank_in_class < share
    return mask


def validation_size(val_size: int | None, val_fraction: float, images: int) -> int:
    """How many training images the hold-out validates on: ``val_size`` when the data config
    gives a count (MNIST's 5000, the lesson's), else ``val_fraction`` of them, rounded."""
    if val_size is None:
        if not 0.0 < val_fraction < 1.0:
            raise CnnlabError(f"data.val_fraction={val_fraction}: a fraction in (0, 1)")
        val_size = round(images * val_fraction)
        key = f"data.val_fraction={val_fraction}"
    else:
        key = f"data.val_size={val_size}"
    if not 0 < val_size < images:
        raise CnnlabError(
            f"{key}: holds out {val_size} of {images} images; must be 1 to {images - 1}"
        )
    return val_size
