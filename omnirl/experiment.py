"""The steps of an experiment in one run directory, each made if missing, resumed if interrupted and
never repeated: datasets, training runs, evaluations, and the experiment's summary.

    train_dir = dataset(out / "data" / "omnirl", n_tasks=256, sequences=1024, length=1025, states=16)
    val = validation_sets(train_dir, out / "data" / "omnirl-val", 64, probe=True)
    (run,) = train_many([(out / "train" / "n256", TrainConfig(...))])     # omnirl.train.fit, resumable
    summary = evaluate_once(out / "eval" / "n256", checkpoint=run["checkpoint"], envs=["anymdp16"],
                            n_envs=64, steps=1024, seed=0)                 # omnirl.evaluate.run, once
    write_summary(out, "task_scaling", preset="laptop", seed=0, settings=..., results=..., ...)

A dataset already complete is reused; a training run of the same configuration that finished is
not repeated and one that was interrupted resumes from its last checkpoint (a run of another
configuration in the same directory is refused, never overwritten); an evaluation whose request
and summary are in its directory is not repeated. Every step that runs records what it cost
(``omnirl.rundir.record_cost``), so a resumed experiment reports its reused steps' cost too. The
file names are ``omnirl.rundir``'s; ``experiments/`` holds the studies built on these steps.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from omnirl._threads import environment
from omnirl._validate import check_int
from omnirl.train.config import DataSection, ModelSection, TrainSection
from omnirl.rundir import (LAST_CHECKPOINT, REQUEST_FILE, SUMMARY_FILE, cpu_seconds, plain, read_progress,
                           read_training, record_cost)


def log(msg: str) -> None:
    """A progress line on standard error."""
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the run directory
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


# --------------------------------------------------------------------------- online decoding
@dataclasses.dataclass(frozen=True)
class Decoding:
    """How a study's model acts online: the decoding fields of the online protocol
    (``omnirl.evaluate.protocols.ProtocolConfig``, which checks them)."""

    t_initial: float = 1.0
    """Sampling temperature at the first acting step (0: greedy)."""
    t_final: float = 0.5
    """Temperature from step ``t_steps`` on; it moves linearly from ``t_initial`` to it."""
    t_steps: int = 250
    """Acting steps over which the temperature anneals."""
    own_tag: int = 6
    """Tag the model's own actions enter its context with: 6 (random), the tag of the uniform play
    of the probe pipelines (7, unknown, marks episode ends there)."""

    def __post_init__(self) -> None:
        self.protocol(1)

    def protocol(self, steps: int) -> Any:
        """The online protocol of ``steps`` acting steps with this decoding."""
        from omnirl.evaluate.protocols import ProtocolConfig

        return ProtocolConfig(protocol="online", steps=steps, t_initial=self.t_initial, t_final=self.t_final,
                              t_steps=self.t_steps, own_tag=self.own_tag)

    def overrides(self) -> dict[str, Any]:
        """This decoding as ``evaluate_once``'s dotted protocol settings."""
        return {"protocol.t_initial": self.t_initial, "protocol.t_final": self.t_final,
                "protocol.t_steps": self.t_steps, "protocol.own_tag": self.own_tag}

    def describe(self, unit: str = "step") -> str:
        """In words, for a finding."""
        return (f"temperature {self.t_initial:g} -> {self.t_final:g} over {self.t_steps} {unit}s, own "
                f"{unit}s tagged {self.own_tag}")


# --------------------------------------------------------------------------- data
def label_prompt(pipeline: str) -> int:
    """The prompt a model trained on ``pipeline``'s data is asked online: the id of the pipeline's
    label oracle (3, the reference policy; 0 for gamma-0 labels), so that online it is asked for
    the actions its labels taught (``omnirl.evaluate.protocols.ProtocolConfig.prompt``)."""
    from omnirl.data.pipelines import pipeline as named

    return int(named(pipeline).behaviour.label_oracle)


