"""What the experiments share: presets, the command line, the training settings and the run directory.

Every experiment is a module ``experiments.NAME`` with a frozen dataclass of its settings (a
docstring per field; the training settings are ``TrainConfig``'s own sections, ``model``, ``data``
and ``train``) and ``PRESETS``, three partial configurations over it (``presets``): ``smoke``
(about a minute, run by the tests), ``laptop`` (the default: at most about 20 minutes on a 2-core
CPU) and ``paper`` (the paper's sizes, for GPU clusters). Its command line is

    python -m experiments.NAME [--preset laptop] [--out runs/NAME-laptop] [--seed 0]
                               [--wandb-mode auto|online|offline|disabled] [--field=value ...]

where ``--field=value`` overrides any field of the preset by its dotted name (``--train.max_steps=800``,
the form W&B sweep agents pass with ``${args}``, so a sweep file can run an experiment unchanged);
``--help`` lists every field with the preset's value and its docstring.

Everything lands in one run directory (``--out``, default ``runs/NAME-PRESET``; under a sweep
runner the run's own directory, see ``default_out``), written by the resumable steps of
``omnirl.experiment``: the datasets (``data/``), training runs (``train/NAME/``), evaluations
(``eval/NAME/``), figures, ``summary.json`` (``experiment``, ``preset``, ``seed``, ``settings``,
``results``, ``table``, ``figures``, ``finding``: one paragraph saying plainly what the run shows,
``seconds``) and the experiment's own W&B run. An interrupted experiment resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from omnirl._cli import Parser
from omnirl._validate import check_choice, check_int
from omnirl.train.config import DataSection, ModelSection, TrainSection
from omnirl.experiment import (SHARD_SIZE, SWEEP_AGENT_VARIABLES, dataset, evaluate, evaluate_once, log, train,
                               train_many, validation_sets, write_summary)
from omnirl.rundir import cpu_seconds, format_table, read_training

PRESET_NAMES = ("smoke", "laptop", "paper")


# --------------------------------------------------------------------------- command line
@dataclasses.dataclass(frozen=True)
class Invocation:
    """A parsed experiment command line."""

    preset: str
    """Preset name."""
    settings: Any
    """The preset's settings with the overrides applied."""
    out: Path
    """The run directory."""
    seed: int
    """Seed of everything the experiment draws."""
    wandb_mode: str
    """W&B mode of the experiment's own run and of its training runs."""


def parse(name: str, presets: Mapping[str, Any], argv: Sequence[str] | None, doc: str | None = None,
          default_preset: str = "laptop") -> Invocation:
    """Parse ``argv`` of experiment ``name`` with its ``presets`` (see the module docstring): the
    preset's settings are the defaults that ``--help`` lists and the dotted options override.
    Raises ``SystemExit(2)`` with a one-line message naming the bad value."""
    from omnirl.config import parse_command_line

    argv = list(sys.argv[1:] if argv is None else argv)
    prog = f"python -m experiments.{name}"
    pre = Parser(prog=prog, add_help=False)
    pre.add_argument("--preset", default=default_preset, choices=sorted(presets))
    preset = pre.parse_known_args(argv)[0].preset

    def options(p: Any) -> None:
        p.add_argument("--preset", default=default_preset, choices=sorted(presets),
                       help=f"settings preset, the defaults below (default {default_preset})")
        p.add_argument("--out", type=str, default=None, help=f"run directory (default runs/{name}-PRESET)")
        p.add_argument("--seed", type=int, default=0, help="seed of everything the experiment draws")
        p.add_argument("--wandb-mode", default="auto", choices=("auto", "online", "offline", "disabled"),
                       help="W&B mode of the experiment's run and of its training runs")

    base = presets[preset]
    settings, extra = parse_command_line(type(base), argv, prog=prog, description=doc, defaults=base, options=options)
    if extra["seed"] < 0:
        pre.error(f"--seed must be >= 0, got {extra['seed']}")
    out = Path(extra["out"]) if extra["out"] else default_out(name, preset)
    if out.exists() and not out.is_dir():
        pre.error(f"--out {str(out)!r} is an existing file, not a directory")
    return Invocation(preset=preset, settings=settings, out=out, seed=extra["seed"], wandb_mode=extra["wandb_mode"])


