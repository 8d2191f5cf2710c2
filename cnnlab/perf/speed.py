"""Speed switches (``conf/speed/``): they change how fast a run goes; what each changes in the
numbers is said below (``Speed``) and tested in training mode (``tests/unit/test_speed.py``).

They act from outside the LightningModule, on its network (``pl_module.net``) when the Trainer
sets up, on the optimizer partial, and on the process; the module a learner reads stays the
lesson's. ``speed=fast`` (the default) turns on what measurement showed pays on the machines
measured (docs/speed.md, a column per CPU kind); ``speed=plain`` is PyTorch's and Lightning's
defaults, so an A/B is one override; ``speed=executions`` adds N optimizer steps per Lightning
training step (``cnnlab.perf.executions``). Precision is the Trainer's own
(``trainer.precision``): it changes results, so it is not here.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import lightning as L
import torch
from lightning.pytorch.profilers import Profiler
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.perf.cpu_layers import use_cpu_layers
from cnnlab.perf.heap import keep_freed_memory
from cnnlab.perf.profilers import NoProfiler
from cnnlab.perf.share_cores import ShareCores
from cnnlab.perf.threads import cap_threads

CPU_LAYERS = ("own", "all", True, False)  # True: "all", asked for by name
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
OptimizerFactory = Callable[..., torch.optim.Optimizer]  # a partial, called with the parameters


@dataclass(frozen=True)
class Speed:
    """The ``speed`` node of the config; the defaults are ``conf/speed/fast.yaml``'s (tested).

    What they change in the numbers: the function a network computes (eval mode) is the same
    up to float rounding under every switch. In training, ``channels_last`` and ``cpu_layers``
    change *which* activations dropout drops (the same rate, other elements: PyTorch draws a
    mask in memory order, and cnnlab's dropout draws its own), so a run's numbers differ from
    ``speed=plain``'s as another seed's would; every other switch changes at most the rounding.

    - ``channels_last``: the network's convolutions in NHWC layout, oneDNN's fast path on CPUs.
    - ``fused_optimizer``: the optimizer's single fused kernel per step (when it has one).
    - ``cpu_layers``: faster CPU versions of dropout, flatten and ReLU-before-pool swapped into
      the network (``cnnlab.perf.cpu_layers``), same parameter names: ``own`` (the default)
      into cnnlab's own networks only, so a user's network trains with exactly the modules it
      was written with; ``all`` (or ``true``) into any network; ``false`` into none.
    - ``compile``: ``torch.compile`` the network; a mode name for ``torch.compile``'s
      ``mode`` (``reduce-overhead``: CUDA graphs of the forward and backward on a GPU).
    - ``keep_freed_memory``: glibc's malloc keeps freed activations mapped (``perf/heap.py``).
    - ``threads``: a cap on PyTorch's CPU threads (the parallel launchers set it); null: one per
      core.
    - ``lean_profiler``: without ``trainer.profiler``, a profiler that records nothing at no
      cost instead of Lightning's default (``perf/profilers.py``).
    - ``share_cores``: training threads follow the cores other processes leave free
      (``perf/share_cores.py``); off under ``trainer.deterministic``.
    - ``steps_per_execution``: null, Lightning's own loop (one batch per ``training_step``);
      an N, or ``auto``, runs N optimizer steps per Lightning training step
      (``speed=executions``, ``cnnlab.perf.executions``), for steps too short for
      Lightning's per-step cost.
    """

    channels_last: bool = True
    fused_optimizer: bool = True
    cpu_layers: bool | str = "own"
    compile: bool | str = False
    keep_freed_memory: bool = True
    threads: int | None = None
    lean_profiler: bool = True
    share_cores: bool = True
    steps_per_execution: int | str | None = None

    def __post_init__(self) -> None:
        if self.cpu_layers not in CPU_LAYERS:
            raise CnnlabError(f"speed.cpu_layers={self.cpu_layers!r}: own, all or false")
        if isinstance(self.compile, str) and self.compile not in COMPILE_MODES:
            raise CnnlabError(
                f"speed.compile={self.compile!r}: true, false or one of {', '.join(COMPILE_MODES)}"
            )
        n = self.steps_per_execution
        if n not in (None, "auto") and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise CnnlabError(
                f"speed.steps_per_execution={n!r}: must be an integer >= 1, auto or null"
            )

    def tune_process(self) -> None:
        """The process-wide settings (threads, malloc). Called by the command-line entry point,
        never by ``train()``: a notebook's kernel keeps its own."""
        cap_threads(self.threads)
        keep_freed_memory(self.keep_freed_memory)

    def callbacks(self, deterministic: bool) -> list[L.Callback]:
        """The Trainer callbacks these switches add: the network's switches at setup, and the
        cores shared (a thread count can change a sum's order: not under deterministic)."""
        shared = [ShareCores(self.threads)] if self.share_cores and not deterministic else []
        return [SpeedUpNetwork(self), *shared]

    def profiler(self) -> Profiler | None:
        """The Trainer's profiler when the config names none."""
        return NoProfiler() if self.lean_profiler else None

    def apply_to(self, net: nn.Module) -> None:
        """Convert and/or compile ``net`` in place; parameter names (checkpoints) stay the same."""
        if self.cpu_layers in ("all", True) or (self.cpu_layers == "own" and is_cnnlabs(net)):
            use_cpu_layers(net)
        if self.channels_last:
            net.to(memory_format=torch.channels_last)
        if self.compile:  # in place: no "_orig_mod." prefix in the state dict
            net.compile(mode=None if self.compile is True else self.compile)

    def optimizer(self, make: OptimizerFactory, clipped_mixed: bool = False) -> OptimizerFactory:
        """The optimizer partial, with ``fused=True`` where its class has a fused kernel; not
        where gradients are clipped under mixed precision (``clipped_mixed``): a fused kernel
        unscales 16-mixed gradients inside its own step, after clipping has run, so Lightning
        refuses to clip them (under bf16-mixed too)."""
        target = getattr(make, "func", make)
        fusable = "fused" in inspect.signature(target).parameters
        if self.fused_optimizer and fusable and not clipped_mixed:
            return partial(make, fused=True)
        return make


def is_cnnlabs(net: nn.Module) -> bool:
    """A network cnnlab ships (``cnnlab.models``), whose layers cnnlab may swap by default."""
    return type(net).__module__.startswith("cnnlab.")


class SpeedUpNetwork(L.Callback):
    """Applies the network's speed switches to ``pl_module.net`` when the Trainer sets up, once
    per network (``trainer.test`` after ``fit`` sets up again)."""

    def __init__(self, speed: Speed) -> None:
        self.speed = speed
        self.done: weakref.WeakSet[nn.Module] = weakref.WeakSet()

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if pl_module.net not in self.done:
            self.speed.apply_to(pl_module.net)
            self.done.add(pl_module.net)
