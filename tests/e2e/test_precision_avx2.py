"""``trainer.precision=auto`` through the real CLI, on a CPU whose oneDNN is capped to AVX2
(``ONEDNN_MAX_CPU_ISA``, read when torch loads): the machine most learners have, from any
machine. The cap is checked to be real first (oneDNN says which instruction set it runs)."""

import subprocess
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from tests.helpers import TINY, cli, cli_env, result_of, train_run

AVX2 = {"ONEDNN_MAX_CPU_ISA": "AVX2"}
ONEDNN_ISA = """
import torch
torch.nn.Conv2d(1, 4, 3)(torch.rand(2, 1, 8, 8))  # one oneDNN convolution: it names its ISA
print(torch.ops.mkldnn._is_mkldnn_bf16_supported())
"""


def test_the_avx2_cap_is_real():
    env = cli_env(output_dir=".", ONEDNN_VERBOSE="1", **AVX2)
    command = [sys.executable, "-c", ONEDNN_ISA]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "cpu,isa:Intel AVX2\n" in done.stdout  # oneDNN runs AVX2 code, nothing above it
    assert done.stdout.splitlines()[-1] == "False"  # and tells ATen it has no bf16


def test_auto_picks_32_true_where_onednn_has_no_bf16_and_records_it(mnist_dir, tmp_path):
    run_dir, done = train_run(tmp_path, *TINY, env=AVX2)
    lines = (done.stdout + done.stderr).splitlines()
    (said,) = [line for line in lines if "precision: " in line]
    assert "precision: 32-true (CPU without native bf16: " in said  # AVX2, or bf16 unused
    assert "Automatic Mixed Precision" not in done.stdout + done.stderr
    assert result_of(run_dir)["precision"] == "32-true"
    assert "precision: 32-true" in (run_dir / "config.yaml").read_text()
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"tensors": 0}).Reload()
    start = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    session = HParamsPluginData.FromString(start).session_start_info
    assert session.hparams["trainer/precision"].string_value == "32-true"


def test_explicit_bf16_without_native_bf16_runs_with_a_one_line_warning(mnist_dir, tmp_path):
    done = cli("cnnlab.train", *TINY, "trainer.precision=bf16-mixed", "test=false",
               output_dir=tmp_path, **AVX2)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    warnings = [line for line in done.stderr.splitlines() if line.startswith("cnnlab: warning:")]
    assert warnings == [
        "cnnlab: warning: trainer.precision=bf16-mixed: this CPU has no native bf16, so it is "
        "emulated, several times slower than 32-true (trainer.precision=auto picks the faster)"
    ]
