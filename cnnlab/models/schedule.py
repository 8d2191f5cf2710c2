"""How many optimizer steps a fit will take: what a schedule over the whole run
(``scheduler=onecycle``'s ``total_steps``) needs to know before the first step."""

from __future__ import annotations

import math

import lightning as L

from cnnlab.data.datamodule import batches_within
from cnnlab.errors import CnnlabError


def planned_steps(trainer: L.Trainer) -> int:
    """The epochs' batches, within ``trainer.limit_train_batches``, an optimizer step per
    ``accumulate_grad_batches`` of them and one at each epoch's end, at most
    ``trainer.max_steps``. The batches are counted on a fresh training loader of the
    datamodule: Lightning's ``estimated_stepping_batches`` sets up the fit loop's data this
    early, before a checkpoint is restored, and a mid-epoch resume then loses its place. A
    module that accumulates gradients itself (N steps per execution) says so in its own
    ``accumulate_grad_batches``."""
    batches = len(trainer.datamodule.train_dataloader())
    batches = batches_within(trainer.limit_train_batches, batches) or batches
    module = trainer.lightning_module
    accumulate = getattr(module, "accumulate_grad_batches", trainer.accumulate_grad_batches)
    steps = math.ceil(batches / accumulate) * max(trainer.max_epochs or 0, 0)
    if trainer.max_steps >= 0:
        steps = min(steps, trainer.max_steps) if steps else trainer.max_steps
    if steps < 1:
        raise CnnlabError("scheduler: needs a finite trainer.max_epochs or trainer.max_steps")
    return steps
