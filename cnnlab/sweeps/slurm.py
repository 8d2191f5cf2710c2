"""``launcher=slurm``: what a trial asks SLURM for, and a refused submission as one line.

The job's resources follow the trial (``conf/launcher/slurm.yaml`` interpolates these
resolvers): GPUs only when the trainer uses a GPU, one task per DDP device, CPUs per task from
the cores (PyTorch's threads follow ``cpus_per_task``), memory from the model's size. Every
value stays an ordinary override (``hydra.launcher.mem_gb=8``). They are sized from the sweep's
own config: a sweep over bigger models asks for what its base model needs.

Before Hydra's submitit launcher submits anything, ``check_submission`` asks SLURM itself
(``sbatch --test-only``, which schedules nothing) whether it would take such a job; a refusal
becomes one ``cnnlab: error:`` line naming the setting, before a sweep directory exists.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from cnnlab.models.footprint import footprint
from cnnlab.perf.threads import cores
from cnnlab.runs.checks import ConfigError
from cnnlab.runs.preflight import training_memory

MAX_CPUS_PER_TASK = 4  # a default a cluster can pack many trials with; raise it for big models
PROCESS_GB = 2.0  # Python, PyTorch, Lightning and MNIST in memory, per task, before the model
HEADROOM = 1.25
UNKNOWN_MODEL_GB = 4.0  # a network the meta-device estimate cannot run: a generous guess
SBATCH_FLAGS = {  # hydra.launcher key -> sbatch flag (what submitit's executor writes)
    "partition": "--partition",
    "nodes": "--nodes",
    "tasks_per_node": "--ntasks-per-node",
    "cpus_per_task": "--cpus-per-task",
    "gpus_per_node": "--gpus-per-node",
    "gres": "--gres",
    "constraint": "--constraint",
    "exclude": "--exclude",
    "qos": "--qos",
    "account": "--account",
    "mem_per_cpu": "--mem-per-cpu",
    "mem_per_gpu": "--mem-per-gpu",
    "cpus_per_gpu": "--cpus-per-gpu",
    "gpus_per_task": "--gpus-per-task",
}


def uses_gpu(accelerator: str) -> bool:
    """Whether a trainer with this accelerator trains on a GPU ("auto": if this machine has one)."""
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def gpus_per_node(accelerator: str, devices: Any) -> int:
    """GPUs the trial's trainer uses on each node: none on CPU."""
    if not uses_gpu(str(accelerator)):
        return 0
    return int(devices) if isinstance(devices, int) and devices > 0 else 1


def tasks_per_node(strategy: Any, devices: Any) -> int:
    """One task per device under DDP (SLURM starts the ranks, Lightning joins them), else one."""
    ddp = isinstance(strategy, str) and strategy.startswith("ddp")
    return int(devices) if ddp and isinstance(devices, int) and devices > 0 else 1


def cpus_per_task(tasks: int) -> int:
    """This machine's cores shared by the tasks of a node, at most MAX_CPUS_PER_TASK each."""
    return max(1, min(MAX_CPUS_PER_TASK, cores() // max(1, int(tasks))))


def mem_gb(model: DictConfig, data: DictConfig, tasks: int) -> int:
    """Memory for a node's tasks: the process itself plus weights, gradients, Adam's moments
    and a batch's activations (``training_memory``, for any network), with headroom; a
    network whose footprint cannot be estimated gets ``UNKNOWN_MODEL_GB``."""
    found = footprint(model, (data.channels, data.image_size, data.image_size))
    model_gb = training_memory(found, data.batch_size) / 2**30 if found else UNKNOWN_MODEL_GB
    return math.ceil((PROCESS_GB + model_gb) * HEADROOM * max(1, int(tasks)))


for name, resolver in {
    "gpus_per_node": gpus_per_node,
    "tasks_per_node": tasks_per_node,
    "cpus_per_task": cpus_per_task,
    "mem_gb": mem_gb,
}.items():
    OmegaConf.register_new_resolver(f"cnnlab.slurm.{name}", resolver, replace=True)


def is_slurm(launcher: DictConfig) -> bool:
    """Whether the sweep's launcher is Hydra's submitit SLURM launcher."""
    return str(launcher.get("_target_", "")).endswith("SlurmLauncher")


def sbatch_args(launcher: DictConfig) -> list[str]:
    """The resource flags of the job Hydra's submitit launcher would submit."""
    args = [f"--time={int(launcher.timeout_min)}"]
    if launcher.get("mem_gb") is not None:
        args.append(f"--mem={int(launcher.mem_gb)}G")
    for key, flag in SBATCH_FLAGS.items():
        value = launcher.get(key)
        if value is not None and not (key == "gpus_per_node" and value == 0):
            args.append(f"{flag}={value}")
    extra = launcher.get("additional_parameters") or {}
    args += [f"--{key.replace('_', '-')}={value}" for key, value in extra.items()]
    return args


def check_submission(launcher: DictConfig) -> None:
    """Raise ConfigError with the setting SLURM refuses, if it would refuse the sweep's jobs."""
    if shutil.which("sbatch") is None:
        raise ConfigError(
            "launcher=slurm: no sbatch on the PATH (not a SLURM login node?); "
            "launcher=submitit_local runs the same sweep on this machine"
        )
    done = subprocess.run(
        ["sbatch", "--test-only", *sbatch_args(launcher), "--wrap=true"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        raise ConfigError(refusal(launcher, done.stderr))


def refusal(launcher: DictConfig, stderr: str) -> str:
    """sbatch's refusal as one line, led by the setting it is about."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    said = (lines[0] if lines else "no reason given").removeprefix("sbatch: error: ")
    low = stderr.lower()
    if "partition" in low:
        key = "partition"
    elif "gres" in low or "gpu" in low:
        key = "gpus_per_node"
    elif "time limit" in low:
        key = "timeout_min"
    elif "memory" in low:
        key = "mem_gb"
    else:
        key = too_big(launcher)
    if key is None:
        asked = ", ".join(
            f"hydra.launcher.{k}={launcher.get(k)}"
            for k in ("nodes", "tasks_per_node", "cpus_per_task", "gpus_per_node", "mem_gb")
        )
        return f"{asked}: SLURM refuses such a job ({said}); sinfo shows what its nodes have"
    return f"hydra.launcher.{key}={launcher.get(key)}: SLURM refuses it ({said})"


def too_big(launcher: DictConfig) -> str | None:
    """The resource a node of the partition has less of than one job asks: "cpus_per_task" or
    "mem_gb" (from sinfo's CPUs and memory per node), None if neither."""
    partition = ["--partition", str(launcher.partition)] if launcher.get("partition") else []
    done = subprocess.run(
        ["sinfo", "-h", "-o", "%c %m", *partition], capture_output=True, text=True, timeout=60
    )
    nodes = [line.split() for line in done.stdout.splitlines() if len(line.split()) == 2]
    sizes = [(int(c.rstrip("+")), int(m.rstrip("+"))) for c, m in nodes if c[0].isdigit()]
    if not sizes:
        return None
    tasks = int(launcher.get("tasks_per_node") or 1)
    if (launcher.get("cpus_per_task") or 1) * tasks > max(c for c, _ in sizes):
        return "cpus_per_task"
    if (launcher.get("mem_gb") or 0) * 1024 > max(m for _, m in sizes):
        return "mem_gb"
    return None
