"""Task-count ablation (the paper's §4.3 and Figure 7): one model per number of training tasks N.

    python -m experiments.task_scaling                            # laptop preset (what `make run` runs)
    python -m experiments.task_scaling --preset smoke             # about 15 seconds (the tests)
    python -m experiments.task_scaling --preset paper             # GPU cluster sizes (documented, not run here)
    python -m experiments.task_scaling --preset paper --n_tasks=[1000]   # one N: a run of sweeps/task_scaling.yaml
    python -m experiments.task_scaling --train.max_steps=800 --out runs/ts-long   # any field of Settings

Steps (everything lands in one run directory, see ``experiments._common``):

1. **Data.** For every N of ``n_tasks``: a dataset of ``sequences`` sequences of ``length`` steps
   (the ``omnirl`` pipeline: the full behaviour mix, oracle labels) cycling over a task set of
   exactly N AnyMDP tasks. The task sets come from one task seed, so they are nested: the N = 16
   tasks are the first 16 of the N = 256 set, and so on. Every dataset has the same number of
   sequences, so a small N has many sequences per task (it can be memorised) and the largest N
   about one. Validation sets: ``val_sequences`` new sequences on the training tasks (``seen``),
   on new tasks (``unseen``, the same tasks for every N), and the probe (``probe``: the unseen
   tasks played by one random policy for the whole sequence, oracle-labelled: the
   ``random_probe`` pipeline). With ``world`` a rung of the in-context RL ladder
   (``omnirl.experiment.RUNGS``), the tasks are the rung's (bandits, or AnyMDP with 8 or 16
   states), played uniformly at random and labelled by the rung's oracle; its ``unseen`` set is the
   probe, and there is no separate one.
2. **Training.** One model per N, all with the same backbone, size and budget (``train.max_steps``
   batches of ``data.batch_size`` windows of ``data.window`` steps), up to ``parallel`` at once. Every
   ``val_every`` steps the policy loss (cross-entropy against the oracle label) is measured on
   the validation sets, against position in the context and split by who acted.
3. **Online RL.** Every model acts on ``eval_envs`` unseen tasks of its world (``anymdp{states}``,
   or the rung's environment) for
   ``eval_steps`` steps with an empty context (``python -m omnirl.evaluate``'s online protocol,
   its own actions fed back with the tag and temperature of ``decoding``); TQL-UCB runs on
   the same tasks. Score: normalised return (random policy 0, oracle 1) of the episodes that
   ended in the last quarter, per task then averaged, with its standard error over tasks; also
   its median over tasks and the gap-weighted score (a few tasks whose random and oracle returns
   nearly coincide can move the task mean by a lot; they cannot move these two).
4. **Report.** A table (one row per N; ``ref Q1``/``ref Q4``: the Bayes-optimal reference's
   first- and last-quarter loss on the unseen windows, ``gain``: the share of its drop the model
   makes, also for the probe), ``task_scaling.png`` (Figure 7's quantities: loss against
   position and against training step, seen and unseen; unseen loss by behaviour; the online
   curves next to TQL-UCB's), ``summary.json`` and the experiment's W&B run; the training and
   evaluation runs have their own (offline without credentials).

What the numbers are read for (the ``finding`` is computed from them, thresholds below):

* **Memorisation.** Seen-task loss far below unseen-task loss (gap > ``MEMORISED_GAP``) means the
  model stores its training tasks and recognises them from context; the gap closing
  (gap < ``CLOSED_GAP``: unseen tasks no worse than seen ones beyond that) at the largest N means
  it can no longer do so and must generalise. A negative gap is no memorisation: the two
  validation sets are samples of tasks, whose mean difficulty differs by up to about a tenth of a
  nat at 128 sequences.
* **In-context RL or imitation.** On unseen tasks, loss falling with position on steps where a
  *random* policy acted can only come from inferring the task's good actions from the rewards in
  the context: evidence of in-context RL. Loss falling only on steps where a near-oracle acted
  is in-context imitation (copying the actions the context shows). A loss improves if its
  last-quarter mean is ``CONTEXT_DROP`` nats below both its first-quarter mean and the uniform
  guess ``ln A``. A training sequence mixes behaviours, so the context of a random step may also
  show near-oracle actions in the same state; the probe's context shows none, so its loss
  improving is the evidence of in-context RL in the loss.
* **Online.** Above random means the last-quarter task mean exceeds 0 by two standard errors;
  rising means the last quarter beats the first by more than ``ONLINE_RISE``; matching TQL-UCB
  means a gap-weighted score at least TQL-UCB's. In-context RL from rewards is claimed only when
  the probe's loss improves with the gain ``MIN_GAIN`` of the Bayes-optimal reference's drop and the
  online score is above random and rising.

Presets (``PRESETS``):

* ``laptop`` (default): the highest rung of the in-context RL ladder where learning from rewards
  appears at laptop scale (``python -m experiments.icrl_ladder``; README), the ``bandit`` rung:
  N = 16, 256, 4096 five-armed bandits; 4096 sequences of 1025 uniform pulls per dataset (256, 16
  and 1 per task), labelled with the best arm; the ``tiny`` RWKV-7 in the ``paired`` layout
  (each reward in its action's token, no world model), 300 steps of 8 windows of 1024 steps at
  lr 1e-3, two models at once on one thread each; 128 sequences per validation set; online on 64
  unseen ``bandit5`` bandits for 256 pulls (temperature 1 -> 0.5 over 128 pulls, its own pulls
  tagged 6, as the uniform play it learned from). What it measured is in the README's studies
  table.
* ``laptop_anymdp``: the same three N on AnyMDP tasks with 16 states and the full behaviour mix
  (the paper's setting at laptop size): 4096 sequences of 1025 steps per dataset, the tiny RWKV-7
  in the compact layout, 400 steps; online on 64 unseen anymdp16 tasks for 1024 steps. It shows
  memorisation and in-context imitation, not learning from rewards (README).
* ``smoke``: N = 4 and 64, tiny data and 8 training steps: checks the pipeline (about 15 seconds).
* ``paper``: N = 100, 1K, 10K, 128K; 128K sequences of 12,001 steps; the paper's RWKV-7 (Table 6,
  18 blocks, hidden 512) with the paper's 5-token layout, segments of 2,000 steps (six per window,
  C.2), AdamW at 2e-4 with 2,000 warm-up steps, bf16, all GPUs of the node; online for 12,000
  steps on 64 tasks. Sized for a GPU cluster; not run here.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from experiments._common import Invocation, finish, main_of
from experiments._scores import (CONTEXT_DROP, MIN_GAIN, context_improves, finite, online_scores, paired_se,
                                 probe_claims, probe_numbers)
from omnirl.data.generate import PROBE
from omnirl.experiment import (RUNGS, SHARD_SIZE, Decoding, Rung, check_training, dataset, evaluate_once, log,
                               presets, train_many, training_config, validation_sets)
from omnirl.rundir import cpu_seconds
from omnirl.train.config import DataSection, ModelSection, TrainSection

NAME = "task_scaling"
MEMORISED_GAP = 0.1
"""Nats: a seen-unseen gap (unseen minus seen final validation loss) above this is memorisation."""
CLOSED_GAP = 0.05
"""Nats: a gap below this is closed (unseen tasks no worse than seen ones beyond it)."""
ONLINE_RISE = 0.05
"""Normalised score: an online curve rises if its last quarter beats its first by this much."""
PAPER_CLAIM = ("The paper (its Figure 7): with few training tasks the model memorises them, with many "
               "(tens of thousands of AnyMDP tasks) it generalises and learns from rewards in context on unseen tasks.")
"""The claim the run is read beside."""
ONLINE_BINS = 16
"""Bins of the online learning curves (``online_scores``)."""


def check_training_fields(s: Any) -> None:
    """Validate the data, model and optimiser fields of ``Settings`` and ``arch_comparison.Settings``
    (the training rules once, by ``TrainConfig``), naming the bad field."""
    from omnirl._validate import check_int

    check_int("actions", s.actions, min_value=2)
    for f in ("sequences", "val_sequences", "parallel", "workers"):
        check_int(f, getattr(s, f), min_value=1)
    check_int("threads", s.threads, min_value=0)
    check_training(s)
    if s.length < s.data.window + 1:
        raise ValueError(f"length={s.length} must be >= data.window + 1 = {s.data.window + 1}")
    if s.train.max_steps % s.train.val_every:
        raise ValueError(f"train.max_steps={s.train.max_steps} must be a multiple of train.val_every="
                         f"{s.train.val_every}")


@dataclasses.dataclass(frozen=True)
class Settings:
    """The task-count ablation's settings (the defaults are the laptop preset)."""

    n_tasks: tuple[int, ...] = (16, 256, 4096)
    """Training task counts N: one dataset and one model each (a sweep run may give one)."""
    world: str = "anymdp"
    """The tasks and their play: ``anymdp`` (AnyMDP tasks of ``states`` states, the full behaviour
    mix, the paper's setting; its probe is ``random_probe``), or a rung of the in-context RL ladder
    (``omnirl.experiment.RUNGS``: ``bandit``, ``contextual8``, ``mdp8``, ``mdp16``): the rung's tasks
    played uniformly at random, labelled by its oracle, online on its environment; its unseen set is
    its probe."""
    states: int = 16
    """States S of every task of the ``anymdp`` world (16, 32, 64 or 128: the online evaluation uses
    ``anymdp{S}``); a rung has its own."""
    actions: int = 5
    """Actions A of every task."""
    sequences: int = 4096
    """Sequences per training dataset, the same for every N (at least the largest N, so every
    task is played)."""
    length: int = 1025
    """Steps per stored sequence (end markers included); at least ``window + 1``. With exactly
    ``window + 1`` every training window starts at a task's first step, like validation."""
    val_sequences: int = 128
    """Sequences per validation set (seen and unseen): the gap compares two samples of tasks,
    whose mean difficulty differs by up to about a tenth of a nat even at 128."""
    model: ModelSection = dataclasses.field(default_factory=ModelSection)
    """The model of every N (``omnirl.train.config.ModelSection``; its sizes are the data's)."""
    data: DataSection = dataclasses.field(default_factory=DataSection)
    """The training windows (``window``: the context length T of training and validation;
    ``batch_size``); the datasets are the experiment's."""
    train: TrainSection = dataclasses.field(default_factory=TrainSection)
    """The optimisation of every model (``max_steps`` a multiple of ``val_every``)."""
    parallel: int = 2
    """Training runs at once (each in its own process when more than one)."""
    threads: int = 0
    """Torch threads per training run and of the evaluation (0: the cores divided by ``parallel`` for
    training, one for the evaluation)."""
    workers: int = 2
    """Processes generating the data."""
    eval_envs: int = 64
    """Unseen tasks of the online evaluation."""
    eval_steps: int = 1024
    """Acting steps per task of the online evaluation (the context grows to this length)."""
    decoding: Decoding = Decoding(t_initial=1.0, t_final=1.0, own_tag=7)
    """How the models act online (``omnirl.experiment.Decoding``): by default at temperature 1
    throughout, their own actions tagged 7 (unknown); a rung's preset takes the ladder's decoding."""

    def __post_init__(self) -> None:
        from omnirl._validate import check_choice, check_int
        from omnirl.evaluate.envs.anymdp import SIZES

        if not self.n_tasks:
            raise ValueError("n_tasks must name at least one task count, got none")
        for n in self.n_tasks:
            check_int("n_tasks", n, min_value=1)
        if len(set(self.n_tasks)) != len(self.n_tasks):
            raise ValueError(f"n_tasks must not repeat a count, got {list(self.n_tasks)}")
        check_choice("world", self.world, ("anymdp", *RUNGS))
        check_choice("states", self.states, SIZES)
        check_training_fields(self)
        for f in ("eval_envs", "eval_steps"):
            check_int(f, getattr(self, f), min_value=1)
        if self.sequences < max(self.n_tasks):
            raise ValueError(f"sequences={self.sequences} must be >= the largest of n_tasks ({max(self.n_tasks)}), "
                             "so that every task of every set is played")

    @property
    def rung(self) -> Rung:
        """The world's tasks, data pipeline and online environment (``anymdp``: ``states`` states, the
        full behaviour mix)."""
        if self.world != "anymdp":
            return RUNGS[self.world]
        return Rung(self.states, "omnirl", f"anymdp{self.states}", f"AnyMDP with {self.states} states")

    @property
    def task_states(self) -> int:
        """States ``S`` of the tasks (and the model's observation ids)."""
        return self.rung.states

    @property
    def pipeline(self) -> str:
        """The training data's pipeline."""
        return self.rung.pipeline

    @property
    def env(self) -> str:
        """The online environment (unseen tasks of the world)."""
        return self.rung.env

    @property
    def probe(self) -> str:
        """The validation set whose context shows no good action: ``probe`` (the ``anymdp`` world's
        random-policy probe) or ``unseen`` (a rung's own uniform play)."""
        return PROBE if self.world == "anymdp" else "unseen"


