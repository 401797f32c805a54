"""Task distribution: ``omnirl.tasks.anymdp.sample_anymdp`` against the reference generator
``xenoverse.anymdp.AnyMDPTaskSampler`` (xenoverse 0.1.14.0), side by side in one run.

    python benchmarks/compare_generators.py [--sizes 16,32,64,128] [--tasks 256,256,128,64]
                                            [--ours-factor 4] [--actions 5] [--seed 2000]
                                            [--budget 10000] [--quick] [--out FILE] [--markdown FILE]

For every state-space size ``S`` the reference generates ``--tasks`` tasks (seeds ``seed + i``)
and omnirl ``--ours-factor`` times as many (seeds ``seed + i``; omnirl is cheap, so its side of the
comparison carries little sampling noise). Every task is measured in hidden-rank order by
``omnirl.tasks.stats.distribution_statistics`` (stationary distributions, values, episode lengths,
reward ranges: exact, no sampling), plus:

* ``draws``: draws per accepted task (rejected draws + 1; the reference's are counted by wrapping
  its ``sample_mdp``);
* ``tql_ucb_score`` / ``random_score``: the normalised score ``(R - R_random) / (R_oracle - R_random)``
  of TQL-UCB and of uniform random play over the last quarter of ``--budget`` environment steps,
  each task its own learner (all tasks of one generator run as one batch).

Per statistic and size the report gives each generator's median and 10-90% band, the ratio of the
medians (omnirl / reference) with a bootstrap 95% interval (resampling tasks of both sides), and
whether the medians agree:

* within 25% (ratio in [0.8, 1.25]); or,
* for a statistic that spans an order of magnitude across the reference's tasks (90% quantile over
  10% quantile above 10 in absolute value), within a factor of 1.5 with overlapping 10-90% bands;
* ``random_score`` is 0 at random play by construction, so a ratio means nothing there: it agrees
  when the medians differ by at most 0.05.

Three more columns say how far a verdict can be trusted. ``power``: how often a generator
distributed exactly like omnirl's would agree with the reference at these sample sizes (two samples
of omnirl's tasks, of the reference's and of omnirl's sizes, resampled ``POWER_DRAWS`` times, judged
by the same rule); where it is far below 1, a "no" does not show that the distributions differ. ``ks``: the two-sample Kolmogorov-Smirnov
distance between the two samples and its asymptotic p-value (small p: the distributions differ).
``reference_halves``: the same agreement rule applied between the reference's even- and odd-seeded
tasks; where the reference disagrees with itself, the median of that statistic is not resolved at
this number of tasks (a statistic whose median falls between two modes, such as the steps between
resets of tasks with and without a low pitfall, needs thousands of tasks).

Quantiles take order statistics (no interpolation), so ``inf`` (``steps_between_resets`` of a task
without terminal states) is handled exactly; in the JSON it is written as the string ``"inf"``.
One JSON document goes to stdout (progress to stderr); ``--out`` also writes it, ``--markdown`` the
table, both atomically.
"""

from __future__ import annotations

# first: one core for both generators (numpy/BLAS single-threaded, set before numpy is imported)
from _common import emit, int_list, log, machine_info, positive_int

import argparse  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from importlib import metadata  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from omnirl.evaluate.baselines import run_baseline  # noqa: E402
from omnirl.evaluate.envs.base import MDPBatch  # noqa: E402
from omnirl.evaluate.records import EpisodeRecorder, Episodes  # noqa: E402
from omnirl.fileio import atomic_write_bytes  # noqa: E402
from omnirl.tasks import MDPTask, sample_anymdp  # noqa: E402
from omnirl.tasks.stats import DISTRIBUTION_STATISTICS, distribution_statistics  # noqa: E402

