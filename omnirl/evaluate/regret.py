"""Regret: what every action cost against the best immediate mean reward in its state.

``RegretBatch(batch)`` wraps an ``MDPBatch`` of bandits (the ``bandit*`` environments) or of other
tabular tasks (AnyMDP) and is itself an ``EnvBatch``: every method runs the wrapped batch
unchanged, and ``step`` also records each row's *expected immediate* regret of the action,
``max_b r(s, b) - r(s, a)`` with ``r(s, a)`` the mean reward of action ``a`` in the row's current
state ``s`` (from the task's model, so the reward noise does not enter), and the uniform random
policy's expected regret in that state, ``gap(s) = max_b r(s, b) - mean_b r(s, b)``. On a bandit
(one state) this is the usual regret of a pull against the best arm. On an MDP it measures the
task as a contextual bandit (a bandit per state, whatever the states visited): the score of the
ladder's myopic rung, whose labels are the best immediate reward in each state. Any runner (the
model's protocols, every baseline) measured through it yields ``regret() (B, steps)`` and
``gaps() (B, steps)``.

``regret_numbers(regret, gap)`` summarises it: the cumulative regret after ``t`` steps (mean over
rows, and its standard error) at ``REGRET_AT`` and at the end, and the normalised regret score
``1 - sum_t regret_t / sum_t gap_t`` per row, averaged over rows (score 0: uniform random, 1: the
best immediate action from the first step). It is the expected normalised score of the actions,
without the reward noise.

``state_blind_scores(tasks)`` is the yardstick of what a learner blind to the state can reach on
that score: per task, the score of the best single action played in every state, the states
weighted as uniform random play visits them (its stationary distribution, terminals resetting to
the start law). A model whose contextual-bandit score stays below it may have learned one bandit
over all states rather than a bandit per state.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from omnirl.evaluate.envs.base import EnvInfo, StepResult
from omnirl.tasks.solver import expected_reward, random_stationary_distribution

REGRET_AT = (100, 500)
"""Pulls after which the cumulative regret is reported (those within the run)."""


def is_bandit_batch(batch: Any) -> bool:
    """Whether ``batch`` holds tabular bandits (one state per row, the task models known)."""
    return hasattr(batch, "tasks") and all(i.family == "bandit" and i.n_obs == 1 for i in batch.infos)


def is_tabular_batch(batch: Any) -> bool:
    """Whether ``batch`` holds tabular tasks whose models are known (bandits or AnyMDP)."""
    return hasattr(batch, "tasks") and all(i.family in ("bandit", "anymdp") for i in batch.infos)


def state_means(tasks: Sequence) -> np.ndarray:
    """``(B, S, A)`` the mean immediate reward of every action in every observed state id of every
    task (``S`` the largest ``n_obs``; 0 for ids no state uses)."""
    S, A = max(t.n_obs for t in tasks), tasks[0].n_actions
    out = np.zeros((len(tasks), S, A))
    for i, t in enumerate(tasks):
        out[i, t.state_ids] = expected_reward(t.transition.astype(np.float64), t.reward.astype(np.float64))
    return out


def arm_means(tasks: Sequence) -> np.ndarray:
    """``(B, A)`` the mean reward of every arm of every bandit (``state_means`` of its one state)."""
    return state_means(tasks)[:, 0]


def state_blind_scores(tasks: Sequence) -> np.ndarray:
    """``(B,)`` per task: the regret score (``regret_numbers``) of the best single action played in
    every state, the states weighted by uniform random play's stationary distribution (NaN for a
    task where uniform play has no regret)."""
    out = np.full(len(tasks), np.nan)
    for i, t in enumerate(tasks):
        m = expected_reward(t.transition.astype(np.float64), t.reward.astype(np.float64))  # (n, A)
        w = random_stationary_distribution(t)  # (n,)
        best = m.max(1)
        gap = w @ (best - m.mean(1))
        if gap > 0:
            out[i] = 1.0 - w @ (best - m[:, np.argmax(w @ m)]) / gap
    return out


class RegretBatch:
    """An ``EnvBatch`` of tabular tasks that records every action's expected immediate regret
    (module docstring)."""

    def __init__(self, batch: Any) -> None:
        if not is_tabular_batch(batch):
            raise ValueError("batch must be an MDPBatch of bandits or AnyMDP tasks (family 'bandit' or 'anymdp'), "
                             f"got {sorted({i.name for i in getattr(batch, 'infos', ())})}")
        self.batch = batch
        self.means = state_means(batch.tasks)  # (B, S, A)
        self._best = self.means.max(axis=2)  # (B, S)
        self._gap = self._best - self.means.mean(axis=2)  # (B, S) uniform random's regret per step
        self._rows = np.arange(len(self.means))
        self._regret: list[np.ndarray] = []
        self._gaps: list[np.ndarray] = []

    @property
    def gap(self) -> np.ndarray:
        """``(B,)`` the uniform random policy's expected regret per step in the states visited so
        far (a bandit's: ``mu* - mean_a mu_a`` from the start)."""
        if self._gaps:
            return np.stack(self._gaps, axis=1).mean(axis=1)
        return self._gap[self._rows, self.batch.obs]

    @property
    def infos(self) -> tuple[EnvInfo, ...]:
        return self.batch.infos

    @property
    def obs(self) -> np.ndarray:
        return self.batch.obs

    @property
    def n_envs(self) -> int:
        return self.batch.n_envs

    def reset(self, seed: int) -> np.ndarray:
        """Reset the tasks and forget the recorded steps."""
        self._regret, self._gaps = [], []
        return self.batch.reset(seed)

    def step(self, actions: Any) -> StepResult:
        s = np.asarray(self.batch.obs, dtype=np.int64)  # (B,) the state acted in
        result = self.batch.step(actions)
        a = np.asarray(actions, dtype=np.int64)
        self._regret.append(self._best[self._rows, s] - self.means[self._rows, s, a])
        self._gaps.append(self._gap[self._rows, s])
        return result

    def oracle_actions(self) -> np.ndarray:
        return self.batch.oracle_actions()

    def regret(self) -> np.ndarray:
        """``(B, steps)`` expected immediate regret of every action since the last ``reset``."""
        if not self._regret:
            return np.zeros((self.n_envs, 0))
        return np.stack(self._regret, axis=1)

    def gaps(self) -> np.ndarray:
        """``(B, steps)`` the uniform random policy's expected regret in the state of every step."""
        if not self._gaps:
            return np.zeros((self.n_envs, 0))
        return np.stack(self._gaps, axis=1)


def regret_numbers(regret: np.ndarray, gap: np.ndarray, at: Sequence[int] = REGRET_AT) -> dict[str, float]:
    """Summary of ``regret (B, T)`` (per step) with ``gap`` (uniform random's regret per step:
    ``(B,)`` the same at every step, or ``(B, T)`` per step): ``regret@t`` and ``regret@t_se`` for
    each ``t`` of ``at`` within ``T`` and for ``T`` itself, ``regret`` and ``regret_se`` (at ``T``),
    ``regret_score`` (mean over rows of ``1 - R_T / G_T``, ``G_T`` the gaps' sum; rows with ``G_T = 0``
    left out) and ``pulls`` (``T``)."""
    regret = np.asarray(regret, dtype=np.float64)
    B, T = regret.shape
    gap = np.asarray(gap, dtype=np.float64)
    total_gap = gap.sum(axis=1) if gap.ndim == 2 else T * gap  # (B,)
    cum = np.cumsum(regret, axis=1)  # (B, T)
    out: dict[str, float] = {"pulls": T}
    for t in sorted({*(t for t in at if 1 <= t <= T), T}) if T else ():
        out[f"regret@{t}"] = float(cum[:, t - 1].mean())
        out[f"regret@{t}_se"] = float(cum[:, t - 1].std(ddof=1) / np.sqrt(B)) if B > 1 else float("nan")
    out["regret"] = out.get(f"regret@{T}", float("nan"))
    out["regret_se"] = out.get(f"regret@{T}_se", float("nan"))
    ok = total_gap > 0
    out["regret_score"] = float(np.mean(1.0 - cum[ok, -1] / total_gap[ok])) if T and ok.any() else float("nan")
    return out


__all__ = ["REGRET_AT", "RegretBatch", "arm_means", "is_bandit_batch", "is_tabular_batch", "regret_numbers",
           "state_blind_scores", "state_means"]
