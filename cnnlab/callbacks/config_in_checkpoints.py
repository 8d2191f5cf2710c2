"""The run's resolved config in every checkpoint, so that a checkpoint alone rebuilds its
network and names its classes (``evaluate``, ``predict``), wherever it is copied to."""

from __future__ import annotations

from typing import Any

import lightning as L
from omegaconf import DictConfig, OmegaConf

CONFIG_KEY = "config"  # checkpoint["config"]: plain values, loadable with weights_only=True


class ConfigInCheckpoints(L.Callback):
    """Writes ``cfg`` (resolved, as plain dicts and lists) into every checkpoint saved."""

    def __init__(self, cfg: DictConfig) -> None:
        self.config = OmegaConf.to_container(cfg, resolve=True)

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[CONFIG_KEY] = self.config
