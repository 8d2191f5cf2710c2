"""``trainer.precision=auto`` for every kind of machine, from this one: the hardware facts faked
(CUDA with and without bf16, a CPU with and without native bf16, the APIs missing)."""

import pytest
import torch

from cnnlab.perf.precision import (
    Precision,
    auto_precision,
    device_type,
    resolve_precision,
    warn_if_emulated,
)

AVX512_BF16 = {"avx2": True, "avx512_f": True, "avx512_bf16": True, "amx_bf16": False}
AMX = {**AVX512_BF16, "amx_bf16": True}
AVX2_ONLY = {"avx2": True, "avx512_f": False, "avx512_bf16": False, "amx_bf16": False}
ARM_BF16 = {"bf16": True, "sve": True}


@pytest.fixture
def cpu(monkeypatch):
    """Fake this CPU: its capabilities, oneDNN's bf16 check and ATen's instruction set."""

    def fake(capabilities: dict, onednn: bool = True, isa: str = "AVX512") -> None:
        monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: capabilities, raising=False)
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: onednn)
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: isa)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)

    return fake


@pytest.fixture
def cuda(monkeypatch):
    """Fake a CUDA GPU, with or without native bf16."""

    def fake(bf16: bool, name: str = "NVIDIA H200") -> None:
        asked = []

        def is_bf16_supported(including_emulation: bool = True) -> bool:
            asked.append(including_emulation)
            return bf16 or including_emulation  # emulated bf16 is "supported" on any GPU

        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: name)
        return asked

    return fake


def test_a_cuda_gpu_with_native_bf16_gets_bf16_mixed(cuda):
    asked = cuda(bf16=True)
    assert auto_precision("cuda") == Precision(
        "bf16-mixed", "CUDA GPU with native bf16: NVIDIA H200"
    )
    assert asked == [False]  # emulation does not count


def test_a_cuda_gpu_without_native_bf16_gets_16_mixed(cuda):
    cuda(bf16=False, name="Tesla V100")
    assert resolve_precision("auto", "gpu") == Precision(
        "16-mixed", "CUDA GPU without native bf16: Tesla V100"
    )


@pytest.mark.parametrize(
    ("capabilities", "name"), [(AMX, "AMX"), (AVX512_BF16, "AVX512_BF16"), (ARM_BF16, "BF16")]
)
def test_a_cpu_with_native_bf16_gets_bf16_mixed(cpu, capabilities, name):
    cpu(capabilities)
    assert resolve_precision("auto", "auto") == Precision(
        "bf16-mixed", f"CPU with native bf16: {name}"
    )


def test_an_avx2_only_cpu_gets_32_true(cpu):
    cpu(AVX2_ONLY, onednn=False, isa="AVX2")
    chosen = resolve_precision("auto", "cpu")
    assert chosen == Precision("32-true", "CPU without native bf16: AVX2")
    assert str(chosen) == "precision: 32-true (CPU without native bf16: AVX2)"


def test_bf16_hardware_that_onednn_does_not_use_gets_32_true(cpu):
    """ONEDNN_MAX_CPU_ISA=AVX2 on a bf16 CPU: ATen would not hand oneDNN a bf16 convolution."""
    cpu(AVX512_BF16, onednn=False)
    assert resolve_precision("auto", "cpu").value == "32-true"


def test_missing_apis_fall_back_to_32_true(cpu, monkeypatch):
    cpu(AMX)
    monkeypatch.delattr(torch.cpu, "get_capabilities")  # before torch 2.14
    assert resolve_precision("auto", "cpu") == Precision(
        "32-true", "CPU without native bf16: its bf16 support could not be read"
    )
    cpu(AMX)

    def gone() -> bool:
        raise RuntimeError("No such operator mkldnn::_is_mkldnn_bf16_supported")

    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", gone)
    assert resolve_precision("auto", "cpu").value == "32-true"


def test_other_accelerators_get_32_true(cpu, monkeypatch):
    cpu(AMX)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert device_type("auto") == "mps"
    assert resolve_precision("auto", "auto") == Precision(
        "32-true", "mps: no precision measured faster there"
    )
    assert resolve_precision("auto", "tpu").value == "32-true"


def test_an_explicit_precision_is_honoured_and_emulated_bf16_warned_in_one_line(cpu, capsys):
    cpu(AVX2_ONLY, onednn=False, isa="AVX2")
    assert resolve_precision("16-mixed", "cpu") == Precision("16-mixed", "as set")
    assert resolve_precision(32, "cpu").value == "32"
    emulated = resolve_precision("bf16-mixed", "cpu")
    assert emulated.value == "bf16-mixed" and emulated.emulated
    warn_if_emulated(emulated)
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("cnnlab: warning: trainer.precision=bf16-mixed: this CPU has no native")
    cpu(AMX)
    native = resolve_precision("bf16-mixed", "cpu")
    assert not native.emulated
    warn_if_emulated(native)
    assert capsys.readouterr().err == ""
