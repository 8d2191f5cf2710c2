"""The general DataModule: a dataset held as whole tensors, batches are index slices, no per-item
PIL work, no workers; or, for a folder too large for memory, files decoded batch by batch by
workers (``cnnlab.data.loaders``). Nothing here is about one dataset or file format: where the
images come from is the ``images`` the config names (``cnnlab.data.mnist``,
``cnnlab.data.fashion_mnist``, ``cnnlab.data.folder``), what the classes are called is the data
config's (``conf/data/``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor

from cnnlab.data.augment import RandomAffine
from cnnlab.data.folder import FolderDataset, FolderImages
from cnnlab.data.idx_files import IdxImages
from cnnlab.data.loaders import EpochOrder, StreamLoader, TensorLoader, batches_within
from cnnlab.data.preparation import Preparation
from cnnlab.data.splits import check_folds, fold_assignment, validation_size
from cnnlab.errors import CnnlabError, say

__all__ = [
    "EpochOrder",
    "FolderDataModule",
    "ImageDataModule",
    "TensorLoader",
    "batches_within",
    "fold_assignment",
]
VALIDATION_MODES = ("holdout", "test")


class ImageDataModule(L.LightningDataModule):
    """Train/val/test splits of ``images``, scaled to [0, 1] by /255 exactly as the lesson does.

    ``validation="holdout"`` (default) validates on a fixed, seeded hold-out of ``val_size``
    training images (or ``val_fraction`` of them when ``val_size`` is null); with ``folds``
    (k-fold cross-validation) the hold-out is instead fold ``fold`` of ``folds`` disjoint,
    stratified folds of the training images (``fold_assignment``), the test set untouched.
    ``augment`` warps training batches (``RandomAffine``: shifts and rotations; off by
    default). ``validation="test"`` reproduces the lesson: train on every training image and
    validate on the test images. ``channels``, ``image_size``, ``num_classes`` and
    ``class_names`` describe the data to the rest of the config (the network's input and
    output: ``conf/model/``); they are checked against ``images`` here, before anything runs.
    A folder (``FolderImages``) is held in memory when ``in_memory`` and its float32 images fit
    ``memory_mb``; otherwise its files are decoded batch by batch by ``workers`` processes.
    """

    def __init__(
        self,
        data_dir: str,
        images: IdxImages | FolderImages,
        channels: int,
        image_size: int,
        num_classes: int,
        class_names: list[str],
        batch_size: int = 128,
        eval_batch_size: int = 200,
        validation: str = "holdout",
        val_size: int | None = None,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        shuffle_seed: int = 0,
        on_device: bool = True,
        folds: int | None = None,
        fold: int = 0,
        augment: RandomAffine | None = None,
        recipe: str = "resize",
        in_memory: bool = True,
        memory_mb: int = 4096,
        workers: int = 2,
    ) -> None:
        super().__init__()
        self.preparation = Preparation(channels, image_size, image_size, recipe)
        check_description(images, channels, image_size, num_classes, list(class_names))
        check_folds(folds, fold, validation, images.train_size)
        if validation not in VALIDATION_MODES:
            raise CnnlabError(f"data.validation={validation!r}: must be one of holdout, test")
        for key, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size),
                           ("memory_mb", memory_mb)):  # fmt: skip
            if value < 1:
                raise CnnlabError(f"data.{key}={value}: must be >= 1")
        if workers < 0:
            raise CnnlabError(f"data.workers={workers}: must be >= 0 (0: decode in the run)")
        if validation == "holdout":
            val_size = validation_size(val_size, val_fraction, images.train_size)
        if Path(data_dir).exists() and not Path(data_dir).is_dir():
            raise CnnlabError(
                f"data directory {data_dir} is a file (paths.data_dir, CNNLAB_DATA_DIR)"
            )
        self.data_dir, self.images = Path(data_dir), images
        self.class_names = list(class_names)
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.validation, self.val_size = validation, val_size
        self.split_seed, self.shuffle_seed, self.on_device = split_seed, shuffle_seed, on_device
        self.folds, self.fold = folds, fold
        self.augment = augment  # training batches only
        self.in_memory, self.memory_mb, self.workers = in_memory, memory_mb, workers
        self.splits: dict[str, tuple[Tensor | FolderDataset, Tensor]] = {}
        self.limit_train_batches: int | float | None = None  # set by the executions layer

    @property
    def streams(self) -> bool:
        """Whether the images are decoded batch by batch rather than held in memory."""
        if not isinstance(self.images, FolderImages):
            return False
        held = self.images.nbytes(True) + self.images.nbytes(False)
        return not self.in_memory or held > self.memory_mb * 2**20

    @property
    def skipped(self) -> int:
        """Images left out because they could not be read (what result.json counts)."""
        return getattr(self.images, "skipped", 0)

    def load_split(self, train: bool) -> tuple[Tensor | FolderDataset, Tensor]:
        """Images as float32 (N, C, H, W) = byte / 255 (or files to stream), labels as int64."""
        if self.streams:
            return self.images.stream(train)
        images, labels = self.images.load(self.data_dir, train)
        return images.float().div_(255.0), labels

    def prepare_data(self) -> None:
        self.images.prepare(self.data_dir)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        x_train, y_train = self.load_split(train=True)
        x_test, y_test = self.load_split(train=False)
        if self.validation == "test":
            self.splits = {"train": (x_train, y_train), "val": (x_test, y_test)}
        else:
            val, train = self._holdout(y_train)
            self.splits = {
                "train": (pick(x_train, train), y_train[train]),
                "val": (pick(x_train, val), y_train[val]),
            }
        self.splits["test"] = (x_test, y_test)
        self._say_how()
        device = self.trainer.strategy.root_device if self.trainer else torch.device("cpu")
        if self.on_device and device.type != "cpu" and not self.streams:
            self.splits = {k: (x.to(device), y.to(device)) for k, (x, y) in self.splits.items()}

    def _say_how(self) -> None:
        """One line: which path a folder's images took (in memory, cached, streamed)."""
        if isinstance(self.images, FolderImages):
            sizes = "/".join(f"{len(y):,}" for _, y in self.splits.values())
            why = "" if not self.streams else (
                " (data.in_memory=false)" if not self.in_memory
                else f" (more than data.memory_mb={self.memory_mb} as float32)")  # fmt: skip
            held = f"streamed by {self.workers} workers{why}" if self.streams else "in memory"
            say(f"train/val/test {sizes} images {held}: {'; '.join(self.images.how.values())}",
                "data")  # fmt: skip

    def _holdout(self, labels: Tensor) -> tuple[Tensor, Tensor]:
        """Indices of the validation and training images among the training split's."""
        if self.folds:
            in_fold = fold_assignment(labels, self.folds, self.split_seed) == self.fold
            return in_fold.nonzero().squeeze(1), (~in_fold).nonzero().squeeze(1)
        order = torch.randperm(
            len(labels), generator=torch.Generator().manual_seed(self.split_seed)
        )
        return order[: self.val_size], order[self.val_size :]

    def _loader(
        self,
        split: str,
        batch_size: int,
        shuffle: bool,
        limit: int | float | None = None,
        augment: RandomAffine | None = None,
    ) -> TensorLoader:
        images, labels = self.splits[split]
        rank, world = (
            (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        )
        if split != "train":  # every rank evaluates everything: exact metrics, no padding
            rank, world = 0, 1
        order = EpochOrder(len(labels), shuffle, self.shuffle_seed, rank, world)
        if isinstance(images, FolderDataset):
            loader = StreamLoader(images, labels, batch_size, order, self.workers, augment)
        else:
            loader = TensorLoader(images, labels, batch_size, order, augment=augment)
        loader.limit = batches_within(limit, len(loader))
        return loader

    def train_dataloader(self) -> TensorLoader:
        return self._loader("train", self.batch_size, True, self.limit_train_batches, self.augment)

    def val_dataloader(self) -> TensorLoader:
        return self._loader("val", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> TensorLoader:
        return self._loader("test", self.eval_batch_size, shuffle=False)

    def predict_dataloader(self) -> TensorLoader:
        return self.test_dataloader()


class FolderDataModule(ImageDataModule):
    """``data=folder``: ``root``, ``test_root`` and ``test_fraction`` are the folder's, which its
    ``images`` read (``conf/data/folder.yaml``); every other key is ImageDataModule's."""

    def __init__(
        self, root: str, test_root: str | None = None, test_fraction: float = 0.2, **settings: Any
    ) -> None:
        super().__init__(**settings)


def pick(images: Tensor | FolderDataset, indices: Tensor) -> Tensor | FolderDataset:
    """Some of a split's images, held or streamed."""
    return images.subset(indices) if isinstance(images, FolderDataset) else images[indices]


def check_description(
    images: IdxImages | FolderImages,
    channels: int,
    image_size: int,
    num_classes: int,
    class_names: list[str],
) -> None:
    """The data config's description of ``images`` must be theirs (the network is built from
    it): one line naming the key otherwise."""
    name = type(images).__name__
    for key, said, actual in (("channels", channels, images.channels),
                              ("image_size", image_size, images.image_size),
                              ("num_classes", num_classes, images.num_classes)):  # fmt: skip
        if said != actual:
            raise CnnlabError(f"data.{key}={said!r}: {name} has {actual}")
    if len(class_names) != num_classes:
        raise CnnlabError(
            f"data.class_names: {len(class_names)} names for data.num_classes={num_classes}"
        )
