"""Backbone comparison (the paper's Figure 5): RWKV-7, GDN, GSA and Mamba2 on the same data and budget.

    python -m experiments.arch_comparison                         # laptop preset
    python -m experiments.arch_comparison --preset smoke          # about 10 seconds (the tests)
    python -m experiments.arch_comparison --preset paper          # GPU cluster sizes (documented, not run here)
    python -m experiments.arch_comparison --preset paper --backbones=[gsa]   # one run of sweeps/arch_comparison.yaml

Steps (one run directory, see ``experiments._common``):

1. **Data.** One dataset of ``sequences`` sequences of ``length`` steps (the ``omnirl`` pipeline),
   each on a freshly sampled AnyMDP task (``n_tasks`` null) or cycling over a task set of
   ``n_tasks`` tasks, and ``val_sequences`` validation sequences on new tasks (``unseen``; plus
   ``seen`` ones on the training tasks when there is a task set) and on the same new tasks under
   one random policy per sequence (``probe``). ``data_root`` can point several
   runs (e.g. the runs of a sweep) at one dataset.
2. **Training.** One model per backbone of ``backbones``, all the same size preset, layout, data,
   seed and budget (``train.max_steps`` batches of ``data.batch_size`` windows of ``data.window`` steps, segments
   of ``train.segment_len``), up to ``parallel`` at once.
3. **Throughput.** For every backbone, ``throughput_steps`` training steps (after one untimed)
   of the same batch size, window and segments, on one torch thread, outside Lightning: forward
   and backward over the segments with the state carried, clip, AdamW. Reported as environment
   steps per CPU-second (robust on a shared machine) and per wall-clock second, with the
   process's CPU share (below 1: the cores were shared and the wall-clock rate is low by that
   factor).
4. **Report.** A table (one row per backbone: parameters, throughput, final unseen-task policy loss,
   its first-32-step and last-quarter values, near-oracle and random-behaviour steps and the probe
   in the first and last quarter of the context, the Bayes-optimal reference's first- and
   last-quarter loss and the gain (the share of its drop the model makes), the training run's CPU
   time), ``arch_comparison.png`` (unseen loss against position beside the reference's, and against
   training step, throughput with parameter counts),
   ``summary.json`` and the experiment's W&B run (the training runs have their own).

The finding names the best and worst backbone by final unseen-task loss and says whether their
spread exceeds ``DISTINGUISHABLE`` nats (below it, the backbones are not told apart at this
budget; above it, one seed per backbone still cannot separate a real difference from seed noise:
sweep ``--seed`` for that), how much each one's loss falls with context (overall, and on the
random-behaviour steps of mixed sequences, and on the probe: the unseen tasks under a random policy
for the whole sequence, where only the rewards can tell the better actions), and the fastest and
slowest backbone.

Presets (``PRESETS``):

* ``laptop`` (default): the four backbones, ``tiny`` preset (85K-126K parameters), 2048
  sequences of 1025 steps on fresh S = 16 tasks, 300 steps of 8 windows of 1024 steps each (2.5M
  environment steps per model), two at once on one thread each; about 8 minutes on 2 cores (the
  measured numbers are in the README's studies table).
* ``smoke``: the four backbones, tiny data, 4 training steps each (about 10 seconds).
* ``paper``: the paper's sizes (Table 6: 18 blocks of hidden 512; 31.6M-46.3M parameters) and
  5-token layout, 128,000 sequences of 12,001 steps on fresh tasks, segments of 2,000 steps, AdamW
  2e-4 with 2,000 warm-up steps, 20,000 steps, bf16, all GPUs of a node per model. Not run here.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from experiments._common import Invocation, finish, main_of
from omnirl.experiment import SHARD_SIZE, dataset, log, presets, train_many, training_config, validation_sets
from omnirl.rundir import cpu_seconds
from experiments._scores import context_improves, finite
from experiments.task_scaling import check_training_fields, model_numbers
from omnirl.train.config import DataSection, ModelSection, TrainSection

NAME = "arch_comparison"
DISTINGUISHABLE = 0.02
"""Nats: backbones whose final unseen-task losses differ by less than this are not told apart."""
CONTEXT_DROP = 0.05
"""Nats: a loss falls with context if its last-quarter value is this much below its first-32-step value
(on random-behaviour steps and the probe: below its first-quarter value and the uniform guess ``ln A``,
``_scores.context_improves``)."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """The backbone comparison's settings (the defaults are the laptop preset)."""

    backbones: tuple[str, ...] = ("rwkv7", "gdn", "gsa", "mamba2")
    """Backbones to train (``rwkv7``, ``gdn``, ``gsa``, ``mamba2``); a sweep run may give one."""
    n_tasks: int | None = None
    """Tasks of the training set (``None``: a fresh task per sequence)."""
    states: int = 16
    """States S of every task."""
    actions: int = 5
    """Actions A of every task."""
    sequences: int = 2048
    """Training sequences."""
    length: int = 1025
    """Steps per stored sequence (end markers included); at least ``window + 1``."""
    val_sequences: int = 64
    """Sequences per validation set."""
    data_root: str = ""
    """Directory of the dataset (``train/``, ``val/``), made if missing (empty: ``<run dir>/data``)."""
    model: ModelSection = dataclasses.field(default_factory=ModelSection)
    """The model (``omnirl.train.config.ModelSection``) of every backbone: its ``backbone`` is each of
    ``backbones`` in turn, its sizes are the data's."""
    data: DataSection = dataclasses.field(default_factory=DataSection)
    """The training windows (``window``: the context length T of training and validation;
    ``batch_size``); the dataset is the experiment's."""
    train: TrainSection = dataclasses.field(default_factory=TrainSection)
    """The optimisation of every backbone (``max_steps`` a multiple of ``val_every``)."""
    parallel: int = 2
    """Training runs at once (each in its own process when more than one)."""
    threads: int = 0
    """Torch threads per training run (0: the cores divided by ``parallel``)."""
    workers: int = 2
    """Processes generating the data."""
    throughput_steps: int = 3
    """Timed training steps per backbone of the throughput measurement (0: skip it)."""

    def __post_init__(self) -> None:
        from omnirl._validate import check_choice, check_int
        from omnirl.model.backbone import BACKBONES

        if not self.backbones:
            raise ValueError("backbones must name at least one backbone, got none")
        for b in self.backbones:
            check_choice("backbones", b, BACKBONES)
        if len(set(self.backbones)) != len(self.backbones):
            raise ValueError(f"backbones must not repeat a backbone, got {list(self.backbones)}")
        if self.n_tasks is not None:
            check_int("n_tasks", self.n_tasks, min_value=1)
        check_int("states", self.states, min_value=2)
        check_training_fields(self)
        check_int("throughput_steps", self.throughput_steps, min_value=0)