PRESETS = presets(Settings, {
    "smoke": {"n_tasks": [4, 64], "sequences": 64, "length": 129, "val_sequences": 8, "parallel": 1, "threads": 1,
              "workers": 1, "eval_envs": 4, "eval_steps": 128, "model": {"backbone": "rwkv7"},
              "data": {"window": 128, "batch_size": 4},
              "train": {"segment_len": 64, "max_steps": 8, "warmup_steps": 2, "val_every": 4}},
    "laptop": {"world": "bandit", "eval_steps": 256,
               "model": {"backbone": "rwkv7", "layout": "paired", "world_model": False},
               "train": {"max_steps": 300, "lr": 1e-3, "warmup_steps": 30, "val_every": 100},
               "decoding": {"t_initial": 1.0, "t_final": 0.5, "t_steps": 128, "own_tag": 6}},
    "laptop_anymdp": {"model": {"backbone": "rwkv7"},
                      "train": {"max_steps": 400, "warmup_steps": 50, "val_every": 100}},
    "paper": {"n_tasks": [100, 1_000, 10_000, 128_000], "sequences": 128_000, "length": 12_001,
              "val_sequences": 256, "parallel": 1, "workers": 32, "eval_envs": 64, "eval_steps": 12_000,
              "model": {"backbone": "rwkv7", "size": "paper", "layout": "paper"},
              "data": {"window": 12_000, "batch_size": 12},
              "train": {"segment_len": 2_000, "max_steps": 40_000, "lr": 2e-4, "warmup_steps": 2_000,
                        "val_every": 1_000, "precision": "bf16-mixed"}},
})
"""The presets (see the module docstring)."""


