"""Step-wise supervision ablation: the data pipelines of Table 4 under three protocols (paper Figure 6).

    python -m experiments.ss_ablation                          # laptop preset (~15-20 CPU-minutes)
    python -m experiments.ss_ablation --preset smoke           # under a minute (the tests run it)
    python -m experiments.ss_ablation --pipelines=[omnirl,dpt] --training.max_steps=800
    python -m omnirl.sweep sweeps/ss_ablation.yaml --local     # the same, one run per pipeline

For every pipeline of ``pipelines`` (``omnirl``, ``omnirl_noprior``, ``ad``, ``ad_epsilon``,
``dpt``; see ``omnirl.data.pipelines`` for who acts, whose action is the label and what the tags
say):

1. **Data.** One dataset of the same size on the same task set (``dataset.n_tasks`` tasks of the
   one task seed, or a fresh task per sequence drawn from the same seeds), and validation sets on
   seen and unseen tasks (``data/PIPELINE``, ``data/PIPELINE-val``).
2. **Training.** One model per pipeline with the same architecture and budget (``training``:
   optimiser steps, batch, window) into ``train/PIPELINE``; every run is resumable and skipped
   when already done.
3. **Evaluation** on ``evaluation.n_envs`` unseen tasks of ``evaluation.env`` (the same tasks for
   every model) under each protocol of ``evaluation.protocols``: ``online`` (empty context: RL
   from the model's own rewards), ``offline`` (``demo_steps`` context entries of an oracle whose
   actions are replaced by random ones with probability ``demo_epsilon``, then acting) and
   ``imitation`` (oracle demonstrations, then acting); the acting phase is ``evaluation.steps``
   steps in every protocol and starts from the same states (``omnirl.evaluate.protocols``). The
   baselines of ``evaluation.baselines`` (default TQL-UCB) run online on the same tasks as a
   reference; 0 is random play and 1 the oracle.

Scores: ``performance`` is the mean normalised score of the episodes that ended in the last quarter
of the acting phase (averaged per task, then over tasks), with its standard error over tasks;
``first_quarter`` the same for the first quarter (how much the demonstrations help at once).
Two scores are called different when they differ by more than twice the standard error of the
difference. The unseen-task validation loss over the first steps and over the last quarter of the
validation sequences (``val_loss_first``, ``val_loss_last``) shows whether a model uses its context
on sequences made like its training data; it is not comparable across pipelines: AD and
AD-epsilon are trained on the behaviour's own actions, the others on the oracle's.

Outputs in the run directory (``runs/ss_ablation-PRESET``): ``summary.json`` (``results``:
``scores``, ``mean_online`` / ``mean_offline`` / ``mean_imitation`` (means over pipelines),
``demonstration_gain``, ``reference``, ``training``, ``paper``, ``timing``),
``ss_ablation_scores.png`` (bars: pipeline x protocol) and ``ss_ablation_curves.png`` (score
against steps, a panel per protocol), plus ``data/``, ``train/`` and ``eval/``.

Presets: ``smoke`` (two pipelines, a few optimiser steps), ``laptop`` (default: all five pipelines,
S = 16, 1024 tasks, 420 optimiser steps of 8 x 512 steps each, two trained at once, about 3
CPU-minutes per pipeline) and ``paper`` (paper-sized model and data; documented, not run: the
paper's dataset sizes for this ablation were lost in the text we have, so they are our estimate).

The settings dataclasses ``DatasetSettings`` and ``TrainingSettings`` and the helpers
``train_models``, ``evaluate_once``, ``episode_scores``, ``differs``, ``trend`` and ``pm`` are also
used by ``experiments.gym_benchmark``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from experiments._common import (Invocation, cpu_seconds, dataset, evaluate, finish, log, main_of, train_many,
                                 validation_sets)
from omnirl._validate import check_choice, check_float, check_int

NAME = "ss_ablation"
PIPELINE_NAMES = ("omnirl", "omnirl_noprior", "ad", "ad_epsilon", "dpt")
"""The pipelines of the paper's Table 4, in the order of its Figure 6."""
PROTOCOL_NAMES = ("online", "offline", "imitation")
RESOLVE = 2.0
"""Two scores differ when they differ by more than this many standard errors of the difference."""
PAPER_FIGURE6 = {
    "claims": [
        "OmniRL and OmniRL (w/o a priori) surpass AD, AD-epsilon and DPT by a large gap under online RL, "
        "offline RL and imitation learning (step-wise supervision works).",
        "OmniRL (w/o a priori) lags behind OmniRL by a noticeable gap in all three groups (prior information helps).",
    ],
    "values": None,
    "note": "Figure 6 is a plot; its numbers are not in the paper text we have, so only its claims are compared.",
}


