"""The general DataModule: a dataset held as whole tensors, batches are index slices, no per-item
PIL work, no workers. Nothing here is about one dataset: where the images come from is the
``images`` the config names (``cnnlab.data.mnist``, ``cnnlab.data.fashion_mnist``), what the
classes are called is the data config's (``conf/data/``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import lightning as L
import torch
from torch import Tensor

from cnnlab.data.augment import RandomAffine
from cnnlab.data.idx_files import IdxImages
from cnnlab.data.preparation import Preparation
from cnnlab.errors import CnnlabError

VALIDATION_MODES = ("holdout", "test")


class EpochOrder:
    """Which samples this process sees in which order, reseeded every epoch.

    Lightning calls ``set_epoch`` (it looks for ``loader.sampler.set_epoch``) before each epoch,
    also after a resume, so the order depends only on (seed, epoch). Under DDP each rank takes
    an equal, disjoint share of one shared permutation.
    """

    def __init__(self, size: int, shuffle: bool, seed: int, rank: int = 0, world: int = 1) -> None:
        self.size, self.shuffle, self.seed = size, shuffle, seed
        self.rank, self.world = rank, world
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size // self.world if self.world > 1 else self.size

    def indices(self) -> Tensor | None:
        """Sample indices for this epoch and rank; None means "all, in order"."""
        if not self.shuffle and self.world == 1:
            return None
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.size, generator=generator)
        else:
            order = torch.arange(self.size)
        return order[self.rank : len(self) * self.world : self.world]


class TensorLoader:
    """Iterates (images, labels) batches by slicing tensors that already hold the whole split.

    Resumable mid-epoch (``state_dict`` / ``load_state_dict``, the interface Lightning saves in
    a checkpoint's loop state): a run continued from a checkpoint taken after batch k of an
    epoch goes on with batch k + 1 of the same order, as if it had never stopped. Lightning
    does not prefetch from a loader with a length, so batches handed out = batches trained.
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        batch_size: int,
        order: EpochOrder,
        limit: int | None = None,
        augment: RandomAffine | None = None,
    ) -> None:
        self.images, self.labels, self.batch_size = images, labels, batch_size
        self.augment = augment if augment is not None and augment.active else None
        self.limit = limit  # batches per pass, at most (trainer.limit_train_batches)
        self.sampler = order  # where Lightning looks for set_epoch
        self.batch_sampler = None  # Lightning inspects this too; batching is done here
        self.handed_out = 0  # batches of the current pass handed out so far
        self.skip = 0  # batches to skip at the start of the next pass (a mid-epoch resume)

    def __len__(self) -> int:
        batches = -(-len(self.sampler) // self.batch_size)
        return batches if self.limit is None else min(batches, self.limit)

    @property
    def images_handed_out(self) -> int:
        """Images of the current pass handed out so far (what ``make bench`` counts)."""
        return min(self.handed_out * self.batch_size, len(self.sampler))

    def state_dict(self) -> dict[str, int]:
        return {"batches_done": self.handed_out}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.skip = state["batches_done"] % len(self)  # a whole pass done: the next starts at 0

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        first, self.skip = self.skip, 0  # taken now: Lightning's iterator is made first
        return self._batches(first)

    def first_batch(self) -> tuple[Tensor, Tensor]:
        """The epoch's first batch (not augmented), without moving the position a checkpoint
        records."""
        return self._batch(self._order(), 0)

    def _batches(self, first: int) -> Iterator[tuple[Tensor, Tensor]]:
        order = self._order()  # here, lazily: Lightning sets the epoch after iter()
        self.handed_out = first
        end = min(len(self.sampler), len(self) * self.batch_size)
        for start in range(first * self.batch_size, end, self.batch_size):
            self.handed_out += 1
            images, labels = self._batch(order, start)
            yield (self._augmented(images, start) if self.augment else images), labels

    def _augmented(self, images: Tensor, start: int) -> Tensor:
        order = self.sampler
        key = (order.seed, order.epoch, order.rank, start)  # hash() of ints: the same every run
        return self.augment(images, torch.Generator().manual_seed(hash(key) & (2**63 - 1)))

    def _order(self) -> Tensor | None:
        indices = self.sampler.indices()
        return None if indices is None else indices.to(self.images.device)

    def _batch(self, order: Tensor | None, start: int) -> tuple[Tensor, Tensor]:
        if order is None:
            stop = start + self.batch_size
            return self.images[start:stop], self.labels[start:stop]
        batch = order[start : start + self.batch_size]
        return self.images[batch], self.labels[batch]


class ImageDataModule(L.LightningDataModule):
    """Train/val/test splits of ``images``, scaled to [0, 1] by /255 exactly as the lesson does.

    ``validation="holdout"`` (default) validates on a fixed, seeded hold-out of ``val_size``
    training images; with ``folds`` (k-fold cross-validation) the hold-out is instead fold
    ``fold`` of ``folds`` disjoint, stratified folds of the training images
    (``fold_assignment``), the test set untouched. ``augment`` warps training batches
    (``RandomAffine``: shifts and rotations; off by default). ``validation="test"`` reproduces
    the lesson: train on every training image and validate on the test images.
    ``channels``, ``image_size``, ``num_classes`` and ``class_names`` describe the data to the
    rest of the config (the network's input and output: ``conf/model/``); they are checked
    against ``images`` here, before anything runs.
    """

    def __init__(
        self,
        data_dir: str,
        images: IdxImages,
        channels: int,
        image_size: int,
        num_classes: int,
        class_names: list[str],
        batch_size: int = 128,
        eval_batch_size: int = 200,
        validation: str = "holdout",
        val_size: int = 5000,
        split_seed: int = 0,
        shuffle_seed: int = 0,
        on_device: bool = True,
        folds: int | None = None,
        fold: int = 0,
        augment: RandomAffine | None = None,
        recipe: str = "resize",
    ) -> None:
        super().__init__()
        self.preparation = Preparation(channels, image_size, image_size, recipe)
        check_description(images, channels, image_size, num_classes, list(class_names))
        check_folds(folds, fold, validation, images.train_size)
        if validation not in VALIDATION_MODES:
            raise CnnlabError(f"data.validation={validation!r}: must be one of holdout, test")
        for key, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if value < 1:
                raise CnnlabError(f"data.{key}={value}: must be >= 1")
        if validation == "holdout" and not 0 < val_size < images.train_size:
            raise CnnlabError(f"data.val_size={val_size}: must be in [1, {images.train_size - 1}]")
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
        self.splits: dict[str, tuple[Tensor, Tensor]] = {}
        self.limit_train_batches: int | float | None = None  # set by the executions layer

    def load_split(self, train: bool) -> tuple[Tensor, Tensor]:
        """Images as float32 (N, C, H, W) = byte / 255, labels as int64 class indices."""
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
                "train": (x_train[train], y_train[train]),
                "val": (x_train[val], y_train[val]),
            }
        self.splits["test"] = (x_test, y_test)
        device = self.trainer.strategy.root_device if self.trainer else torch.device("cpu")
        if self.on_device and device.type != "cpu":
            self.splits = {k: (x.to(device), y.to(device)) for k, (x, y) in self.splits.items()}

    def _holdout(self, labels: Tensor) -> tuple[Tensor, Tensor]:
        """Indices of the validation and training images among the 60,000."""
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
        order = EpochOrder(len(images), shuffle, self.shuffle_seed, rank, world)
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


def check_description(
    images: IdxImages, channels: int, image_size: int, num_classes: int, class_names: list[str]
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


def batches_within(limit: int | float | None, batches: int) -> int | None:
    """``trainer.limit_train_batches`` as Lightning reads it (an int: at most that many; a
    float: that fraction, rounded down), applied by the loader itself under N steps per
    execution (``cnnlab.perf.executions``), where Lightning would count executions."""
    if limit is None or isinstance(limit, bool):
        return None
    if isinstance(limit, float):
        if not 0.0 < limit <= 1.0:
            raise CnnlabError(f"trainer.limit_train_batches={limit}: a fraction in (0, 1]")
        if int(batches * limit) < 1:
            raise CnnlabError(
                f"trainer.limit_train_batches={limit}: less than one of the {batches} batches"
            )
        return int(batches * limit)
    if limit < 1:
        raise CnnlabError(f"trainer.limit_train_batches={limit}: must be >= 1")
    return limit