# --------------------------------------------------------------------------- reading the runs

def _mean(values: Sequence[Any]) -> float:
    vals = [float(v) for v in values if finite(v)]
    return sum(vals) / len(vals) if vals else float("nan")


def quarter_means(curve: Sequence[Any]) -> tuple[float, float]:
    """Mean of a binned loss-against-position curve over its first and its last quarter of bins
    (``None``/NaN bins skipped; NaN if a quarter has none)."""
    n = len(curve)
    q = max(1, n // 4)
    return _mean(curve[:q]), _mean(curve[n - q:])


def model_numbers(run: Mapping[str, Any]) -> dict[str, Any]:
    """The validation numbers of one training run (``train_many``'s entry): final losses, the
    per-behaviour quarter means of the latest curves, the curves and the history."""
    last = run["history"][-1]
    out: dict[str, Any] = {"parameters": run["run"]["parameters"], "step": last["step"],
                           "tokens_seen": last["tokens_seen"], "train_cpu_seconds": run.get("cpu_seconds"),
                           "train_wall_seconds": run.get("wall_seconds")}
    for name, curves in run["curves"].items():
        out[f"{name}_policy_loss"] = last.get(f"val/{name}/policy_loss", float("nan"))
        out[f"{name}_first_steps"] = last.get(f"val/{name}/policy_loss_first_steps", float("nan"))
        out[f"{name}_last_quarter"] = last.get(f"val/{name}/policy_loss_last_quarter", float("nan"))
        for behaviour in ("all", "random", "oracle", "reference"):
            q1, q4 = quarter_means(curves.get(behaviour, []))
            out[f"{name}_{behaviour}_q1"], out[f"{name}_{behaviour}_q4"] = q1, q4
        # the Bayes-optimal reference on the same windows, and the share of its drop the model makes
        out[f"{name}_reference_loss"] = last.get(f"val/{name}/reference_policy_loss", float("nan"))
        out[f"{name}_gain"] = last.get(f"val/{name}/gain", float("nan"))
    out["curves"] = run["curves"]
    out["history"] = run["history"]
    return out


# --------------------------------------------------------------------------- the claims

def claims(per_n: Sequence[Mapping[str, Any]], tql: Mapping[str, Any], actions: int) -> dict[str, Any]:
    """What the numbers show (``None``: not testable in this run), from the smallest and the
    largest N's numbers (``per_n`` sorted by N; ``probe``: ``probe_numbers`` of the probe set),
    TQL-UCB's online numbers and the action count (the uniform guess ``ln A``)."""
    small, large = per_n[0], per_n[-1]
    uniform = math.log(actions)
    online = large["online"]
    probe = probe_claims(large["probe"], actions)

    def above(x, threshold):
        return bool(finite(x) and x > threshold)

    def improves(q1, q4):
        return context_improves(q1, q4, uniform=uniform, drop=CONTEXT_DROP)

    c: dict[str, Any] = {
        "smallest_memorised": above(small["gap"], MEMORISED_GAP),
        "largest_gap_closed": bool(finite(large["gap"]) and large["gap"] < CLOSED_GAP),
        "random_steps_improve": improves(large["unseen_random_q1"], large["unseen_random_q4"]),
        "oracle_steps_improve": improves(large["unseen_oracle_q1"], large["unseen_oracle_q4"]),
        "probe_improves": probe["probe_below_uniform"],
        "probe_gain_reached": probe["gain_reached"],
        "online_above_random": above(online["performance"] - 2 * online["se"], 0.0),
        "online_rises": above(online["performance"] - online["first_quarter"], ONLINE_RISE),
        "online_matches_tql_ucb": bool(finite(online["gap_weighted"]) and finite(tql["gap_weighted"])
                                       and online["gap_weighted"] >= tql["gap_weighted"]),
    }
    if len(per_n) > 1:
        c["task_count_effect"] = c["smallest_memorised"] and c["largest_gap_closed"]
        c["unseen_loss_falls_with_n"] = above(small["unseen_policy_loss"] - large["unseen_policy_loss"], 0.0)
    else:
        c["task_count_effect"] = c["unseen_loss_falls_with_n"] = None
    c["icrl_from_rewards"] = (c["probe_improves"] and c["probe_gain_reached"] and c["online_above_random"]
                              and c["online_rises"])
    return c


def finding_text(s: Settings, per_n: Sequence[Mapping[str, Any]], tql: Mapping[str, Any],
                 c: Mapping[str, Any]) -> str:
    """The run's finding, from its numbers and ``claims``."""
    small, large = per_n[0], per_n[-1]
    env, probe = s.env, large["probe"]
    parts = []
    if len(per_n) > 1:
        parts.append(
            f"Task count: with N={small['n_tasks']} ({small['sequences_per_task']:.0f} sequences per task) the final "
            f"validation loss is {small['seen_policy_loss']:.3f} nats on seen tasks against "
            f"{small['unseen_policy_loss']:.3f} on unseen ones (gap {small['gap']:+.3f}): "
            + ("it memorised its training tasks" if c["smallest_memorised"]
               else f"it did not memorise them at this budget (gap below {MEMORISED_GAP})")
            + f"; with N={large['n_tasks']} the gap is {large['gap']:+.3f} nats, "
            + ("closed (unseen tasks no worse than seen ones)" if c["largest_gap_closed"]
               else f"not closed (gap >= {CLOSED_GAP})") + ". "
            + "Gap and unseen-task loss by N: "
            + ", ".join(f"N={r['n_tasks']} {r['gap']:+.3f} / {r['unseen_policy_loss']:.3f}" for r in per_n) + ".")
    else:
        parts.append(f"With N={large['n_tasks']} ({large['sequences_per_task']:.1f} sequences per task) the final "
                     f"validation loss is {large['seen_policy_loss']:.3f} nats on seen tasks and "
                     f"{large['unseen_policy_loss']:.3f} on unseen ones (gap {large['gap']:+.3f}).")
    if s.world == "anymdp":
        parts.append(
            f"In context (N={large['n_tasks']}, unseen tasks, first to last quarter of the {s.data.window}-step "
            f"context): the loss on near-oracle steps goes {large['unseen_oracle_q1']:.3f} -> "
            f"{large['unseen_oracle_q4']:.3f} nats, on random-behaviour steps {large['unseen_random_q1']:.3f} -> "
            f"{large['unseen_random_q4']:.3f} (uniform guess: {math.log(s.actions):.3f}). "
            + ("The random-behaviour steps improve too, to below the uniform guess (from the rewards, or from "
               "near-oracle actions elsewhere in the same context: the probe tells)."
               if c["random_steps_improve"] else
               "Only the near-oracle steps improve: in-context imitation of the actions the context shows."
               if c["oracle_steps_improve"] else
               f"Neither ends {CONTEXT_DROP} nats below both its start and the uniform guess.")
            + " On the probe (the same unseen tasks played by one random policy for the whole sequence, so that "
            "no action in the context demonstrates good play)")
    else:
        parts.append(f"In context (N={large['n_tasks']}; unseen tasks of the {s.world} rung, "
                     f"{s.rung.what}, played uniformly at random so that no action in the context "
                     f"demonstrates good play; first to last quarter of the {s.data.window}-step context)")
    parts[-1] += (
        f" the loss goes {probe['model_q1']:.3f} -> {probe['model_q4']:.3f} nats against the Bayes-optimal "
        f"reference's {probe['reference_q1']:.3f} -> {probe['reference_q4']:.3f} (gain {probe['gain']:.2f}, "
        f"last-quarter share {probe['share_q4']:.2f}; {MIN_GAIN} asked): "
        + ("it improves to below the uniform guess, so the model infers better actions from the rewards in its "
           "context (in-context RL, in the loss)" if c["probe_improves"] else
           f"it does not end {CONTEXT_DROP} nats below both its start and the uniform guess, so the model does not "
           "infer the good actions from the rewards alone" + (" (what it learns in context is imitation)"
                                                                if c["oracle_steps_improve"] else ""))
        + (", with the gain asked." if c["probe_gain_reached"] else
           (", but short of the gain asked." if c["probe_improves"] else ".")))

    def score(o: Mapping[str, Any]) -> str:
        return (f"{o['performance']:+.3f} +- {o['se']:.3f} / median {o['median']:+.3f} / gap-weighted "
                f"{o['gap_weighted']:+.3f}")

    online = "; ".join(f"N={r['n_tasks']} {score(r['online'])} (first quarter {r['online']['first_quarter']:+.3f})"
                       for r in per_n)
    parts.append(
        f"Online on {s.eval_envs} unseen {env} tasks ({s.eval_steps} steps from an empty context, "
        f"{s.decoding.describe()}), the last-quarter normalised score (random 0, oracle 1; task mean +- standard error "
        f"/ median / gap-weighted) is {online}; TQL-UCB on the same tasks: {score(tql)}. "
        f"The N={large['n_tasks']} model is "
        + ("above the random level" if c["online_above_random"] else "not above the random level")
        + ("; its score rises with context" if c["online_rises"] else "; its score does not rise with context")
        + ("; it matches or beats TQL-UCB (gap-weighted)." if c["online_matches_tql_ucb"]
           else "; it stays below TQL-UCB (gap-weighted)."))
    if c["task_count_effect"] is None:
        effect = f"this run has one task count (N={large['n_tasks']}), so it does not test the task-count effect"
    elif c["task_count_effect"]:
        effect = ("this run shows the task-count effect (the fewest tasks are memorised, the most generalise "
                  "to unseen tasks)")
    else:
        effect = "this run does not show the full task-count effect"
    if c["icrl_from_rewards"]:
        icrl = "and it shows in-context RL from rewards on unseen tasks"
    elif c["probe_improves"] or c["online_above_random"]:
        icrl = ("and it gives only partial evidence of in-context RL from rewards (the probe's loss "
                + ("improves" if c["probe_improves"] else "does not improve") + ", online score "
                + ("above" if c["online_above_random"] else "at") + " the random level"
                + (" and rising" if c["online_rises"] else ", not rising") + ")")
    else:
        icrl = "and it does not show in-context RL from rewards on unseen tasks"
        if c["oracle_steps_improve"]:
            icrl += " (what it shows there is in-context imitation)"
    parts.append(f"Bottom line: {effect}, {icrl}.")
    yes = lambda v: "not measured" if v is None else "yes" if v else "no"  # noqa: E731
    imitation = c["oracle_steps_improve"] if s.world == "anymdp" else None  # a rung's context shows no good play
    parts.append(f"Shown by this run: memorisation (fewest tasks) {yes(c['smallest_memorised'])}; in-context "
                 f"imitation {yes(imitation)}; in-context RL from rewards on unseen tasks "
                 f"{yes(c['icrl_from_rewards'])}. {PAPER_CLAIM}")
    return " ".join(parts)


# --------------------------------------------------------------------------- the figure

def limit_y(ax: Any, lo: float, hi: float, margin: float = 0.05) -> None:
    """Y range of ``ax``: its lines' data range widened by ``margin``, cut to ``[lo, hi]``; a line
    wholly outside gets its mean in its label ("off scale")."""
    import numpy as np

    data = [np.asarray(line.get_ydata(), dtype=float) for line in ax.get_lines()]
    data = [y[np.isfinite(y)] for y in data]
    values = np.concatenate([y for y in data if y.size] or [np.zeros(0)])
    if not values.size:
        return
    bottom, top = max(lo, values.min() - margin), min(hi, values.max() + margin)
    for line, y in zip(ax.get_lines(), data):
        if y.size and (y.min() > top or y.max() < bottom) and not line.get_label().startswith("_"):
            line.set_label(f"{line.get_label()} (off scale, mean {y.mean():.2f})")
    ax.set_ylim(bottom, top)


def plot(s: Settings, per_n: Sequence[Mapping[str, Any]], tql: Mapping[str, Any], path: Path) -> Path:
    """Figure 7's quantities in four panels (see the module docstring), saved to ``path``."""
    import matplotlib
    import numpy as np
    from matplotlib.figure import Figure

    from omnirl.tasks.plots import save_figure

    def arr(x):
        return np.array([np.nan if v is None else v for v in x], dtype=float)

    colours = matplotlib.colormaps["viridis"](np.linspace(0.0, 0.85, len(per_n)))
    fig = Figure(figsize=(11, 8))
    ax = fig.subplots(2, 2)
    uniform = math.log(s.actions)
    for r, col in zip(per_n, colours):
        label = f"N={r['n_tasks']}"
        for name, ls in (("seen", "--"), ("unseen", "-")):
            cur = r["curves"].get(name)
            if cur:
                ax[0, 0].plot(arr(cur["position"]), arr(cur["all"]), ls, color=col, label=f"{label} {name}")
                if "reference" in cur and r is per_n[-1]:  # the same windows for every N: drawn once
                    ax[0, 0].plot(arr(cur["position"]), arr(cur["reference"]), ls, color="black", lw=1.0,
                                  label=f"Bayes-optimal reference, {name}")
            steps = [h["step"] for h in r["history"]]
            ax[0, 1].plot(steps, arr([h.get(f"val/{name}/policy_loss") for h in r["history"]]), ls, marker="o",
                          ms=3, color=col, label=f"{label} {name}")
        cur = r["curves"]["unseen"]
        if s.world == "anymdp":  # a rung's unseen set is its probe: uniform play throughout, no near-oracle step
            ax[1, 0].plot(arr(cur["position"]), arr(cur["oracle"]), "-", color=col,
                          label=f"{label} near-oracle steps")
            ax[1, 0].plot(arr(cur["position"]), arr(cur["random"]), ":", color=col, label=f"{label} random steps")
        probe = r["curves"].get(s.probe)
        if probe:
            ax[1, 0].plot(arr(probe["position"]), arr(probe["all"]), "--", color=col,
                          label=f"{label} probe ({'random' if s.world == 'anymdp' else 'uniform'} policy throughout)")
            if "reference" in probe and r is per_n[-1]:
                ax[1, 0].plot(arr(probe["position"]), arr(probe["reference"]), "--", color="black", lw=1.0,
                              label="Bayes-optimal reference, probe")
        ax[1, 1].plot(r["online"]["curve_steps"], arr(r["online"]["curve"]), "-", marker="o", ms=3, color=col,
                      label=label)
    ax[1, 1].plot(tql["curve_steps"], arr(tql["curve"]), "-", marker="s", ms=3, color="black",
                  label="TQL-UCB")
    for a in (ax[0, 0], ax[0, 1], ax[1, 0]):
        a.axhline(uniform, color="grey", lw=0.8, ls=":")
        a.set_ylabel("policy loss (nats)")
    ax[0, 0].set(title="validation loss against position (seen --, unseen -)", xlabel="step in context")
    ax[0, 1].set(title="validation loss against training (seen --, unseen -)", xlabel="optimiser step")
    ax[1, 0].set(title="unseen tasks: loss by who acted, and the probe" if s.world == "anymdp" else
                 "the probe: unseen tasks, uniform play", xlabel="step in context")
    ax[1, 1].axhline(0.0, color="grey", lw=0.8, ls=":")
    ax[1, 1].axhline(1.0, color="grey", lw=0.8, ls="--")
    ax[1, 1].set(title=f"online RL on {s.eval_envs} unseen {s.env} tasks", xlabel="step in context",
                 ylabel="normalised score (random 0, oracle 1)")
    for a in (ax[0, 0], ax[0, 1], ax[1, 0]):
        limit_y(a, 0.0, 2 * uniform)
    limit_y(ax[1, 1], -0.5, 1.1)
    for a in ax.flat:
        a.legend(fontsize=6)
    fig.suptitle(f"Task-count ablation: {s.model.backbone} ({s.model.size}), {s.train.max_steps} steps of "
                 f"{s.data.batch_size}x{s.data.window}")
    fig.tight_layout()
    return save_figure(fig, path)


# --------------------------------------------------------------------------- the run

def table_rows(per_n: Sequence[Mapping[str, Any]], tql: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per N."""
    return [{"N": r["n_tasks"], "seq/task": round(r["sequences_per_task"], 1),
             "seen": r["seen_policy_loss"], "unseen": r["unseen_policy_loss"], "gap": r["gap"],
             "unseen first32": r["unseen_first_steps"], "unseen lastQ": r["unseen_last_quarter"],
             "random Q1": r["unseen_random_q1"], "random Q4": r["unseen_random_q4"],
             "oracle Q1": r["unseen_oracle_q1"], "oracle Q4": r["unseen_oracle_q4"],
             "probe Q1": r["probe"]["model_q1"], "probe Q4": r["probe"]["model_q4"],
             "ref Q1": r["unseen_reference_q1"], "ref Q4": r["unseen_reference_q4"], "gain": r["unseen_gain"],
             "probe ref Q1": r["probe"]["reference_q1"], "probe ref Q4": r["probe"]["reference_q4"],
             "probe gain": r["probe"]["gain"], "probe share": r["probe"]["share_q4"],
             "online": r["online"]["performance"], "online se": r["online"]["se"],
             "online gw": r["online"]["gap_weighted"], "TQL-UCB": tql["performance"],
             "TQL-UCB gw": tql["gap_weighted"]} for r in per_n]


def run(inv: Invocation) -> dict:
    """The experiment (see the module docstring); returns its summary."""
    s: Settings = inv.settings
    t0, c0 = time.perf_counter(), cpu_seconds()
    ns = sorted(s.n_tasks)
    env = s.env
    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}

    jobs = []
    for n in ns:
        root = inv.out / "data" / f"n{n}"
        train_dir = dataset(root / "train", n_tasks=n, sequences=s.sequences, length=s.length,
                            states=s.task_states, actions=s.actions, pipeline=s.pipeline, seed=inv.seed,
                            task_seed=inv.seed, workers=s.workers, shard_size=SHARD_SIZE)
        val = validation_sets(train_dir, root / "val", s.val_sequences, probe=s.probe == PROBE)
        config = training_config(s, train_dir=train_dir, validation=val, seed=inv.seed, n_obs=s.task_states,
                                 n_actions=s.actions)
        jobs.append((inv.out / "train" / f"n{n}", config))
    wall["data"], cpu["data"] = time.perf_counter() - t0, cpu_seconds() - c0

    t1, c1 = time.perf_counter(), cpu_seconds()
    log(f"training {len(jobs)} models ({s.parallel} at once)")
    runs = train_many(jobs, parallel=s.parallel, threads=s.threads, wandb_mode=inv.wandb_mode)
    wall["train"], cpu["train"] = time.perf_counter() - t1, cpu_seconds() - c1

    t2, c2 = time.perf_counter(), cpu_seconds()
    contextual = s.rung.contextual  # scored as a contextual bandit (the immediate-regret score)
    common = {"envs": [env], "protocol": "online", "n_envs": s.eval_envs, "steps": s.eval_steps, "seed": inv.seed,
              "wandb_mode": inv.wandb_mode, **({"contextual_bandit": True} if contextual else {})}
    prompt = {"protocol.prompt": s.rung.prompt}  # the model is asked for what its labels taught
    threads = s.threads or 1
    evaluate_once(inv.out / "eval" / "tql_ucb", threads=threads, checkpoint=None, baselines=["tql_ucb"], **common)
    tql = online_scores(inv.out / "eval" / "tql_ucb", env, "tql_ucb", s.eval_envs, contextual=contextual,
                        bins=ONLINE_BINS)
    per_n = []
    for n, r in zip(ns, runs):
        out = inv.out / "eval" / f"n{n}"
        evaluate_once(out, threads=threads, checkpoint=r["checkpoint"], baselines=[], **common,
                      **s.decoding.overrides(), **prompt)
        numbers = model_numbers(r)
        numbers.update(n_tasks=n, sequences_per_task=s.sequences / n,
                       gap=numbers["unseen_policy_loss"] - numbers["seen_policy_loss"],
                       online=online_scores(out, env, "omnirl", s.eval_envs, contextual=contextual,
                                            bins=ONLINE_BINS),
                       probe=probe_numbers(r["history"], s.probe, s.actions))
        numbers["online"]["minus_tql_ucb_se"] = paired_se(numbers["online"]["per_task"], tql["per_task"])
        per_n.append(numbers)
    wall["eval"], cpu["eval"] = time.perf_counter() - t2, cpu_seconds() - c2

    c = claims(per_n, tql, s.actions)
    finding = finding_text(s, per_n, tql, c)
    figure = plot(s, per_n, tql, inv.out / "task_scaling.png")
    wall["total"], cpu["total"] = time.perf_counter() - t0, cpu_seconds() - c0
    large = per_n[-1]
    results = {
        "n_tasks": ns,
        "unseen_policy_loss": large["unseen_policy_loss"],  # the largest N's (a one-N sweep run's own)
        "seen_policy_loss": large["seen_policy_loss"],
        "gap": large["gap"],
        "online_score": large["online"]["performance"],
        "tql_ucb_score": tql["performance"],
        "per_n": {str(r["n_tasks"]): r for r in per_n},
        "tql_ucb": tql,
        "claims": c,
        "thresholds": {"memorised_gap": MEMORISED_GAP, "closed_gap": CLOSED_GAP, "context_drop": CONTEXT_DROP,
                       "online_rise": ONLINE_RISE},
        "wall_seconds": wall,
        "cpu_seconds": cpu,
    }
    log(f"task_scaling: {wall['total']:.0f} s wall, {cpu['total']:.0f} CPU-s "
        f"(data {cpu['data']:.0f}, training {cpu['train']:.0f}, evaluation {cpu['eval']:.0f})")
    return finish(inv, NAME, results=results, table=table_rows(per_n, tql), figures=[figure], finding=finding,
                  seconds=wall["total"])


main = main_of(NAME, PRESETS, run, __doc__)

if __name__ == "__main__":
    raise SystemExit(main())
