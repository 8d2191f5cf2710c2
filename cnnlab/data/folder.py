"""``data=folder data.root=<dir>``: your own images, one folder per class (torchvision's
ImageFolder layout, ``cnnlab.data.scan``), as a source of the general DataModule, like MNIST's
IDX files: uint8 images and class indices per split, in memory (decoded once, then cached:
``cnnlab.data.cache``), or as files decoded batch by batch (``FolderDataset``, streamed).

The test set is ``test_root`` when given, else a stratified, seeded ``test_fraction`` of each
class of ``root`` (chosen among the files scanned, so in memory and streamed hold out the same
images). Every image is decoded in ``channels`` and resized to ``image_size`` squared
(``cnnlab.data.decode``, ``Preparation.resize``): what ``predict`` does to a file.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from cnnlab.data.cache import cache_path, cached
from cnnlab.data.decode import Header, decode
from cnnlab.data.digits import ImageFileError
from cnnlab.data.preparation import Preparation
from cnnlab.data.scan import SHOWN, Scanned, scan, warn_each
from cnnlab.data.splits import held_out
from cnnlab.errors import say

DECODE_BATCH = 256  # files per worker task while decoding a folder into memory
Decoded = dict[str, object]  # {"images": uint8 (N, C, H, W), "good": bool (N), "errors": [str]}


class FolderDataset(Dataset):
    """Files decoded on demand: item ``i`` is (uint8 (C, S, S) image, or the line saying why
    it can't be used, ``i``). ``unreadable`` collects those lines in the run's process (shared
    with the folder and its other splits): each file is said once, and counted once, however
    many epochs meet it."""

    def __init__(
        self,
        paths: list[Path],
        headers: list[Header],
        preparation: Preparation,
        unreadable: set[str],
    ) -> None:
        self.paths, self.headers, self.preparation = paths, headers, preparation
        self.unreadable = unreadable

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Tensor | str, int]:
        channels = self.preparation.channels
        try:
            image = decode(self.paths[index], channels, self.headers[index])
        except ImageFileError as e:
            return f"{e}; skipped", index
        return self.preparation.resize(image), index

    def subset(self, indices: Tensor) -> FolderDataset:
        picked = indices.tolist()
        return FolderDataset([self.paths[i] for i in picked], [self.headers[i] for i in picked],
                             self.preparation, self.unreadable)  # fmt: skip

    def note(self, problems: list[str]) -> None:
        """Say each file a streamed batch could not use the first time it fails (the first
        ``SHOWN`` of them; result.json counts them all)."""
        for line in problems:
            if line in self.unreadable:
                continue
            if len(self.unreadable) < SHOWN:
                say(line, "warning")
            elif len(self.unreadable) == SHOWN:
                say("... more unreadable images skipped (result.json counts them)", "warning")
            self.unreadable.add(line)


def as_list(items: list[tuple[Tensor | str, int]]) -> list[tuple[Tensor | str, int]]:
    """A DataLoader's collate that keeps a batch's items as they are."""
    return items


def decode_all(dataset: FolderDataset, workers: int) -> Decoded:
    """Every file of ``dataset`` decoded (by ``workers`` processes): images, which decoded, and
    a line for each that did not."""
    preparation = dataset.preparation
    images = torch.zeros(len(dataset), *preparation.shape, dtype=torch.uint8)
    good = torch.zeros(len(dataset), dtype=torch.bool)
    errors: list[str] = []
    batches = DataLoader(dataset, batch_size=DECODE_BATCH, num_workers=workers,
                         collate_fn=as_list)  # fmt: skip
    for batch in batches:
        for image, index in batch:
            if isinstance(image, str):
                errors.append(image)
            else:
                images[index], good[index] = image, True
    return {"images": images, "good": good, "errors": errors}


class FolderImages:
    """A folder of class folders, split into train and test (``conf/data/folder.yaml``)."""

    name = "folder"

    def __init__(
        self,
        root: str,
        channels: int,
        image_size: int,
        data_dir: str,
        test_root: str | None = None,
        test_fraction: float = 0.2,
        split_seed: int = 0,
        workers: int = 2,
    ) -> None:
        self.root, self.test_root = str(root), None if test_root is None else str(test_root)
        self.preparation = Preparation(channels, image_size, image_size)
        self.channels, self.image_size = channels, image_size
        self.test_fraction, self.split_seed, self.workers = test_fraction, split_seed, workers
        train, test = scan(self.root, self.test_root, str(data_dir))
        self.num_classes = len(train.classes)
        self.parts = self._parts(train, test)
        self.train_size = len(self.parts[True][1])
        self.left_out = sum(len(s.skipped) for s in (train, test) if s is not None)  # by the scan
        self.unreadable: set[str] = set()  # lines of the files that failed to decode
        self.decoded: dict[Path, Decoded] = {}
        self.how: dict[Path, str] = {}  # which path each folder took: what the run says

    def _parts(self, train: Scanned, test: Scanned | None) -> dict[bool, tuple[Scanned, Tensor]]:
        """Each split's folder and which of its images it takes."""
        if test is not None:
            return {True: (train, torch.arange(len(train.paths))),
                    False: (test, torch.arange(len(test.paths)))}  # fmt: skip
        mask = held_out(torch.tensor(train.labels), self.test_fraction, self.split_seed)
        return {True: (train, (~mask).nonzero().squeeze(1)),
                False: (train, mask.nonzero().squeeze(1))}  # fmt: skip

    def prepare(self, data_dir: str | Path) -> None:
        """Nothing to fetch: the folders were scanned when the config was read."""

    def nbytes(self, train: bool) -> int:
        """The split's size in memory as the DataModule holds it (float32)."""
        return len(self.parts[train][1]) * 4 * self.channels * self.image_size**2

    def load(self, data_dir: str | Path, train: bool) -> tuple[Tensor, Tensor]:
        """A split as uint8 images (N, C, S, S) and int64 class indices, unreadable files left
        out (one line each, counted in ``skipped``)."""
        scanned, indices = self.parts[train]
        if scanned.root not in self.decoded:
            decode = partial(decode_all, self.files(scanned), self.workers)
            read_as = f"{self.channels} {self.image_size}"
            path = cache_path(Path(data_dir), scanned.root.name, scanned.paths, read_as)
            decoded, how = cached(path, decode, "decoded", "decoded images")
            self.decoded[scanned.root] = decoded
            self.how[scanned.root] = f"{len(scanned.paths):,} images of {scanned.root} {how}"
            warn_each(list(decoded["errors"]))
            self.unreadable.update(decoded["errors"])
        decoded = self.decoded[scanned.root]
        indices = indices[decoded["good"][indices]]
        return decoded["images"][indices], torch.tensor(scanned.labels)[indices]

    def stream(self, train: bool) -> tuple[FolderDataset, Tensor]:
        """A split as files decoded batch by batch, and its int64 class indices."""
        scanned, indices = self.parts[train]
        self.how[scanned.root] = f"{len(scanned.paths):,} images of {scanned.root} streamed"
        return self.files(scanned).subset(indices), torch.tensor(scanned.labels)[indices]

    @property
    def skipped(self) -> int:
        """Images left out because they could not be read: what result.json counts."""
        return self.left_out + len(self.unreadable)

    def files(self, scanned: Scanned) -> FolderDataset:
        return FolderDataset(scanned.paths, scanned.headers, self.preparation, self.unreadable)
