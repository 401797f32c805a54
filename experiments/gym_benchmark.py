"""Gymnasium benchmark: OmniRL against TQL-UCB and PPO online (paper Table 1) and against CQL
offline (paper Table 2).

    python -m experiments.gym_benchmark                        # laptop preset (~15 CPU-minutes)
    python -m experiments.gym_benchmark --preset smoke         # under a minute (the tests run it)
    python -m experiments.gym_benchmark --checkpoint=runs/tiny/checkpoints/last.ckpt   # reuse a model

Steps (one run directory, ``runs/gym_benchmark-PRESET``):

1. **Model.** Unless ``checkpoint`` names one, an OmniRL model is meta-trained on AnyMDP data of the
   ``omnirl`` pipeline (``dataset``: tasks of ``states`` states, by default ``16:64`` so that the
   model's vocabulary of 64 observation ids covers Lake (16), Cliff (48), Pendulum (60) and
   DarkRoom 6x6 / 8x8 (36, 64)), into ``train/omnirl``. An environment with more observation ids
   than the model reads (DarkRoom 10x10: 100, Switch2: 105 for a 64-id model) is skipped for the
   model, and the table says so; its baselines still run.
2. **Online (Table 1).** On every environment of ``online.envs``, the model acts from an empty
   context for ``online.steps`` steps in ``online.n_envs`` copies (``omnirl.evaluate``, protocol
   ``online``), and TQL-UCB and PPO learn from scratch for the same steps. Columns as in the paper:
   performance (mean normalised score of the episodes that ended in the last quarter: 0 random,
   1 oracle) and the steps and episodes taken to reach 90% of it.
3. **Offline (Table 2).** On every environment of ``offline.envs`` and for every teacher of
   ``offline.teachers`` (``oracle``: the imitation protocol; ``noisy_oracle``: an oracle whose
   actions are random with probability ``offline.demo_epsilon``; ``random``: the uniform random
   policy), the model reads ``offline.demo_steps`` context entries of the teacher's play and then
   acts for ``offline.steps`` steps; CQL trains on a dataset of the same teacher and size and is
   then evaluated for the same steps. Columns as in the paper: the raw return of episodes 0-19
   and of the last 20 of at most 200 episodes (the paper's "0~20 / 180~200 episodes"; with fewer
   than 200 episodes in the run, the last 20 reached, given as ``late_window``), and the
   normalised performance.

4. **Memory (Figure 5, right).** On every environment of ``memory.envs`` (AnyMDP of 16, 32 and
   64 states, bandits, Lake, Cliff, Pendulum, DarkRoom), the model acts online and its recurrent
   memory is stored after each of ``memory.memory_steps`` steps into ``eval/memory/memory.npz``:
   what ``notebooks/tsne_memory.ipynb`` draws (its default run directory is this experiment's
   laptop run).

The paper's numbers sit beside ours in ``results.paper``: Table 2's as printed (FrozenLake success
rates as fractions); Table 1's numbers were lost in the text extraction we have (only its row and
column names survive), so they are ``None`` and nothing is compared against them.

Outputs: ``summary.json`` (``results``: ``online``, ``offline``, ``skipped``, ``model``, ``memory``,
``paper``, ``timing``), ``table1_curves.png`` (score against steps, a panel per environment),
``table2_scores.png`` (OmniRL against CQL per environment and teacher), and ``train/``, ``eval/``.

Presets: ``smoke`` (a few optimiser steps, two environments), ``laptop`` (default: 1,200 optimiser
steps on 2,048 sequences of fresh AnyMDP tasks with 16-64 states, then 11 Table-1 environments
and 4 Table-2 environments x 3 teachers; DarkRoom 8x8 stands in for Table 2's 10x10, which the
64-id model cannot read) and ``paper`` (paper-sized model and data; documented, not run).
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from experiments._common import Invocation, finish, main_of
from omnirl.evaluate.envs import observation_ids
from omnirl.experiment import DatasetSettings, TrainingSettings, evaluate_once, log, presets, train_models
from omnirl.rundir import cpu_seconds
from experiments._scores import differs, episode_scores, pm, trend
from omnirl._validate import check_choice, check_float, check_int

NAME = "gym_benchmark"
MODEL = "omnirl"
TABLE1_ENVS = ("bandit5", "cliff", "lake4x4", "lake4x4_slippery", "pendulum_g1", "pendulum_g5", "pendulum_g9.8",
               "switch2", "darkroom6", "darkroom8", "darkroom10")
"""The rows of the paper's Table 1 (``bandit5``: its "(Bandits)" row)."""
TABLE2_ENVS = ("lake4x4_slippery", "cliff", "pendulum_g5", "darkroom10")
"""The rows of the paper's Table 2."""
TEACHERS = {"oracle": ("imitation", "oracle"), "noisy_oracle": ("offline", "noisy_oracle"),
            "random": ("offline", "random")}
