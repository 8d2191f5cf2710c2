"""What cnnlab's two sweepers (``hydra_plugins/``: the grid and the Optuna search) share:
Hydra's setup of a sweeper whose trials go to the configured launcher. Abstract (``sweep`` is
each sweeper's own), so Hydra's plugin scan does not register it."""

from __future__ import annotations

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class LaunchingSweeper(Sweeper):
    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )
