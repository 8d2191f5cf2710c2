"""The best epoch's validation metrics, for result.json and the HPARAMS tab."""

from __future__ import annotations

from typing import Any

import lightning as L


class BestMetrics(L.Callback):
    """Remembers every ``val/*`` metric of the best epoch, judged as ModelCheckpoint judges it.

    ModelCheckpoint keeps only the monitored score; result.json and the HPARAMS tab also want
    the loss of that same epoch, so the test results and the validation results describe the
    same weights. Part of the checkpoint, so a resumed run keeps its best.
    """

    def __init__(self, monitor: str = "val/acc", mode: str = "max") -> None:
        self.monitor, self.mode = monitor, mode
        self.best: dict[str, float] = {}

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        score = metrics[self.monitor]
        if not self.best or self._better(score, self.best[self.monitor]):
            self.best = {**metrics, "epoch": trainer.current_epoch}

    def _better(self, score: float, best: float) -> bool:
        return score > best if self.mode == "max" else score < best

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best = state_dict["best"]
