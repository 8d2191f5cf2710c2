"""Bad input fails at start-up with one line naming the key and value, and a non-zero exit."""

import pytest

from tests.helpers import cli, result_of, run_dirs


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.filters=abc", "model.filters='abc': expected int"),
        ("model.filters=0", "model.filters=0: must be >= 1"),
        ("model.dropout=1.5", "model.dropout=1.5: must be in [0, 1)"),
        ("model.kernel_size=30", "model.kernel_size=30"),
        ("model.pool_size=30", "model.pool_size=30"),
        ("model.padding=full", "model.padding='full'"),
        ("trainer.max_epochs=0", "trainer.max_epochs=0"),
        ("data.validation=train", "data.validation='train'"),
        ("data.batch_size=0", "data.batch_size=0"),
        ("model.filterz=3", "model.filterz"),
        ("+model.filterz=3", "model.filterz: unknown key"),
        ("model=resnet", "model/resnet"),
        ("speed.keep_freed_memory=yes", "speed.keep_freed_memory='yes': expected bool"),
        ("speed.threads=two", "speed.threads='two': expected int or NoneType"),
        ("optimizer.lr=abc", "optimizer.lr='abc': expected float or Tensor"),
        ("optimizer.lr=-1", "optimizer.lr=-1: must be > 0"),
        ("optimizer.lr=0", "optimizer.lr=0: must be > 0"),
        ("optimizer.lr=inf", "optimizer.lr=inf: must be > 0 and finite"),
        ("optimizer.weight_decay=-0.1", "optimizer.weight_decay=-0.1: must be >= 0"),
        ("model.filters=5000", "model: this run needs about"),  # 10+ GB: refused, not swapped
        ("seed=-1", "seed=-1: must be an integer in [0, 4294967295]"),
        ("seed=99999999999", "seed=99999999999: must be an integer in [0, 4294967295]"),
        ("+optimizer.momentum=0.9", "optimizer.momentum: unknown key"),
        ("data.eval_batch_size=big", "data.eval_batch_size='big': expected int"),
        ("speed.steps_per_execution=0", "speed.steps_per_execution=0: must be an integer >= 1"),
        ("speed.steps_per_execution=many", "steps_per_execution='many': must be an integer >= 1"),
        ("trainer.accumulate_grad_batches=0", "trainer.accumulate_grad_batches=0: must be an int"),
        ("trainer.gradient_clip_algorithm=max", "gradient_clip_algorithm='max': must be one of"),
        ("trainer.gradient_clip_val=-1", "trainer.gradient_clip_val=-1: must be >= 0"),
        ("trainer.max_steps=-5", "trainer.max_steps=-5: must be an integer >= 0, or -1"),
        ("+trainer.min_steps=-3", "trainer.min_steps=-3: must be an integer >= 0, or -1"),
        ("data=fashion_mnist data.image_size=32", "data.image_size=32: FashionMNIST has 28"),
        ("model=mynet", "model/mynet"),
        ("loss.label_smoothing=1.5", "loss.label_smoothing=1.5: must be in [0, 1)"),
        ("loss.label_smoothing=lots", "loss.label_smoothing='lots': expected float"),
        ("data.augment.shift=-1", "data.augment.shift=-1: must be in [0, 8]"),
        ("data.augment.rotate=360", "data.augment.rotate=360: must be in [0, 180]"),
        ("+data.augment.flip=true", "data.augment.flip: unknown key"),
        ("scheduler=cosine", "scheduler/cosine"),
        ("scheduler.max_lr=0.01", "scheduler.max_lr"),  # no scheduler chosen: nothing to set
        ("pruner=null", "to drop a config group, write ~group"),
    ],
)
def test_bad_override_is_one_clear_line(tmp_path, override, message):
    done = cli("cnnlab.train", *override.split(), output_dir=tmp_path,
               CNNLAB_DATA_DIR=str(tmp_path / "d"))  # fmt: skip
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("cnnlab: error:")]
    assert len(errors) == 1 and message in errors[0], done.stderr
    assert done.stdout == "" and done.stderr.splitlines()[0] == errors[0]  # nothing before it
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "d").exists()  # failed before any data was fetched
    for run_dir in run_dirs(tmp_path):  # a run that got started records why it failed
        assert result_of(run_dir)["status"] == "failed"