"""Teacher -> (protocol, demonstrator) of ``omnirl.evaluate``."""
ONLINE_BASELINES = ("tql_ucb", "ppo")
COLOURS = {MODEL: "C0", "tql_ucb": "C1", "ppo": "C2", "cql": "C3"}
"""A fixed colour per method in every figure."""

PAPER_TABLE1 = {
    "values": {env: {m: None for m in ("tql_ucb", "ppo", MODEL)} for env in TABLE1_ENVS},
    "columns": "performance / average steps cost / average episodes cost",
    "note": "The numbers of Table 1 were lost in the text extraction of the paper we have (only the row and column "
            "names survive), so no value is given and none is compared.",
}
PAPER_TABLE2 = {
    "columns": "raw return of episodes 0-20 / 180-200 (FrozenLake: success rate as a fraction)",
    "values": {
        "lake4x4_slippery": {"oracle": {"teacher": 0.7780, "cql": [0.7661, 0.7611], MODEL: [0.7012, 0.7727]},
                             "random": {"teacher": 0.0146, "cql": [0.3779, 0.7236], MODEL: [0.5430, 0.6738]}},
        "cliff": {"oracle": {"teacher": -13.0, "cql": [-30.8, -13.0], MODEL: [-13.0, -13.0]},
                  "random": {"teacher": -109.84, "cql": [-560.2, -16.2], MODEL: [-91.0, -17.0]}},
        "pendulum_g5": {"oracle": {"teacher": -153.81, "cql": [-605.89, -258.22], MODEL: [-180.0, -127.0]},
                        "random": {"teacher": -941.65, "cql": [-1062.40, -184.29], MODEL: [-646.0, -208.0]}},
        "darkroom10": {"oracle": {"teacher": 0.22, "cql": [0.23, 0.22], MODEL: [0.22, 0.21]},
                       "random": {"teacher": -15.07, "cql": [-4.05, 0.21], MODEL: [0.09, 0.19]}},
    },
    "note": "Copied from the paper's Table 2; the paper has no noisy-oracle teacher.",
}


def _check_envs(name: str, envs: Any) -> None:
    from omnirl.evaluate.envs import ENVIRONMENTS

    if isinstance(envs, (str, bytes)) or not envs:
        raise ValueError(f"{name} must be a non-empty list of environment names, got {envs!r}")
    for e in envs:
        check_choice(name, e, ENVIRONMENTS)
    if len(set(envs)) != len(envs):
        raise ValueError(f"{name} must not repeat, got {list(envs)}")


def _check_switch2(envs: Sequence[str], n_envs: int) -> None:
    if "switch2" in envs and n_envs % 2:
        raise ValueError(f"n_envs must be even when envs holds switch2 (two agents per environment), got {n_envs}")


