"""End to end through the real CLI on real MNIST: train, TensorBoard events, evaluate."""

import json

import pytest
import torch
from hydra import compose, initialize_config_dir
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

import cnnlab.runs.resolvers  # noqa: F401  (registers ${cnnlab.root:})
from cnnlab.runs.training import train
from tests.helpers import QUICK, ROOT, cli, result_of, train_run


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
    assert session.hparams["optimizer/lr"].number_value == 0.001
    assert not [key for key in session.hparams if "speed" in key]  # config.yaml only
    assert "lean_profiler: true" in (run_dir / "config.yaml").read_text()
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


def test_train_in_process_leaves_the_processes_threads_alone(mnist_dir, tmp_path):
    """What the notebook does: ``train()`` inside a long-lived process (a Jupyter kernel) must
    not cap its threads or retune its malloc; only the command-line entry point does that."""
    overrides = [f"paths.run_dir={tmp_path}", "debug=fast", "speed.threads=1", "test=false",
                 "callbacks.figures=null", "callbacks.progress_bar=null"]  # fmt: skip
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    threads = torch.get_num_threads()
    record = train(cfg)
    assert record["params"] == 1_199_882 and record["val/acc"] > 0
    assert torch.get_num_threads() == threads


def test_printed_commands_are_shell_quoted(mnist_dir, tmp_path):
    output_dir = tmp_path / "my outputs"
    run_dir, done = train_run(output_dir, "debug=fast", "test=false", "callbacks.figures=null")
    assert f"tensorboard --logdir '{run_dir}'" in done.stdout  # pastes into a shell as is


@pytest.mark.parametrize("speed", ["speed=fast", "speed.steps_per_execution=16"])
def test_max_steps_stops_at_that_optimizer_step_validated_and_logged_there(
    mnist_dir, tmp_path, speed
):
    """``trainer.max_steps`` counts optimizer steps, in Lightning's loop and in executions of
    16 alike (pinned: auto's follow the pace): the run stops at step 37 of epoch 0, validates
    there, so the stop is the best checkpoint, and logs there (as Lightning logs epoch
    metrics: at the step before the epoch's last)."""
    run_dir, _ = train_run(tmp_path, "trainer.max_steps=37", "trainer.limit_val_batches=5",
                           speed, "test=false", "callbacks.figures=null")  # fmt: skip
    result = result_of(run_dir)
    assert result["best_epoch"] == 0 and result["val/acc"] > 0.5
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 37
    events = EventAccumulator(str(run_dir / "tensorboard")).Reload()
    assert [e.step for e in events.Scalars("val/acc")] == [36]
    assert [e.step for e in events.Scalars("train/loss")] == [36]


def test_the_trainer_clips_and_accumulates(mnist_dir, tmp_path):
    """Lightning's own gradient clipping and accumulation, as the Trainer's arguments: 10
    batches in pairs are 5 optimizer steps (the fused optimizer stands aside: Lightning
    cannot clip its gradients under mixed precision)."""
    run_dir, _ = train_run(tmp_path, *QUICK, "trainer.limit_train_batches=10",
                           "trainer.gradient_clip_val=0.5", "trainer.accumulate_grad_batches=2",
                           "test=false", "callbacks.figures=null")  # fmt: skip
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 5
    config = (run_dir / "config.yaml").read_text()
    assert "gradient_clip_val: 0.5" in config and "accumulate_grad_batches: 2" in config
    assert result_of(run_dir)["val/acc"] > 0.3