# --------------------------------------------------------------------------- shared settings
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
    """The model and its optimisation (``python -m omnirl.train`` settings)."""

    backbone: str = "gdn"
    """Backbone: ``gdn``, ``rwkv7``, ``gsa`` or ``mamba2``."""
    preset: str = "tiny"
    """Backbone size: ``tiny`` or ``paper``."""
    layout: str = "compact"
    """Tokens per step: ``compact`` (2) or ``paper`` (5)."""
    window: int = 512
    """Steps of one training sequence (a random window of a stored sequence)."""
    batch_size: int = 8
    """Sequences per batch."""
    segment_len: int = 256
    """Steps per segment of truncated back-propagation."""
    max_steps: int = 420
    """Optimiser steps."""
    lr: float = 1e-3
    """Peak learning rate."""
    warmup_steps: int = 50
    """Learning-rate warm-up steps."""
    val_every: int = 210
    """Optimiser steps between validations (and checkpoints)."""
    torch_threads: int = 1
    """Torch intra-op threads of every training run and evaluation (0: training runs get the
    machine's cores divided by ``parallel``, evaluations torch's setting). One thread costs the
    least CPU time for the tiny model, and is the fastest on a busy 2-core machine."""
    parallel: int = 1
    """Training runs at once, each in its own process (``_common.train_many``); 2 on a 2-core
    machine trains two models in about the wall time of one."""

    def __post_init__(self) -> None:
        from omnirl.train.config import DataSection, ModelSection, TrainSection

        ModelSection(backbone=self.backbone, preset=self.preset, layout=self.layout)
        DataSection(window=self.window, batch_size=self.batch_size)
        TrainSection(segment_len=self.segment_len, max_steps=self.max_steps, lr=self.lr,
                     warmup_steps=self.warmup_steps, val_every=self.val_every)
        if self.window < self.segment_len:
            raise ValueError(f"window={self.window} must be >= segment_len={self.segment_len}")
        check_int("torch_threads", self.torch_threads, min_value=0)
        check_int("parallel", self.parallel, min_value=1)

    def overrides(self, data: DatasetSettings, train_dir: Path, validation: Mapping[str, str],
                  seed: int) -> dict[str, Any]:
        """The dotted ``omnirl.train`` settings of a run on ``train_dir``."""
        return {"model.backbone": self.backbone, "model.preset": self.preset, "model.layout": self.layout,
                "model.n_states": data.max_states, "model.n_actions": data.actions,
                "data.train": [str(train_dir)], "data.validation": dict(validation), "data.window": self.window,
                "data.batch_size": self.batch_size, "data.seed": seed, "train.segment_len": self.segment_len,
                "train.max_steps": self.max_steps, "train.lr": self.lr, "train.warmup_steps": self.warmup_steps,
                "train.val_every": self.val_every, "train.seed": seed}