@dataclasses.dataclass(frozen=True)
class Rung:
    """A rung of the in-context RL ladder: tasks on which learning from rewards is measured, played
    uniformly at random (so no action in a context shows the label) and labelled by the rung's
    oracle. ``experiments.icrl_ladder`` climbs them; ``experiments.task_scaling`` can run on one
    (its ``world``)."""

    states: int
    """Observation ids ``S`` of its tasks (1: bandits)."""
    pipeline: str
    """Its data pipeline: uniform play, labelled by the rung's oracle."""
    env: str
    """Its online environment (``omnirl.evaluate.envs``)."""
    what: str
    """What it asks of the model, for the report."""
    contextual: bool = False
    """How online play is scored: ``False`` by the normalised episode return (0 uniform random, 1
    the reference oracle at gamma 0.994); ``True`` as a contextual bandit, by the expected immediate
    regret of every step (``omnirl.evaluate.regret``: 0 uniform random, 1 the best immediate action
    in every state), the objective that gamma-0 labels teach (a policy that is greedy for the
    immediate reward can score below random on the episode return)."""

    @property
    def prompt(self) -> int:
        """The prompt its model acts with online (``label_prompt`` of its pipeline)."""
        return label_prompt(self.pipeline)

    @property
    def baselines(self) -> tuple[str, ...]:
        """The baselines of its online play: TQL-UCB, and UCB1 (per state when ``contextual``)."""
        return ("tql_ucb", "ucb1") if self.contextual or self.states == 1 else ("tql_ucb",)


RUNGS: dict[str, Rung] = {
    "bandit": Rung(1, "uniform_probe", "bandit5", "a bandit: the best arm from the rewards"),
    "contextual8": Rung(8, "myopic_probe", "anymdp8", "a bandit per state (8 states, gamma 0 labels)",
                        contextual=True),
    "mdp8": Rung(8, "uniform_probe", "anymdp8", "an MDP with 8 states (gamma 0.994 labels)"),
    "mdp16": Rung(16, "uniform_probe", "anymdp16", "an MDP with 16 states (gamma 0.994 labels)"),
}
"""The rungs, from the easiest."""


SHARD_SIZE = 512
"""Sequences per dataset shard of the experiments' datasets (see ``dataset``)."""


def dataset(out: Path, *, n_tasks: int | None, sequences: int, length: int, states: int | str, actions: int = 5,
            pipeline: str = "omnirl", seed: int = 0, task_seed: int = 0, workers: int = 1,
            shard_size: int | None = None) -> Path:
    """A dataset at ``out`` (made if missing, resumed if interrupted): ``sequences`` sequences of
    ``length`` steps of ``pipeline`` on a task set of ``n_tasks`` tasks (``None``: a fresh task per
    sequence). Task sets of one ``task_seed`` are nested: the first ``n`` tasks of a larger set are
    the smaller set. ``shard_size``: sequences per shard (default ``DatasetSpec``'s); neither the
    content nor the speed depends on it (synthesis simulates a batch of sequences across shards)."""
    from omnirl.data.generate import DatasetSpec, generate_dataset, prepare_task_set
    from omnirl.tasks.taskset import parse_states

    hi, lo = parse_states(states)
    task_dir = None
    if n_tasks is not None:
        task_dir = str(prepare_task_set(out, n_tasks, states, actions, task_seed, workers))
    spec = DatasetSpec(pipeline=pipeline, n_sequences=sequences, length=length, n_obs=hi, n_actions=actions,
                       seed=seed, task_set=task_dir, min_states=lo if n_tasks is None else None,
                       **({} if shard_size is None else {"shard_size": shard_size}))
    if not (out / "manifest.json").exists():
        t0 = time.perf_counter()
        generate_dataset(spec, out, workers=workers)
        log(f"dataset {out}: {sequences} x {length} steps ({n_tasks or 'fresh'} tasks) in "
            f"{time.perf_counter() - t0:.0f} s")
    return out