def default_out(name: str, preset: str) -> Path:
    """The run directory when ``--out`` is not given: ``$OMNIRL_RUN_DIR`` under ``python -m
    omnirl.sweep --local``; ``runs/NAME-PRESET/$WANDB_RUN_ID`` under a ``wandb agent`` (so the runs of
    a sweep do not share a directory); else ``runs/NAME-PRESET``."""
    if os.environ.get("OMNIRL_RUN_DIR"):
        return Path(os.environ["OMNIRL_RUN_DIR"])
    base = Path("runs") / f"{name}-{preset}"
    if os.environ.get("WANDB_SWEEP_ID") and os.environ.get("WANDB_RUN_ID"):
        return base / os.environ["WANDB_RUN_ID"]
    return base


# --------------------------------------------------------------------------- data
# --------------------------------------------------------------------------- training
# --------------------------------------------------------------------------- a trained model: settings and steps
def env_states(name: str) -> int:
    """Observation ids of environment ``name`` (the model must read at least this many)."""
    from omnirl.evaluate.envs import ENVIRONMENTS, make_batch

    f = ENVIRONMENTS[check_choice("env", name, ENVIRONMENTS)]
    return max(i.n_states for i in make_batch(name, f.n_agents, seed=0).infos)


@dataclasses.dataclass(frozen=True)
class DatasetSettings:
    """The training data of one model."""

    states: int | str = 16
    """State-space size ``S`` of the AnyMDP tasks, or ``MIN:MAX`` (the model reads ``MAX`` ids)."""
    actions: int = 5
    """Actions of every task (and of the model)."""
    n_tasks: int | None = 1024
    """Tasks of the training task set (``None``: a fresh task per sequence)."""
    sequences: int = 1024
    """Training sequences."""
    length: int = 1024
    """Steps per sequence (episode-end markers included)."""
    val_sequences: int = 32
    """Sequences of each validation set (seen and unseen tasks)."""
    workers: int = 1
    """Data-generation processes."""

    def __post_init__(self) -> None:
        from omnirl.tasks.taskset import parse_states

        try:
            parse_states(self.states)
        except (ValueError, TypeError) as e:
            raise ValueError(f"states: {e}") from None
        check_int("actions", self.actions, min_value=2)
        if self.n_tasks is not None:
            check_int("n_tasks", self.n_tasks, min_value=1)
        check_int("sequences", self.sequences, min_value=1)
        check_int("length", self.length, min_value=2)
        check_int("val_sequences", self.val_sequences, min_value=1)
        check_int("workers", self.workers, min_value=1)

    @property
    def max_states(self) -> int:
        """The largest state-space size of the data: the model's observation vocabulary."""
        from omnirl.tasks.taskset import parse_states

        return int(parse_states(self.states)[0])


@dataclasses.dataclass(frozen=True)
class TrainingSettings:
    """The model and its optimisation: the ``model``, ``data`` and ``train`` sections of
    ``omnirl.train.TrainConfig`` (their defaults are training's own; the model's sizes, the
    datasets and the seeds are the experiment's), and how the experiment runs its training runs."""

    model: ModelSection = dataclasses.field(default_factory=ModelSection)
    """The model (``omnirl.train.config.ModelSection``)."""
    data: DataSection = dataclasses.field(default_factory=DataSection)
    """The training windows (``omnirl.train.config.DataSection``: ``window``, ``batch_size``)."""
    train: TrainSection = dataclasses.field(default_factory=TrainSection)
    """The optimisation (``omnirl.train.config.TrainSection``)."""
    torch_threads: int = 1
    """Torch intra-op threads of every training run and evaluation (0: training runs get the
    machine's cores divided by ``parallel``, evaluations torch's setting). One thread costs the
    least CPU time for the tiny model, and is the fastest on a busy 2-core machine."""
    parallel: int = 1
    """Training runs at once, each in its own process (``train_many``); 2 on a 2-core machine
    trains two models in about the wall time of one."""

    def __post_init__(self) -> None:
        check_training(self)
        check_int("torch_threads", self.torch_threads, min_value=0)
        check_int("parallel", self.parallel, min_value=1)

    def config(self, data: DatasetSettings, train_dir: Path, validation: Mapping[str, str], seed: int) -> Any:
        """The ``TrainConfig`` of a run on ``train_dir``."""
        return training_config(self, train_dir=train_dir, validation=validation, seed=seed,
                               n_states=data.max_states, n_actions=data.actions)


