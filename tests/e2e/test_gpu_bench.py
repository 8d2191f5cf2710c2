"""bench/gpu.sh, the GPU bench, run step by step on CPU (``--cpu-dry-run``) as it must run once
on the GPU machine, which has no network: the bundle's wheels installed, MNIST unpacked."""

import json
import os
import subprocess

from tests.helpers import ROOT

SIDES = {"cnnlab", "plain", "cnnlab executions", "cnnlab CUDA graphs"}


def bash(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", *args], cwd=ROOT, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=1800)  # fmt: skip


def test_gpu_bench_without_a_bundle_says_how_to_make_one(tmp_path):
    done = bash("bench/gpu.sh", str(tmp_path / "r"), "--cpu-dry-run",
                CNNLAB_GPU_BUNDLE=str(tmp_path / "none"))  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"cnnlab: error: {tmp_path / 'none'}: no GPU bundle; make it with: bash bench/gpu_bundle.sh"
    ]


def test_gpu_bench_dry_run_installs_the_bundle_and_measures_every_side(mnist_dir, tmp_path):
    bundle, results = tmp_path / "bundle", tmp_path / "results"
    env = {"CNNLAB_GPU_BUNDLE": str(bundle), "CNNLAB_DATA_DIR": str(mnist_dir)}
    made = bash("bench/gpu_bundle.sh", **env)
    assert made.returncode == 0, made.stderr[-2000:]
    wheels = sorted(path.name.split("-")[0] for path in (bundle / "wheels").iterdir())
    assert wheels == ["antlr4_python3_runtime", "hydra_core", "hydra_joblib_launcher", "omegaconf"]
    assert all(path.name.endswith("py3-none-any.whl") for path in (bundle / "wheels").iterdir())
    done = bash("bench/gpu.sh", str(results), "--cpu-dry-run", **env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    report = json.loads((results / "gpu.json").read_text())
    summary, rows = report["summary"], report["rows"]
    assert summary["dry_run"] is True
    assert "/site/hydra/" in summary["hydra"]  # the bundle's hydra-core, not this venv's
    assert set(rows) == SIDES
    for name, row in rows.items():
        assert "error" not in row, name
        assert row["images_per_s"] > 0 and row["train_s"] > 0, name
    assert rows["cnnlab"]["test_acc"] > 0.5  # 2 epochs of 80 batches, tested
    assert rows["cnnlab executions"]["median_step_ms"] > 0
    for way in ("sequential", "parallel"):  # 4 trials of 10 batches each way
        assert report["sweep"][way]["images"] == 4 * 10 * 128
    assert all(value is not None for value in summary.values())
    assert "CPU DRY RUN" in (results / "gpu.md").read_text()
