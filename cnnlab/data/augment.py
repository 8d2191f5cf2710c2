"""Cheap augmentation of training batches: small random shifts and rotations, per image.

One affine warp of the whole batch (``affine_grid`` + ``grid_sample``, bilinear, zeros outside),
on whatever device the batch is on: no per-image PIL work, no workers. Each image gets its own
draw from a generator seeded by (seed, epoch, rank, batch position), so a run's augmentation
depends on nothing else: the same for every ``steps_per_execution``, and a resumed run warps
its batches exactly as one that never stopped.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from cnnlab.errors import CnnlabError


class RandomAffine:
    """Shift each image by up to ``shift`` pixels in x and in y and rotate it by up to
    ``rotate`` degrees, uniformly at random; ``shift=0, rotate=0`` (the default) is off."""

    def __init__(self, shift: float = 0.0, rotate: float = 0.0) -> None:
        for key, value, most in (("shift", shift, 8), ("rotate", rotate, 180)):
            if not 0 <= value <= most:
                raise CnnlabError(f"data.augment.{key}={value!r}: must be in [0, {most}]")
        self.shift, self.rotate = float(shift), float(rotate)

    @property
    def active(self) -> bool:
        return self.shift > 0 or self.rotate > 0

    def __call__(self, images: Tensor, generator: torch.Generator) -> Tensor:
        n, _, height, width = images.shape
        draws = torch.rand(n, 3, generator=generator) * 2 - 1  # U(-1, 1), on the CPU
        angle = draws[:, 0] * math.radians(self.rotate)
        # affine_grid's coordinates run from -1 to 1 across the image: a pixel is 2 / size
        shift_x = draws[:, 1] * (self.shift * 2 / width)
        shift_y = draws[:, 2] * (self.shift * 2 / height)
        cos, sin = angle.cos(), angle.sin()
        theta = torch.stack(
            (torch.stack((cos, -sin, shift_x), 1), torch.stack((sin, cos, shift_y), 1)), 1
        ).to(images.device, images.dtype)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        return F.grid_sample(images, grid, padding_mode="zeros", align_corners=False)