# --------------------------------------------------------------------------- this experiment's settings
@dataclasses.dataclass(frozen=True)
class EvaluationSettings:
    """How every model is evaluated."""

    env: str = "anymdp16"
    """Environment (unseen AnyMDP tasks of 16 states by default; any name of
    ``omnirl.evaluate.envs.ENVIRONMENTS`` the model's vocabulary covers)."""
    protocols: tuple[str, ...] = PROTOCOL_NAMES
    """Protocols: ``online``, ``offline`` (noisy-oracle demonstrations) and ``imitation`` (oracle
    demonstrations)."""
    n_envs: int = 32
    """Tasks (rows) evaluated in parallel."""
    steps: int = 1000
    """Acting steps per task."""
    demo_steps: int = 1000
    """Context entries of demonstrations before acting (offline and imitation)."""
    demo_epsilon: float = 0.5
    """Offline: probability that a demonstration step is a uniformly random action."""
    baselines: tuple[str, ...] = ("tql_ucb",)
    """Online baselines run on the same tasks as a reference (``tql_ucb``, ``ppo``; may be empty)."""

    def __post_init__(self) -> None:
        from omnirl.evaluate.envs import ENVIRONMENTS

        check_choice("env", self.env, ENVIRONMENTS)
        if isinstance(self.protocols, (str, bytes)) or not self.protocols:
            raise ValueError(f"protocols must be a non-empty list of {list(PROTOCOL_NAMES)}, got {self.protocols!r}")
        for p in self.protocols:
            check_choice("protocols", p, PROTOCOL_NAMES)
        if len(set(self.protocols)) != len(self.protocols):
            raise ValueError(f"protocols must not repeat, got {list(self.protocols)}")
        check_int("n_envs", self.n_envs, min_value=1)
        check_int("steps", self.steps, min_value=4)
        check_int("demo_steps", self.demo_steps, min_value=1)
        check_float("demo_epsilon", self.demo_epsilon, min_value=0.0, max_value=1.0)
        for b in self.baselines:
            check_choice("baselines", b, ("tql_ucb", "ppo"))


@dataclasses.dataclass(frozen=True)
class SSAblationSettings:
    """What ``python -m experiments.ss_ablation`` runs."""

    pipelines: tuple[str, ...] = PIPELINE_NAMES
    """Data pipelines to compare (each gets its own dataset and model)."""
    dataset: DatasetSettings = dataclasses.field(default_factory=DatasetSettings)
    """The training data of every model (same tasks, same size)."""
    training: TrainingSettings = dataclasses.field(default_factory=TrainingSettings)
    """The model and its optimisation (the same budget for every pipeline)."""
    evaluation: EvaluationSettings = dataclasses.field(default_factory=EvaluationSettings)
    """The evaluation of every model."""

    def __post_init__(self) -> None:
        if isinstance(self.pipelines, (str, bytes)) or not self.pipelines:
            raise ValueError(f"pipelines must be a non-empty list of {list(PIPELINE_NAMES)}, got {self.pipelines!r}")
        for p in self.pipelines:
            check_choice("pipelines", p, PIPELINE_NAMES)
        if len(set(self.pipelines)) != len(self.pipelines):
            raise ValueError(f"pipelines must not repeat, got {list(self.pipelines)}")
        need = env_states(self.evaluation.env)
        if need > self.dataset.max_states:
            raise ValueError(f"evaluation.env={self.evaluation.env!r} has {need} states, more than the model reads "
                             f"(dataset.states={self.dataset.states!r}: {self.dataset.max_states})")


PRESETS = {
    "smoke": SSAblationSettings(
        pipelines=("omnirl", "ad"),
        dataset=DatasetSettings(states=16, n_tasks=16, sequences=16, length=256, val_sequences=4),
        training=TrainingSettings(window=128, batch_size=2, segment_len=64, max_steps=3, warmup_steps=1,
                                  val_every=3),
        evaluation=EvaluationSettings(n_envs=4, steps=64, demo_steps=48)),
    "laptop": SSAblationSettings(training=TrainingSettings(parallel=2)),
    "paper": SSAblationSettings(
        dataset=DatasetSettings(states="16:128", n_tasks=None, sequences=16384, length=16384, val_sequences=256,
                                workers=32),
        training=TrainingSettings(backbone="rwkv7", preset="paper", layout="paper", window=16384, batch_size=4,
                                  segment_len=2048, max_steps=20000, lr=2e-4, warmup_steps=1000,
                                  val_every=1000, torch_threads=0),
        evaluation=EvaluationSettings(env="anymdp64", n_envs=256, steps=10000, demo_steps=10000,
                                      baselines=("tql_ucb", "ppo"))),
}


