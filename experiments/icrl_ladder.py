"""The in-context RL ladder: from bandits to MDPs, where does learning from rewards appear?

    python -m experiments.icrl_ladder                         # laptop preset
    python -m experiments.icrl_ladder --preset smoke          # seconds (the tests)
    python -m experiments.icrl_ladder --preset long           # longer training per rung
    python -m experiments.icrl_ladder --rungs='[contextual8]' --curriculum=false   # any field of Settings

Rungs (``RUNGS``; ``rungs`` picks them, in order), each measured on tasks never trained on:

* ``bandit``: ``S = 1`` (``actions`` arms), uniform pulls labelled with the best arm (the bandit
  rung of ``experiments.bandits``);
* ``contextual8``: AnyMDP with 8 states played uniformly at random, labelled by the gamma = 0
  oracle (the best immediate reward in each state): a bandit per state, the rewards of
  ``S * A`` keys to tell apart;
* ``mdp8`` / ``mdp16``: AnyMDP with 8 / 16 states played uniformly at random, labelled by the
  reference oracle (gamma 0.994).

Steps (one run directory, see ``experiments._common``):

1. **Data.** Per rung, ``sequences`` sequences of ``length`` steps, a fresh task per sequence, and
   ``val_sequences`` on unseen tasks (``unseen``: the rung's own pipeline, so its probe: uniform
   play, where no action in the context shows the label).
2. **Training.** Per rung one model (the same network on every rung: its observation ids are the
   largest rung's ``S``) for ``rung_steps`` steps (``train.max_steps`` for each when empty); with
   ``curriculum``, each rung starts from the previous rung's weights (``train.init_from``; the
   first rung from the given ``train.init_from``, e.g. a checkpoint of an earlier ladder's rung,
   also of a ladder of fewer states: the new observation ids start untrained).
   Validation measures the unseen set's loss against position beside the Bayes-optimal reference's
   (``omnirl.agents.reference``) on the same windows.
3. **Online.** The rung's model acts on ``eval_envs`` unseen tasks of the rung's environment
   (``bandit5``, ``anymdp8``, ``anymdp16``) for ``eval_steps`` steps from an empty context
   (``decoding``), beside the rung's baselines on the same tasks (TQL-UCB; also UCB1 on the
   bandit, and UCB1 per state on the contextual bandit): the score in the first and the last
   quarter of the steps, and the curve against step. The score is the rung's (``Rung.contextual``):
   the normalised episode return (0 random, 1 the reference oracle), or on the contextual bandit
   the immediate-regret score (0 random, 1 the best immediate action in every state), the
   objective its gamma-0 labels teach (a policy greedy for the immediate reward can score below
   random on the episode return; the README gives how often). The model is asked for its
   labels' oracle (``omnirl.experiment.label_prompt``: prompt 0 on the contextual bandit).
4. **The probe on own play** (``omnirl.evaluate.rollouts``): the model plays the sequences of the
   probe set (the same unseen tasks and seeds) with the online decoding, and its policy loss on
   those contexts is scored against the reference's on the same contexts, by quarter, as the probe
   is. Where it falls short of the probe's, the model reads the contexts its own play makes worse
   than the uniform play it was trained on.
5. **Report.** Per rung: the probe's first- and last-quarter loss (model and reference), the gain
   (the model's drop over the reference's) and the last-quarter share of the way from uniform to
   the reference, and the same on own play; the online scores; whether in-context RL from rewards
   appears there (``claims``); and the highest rung where it does. ``icrl_ladder.png``: per rung,
   the probe curves and the online curves.

In-context RL from rewards appears on a rung (``claims``) when the probe's loss falls below uniform
with context (``CONTEXT_DROP``), the gain and the last-quarter share reach ``MIN_GAIN``, and online
the last-quarter score is above random by two standard errors and above the first quarter's.

Presets (``PRESETS``): ``laptop`` (the default; about 25 minutes on one core), ``long`` (2.5 times
the training of the MDP rungs),
``smoke`` (seconds: checks the pipeline) and ``paper`` (GPU sizes; not run here).
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from experiments._common import Invocation, finish, main_of
from experiments._scores import (CONTEXT_DROP, MIN_GAIN, differs, finite, online_scores, pm, probe_claims,
                                 probe_numbers, trend)
from experiments.task_scaling import limit_y
from omnirl.experiment import (RUNGS, SHARD_SIZE, Decoding, Rung, check_training, dataset, evaluate_once, label_prompt,
                               log, presets, train_many, training_config, validation_sets)
from omnirl.rundir import cpu_seconds
from omnirl.train.config import DataSection, ModelSection, TrainSection

NAME = "icrl_ladder"
ONLINE_BINS = 8
"""Bins of the online learning curves."""
MODEL = "omnirl"
BASELINE = "tql_ucb"
"""The baseline every rung reports (``Rung.baselines`` adds UCB1 where it applies)."""




@dataclasses.dataclass(frozen=True)
class Settings:
    """The ladder's settings (the defaults are the laptop preset)."""

    rungs: tuple[str, ...] = ("bandit", "contextual8", "mdp8")
    """Rungs to climb, in order (names of ``RUNGS``)."""
    curriculum: bool = True
    """Each rung's model starts from the previous rung's weights (else from ``train.init_from``:
    by default from scratch). The first rung starts from ``train.init_from`` either way."""
    rung_steps: tuple[int, ...] = (300, 600, 600)
    """Training steps per rung (one per rung; empty: ``train.max_steps`` for every rung)."""
    actions: int = 5
    """Actions ``A`` of every task (and arms of the bandits)."""
    sequences: int = 2048
    """Training sequences per rung (a fresh task each)."""
    pipeline: str = ""
    """Training pipeline of every rung instead of its own uniform-play one (``""``), e.g.
    ``myopic_mix`` on the contextual bandit (``omnirl.data.pipelines``); the probe stays the rung's
    own pipeline on unseen tasks (validation set ``probe_set``)."""
    length: int = 1025
    """Steps per stored sequence (episode-end markers included); at least ``data.window + 1``."""
    val_sequences: int = 64
    """Sequences of each rung's unseen validation set."""
    model: ModelSection = dataclasses.field(default_factory=ModelSection)
    """The model (``omnirl.train.config.ModelSection``; its sizes are the ladder's)."""
    data: DataSection = dataclasses.field(default_factory=DataSection)
    """The training windows (``window``, ``batch_size``); the datasets are the ladder's."""
    train: TrainSection = dataclasses.field(default_factory=TrainSection)
    """The optimisation of every rung (``max_steps`` when ``rung_steps`` is empty; ``val_every``
    divides each rung's steps)."""
    threads: int = 1
    """Torch threads of training and evaluation (0: the machine's cores)."""
    workers: int = 1
    """Data-generation processes."""
    eval_envs: int = 64
    """Unseen tasks of each rung's online evaluation."""
    eval_steps: int = 500
    """Acting steps per task online."""
    decoding: Decoding = dataclasses.field(default_factory=Decoding)
    """How the model acts online (``omnirl.experiment.Decoding``: temperature 1 -> 0.5 over 250
    steps, own actions tagged 6, the tag of the uniform play it was trained on)."""

    def __post_init__(self) -> None:
        from omnirl._validate import check_choice, check_int
        from omnirl.data.pipelines import PIPELINES

        if not self.rungs:
            raise ValueError("rungs must name at least one rung")
        for r in self.rungs:
            check_choice("rungs", r, RUNGS)
        if self.rung_steps and len(self.rung_steps) != len(self.rungs):
            raise ValueError(f"rung_steps must give one step count per rung ({len(self.rungs)}), got "
                             f"{list(self.rung_steps)}")
        for n in self.steps:
            check_int("rung_steps", n, min_value=1)
            if n % min(self.train.val_every, n):
                raise ValueError(f"rung_steps: {n} must be a multiple of train.val_every={self.train.val_every}")
        check_int("actions", self.actions, min_value=2)
        if self.pipeline:
            check_choice("pipeline", self.pipeline, PIPELINES)
        for f in ("sequences", "val_sequences", "workers", "eval_envs", "eval_steps"):
            check_int(f, getattr(self, f), min_value=1)
        check_int("threads", self.threads, min_value=0)
        check_training(self)
        if self.length < self.data.window + 1:
            raise ValueError(f"length={self.length} must be >= data.window + 1 = {self.data.window + 1}")

    @property
    def steps(self) -> tuple[int, ...]:
        """Training steps of each rung."""
        return tuple(self.rung_steps) or (self.train.max_steps,) * len(self.rungs)

    def train_pipeline(self, rung: str) -> str:
        """The training pipeline of ``rung``."""
        return self.pipeline or RUNGS[rung].pipeline

    def probe_set(self, rung: str) -> str:
        """The validation set holding ``rung``'s probe: ``unseen`` (the training pipeline on unseen
        tasks) when it trains on its own pipeline, else the probe set named after that pipeline."""
        return "unseen" if self.train_pipeline(rung) == RUNGS[rung].pipeline else RUNGS[rung].pipeline

    @property
    def n_obs(self) -> int:
        """The model's observation ids: the largest rung's ``S``."""
        return max(RUNGS[r].states for r in self.rungs)