@dataclasses.dataclass(frozen=True)
class OnlineSettings:
    """Table 1: online RL from an empty context, against TQL-UCB and PPO."""

    envs: tuple[str, ...] = TABLE1_ENVS
    """Environments (names of ``omnirl.evaluate.envs.ENVIRONMENTS``)."""
    n_envs: int = 8
    """Copies (rows) of each environment; even when ``switch2`` is evaluated."""
    steps: int = 2000
    """Acting steps per row, for the model and every baseline."""
    baselines: tuple[str, ...] = ONLINE_BASELINES
    """Online baselines (``tql_ucb``, ``ppo``)."""

    def __post_init__(self) -> None:
        _check_envs("envs", self.envs)
        check_int("n_envs", self.n_envs, min_value=1)
        _check_switch2(self.envs, self.n_envs)
        check_int("steps", self.steps, min_value=4)
        for b in self.baselines:
            check_choice("baselines", b, ONLINE_BASELINES)


@dataclasses.dataclass(frozen=True)
class OfflineSettings:
    """Table 2: the model after a teacher's demonstrations, against CQL on the same data."""

    envs: tuple[str, ...] = ("lake4x4_slippery", "cliff", "pendulum_g5", "darkroom8")
    """Environments (the paper's are ``TABLE2_ENVS``)."""
    teachers: tuple[str, ...] = ("oracle", "noisy_oracle", "random")
    """Teachers: ``oracle`` (imitation protocol), ``noisy_oracle``, ``random`` (offline protocol)."""
    n_envs: int = 8
    """Copies (rows) of each environment."""
    steps: int = 2000
    """Acting steps per row after the demonstrations (CQL: evaluation steps)."""
    demo_steps: int = 1000
    """Context entries of demonstrations per row (CQL: dataset steps per row)."""
    demo_epsilon: float = 0.5
    """``noisy_oracle``: probability of a uniformly random action."""
    cql: bool = True
    """Run CQL on the same teacher's data."""

    def __post_init__(self) -> None:
        _check_envs("envs", self.envs)
        if isinstance(self.teachers, (str, bytes)) or not self.teachers:
            raise ValueError(f"teachers must be a non-empty list of {sorted(TEACHERS)}, got {self.teachers!r}")
        for t in self.teachers:
            check_choice("teachers", t, TEACHERS)
        if len(set(self.teachers)) != len(self.teachers):
            raise ValueError(f"teachers must not repeat, got {list(self.teachers)}")
        check_int("n_envs", self.n_envs, min_value=1)
        _check_switch2(self.envs, self.n_envs)
        check_int("steps", self.steps, min_value=4)
        check_int("demo_steps", self.demo_steps, min_value=1)
        check_float("demo_epsilon", self.demo_epsilon, min_value=0.0, max_value=1.0)
        if not isinstance(self.cql, bool):
            raise ValueError(f"cql must be true or false, got {self.cql!r}")


MEMORY_ENVS = ("anymdp16", "anymdp32", "anymdp64", "bandit5", "lake4x4", "cliff", "pendulum_g5", "darkroom6",
               "darkroom8")
"""Environments of the memory dump: AnyMDP of three sizes, Gymnasium tasks and DarkRoom."""


@dataclasses.dataclass(frozen=True)
class MemorySettings:
    """The recurrent-memory dump that ``notebooks/tsne_memory.ipynb`` draws (the paper's Figure 5,
    right): the model acts online on tasks of several families and its memory is stored after a
    few numbers of steps (``omnirl.evaluate``'s ``protocol.memory_steps``) into ``eval/memory/``."""

    envs: tuple[str, ...] = MEMORY_ENVS
    """Environments (those the model cannot read are skipped); empty: no dump."""
    n_envs: int = 16
    """Copies (rows) of each environment: points per environment and step."""
    steps: int = 1024
    """Acting steps per row."""
    memory_steps: tuple[int, ...] = (0, 64, 256, 1024)
    """Acting steps after which every row's memory is stored (each at most ``steps``)."""

    def __post_init__(self) -> None:
        if isinstance(self.envs, (str, bytes)):
            raise ValueError(f"envs must be a list of environment names, got {self.envs!r}")
        if self.envs:
            _check_envs("envs", self.envs)
        check_int("n_envs", self.n_envs, min_value=1)
        _check_switch2(self.envs, self.n_envs)
        check_int("steps", self.steps, min_value=1)
        if isinstance(self.memory_steps, (str, bytes)) or not self.memory_steps:
            raise ValueError(f"memory_steps must be a non-empty list of steps, got {self.memory_steps!r}")
        for t in self.memory_steps:
            check_int("memory_steps", t, min_value=0, max_value=self.steps)


