"""Step-wise supervision ablation: the data pipelines of Table 4 under three protocols (paper Figure 6).

    python -m experiments.ss_ablation                          # laptop preset (~15-20 CPU-minutes)
    python -m experiments.ss_ablation --preset smoke           # under a minute (the tests run it)
    python -m experiments.ss_ablation --pipelines=[omnirl,dpt] --training.train.max_steps=800
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

"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from experiments._common import Invocation, finish, main_of
from omnirl.evaluate.envs import observation_ids
from omnirl.experiment import DatasetSettings, TrainingSettings, evaluate_once, log, presets, train_models
from omnirl.rundir import cpu_seconds
from experiments._scores import differs, episode_scores, pm, trend
from omnirl._validate import check_choice, check_float, check_int

NAME = "ss_ablation"
PIPELINE_NAMES = ("omnirl", "omnirl_noprior", "ad", "ad_epsilon", "dpt")
"""The pipelines of the paper's Table 4, in the order of its Figure 6."""
PROTOCOL_NAMES = ("online", "offline", "imitation")
PAPER_FIGURE6 = {
    "claims": [
        "OmniRL and OmniRL (w/o a priori) surpass AD, AD-epsilon and DPT by a large gap under online RL, "
        "offline RL and imitation learning (step-wise supervision works).",
        "OmniRL (w/o a priori) lags behind OmniRL by a noticeable gap in all three groups (prior information helps).",
    ],
    "values": None,
    "note": "Figure 6 is a plot; its numbers are not in the paper text we have, so only its claims are compared.",
}


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
        need = observation_ids(self.evaluation.env)
        if need > self.dataset.max_states:
            raise ValueError(f"evaluation.env={self.evaluation.env!r} has {need} states, more than the model reads "
                             f"(dataset.states={self.dataset.states!r}: {self.dataset.max_states})")


PRESETS = presets(SSAblationSettings, {
    "smoke": {
        "pipelines": ["omnirl", "ad"],
        "dataset": {"states": 16, "n_tasks": 16, "sequences": 16, "length": 256, "val_sequences": 4},
        "training": {"data": {"window": 128, "batch_size": 2},
                     "train": {"segment_len": 64, "max_steps": 3, "warmup_steps": 1, "val_every": 3}},
        "evaluation": {"n_envs": 4, "steps": 64, "demo_steps": 48}},
    "laptop": {"training": {"data": {"window": 512},
                            "train": {"max_steps": 420, "warmup_steps": 50, "val_every": 210}, "parallel": 2}},
    "paper": {
        "dataset": {"states": "16:128", "n_tasks": None, "sequences": 16384, "length": 16384, "val_sequences": 256,
                    "workers": 32},
        "training": {"model": {"backbone": "rwkv7", "size": "paper", "layout": "paper"},
                     "data": {"window": 16384, "batch_size": 4},
                     "train": {"segment_len": 2048, "max_steps": 20000, "lr": 2e-4, "warmup_steps": 1000,
                               "val_every": 1000},
                     "torch_threads": 0},
        "evaluation": {"env": "anymdp64", "n_envs": 256, "steps": 10000, "demo_steps": 10000,
                       "baselines": ["tql_ucb", "ppo"]}},
})


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
    parts = [f"{len(s.pipelines)} pipelines, one tiny model each ({s.training.train.max_steps} optimiser steps of "
             f"{s.training.data.batch_size} x {s.training.data.window} steps), evaluated on {ev.n_envs} unseen {ev.env} tasks "
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
    results = {"scores": scores, **mean_perf, "demonstration_gain": gains, "reference": reference,
               "training": training, "paper": {"figure6": PAPER_FIGURE6}, "timing": timing}
    return finish(inv, NAME, results=results, table=table, figures=figures, finding=finding,
                  seconds=time.perf_counter() - t0)


main = main_of(NAME, PRESETS, run, __doc__)

if __name__ == "__main__":
    raise SystemExit(main())
