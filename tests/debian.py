"""Debian packages a test needs (SLURM, chromium), installed with apt-get when missing."""

from __future__ import annotations

import os
import shutil
import subprocess


class CannotInstall(Exception):
    """The packages are missing and this machine cannot install them (not root, no apt-get)."""


def ensure_debian_packages(packages: list[str], programs: list[str]) -> None:
    """Install ``packages`` from Debian unless every one of ``programs`` is on the PATH."""
    if all(shutil.which(program) for program in programs):
        return
    wanted = " ".join(packages)
    if os.geteuid() != 0:
        raise CannotInstall(f"{wanted} not installed and installing needs root")
    if not shutil.which("apt-get"):
        raise CannotInstall(f"{wanted} not installed and there is no apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", *packages]):
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0 and command[1] == "install":
            last = (done.stderr.strip().splitlines() or ["?"])[-1]
            raise CannotInstall(f"apt-get install {wanted} failed: {last}")
