"""Measured properties of tasks: what ``python -m omnirl.tasks show`` and the showcase report.

Each property is one of the paper's claims about AnyMDP, measured on the task itself:
``sd_low_quarter`` / ``sd_high_quarter`` (random-policy stationary mass in the lowest / highest
quarter of ranks: exponential decay), ``value_rank_corr`` (Spearman correlation of ``V*`` with
rank over non-terminal states: ascending value), ``pit_below`` (every pitfall reward is below every
non-terminal value), ``top_above_start`` (the top non-terminal rank is worth more than every start
state), and the random / oracle episodic returns used to normalise scores.

``distribution_statistics`` measures what a generator's *distribution* of tasks is made of (the
statistics ``benchmarks/compare_generators.py`` compares against the reference generator; see
``DISTRIBUTION_STATISTICS``).
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from omnirl.tasks.solver import (finite_horizon_values, one_hot_policy, random_stationary_distribution,
                                 random_values, reference_returns, reset_chain, solve,
                                 start_distribution, stationary_distribution, task_arrays,
                                 uniform_policy)
from omnirl.tasks.task import MDPTask


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties)."""
    def ranks(v):
        order = np.argsort(v, kind="stable")
        r = np.empty(len(v))
        r[order] = np.arange(len(v))
        for val in np.unique(v):  # average the ranks of ties
            m = v == val
            r[m] = r[m].mean()
        return r
    rx, ry = ranks(np.asarray(x, float)), ranks(np.asarray(y, float))
    if rx.std() == 0 or ry.std() == 0:
        return 0.0
    return float(np.corrcoef(rx, ry)[0, 1])


def task_properties(task: MDPTask, gamma: float = 0.994) -> dict[str, Any]:
    """Per-task measurements (see the module docstring)."""
    n = task.n_states
    row = {"n_states": n, "n_obs": task.n_obs, "n_actions": task.n_actions,
           "pitfalls": int(len(task.pitfalls)), "goal": task.goal is not None,
           "max_steps": task.max_steps, "row_sum_error": task.row_sum_error()}
    if n < 8:
        return row
    sd = random_stationary_distribution(task)
    q = max(n // 4, 1)
    sol = solve(task, gamma)
    nonterm = np.flatnonzero(~task.terminal)
    rnd, opt = reference_returns(task, gamma)
    # the ordering the generator guarantees, at the discount its repair step uses
    v_rep = solve(task, float(task.params.get("repair_gamma", 0.99))).v
    pit_r = [task.reward[:, :, p][task.transition[:, :, p] > 0].max() for p in task.pitfalls
             if (task.transition[:, :, p] > 0).any()]
    row.update(
        sd_low_quarter=float(sd[:q].sum()), sd_high_quarter=float(sd[-q:].sum()),
        sd_min=float(sd.min()),
        value_rank_corr=spearman(nonterm, sol.v[nonterm]),
        pit_below=bool(not pit_r or max(pit_r) < v_rep[nonterm].min()),
        top_above_start=bool(v_rep[nonterm[-1]] > v_rep[task.start_states].max()),
        random_return=rnd, oracle_return=opt)
    return row


DISTRIBUTION_STATISTICS: dict[str, str] = {
    "sd_ratio": "stationary mass of the lowest quarter of ranks / the highest quarter (random policy, "
                "terminals reset to the start law)",
    "sd_slope": "least-squares slope of log stationary probability against rank / n (random policy)",
    "terminal_share": "share of states that are terminal (pitfalls and the goal)",
    "steps_between_resets": "expected steps between terminal resets under the random policy "
                            "(1 / stationary mass of the terminal states; inf without terminals)",
    "value_gap": "oracle minus random value at the start law, as average reward over an episode "
                 "((1 - g) max_steps (V* - V_rnd), g = 2^(-1/n): the validity check's measure)",
    "episode_length_random": "expected episode length of the random policy from the start law "
                             "(truncated at max_steps)",
    "episode_length_oracle": "expected episode length of the oracle (greedy Q* at gamma) from the "
                             "start law (truncated at max_steps)",
    "value_rank_spearman": "Spearman correlation of V* (gamma) with rank over non-terminal states",
    "oracle_entropy": "normalised entropy (/ log n) of the oracle's long-run state distribution "
                      "from the start law, terminals reset",
    "reward_min": "smallest mean reward of a reachable transition (s, a, s')",
    "reward_max": "largest mean reward of a reachable transition (s, a, s')",
}
"""What ``distribution_statistics`` returns, by name."""


def distribution_statistics(task: MDPTask, gamma: float = 0.994) -> dict[str, float]:
    """The ``DISTRIBUTION_STATISTICS`` of one task (hidden-rank order, float64, exact: no sampling).

    ``gamma`` is the oracle's discount (the reference policy's, 0.994).
    """
    n, A = task.n_states, task.n_actions
    P, R = task_arrays(task)
    init = start_distribution(task)
    rnd = uniform_policy(n, A)
    sd = random_stationary_distribution(task)  # (n,)
    q = max(n // 4, 1)
    x = np.arange(n) / n
    slope = float(np.polyfit(x, np.log(np.maximum(sd, 1e-300)), 1)[0])
    term_mass = float(sd[task.terminal].sum())
    g_n = 2.0 ** (-1.0 / n)
    v_opt_n = solve(task, g_n).v
    v_rnd_n = random_values(task, g_n)
    gap = float(init @ (v_opt_n - v_rnd_n)) * (1.0 - g_n) * task.max_steps
    sol = solve(task, gamma)
    opt = one_hot_policy(sol.policy, A)
    ones = np.ones_like(R)  # one per step taken: terminal rows have no transitions
    len_rnd = float(init @ finite_horizon_values(P, ones, rnd, task.max_steps))
    len_opt = float(init @ finite_horizon_values(P, ones, opt, task.max_steps))
    d_opt = stationary_distribution(reset_chain(task, opt), init)
    d_safe = d_opt[d_opt > 0]
    entropy = float(-(d_safe * np.log(d_safe)).sum() / np.log(n))
    nonterm = np.flatnonzero(~task.terminal)
    reachable = R[P > 0]
    return {"sd_ratio": float(sd[:q].sum() / sd[-q:].sum()), "sd_slope": slope,
            "terminal_share": float(task.terminal.mean()),
            "steps_between_resets": 1.0 / term_mass if term_mass > 0 else float("inf"),
            "value_gap": gap, "episode_length_random": len_rnd, "episode_length_oracle": len_opt,
            "value_rank_spearman": spearman(nonterm, sol.v[nonterm]), "oracle_entropy": entropy,
            "reward_min": float(reachable.min()), "reward_max": float(reachable.max())}


def summarize(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Mean / min / max of each numeric property over tasks (booleans become fractions)."""
    rows = list(rows)
    out: dict[str, Any] = {"n_tasks": len(rows)}
    keys = sorted({k for r in rows for k in r})
    for k in keys:
        vals = np.array([float(r[k]) for r in rows if k in r])
        if vals.size:
            out[k] = {"mean": float(vals.mean()), "min": float(vals.min()), "max": float(vals.max())}
    return out


def format_summary(summary: dict[str, Any]) -> str:
    """A fixed-width text table of ``summarize``'s output."""
    lines = [f"{'property':<18}{'mean':>12}{'min':>12}{'max':>12}"]
    for k, v in summary.items():
        if isinstance(v, dict):
            lines.append(f"{k:<18}{v['mean']:>12.4g}{v['min']:>12.4g}{v['max']:>12.4g}")
    return "\n".join(lines)