# --------------------------------------------------------------------------- helpers (shared with gym_benchmark)
@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Torch intra-op threads set to ``n`` inside the block (``0``: unchanged), restored after."""
    import torch

    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


COST_FILE = "experiment_cost.json"
"""Written beside a step's outputs: the CPU seconds the step took when it ran, so a resumed
experiment reports what its reused steps cost."""


def _cost(out: Path, cost: float | None) -> tuple[float, bool]:
    """``(cpu seconds, reused)`` of a step in ``out``: ``cost`` recorded now when the step ran
    (``cost`` given), else the recorded cost read back (NaN when never recorded)."""
    from omnirl.fileio import atomic_write_json

    if cost is not None:
        atomic_write_json(out / COST_FILE, {"cpu_seconds": cost})
        return cost, False
    f = out / COST_FILE
    return (float(json.loads(f.read_text())["cpu_seconds"]) if f.exists() else math.nan), True


def prepare_data(out: Path, data: DatasetSettings, *, pipeline: str, seed: int) -> tuple[Path, dict[str, str]]:
    """The training dataset ``out/data/PIPELINE`` (task set of seed ``seed``) and its validation
    sets ``out/data/PIPELINE-val``, made if missing."""
    train_dir = dataset(out / "data" / pipeline, n_tasks=data.n_tasks, sequences=data.sequences, length=data.length,
                        states=data.states, actions=data.actions, pipeline=pipeline, seed=seed, task_seed=seed,
                        workers=data.workers)
    return train_dir, validation_sets(train_dir, out / "data" / f"{pipeline}-val", data.val_sequences)


def train_models(out: Path, data: DatasetSettings, training: TrainingSettings, pipelines: Sequence[str], *,
                 seed: int, wandb_mode: str) -> dict[str, dict[str, Any]]:
    """One model per pipeline into ``out/train/PIPELINE`` on the data of ``prepare_data``, with
    ``training.parallel`` runs at once (``_common.train_many``); a finished run is reused. Returns
    by pipeline ``read_training`` plus ``cpu_seconds`` (what the training cost, also when reused:
    recorded when it ran) and ``reused``."""
    jobs, before = [], {}
    for p in pipelines:
        train_dir, val = prepare_data(out, data, pipeline=p, seed=seed)
        run_dir = out / "train" / p
        before[p] = (run_dir / "done.json").read_bytes() if (run_dir / "done.json").exists() else None
        jobs.append((run_dir, training.overrides(data, train_dir, val, seed)))
    runs = train_many(jobs, parallel=training.parallel, threads=training.torch_threads, wandb_mode=wandb_mode)
    records = {}
    for p, (run_dir, _), rec in zip(pipelines, jobs, runs):
        reused = before[p] is not None and (run_dir / "done.json").read_bytes() == before[p]  # left untouched
        cost, reused = _cost(run_dir, None if reused else rec["cpu_seconds"])
        records[p] = {**rec, "cpu_seconds": cost, "reused": reused}
    return records


def evaluate_once(out: Path, *, threads: int = 1, **request: Any) -> dict[str, Any]:
    """``_common.evaluate(out, **request)`` unless ``out`` already holds the summary of this very
    request (an interrupted experiment resumes without evaluating twice); returns the summary
    with ``cpu_seconds`` (what the evaluation cost, also when reused) and ``reused``."""
    key = out / "request.json"
    plain = json.loads(json.dumps(request, default=str))
    if (out / "summary.json").exists() and key.exists() and json.loads(key.read_text()) == plain:
        cost, reused = _cost(out, None)
        return {**json.loads((out / "summary.json").read_text()), "cpu_seconds": cost, "reused": reused}
    c0 = cpu_seconds()
    with torch_threads(threads):
        summary = evaluate(out, **request)
    from omnirl.fileio import atomic_write_json
    atomic_write_json(key, plain)
    cost, _ = _cost(out, cpu_seconds() - c0)
    return {**summary, "cpu_seconds": cost, "reused": False}


def episode_scores(eval_dir: Path, env: str, method: str, n_rows: int, bins: int = 8) -> dict[str, Any]:
    """Per-task numbers of one (environment, method) of an evaluation's ``episodes.npz``:
    ``performance`` (mean normalised score over the episodes that ended in the last quarter,
    per task then over tasks) and its standard error over tasks (``se``), ``first_quarter`` (the
    same over the first quarter), the learning curve (``curve_steps``, ``curve``: mean score of the
    episodes ending in each of ``bins`` step bins), and the raw-return columns ``raw_early`` /
    ``raw_late`` (mean raw return over the first 20 episodes and over the last 20 of at most 200
    episodes of each task, the columns of the paper's Table 2) with the episodes reached
    (``late_window``: the median over tasks of the window's end)."""
    with np.load(eval_dir / "episodes.npz") as z:
        cols = {c: z[f"{env}/{method}/{c}"] for c in ("row", "episode", "end_step", "raw_return", "score")}
    steps = int(json.loads((eval_dir / "summary.json").read_text())["config"]["run"]["steps"])
    row, score = cols["row"], cols["score"]

    def per_row(mask: np.ndarray, values: np.ndarray) -> np.ndarray:
        sums = np.bincount(row[mask], weights=values[mask], minlength=n_rows)
        counts = np.bincount(row[mask], minlength=n_rows)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)

    def mean_se(x: np.ndarray) -> tuple[float, float]:
        x = x[np.isfinite(x)]
        if x.size == 0:
            return math.nan, math.nan
        return float(x.mean()), float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else math.nan

    finite = np.isfinite(score)
    late = per_row((cols["end_step"] > 0.75 * steps) & finite, score)
    early = per_row((cols["end_step"] <= 0.25 * steps) & finite, score)
    perf, se = mean_se(late)
    first, first_se = mean_se(early)
    edges = np.linspace(0, steps, bins + 1)
    idx = np.clip(np.searchsorted(edges, cols["end_step"], side="left") - 1, 0, bins - 1)
    curve = [float(score[(idx == b) & finite].mean()) if ((idx == b) & finite).any() else math.nan
             for b in range(bins)]
    # Table 2 columns: raw return of episodes 0-19 and of the last 20 of at most 200 episodes
    n_eps = np.bincount(row, minlength=n_rows)  # (n_rows,) episodes finished per task
    end = np.minimum(n_eps, 200)[row]  # window end of each episode's task
    raw_early = per_row(cols["episode"] < 20, cols["raw_return"])
    raw_late = per_row((cols["episode"] < end) & (cols["episode"] >= end - 20), cols["raw_return"])
    return {"performance": perf, "se": se, "first_quarter": first, "first_quarter_se": first_se,
            "tasks": int(np.isfinite(late).sum()), "episodes": int(row.size),
            "curve_steps": ((edges[:-1] + edges[1:]) / 2).tolist(), "curve": curve,
            "raw_early": float(np.nanmean(raw_early)) if np.isfinite(raw_early).any() else math.nan,
            "raw_late": float(np.nanmean(raw_late)) if np.isfinite(raw_late).any() else math.nan,
            "late_window": int(np.median(np.minimum(n_eps, 200))) if n_eps.size else 0}


def differs(a: Mapping[str, float], b: Mapping[str, float], key: str = "performance") -> int:
    """+1 if ``a[key]`` is resolved above ``b[key]``, -1 if below, 0 if not resolved
    (``RESOLVE`` standard errors of the difference; ``se`` or ``KEY_se``)."""
    se_key = "se" if key == "performance" else f"{key}_se"
    d = a[key] - b[key]
    se = math.sqrt((a.get(se_key) or 0.0) ** 2 + (b.get(se_key) or 0.0) ** 2)
    if not math.isfinite(d):
        return 0
    if not math.isfinite(se) or abs(d) <= RESOLVE * se:
        return 0
    return 1 if d > 0 else -1


def pm(x: float, se: float) -> str:
    """``x±se`` with two decimals (``x`` alone when ``se`` is unknown, ``-`` when ``x`` is)."""
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:.2f}" if se is None or not math.isfinite(se) else f"{x:.2f}±{se:.2f}"


