"""Shared fixtures: real MNIST, fetched once into the project's data dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnnlab.data.mnist import MNIST
from tests.helpers import DATA_DIR


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The real MNIST files, verified by MD5; fetched once per machine."""
    MNIST().prepare(DATA_DIR)
    return DATA_DIR
