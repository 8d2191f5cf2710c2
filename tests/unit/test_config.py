"""The config tree: the YAML is the one source of defaults, checks follow each node's
``_target_``, speed switches stay out of the results."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
import torch
from omegaconf import OmegaConf

from bench.plain_loop import compose_train_config
from cnnlab.data.augment import RandomAffine
from cnnlab.data.datamodule import ImageDataModule
from cnnlab.data.preparation import RECIPES, Preparation
from cnnlab.errors import CnnlabError
from cnnlab.models.classifier import Classifier
from cnnlab.models.keras_cnn import KerasCNN
from cnnlab.perf.speed import Speed
from cnnlab.runs.checks import ConfigError, check_config
from cnnlab.runs.results import hparams_of
from cnnlab.runs.training import build_classifier
from tests.helpers import ROOT


def yaml_of(group: str, name: str) -> dict:
    node = OmegaConf.load(ROOT / "conf" / group / f"{name}.yaml")
    return {k: v for k, v in OmegaConf.to_container(node).items() if not k.startswith("_")}


def test_python_defaults_are_the_yaml_defaults():
    """The YAML is the source; Python's defaults (a notebook's ``KerasCNN()``) say the same."""
    knobs = {k: v for k, v in yaml_of("model", "keras_cnn").items() if "${" not in str(v)}
    assert {k: v for k, v in defaults_of(KerasCNN).items() if k in knobs} == knobs
    assert dataclasses.asdict(Speed()) == yaml_of("speed", "fast")
    data = inspect.signature(ImageDataModule.__init__).parameters
    data_yaml = yaml_of("data", "images")
    # augment: None in Python and RandomAffine's own defaults in the YAML are both "off"
    augment = {k: v for k, v in data_yaml.pop("augment").items() if not k.startswith("_")}
    assert augment == defaults_of(RandomAffine) and not RandomAffine().active
    for key, value in data_yaml.items():
        if data[key].default is not inspect.Parameter.empty and not str(value).startswith("${"):
            assert data[key].default == value, key
    # the module's default training loss is the YAML's: plain cross-entropy
    module = Classifier(KerasCNN(), torch.optim.Adam)
    assert module.loss.label_smoothing == yaml_of("loss", "cross_entropy")["label_smoothing"]


def defaults_of(target: type) -> dict:
    params = inspect.signature(target.__init__).parameters.values()
    return {p.name: p.default for p in params if p.name != "self"}


def test_the_default_config_builds_the_lessons_model_with_its_optimizer():
    cfg = compose_train_config([])
    check_config(cfg)
    model = build_classifier(cfg, Speed())
    assert sum(p.numel() for p in model.parameters()) == 1_199_882
    assert model.class_names[:2] == ["Zero", "One"] and type(model) is Classifier
    optimizer = model.configure_optimizers()
    assert isinstance(optimizer, torch.optim.Adam)
    group = optimizer.param_groups[0]
    assert (group["lr"], group["eps"], group["fused"]) == (0.001, 1e-07, True)


def test_speed_plain_is_one_override_and_changes_no_model_or_optimizer_key():
    fast, plain = compose_train_config([]), compose_train_config(["speed=plain"])
    assert not plain.speed.channels_last and not plain.speed.cpu_layers
    for group in ("model", "optimizer", "data", "trainer"):
        assert fast[group] == plain[group], group
    assert hparams_of(fast) == hparams_of(plain)
    assert not any("speed" in key for key in hparams_of(fast))
    assert hparams_of(fast)["optimizer/lr"] == 0.001 and hparams_of(fast)["model/filters"] == 32


def test_checks_follow_the_target_a_swapped_in_class_is_checked_on_its_own_parameters():
    adamw = compose_train_config(["optimizer._target_=torch.optim.AdamW"])
    check_config(adamw)  # AdamW takes lr, eps and weight_decay too
    assert isinstance(build_classifier(adamw, Speed()).configure_optimizers(), torch.optim.AdamW)
    sgd = compose_train_config(["optimizer._target_=torch.optim.SGD"])
    with pytest.raises(ConfigError, match=r"optimizer\.eps: unknown key"):
        check_config(sgd)  # SGD has no epsilon: named, not a TypeError at fit time
    check_config(compose_train_config(["optimizer._target_=torch.optim.SGD", "~optimizer.eps"]))


# what docs/sweeps.md's seed table confirmed: the search's trial as command-line overrides
CONFIRMED_RECIPE = ["scheduler=onecycle", "scheduler.max_lr=0.0059", "scheduler.pct_start=0.17",
                    "data.batch_size=64", "loss.label_smoothing=0.084", "data.augment.shift=0.93",
                    "data.augment.rotate=9.9"]  # fmt: skip


def test_experiment_tuned_is_the_confirmed_recipe_on_the_lessons_unchanged_model():
    tuned, confirmed = (
        compose_train_config(["experiment=tuned"]),
        compose_train_config(CONFIRMED_RECIPE),
    )
    assert tuned.name == "tuned"
    for group in ("model", "optimizer", "scheduler", "loss", "data", "trainer", "speed"):
        assert tuned[group] == confirmed[group], group
    assert tuned.model == compose_train_config([]).model  # the architecture is not tuned
    model = build_classifier(tuned, Speed())
    assert sum(p.numel() for p in model.parameters()) == 1_199_882
    assert model.loss.label_smoothing == 0.084 and tuned.trainer.max_epochs == 5


def test_every_data_config_states_its_recipe_and_a_missing_one_is_refused():
    """predict prepares a file by the recipe its checkpoint's data config states; one without
    (written before the record) is refused in one line rather than guessed."""
    for path in sorted((ROOT / "conf" / "data").glob("*.yaml")):
        assert compose_train_config([f"data={path.stem}"]).data.recipe in RECIPES, path
    with pytest.raises(CnnlabError, match=r"^data\.recipe is missing: .* predates the recipe"):
        Preparation.of_data({"channels": 1, "image_size": 28})