PRESETS = presets(Settings, {
    "smoke": {"rungs": ["bandit", "contextual8"], "rung_steps": [4, 4], "sequences": 16, "length": 129,
              "val_sequences": 4, "eval_envs": 4, "eval_steps": 120,
              "model": {"backbone": "rwkv7"}, "data": {"window": 128, "batch_size": 4},
              "train": {"segment_len": 64, "lr": 3e-3, "warmup_steps": 1, "val_every": 2}},
    "laptop": {"model": {"backbone": "rwkv7"},
               "train": {"lr": 1e-3, "warmup_steps": 30, "val_every": 100}},
    "long": {"model": {"backbone": "rwkv7"}, "rung_steps": [300, 1500, 1500],
             "train": {"lr": 1e-3, "warmup_steps": 100, "val_every": 300}},
    "paper": {"rungs": ["bandit", "contextual8", "mdp8", "mdp16"], "rung_steps": [2000, 20000, 20000, 20000],
              "sequences": 65536, "length": 4001, "val_sequences": 256, "threads": 0, "workers": 32,
              "eval_envs": 256, "eval_steps": 2000,
              "model": {"backbone": "rwkv7", "size": "paper", "layout": "paper"},
              "data": {"window": 4000, "batch_size": 16},
              "train": {"segment_len": 2000, "lr": 2e-4, "warmup_steps": 2000, "val_every": 1000}},
})
"""The presets (see the module docstring)."""


