"""``trainer.max_steps`` ends a run as a stop should: validated, checkpointed, tested.

Lightning stops at ``max_steps`` wherever in the epoch it falls, without validating: the run
then has no best checkpoint, no ``val/*`` for result.json, and its last steps are saved in no
checkpoint. A stop that Lightning is *asked* for (``trainer.should_stop``, as EarlyStopping
asks) is validated first; so once the last step is taken, this asks.
"""

from __future__ import annotations

from typing import Any

import lightning as L


class StopAtMaxSteps(L.Callback):
    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if 0 <= trainer.max_steps <= trainer.global_step:
            trainer.should_stop = True
