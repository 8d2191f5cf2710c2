"""cnnlab's grid sweeper for Hydra (``hydra_plugins`` is where Hydra looks for plugins)."""