# --------------------------------------------------------------------------- numbers
def claims(probe: Mapping[str, float], online: Mapping[str, Any], actions: int) -> dict[str, bool]:
    """What a rung's numbers show (see the module docstring)."""
    model = online[MODEL]
    late, early = trend(model)
    c = {
        **probe_claims(probe, actions),
        "online_above_random": bool(finite(model["performance"]) and finite(model["se"])
                                    and model["performance"] > 2 * model["se"]),
        "online_rises": differs(late, early) > 0,
    }
    c["icrl_appears"] = all(c.values())
    return c


def warm_start(checkpoint: str) -> str:
    """Where a rung's starting weights come from, in words: the rung whose training directory holds
    ``checkpoint`` (``.../train/<rung>/checkpoints/last.ckpt``), or the path itself."""
    path = Path(checkpoint)
    rung = path.parent.parent.name if path.parent.name == "checkpoints" else ""
    return f"the {rung} rung's weights" if rung in RUNGS else str(path)


def own_play_probe(s: Settings, checkpoint: str, probe_dir: str, out: Path, prompt: int, seed: int) -> dict[str, float]:
    """The probe on own play (see the module docstring): the sequences of ``probe_dir`` played by
    the model at ``checkpoint`` with the online decoding and ``prompt`` into ``out``, scored by
    ``omnirl.evaluate.rollouts.context_probe``."""
    from omnirl._threads import torch_threads
    from omnirl.evaluate.rollouts import ModelActors, context_probe, play_like

    protocol = dataclasses.replace(s.decoding.protocol(s.length), prompt=prompt)
    with torch_threads(s.threads or 1):
        actors = ModelActors(checkpoint, protocol, seed, batch=s.val_sequences)
        return context_probe(actors.model, play_like(probe_dir, out, actors))