PRESETS = presets(Settings, {
    "smoke": {"sequences": 32, "length": 129, "val_sequences": 8, "parallel": 1, "threads": 1, "workers": 1,
              "throughput_steps": 1, "data": {"window": 128, "batch_size": 4},
              "train": {"segment_len": 64, "max_steps": 4, "warmup_steps": 2, "val_every": 2}},
    "laptop": {"train": {"max_steps": 300, "warmup_steps": 50, "val_every": 100}},
    "paper": {"sequences": 128_000, "length": 12_001, "val_sequences": 256, "parallel": 1, "workers": 32,
              "throughput_steps": 10, "model": {"size": "paper", "layout": "paper"},
              "data": {"window": 12_000, "batch_size": 12},
              "train": {"segment_len": 2_000, "max_steps": 20_000, "lr": 2e-4, "warmup_steps": 2_000,
                        "val_every": 1_000, "precision": "bf16-mixed"}},
})
"""The presets (see the module docstring)."""


def measure_throughput(train_dir: Path, s: Settings, backbone: str, seed: int) -> dict[str, Any]:
    """Training-step speed of ``backbone`` on one torch thread (see the module docstring)."""
    import torch

    from omnirl._threads import torch_threads
    from omnirl.model.omnirl import OmniRL
    from omnirl.train.data import WindowDataset
    from omnirl.train.module import tbptt_backward

    with torch_threads(1):
        torch.manual_seed(seed)
        model = OmniRL(dataclasses.replace(s.model, backbone=backbone, n_obs=s.states,
                                           n_actions=s.actions).build())
        data = WindowDataset([train_dir], s.data.window, seed=seed)
        items = [data[i % len(data)] for i in range(s.data.batch_size)]
        batch = {k: torch.stack([it[k] for it in items]) for k in items[0]}  # (B, T + 1) each
        optimizer = torch.optim.AdamW(model.parameters(), lr=s.train.lr)
        T = s.data.window

        def step() -> None:  # one optimiser step of training (omnirl.train.module), without Lightning
            tbptt_backward(model, batch, s.train.segment_len)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        step()  # untimed: first-call allocations
        c0, t0 = time.process_time(), time.perf_counter()
        for _ in range(s.throughput_steps):
            step()
        cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    tokens = s.data.batch_size * T * s.throughput_steps
    return {"parameters": sum(p.numel() for p in model.parameters()), "tokens_per_cpu_s": tokens / cpu,
            "tokens_per_s": tokens / wall, "cpu_share": cpu / wall, "steps": s.throughput_steps}