DEFAULT_SIZES = (16, 32, 64, 128)
DEFAULT_TASKS = (256, 256, 128, 64)
"""Reference tasks per size (the reference needs about 6 s per task at S = 128)."""
QUICK_TASKS = 6
EXTRA_STATISTICS = {
    "draws": "draws per accepted task",
    "tql_ucb_score": "TQL-UCB's normalised score over the last quarter of the budget",
    "random_score": "uniform random play's normalised score over the last quarter of the budget",
}
STATISTICS = {**DISTRIBUTION_STATISTICS, **EXTRA_STATISTICS}
"""Every statistic compared, with its description."""
RELATIVE_BOUND = 1.25
"""Medians agree when their ratio lies in ``[1 / RELATIVE_BOUND, RELATIVE_BOUND]``..."""
WIDE_BOUND = 1.5
"""...or, for a statistic spanning an order of magnitude, in ``[1 / WIDE_BOUND, WIDE_BOUND]``."""
WIDE_SPAN = 10.0
"""A statistic is wide when the reference's 90% / 10% quantile exceeds this (in absolute value)."""
ABSOLUTE_BOUND = {"random_score": 0.05}
"""Statistics centred on 0 by construction, compared by the absolute difference of medians."""
BOOTSTRAP = 1000
"""Bootstrap resamples of the ratio of medians."""
POWER_DRAWS = 400
"""Resamples of omnirl's tasks behind ``power``."""
MISSING_REFERENCE = ("compare_generators: the reference generator xenoverse is not importable ({err}).\n"
                     "Install the `bench` extra (pip install -e '.[bench]'), or run `make bench`.")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=lambda t: int_list(t, "--sizes", 8), default=list(DEFAULT_SIZES),
                   help="comma-separated state-space sizes (default: 16,32,64,128)")
    p.add_argument("--tasks", type=lambda t: int_list(t, "--tasks", 2), default=None,
                   help="reference tasks per size, one number or one per size "
                        f"(default: {','.join(map(str, DEFAULT_TASKS))}; {QUICK_TASKS} with --quick)")
    p.add_argument("--ours-factor", type=positive_int, default=4,
                   help="omnirl generates this many times the reference's tasks (default: 4)")
    p.add_argument("--actions", type=positive_int, default=5, help="action-space size (default: 5)")
    p.add_argument("--seed", type=int, default=2000, help="task i of both generators uses seed + i")
    p.add_argument("--budget", type=positive_int, default=10_000,
                   help="environment steps of TQL-UCB and random play per task (default: 10000)")
    p.add_argument("--quick", action="store_true", help="a few tasks and a short budget, for smoke tests")
    p.add_argument("--out", type=Path, default=None, help="also write the JSON here (atomically)")
    p.add_argument("--markdown", type=Path, default=None, help="write the Markdown table here (atomically)")
    return p


