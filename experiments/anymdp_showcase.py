"""AnyMDP showcase: generate a task set, measure its properties, simulate it, draw it.

    python -m experiments.anymdp_showcase                  # the embedded small default (~1 minute)
    python -m experiments.anymdp_showcase --n 1000 --states 16:128 --workers 2 --out runs/big
    python -m experiments.anymdp_showcase --config showcase.yaml --print_config   # options from YAML

Steps (everything lands in one run directory with a ``summary.json``):

1. **Generate** a task set of ``--n`` AnyMDP tasks (sharded on disk, resumable, ``--workers``).
2. **Measure** the generator's properties at S = 16, 32, 64, 128 on fresh tasks: speed, draws per
   accepted task, stationary-distribution decay, value-rank correlation, pitfall/goal ordering.
3. **Simulate** every task of the set at once in the batched simulator under the uniform random
   policy and under the oracle (greedy on the exact Q* at gamma 0.994), and compare the simulated
   episodic returns with the solver's exact expected returns (normalised score: random 0, oracle 1).
4. **Draw** the transition kernel of one task ordered by decreasing stationary probability
   (paper Figure 12) and the stationary distributions of random and oracle policies against rank
   for AnyMDP and Garnet (paper Figure 2).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

from omnirl._validate import check_int
from omnirl.config import Command, config_to_dict, run_command
from omnirl.tasks import BatchedSimulator, reference_returns, sample_anymdp, sample_garnet, solve
from omnirl.tasks.plots import plot_stationary_distributions, plot_transition_kernel, save_figure
from omnirl.tasks.stats import format_summary, summarize, task_properties
from omnirl.fileio import atomic_write_json
from omnirl.tasks.taskset import TaskSet, generation_spec

PROG = "python -m experiments.anymdp_showcase"
PROPERTY_SIZES = {16: 32, 32: 24, 64: 16, 128: 8}  # S -> fresh tasks measured


@dataclasses.dataclass(frozen=True)
class ShowcaseOptions:
    """The showcase's settings (checked before anything runs)."""

    n: int = 128
    """Tasks in the generated set."""
    states: str | int = "16:64"
    """S or MIN:MAX: an observation space of MAX ids, the active states of each task drawn in [MIN, MAX]."""
    actions: int = 5
    """Actions of every task."""
    seed: int = 0
    """Seed of the task set, the fresh tasks and the simulation."""
    workers: int = 2
    """Task-generation processes."""
    sim_steps: int = 3000
    """Simulated steps per task and policy."""
    out: str = "runs/anymdp_showcase"
    """Run directory (the task set, pictures and summary.json)."""

    def __post_init__(self) -> None:
        generation_spec(self.n, self.states, self.actions, self.seed, "anymdp", 1, {})  # the task set's settings
        check_int("workers", self.workers, min_value=1)
        check_int("sim_steps", self.sim_steps, min_value=1)


def measure_sizes(seed: int, n_actions: int) -> list[dict]:
    """Generation speed and the paper's properties at several sizes."""
    rows = []
    for S, k in PROPERTY_SIZES.items():
        stats, tasks = [], []
        t0 = time.perf_counter()
        for i in range(k):
            st: dict = {}
            tasks.append(sample_anymdp(S, n_actions, seed=(seed + 1, S, i), stats=st))
            stats.append(st["attempts"])
        dt = time.perf_counter() - t0
        props = [task_properties(t) for t in tasks]
        ratio = [p["sd_low_quarter"] / p["sd_high_quarter"] for p in props]
        rows.append({
            "S": S, "tasks": k, "tasks_per_s": k / dt, "mean_draws": float(np.mean(stats)),
            "sd_low_over_high_median": float(np.median(ratio)),
            "sd_top_quarter_median": float(np.median([p["sd_high_quarter"] for p in props])),
            "value_rank_corr_median": float(np.median([p["value_rank_corr"] for p in props])),
            "pit_below_frac": float(np.mean([p["pit_below"] for p in props])),
            "top_above_start_frac": float(np.mean([p["top_above_start"] for p in props])),
            "goal_frac": float(np.mean([p["goal"] for p in props])),
        })
    return rows