def finding_text(s: Settings, rows: Sequence[Mapping[str, Any]]) -> tuple[str, dict[str, Any]]:
    """The finding and the claims it rests on, from the per-backbone numbers."""
    ranked = sorted([r for r in rows if finite(r["unseen_policy_loss"])], key=lambda r: r["unseen_policy_loss"])
    c: dict[str, Any] = {"ranking": [r["backbone"] for r in ranked]}
    data = (f"{s.sequences} sequences of {s.length} steps on "
            + ("fresh tasks" if s.n_tasks is None else f"{s.n_tasks} tasks"))
    parts = [f"Same data ({data}) and budget ({s.train.max_steps} steps of {s.data.batch_size}x{s.data.window}) for "
             + ", ".join(r["backbone"] for r in rows) + "."]
    if len(ranked) > 1:
        best, worst = ranked[0], ranked[-1]
        spread = worst["unseen_policy_loss"] - best["unseen_policy_loss"]
        c.update(best=best["backbone"], worst=worst["backbone"], spread=spread,
                 distinguishable=bool(spread >= DISTINGUISHABLE))
        parts.append(f"Final unseen-task policy loss: lowest {best['backbone']} ({best['unseen_policy_loss']:.3f} "
                     f"nats), highest {worst['backbone']} ({worst['unseen_policy_loss']:.3f}), a spread of "
                     f"{spread:.3f} nats on one seed and {s.val_sequences} validation sequences: "
                     + (f"more than {DISTINGUISHABLE} nats, though one seed per backbone does not separate a "
                        "real difference from seed-to-seed noise." if c["distinguishable"]
                        else f"below {DISTINGUISHABLE} nats, so they are not told apart at this budget."))
    elif ranked:
        parts.append(f"Final unseen-task policy loss of {ranked[0]['backbone']}: "
                     f"{ranked[0]['unseen_policy_loss']:.3f} nats.")
    drops = {r["backbone"]: r["unseen_first_steps"] - r["unseen_last_quarter"] for r in rows}
    c["context_drop"] = drops
    c["falls_with_context"] = {b: bool(finite(d) and d > CONTEXT_DROP) for b, d in drops.items()}
    parts.append("Loss from the first 32 steps to the last quarter of the context: "
                 + ", ".join(f"{r['backbone']} {r['unseen_first_steps']:.3f} -> {r['unseen_last_quarter']:.3f}"
                             for r in rows)
                 + "; it falls by more than "
                 f"{CONTEXT_DROP} nats for "
                 + (", ".join(b for b, ok in c["falls_with_context"].items() if ok) or "none") + ".")
    uniform = math.log(s.actions)
    c["random_steps_improve"] = {r["backbone"]: context_improves(r["unseen_random_q1"], r["unseen_random_q4"],
                                                                 uniform=uniform, drop=CONTEXT_DROP) for r in rows}
    c["probe_improves"] = {r["backbone"]: context_improves(r["probe_all_q1"], r["probe_all_q4"], uniform=uniform,
                                                           drop=CONTEXT_DROP) for r in rows}

    def improved(key: str) -> str:
        return ", ".join(b for b, ok in c[key].items() if ok) or "none"
    parts.append("First to last quarter of the context (uniform guess "
                 f"{uniform:.3f}), on the random-behaviour steps of mixed sequences: "
                 + ", ".join(f"{r['backbone']} {r['unseen_random_q1']:.3f} -> {r['unseen_random_q4']:.3f}"
                             for r in rows)
                 + "; on the probe (a random policy for the whole sequence, so that only the rewards can tell "
                 "the better actions): "
                 + ", ".join(f"{r['backbone']} {r['probe_all_q1']:.3f} -> {r['probe_all_q4']:.3f}" for r in rows)
                 + f". Ending more than {CONTEXT_DROP} nats below both the start and the uniform guess: "
                 f"random steps {improved('random_steps_improve')}; the probe {improved('probe_improves')} "
                 "(in-context RL in the loss only where the probe improves).")
    fast = [r for r in rows if finite(r.get("tokens_per_cpu_s"))]
    if len(fast) > 1:
        fast.sort(key=lambda r: -r["tokens_per_cpu_s"])
        c.update(fastest=fast[0]["backbone"], slowest=fast[-1]["backbone"])
        parts.append(f"Training speed on one CPU thread: fastest {fast[0]['backbone']} "
                     f"({fast[0]['tokens_per_cpu_s']:.0f} env steps per CPU-second), slowest {fast[-1]['backbone']} "
                     f"({fast[-1]['tokens_per_cpu_s']:.0f}); parameters "
                     + ", ".join(f"{r['backbone']} {r['parameters'] / 1e3:.0f}K" for r in rows) + ".")
    return " ".join(parts), c


