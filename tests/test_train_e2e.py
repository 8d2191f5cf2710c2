"""End to end through the real CLI on real MNIST: train, TensorBoard events, evaluate."""

import json

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from tests.conftest import QUICK, cli, result_of, train_run


@pytest.fixture(scope="module")
def trained_run(mnist_dir, tmp_path_factory):
    run_dir, done = train_run(tmp_path_factory.mktemp("outputs"), *QUICK)
    return run_dir, done.stdout


def test_run_directory_holds_config_log_checkpoints_and_result(trained_run):
    run_dir, stdout = trained_run
    result = result_of(run_dir)
    assert result["status"] == "finished"
    assert result["params"] == 1_199_882
    assert result["test/acc"] > 0.7  # 20 batches of real MNIST already learn a lot (~0.83)
    assert 0 < result["test/loss"] < 1.5 and 0.7 < result["val/acc"] <= 1
    assert result["overrides"] == [o for o in result["overrides"] if "=" in o]
    assert (run_dir / "config.yaml").read_text().count("filters: 32") == 1
    assert (run_dir / ".hydra" / "overrides.yaml").is_file()
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert result["checkpoint"].startswith(str(run_dir / "checkpoints" / "best-"))
    assert f"Test accuracy: {result['test/acc']}" in stdout
    assert f"tensorboard --logdir {run_dir}" in stdout


def test_tensorboard_events_hold_scalars_and_real_hparams(trained_run):
    run_dir, _ = trained_run
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"tensors": 0}).Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss", "train/acc", "val/loss", "val/acc", "test/acc", "lr-Adam"} <= scalars
    hparams = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    session = HParamsPluginData.FromString(hparams).session_start_info
    assert session.hparams["model/filters"].number_value == 32
    assert session.hparams["trainer/max_epochs"].number_value == 1
    result = result_of(run_dir)
    (hp_acc,) = events.Scalars("hp/val_acc")
    assert hp_acc.value == pytest.approx(result["val/acc"])  # the real metric, not -1
    assert "hp_metric" not in scalars


def test_evaluate_reproduces_the_runs_test_accuracy(trained_run, tmp_path):
    run_dir, _ = trained_run
    out = tmp_path / "eval.json"
    done = cli("cnnlab.evaluate", f"ckpt_path={run_dir}", f"json={out}", output_dir=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    evaluated = json.loads(out.read_text())
    assert evaluated["test/acc"] == pytest.approx(result_of(run_dir)["test/acc"], abs=1e-6)
    assert set(evaluated["per_class_acc"]) == {
        "Zero", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine"
    }  # fmt: skip
    assert "Test loss:" in done.stdout and "Test accuracy:" in done.stdout
