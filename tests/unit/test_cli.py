"""The command-line wrapper (``cnnlab.runs.cli.run_cli``) leaves the process's warning filters
as it found them."""

import os

import lightning as L

from cnnlab.runs.cli import SRUN_HINT, run_cli
from tests.helpers import warnings_shown


def build_a_trainer() -> None:
    """What gives Lightning's srun hint: a Trainer looks for SLURM as it is built."""
    L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False,
              enable_progress_bar=False, enable_model_summary=False)  # fmt: skip


def test_lightnings_srun_hint_is_ignored_while_a_command_runs_and_only_then(tmp_path, monkeypatch):
    srun = tmp_path / "srun"  # SLURM installed, not used: what makes Lightning give its hint
    srun.write_text("#!/bin/sh\n")
    srun.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("SLURM_NTASKS", raising=False)
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")  # run_cli sets it; restored after the test
    with warnings_shown() as during:
        run_cli(build_a_trainer)
    with warnings_shown() as after:
        build_a_trainer()
    assert not [message for message in during if SRUN_HINT in message]
    assert [message for message in after if SRUN_HINT in message]  # outside, Lightning's own
