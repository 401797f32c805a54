"""The bandit rung: a tiny model learns to find the best arm from the rewards in its context.

    python -m experiments.bandits                          # laptop preset (at most 10 minutes on 2 cores)
    python -m experiments.bandits --preset smoke           # seconds (the tests)
    python -m experiments.bandits --preset paper           # GPU sizes (documented, not run here)
    python -m experiments.bandits --pipeline=bandit --out runs/bandits-mix   # any field of Settings

Steps (everything lands in one run directory, see ``experiments._common``):

1. **Data.** ``sequences`` sequences of ``length`` entries on bandits with ``actions`` arms
   (``omnirl.tasks.sample_bandit``; a fresh bandit per sequence, or a task set of ``n_tasks``),
   from the ``pipeline``: ``uniform_probe`` (uniform random pulls labelled with the best arm: no
   pull in the context shows the answer, so only the rewards can tell it), ``random_probe`` (one
   random softmax policy over the arms per sequence, from near-uniform to near-deterministic: the
   pull counts are as uneven as in a learner's context, yet say nothing of the best arm),
   ``bandit`` (the bandit behaviour mix of ``omnirl.agents.bandit``, best-arm labels),
   ``bandit_thompson`` (half the sequences uniform pulls, half Gaussian Thompson sampling, tagged
   6 and 4: contexts as uneven as the model's own online), ``bandit_posterior`` (posterior sampling
   under the generator's prior, exact Thompson sampling, tagged 4: contexts of the policy the
   model should become) or ``bandit_switch`` (uniform pulls, then Gaussian Thompson sampling from a
   pull drawn per sequence, tagged 6 then 4). Every pull ends an episode, so a
   sequence alternates a pull and an episode-end marker: ``length`` entries hold about
   ``length / 2`` pulls. Validation: the bandit probe (``probe``: ``uniform_probe`` on
   ``val_sequences`` unseen bandits) and, for another training pipeline, ``unseen`` (that pipeline
   on unseen bandits).
2. **Training.** One tiny model (``backbone``, ``model_preset``, ``layout``, ``reward_transform``)
   for ``train.max_steps`` batches of ``data.batch_size`` windows of ``data.window`` entries; every ``train.val_every``
   steps the probe's loss is measured against position, beside the loss of the Bayes-optimal
   reference on the same windows (training validation's reference, ``omnirl.agents.reference``:
   the exact posterior probability that each arm is the best under the bandit generator's prior).
   With ``dagger_rounds`` > 0, dataset aggregation follows (DAgger; ``omnirl.evaluate.rollouts``):
   in each round the latest model plays ``dagger_sequences`` fresh training bandits as it plays
   online (the decoding below), the best arm labels every pull, and training continues from its
   weights (``train.init_from``) for ``dagger_steps`` steps at ``dagger_lr`` on the first data and
   every round's so far, so the model also learns on the contexts its own play makes.
3. **Online.** The model pulls the arms of ``eval_envs`` unseen ``bandit{actions}`` bandits for
   ``eval_steps`` pulls from an empty context (``python -m omnirl.evaluate``'s online protocol,
   with ``decoding``: a temperature annealed linearly from ``t_initial`` to ``t_final`` over
   ``t_steps`` pulls: sampling from the model's probability that each arm is the best is Thompson sampling when
   that probability is the posterior's; annealing sharpens a model less sure than the posterior),
   its own pulls tagged ``own_tag`` (6, random, as the pulls of the ``uniform_probe`` data are);
   UCB1, Thompson sampling and uniform random pull the same bandits.
   Every method's expected cumulative regret (``omnirl.evaluate.regret``) is recorded per pull.
4. **Report.** The probe: first- and last-quarter loss of the model and of the reference, and the
   gain (the model's drop over the reference's, validation's ``val/probe/gain``); online:
   the cumulative regret after 100 and 500 pulls (``REGRET_AT``) of every method, the ratio
   model / Thompson sampling, and the regret score (0 uniform random, 1 the best arm throughout).
   ``bandits.png``: the probe loss against position (model, reference, uniform) and the
   cumulative regret curves.

Targets (``claims``): the probe's loss falls below uniform with context (its last quarter
``CONTEXT_DROP`` nats below both its first quarter and ``ln A``); a gain of at least ``MIN_GAIN``
(``gain_reached``); and, since the reference learns most within the first quarter (its quarter drop
is small, so a model that starts worse gains easily), also a last-quarter loss at least ``MIN_GAIN``
of the way from ``ln A`` to the reference's (``share_q4 = (ln A - model) / (ln A - reference)``,
``share_reached``);
a cumulative regret at the end below uniform random's (by two standard errors) and within
``CLOSE_RATIO`` times Thompson sampling's.

Presets (``PRESETS``): ``laptop`` (the default; at most 10 minutes on 2 cores, the measured numbers
are in the README's bandit section), ``smoke`` (seconds: checks the pipeline) and ``paper`` (the
paper's model and layout on long contexts, for GPUs; not run here).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any, Mapping

from experiments._common import Invocation, finish, main_of
from omnirl.experiment import Decoding, dataset, evaluate_once, log, presets, train_many, training_config
from omnirl.rundir import cpu_seconds
from experiments._scores import CONTEXT_DROP, MIN_GAIN, finite, probe_claims, probe_numbers
from experiments.task_scaling import check_training_fields, limit_y
from omnirl.train.config import DataSection, ModelSection, TrainSection

NAME = "bandits"
PROBE = "probe"
"""Name of the bandit probe among the validation sets."""
CLOSE_RATIO = 1.5
"""The model's final cumulative regret is close to Thompson sampling's within this factor."""
BASELINES = ("ucb1", "thompson", "uniform")
"""The online comparison."""
MODEL = "omnirl"
PIPELINES = ("uniform_probe", "random_probe", "bandit", "bandit_thompson", "bandit_posterior", "bandit_switch")
"""Training pipelines on bandits (see the module docstring)."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """The bandit experiment's settings (the defaults are the laptop preset)."""

    pipeline: str = "uniform_probe"
    """Training data: ``uniform_probe`` (uniform pulls), ``random_probe`` (one random softmax policy
    over the arms per sequence), ``bandit`` (the bandit behaviour mix), ``bandit_thompson``
    (uniform pulls or Thompson sampling, half the sequences each), ``bandit_posterior`` (posterior
    sampling) or ``bandit_switch`` (uniform pulls, then Thompson sampling); best-arm labels."""
    actions: int = 5
    """Arms A of every bandit (the online bandits are ``bandit5``: 5)."""
    n_tasks: int | None = None
    """Bandits of the training task set (``None``: a fresh bandit per sequence)."""
    sequences: int = 2048
    """Training sequences."""
    length: int = 1025
    """Entries per stored sequence (pulls and end markers); at least ``window + 1``."""
    val_sequences: int = 64
    """Sequences per validation set."""
    model: ModelSection = dataclasses.field(default_factory=ModelSection)
    """The model (``omnirl.train.config.ModelSection``; its sizes are the bandits': 1 state, ``actions``)."""
    data: DataSection = dataclasses.field(default_factory=DataSection)
    """The training windows (``window``: entries per training and validation window; ``batch_size``;
    ``policy_target``: ``oracle``, the best arm, or ``reference``, the reference's posterior
    probability that each arm is the best given the window so far); the datasets are the experiment's."""
    train: TrainSection = dataclasses.field(default_factory=TrainSection)
    """The optimisation (``max_steps`` a multiple of ``val_every``)."""
    threads: int = 1
    """Torch threads of the training run and of the evaluation (0: the machine's cores). One thread
    costs the least CPU time for the tiny model; two were 3x slower on a busy 2-core machine."""
    workers: int = 1
    """Data-generation processes."""
    eval_envs: int = 64
    """Unseen bandits of the online evaluation."""
    eval_steps: int = 500
    """Pulls per bandit online (the context grows to twice this many entries)."""
    decoding: Decoding = dataclasses.field(default_factory=Decoding)
    """How the model pulls online (``omnirl.experiment.Decoding``: temperature 1 -> 0.5 over 250
    pulls, own pulls tagged 6, the tag of every pull of the ``uniform_probe`` and ``random_probe``
    data)."""
    dagger_rounds: int = 0
    """Rounds of dataset aggregation after the first training (0: none; see the module docstring)."""
    dagger_sequences: int = 1024
    """Sequences the model plays per round (``length`` entries each, fresh training bandits)."""
    dagger_steps: int = 100
    """Training steps per round (a fresh warm-up of ``train.warmup_steps``, at most half of them)."""
    dagger_lr: float = 1e-3
    """Peak learning rate of each round's training."""

    def __post_init__(self) -> None:
        from omnirl._validate import check_choice, check_float, check_int

        check_choice("pipeline", self.pipeline, PIPELINES)
        check_training_fields(self)
        if self.n_tasks is not None:
            check_int("n_tasks", self.n_tasks, min_value=1)
        for f in ("eval_envs", "eval_steps"):
            check_int(f, getattr(self, f), min_value=1)
        check_int("dagger_rounds", self.dagger_rounds, min_value=0)
        check_int("dagger_sequences", self.dagger_sequences, min_value=1)
        check_int("dagger_steps", self.dagger_steps, min_value=1)
        check_float("dagger_lr", self.dagger_lr, min_value=0.0, min_inclusive=False)

    @property
    def parallel(self) -> int:
        """One model: one training run."""
        return 1


