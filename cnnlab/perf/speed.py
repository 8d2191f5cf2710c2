"""Speed switches (``conf/speed/``): they change how fast a run goes, never what it computes.

``speed=fast`` (the default) turns on what measurement showed pays on the machines measured
(docs/speed.md); ``speed=plain`` turns everything off, so an A/B is one override. Precision is
the Trainer's own (``trainer.precision``): it changes results, so it is not here.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import lightning as L
import torch
from lightning.pytorch.profilers import Profiler
from torch import Tensor, nn

from cnnlab.errors import CnnlabError
from cnnlab.perf.heap import keep_freed_memory
from cnnlab.perf.profilers import NoProfiler
from cnnlab.perf.share_cores import ShareCores
from cnnlab.perf.threads import cap_threads

# Epoch-level torchmetrics without per-step input checks: the checks cost a host sync (NaN test,
# label range) every step. A NaN loss still shows, as a NaN mean.
LEAN_MEAN = {"nan_strategy": "disable"}
LEAN_ACC = {"validate_args": False}
# speed.steps_per_execution=auto (docs/speed.md, "Steps per execution"): it starts at the
# device's AUTO_STEPS, enough that Lightning's cost per execution is a rounding error of the
# lesson model's step; on one device, each execution's pace then sets the next one's steps:
# doubled while they still fit in AUTO_SECONDS, so fast steps (a tiny network, a GPU) share that
# cost among more of them, while a signal, a max_steps or a progress-bar update waits no longer
# than the start value's steps or a quarter of a second, whichever is longer.
AUTO_STEPS = {"cpu": 16, "cuda": 64}
AUTO_SECONDS = 0.25
AUTO_MAX_STEPS = 1024
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass(frozen=True)
class Speed:
    """The ``speed`` node of the config; the defaults are ``conf/speed/fast.yaml``'s (tested).

    - ``channels_last``: convolutions in NHWC layout, oneDNN's fast path on CPUs.
    - ``fused_optimizer``: the optimizer's single fused kernel per step (when it has one).
    - ``compile``: ``torch.compile`` the network; a mode name for ``torch.compile``'s
      ``mode`` (``reduce-overhead``: CUDA graphs of the forward and backward on a GPU).
    - ``automatic_optimization``: false lets the training step zero, backpropagate and step the
      optimizer itself, as a PyTorch loop does (Lightning's manual optimization); Trainer
      gradient clipping and accumulation need true.
    - ``keep_freed_memory``: glibc's malloc keeps freed activations mapped (``perf/heap.py``).
    - ``threads``: a cap on PyTorch's CPU threads (the parallel launchers set it); null: one per
      core.
    - ``lean_profiler``: without ``trainer.profiler``, a profiler that records nothing at no
      cost instead of Lightning's default (``perf/profilers.py``).
    - ``share_cores``: training threads follow the cores other processes leave free
      (``perf/share_cores.py``); off under ``trainer.deterministic``.
    - ``steps_per_execution``: optimizer steps per Lightning training step (Keras' name), so
      Lightning's fixed cost per step is paid once per N steps; ``auto``: ``AUTO_STEPS`` for
      the device, more where steps are fast (``paced_steps``), 1 under automatic optimization
      (Lightning then steps once per call).
    """

    channels_last: bool = True
    fused_optimizer: bool = True
    compile: bool | str = False
    automatic_optimization: bool = False
    keep_freed_memory: bool = True
    threads: int | None = None
    lean_profiler: bool = True
    share_cores: bool = True
    steps_per_execution: int | str = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.compile, str) and self.compile not in COMPILE_MODES:
            raise CnnlabError(
                f"speed.compile={self.compile!r}: true, false or one of {', '.join(COMPILE_MODES)}"
            )
        n = self.steps_per_execution
        if n != "auto" and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise CnnlabError(f"speed.steps_per_execution={n!r}: must be an integer >= 1 or auto")
        if self.automatic_optimization and n not in ("auto", 1):
            raise CnnlabError(
                f"speed.steps_per_execution={n}: Lightning's automatic optimization steps once "
                "per training step; needs speed.automatic_optimization=false"
            )

    def resolve_steps_per_execution(self, device: torch.device) -> int:
        """``steps_per_execution`` as a number for a run on ``device``."""
        if self.steps_per_execution != "auto":
            return int(self.steps_per_execution)
        if self.automatic_optimization:
            return 1
        return AUTO_STEPS.get(device.type, AUTO_STEPS["cpu"])

    @property
    def paces(self) -> bool:
        """Whether ``auto`` sets each execution's steps from the last one's pace (not under
        Lightning's automatic optimization, which steps once per call)."""
        return self.steps_per_execution == "auto" and not self.automatic_optimization

    def paced_steps(self, device: torch.device, seconds_per_step: float) -> int:
        """``auto``'s steps for the next execution, at the last one's ``seconds_per_step``: the
        device's ``AUTO_STEPS``, doubled while that many steps fit in ``AUTO_SECONDS`` (at
        most ``AUTO_MAX_STEPS``). Doubling keeps the counts few and round; an execution's
        steps never change what is computed, only how often Lightning's loop runs. On a GPU
        the pace is the host's until the queue of kernels fills, then the device's."""
        steps = self.resolve_steps_per_execution(device)
        if not self.paces:
            return steps
        while 2 * steps <= AUTO_MAX_STEPS and 2 * steps * seconds_per_step <= AUTO_SECONDS:
            steps *= 2
        return steps

    def tune_process(self) -> None:
        """The process-wide settings (threads, malloc). Called by the command-line entry point,
        never by ``train()``: a notebook's kernel keeps its own."""
        cap_threads(self.threads)
        keep_freed_memory(self.keep_freed_memory)

    def callbacks(self, deterministic: bool) -> list[L.Callback]:
        """The Trainer callbacks these switches add."""
        if not self.share_cores or deterministic:
            return []  # a thread count can change a sum's order: deterministic keeps one
        return [ShareCores(self.threads)]

    def profiler(self) -> Profiler | None:
        """The Trainer's profiler when the config names none."""
        return NoProfiler() if self.lean_profiler else None

    def apply_to(self, net: nn.Module) -> None:
        """Convert and/or compile ``net`` in place; parameter names (checkpoints) stay the same."""
        if self.channels_last:
            net.to(memory_format=torch.channels_last)
        if self.compile:  # in place: no "_orig_mod." prefix in the state dict
            net.compile(mode=None if self.compile is True else self.compile)

    def layout(self, images: Tensor) -> Tensor:
        """Images in the memory layout the convolutions were converted to."""
        if self.channels_last:
            return images.contiguous(memory_format=torch.channels_last)
        return images

    def optimizer_kwargs(self, optimizer: Callable[..., torch.optim.Optimizer]) -> dict[str, bool]:
        """``fused=True`` for an optimizer that has a fused kernel (Adam, AdamW, SGD)."""
        if not self.fused_optimizer:
            return {}
        target = getattr(optimizer, "func", optimizer)  # a functools.partial from the config
        return {"fused": True} if "fused" in inspect.signature(target).parameters else {}
