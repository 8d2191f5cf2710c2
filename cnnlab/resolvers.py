"""OmegaConf resolvers the configs use; importing this module registers them.

``cnnlab.or``: a value, or a default when it is null (``resume=`` picks the sweep dir).
``cnnlab.threads_per_job``: the per-trial thread cap for a launcher's job count.
"""

from pathlib import Path

from omegaconf import OmegaConf

from cnnlab.threads import threads_per_job

PROJECT_ROOT = Path(__file__).resolve().parent.parent

OmegaConf.register_new_resolver("cnnlab.root", lambda: str(PROJECT_ROOT), replace=True)
OmegaConf.register_new_resolver(
    "cnnlab.or", lambda value, default: default if value is None else value, replace=True
)
OmegaConf.register_new_resolver("cnnlab.threads_per_job", threads_per_job, replace=True)
