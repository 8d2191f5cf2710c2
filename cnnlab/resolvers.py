"""OmegaConf resolvers the configs use; importing this module registers them."""

from pathlib import Path

from omegaconf import OmegaConf

PROJECT_ROOT = Path(__file__).resolve().parent.parent

OmegaConf.register_new_resolver("cnnlab.root", lambda: str(PROJECT_ROOT), replace=True)
