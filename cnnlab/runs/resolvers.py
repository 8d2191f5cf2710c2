"""OmegaConf resolvers the configs use; importing this module registers them.

``cnnlab.or``: a value, or a default when it is null (``resume=`` picks the sweep dir).
``cnnlab.threads_per_job``: the per-trial thread cap for a launcher's job count.
``cnnlab.dirname``: a sweep trial's overrides as a directory name that fits file systems.
``cnnlab.trial_name``: a sweep trial's directory name: its values of the swept knobs only.
``cnnlab.folder``: what a folder of images says of itself (``conf/data/folder.yaml``).
"""

import hashlib
from pathlib import Path

from omegaconf import OmegaConf

from cnnlab.data.scan import inferred
from cnnlab.perf.threads import threads_per_job
from cnnlab.runs.swept import trial_name

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # cnnlab/runs/resolvers.py -> the checkout
MAX_DIRNAME = 150  # file systems allow 255 bytes per name; leave room for the job number


def short_dirname(name: str) -> str:
    """``name`` as one directory level ("/" in override values becomes "_"), shortened when too
    long to its start plus a hash of all of it (still one per trial)."""
    name = name.replace("/", "_")
    if len(name.encode()) <= MAX_DIRNAME:
        return name
    start = name.encode()[: MAX_DIRNAME - 9].decode(errors="ignore")
    return f"{start}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def trial_dirname(sweep_dir: str, task_overrides: list[str], override_dirname: str) -> str:
    """A sweep trial's directory name (after its job number): its values of the swept knobs
    (``cnnlab.runs.swept``), as one directory level that fits file systems."""
    return short_dirname(trial_name(sweep_dir, task_overrides, override_dirname))


OmegaConf.register_new_resolver("cnnlab.root", lambda: str(PROJECT_ROOT), replace=True)
OmegaConf.register_new_resolver(
    "cnnlab.or", lambda value, default: default if value is None else value, replace=True
)
OmegaConf.register_new_resolver("cnnlab.threads_per_job", threads_per_job, replace=True)
OmegaConf.register_new_resolver("cnnlab.dirname", short_dirname, replace=True)
OmegaConf.register_new_resolver("cnnlab.trial_name", trial_dirname, replace=True)
OmegaConf.register_new_resolver(
    "cnnlab.folder",
    lambda fact, root, test_root, data_dir: inferred(root, test_root, data_dir)[fact],
    replace=True,
)