def validation_sets(train_dir: Path, out: Path, sequences: int, probe: bool = False,
                    probes: Sequence[str] = ()) -> dict[str, str]:
    """``{"seen": DIR, "unseen": DIR}`` (``seen`` only when the training set has a task set):
    new sequences on the training tasks and on new tasks, made if missing; with ``probe``, also
    ``probe`` (the in-context-RL probe of ``omnirl.data.generate.make_validation_sets``), and one
    set per name of ``probes`` (the unseen tasks under that probe pipeline)."""
    from omnirl.data.generate import PROBE, make_validation_sets
    from omnirl.data.store import read_manifest

    _, head = read_manifest(train_dir)
    names = ("seen", "unseen") if head.config["spec"].get("task_set") else ("unseen",)
    names += ((PROBE,) if probe else ()) + tuple(probes)
    if not all((out / n / "manifest.json").exists() for n in names):
        make_validation_sets(train_dir, out, sequences, probe=probe, probes=probes)
    return {n: str(out / n) for n in names}


# --------------------------------------------------------------------------- training
SWEEP_AGENT_VARIABLES = ("WANDB_RUN_ID", "WANDB_SWEEP_ID", "WANDB_SWEEP_PARAM_PATH")
"""What ``wandb agent`` sets for the run it starts: hidden from the training and evaluation runs
an experiment makes, so only the experiment's own W&B run is the sweep's run."""


def train(out: Path, config: Any, wandb_mode: str = "auto") -> dict[str, Any]:
    """``omnirl.train.fit(config)`` into ``out`` (its ``logging`` section set here: ``out``,
    ``wandb_mode``, quiet), unless ``out`` already holds a finished run of the same settings; an
    interrupted run of them is resumed from its last checkpoint. A run of other settings in ``out``
    is refused (``ValueError`` naming the directory and the differing settings), never resumed or
    overwritten. Returns ``read_training(out)``."""
    from omnirl.config import changed_settings, config_to_dict
    from omnirl.fileio import atomic_write_json
    from omnirl.train import fit

    logging = dataclasses.replace(config.logging, out_dir=str(out), wandb_mode=wandb_mode, quiet=True)
    config = dataclasses.replace(config, logging=logging, train=dataclasses.replace(config.train, resume=None))
    asked = {k: v for k, v in config_to_dict(config).items() if k != "logging"}
    done, started = out / "done.json", out / "started.json"
    if done.exists() and recorded_settings(done) == asked:
        log(f"training {out}: already done")
        return read_training(out)
    if (out / LAST_CHECKPOINT).exists():
        before = recorded_settings(started if started.exists() else done)
        if before != asked:
            changed = [f"{k}={new!r} (the run's: {old!r})" for k, new, old in changed_settings(asked, before or {})]
            raise ValueError(f"{out} holds a training run of other settings (differing: {'; '.join(changed)}); "
                             "give the experiment another --out, or remove that directory to train anew")
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, resume="last"))
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(started, {"config": asked})
    t0 = time.perf_counter()
    with environment(WANDB_SILENT="true", **dict.fromkeys(SWEEP_AGENT_VARIABLES)):
        fit(config)  # the experiment prints its own progress
    atomic_write_json(done, {"config": asked, "seconds": time.perf_counter() - t0})
    log(f"training {out}: {time.perf_counter() - t0:.0f} s")
    return read_training(out)


def recorded_settings(record: Path) -> dict[str, Any] | None:
    """The training settings (``TrainConfig`` but ``logging``, as plain data) a step recorded in
    ``record``, read as today's code would run them: settings renamed since under their new names
    (``omnirl.train.config.migrate``), settings added since at their defaults; ``None`` without a
    record, the record as it is when today's code cannot read it."""
    from omnirl.config import config_from_dict, config_to_dict
    from omnirl.train.config import TrainConfig, migrate

    if not record.exists():
        return None
    config = json.loads(record.read_text()).get("config")
    if not isinstance(config, dict):
        return None
    try:
        full = config_to_dict(config_from_dict(TrainConfig, migrate({**config, "logging": {}})))
    except ValueError:
        return config
    return {k: v for k, v in full.items() if k != "logging"}