PRESETS = presets(Settings, {
    "smoke": {"sequences": 32, "length": 129, "val_sequences": 8, "threads": 1, "eval_envs": 4, "eval_steps": 120,
              "model": {"backbone": "rwkv7"}, "data": {"window": 128, "batch_size": 4},
              "train": {"segment_len": 64, "max_steps": 4, "lr": 3e-3, "warmup_steps": 1, "val_every": 2}},
    "laptop": {"model": {"backbone": "rwkv7"},
               "train": {"max_steps": 300, "lr": 3e-3, "warmup_steps": 30, "val_every": 100}},
    "paper": {"sequences": 131_072, "length": 4_001, "val_sequences": 256, "threads": 0, "workers": 32,
              "eval_envs": 256, "eval_steps": 2_000,
              "model": {"backbone": "rwkv7", "size": "paper", "layout": "paper"},
              "data": {"window": 4_000, "batch_size": 16},
              "train": {"segment_len": 2_000, "max_steps": 20_000, "lr": 2e-4, "warmup_steps": 2_000,
                        "val_every": 1_000}},
})
"""The presets (see the module docstring)."""


# --------------------------------------------------------------------------- steps
def make_data(s: Settings, out: Path, seed: int) -> tuple[Path, dict[str, str]]:
    """The training dataset and the validation sets (``probe``, and ``unseen`` for the ``bandit``
    pipeline), made if missing."""
    from omnirl.data.generate import make_validation_sets

    train_dir = dataset(out / "data" / s.pipeline, n_tasks=s.n_tasks, sequences=s.sequences, length=s.length,
                        states=1, actions=s.actions, pipeline=s.pipeline, seed=seed, task_seed=seed, workers=s.workers)
    val = out / "data" / "val"
    names = {PROBE: "uniform_probe"} if s.pipeline == "uniform_probe" else {"unseen": "unseen", PROBE: "uniform_probe"}
    if not all((val / d / "manifest.json").exists() for d in names.values()):
        make_validation_sets(train_dir, val, s.val_sequences, workers=s.workers, probes=("uniform_probe",))
    return train_dir, {n: str(val / d) for n, d in names.items()}