def finding_text(s: Settings, per_rung: Sequence[Mapping[str, Any]]) -> str:
    """The run's finding, from its numbers and ``claims``."""
    parts = []
    for r in per_rung:
        p, o, m, b = r["probe"], r["own_probe"], r["online"][MODEL], r["online"][BASELINE]
        parts.append(
            f"{r['rung']} ({RUNGS[r['rung']].what}; {r['steps']} steps"
            f"{', from ' + warm_start(r['init_from']) if r['init_from'] else ''}): probe {p['model_q1']:.3f} -> "
            f"{p['model_q4']:.3f} nats (reference {p['reference_q1']:.3f} -> {p['reference_q4']:.3f}, uniform "
            f"{math.log(s.actions):.3f}; gain {p['gain']:.2f}, last-quarter share {p['share_q4']:.2f}; on its own "
            f"play {o['model_q1']:.3f} -> {o['model_q4']:.3f}, reference {o['reference_q1']:.3f} -> "
            f"{o['reference_q4']:.3f}, share {o['share_q4']:.2f}); online "
            f"{'immediate-regret ' if RUNGS[r['rung']].contextual else ''}"
            f"score {pm(m['first_quarter'], m['first_quarter_se'])} -> {pm(m['performance'], m['se'])} "
            f"(TQL-UCB {pm(b['first_quarter'], b['first_quarter_se'])} -> {pm(b['performance'], b['se'])}"
            + (f", UCB1 {pm(u['first_quarter'], u['first_quarter_se'])} -> {pm(u['performance'], u['se'])}"
               if (u := r["online"].get("ucb1")) else "") + "): "
            + ("in-context RL from rewards appears." if r["claims"]["icrl_appears"] else
               "in-context RL from rewards does not appear (" + ", ".join(
                   k for k, v in r["claims"].items() if k != "icrl_appears" and not v) + " not met)."))
    reached = [r["rung"] for r in per_rung if r["claims"]["icrl_appears"]]
    parts.append(f"Highest rung where it appears: {reached[-1] if reached else 'none'}.")
    return " ".join(parts)