def simulate(tasks: TaskSet, steps: int, seed: int) -> dict:
    """Random and oracle policies on every task at once; simulated vs exact returns."""
    B = len(tasks)
    n_pad = max(t.n_states for t in tasks)
    oracle = np.zeros((B, n_pad), dtype=np.int64)  # (B, n_pad) oracle action per hidden rank
    exact = np.zeros((B, 2))  # (B, [random, oracle]) expected episodic returns
    for i, t in enumerate(tasks):
        oracle[i, :t.n_states] = solve(t, 0.994).policy
        exact[i] = reference_returns(t, 0.994)
    out = {}
    rng = np.random.default_rng(seed)
    for col, name in enumerate(["random", "oracle"]):
        sim = BatchedSimulator(list(tasks), seeds=[(seed, i) for i in range(B)])
        ret = np.zeros(B)  # running return of the current episode
        total, episodes = np.zeros(B), np.zeros(B)
        t0 = time.perf_counter()
        for _ in range(steps):
            if name == "random":
                a = rng.integers(0, sim.n_actions, B)
            else:
                a = oracle[np.arange(B), sim.rank]
            _, r, term, trunc = sim.step(a)
            ret += r
            done = term | trunc
            total[done] += ret[done]
            episodes[done] += 1
            ret[done] = 0.0
        dt = time.perf_counter() - t0
        ok = episodes > 0
        mc = total[ok] / episodes[ok]
        span = exact[ok, 1] - exact[ok, 0]
        score = (mc - exact[ok, 0]) / span
        out[name] = {
            "env_steps_per_s": B * steps / dt, "episodes": int(episodes.sum()),
            "tasks_with_episodes": int(ok.sum()),
            "normalised_score_median": float(np.median(score)),
            "normalised_score_iqr": [float(np.percentile(score, 25)), float(np.percentile(score, 75))],
            "simulated_minus_exact_over_span_median": float(np.median((mc - exact[ok, col]) / span)),
        }
    return out


def showcase(a: ShowcaseOptions) -> dict:
    """Generate, measure, simulate and draw (the module docstring's steps); returns the summary."""
    run = Path(a.out)

    print(f"[1/4] generating {a.n} AnyMDP tasks (states {a.states}, {a.actions} actions) -> {run / 'tasks'}")
    t0 = time.perf_counter()
    tasks = TaskSet.generate(a.n, a.states, a.actions, seed=a.seed, out=run / "tasks",
                             workers=a.workers, progress=True)
    gen_s = time.perf_counter() - t0
    set_summary = summarize(task_properties(t) for t in tasks)
    print(f"      {len(tasks)} tasks in {gen_s:.1f} s, content hash {tasks.content_hash()[:16]}")
    print(format_summary(set_summary))

    print("[2/4] generator properties on fresh tasks at several sizes")
    sizes = measure_sizes(a.seed, a.actions)
    print(f"      {'S':>4} {'tasks/s':>8} {'draws':>6} {'SD low/high':>12} {'SD top 1/4':>11} "
          f"{'corr(V,rank)':>13} {'pits<all':>9} {'top>start':>10}")
    for r in sizes:
        print(f"      {r['S']:>4} {r['tasks_per_s']:>8.1f} {r['mean_draws']:>6.2f} "
              f"{r['sd_low_over_high_median']:>12.1f} {r['sd_top_quarter_median']:>11.2e} "
              f"{r['value_rank_corr_median']:>13.2f} {r['pit_below_frac']:>9.2f} {r['top_above_start_frac']:>10.2f}")

    print(f"[3/4] simulating all {len(tasks)} tasks at once for {a.sim_steps} steps per policy")
    sim = simulate(tasks, a.sim_steps, a.seed)
    for name, r in sim.items():
        print(f"      {name:>6}: normalised score median {r['normalised_score_median']:+.3f} "
              f"(IQR {r['normalised_score_iqr'][0]:+.3f} .. {r['normalised_score_iqr'][1]:+.3f}), "
              f"simulated-exact {r['simulated_minus_exact_over_span_median']:+.4f} of the span, "
              f"{r['episodes']} episodes, {r['env_steps_per_s'] / 1e6:.2f} M env-steps/s")

    print("[4/4] pictures")
    pick = next((t for t in tasks if t.goal is not None and len(t.pitfalls) > 0), tasks[0])
    kernel = save_figure(plot_transition_kernel(pick), run / "anymdp_kernel.png")
    fig = plot_stationary_distributions(list(tasks), label="AnyMDP")
    S = max(t.n_obs for t in tasks)
    garnet = [sample_garnet(S, a.actions, seed=(a.seed, i), branching=2) for i in range(min(len(tasks), 64))]
    plot_stationary_distributions(garnet, ax=fig.axes[0], label="Garnet (b=2)")
    sd = save_figure(fig, run / "stationary_distribution.png")
    print(f"      {kernel}\n      {sd}")

    summary = {"args": config_to_dict(a), "task_set": {"n_tasks": len(tasks), "content_hash": tasks.content_hash(),
                                              "generate_s": gen_s, "properties": set_summary},
               "sizes": sizes, "simulation": sim,
               "pictures": {"kernel": str(kernel), "stationary_distribution": str(sd)}}
    atomic_write_json(run / "summary.json", summary)
    print(f"summary: {run / 'summary.json'}")
    return summary


def main(argv: list[str] | None = None) -> int:
    """The command line: ``--help`` lists every option, ``--config FILE`` reads them from YAML."""
    def run(a: ShowcaseOptions) -> int:
        showcase(a)
        return 0
    return run_command(PROG, __doc__, Command(ShowcaseOptions, run), argv)


if __name__ == "__main__":
    sys.exit(main())
