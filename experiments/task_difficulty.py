"""Task difficulty: how hard AnyMDP is for classical RL, against Garnet (paper Figures 1 and 2).

    python -m experiments.task_difficulty                      # laptop preset (~3 CPU-minutes)
    python -m experiments.task_difficulty --preset smoke       # seconds (the tests run it)
    python -m experiments.task_difficulty --sizes=[16,64] --steps=20000 --n_tasks=64

No model is trained. Two measurements, one run directory (``runs/task_difficulty-PRESET``):

1. **Learning curves (Figure 1).** For every size ``S`` of ``sizes``, ``n_tasks`` unseen AnyMDP
   tasks and ``n_tasks`` Garnet tasks per branching factor of ``garnet_branching`` (``S`` states,
   the same actions), each task its own learner, all tasks of a family run as one batch: TQL-UCB
   (tabular Q-learning with a UCB bonus, ``omnirl.evaluate.baselines.tql_ucb``) and PPO (per-task
   MLP actor-critic, ``omnirl.evaluate.baselines.ppo``) for ``steps`` environment steps. Every
   finished episode is scored ``(R - R_random) / (R_oracle - R_random)`` with the task's exact
   references (uniform random policy and the greedy ``Q*`` policy at discount 0.994, computed from
   the task's model), so 0 is random play and 1 the oracle whatever the family's reward scale.
   A task's curve is its mean score per step bin (by the step at which the episode ended); the
   figure draws the median over tasks with the interquartile band. Two measures of difficulty
   (``METRICS``): ``auc_median``, the median over tasks of each task's curve averaged over the run
   (learning speed; a median because single tasks' normalised scores are heavy-tailed: a task
   whose oracle barely beats random play magnifies noise), and ``final_gap_weighted``, the last
   quarter's summed return above random over the summed oracle gap (tasks with large gaps count
   more). A family is called harder only when the bootstrap 95% interval (resampling tasks) of
   the AnyMDP-minus-Garnet difference excludes 0.
2. **Stationary distributions (Figure 2).** ``sd_tasks`` AnyMDP and Garnet tasks with ``sd_states``
   states: the stationary distribution of the uniform random policy and of the oracle (terminal
   states reset to the start distribution), each task's states sorted by decreasing probability,
   median and 10-90% band over tasks (``omnirl.tasks.plots``). Measured: the share of visits that
   the least-visited half of the states receives, and the fraction of states that hold 90% of
   the visits.

Outputs: ``summary.json`` (``results``: ``curves``, ``tasks`` (per-family per-task numbers),
``comparisons``, ``stationary``, ``timing``), ``learning_curves.png``, ``stationary_distribution.png``.
Presets: ``smoke`` (seconds), ``laptop`` (default; S = 16, 32, 64, 32 tasks, 12,000 steps, about
3 CPU-minutes, dominated by PPO), ``paper`` (S = 16 ... 128, 256 tasks, 100,000 steps; documented,
not run here: about 2-3 CPU-hours of PPO).
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from typing import Any

import numpy as np

from experiments._common import Invocation, finish, main_of
from omnirl.experiment import log
from omnirl.rundir import cpu_seconds
from omnirl._validate import check_choice, check_int

NAME = "task_difficulty"
METHODS = ("tql_ucb", "ppo")
"""Baselines whose learning curves are measured."""
GARNET_STREAM = 0x6A27E7
"""Seed-stream tag of the Garnet tasks (task ``i``: ``(seed, GARNET_STREAM, S, b, i)``)."""
CI_LEVEL = 0.95
"""Level of the bootstrap interval of a median difference."""


@dataclasses.dataclass(frozen=True)
class TaskDifficultySettings:
    """What ``python -m experiments.task_difficulty`` measures."""

    sizes: tuple[int, ...] = (16, 32, 64)
    """State-space sizes ``S`` of the learning-curve tasks (AnyMDP needs ``S >= 8``)."""
    n_tasks: int = 32
    """Tasks per family and size (each task is its own learner)."""
    steps: int = 12000
    """Environment steps per task of every learning curve."""
    methods: tuple[str, ...] = METHODS
    """Baselines to run: ``tql_ucb`` and/or ``ppo``."""
    garnet_branching: tuple[int, ...] = (2,)
    """Branching factors ``b`` of the Garnet families (successor states per state-action pair)."""
    n_actions: int = 5
    """Actions of every task."""
    bins: int = 24
    """Step bins of the learning curves."""
    sd_states: int = 32
    """States of the tasks of the stationary-distribution figure."""
    sd_tasks: int = 64
    """Tasks per family of the stationary-distribution figure."""
    bootstrap: int = 2000
    """Bootstrap resamples of the interval of a median difference."""

    def __post_init__(self) -> None:
        if isinstance(self.sizes, (str, bytes)) or not self.sizes:
            raise ValueError(f"sizes must be a non-empty list of integers, got {self.sizes!r}")
        for s in self.sizes:
            check_int("sizes", s, min_value=8)
        if len(set(self.sizes)) != len(self.sizes):
            raise ValueError(f"sizes must not repeat, got {list(self.sizes)}")
        check_int("n_tasks", self.n_tasks, min_value=2)
        check_int("steps", self.steps, min_value=2)
        if isinstance(self.methods, (str, bytes)) or not self.methods:
            raise ValueError(f"methods must be a non-empty list of {list(METHODS)}, got {self.methods!r}")
        for m in self.methods:
            check_choice("methods", m, METHODS)
        if len(set(self.methods)) != len(self.methods):
            raise ValueError(f"methods must not repeat, got {list(self.methods)}")
        check_int("sd_states", self.sd_states, min_value=8)
        if isinstance(self.garnet_branching, (str, bytes)) or not self.garnet_branching:
            raise ValueError(f"garnet_branching must be a non-empty list of integers, got {self.garnet_branching!r}")
        for b in self.garnet_branching:
            check_int("garnet_branching", b, min_value=1, max_value=min(min(self.sizes), self.sd_states))
        if len(set(self.garnet_branching)) != len(self.garnet_branching):
            raise ValueError(f"garnet_branching must not repeat, got {list(self.garnet_branching)}")
        check_int("n_actions", self.n_actions, min_value=2)
        check_int("bins", self.bins, min_value=2, max_value=self.steps)
        check_int("sd_tasks", self.sd_tasks, min_value=2)
        check_int("bootstrap", self.bootstrap, min_value=100)


PRESETS = {
    "smoke": TaskDifficultySettings(sizes=(16,), n_tasks=4, steps=600, bins=6, sd_states=16, sd_tasks=6,
                                    bootstrap=200),
    "laptop": TaskDifficultySettings(),
    "paper": TaskDifficultySettings(sizes=(16, 32, 64, 128), n_tasks=256, steps=100_000, bins=50,
                                    garnet_branching=(2, 5), sd_states=64, sd_tasks=256),
}


# --------------------------------------------------------------------------- helpers
def family_name(b: int | None) -> str:
    """``anymdp`` (``b is None``) or ``garnet_bB``."""
    return "anymdp" if b is None else f"garnet_b{b}"


def make_tasks(family_b: int | None, S: int, n: int, seed: int, n_actions: int) -> list:
    """``n`` tasks of ``S`` states: unseen AnyMDP tasks (``family_b is None``, evaluation streams)
    or Garnet tasks with branching ``family_b``."""
    from omnirl.evaluate.envs.anymdp import unseen_tasks
    from omnirl.tasks import sample_garnet

    if family_b is None:
        return unseen_tasks(S, n, seed=seed, n_actions=n_actions)
    return [sample_garnet(S, n_actions, seed=(seed, GARNET_STREAM, S, family_b, i), branching=family_b)
            for i in range(n)]


def task_curves(episodes, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(centres (bins,), scores (B, bins), gap_weighted (bins,))``: each task's mean normalised
    score of the episodes that ended in each of ``bins`` equal step bins (NaN where none ended), and
    the gap-weighted score of each bin over all tasks, ``sum(R - R_rand) / sum(R_opt - R_rand)``."""
    B = len(episodes.infos)
    edges = np.linspace(0, episodes.steps, bins + 1)
    idx = np.clip(np.searchsorted(edges, episodes.end_step, side="left") - 1, 0, bins - 1)  # (E,)
    sums, counts = np.zeros((B, bins)), np.zeros((B, bins))
    np.add.at(sums, (episodes.row, idx), episodes.score)
    np.add.at(counts, (episodes.row, idx), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = np.where(counts > 0, sums / np.maximum(counts, 1.0), np.nan)  # (B, bins)
    rnd = np.array([i.random_return for i in episodes.infos])[episodes.row]
    opt = np.array([i.oracle_return for i in episodes.infos])[episodes.row]
    num = np.bincount(idx, weights=episodes.raw_return - rnd, minlength=bins)
    den = np.bincount(idx, weights=opt - rnd, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = np.where(np.abs(den) > 1e-12, num / den, np.nan)
    return (edges[:-1] + edges[1:]) / 2, scores, gap


def task_finals(episodes, fraction: float = 0.25) -> dict[str, np.ndarray]:
    """Per task (``(B,)`` each), over the episodes that ended in the last ``fraction`` of the run:
    ``final`` the mean normalised score (NaN for a task with none), ``gain`` the summed raw return
    above random play and ``span`` the summed oracle gap (``gain / span`` summed over tasks is the
    gap-weighted score)."""
    B = len(episodes.infos)
    late = episodes.end_step > (1.0 - fraction) * episodes.steps
    row = episodes.row[late]
    rnd = np.array([i.random_return for i in episodes.infos])
    opt = np.array([i.oracle_return for i in episodes.infos])
    sums = np.bincount(row, weights=episodes.score[late], minlength=B)
    counts = np.bincount(row, minlength=B)
    with np.errstate(invalid="ignore", divide="ignore"):
        final = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    gain = np.bincount(row, weights=episodes.raw_return[late] - rnd[row], minlength=B)
    return {"final": final, "gain": gain, "span": counts * (opt - rnd)}


def difference(a: dict, b: dict, statistic, resamples: int, seed: int) -> dict[str, float]:
    """``statistic(a) - statistic(b)`` of two task sets (dicts of per-task arrays, resampled
    together by task) with a bootstrap ``CI_LEVEL`` interval."""
    rng = np.random.default_rng(seed)
    na, nb = len(next(iter(a.values()))), len(next(iter(b.values())))
    draws = np.empty(resamples)
    for k in range(resamples):
        ia, ib = rng.integers(0, na, na), rng.integers(0, nb, nb)
        draws[k] = statistic({n: v[ia] for n, v in a.items()}) - statistic({n: v[ib] for n, v in b.items()})
    draws = draws[np.isfinite(draws)]
    d = statistic(a) - statistic(b)
    if draws.size == 0 or not np.isfinite(d):
        return {"difference": float("nan"), "low": float("nan"), "high": float("nan")}
    lo, hi = np.quantile(draws, [(1 - CI_LEVEL) / 2, (1 + CI_LEVEL) / 2])
    return {"difference": float(d), "low": float(lo), "high": float(hi)}


def median_auc(t: dict) -> float:
    """Median over tasks of the per-task score averaged over the run (NaNs dropped)."""
    x = t["auc"][np.isfinite(t["auc"])]
    return float(np.median(x)) if x.size else float("nan")


def gap_weighted(t: dict) -> float:
    """Gap-weighted score of the last quarter: summed gain over summed oracle gap."""
    span = float(np.sum(t["span"]))
    return float(np.sum(t["gain"]) / span) if abs(span) > 1e-12 else float("nan")


METRICS = {"auc_median": median_auc, "final_gap_weighted": gap_weighted}
"""The two difficulty measures: ``auc_median`` (median over tasks of the normalised score averaged
over the run: learning speed, robust to single tasks) and ``final_gap_weighted`` (the last
quarter's summed return above random over the summed oracle gap: tasks with large gaps count
more)."""


def stationary_numbers(profiles: dict) -> dict[str, dict[str, float]]:
    """Per policy, medians over tasks of: the share of visits of the least-visited half of the
    states (``bottom_half_mass``), the fraction of states holding 90% of the visits
    (``states_for_90pct``), and the most-visited state's probability (``top_state``)."""
    out = {}
    for p in ("random", "oracle"):
        bottom, cover, top = [], [], []
        for d, n in zip(profiles[p], profiles["n_states"]):
            d = np.sort(np.asarray(d)[:n])[::-1]  # (n,) decreasing
            d = d / d.sum()
            bottom.append(d[n - n // 2:].sum())
            cover.append((np.searchsorted(np.cumsum(d), 0.9) + 1) / n)
            top.append(d[0])
        out[p] = {"bottom_half_mass": float(np.median(bottom)), "states_for_90pct": float(np.median(cover)),
                  "top_state": float(np.median(top))}
    return out


# --------------------------------------------------------------------------- figures
def plot_learning_curves(curves: dict, sizes, methods, families, path) -> Any:
    """One panel per (method, size): median normalised score over tasks against steps, a line
    (and interquartile band) per family."""
    from matplotlib.figure import Figure

    from omnirl.tasks.plots import save_figure

    colours = {"anymdp": "#c0392b"}
    garnet_colours = iter(["#1f5fa8", "#17becf", "#2ca02c", "#9467bd"])
    fig = Figure(figsize=(3.8 * len(sizes), 3.0 * len(methods)))
    axes = fig.subplots(len(methods), len(sizes), squeeze=False)
    for fam in families:
        if fam not in colours:
            colours[fam] = next(garnet_colours)
    for i, m in enumerate(methods):
        for j, S in enumerate(sizes):
            ax = axes[i, j]
            for fam in families:
                c = curves[f"{fam}/{S}/{m}"]
                x = np.asarray(c["steps"])
                ax.plot(x, c["median"], color=colours[fam], lw=1.8, label=fam)
                ax.fill_between(x, c["q25"], c["q75"], color=colours[fam], alpha=0.15, lw=0)
            ax.axhline(0.0, color="grey", lw=0.7, ls=":")
            ax.axhline(1.0, color="grey", lw=0.7, ls="--")
            ax.set_title(f"{m}, S = {S}", fontsize=9)
            ax.set_xlabel("environment steps")
            ax.set_ylabel("normalised score (median)")
            ax.set_ylim(-0.5, 1.2)
            ax.legend(fontsize=7)
    fig.suptitle("Learning curves on AnyMDP and Garnet (median over tasks, band: 25-75%)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


# --------------------------------------------------------------------------- the experiment
def measure_curves(s: TaskDifficultySettings, seed: int) -> tuple[dict, dict, dict]:
    """``(curves, per-task numbers, seconds)`` of every (family, size, method)."""
    from omnirl.evaluate.baselines import run_baseline
    from omnirl.evaluate.envs.base import MDPBatch

    families = [None, *s.garnet_branching]
    curves, tasks, seconds = {}, {}, {}
    for S in s.sizes:
        for b in families:
            fam = family_name(b)
            batch = MDPBatch(make_tasks(b, S, s.n_tasks, seed, s.n_actions), names=[f"{fam}{S}"] * s.n_tasks,
                             family=fam)
            for m in s.methods:
                key = f"{fam}/{S}/{m}"
                c0 = cpu_seconds()
                episodes = run_baseline(m, batch, s.steps, seed)
                seconds[key] = cpu_seconds() - c0
                x, per_task, gap = task_curves(episodes, s.bins)
                with warnings.catch_warnings():  # a bin where no task finished an episode is NaN
                    warnings.simplefilter("ignore", RuntimeWarning)
                    q25, med, q75 = np.nanquantile(per_task, [0.25, 0.5, 0.75], axis=0)
                    auc = np.nanmean(per_task, axis=1)  # (B,)
                late = task_finals(episodes)
                curves[key] = {"family": fam, "S": S, "method": m, "steps": x, "median": med, "q25": q25,
                               "q75": q75, "gap_weighted": gap}
                gap_per_step = [(i.oracle_return - i.random_return) / i.max_episode_steps for i in batch.infos]
                tasks[key] = {"auc": auc, **late, "episodes": int(len(episodes)),
                              "reward_gap_per_step": float(np.median(gap_per_step))}
                log(f"{key}: auc median {median_auc(tasks[key]):.3f}, final gap-weighted "
                    f"{gap_weighted(tasks[key]):.3f} ({seconds[key]:.1f} CPU s)")
    return curves, tasks, seconds


def compare(s: TaskDifficultySettings, tasks: dict, seed: int) -> list[dict]:
    """AnyMDP against every Garnet family, per size, method and metric of ``METRICS``: the
    difference (AnyMDP minus Garnet) with its bootstrap interval over tasks, and which family is
    harder (``anymdp``, the Garnet family, or ``unclear`` when the interval holds 0)."""
    rows = []
    for S in s.sizes:
        for m in s.methods:
            a = tasks[f"anymdp/{S}/{m}"]
            for b in s.garnet_branching:
                g = tasks[f"{family_name(b)}/{S}/{m}"]
                for k, (metric, stat) in enumerate(METRICS.items()):
                    keys = ("auc", "final", "gain", "span")
                    d = difference({n: a[n] for n in keys}, {n: g[n] for n in keys}, stat, s.bootstrap, seed + k)
                    harder = "anymdp" if d["high"] < 0 else family_name(b) if d["low"] > 0 else "unclear"
                    rows.append({"S": S, "method": m, "garnet": family_name(b), "metric": metric,
                                 "anymdp": stat(a), "other": stat(g), **d, "harder": harder,
                                 "reward_gap_per_step": {"anymdp": a["reward_gap_per_step"],
                                                         "other": g["reward_gap_per_step"]}})
    return rows


def stationary(s: TaskDifficultySettings, seed: int, path) -> tuple[dict, Any]:
    """Stationary-distribution numbers of AnyMDP and the first Garnet family, and the figure."""
    from omnirl.tasks.plots import plot_stationary_distributions, save_figure, stationary_profiles

    b = s.garnet_branching[0]
    sets = {"anymdp": make_tasks(None, s.sd_states, s.sd_tasks, seed + 1, s.n_actions),
            family_name(b): make_tasks(b, s.sd_states, s.sd_tasks, seed + 1, s.n_actions)}
    numbers, fig = {}, None
    for fam, ts in sets.items():
        numbers[fam] = stationary_numbers(stationary_profiles(ts))
        label = "AnyMDP" if fam == "anymdp" else f"Garnet (b={b})"
        fig = plot_stationary_distributions(ts, ax=None if fig is None else fig.axes[0], label=label)
    fig.axes[0].set_title(f"Stationary distributions, S = {s.sd_states}", fontsize=10)
    return numbers, save_figure(fig, path)


def describe(s: TaskDifficultySettings, comparisons: list[dict], sd: dict) -> str:
    """The finding, from the numbers."""
    parts = [f"Learning curves ({s.n_tasks} tasks per family and size, {s.steps} steps per task; a family is "
             f"called harder when the 95% bootstrap interval of the difference excludes 0)."]
    reproduced = []
    for metric, label in (("auc_median", "median normalised score over the run"),
                          ("final_gap_weighted", "gap-weighted score of the last quarter")):
        for m in s.methods:
            for b in s.garnet_branching:
                rows = [c for c in comparisons if c["metric"] == metric and c["method"] == m
                        and c["garnet"] == family_name(b)]
                cases = "; ".join(f"S={c['S']} {c['anymdp']:.2f} vs {c['other']:.2f}" for c in rows)
                harder_a = [c["S"] for c in rows if c["harder"] == "anymdp"]
                harder_g = [c["S"] for c in rows if c["harder"] not in ("anymdp", "unclear")]
                sizes = lambda xs: ", ".join(map(str, xs)) or "none"  # noqa: E731
                verdict = ("AnyMDP harder at every size" if len(harder_a) == len(rows) else
                           "no difference resolved" if not harder_a and not harder_g else
                           f"AnyMDP harder at S = {sizes(harder_a)}, {family_name(b)} harder at S = "
                           f"{sizes(harder_g)}, the rest unresolved")
                if len(harder_a) == len(rows):
                    reproduced.append(f"{m} ({label})")
                parts.append(f"{m}, {label}, AnyMDP vs {family_name(b)}: {cases}: {verdict}.")
    n_cases = len(s.methods) * len(s.garnet_branching) * len(METRICS)
    if all(c["harder"] == "unclear" for c in comparisons):
        parts.append("No difference was resolved (too few tasks or steps), so this run neither reproduces nor "
                     "contradicts the paper's Figure 1.")
    elif len(reproduced) == n_cases:
        parts.append("The paper's Figure 1 (AnyMDP is harder than Garnet for both baselines) is reproduced by every "
                     "method and measure.")
    elif reproduced:
        parts.append(f"The paper's Figure 1 direction (AnyMDP harder) holds at every size only for "
                     f"{', '.join(reproduced)}; it is not reproduced uniformly.")
    else:
        parts.append("The paper's Figure 1 direction (AnyMDP harder at every size) is not reproduced by any "
                     "method and measure here.")
    tql = [c for c in comparisons if c["method"] == "tql_ucb" and c["metric"] == "auc_median"
           and c["harder"] not in ("anymdp", "unclear")]
    if tql:
        gaps = tql[0]["reward_gap_per_step"]
        parts.append(f"Where TQL-UCB found Garnet harder, note the reward scales: the oracle's per-step reward "
                     f"advantage over random play is {gaps['anymdp']:.3g} on AnyMDP and {gaps['other']:.3g} on "
                     f"{tql[0]['garnet']} (median, S={tql[0]['S']}), while TQL-UCB's exploration bonus (c = 1) is in "
                     f"absolute reward units.")
    a, gname = sd["anymdp"], next(k for k in sd if k != "anymdp")
    g = sd[gname]
    parts.append(
        f"Stationary distributions (S={s.sd_states}, {s.sd_tasks} tasks each): under the uniform random policy "
        f"the least-visited half of the states receives {100 * a['random']['bottom_half_mass']:.2g}% of the "
        f"visits on AnyMDP and {100 * g['random']['bottom_half_mass']:.2g}% on {gname} (medians); under the "
        f"oracle, 90% of the visits fall on {100 * a['oracle']['states_for_90pct']:.0f}% of the states on "
        f"AnyMDP and {100 * g['oracle']['states_for_90pct']:.0f}% on {gname}.")
    if a["random"]["bottom_half_mass"] < g["random"]["bottom_half_mass"]:
        ratio = g["random"]["bottom_half_mass"] / max(a["random"]["bottom_half_mass"], 1e-300)
        parts.append(f"Random play visits AnyMDP's tail {ratio:.2g} times less than Garnet's, the direction of the "
                     f"paper's Figure 2 (decaying versus flat profile).")
    else:
        parts.append("Random play does not visit AnyMDP's tail less than Garnet's here, unlike the paper's Figure 2.")
    parts.append("Baselines: TQL-UCB (tabular Q-learning with a UCB bonus; the paper's Figure 1 names plain TQL) "
                 "and a small per-task PPO, both scored on their own training episodes.")
    return " ".join(parts)


def run(inv: Invocation) -> dict:
    s: TaskDifficultySettings = inv.settings
    t0, c0 = time.perf_counter(), cpu_seconds()
    curves, tasks, seconds = measure_curves(s, inv.seed)
    comparisons = compare(s, tasks, inv.seed)
    families = ["anymdp", *(family_name(b) for b in s.garnet_branching)]
    lc = plot_learning_curves(curves, s.sizes, s.methods, families, inv.out / "learning_curves.png")
    c1 = cpu_seconds()
    sd, sd_fig = stationary(s, inv.seed, inv.out / "stationary_distribution.png")
    sd_cpu = cpu_seconds() - c1

    table = []
    for S in s.sizes:
        for m in s.methods:
            for fam in families:
                t = tasks[f"{fam}/{S}/{m}"]
                table.append({"S": S, "method": m, "family": fam,
                              "auc_median": median_auc(t), "final_median": float(np.nanmedian(t["final"])),
                              "final_gap_weighted": gap_weighted(t), "episodes": t["episodes"]})
    finding = describe(s, comparisons, sd)
    results = {"curves": curves, "tasks": tasks, "comparisons": comparisons, "stationary": sd,
               "timing": {"cpu_seconds": cpu_seconds() - c0, "curves_cpu_seconds": seconds,
                          "stationary_cpu_seconds": sd_cpu}}
    return finish(inv, NAME, results=results, table=table, figures=[lc, sd_fig], finding=finding,
                  seconds=time.perf_counter() - t0)


main = main_of(NAME, PRESETS, run, __doc__)

if __name__ == "__main__":
    raise SystemExit(main())
