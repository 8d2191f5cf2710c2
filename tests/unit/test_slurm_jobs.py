"""What a SLURM job asks for, from the trial's config, and sbatch's refusals as one line."""

from omegaconf import OmegaConf

from bench.plain_loop import compose_train_config
from cnnlab.sweeps.slurm import gpus_per_node, mem_gb, refusal, sbatch_args, tasks_per_node


def test_gpus_only_when_the_trainer_trains_on_one():
    assert gpus_per_node("cpu", 1) == 0
    assert gpus_per_node("gpu", 4) == 4 and gpus_per_node("cuda", "auto") == 1


def test_one_task_per_device_under_ddp():
    assert tasks_per_node("ddp", 2) == 2 and tasks_per_node("auto", 2) == 1


def test_memory_is_sized_from_any_network():
    lesson = compose_train_config([])
    assert mem_gb(lesson.model, lesson.data, 1) == 3  # 2 GB of process + ~0.2 GB of model, x 1.25
    assert mem_gb(lesson.model, lesson.data, 2) == 6
    bigger = compose_train_config(["model.filters=256", "model.dense_units=1024"])
    assert mem_gb(bigger.model, bigger.data, 1) > 3
    mlp = compose_train_config(["model=mlp"])
    assert mem_gb(mlp.model, mlp.data, 1) == 3


def test_sbatch_args_and_refusals_name_the_setting():
    launcher = OmegaConf.create(
        {"timeout_min": 60, "mem_gb": 3, "partition": "gpu", "cpus_per_task": 2,
         "gpus_per_node": 0, "additional_parameters": {"mail_type": "END"}}
    )  # fmt: skip
    args = sbatch_args(launcher)
    assert "--partition=gpu" in args and "--mem=3G" in args and "--mail-type=END" in args
    assert not any(a.startswith("--gpus-per-node") for a in args)
    said = "sbatch: error: invalid partition specified: gpu\nallocation failure: ...\n"
    assert refusal(launcher, said) == (
        "hydra.launcher.partition=gpu: SLURM refuses it (invalid partition specified: gpu)"
    )