@dataclasses.dataclass(frozen=True)
class GymBenchmarkSettings:
    """What ``python -m experiments.gym_benchmark`` runs."""

    checkpoint: str | None = None
    """A trained model to evaluate (a ``.ckpt`` file or a training run directory); ``None``: train
    one with ``dataset`` and ``training``."""
    dataset: DatasetSettings = dataclasses.field(default_factory=lambda: DatasetSettings(
        states="16:64", n_tasks=None, sequences=2048, length=1024, val_sequences=32))
    """The model's training data (``omnirl`` pipeline; ignored with ``checkpoint``)."""
    training: TrainingSettings = dataclasses.field(default_factory=TrainingSettings)
    """The model and its optimisation (ignored with ``checkpoint``, except ``torch_threads``)."""
    online: OnlineSettings = dataclasses.field(default_factory=OnlineSettings)
    """Table 1."""
    offline: OfflineSettings = dataclasses.field(default_factory=OfflineSettings)
    """Table 2."""
    memory: MemorySettings = dataclasses.field(default_factory=MemorySettings)
    """The memory dump of the t-SNE notebook."""

    def __post_init__(self) -> None:
        from omnirl.train.checkpoint import check_checkpoint

        check_checkpoint(self.checkpoint)


PRESETS = presets(GymBenchmarkSettings, {
    "smoke": {
        "dataset": {"states": 16, "n_tasks": None, "sequences": 16, "length": 256, "val_sequences": 4},
        "training": {"data": {"window": 128, "batch_size": 2},
                     "train": {"segment_len": 64, "max_steps": 3, "warmup_steps": 1, "val_every": 3}},
        "online": {"envs": ["lake4x4", "cliff"], "n_envs": 2, "steps": 60},
        "offline": {"envs": ["lake4x4"], "teachers": ["oracle", "random"], "n_envs": 2, "steps": 60, "demo_steps": 40},
        "memory": {"envs": ["anymdp16", "lake4x4", "cliff"], "n_envs": 2, "steps": 32, "memory_steps": [0, 16, 32]}},
    "laptop": {"training": {"data": {"window": 512},
                            "train": {"max_steps": 1200, "val_every": 400, "warmup_steps": 100}}},
    "paper": {
        "dataset": {"states": "16:128", "n_tasks": None, "sequences": 131072, "length": 16384, "val_sequences": 256,
                    "workers": 32},
        "training": {"model": {"backbone": "rwkv7", "size": "paper", "layout": "paper"},
                     "data": {"window": 16384, "batch_size": 4},
                     "train": {"segment_len": 2048, "max_steps": 100_000, "lr": 2e-4, "warmup_steps": 1000,
                               "val_every": 2000},
                     "torch_threads": 0},
        "online": {"n_envs": 64, "steps": 20000},
        "offline": {"envs": list(TABLE2_ENVS), "teachers": ["oracle", "random"], "n_envs": 64, "steps": 40000,
                    "demo_steps": 10000},
        "memory": {"envs": [*MEMORY_ENVS, "anymdp128", "darkroom10"], "n_envs": 64, "steps": 10000,
                   "memory_steps": [0, 100, 1000, 10000]}},
})


