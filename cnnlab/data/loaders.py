"""Batches for Lightning: the seeded order (``EpochOrder``), batches sliced from tensors that hold
a whole split (``TensorLoader``), or decoded from files by a DataLoader's workers
(``StreamLoader``, a folder too large for memory). Both resume mid-epoch, shard under DDP and
augment the same way, since the streamed one only changes where a batch's pixels come from.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from cnnlab.data.augment import RandomAffine
from cnnlab.errors import CnnlabError


class Streamed(Protocol):
    """Images decoded on demand (``cnnlab.data.folder.FolderDataset``): a DataLoader's dataset
    whose items are (uint8 image, or the line saying why the file can't be used; index)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> tuple[Tensor | str, int]: ...

    def note(self, problems: list[str]) -> None:
        """Say and count the files a batch could not use (in the run's process)."""


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


Collated = tuple[Tensor | None, Tensor, list[str]]  # images (None: none decoded), labels, problems


class StreamLoader(TensorLoader):
    """A ``TensorLoader`` whose batches are decoded from files by ``workers`` DataLoader
    processes, in the same seeded order; an image that fails to decode is left out of its
    batch, and a batch of only such images is left out of the epoch (its place still counts,
    so a resume continues with the same next batch). The workers hand the failures back, so
    the run's process says and counts them (``Streamed.note``)."""

    def __init__(
        self,
        files: Streamed,
        labels: Tensor,
        batch_size: int,
        order: EpochOrder,
        workers: int,
        augment: RandomAffine | None = None,
    ) -> None:
        super().__init__(labels, labels, batch_size, order, augment=augment)
        self.files, self.workers = files, workers

    def first_batch(self) -> tuple[Tensor, Tensor]:
        """The epoch's first batch that holds an image (not augmented)."""
        order = self._order()
        starts = range(0, len(self.sampler), self.batch_size)
        chunks = [self._chunk(order, start) for start in starts]
        return next(self._usable(self._decoded(chunks, workers=0)))

    def _batches(self, first: int) -> Iterator[tuple[Tensor, Tensor]]:
        order = self._order()
        end = min(len(self.sampler), len(self) * self.batch_size)
        starts = range(first * self.batch_size, end, self.batch_size)
        self.handed_out = first
        chunks = [self._chunk(order, start) for start in starts]
        for start, batch in zip(starts, self._decoded(chunks, self.workers), strict=True):
            self.handed_out += 1
            for images, labels in self._usable([batch]):
                yield (self._augmented(images, start) if self.augment else images), labels

    def _usable(self, batches: Iterable[Collated]) -> Iterator[tuple[Tensor, Tensor]]:
        """The batches that hold an image, each batch's failures said and counted."""
        for images, labels, problems in batches:
            self.files.note(problems)
            if images is not None:
                yield images, labels

    def _chunk(self, order: Tensor | None, start: int) -> list[int]:
        stop = min(start + self.batch_size, len(self.labels))
        return list(range(start, stop)) if order is None else order[start:stop].tolist()

    def _decoded(self, chunks: list[list[int]], workers: int) -> Iterator[Collated]:
        """The chunks' images, decoded by ``workers`` processes (0: in this one)."""
        loader = DataLoader(self.files, batch_sampler=chunks, num_workers=workers,
                            collate_fn=self._collate)  # fmt: skip
        return iter(loader)

    def _collate(self, items: list[tuple[Tensor | str, int]]) -> Collated:
        """In a worker: the batch's decoded images, their labels, the lines of those that
        failed (said by the run's process, which counts them)."""
        problems = [item for item, _ in items if isinstance(item, str)]
        good = [(image, index) for image, index in items if isinstance(image, Tensor)]
        labels = self.labels[[index for _, index in good]]
        if not good:
            return None, labels, problems
        images = torch.stack([image for image, _ in good])
        return images.float().div_(255.0), labels, problems


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