def fail(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(2)


def import_reference():
    """``(AnyMDPTaskSampler, its module)`` from xenoverse, or exit with a clear message."""
    try:
        from xenoverse.anymdp import AnyMDPTaskSampler
        from xenoverse.anymdp import task_sampler
    except ImportError as err:  # xenoverse itself, or one of its undeclared deps (attrs, networkx)
        sys.exit(MISSING_REFERENCE.format(err=err))
    return AnyMDPTaskSampler, task_sampler


def from_reference(task: dict, seed: int) -> MDPTask:
    """The reference's task dict as an ``MDPTask`` (hidden-rank order, as the reference builds it)."""
    P = np.asarray(task["transition"], dtype=np.float64)  # (n, A, n)
    n = P.shape[0]
    terminal = np.zeros(n, dtype=bool)
    terminal[np.asarray(task["s_e"], dtype=np.int64)] = True
    R = np.asarray(task["reward"], dtype=np.float64)
    return MDPTask(n_obs=int(task["ns"]), transition=P, reward=R,
                   reward_noise=np.broadcast_to(task["reward_noise"], R.shape),
                   start_states=np.asarray(task["s_0"], dtype=np.int64), start_probs=task["s_0_prob"],
                   terminal=terminal, goal=n - 1 if task["final_goal_terminate"] else None,
                   max_steps=max(1, int(round(float(task["max_steps"])))),
                   state_ids=task["state_mapping"], generator="xenoverse", params={}, seed=(seed,))


def reference_tasks(S: int, A: int, seeds: list[int], sampler, module) -> tuple[list[MDPTask], list[int], float]:
    """``(tasks, draws per task, seconds)`` of the reference; draws are counted by wrapping its
    ``sample_mdp`` (one call per draw, valid or not)."""
    original = module.sample_mdp
    count = [0]

    def counting(*args, **kwargs):
        count[0] += 1
        return original(*args, **kwargs)

    tasks, draws, t0 = [], [], time.perf_counter()
    module.sample_mdp = counting
    try:
        for i, seed in enumerate(seeds):
            count[0] = 0
            tasks.append(from_reference(sampler(S, A, seed=seed), seed))
            draws.append(count[0])
            if (i + 1) % 16 == 0:
                log(f"  S={S}: reference {i + 1}/{len(seeds)} tasks, {time.perf_counter() - t0:.0f}s")
    finally:
        module.sample_mdp = original
    return tasks, draws, time.perf_counter() - t0


def our_tasks(S: int, A: int, seeds: list[int]) -> tuple[list[MDPTask], list[int], float]:
    """``(tasks, draws per task, seconds)`` of omnirl."""
    tasks, draws, t0 = [], [], time.perf_counter()
    for seed in seeds:
        stats: dict = {}
        tasks.append(sample_anymdp(S, A, seed=seed, stats=stats))
        draws.append(stats["attempts"])
    return tasks, draws, time.perf_counter() - t0


def final_scores(episodes: Episodes, n_tasks: int, fraction: float = 0.25) -> np.ndarray:
    """``(n_tasks,)`` each task's mean normalised score over the episodes that ended in the last
    ``fraction`` of the run (NaN for a task with no such episode)."""
    late = episodes.end_step > (1.0 - fraction) * episodes.steps
    sums = np.bincount(episodes.row[late], weights=episodes.score[late], minlength=n_tasks)
    counts = np.bincount(episodes.row[late], minlength=n_tasks)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def random_play(batch: MDPBatch, steps: int, seed: int) -> Episodes:
    """Uniform random actions on every row of ``batch`` for ``steps`` steps."""
    rng = np.random.default_rng(seed)
    recorder = EpisodeRecorder(batch.infos)
    batch.reset(seed)
    A = np.array([info.n_actions for info in batch.infos])
    for _ in range(steps):
        recorder.record(batch.step(rng.integers(0, A)))
    return recorder.episodes()


def measure(tasks: list[MDPTask], draws: list[int], budget: int, seed: int) -> dict[str, np.ndarray]:
    """Every statistic of ``STATISTICS`` per task: ``{name: (n_tasks,) array}``."""
    rows = [distribution_statistics(t) for t in tasks]
    out = {k: np.array([r[k] for r in rows], dtype=np.float64) for k in DISTRIBUTION_STATISTICS}
    out["draws"] = np.asarray(draws, dtype=np.float64)
    batch = MDPBatch(tasks)
    out["tql_ucb_score"] = final_scores(run_baseline("tql_ucb", batch, budget, seed), len(tasks))
    out["random_score"] = final_scores(random_play(batch, budget, seed), len(tasks))
    return out


def quantile(x: np.ndarray, q) -> np.ndarray:
    """Order-statistic quantiles of the non-NaN values (exact with ``inf``)."""
    x = x[~np.isnan(x)]
    return np.quantile(x, q, method="inverted_cdf")


def ratio(a: float, b: float) -> float:
    """``a / b`` with ``inf / inf = 1``."""
    if math.isinf(a) and math.isinf(b) and (a > 0) == (b > 0):
        return 1.0
    if b == 0.0:
        return math.nan if a == 0.0 else math.inf
    return a / b


def ks_test(a: np.ndarray, b: np.ndarray) -> dict:
    """Two-sample Kolmogorov-Smirnov distance ``D`` and its asymptotic p-value (``inf`` allowed)."""
    a, b = np.sort(a[~np.isnan(a)]), np.sort(b[~np.isnan(b)])
    grid = np.concatenate([a, b])
    d = float(np.abs(np.searchsorted(a, grid, side="right") / a.size
                     - np.searchsorted(b, grid, side="right") / b.size).max())
    lam = math.sqrt(a.size * b.size / (a.size + b.size)) * d
    k = np.arange(1, 101)
    p = float(np.clip(2.0 * np.sum((-1.0) ** (k - 1) * np.exp(-2.0 * k ** 2 * lam ** 2)), 0.0, 1.0)) if lam > 0 else 1.0
    return {"D": d, "p": p}


def agreement(name: str, ref: np.ndarray, other: np.ndarray) -> dict:
    """The agreement of ``other`` with ``ref``: both sides' 10/50/90% quantiles, the ratio of the
    medians, whether the statistic is wide, whether the bands overlap, the rule and the verdict."""
    r_lo, r_med, r_hi = quantile(ref, [0.1, 0.5, 0.9])
    o_lo, o_med, o_hi = quantile(other, [0.1, 0.5, 0.9])
    rr = ratio(float(o_med), float(r_med))
    span = ratio(abs(float(r_hi)), abs(float(r_lo))) if r_lo * r_hi > 0 else math.inf
    wide = bool(max(span, 1.0 / span if span else math.inf) > WIDE_SPAN)
    overlap = bool(o_lo <= r_hi and r_lo <= o_hi)
    if name in ABSOLUTE_BOUND:
        bound = ABSOLUTE_BOUND[name]
        rule, agrees = f"|difference| <= {bound:g}", bool(abs(o_med - r_med) <= bound)
    elif wide:
        rule, agrees = f"within {WIDE_BOUND:g}x, bands overlap", bool(1.0 / WIDE_BOUND <= rr <= WIDE_BOUND and overlap)
    else:
        rule, agrees = f"within {RELATIVE_BOUND - 1:.0%}", bool(1.0 / RELATIVE_BOUND <= rr <= RELATIVE_BOUND)
    return {"reference": {"median": r_med, "q10": r_lo, "q90": r_hi, "tasks": int((~np.isnan(ref)).sum())},
            "omnirl": {"median": o_med, "q10": o_lo, "q90": o_hi, "tasks": int((~np.isnan(other)).sum())},
            "ratio": rr, "wide": wide, "bands_overlap": overlap, "rule": rule, "agrees": agrees}


def compare(name: str, ref: np.ndarray, ours: np.ndarray, rng: np.random.Generator) -> dict:
    """One statistic at one size: ``agreement`` with the ratio's bootstrap interval, the KS test,
    and the same verdict between the two halves of the reference's tasks."""
    ref_ok, ours_ok = ref[~np.isnan(ref)], ours[~np.isnan(ours)]
    boot = [ratio(float(quantile(rng.choice(ours_ok, ours_ok.size), 0.5)),
                  float(quantile(rng.choice(ref_ok, ref_ok.size), 0.5))) for _ in range(BOOTSTRAP)]
    ci = np.quantile(np.array(boot), [0.025, 0.975], method="inverted_cdf")
    halves = agreement(name, ref[0::2], ref[1::2])
    return {**agreement(name, ref, ours), "ratio_ci95": [float(ci[0]), float(ci[1])], "ks": ks_test(ref, ours),
            "reference_halves": {"ratio": halves["ratio"], "agrees": halves["agrees"]},
            "power": power(name, ref_ok.size, ours_ok, rng)}


def power(name: str, n_ref: int, ours: np.ndarray, rng: np.random.Generator, draws: int = POWER_DRAWS) -> float:
    """The share of ``draws`` resamples in which two samples of omnirl's tasks, of ``n_ref`` and of
    ``ours.size`` tasks, agree by ``agreement``'s rule: how often a generator distributed exactly
    like omnirl's would pass against this many reference tasks. Near 1, a "no" says the
    distributions differ; well below 1 (a median between two modes), the verdict is not decided
    at these sample sizes."""
    return float(np.mean([agreement(name, rng.choice(ours, n_ref), rng.choice(ours, ours.size))["agrees"]
                          for _ in range(draws)]))


def plain(x):
    """JSON-safe: numpy scalars to Python, infinities to ``"inf"`` / ``"-inf"``, NaN to ``None``."""
    if isinstance(x, dict):
        return {k: plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if isinstance(x, (np.floating, float)):
        x = float(x)
        if math.isnan(x):
            return None
        return ("inf" if x > 0 else "-inf") if math.isinf(x) else x
    if isinstance(x, np.integer):
        return int(x)
    return x


def fmt(x: float) -> str:
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    if x != 0 and (abs(x) >= 1e4 or abs(x) < 1e-2):
        return f"{x:.2g}"
    return f"{x:.3g}"


def markdown(results: list[dict]) -> str:
    """One row per statistic and size: reference and omnirl median [10%, 90%], ratio, verdict."""
    lines = ["| statistic | S | reference median [10%, 90%] | omnirl median [10%, 90%] | ratio (95% CI) "
             "| agrees | identical generators agree | KS D (p) | reference halves: ratio, agree |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name in STATISTICS:
        for res in results:
            c = res["statistics"][name]
            r, o = c["reference"], c["omnirl"]
            ci = c["ratio_ci95"]
            lines.append(f"| {name} | {res['S']} | {fmt(r['median'])} [{fmt(r['q10'])}, {fmt(r['q90'])}] | "
                         f"{fmt(o['median'])} [{fmt(o['q10'])}, {fmt(o['q90'])}] | "
                         f"{fmt(c['ratio'])} ({fmt(ci[0])}–{fmt(ci[1])}) | "
                         f"{'yes' if c['agrees'] else '**no**'} ({c['rule']}) | "
                         f"{c['power']:.0%} | "
                         f"{c['ks']['D']:.2f} ({c['ks']['p']:.2g}) | "
                         f"{fmt(c['reference_halves']['ratio'])}, {'yes' if c['reference_halves']['agrees'] else 'no'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    tasks = args.tasks if args.tasks is not None else (
        [QUICK_TASKS] if args.quick else list(DEFAULT_TASKS[:len(args.sizes)]))
    if len(tasks) == 1:
        tasks = tasks * len(args.sizes)
    if len(tasks) != len(args.sizes):
        fail(f"--tasks must hold one number or one per size ({len(args.sizes)}), got {len(tasks)}")
    budget = min(args.budget, 1000) if args.quick else args.budget
    if not 0 <= args.seed < 2**32 - args.ours_factor * max(tasks):  # numpy's legacy seed is 32-bit
        fail(f"--seed must be in [0, {2**32 - args.ours_factor * max(tasks)}), got {args.seed}")
    sampler, module = import_reference()
    t_start = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    results = []
    for S, n_ref in zip(args.sizes, tasks):
        ref_seeds = [args.seed + i for i in range(n_ref)]
        our_seeds = [args.seed + i for i in range(n_ref * args.ours_factor)]
        ref, ref_draws, ref_s = reference_tasks(S, args.actions, ref_seeds, sampler, module)
        ours, our_draws, our_s = our_tasks(S, args.actions, our_seeds)
        log(f"S={S}: reference {n_ref} tasks in {ref_s:.1f}s, omnirl {len(ours)} in {our_s:.1f}s; measuring")
        m_ref = measure(ref, ref_draws, budget, args.seed)
        m_ours = measure(ours, our_draws, budget, args.seed)
        stats = {name: compare(name, m_ref[name], m_ours[name], rng) for name in STATISTICS}
        missed = [k for k, c in stats.items() if not c["agrees"]]
        log(f"S={S}: {len(STATISTICS) - len(missed)}/{len(STATISTICS)} statistics agree"
            + (f"; not: {', '.join(missed)}" if missed else ""))
        results.append({"S": S, "A": args.actions,
                        "generation_s_per_task": {"reference": ref_s / n_ref, "omnirl": our_s / len(ours)},
                        "statistics": stats})
    table = markdown(results)
    report = {
        "benchmark": "generator_distribution",
        "description": "statistics of AnyMDP tasks from omnirl.tasks.anymdp.sample_anymdp and "
                       "xenoverse.anymdp.AnyMDPTaskSampler on the same seeds, hidden-rank order",
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "settings": {"sizes": args.sizes, "reference_tasks": tasks, "ours_factor": args.ours_factor,
                     "actions": args.actions, "base_seed": args.seed, "budget_steps": budget,
                     "quick": args.quick, "bootstrap": BOOTSTRAP,
                     "bounds": {"relative": RELATIVE_BOUND, "wide": WIDE_BOUND, "wide_span": WIDE_SPAN,
                                "absolute": ABSOLUTE_BOUND}},
        "statistics": STATISTICS,
        "machine": machine_info(("numba",)),
        "xenoverse_version": metadata.version("xenoverse"),
        "results": results,
        "all_agree": all(c["agrees"] for r in results for c in r["statistics"].values()),
        "markdown": table,
        "total_wall_s": time.perf_counter() - t_start,
    }
    report = plain(report)
    if args.markdown is not None:
        atomic_write_bytes(args.markdown, table.encode())
    return emit(report, args.out)


if __name__ == "__main__":
    main()