def plot(s: Settings, rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Unseen loss against position and against training step; throughput and parameters."""
    import numpy as np
    from matplotlib.figure import Figure

    from omnirl.tasks.plots import save_figure

    def arr(x):
        return np.array([np.nan if v is None else v for v in x], dtype=float)

    fig = Figure(figsize=(15, 4.2))
    ax = fig.subplots(1, 3)
    for r in rows:
        cur = r["curves"]["unseen"]
        ax[0].plot(arr(cur["position"]), arr(cur["all"]), label=r["backbone"])
        if "reference" in cur and r is rows[-1]:  # the same windows for every backbone: drawn once
            ax[0].plot(arr(cur["position"]), arr(cur["reference"]), color="black", lw=1.0, ls="--",
                       label="Bayes-optimal reference")
        ax[1].plot([h["step"] for h in r["history"]], arr([h.get("val/unseen/policy_loss") for h in r["history"]]),
                   marker="o", ms=3, label=r["backbone"])
    for a in ax[:2]:
        a.axhline(math.log(s.actions), color="grey", lw=0.8, ls=":")
        a.set_ylabel("unseen-task policy loss (nats)")
        a.legend(fontsize=7)
    ax[0].set(title="against position in the context", xlabel="step in context")
    ax[1].set(title="against training", xlabel="optimiser step")
    speed = [r.get("tokens_per_cpu_s") for r in rows]
    bars = ax[2].bar([r["backbone"] for r in rows], [v if finite(v) else 0.0 for v in speed], color="tab:blue")
    for b, r in zip(bars, rows):
        ax[2].annotate(f"{r['parameters'] / 1e3:.0f}K params", (b.get_x() + b.get_width() / 2, b.get_height()),
                       ha="center", va="bottom", fontsize=8)
    ax[2].set(title="training throughput (1 thread)", ylabel="env steps per CPU-second")
    fig.suptitle(f"Backbones: {s.model.size} preset, {s.train.max_steps} steps of {s.data.batch_size}x{s.data.window}")
    fig.tight_layout()
    return save_figure(fig, path)


def run(inv: Invocation) -> dict:
    """The experiment (see the module docstring); returns its summary."""
    s: Settings = inv.settings
    t0, c0 = time.perf_counter(), cpu_seconds()
    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}
    root = Path(s.data_root) if s.data_root else inv.out / "data"
    train_dir = dataset(root / "train", n_tasks=s.n_tasks, sequences=s.sequences, length=s.length, states=s.states,
                        actions=s.actions, seed=inv.seed, task_seed=inv.seed, workers=s.workers,
                        shard_size=SHARD_SIZE)
    val = validation_sets(train_dir, root / "val", s.val_sequences, probe=True)
    wall["data"], cpu["data"] = time.perf_counter() - t0, cpu_seconds() - c0

    t1, c1 = time.perf_counter(), cpu_seconds()
    jobs = [(inv.out / "train" / b, training_config(s, train_dir=train_dir, validation=val, seed=inv.seed, n_obs=s.states,
                                                     n_actions=s.actions, backbone=b)) for b in s.backbones]
    log(f"training {len(jobs)} backbones ({s.parallel} at once)")
    runs = train_many(jobs, parallel=s.parallel, threads=s.threads, wandb_mode=inv.wandb_mode)
    wall["train"], cpu["train"] = time.perf_counter() - t1, cpu_seconds() - c1

    t2, c2 = time.perf_counter(), cpu_seconds()
    rows = []
    for b, r in zip(s.backbones, runs):
        numbers = {"backbone": b, **model_numbers(r)}
        if s.throughput_steps:
            numbers.update(measure_throughput(train_dir, s, b, inv.seed))
        else:
            numbers.update(tokens_per_cpu_s=float("nan"), tokens_per_s=float("nan"), cpu_share=float("nan"))
        rows.append(numbers)
        log(f"{b}: unseen loss {numbers['unseen_policy_loss']:.3f}, {numbers['tokens_per_cpu_s']:.0f} env steps "
            "per CPU-second")
    wall["throughput"], cpu["throughput"] = time.perf_counter() - t2, cpu_seconds() - c2

    finding, c = finding_text(s, rows)
    figure = plot(s, rows, inv.out / "arch_comparison.png")
    wall["total"], cpu["total"] = time.perf_counter() - t0, cpu_seconds() - c0
    best = min((r for r in rows if finite(r["unseen_policy_loss"])), key=lambda r: r["unseen_policy_loss"],
               default=None)
    results = {
        "backbones": list(s.backbones),
        "best_unseen_policy_loss": best["unseen_policy_loss"] if best else float("nan"),
        "best_backbone": best["backbone"] if best else None,
        "per_backbone": {r["backbone"]: r for r in rows},
        "claims": c,
        "thresholds": {"distinguishable": DISTINGUISHABLE, "context_drop": CONTEXT_DROP},
        "wall_seconds": wall,
        "cpu_seconds": cpu,
    }
    def rate(x: Any) -> Any:
        return round(x) if finite(x) else "-"

    table = [{"backbone": r["backbone"], "params": r["parameters"], "env steps/CPU-s": rate(r["tokens_per_cpu_s"]),
              "env steps/s": rate(r["tokens_per_s"]), "unseen": r["unseen_policy_loss"],
              "unseen first32": r["unseen_first_steps"], "unseen lastQ": r["unseen_last_quarter"],
              "oracle Q1": r["unseen_oracle_q1"], "oracle Q4": r["unseen_oracle_q4"],
              "random Q1": r["unseen_random_q1"], "random Q4": r["unseen_random_q4"],
              "probe Q1": r["probe_all_q1"], "probe Q4": r["probe_all_q4"],
              "ref Q1": r["unseen_reference_q1"], "ref Q4": r["unseen_reference_q4"], "gain": r["unseen_gain"],
              "probe gain": r["probe_gain"], "train CPU-s": rate(r["train_cpu_seconds"])} for r in rows]
    log(f"arch_comparison: {wall['total']:.0f} s wall, {cpu['total']:.0f} CPU-s "
        f"(data {cpu['data']:.0f}, training {cpu['train']:.0f}, throughput {cpu['throughput']:.0f})")
    return finish(inv, NAME, results=results, table=table, figures=[figure], finding=finding, seconds=wall["total"])


main = main_of(NAME, PRESETS, run, __doc__)

if __name__ == "__main__":
    raise SystemExit(main())
