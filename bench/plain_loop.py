"""The hand-written PyTorch loop cnnlab's Trainer is compared with (``make bench``).

``python -m bench.plain_loop [--steps N] --json out.json [config overrides]`` composes the same
config as ``cnnlab.train`` and trains the same network, on the same data tensors and batch
order, with the same optimizer and precision, in the shortest loop PyTorch allows: no hooks,
no metrics, no logging. It runs ``trainer.max_epochs`` epochs of ``trainer.limit_train_batches``
batches, as the Trainer would (or ``--steps`` steps). It measures; it saves nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig

import cnnlab.runs.resolvers  # noqa: F401  (registers ${cnnlab.root:})
from bench.throughput import WARMUP, WINDOW, ThroughputMeter
from bench.turns import ROLES, Turns
from cnnlab.errors import CnnlabError
from cnnlab.perf.speed import Speed
from cnnlab.runs.resolvers import PROJECT_ROOT
from cnnlab.runs.results import write_json
from cnnlab.runs.training import build_classifier, resolve_trainer_precision

AUTOCAST = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


def compose_train_config(overrides: list[str]) -> DictConfig:
    """The config ``python -m cnnlab.train <overrides>`` would run with, its precision resolved
    for this machine as the run resolves it."""
    with initialize_config_dir(str(PROJECT_ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    resolve_trainer_precision(cfg)
    return cfg


def autocast_for(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """What Lightning's precision plugin does around forward and loss, done by hand (its
    autocast too runs without the weight-cast cache)."""
    if precision in ("32-true", "32"):
        return contextlib.nullcontext()
    if precision not in AUTOCAST:
        raise CnnlabError(f"trainer.precision={precision}: the plain loop supports 32-true, "
                          f"{', '.join(AUTOCAST)}")  # fmt: skip
    return torch.autocast(device.type, dtype=AUTOCAST[precision], cache_enabled=False)


def pick_device(accelerator: str) -> torch.device:
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def batches_per_epoch(cfg: DictConfig, batches: int) -> int:
    """An epoch's batches as the Trainer cuts them with ``trainer.limit_train_batches``."""
    limit = cfg.trainer.get("limit_train_batches")
    if isinstance(limit, float):  # a fraction of the epoch, as Lightning reads it
        limit = int(batches * limit)
    return min(batches, limit or batches)


class PlainStep:
    """One optimizer step of the plain loop, on a network, optimizer and precision built from
    ``cfg`` as ``cnnlab.train`` builds them (its speed switches on the network included)."""

    def __init__(self, cfg: DictConfig, device: torch.device) -> None:
        speed: Speed = instantiate(cfg.speed)
        model = build_classifier(cfg, speed)
        self.net = model.net.to(device)
        speed.apply_to(self.net)  # what cnnlab's SpeedUpNetwork does as the Trainer sets up
        self.optimizer = model.configure_optimizers()
        self.precision, self.device = str(cfg.trainer.precision), device
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.precision == "16-mixed")
        self.net.train()

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        with autocast_for(self.precision, self.device):
            loss = F.cross_entropy(self.net(x), y)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()


def train_data(cfg: DictConfig, device: torch.device) -> L.LightningDataModule:
    """The run's datamodule, set up for fit, its training tensors where the run keeps them."""
    data = instantiate(cfg.data)
    data.prepare_data()
    data.setup("fit")
    images, labels = data.splits["train"]
    if data.on_device:
        data.splits["train"] = (images.to(device), labels.to(device))
    return data


def train_plain(cfg: DictConfig, steps: int | None, meter: ThroughputMeter) -> None:
    """``steps`` optimizer steps (None: as the config's Trainer would), timed by ``meter``."""
    instantiate(cfg.speed).tune_process()
    torch.manual_seed(cfg.seed)
    data = train_data(cfg, meter.device)
    step = PlainStep(cfg, meter.device)
    loader, done, epoch = data.train_dataloader(), 0, 0
    meter.begin()
    per_epoch = batches_per_epoch(cfg, len(loader))
    steps = steps or cfg.trainer.max_epochs * per_epoch
    while done < steps:
        loader.sampler.set_epoch(epoch)
        meter.restart()
        for x, y in itertools.islice(loader, min(per_epoch, steps - done)):
            step(x, y)
            meter.step_done(len(y))
            done += 1
        epoch += 1
    meter.finish()


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=None,
                   help="optimizer steps to run (default: the config's epochs)")  # fmt: skip
    p.add_argument("--warmup", type=int, default=WARMUP, help="first steps left untimed")
    p.add_argument("--window", type=int, default=WINDOW, help="steps per timed window")
    p.add_argument("--json", type=Path, default=None, help="write the measurement here")
    p.add_argument(
        "--turns-dir",
        type=Path,
        default=None,
        help="take turns with another process, window by window (bench.turns)",
    )
    p.add_argument("--turns-role", default="first", choices=ROLES, help="with --turns-dir")
    p.add_argument("overrides", nargs="*", help="cnnlab.train config overrides")
    args = p.parse_args(argv)
    cfg = compose_train_config(args.overrides)
    turns = Turns(args.turns_dir, args.turns_role) if args.turns_dir else None
    device = pick_device(cfg.trainer.accelerator)
    meter = ThroughputMeter(device, args.warmup, args.window, turns)
    train_plain(cfg, args.steps, meter)
    result = {"precision": str(cfg.trainer.precision), **meter.summary()}
    show_and_write(result, args.json)
    return result


def show_and_write(result: dict, path: Path | None) -> None:
    """A measurement printed as JSON, and written to ``path`` when one is given."""
    print(json.dumps(result, indent=2))
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, result)


if __name__ == "__main__":
    main()
