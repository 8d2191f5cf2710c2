"""Speed settings that change how fast a run goes, never what it computes.

Measured by ``python -m bench`` (docs/speed.md); each is on by default only where it pays
on the machines measured. Precision is the Trainer's own (``trainer.precision``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

# Epoch-level torchmetrics without per-step input checks: the checks cost a host sync (NaN test,
# label range) every step. A NaN loss still shows, as a NaN mean.
LEAN_MEAN = {"nan_strategy": "disable"}
LEAN_ACC = {"validate_args": False}


@dataclass(frozen=True)
class SpeedOptions:
    """``model.channels_last``, ``model.fused_adam``, ``model.compile`` of the config."""

    channels_last: bool = False
    fused_adam: bool = False
    compile: bool = False

    def apply_to(self, net: nn.Module) -> None:
        """Convert and/or compile ``net`` in place; parameter names (checkpoints) stay the same."""
        if self.channels_last:
            net.to(memory_format=torch.channels_last)
        if self.compile:
            net.compile()  # in place: no "_orig_mod." prefix in the state dict

    def layout(self, images: Tensor) -> Tensor:
        """Images in the memory layout the convolutions were converted to."""
        if self.channels_last:
            return images.contiguous(memory_format=torch.channels_last)
        return images

    def adam_kwargs(self) -> dict[str, bool]:
        """One fused kernel per step for Adam instead of a dozen per-tensor ops."""
        return {"fused": True} if self.fused_adam else {}
