"""Measured properties of tasks: what ``python -m omnirl.tasks show`` and the showcase report.

Each property is one of the paper's claims about AnyMDP, measured on the task itself:
``sd_low_quarter`` / ``sd_high_quarter`` (random-policy stationary mass in the lowest / highest
quarter of ranks: exponential decay), ``value_rank_corr`` (Spearman correlation of ``V*`` with
rank over non-terminal states: ascending value), ``pit_below`` (every pitfall reward is below every
non-terminal value), ``top_above_start`` (the top non-terminal rank is worth more than every start
state), and the random / oracle episodic returns used to normalise scores.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from omnirl.tasks.solver import random_stationary_distribution, reference_returns, solve
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