def presets(cls: type, partials: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """An experiment's ``PRESETS``: by name, ``cls``'s defaults with a partial configuration on top
    (nested mappings, ``omnirl.config.config_from_dict``): a preset names only what it changes, and
    the training settings keep their one default in ``omnirl.train.config``."""
    from omnirl.config import config_from_dict

    return {name: config_from_dict(cls, partial) for name, partial in partials.items()}


def check_training(s: Any) -> None:
    """The rules of training of a settings object with the ``model``, ``data`` and ``train``
    sections of ``TrainConfig`` (``omnirl.train.config``), checked by ``TrainConfig`` itself."""
    from omnirl.train.config import TrainConfig

    TrainConfig(model=s.model, data=s.data, train=s.train)


def training_config(s: Any, *, train_dir: Path, validation: Mapping[str, str], seed: int, n_states: int,
                    n_actions: int, **model: Any) -> Any:
    """The ``TrainConfig`` of one model of an experiment: its ``model``, ``data`` and ``train``
    sections, with the data's sizes (``n_states`` observation ids, ``n_actions``), the dataset
    directories, the seed, and ``model`` changes (e.g. ``backbone``)."""
    from omnirl.train.config import TrainConfig

    return TrainConfig(
        model=dataclasses.replace(s.model, n_states=n_states, n_actions=n_actions, **model),
        data=dataclasses.replace(s.data, train=(str(train_dir),), validation=dict(validation), seed=seed),
        train=dataclasses.replace(s.train, seed=seed))


def prepare_data(out: Path, data: DatasetSettings, *, pipeline: str, seed: int) -> tuple[Path, dict[str, str]]:
    """The training dataset ``out/data/PIPELINE`` (task set of seed ``seed``) and its validation
    sets ``out/data/PIPELINE-val``, made if missing."""
    train_dir = dataset(out / "data" / pipeline, n_tasks=data.n_tasks, sequences=data.sequences, length=data.length,
                        states=data.states, actions=data.actions, pipeline=pipeline, seed=seed, task_seed=seed,
                        workers=data.workers, shard_size=SHARD_SIZE)
    return train_dir, validation_sets(train_dir, out / "data" / f"{pipeline}-val", data.val_sequences)


def train_models(out: Path, data: DatasetSettings, training: TrainingSettings, pipelines: Sequence[str], *,
                 seed: int, wandb_mode: str) -> dict[str, dict[str, Any]]:
    """One model per pipeline into ``out/train/PIPELINE`` on the data of ``prepare_data``, with
    ``training.parallel`` runs at once (``train_many``: a finished run is reused). Returns by
    pipeline ``train_many``'s record (``read_training`` plus ``cpu_seconds`` and ``reused``)."""
    jobs = []
    for p in pipelines:
        train_dir, val = prepare_data(out, data, pipeline=p, seed=seed)
        jobs.append((out / "train" / p, training.config(data, train_dir, val, seed)))
    runs = train_many(jobs, parallel=training.parallel, threads=training.torch_threads, wandb_mode=wandb_mode)
    return dict(zip(pipelines, runs))


# --------------------------------------------------------------------------- evaluation
# --------------------------------------------------------------------------- results
def finish(inv: Invocation, name: str, *, results: Mapping[str, Any], table: Sequence[Mapping[str, Any]],
           figures: Sequence[Path], finding: str, seconds: float) -> dict[str, Any]:
    """Write ``summary.json`` and the experiment's W&B run (``omnirl.experiment.write_summary``),
    print the table and the finding; returns the summary."""
    summary = write_summary(inv.out, name, preset=inv.preset, seed=inv.seed, settings=inv.settings, results=results,
                            table=table, figures=figures, finding=finding, seconds=seconds, wandb_mode=inv.wandb_mode)
    print(format_table(summary["table"]), end="")
    print(f"\n{finding}\n\nresults: {inv.out / 'summary.json'}")
    return summary


def main_of(name: str, presets: Mapping[str, Any], run: Callable[[Invocation], dict], doc: str | None):
    """The ``main(argv)`` of an experiment: parse, make the run directory, run, return 0."""
    def main(argv: Sequence[str] | None = None) -> int:
        inv = parse(name, presets, argv, doc)
        inv.out.mkdir(parents=True, exist_ok=True)
        run(inv)
        return 0
    return main


__all__ = ["PRESET_NAMES", "Invocation", "parse", "default_out", "cpu_seconds", "dataset", "validation_sets", "evaluate_once",
           "train", "train_many", "read_training", "evaluate", "format_table", "finish", "main_of", "log",
           "SWEEP_AGENT_VARIABLES"]
