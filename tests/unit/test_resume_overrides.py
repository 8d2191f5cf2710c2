"""What a resume puts on the command line, read and written in Hydra's own override grammar."""

import shlex

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from cnnlab.runs.resume import resumed_argv, sweep_resume_command

SEARCHPATH = "hydra.searchpath=[file:///home/me/my_configs]"


def a_run(run_dir, overrides: list[str]):
    """A run directory as Hydra leaves it: the overrides it ran with, its searchpath."""
    (run_dir / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(overrides), run_dir / ".hydra" / "overrides.yaml")
    hydra = {"hydra": {"overrides": {"hydra": [SEARCHPATH, "hydra.run.dir=x"], "task": overrides}}}
    OmegaConf.save(OmegaConf.create(hydra), run_dir / ".hydra" / "hydra.yaml")
    return run_dir


def test_a_resume_puts_the_runs_own_overrides_first_without_its_attempts_own(tmp_path):
    saved = ["model.filters=8", "+x.y='a,b'", f"ckpt_path={tmp_path}/c.ckpt", "resume=old"]
    a_run(tmp_path / "it's (1), é", saved)
    resume = f"resume='{tmp_path}/it\\'s (1), é'"  # quoted for Hydra, as its grammar asks
    args = [resume, "trainer.max_epochs=3"]
    expanded = resumed_argv(args)
    assert expanded == [SEARCHPATH, "model.filters=8", "+x.y='a,b'", *args]
    assert resumed_argv(expanded) == expanded  # a DDP rank re-running the command: once only
    assert resumed_argv(["-m", resume]) == ["-m", resume]  # a sweep's, left to the sweep


def test_a_sweeps_resume_command_names_its_directory_as_hydra_reads_it(tmp_path):
    sweep_dir = tmp_path / "sweep (2), é"
    sweep_dir.mkdir()
    overrides = {"hydra": ["hydra.mode=MULTIRUN", "hydra.launcher.n_jobs=2"],
                 "task": ["model.filters=8,16", f"resume={tmp_path}"]}  # fmt: skip
    OmegaConf.save(OmegaConf.create({"hydra": {"overrides": overrides}}),
                   sweep_dir / "multirun.yaml")  # fmt: skip
    words = shlex.split(sweep_resume_command(sweep_dir))
    assert words[:6] == ["python", "-m", "cnnlab.train", "-m", "hydra.launcher.n_jobs=2",
                         "model.filters=8,16"]  # fmt: skip
    (resume,) = OverridesParser.create().parse_overrides(words[6:])
    assert resume.key_or_group == "resume" and resume.value() == str(sweep_dir)