def plot(s: Settings, per_rung: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Per rung (a column): the probe loss against position, and the online score against step."""
    import numpy as np
    from matplotlib.figure import Figure

    from omnirl.tasks.plots import save_figure

    n = len(per_rung)
    fig = Figure(figsize=(4.2 * n, 7))
    ax = fig.subplots(2, n, squeeze=False)
    arr = lambda x: np.array([np.nan if v is None else v for v in x], dtype=float)  # noqa: E731
    for i, r in enumerate(per_rung):
        c = r["curve"]
        ax[0, i].plot(arr(c["position"]), arr(c["all"]), "-o", ms=3, label="model")
        if "reference" in c:
            ax[0, i].plot(arr(c["position"]), arr(c["reference"]), "-s", ms=3, color="black", label="reference")
        ax[0, i].axhline(math.log(s.actions), color="grey", lw=0.8, ls=":", label="uniform")
        limit_y(ax[0, i], 0.0, 2 * math.log(s.actions))
        ax[0, i].set(title=f"{r['rung']}: probe", xlabel="position in context", ylabel="policy loss (nats)")
        for method, style in ((MODEL, "-o"), (BASELINE, "--"), ("ucb1", ":")):
            if method in r["online"]:
                o = r["online"][method]
                ax[1, i].plot(o["curve_steps"], arr(o["curve"]), style, ms=3, label=method)
        ax[1, i].axhline(0.0, color="grey", lw=0.8, ls=":")
        contextual = RUNGS[r["rung"]].contextual
        ax[1, i].set(title=f"{r['rung']}: online on {RUNGS[r['rung']].env}", xlabel="step",
                     ylabel="immediate-regret score" if contextual else "normalised score")
        for a in ax[:, i]:
            a.legend(fontsize=7)
    fig.suptitle(f"In-context RL ladder: {s.model.backbone} ({s.model.size}, {s.model.layout})"
                 + (", curriculum" if s.curriculum else ""))
    fig.tight_layout()
    return save_figure(fig, path)


def table_rows(per_rung: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per rung."""
    rows = []
    for r in per_rung:
        p, m, b = r["probe"], r["online"][MODEL], r["online"][BASELINE]
        rows.append({"rung": r["rung"], "steps": r["steps"], "probe_q1": p["model_q1"], "probe_q4": p["model_q4"],
                     "ref_q1": p["reference_q1"], "ref_q4": p["reference_q4"], "gain": p["gain"],
                     "share_q4": p["share_q4"], "own_q4": r["own_probe"]["model_q4"],
                     "own_ref_q4": r["own_probe"]["reference_q4"], "own_share_q4": r["own_probe"]["share_q4"],
                     "online_q1": m["first_quarter"], "online_q4": m["performance"],
                     "online_se": m["se"], "tql_ucb_q4": b["performance"],
                     "ucb1_q4": r["online"].get("ucb1", {}).get("performance", math.nan),
                     "score": "immediate" if RUNGS[r["rung"]].contextual else "episode",
                     "icrl": r["claims"]["icrl_appears"]})
    return rows


# --------------------------------------------------------------------------- the study
def run(inv: Invocation) -> dict:
    """The experiment (see the module docstring); returns its summary."""
    s: Settings = inv.settings
    t0, c0 = time.perf_counter(), cpu_seconds()
    cpu = {"data": 0.0, "train": 0.0, "eval": 0.0}
    per_rung: list[dict[str, Any]] = []
    previous = s.train.init_from  # the first rung's starting weights (None: from scratch)
    for name, steps in zip(s.rungs, s.steps):
        rung = RUNGS[name]
        c1 = cpu_seconds()
        root = inv.out / "data" / name
        train_dir = dataset(root / "train", n_tasks=None, sequences=s.sequences, length=s.length, states=rung.states,
                            actions=s.actions, pipeline=s.train_pipeline(name), seed=inv.seed, workers=s.workers,
                            shard_size=SHARD_SIZE)
        probe_set = s.probe_set(name)
        val = validation_sets(train_dir, root / "val", s.val_sequences,
                              probes=() if probe_set == "unseen" else (probe_set,))
        c2 = cpu_seconds()
        config = training_config(s, train_dir=train_dir, validation=val, seed=inv.seed, n_obs=s.n_obs,
                                 n_actions=s.actions)
        init_from = previous if s.curriculum else s.train.init_from
        config = dataclasses.replace(config, train=dataclasses.replace(
            config.train, max_steps=steps, val_every=min(s.train.val_every, steps), init_from=init_from))
        log(f"rung {name}: training {steps} steps" + (f" from {warm_start(init_from)}" if init_from else ""))
        (r,) = train_many([(inv.out / "train" / name, config)], threads=s.threads, wandb_mode=inv.wandb_mode)
        previous = r["checkpoint"]
        c3 = cpu_seconds()
        out = inv.out / "eval" / name
        prompt = label_prompt(s.train_pipeline(name))
        evaluate_once(out, threads=s.threads or 1, checkpoint=r["checkpoint"], envs=[rung.env], protocol="online",
                      n_envs=s.eval_envs, steps=s.eval_steps, seed=inv.seed, baselines=list(rung.baselines),
                      contextual_bandit=rung.contextual, wandb_mode=inv.wandb_mode, **s.decoding.overrides(),
                      **{"protocol.prompt": prompt})
        online = {m: online_scores(out, rung.env, m, s.eval_envs, contextual=rung.contextual, bins=ONLINE_BINS)
                  for m in (MODEL, *rung.baselines)}
        probe = probe_numbers(r["history"], probe_set, s.actions)
        own = own_play_probe(s, r["checkpoint"], val[probe_set], out / "own_play", prompt, inv.seed)
        log(f"rung {name}: probe on own play {own['model_q1']:.3f} -> {own['model_q4']:.3f} nats (reference "
            f"{own['reference_q1']:.3f} -> {own['reference_q4']:.3f}), share {own['share_q4']:.2f}")
        per_rung.append({"rung": name, "steps": steps, "init_from": init_from, "probe": probe, "own_probe": own,
                         "online": online,
                         "curve": r["curves"].get(probe_set, {"position": [], "all": []}),
                         "claims": claims(probe, online, s.actions), "history": r["history"]})
        cpu["data"] += c2 - c1
        cpu["train"] += c3 - c2
        cpu["eval"] += cpu_seconds() - c3
    finding = finding_text(s, per_rung)
    figure = plot(s, per_rung, inv.out / "icrl_ladder.png")
    cpu["total"] = cpu_seconds() - c0
    reached = [r["rung"] for r in per_rung if r["claims"]["icrl_appears"]]
    results = {"per_rung": {r["rung"]: r for r in per_rung}, "highest_rung": reached[-1] if reached else None,
               "thresholds": {"context_drop": CONTEXT_DROP, "min_gain": MIN_GAIN}, "cpu_seconds": cpu,
               "wall_seconds": time.perf_counter() - t0}
    log(f"icrl_ladder: {results['wall_seconds']:.0f} s wall, {cpu['total']:.0f} CPU-s")
    return finish(inv, NAME, results=results, table=table_rows(per_rung), figures=[figure], finding=finding,
                  seconds=results["wall_seconds"])


main = main_of(NAME, PRESETS, run, __doc__)

if __name__ == "__main__":
    raise SystemExit(main())

__all__ = ["PRESETS", "RUNGS", "Rung", "Settings", "claims", "main", "run", "table_rows"]