def on_policy_data(s: Settings, out: Path, checkpoint: str, seed: int) -> Path:
    """``dagger_sequences`` fresh training bandits played by the model at ``checkpoint`` with the
    online decoding, best-arm labels (made if missing, resumed if interrupted)."""
    from omnirl._threads import torch_threads
    from omnirl.data.generate import DatasetSpec, generate_dataset
    from omnirl.evaluate.rollouts import ModelActors
    from omnirl.experiment import SHARD_SIZE

    if not (out / "manifest.json").exists():
        t0 = time.perf_counter()
        spec = DatasetSpec(pipeline="uniform_probe", n_sequences=s.dagger_sequences, length=s.length, n_obs=1,
                           n_actions=s.actions, seed=seed, shard_size=SHARD_SIZE)
        batch = min(s.dagger_sequences, SHARD_SIZE)
        with torch_threads(s.threads or 1):
            generate_dataset(spec, out, batch=batch, actor=ModelActors(checkpoint, s.decoding.protocol(s.length), seed, batch))
        log(f"on-policy dataset {out}: {s.dagger_sequences} x {s.length} entries in {time.perf_counter() - t0:.0f} s")
    return out


def dagger(s: Settings, inv: Invocation, config: Any, first: Mapping[str, Any]) -> Mapping[str, Any]:
    """The ``dagger_rounds`` rounds after the first training run ``first`` (see the module
    docstring); returns the last training run (``first`` when there are none)."""
    run = first
    datasets = list(config.data.train)
    for k in range(1, s.dagger_rounds + 1):
        log(f"dataset aggregation, round {k} of {s.dagger_rounds}")
        datasets.append(str(on_policy_data(s, inv.out / "data" / f"dagger{k}", run["checkpoint"],
                                           seed=inv.seed + 7919 * k)))
        train = dataclasses.replace(config.train, init_from=run["checkpoint"], max_steps=s.dagger_steps,
                                    val_every=s.dagger_steps, lr=s.dagger_lr,
                                    warmup_steps=min(config.train.warmup_steps, s.dagger_steps // 2))
        (run,) = train_many([(inv.out / f"train_dagger{k}", dataclasses.replace(
            config, data=dataclasses.replace(config.data, train=tuple(datasets)), train=train))],
            threads=s.threads, wandb_mode=inv.wandb_mode)
    return run


def online_regret(eval_dir: Path, env: str) -> dict[str, Any]:
    """By method: the regret table's numbers and the mean cumulative regret after every pull."""
    import numpy as np

    summary = json.loads((eval_dir / "summary.json").read_text())
    arrays = np.load(eval_dir / "regret.npz")
    out = {}
    for row in summary["regret"]:
        per_pull = arrays[f"{env}/{row['method']}"]  # (B, steps)
        out[row["method"]] = {**{k: v for k, v in row.items() if k not in ("environment", "method")},
                              "curve": np.cumsum(per_pull, axis=1).mean(axis=0).tolist()}
    return out


# --------------------------------------------------------------------------- claims and report
def claims(probe: Mapping[str, float], online: Mapping[str, Mapping[str, Any]], arms: int) -> dict[str, Any]:
    """What the numbers show (see the module docstring)."""
    model, uniform, thompson = online[MODEL], online["uniform"], online["thompson"]
    below = finite(model["regret"]) and finite(uniform["regret"]) and \
        model["regret"] + 2 * (model["regret_se"] or 0.0) < uniform["regret"]
    ratio = model["regret"] / thompson["regret"] if finite(thompson["regret"]) and thompson["regret"] > 0 else math.nan
    return {
        **probe_claims(probe, arms),
        "regret_below_uniform": bool(below),
        "regret_close_to_thompson": bool(finite(ratio) and ratio <= CLOSE_RATIO),
    }


def ratio(online: Mapping[str, Mapping[str, Any]], key: str) -> float:
    """The model's ``key`` (e.g. ``regret@100``) over Thompson sampling's (NaN if either is missing)."""
    a, b = online[MODEL].get(key), online["thompson"].get(key)
    return a / b if finite(a) and finite(b) and b > 0 else math.nan


def finding_text(s: Settings, probe: Mapping[str, float], online: Mapping[str, Mapping[str, Any]],
                 c: Mapping[str, Any]) -> str:
    """The run's finding, from its numbers and ``claims``."""
    uniform = math.log(s.actions)
    parts = [
        f"Probe (uniform pulls on {s.val_sequences} unseen bandits, best-arm labels; first to last quarter of "
        f"{s.data.window} entries): the model's loss goes {probe['model_q1']:.3f} -> {probe['model_q4']:.3f} nats "
        f"(uniform {uniform:.3f}), the Bayes-optimal reference's {probe['reference_q1']:.3f} -> "
        f"{probe['reference_q4']:.3f}: a gain of {probe['gain']:.2f} of the reference's drop (target {MIN_GAIN}); "
        f"in the last quarter the model is {probe['share_q4']:.2f} of the way from uniform to the reference. "
        + ("The loss falls below uniform with context: the model infers the best arm from the rewards."
           if c["probe_below_uniform"] else "The loss does not fall below uniform with context.")]
    m, th = online[MODEL], online["thompson"]
    at = [t for t in (100, 500) if t <= m["pulls"]]
    parts.append(
        f"Online on {s.eval_envs} unseen bandit{s.actions} bandits for {s.eval_steps} pulls "
        f"({s.decoding.describe('pull')}), "
        "cumulative regret "
        + "; ".join(f"after {t} pulls: model {m[f'regret@{t}']:.2f}, Thompson {th[f'regret@{t}']:.2f}, UCB1 "
                    f"{online['ucb1'][f'regret@{t}']:.2f}, uniform {online['uniform'][f'regret@{t}']:.2f} "
                    f"(model / Thompson {ratio(online, f'regret@{t}'):.2f})" for t in at)
        + f". Regret score (uniform 0, best arm 1): model {m['regret_score']:.3f}, Thompson "
        f"{th['regret_score']:.3f}. The model's regret is "
        + ("below uniform random's" if c["regret_below_uniform"] else "not below uniform random's")
        + (f" and within {CLOSE_RATIO}x Thompson sampling's." if c["regret_close_to_thompson"]
           else f", and not within {CLOSE_RATIO}x Thompson sampling's."))
    reached = [k for k, v in c.items() if v]
    parts.append(f"Targets reached: {len(reached)} of {len(c)} ({', '.join(reached) or 'none'}).")
    return " ".join(parts)


def plot(s: Settings, curve: Mapping[str, Any], online: Mapping[str, Mapping[str, Any]], path: Path) -> Path:
    """The probe loss against position and the cumulative regret curves, saved to ``path``."""
    import numpy as np
    from matplotlib.figure import Figure

    from omnirl.tasks.plots import save_figure

    fig = Figure(figsize=(11, 4))
    ax = fig.subplots(1, 2)
    arr = lambda x: np.array([np.nan if v is None else v for v in x], dtype=float)  # noqa: E731
    ax[0].plot(arr(curve["position"]), arr(curve["all"]), "-o", ms=3, label=f"model ({s.model.reward_transform})")
    if "reference" in curve:
        ax[0].plot(arr(curve["position"]), arr(curve["reference"]), "-s", ms=3, color="black",
                   label="Bayes-optimal reference")
    ax[0].axhline(math.log(s.actions), color="grey", lw=0.8, ls=":", label="uniform")
    limit_y(ax[0], 0.0, 2 * math.log(s.actions))
    ax[0].set(title="bandit probe: loss against position", xlabel="entry in context (pulls and end markers)",
              ylabel="policy loss (nats)")
    for method, numbers in online.items():
        y = np.array(numbers["curve"])
        ax[1].plot(np.arange(1, y.size + 1), y, label=method, lw=2 if method == MODEL else 1)
    ax[1].set(title=f"online on {s.eval_envs} unseen bandit{s.actions} bandits", xlabel="pull",
              ylabel="cumulative regret (expected)")
    for a in ax:
        a.legend(fontsize=7)
    fig.suptitle(f"Bandit rung: {s.model.backbone} ({s.model.size}, {s.model.layout}), {s.pipeline} data, "
                 f"{s.train.max_steps} steps of {s.data.batch_size}x{s.data.window}")
    fig.tight_layout()
    return save_figure(fig, path)


def table_rows(online: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per method: cumulative regret after 100 and 500 pulls and at the end, the ratio to
    Thompson sampling, and the regret score."""
    rows = []
    for method, n in online.items():
        row: dict[str, Any] = {"method": method}
        for t in (100, 500):
            row[f"regret@{t}"] = n.get(f"regret@{t}", math.nan)
            row[f"/thompson@{t}"] = n.get(f"regret@{t}", math.nan) / online["thompson"].get(f"regret@{t}", math.nan) \
                if finite(online["thompson"].get(f"regret@{t}")) else math.nan
        row.update({"pulls": n["pulls"], "regret": n["regret"], "se": n["regret_se"], "score": n["regret_score"]})
        rows.append(row)
    return rows


def run(inv: Invocation) -> dict:
    """The experiment (see the module docstring); returns its summary."""
    s: Settings = inv.settings
    t0, c0 = time.perf_counter(), cpu_seconds()
    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}
    train_dir, validation = make_data(s, inv.out, inv.seed)
    wall["data"], cpu["data"] = time.perf_counter() - t0, cpu_seconds() - c0

    t1, c1 = time.perf_counter(), cpu_seconds()
    log("training the model")
    config = training_config(s, train_dir=train_dir, validation=validation, seed=inv.seed, n_obs=1,
                             n_actions=s.actions)
    (r,) = train_many([(inv.out / "train", config)], threads=s.threads, wandb_mode=inv.wandb_mode)
    r = dagger(s, inv, config, r)
    wall["train"], cpu["train"] = time.perf_counter() - t1, cpu_seconds() - c1

    t1, c1 = time.perf_counter(), cpu_seconds()
    env = f"bandit{s.actions}"
    evaluate_once(inv.out / "eval", threads=s.threads or 1, checkpoint=r["checkpoint"], envs=[env],
                  protocol="online", n_envs=s.eval_envs, steps=s.eval_steps, seed=inv.seed, baselines=list(BASELINES),
                  wandb_mode=inv.wandb_mode, **s.decoding.overrides())
    online = online_regret(inv.out / "eval", env)
    wall["eval"], cpu["eval"] = time.perf_counter() - t1, cpu_seconds() - c1

    curve = r["curves"][PROBE]  # position, all, reference, ... (binned over the window)
    probe = probe_numbers(r["history"], PROBE, s.actions)
    c = claims(probe, online, s.actions)
    finding = finding_text(s, probe, online, c)
    figure = plot(s, curve, online, inv.out / "bandits.png")
    wall["total"], cpu["total"] = time.perf_counter() - t0, cpu_seconds() - c0
    results = {
        "probe": probe, "probe_curve": curve,
        "online": online, "ratio_thompson_100": ratio(online, "regret@100"),
        "ratio_thompson_500": ratio(online, "regret@500"), "gain": probe["gain"],
        "model_regret": online[MODEL]["regret"], "thompson_regret": online["thompson"]["regret"],
        "claims": c, "history": r["history"],
        "thresholds": {"context_drop": CONTEXT_DROP, "min_gain": MIN_GAIN, "close_ratio": CLOSE_RATIO},
        "wall_seconds": wall, "cpu_seconds": cpu,
    }
    log(f"bandits: {wall['total']:.0f} s wall, {cpu['total']:.0f} CPU-s (data {cpu['data']:.0f}, training "
        f"{cpu['train']:.0f}, evaluation {cpu['eval']:.0f})")
    return finish(inv, NAME, results=results, table=table_rows(online), figures=[figure], finding=finding,
                  seconds=wall["total"])


main = main_of(NAME, PRESETS, run, __doc__)

if __name__ == "__main__":
    raise SystemExit(main())

__all__ = ["PRESETS", "Settings", "claims", "main", "make_data", "online_regret", "run", "table_rows"]