# --------------------------------------------------------------------------- figures
def plot_online(online: dict, envs: Sequence[str], path: Path) -> Path:
    """Normalised score against steps: a panel per environment, a line per method."""
    from matplotlib.figure import Figure

    from omnirl.tasks.plots import save_figure

    cols = min(4, len(envs))
    rows = math.ceil(len(envs) / cols)
    fig = Figure(figsize=(3.8 * cols, 2.9 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, env in zip(axes.flat, envs):
        for method, sc in online.get(env, {}).items():
            if sc.get("curve"):
                ax.plot(sc["curve_steps"], sc["curve"], marker="o", ms=3, label=method, color=COLOURS.get(method))
        ax.axhline(0.0, color="grey", lw=0.7, ls=":")
        ax.axhline(1.0, color="grey", lw=0.7, ls="--")
        ax.set_title(env, fontsize=9)
        ax.set_xlabel("steps")
        ax.set_ylabel("normalised score")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(envs):]:
        ax.axis("off")
    fig.suptitle("Online RL (Table 1): 0 random, 1 oracle", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_offline(offline: dict, envs: Sequence[str], teachers: Sequence[str], path: Path) -> Path:
    """Bars of the normalised performance of OmniRL and CQL per environment, a panel per teacher."""
    from matplotlib.figure import Figure

    from omnirl.tasks.plots import save_figure

    fig = Figure(figsize=(1.0 + 1.3 * len(envs) * len(teachers), 3.6))
    axes = fig.subplots(1, len(teachers), squeeze=False)[0]
    for ax, t in zip(axes, teachers):
        methods = sorted({m for e in envs for m in offline.get(e, {}).get(t, {})}, key=lambda m: m != MODEL)
        width = 0.8 / max(1, len(methods))
        for k, m in enumerate(methods):
            x = np.arange(len(envs)) + (k - (len(methods) - 1) / 2) * width
            y = [offline.get(e, {}).get(t, {}).get(m, {}).get("performance", math.nan) for e in envs]
            ax.bar(x, np.nan_to_num(y, nan=0.0), width, label=m, color=COLOURS.get(m))
        ax.axhline(0.0, color="grey", lw=0.7, ls=":")
        ax.axhline(1.0, color="grey", lw=0.7, ls="--")
        ax.set_xticks(np.arange(len(envs)), envs, rotation=20, fontsize=7)
        ax.set_title(f"teacher: {t}", fontsize=9)
        ax.set_ylabel("normalised score, last quarter")
        ax.legend(fontsize=7)
    fig.suptitle("Offline RL (Table 2): OmniRL after demonstrations vs CQL on the same data", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


# --------------------------------------------------------------------------- the experiment
def model_reads(checkpoint: str) -> tuple[int, int]:
    """``(n_obs, n_actions)`` the checkpoint's model reads."""
    from omnirl.train.checkpoint import read_checkpoint

    m = read_checkpoint(checkpoint)["hyper_parameters"]["config"]["model"]
    return int(m["n_obs"]), int(m["n_actions"])


def skip_note(env: str, skipped: dict, model: dict) -> str:
    """The table's note for an environment the model did not run on."""
    if env not in skipped:
        return "not run"
    return f"skipped: {observation_ids(env)} ids, the model reads {model['n_obs']}"


def _fmt(x: float) -> str:
    return pm(x, None)


def describe(s: GymBenchmarkSettings, online: dict, offline: dict, skipped: dict, model: dict,
             memory: dict | None = None) -> str:
    """The finding, from the numbers."""
    parts = [f"Model: {model['source']}, reading {model['n_obs']} observation ids."]
    evaluated = [e for e in s.online.envs if MODEL in online.get(e, {})]
    if skipped:
        parts.append("Skipped for the model (vocabulary too small; baselines still ran): "
                     f"{', '.join(sorted(skipped))}.")
    if evaluated:
        above = [e for e in evaluated if differs(online[e][MODEL], {"performance": 0.0, "se": 0.0}) > 0]
        rising = [e for e in evaluated if differs(*trend(online[e][MODEL])) > 0]
        parts.append(f"Online (Table 1), {len(evaluated)} environments: OmniRL's last-quarter score was resolvably "
                     f"above random play on {len(above)}" + (f" ({', '.join(above)})" if above else "") + ", and "
                     f"rose resolvably from the first to the last quarter of the run (learning in context) on "
                     f"{len(rising)}" + (f" ({', '.join(rising)})" if rising else "") + ".")
        if not rising:
            parts.append("So this model shows no in-context RL on these environments at this scale; a score above "
                         "random that does not rise within the run is behaviour the model brings from training.")
        for b in s.online.baselines:
            better = [e for e in evaluated if differs(online[e][MODEL], online[e][b]) > 0]
            worse = [e for e in evaluated if differs(online[e][MODEL], online[e][b]) < 0]
            mean_m = np.nanmean([online[e][MODEL]["performance"] for e in evaluated])
            mean_b = np.nanmean([online[e][b]["performance"] for e in evaluated])
            parts.append(f"Against {b}: OmniRL better on {len(better)}, worse on {len(worse)}, not resolved on "
                         f"{len(evaluated) - len(better) - len(worse)} (mean score {mean_m:.2f} vs {mean_b:.2f}).")
        parts.append("Per environment (OmniRL / " + " / ".join(s.online.baselines) + "): " + "; ".join(
            f"{e} " + " / ".join(_fmt(online[e][m]["performance"]) for m in (MODEL, *s.online.baselines))
            for e in evaluated) + ".")
    pairs = [(e, t) for e in s.offline.envs for t in s.offline.teachers if MODEL in offline.get(e, {}).get(t, {})]
    if pairs:
        if s.offline.cql:
            better = [p for p in pairs if differs(offline[p[0]][p[1]][MODEL], offline[p[0]][p[1]]["cql"]) > 0]
            worse = [p for p in pairs if differs(offline[p[0]][p[1]][MODEL], offline[p[0]][p[1]]["cql"]) < 0]
            parts.append(f"Offline (Table 2), {len(pairs)} environment-teacher pairs: OmniRL after the demonstrations "
                         f"beat CQL trained on the same data on {len(better)}, lost on {len(worse)}, not resolved on "
                         f"{len(pairs) - len(better) - len(worse)}.")
        gains = []
        for e, t in pairs:
            if e in online and MODEL in online[e] and s.offline.steps == s.online.steps:
                gains.append((e, t, differs(offline[e][t][MODEL], online[e][MODEL])))
        if gains:
            up = [f"{e}/{t}" for e, t, d in gains if d > 0]
            down = [f"{e}/{t}" for e, t, d in gains if d < 0]
            parts.append(f"Against its own online score on the same environment, the demonstrations raised OmniRL's "
                         f"score on {len(up)} of {len(gains)} pairs" + (f" ({', '.join(up)})" if up else "")
                         + (f" and lowered it on {len(down)} ({', '.join(down)})" if down else "") + ".")
    paper_rows = [(e, t) for e, t in pairs if e in PAPER_TABLE2["values"] and t in PAPER_TABLE2["values"][e]]
    def beside(e: str, t: str, m: str) -> str:
        ours, paper = offline[e][t].get(m), PAPER_TABLE2["values"][e][t][m]
        if ours is None:
            return ""
        return (f" {'OmniRL' if m == MODEL else m.upper()} {_fmt(ours['raw_early'])} / {_fmt(ours['raw_late'])} "
                f"(paper {paper[0]:g} / {paper[1]:g})")
    if paper_rows:
        parts.append("Beside the paper's Table 2 (raw return of episodes 0-20 / the last 20): " + "; ".join(
            f"{e}/{t}:" + beside(e, t, MODEL) + ("," + beside(e, t, "cql") if s.offline.cql else "")
            for e, t in paper_rows) + ".")
    unmatched = sorted({e for e, _ in pairs} - set(PAPER_TABLE2["values"]))
    if unmatched:
        parts.append(f"The paper's Table 2 has no values for {', '.join(unmatched)} (its DarkRoom row is 10x10).")
    parts.append("The paper's Table 1 numbers are not available in our copy of the paper, so Table 1 is compared "
                 "only between methods run here.")
    if memory and memory.get("points"):
        parts.append(f"Memory dump for notebooks/tsne_memory.ipynb: {memory['points']} states of {memory['state_size']} "
                     f"floats ({', '.join(memory['groups'])}; after {', '.join(map(str, memory['steps']))} steps)"
                     + (f"; skipped for the model: {', '.join(memory['skipped'])}" if memory["skipped"] else "") + ".")
    return " ".join(parts)


def run(inv: Invocation) -> dict:
    s: GymBenchmarkSettings = inv.settings
    t0, c0 = time.perf_counter(), cpu_seconds()
    timing: dict[str, Any] = {}
    threads = s.training.torch_threads
    if s.checkpoint is None:
        rec = train_models(inv.out, s.dataset, s.training, [MODEL], seed=inv.seed, wandb_mode=inv.wandb_mode)[MODEL]
        checkpoint = rec["checkpoint"]
        timing["train_cpu_seconds"] = rec["cpu_seconds"]
        timing["reused"] = ["train"] if rec["reused"] else []
        last = rec["history"][-1] if rec["history"] else {}
        source = (f"trained here ({s.training.train.max_steps} optimiser steps on {s.dataset.sequences} sequences of "
                  f"AnyMDP tasks with {s.dataset.states} states)")
        model = {"checkpoint": checkpoint, "parameters": rec["run"].get("parameters"),
                 "validation": {k: v for k, v in last.items() if k.startswith("val/") and k.count("/") == 2}}
    else:
        from omnirl.train.checkpoint import resolve_checkpoint

        checkpoint = str(resolve_checkpoint(s.checkpoint))
        source = f"reused from {checkpoint}"
        model = {"checkpoint": checkpoint}
        timing["reused"] = []
    model["n_obs"], model["n_actions"] = model_reads(checkpoint)
    model["source"] = source

    # Table 1: online
    log("online (Table 1)")
    out = inv.out / "eval" / "online"
    summ = evaluate_once(out, threads=threads, checkpoint=checkpoint, envs=list(s.online.envs), protocol="online",
                         n_envs=s.online.n_envs, steps=s.online.steps, seed=inv.seed,
                         baselines=list(s.online.baselines))
    timing["online_cpu_seconds"] = summ["cpu_seconds"]
    timing["reused"] += ["eval/online"] if summ["reused"] else []
    skipped = dict(summ["skipped"])
    online: dict[str, dict] = {}
    for r in summ["rows"]:
        sc = episode_scores(out, r["environment"], r["method"], s.online.n_envs)
        online.setdefault(r["environment"], {})[r["method"]] = {
            **sc, "steps_to_reach": r["steps_to_reach"], "episodes_to_reach": r["episodes_to_reach"],
            "gap_weighted": r["gap_weighted"], "raw_return": r["raw_return"], "random_return": r["random_return"],
            "oracle_return": r["oracle_return"]}

    # Table 2: offline, per teacher
    offline: dict[str, dict] = {}
    timing["offline_cpu_seconds"] = {}
    for t in s.offline.teachers:
        protocol, demonstrator = TEACHERS[t]
        log(f"offline (Table 2), teacher {t}")
        out = inv.out / "eval" / f"offline-{t}"
        fields = {"protocol.demo_steps": s.offline.demo_steps, "protocol.demo_policy": demonstrator,
                  "protocol.demo_epsilon": s.offline.demo_epsilon}
        summ = evaluate_once(out, threads=threads, checkpoint=checkpoint, envs=list(s.offline.envs), protocol=protocol,
                             n_envs=s.offline.n_envs, steps=s.offline.steps, seed=inv.seed,
                             baselines=["cql"] if s.offline.cql else [], **fields)
        timing["offline_cpu_seconds"][t] = summ["cpu_seconds"]
        timing["reused"] += [f"eval/offline-{t}"] if summ["reused"] else []
        skipped.update(summ["skipped"])
        for r in summ["rows"]:
            sc = episode_scores(out, r["environment"], r["method"], s.offline.n_envs)
            offline.setdefault(r["environment"], {}).setdefault(t, {})[r["method"]] = {
                **sc, "random_return": r["random_return"], "oracle_return": r["oracle_return"]}

    # the memory dump of the t-SNE notebook
    memory: dict[str, Any] = {}
    if s.memory.envs:
        log("memory dump (t-SNE)")
        out = inv.out / "eval" / "memory"
        summ = evaluate_once(out, threads=threads, checkpoint=checkpoint, envs=list(s.memory.envs), protocol="online",
                             n_envs=s.memory.n_envs, steps=s.memory.steps, seed=inv.seed, baselines=[],
                             **{"protocol.memory_steps": list(s.memory.memory_steps)})
        timing["memory_cpu_seconds"] = summ["cpu_seconds"]
        timing["reused"] += ["eval/memory"] if summ["reused"] else []
        memory = {"skipped": sorted(summ["skipped"])}
        if (out / "memory.npz").is_file():
            from omnirl.analysis.runs import read_memory

            m = read_memory(out)
            memory.update(file=str((out / "memory.npz").relative_to(inv.out)), points=len(m),
                          state_size=int(m.states.shape[1]), groups=sorted(set(m.group.tolist())),
                          steps=sorted(set(m.step.tolist())))

    figures = [plot_online(online, s.online.envs, inv.out / "table1_curves.png"),
               plot_offline(offline, s.offline.envs, s.offline.teachers, inv.out / "table2_scores.png")]
    table: list[dict] = []
    for e in s.online.envs:
        for m in (MODEL, *s.online.baselines):
            sc = online.get(e, {}).get(m)
            row = {"table": "1", "environment": e, "teacher": "-", "method": m}
            if sc is None:
                table.append({**row, "note": skip_note(e, skipped, model)})
                continue
            table.append({**row, "performance": sc["performance"], "se": sc["se"],
                          "steps_to_reach": sc["steps_to_reach"], "episodes_to_reach": sc["episodes_to_reach"],
                          "raw_early": sc["raw_early"], "raw_late": sc["raw_late"], "paper_early": None,
                          "paper_late": None, "note": ""})
    for e in s.offline.envs:
        for t in s.offline.teachers:
            for m in (MODEL, *(("cql",) if s.offline.cql else ())):
                sc = offline.get(e, {}).get(t, {}).get(m)
                row = {"table": "2", "environment": e, "teacher": t, "method": m}
                if sc is None:
                    table.append({**row, "note": skip_note(e, skipped, model)})
                    continue
                paper = PAPER_TABLE2["values"].get(e, {}).get(t, {}).get(m, [None, None])
                table.append({**row, "performance": sc["performance"], "se": sc["se"], "steps_to_reach": None,
                              "episodes_to_reach": None, "raw_early": sc["raw_early"], "raw_late": sc["raw_late"],
                              "paper_early": paper[0], "paper_late": paper[1],
                              "note": f"late: episodes {max(0, sc['late_window'] - 20)}-{sc['late_window']}"})
    columns = ["table", "environment", "teacher", "method", "performance", "se", "steps_to_reach", "episodes_to_reach",
               "raw_early", "raw_late", "paper_early", "paper_late", "note"]
    table = [{c: r.get(c) for c in columns} for r in table]
    finding = describe(s, online, offline, skipped, model, memory)
    timing["cpu_seconds"] = cpu_seconds() - c0
    results = {"online": online, "offline": offline, "skipped": skipped, "model": model, "memory": memory,
               "paper": {"table1": PAPER_TABLE1, "table2": PAPER_TABLE2}, "timing": timing}
    return finish(inv, NAME, results=results, table=table, figures=figures, finding=finding,
                  seconds=time.perf_counter() - t0)


main = main_of(NAME, PRESETS, run, __doc__)

if __name__ == "__main__":
    raise SystemExit(main())