def _train_job(out: Path, config: Any, wandb_mode: str, threads: int) -> dict[str, Any]:
    """``train`` on ``threads`` torch threads, with ``record_cost``'s ``cpu_seconds`` (this
    process's), ``wall_seconds`` and ``reused``."""
    import resource

    from omnirl._threads import torch_threads

    def own() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    done = out / "done.json"
    previous = done.read_bytes() if done.exists() else None
    with torch_threads(threads):
        c0, t0 = own(), time.perf_counter()
        result = train(out, config, wandb_mode)
    ran = previous is None or done.read_bytes() != previous
    cost, reused = record_cost(out, {"cpu_seconds": own() - c0, "wall_seconds": time.perf_counter() - t0,
                                     "threads": threads} if ran else None)
    return {**result, "cpu_seconds": cost["cpu_seconds"], "wall_seconds": cost["wall_seconds"], "reused": reused}


def _duration(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m // 60}h{m % 60:02d}m" if m >= 60 else f"{m}m{s:02d}s"


class TrainingProgress:
    """One progress line per training run of ``outs`` (``name``: the run directory's last two
    parts), drawn from the runs' ``progress.json`` every ``interval`` seconds by a thread, while the
    runs train here or in other processes: step, latest training loss and time left (from the pace
    since this display first saw the run move). On a terminal: one tqdm bar per run; otherwise a
    line per run every ``log_interval`` seconds when it moved. Use as a context manager."""

    def __init__(self, outs: Sequence[Path], interval: float = 0.5, log_interval: float = 30.0,
                 stream: Any = None) -> None:
        import threading

        self.outs = [Path(o) for o in outs]
        self.names = ["/".join(o.parts[-2:]) for o in self.outs]
        self.interval, self.log_interval = interval, log_interval
        self.stream = stream if stream is not None else sys.stderr
        self._first: list[tuple[float, int] | None] = [None] * len(self.outs)  # (time, step) first seen moving
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="training-progress")
        self._bars: list[Any] = []
        self._logged: list[tuple[float, int]] = [(-1e9, -1)] * len(self.outs)

    def line(self, i: int, p: Mapping[str, Any], now: float) -> str:
        """The status of run ``i`` from its progress record ``p`` at time ``now``."""
        step, total = int(p.get("step", 0)), int(p.get("max_steps") or 0)
        first = self._first[i]
        if first is None or step < first[1]:  # not seen yet, or restarted
            self._first[i] = first = (now, step)
        parts = [f"step {step}/{total}" if total > 0 else f"step {step}"]
        if p.get("loss") is not None:
            parts.append(f"loss {p['loss']:.3f}")
        if step >= total > 0:
            parts.append("done")
        elif step > first[1] and total > 0:
            parts.append(f"{_duration((now - first[0]) / (step - first[1]) * (total - step))} left")
        return ", ".join(parts)

    def poll(self, now: float | None = None, final: bool = False) -> None:
        """Read every run's progress once and update its bar or line (``final``: a line for every
        run that moved since its last one, however recent)."""
        now = time.monotonic() if now is None else now
        for i, out in enumerate(self.outs):
            p = read_progress(out)
            if p is None:
                continue
            text = self.line(i, p, now)
            if self._bars:
                bar = self._bars[i]
                bar.total = max(int(p.get("max_steps") or 0), 1)
                bar.n = int(p.get("step", 0))
                bar.set_postfix_str(text.split(", ", 1)[1] if ", " in text else "", refresh=False)
                bar.refresh()
            moved = int(p.get("step", 0)) not in (0, self._logged[i][1])
            if not self._bars and moved and (final or now - self._logged[i][0] >= self.log_interval):
                self._logged[i] = (now, int(p.get("step", 0)))
                print(f"training {self.names[i]}: {text}", file=self.stream, flush=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()

    def __enter__(self) -> "TrainingProgress":
        if getattr(self.stream, "isatty", lambda: False)():
            from tqdm import tqdm

            width = max(len(n) for n in self.names)
            self._bars = [tqdm(total=1, desc=n.ljust(width), position=i, leave=True, file=self.stream,
                               bar_format="{desc} {bar:20} {n_fmt}/{total_fmt}{postfix}") for i, n in enumerate(self.names)]
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.poll(final=True)
        for bar in self._bars:
            bar.close()


def train_many(jobs: Sequence[tuple[Path, Any]], *, parallel: int = 1, threads: int = 0,
               wandb_mode: str = "auto") -> list[dict[str, Any]]:
    """``train(out, config)`` for every job (a ``TrainConfig`` each), up to ``parallel`` at once (each in its own spawned
    process when ``parallel`` > 1, else here, one after another), each on ``threads`` torch threads
    (0: the machine's cores divided by ``parallel``, at least 1). Small models use a second
    thread poorly and a busy core not at all, so two one-thread runs side by side cost less CPU
    than two two-thread runs in turn. Returns, in the order of ``jobs``, ``read_training`` of each
    plus ``wall_seconds``, ``cpu_seconds`` (its process's CPU time while training; for a run found
    already done, what its ``cost.json`` recorded when it was trained, else NaN) and ``reused``
    (found done)."""
    if parallel < 1 or threads < 0:
        raise ValueError(f"parallel must be >= 1 and threads >= 0, got {parallel} and {threads}")
    n = threads or max(1, (os.cpu_count() or 1) // parallel)
    with TrainingProgress([Path(out) for out, _ in jobs]):
        if parallel == 1 or len(jobs) <= 1:
            return [_train_job(Path(out), c, wandb_mode, n) for out, c in jobs]
        from concurrent.futures import ProcessPoolExecutor
        from multiprocessing import get_context

        with ProcessPoolExecutor(min(parallel, len(jobs)), mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(_train_job, Path(out), c, wandb_mode, n) for out, c in jobs]
            return [f.result() for f in futures]


# --------------------------------------------------------------------------- settings of a study
@dataclasses.dataclass(frozen=True)
class DatasetSettings:
    """The training data of one model."""

    states: str | int = 16
    """State-space size ``S`` of the AnyMDP tasks, or ``MIN:MAX`` (the model reads ``MAX`` ids).
    (Text first: read as a number, ``16:32`` would be YAML 1.1's base-60 992; a plain number is
    stored as one.)"""
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

        if isinstance(self.states, str) and self.states.strip().isdigit():
            object.__setattr__(self, "states", int(self.states))
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
                               n_obs=data.max_states, n_actions=data.actions)


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


def training_config(s: Any, *, train_dir: Path, validation: Mapping[str, str], seed: int, n_obs: int,
                    n_actions: int, **model: Any) -> Any:
    """The ``TrainConfig`` of one model of an experiment: its ``model``, ``data`` and ``train``
    sections, with the data's sizes (``n_obs`` observation ids, ``n_actions``), the dataset
    directories, the seed, and ``model`` changes (e.g. ``backbone``)."""
    from omnirl.train.config import TrainConfig

    return TrainConfig(
        model=dataclasses.replace(s.model, n_obs=n_obs, n_actions=n_actions, **model),
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
def evaluate(out: Path, *, checkpoint: str | None, envs: Sequence[str], protocol: str = "online", n_envs: int,
             steps: int, seed: int, baselines: Sequence[str] | None = None, contextual_bandit: bool = False,
             wandb_mode: str = "disabled", **fields: Any) -> dict[str, Any]:
    """``omnirl.evaluate.run`` into ``out``; ``fields`` are further settings by dotted name (e.g.
    ``{"protocol.demo_steps": 1000}``). Returns its summary."""
    from omnirl.config import config_from_dict
    from omnirl.evaluate import EvaluateConfig
    from omnirl.evaluate import run as run_evaluation

    data = {"run": {"checkpoint": checkpoint, "envs": list(envs), "n_envs": n_envs, "steps": steps, "seed": seed,
                    "out_dir": str(out), "wandb_mode": wandb_mode, "contextual_bandit": contextual_bandit,
                    "baselines": None if baselines is None else list(baselines)},
            "protocol": {"protocol": protocol}}
    cfg = config_from_dict(EvaluateConfig, data, fields)
    with environment(WANDB_SILENT="true", **dict.fromkeys(SWEEP_AGENT_VARIABLES)):
        return run_evaluation(cfg)


def evaluate_once(out: Path, *, threads: int = 1, **request: Any) -> dict[str, Any]:
    """``evaluate(out, **request)`` on ``threads`` torch threads (0: torch's setting), unless
    ``out`` already holds the summary of this very request (an interrupted experiment resumes
    without evaluating twice); returns the summary with ``cpu_seconds`` (what the evaluation cost,
    also when reused: ``record_cost``) and ``reused``."""
    from omnirl._threads import torch_threads
    from omnirl.fileio import atomic_write_json

    key = out / REQUEST_FILE
    plain = json.loads(json.dumps(request, default=str))
    if (out / SUMMARY_FILE).exists() and key.exists() and json.loads(key.read_text()) == plain:
        cost, reused = record_cost(out, None)
        log(f"evaluation {out}: already done")
        return {**json.loads((out / SUMMARY_FILE).read_text()), "cpu_seconds": cost["cpu_seconds"],
                "reused": reused}
    c0, t0 = cpu_seconds(), time.perf_counter()
    with torch_threads(threads):
        summary = evaluate(out, **request)
    atomic_write_json(key, plain)
    cost, _ = record_cost(out, {"cpu_seconds": cpu_seconds() - c0, "wall_seconds": time.perf_counter() - t0})
    return {**summary, "cpu_seconds": cost["cpu_seconds"], "reused": False}


# --------------------------------------------------------------------------- the summary
def write_summary(out: Path, experiment: str, *, preset: str, seed: int, settings: Any, results: Mapping[str, Any],
                  table: Sequence[Mapping[str, Any]], figures: Sequence[Path], finding: str, seconds: float,
                  wandb_mode: str = "auto") -> dict[str, Any]:
    """Write an experiment's ``summary.json`` into ``out`` (``experiment``, ``preset``, ``seed``,
    ``settings``, ``results``, ``table``, ``figures``, ``finding``, ``seconds``) and log it as the
    experiment's W&B run (``wandb_mode``); returns the summary."""
    from omnirl.fileio import atomic_write_json

    summary = {"experiment": experiment, "preset": preset, "seed": seed, "settings": plain(settings),
               "results": plain(results), "table": plain(list(table)), "figures": [Path(f).name for f in figures],
               "finding": finding, "seconds": seconds}
    atomic_write_json(out / SUMMARY_FILE, summary, sort_keys=False)  # table rows keep their column order
    _log_wandb(out, summary, figures, wandb_mode)
    return summary


def _log_wandb(out: Path, summary: dict, figures: Sequence[Path], requested: str) -> None:
    from omnirl.rundir import git_provenance, wandb_mode

    mode = wandb_mode(requested)
    if mode == "disabled":
        return
    import wandb

    name, preset = summary["experiment"], summary["preset"]
    with environment(WANDB_SILENT="true"):
        run = wandb.init(project="omnirl", dir=str(out), mode=mode, job_type="experiment", name=f"{name}-{preset}",
                         config={"experiment": name, "preset": preset, "seed": summary["seed"],
                                 "settings": summary["settings"], "provenance": {"git": git_provenance()}})
        try:
            rows = summary["table"]
            payload: dict[str, Any] = {}
            if rows:
                columns = list(rows[0])
                payload["table"] = wandb.Table(columns=columns, data=[[r.get(c) for c in columns] for r in rows])
            for f in figures:
                payload[Path(f).stem] = wandb.Image(str(f))
            if payload:
                run.log(payload)
            run.summary["finding"] = summary["finding"]
            for k, v in summary["results"].items():  # the flat numbers: what a sweep's metric names
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    run.summary[f"results/{k}"] = v
        finally:
            run.finish()
