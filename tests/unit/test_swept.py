"""Which knobs a sweep varies, from its multirun.yaml: what trial names and HPARAMS lead with."""

from omegaconf import OmegaConf

from cnnlab.runs.swept import swept_keys, trial_name


def sweep_dir(tmp_path, task: list[str], params: dict | None = None):
    hydra = {"overrides": {"task": task}, "sweeper": {"params": params}}
    OmegaConf.save(OmegaConf.create({"hydra": hydra}), tmp_path / "multirun.yaml")
    return tmp_path


def test_command_line_sweeps_vary_and_constants_do_not(tmp_path):
    task = ["seed=1,2", "model.filters=16", "trainer.max_epochs=range(1,3)",
            "+trainer.gradient_clip_val=0.5", "optimizer.lr=range(1,2)"]  # fmt: skip
    assert swept_keys(sweep_dir(tmp_path, task)) == ["seed", "trainer.max_epochs"]  # range(1,2): 1


def test_a_presets_or_optuna_space_varies_unless_the_command_line_fixes_it(tmp_path):
    space = {"model.dropout": "interval(0.0,0.5)", "optimizer.lr": "tag(log,interval(1e-4,1e-2))",
             "model.kernel_size": "choice(3,5)", "model.pool_size": "2,3"}  # fmt: skip
    here = sweep_dir(tmp_path, ["model.pool_size=2", "model.filters=8,16"], space)
    assert swept_keys(here) == ["model.dropout", "model.filters", "model.kernel_size",
                                "optimizer.lr"]  # fmt: skip


def test_a_trials_name_is_its_values_of_the_swept_knobs(tmp_path):
    here = sweep_dir(tmp_path, ["seed=1,2", "model.filters=16", "+data.fold=0,1"])
    task = ["model.filters=16", "+data.fold=1", "seed=2"]
    assert (
        trial_name(str(here), task, "data.fold=1,model.filters=16,seed=2") == "data.fold=1,seed=2"
    )
    nothing = tmp_path / "elsewhere"  # no sweep definition: Hydra's own name, whole
    assert trial_name(str(nothing), task, "model.filters=16,seed=2") == "model.filters=16,seed=2"
