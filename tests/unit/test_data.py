"""Real MNIST and Fashion-MNIST: verified files, the lesson's scaling, seeded splits and
per-epoch batch order, in a DataModule that knows no dataset."""

import pytest
import torch
from omegaconf import OmegaConf

from cnnlab.data.datamodule import (
    EpochOrder,
    ImageDataModule,
    TensorLoader,
    batches_within,
    fold_assignment,
)
from cnnlab.data.fashion_mnist import FashionMNIST
from cnnlab.data.idx_files import file_digest
from cnnlab.data.mnist import MNIST
from cnnlab.errors import CnnlabError
from tests.helpers import ROOT, mnist_data


def test_files_are_the_canonical_mnist(mnist_dir):
    for name, md5 in MNIST.md5.items():
        assert file_digest(MNIST().raw_dir(mnist_dir) / name) == md5


def test_fashion_mnist_comes_from_debian_checksummed_with_its_own_class_names(mnist_dir):
    raw = FashionMNIST().prepare(mnist_dir)  # offline: from Debian's archive, once
    assert FashionMNIST().invalid_files(raw) == []
    cfg = OmegaConf.load(ROOT / "conf" / "data" / "fashion_mnist.yaml")
    data = ImageDataModule(str(mnist_dir), FashionMNIST(), 1, 28, 10, list(cfg.class_names))
    images, labels = data.load_split(train=False)
    assert images.shape == (10_000, 1, 28, 28) and 0 <= images.min() < images.max() <= 1
    assert torch.bincount(labels).tolist() == [1000] * 10
    assert [cfg.class_names[i] for i in labels[:3].tolist()] == [
        "Ankle boot",
        "Pullover",
        "Trouser",
    ]


def test_a_description_that_is_not_the_datasets_is_one_line():
    names = [str(n) for n in range(10)]
    for args, message in (
        ((3, 28, 10, names), r"data\.channels=3: MNIST has 1"),
        ((1, 32, 10, names), r"data\.image_size=32: MNIST has 28"),
        ((1, 28, 10, names[:9]), r"data\.class_names: 9 names for data\.num_classes=10"),
    ):
        with pytest.raises(CnnlabError, match=message):
            ImageDataModule("unused", MNIST(), *args)


def test_pixels_are_bytes_over_255_and_labels_class_indices(mnist_dir):
    images, labels = mnist_data(mnist_dir).load_split(train=True)
    assert images.shape == (60_000, 1, 28, 28) and images.dtype == torch.float32
    assert labels.shape == (60_000,) and labels.dtype == torch.int64
    assert images.min() == 0 and images.max() == 1
    assert torch.equal(torch.unique(images[0] * 255).round(), torch.unique(images[0] * 255))
    assert labels[:5].tolist() == [5, 0, 4, 1, 9]  # MNIST's famous first training labels
    assert sorted(torch.unique(labels).tolist()) == list(range(10))


def test_default_split_is_a_seeded_holdout(mnist_dir):
    first, second = (mnist_data(mnist_dir) for _ in range(2))
    first.setup(), second.setup()
    sizes = {k: len(v[0]) for k, v in first.splits.items()}
    assert sizes == {"train": 55_000, "val": 5_000, "test": 10_000}
    assert torch.equal(first.splits["val"][1], second.splits["val"][1])


def test_seed_mode_validates_on_the_test_set(mnist_dir):
    data = mnist_data(mnist_dir, validation="test")
    data.setup()
    assert len(data.splits["train"][0]) == 60_000
    assert torch.equal(data.splits["val"][0], data.splits["test"][0])


def test_batches_cover_the_split_once_in_a_seeded_order_per_epoch():
    images, labels = torch.arange(10).float(), torch.arange(10)
    loader = TensorLoader(images, labels, batch_size=4, order=EpochOrder(10, True, seed=1))
    epoch0 = torch.cat([y for _, y in loader])
    loader.sampler.set_epoch(1)
    epoch1 = torch.cat([y for _, y in loader])
    loader.sampler.set_epoch(0)
    assert len(loader) == 3
    assert sorted(epoch0.tolist()) == list(range(10))
    assert not torch.equal(epoch0, epoch1)
    assert torch.equal(epoch0, torch.cat([y for _, y in loader]))


def test_ranks_take_disjoint_equal_shares():
    shares = [EpochOrder(10, True, seed=3, rank=r, world=2) for r in range(2)]
    a, b = (set(s.indices().tolist()) for s in shares)
    assert len(a) == len(b) == 5 and not a & b


def test_loader_resumes_mid_epoch_where_its_checkpoint_was_taken():
    images, labels = torch.arange(10.0).view(10, 1), torch.arange(10)
    loader = TensorLoader(images, labels, batch_size=3, order=EpochOrder(10, True, seed=1))
    whole = [y.tolist() for _, y in loader]
    it = iter(loader)
    next(it), next(it)
    assert loader.first_batch()[1].tolist() == whole[0]  # a peek does not move the position
    state = loader.state_dict()
    assert state == {"batches_done": 2}
    resumed = TensorLoader(images, labels, batch_size=3, order=EpochOrder(10, True, seed=1))
    resumed.load_state_dict(state)
    assert [y.tolist() for _, y in resumed] == whole[2:]  # the rest of the epoch, same order
    assert [y.tolist() for _, y in resumed] == whole  # and the next pass is whole again
    resumed.load_state_dict({"batches_done": 4})  # saved at the end of a pass: nothing skipped
    assert [y.tolist() for _, y in resumed] == whole


def test_train_limit_is_read_as_lightning_reads_it_and_refused_out_of_range():
    assert batches_within(None, 430) is None
    assert batches_within(20, 430) == 20 and batches_within(0.5, 430) == 215
    for bad, message in ((0, "must be >= 1"), (1.5, "a fraction in"), (0.001, "less than one")):
        with pytest.raises(CnnlabError, match=rf"trainer\.limit_train_batches={bad}: {message}"):
            batches_within(bad, 430)


def test_folds_are_disjoint_stratified_seeded_and_cover_the_training_set(mnist_dir):
    _, labels = mnist_data(mnist_dir).load_split(train=True)
    folds = fold_assignment(labels, 5, seed=0)
    assert torch.equal(folds, fold_assignment(labels, 5, seed=0))  # the same for every trial
    assert not torch.equal(folds, fold_assignment(labels, 5, seed=1))
    assert sorted(folds.unique().tolist()) == [0, 1, 2, 3, 4]  # every image in exactly one
    for digit in range(10):  # stratified: each class split evenly, to within one image
        counts = torch.bincount(folds[labels == digit], minlength=5)
        assert counts.max() - counts.min() <= 1
    data = mnist_data(mnist_dir, folds=5, fold=2)
    data.setup()
    (x_val, y_val), (x_train, _) = data.splits["val"], data.splits["train"]
    assert len(x_val) == int((folds == 2).sum()) and len(x_val) + len(x_train) == 60_000
    assert len(data.splits["test"][0]) == 10_000  # the test set untouched
    assert torch.equal(torch.bincount(y_val, minlength=10), torch.bincount(labels[folds == 2]))


def test_bad_folds_are_named():
    for kwargs, message in (
        ({"folds": 1}, r"data\.folds=1: must be in \[2, 60000\]"),
        ({"folds": 5, "fold": 5}, r"data\.fold=5: must be in \[0, 4\] for data\.folds=5"),
        ({"folds": 5, "validation": "test"}, r"data\.folds=5: cross-validation needs"),
    ):
        with pytest.raises(CnnlabError, match=message):
            mnist_data("unused", **kwargs)