def trend(sc: Mapping[str, float]) -> tuple[dict, dict]:
    """The last-quarter and first-quarter scores of ``sc`` as ``differs`` arguments (positive:
    the score rose within the run)."""
    return ({"performance": sc["performance"], "se": sc["se"]},
            {"performance": sc["first_quarter"], "se": sc["first_quarter_se"]})


# --------------------------------------------------------------------------- figures
def plot_scores(scores: dict, protocols: Sequence[str], reference: dict, path: Path) -> Path:
    """Grouped bars: a group per protocol, a bar per pipeline (error bar: 2 standard errors)."""
    from matplotlib.figure import Figure

    from omnirl.tasks.plots import save_figure

    pipelines = list(scores)
    fig = Figure(figsize=(max(6.0, 1.6 + 1.4 * len(protocols) * max(1, len(pipelines)) / 3), 3.8))
    ax = fig.subplots()
    width = 0.8 / len(pipelines)
    for k, p in enumerate(pipelines):
        x = np.arange(len(protocols)) + (k - (len(pipelines) - 1) / 2) * width
        y = [scores[p][q]["performance"] for q in protocols]
        se = np.array([scores[p][q]["se"] for q in protocols], dtype=float)
        err = np.where(np.isfinite(se), 2 * se, 0.0)
        ax.bar(x, y, width, yerr=err, capsize=2, label=p)
    for name, r in reference.items():
        ax.axhline(r["performance"], color="black", lw=0.9, ls="--", label=f"{name} (online)")
    ax.axhline(0.0, color="grey", lw=0.7, ls=":")
    ax.axhline(1.0, color="grey", lw=0.7, ls="-.")
    ax.set_xticks(np.arange(len(protocols)), [f"{q}" for q in protocols])
    ax.set_ylabel("normalised score, last quarter")
    ax.set_title("Data pipelines under three protocols (0: random, 1: oracle)", fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_curves(scores: dict, protocols: Sequence[str], reference: dict, path: Path) -> Path:
    """Score against acting steps: a panel per protocol, a line per pipeline."""
    from matplotlib.figure import Figure

    from omnirl.tasks.plots import save_figure

    fig = Figure(figsize=(4.0 * len(protocols), 3.2))
    axes = fig.subplots(1, len(protocols), squeeze=False)[0]
    for ax, q in zip(axes, protocols):
        for p, by in scores.items():
            ax.plot(by[q]["curve_steps"], by[q]["curve"], marker="o", ms=3, label=p)
        if q == "online":
            for name, r in reference.items():
                ax.plot(r["curve_steps"], r["curve"], color="black", ls="--", label=name)
        ax.axhline(0.0, color="grey", lw=0.7, ls=":")
        ax.axhline(1.0, color="grey", lw=0.7, ls="-.")
        ax.set_title(q, fontsize=9)
        ax.set_xlabel("acting steps (after the demonstrations)")
        ax.set_ylabel("normalised score")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


# --------------------------------------------------------------------------- the experiment
def describe(s: SSAblationSettings, scores: dict, reference: dict, gains: dict, training: dict) -> str:
    """The finding, from the numbers."""
    ev = s.evaluation
    parts = [f"{len(s.pipelines)} pipelines, one tiny model each ({s.training.max_steps} optimiser steps of "
             f"{s.training.batch_size} x {s.training.window} steps), evaluated on {ev.n_envs} unseen {ev.env} tasks "
             f"({ev.steps} acting steps; offline/imitation after {ev.demo_steps} demonstration entries)."]
    for q in ev.protocols:
        ranked = sorted(s.pipelines, key=lambda p: -np.nan_to_num(scores[p][q]["performance"], nan=-np.inf))
        text = ", ".join(f"{p} {pm(scores[p][q]['performance'], scores[p][q]['se'])}" for p in ranked)
        parts.append(f"{q.capitalize()} (last-quarter score ± s.e.): {text}.")
    if "online" in ev.protocols:
        above = [p for p in s.pipelines if differs(scores[p]["online"], {"performance": 0.0, "se": 0.0}) > 0]
        ref = "; ".join(f"{n} scores {r['performance']:.2f} online on the same tasks" for n, r in reference.items())
        rising = [p for p in s.pipelines if differs(*trend(scores[p]["online"])) > 0]
        if above:
            parts.append(f"Online, {', '.join(above)} scored above random play (resolved); {ref}.")
        else:
            parts.append(f"Online, no model scored resolvably above random play ({ref or 'no baseline run'}).")
        parts.append("The online score rose resolvably from the first to the last quarter of the run (learning in "
                     "context from its own rewards) for " + (", ".join(rising) if rising else "no pipeline") + ".")
    for q in ("offline", "imitation"):
        if q not in ev.protocols or "online" not in ev.protocols:
            continue
        helped = [p for p in s.pipelines if gains[p][q]["resolved"] > 0]
        hurt = [p for p in s.pipelines if gains[p][q]["resolved"] < 0]
        what = "noisy-oracle" if q == "offline" else "oracle"
        if helped:
            parts.append(f"{what.capitalize()} demonstrations raised the score over online for {', '.join(helped)} "
                         + (f"and lowered it for {', '.join(hurt)}." if hurt else "(resolved)."))
        else:
            parts.append(f"{what.capitalize()} demonstrations raised no pipeline's score resolvably over online"
                         + (f" (lowered it for {', '.join(hurt)})." if hurt else "."))
    # the paper's two claims, checked where both sides were run
    ss, others = [p for p in ("omnirl", "omnirl_noprior") if p in s.pipelines], \
        [p for p in ("ad", "ad_epsilon", "dpt") if p in s.pipelines]
    if ss and others:
        wins = sum(differs(scores[a][q], scores[b][q]) > 0 for a in ss for b in others for q in ev.protocols)
        losses = sum(differs(scores[a][q], scores[b][q]) < 0 for a in ss for b in others for q in ev.protocols)
        n = len(ss) * len(others) * len(ev.protocols)
        verdict = ("reproduces it" if wins == n else
                   "cannot tell (no difference was resolved)" if wins == 0 and losses == 0 else
                   "does not reproduce it" if wins == 0 else "partly reproduces it")
        parts.append(f"Paper claim 1 (step-wise supervision beats AD, AD-epsilon and DPT): the OmniRL pipelines were "
                     f"resolvably better in {wins} of {n} comparisons and worse in {losses}; this run {verdict}.")
    if "omnirl" in s.pipelines and "omnirl_noprior" in s.pipelines:
        wins = [q for q in ev.protocols if differs(scores["omnirl"][q], scores["omnirl_noprior"][q]) > 0]
        parts.append(f"Paper claim 2 (prior information helps): OmniRL beat OmniRL without prior resolvably in "
                     f"{len(wins)} of {len(ev.protocols)} protocols" + (f" ({', '.join(wins)})." if wins else "."))
    drops = {p: training[p]["validation"].get("val/unseen/policy_loss_first_steps", math.nan)
             - training[p]["validation"].get("val/unseen/policy_loss_last_quarter", math.nan) for p in s.pipelines}
    parts.append("On the unseen-task validation sequences (contexts made like the training data), the loss on each "
                 "pipeline's own labels fell from the first steps to the last quarter by " + ", ".join(
                     f"{p} {d:.2f}" for p, d in drops.items()) + " nats (positive: the model used its context).")
    used = [p for p, d in drops.items() if d > 0.05]
    gained = [p for p in s.pipelines if any(g["resolved"] > 0 for g in gains.get(p, {}).values())]
    if used and not gained:
        parts.append(f"For {', '.join(used)} that use of context did not carry over to a higher score when acting.")
    parts.append("These losses are not comparable across pipelines (AD and AD-epsilon learn the behaviour's "
                 "actions, the others the oracle's).")
    return " ".join(parts)


def run(inv: Invocation) -> dict:
    s: SSAblationSettings = inv.settings
    ev = s.evaluation
    t0, c0 = time.perf_counter(), cpu_seconds()
    training, scores, timing = {}, {}, {"train_cpu_seconds": {}, "eval_cpu_seconds": {}, "reused": []}
    log(f"data and training: {', '.join(s.pipelines)} ({s.training.parallel} at once)")
    c1 = cpu_seconds()
    records = train_models(inv.out, s.dataset, s.training, s.pipelines, seed=inv.seed, wandb_mode=inv.wandb_mode)
    timing["data_and_training_cpu_seconds_here"] = cpu_seconds() - c1
    for p in s.pipelines:
        rec = records[p]
        timing["train_cpu_seconds"][p] = rec["cpu_seconds"]
        timing["reused"] += [f"train/{p}"] if rec["reused"] else []
        last = rec["history"][-1] if rec["history"] else {}
        training[p] = {"checkpoint": rec["checkpoint"], "parameters": rec["run"].get("parameters"),
                       "validation": {k: v for k, v in last.items() if k.startswith("val/") and k.count("/") == 2}}
        scores[p] = {}
        for q in ev.protocols:
            fields = {} if q == "online" else {"protocol.demo_steps": ev.demo_steps,
                                                "protocol.demo_epsilon": ev.demo_epsilon}
            out = inv.out / "eval" / f"{p}-{q}"
            summ = evaluate_once(out, threads=s.training.torch_threads, checkpoint=rec["checkpoint"], envs=[ev.env],
                                 protocol=q, n_envs=ev.n_envs, steps=ev.steps, seed=inv.seed, baselines=[], **fields)
            timing["eval_cpu_seconds"][f"{p}-{q}"] = summ["cpu_seconds"]
            timing["reused"] += [f"eval/{p}-{q}"] if summ["reused"] else []
            scores[p][q] = episode_scores(out, ev.env, "omnirl", ev.n_envs)
            log(f"[{p}] {q}: {scores[p][q]['performance']:.3f} ± {scores[p][q]['se']:.3f}")
    reference = {}
    if ev.baselines:
        out = inv.out / "eval" / "reference"
        summ = evaluate_once(out, checkpoint=None, envs=[ev.env], protocol="online", n_envs=ev.n_envs,
                             steps=ev.steps, seed=inv.seed, baselines=list(ev.baselines))
        timing["eval_cpu_seconds"]["reference"] = summ["cpu_seconds"]
        timing["reused"] += ["eval/reference"] if summ["reused"] else []
        reference = {b: episode_scores(out, ev.env, b, ev.n_envs) for b in ev.baselines}

    gains = {p: {q: {"difference": scores[p][q]["performance"] - scores[p]["online"]["performance"],
                     "resolved": differs(scores[p][q], scores[p]["online"])}
                 for q in ev.protocols if q != "online"} for p in s.pipelines} if "online" in ev.protocols else {}
    figures = [plot_scores(scores, ev.protocols, reference, inv.out / "ss_ablation_scores.png"),
               plot_curves(scores, ev.protocols, reference, inv.out / "ss_ablation_curves.png")]
    table = []
    for p in s.pipelines:
        val = training[p]["validation"]
        for q in ev.protocols:
            sc = scores[p][q]
            table.append({"pipeline": p, "protocol": q, "performance": sc["performance"], "se": sc["se"],
                          "first_quarter": sc["first_quarter"], "episodes": sc["episodes"],
                          "val_loss_first": val.get("val/unseen/policy_loss_first_steps", math.nan),
                          "val_loss_last": val.get("val/unseen/policy_loss_last_quarter", math.nan)})
    for b, sc in reference.items():
        table.append({"pipeline": f"({b})", "protocol": "online", "performance": sc["performance"], "se": sc["se"],
                      "first_quarter": sc["first_quarter"], "episodes": sc["episodes"], "val_loss_first": math.nan,
                      "val_loss_last": math.nan})
    mean_perf = {f"mean_{q}": float(np.nanmean([scores[p][q]["performance"] for p in s.pipelines]))
                 for q in ev.protocols}  # flat numbers: what a sweep's metric names (results/mean_imitation)
    finding = describe(s, scores, reference, gains, training)
    timing["cpu_seconds"] = cpu_seconds() - c0
    timing["steps_cpu_seconds"] = float(sum(timing["train_cpu_seconds"].values())
                                        + sum(timing["eval_cpu_seconds"].values()))
    results = {"table_columns": list(table[0]) if table else [],  # summary.json sorts the rows' keys
               "scores": scores, **mean_perf, "demonstration_gain": gains, "reference": reference,
               "training": training, "paper": {"figure6": PAPER_FIGURE6}, "timing": timing}
    return finish(inv, NAME, results=results, table=table, figures=figures, finding=finding,
                  seconds=time.perf_counter() - t0)


main = main_of(NAME, PRESETS, run, __doc__)

if __name__ == "__main__":
    raise SystemExit(main())
