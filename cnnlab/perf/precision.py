"""``trainer.precision=auto`` (the default): the precision the run's device computes natively.

bf16 autocast is the fastest precision on a CPU or GPU that has bf16 in hardware, and several
times slower than fp32 on one that has not: there PyTorch emulates it, and on a CPU it sends
bf16 convolutions to a generic kernel instead of oneDNN's (docs/speed.md has the numbers per CPU
kind). So ``auto`` is resolved once, before the Trainer is built, for the device it will use:

- CUDA: ``bf16-mixed`` where the GPU has bf16 natively, else ``16-mixed``;
- CPU: ``bf16-mixed`` only where bf16 is native, which takes both the hardware
  (``torch.cpu.get_capabilities()``: AMX or AVX-512 BF16, or ARM's bf16 instructions) and
  oneDNN using it (``torch.ops.mkldnn._is_mkldnn_bf16_supported()``, the check ATen makes
  before it gives oneDNN a bf16 convolution; it is off under ``ONEDNN_MAX_CPU_ISA=AVX2``);
  else ``32-true``;
- any other device: ``32-true`` (nothing measured there).

A private or missing API never stops a run: where the facts cannot be read, the answer is
``32-true``, which is right everywhere. An explicit ``trainer.precision`` is honoured.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cnnlab.errors import say

AUTO = "auto"
BF16 = "bf16-mixed"
# names torch.cpu.get_capabilities() gives bf16 instructions: x86's AMX and AVX-512, ARM's
CPU_BF16 = {"amx_bf16": "AMX", "avx512_bf16": "AVX512_BF16", "bf16": "BF16", "sve_bf16": "BF16"}


@dataclass(frozen=True)
class Precision:
    """The precision a run trains in, and why (the one line a run prints)."""

    value: str
    reason: str
    emulated: bool = False  # bf16-mixed set on a CPU that only emulates bf16

    def __str__(self) -> str:
        return f"precision: {self.value} ({self.reason})"


def device_type(accelerator: str) -> str:
    """The device ``trainer.accelerator`` trains on, as Lightning picks it: cuda, mps or cpu
    (or the accelerator's own name: tpu, hpu...)."""
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return "cuda"
    if accelerator in ("auto", "gpu", "mps") and torch.backends.mps.is_available():
        return "mps"
    return "cpu" if accelerator in ("auto", "gpu", "cpu") else accelerator


def cpu_bf16() -> tuple[bool, str]:
    """Whether this CPU computes bf16 natively (hardware and oneDNN both), and its name for it
    (or the instruction set it has instead, e.g. AVX2)."""
    try:
        capabilities = torch.cpu.get_capabilities()
    except Exception:  # missing before torch 2.14, or cpuinfo failed to read the CPU
        return False, "its bf16 support could not be read"
    found = [name for key, name in CPU_BF16.items() if capabilities.get(key)]
    if not found:
        return False, torch.backends.cpu.get_cpu_capability()
    try:
        onednn = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())  # private: guarded
    except Exception:
        return False, f"{found[0]}, but oneDNN's bf16 support could not be read"
    if not onednn:
        return False, f"{found[0]}, but oneDNN does not use it"
    return True, found[0]


def auto_precision(device: str) -> Precision:
    """What ``trainer.precision=auto`` becomes on ``device``."""
    if device == "cuda":
        name = torch.cuda.get_device_name()
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return Precision(BF16, f"CUDA GPU with native bf16: {name}")
        return Precision("16-mixed", f"CUDA GPU without native bf16: {name}")
    if device == "cpu":
        native, name = cpu_bf16()
        if native:
            return Precision(BF16, f"CPU with native bf16: {name}")
        return Precision("32-true", f"CPU without native bf16: {name}")
    return Precision("32-true", f"{device}: no precision measured faster there")


def resolve_precision(requested: str | int, accelerator: str) -> Precision:
    """``trainer.precision`` as the Trainer will get it: ``auto`` resolved for the device, an
    explicit value kept."""
    device = device_type(accelerator)
    if str(requested) == AUTO:
        return auto_precision(device)
    if str(requested) == BF16 and device == "cpu" and not (cpu := cpu_bf16())[0]:
        return Precision(BF16, f"as set, on a CPU without native bf16: {cpu[1]}", emulated=True)
    return Precision(str(requested), "as set")


def warn_if_emulated(precision: Precision) -> None:
    """One line when an explicit ``bf16-mixed`` will be emulated on this CPU."""
    if precision.emulated:
        say(
            f"trainer.precision={BF16}: this CPU has no native bf16, so it is emulated, several "
            "times slower than 32-true (trainer.precision=auto picks the faster)",
            "warning",
        )
