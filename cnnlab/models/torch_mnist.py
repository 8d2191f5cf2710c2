"""The lesson's network as PyTorch's own example writes it (pytorch/examples, ``mnist/main.py``):
functional ReLU and pooling in ``forward``, layers named ``conv1``..``fc2``. The same layers as
the lesson's Keras model, PyTorch's default initialisation. ``model=torch_mnist``.

It returns logits (the example ends in ``log_softmax`` for ``nll_loss``; cnnlab's loss is
cross-entropy on logits, the same thing).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class TorchMNIST(nn.Module):
    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 28,
        num_classes: int = 10,
        dropout1: float = 0.25,
        dropout2: float = 0.5,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(dropout1)
        self.dropout2 = nn.Dropout(dropout2)
        side = (image_size - 4) // 2  # two 3x3 convs, then a 2x2 max-pool
        self.fc1 = nn.Linear(64 * side * side, 128)
        self.fc2 = nn.Linear(128, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(x)
        x = F.relu(x)
        x = self.conv2(x)
        x = F.relu(x)
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = self.fc1(x)
        x = F.relu(x)
        x = self.dropout2(x)
        return self.fc2(x)
