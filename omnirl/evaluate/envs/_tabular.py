"""Shared pieces of the Gymnasium environments whose model is a table (Lake, Cliff, DarkRoom).

Each such environment writes its dynamics once more as an ``MDPTask`` (``to_task()``: observed id
= hidden rank, terminal states with all-zero rows, the episode limit as ``max_steps``). From that
model ``solve_model`` computes, exactly:

* ``random_return``: expected raw episode return of the uniform random policy over the episode
  limit (``omnirl.tasks.reference_returns``);
* ``oracle_return``: the same for the greedy policy of ``Q*`` at the reference discount
  ``REFERENCE_GAMMA`` (0.994, the discount of OmniRL's label policy and of ``MDPBatch``);
* ``oracle``: that greedy policy as a table of observed ids, which ``oracle_action`` reads.

The Gymnasium dynamics and the table must agree; the tests check it by Monte Carlo.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

from omnirl.agents.prior import ORACLE_GAMMAS, REFERENCE
from omnirl.evaluate.envs.base import DiscreteAdapter
from omnirl.tasks import MDPTask, reference_returns, solve

REFERENCE_GAMMA: float = ORACLE_GAMMAS[REFERENCE]
"""Discount of the oracle whose return normalises scores (0.994), as in ``MDPBatch``."""


@dataclasses.dataclass(frozen=True)
class TabularModel:
    """An environment's table and its exact reference returns."""

    task: MDPTask
    """The model: observed id = hidden rank, episode limit = ``max_steps``."""
    random_return: float
    """Exact expected raw episode return of the uniform random policy."""
    oracle_return: float
    """Exact expected raw episode return of the greedy ``Q*`` policy at ``REFERENCE_GAMMA``."""
    oracle: np.ndarray
    """``(n_obs,)`` int64 oracle action of each observed id (read-only)."""


def table_task(*, family: str, transition: np.ndarray, reward: np.ndarray, terminal: np.ndarray,
               start_probs: np.ndarray, goal: int | None, max_steps: int,
               params: Mapping[str, Any]) -> MDPTask:
    """An ``MDPTask`` of a known environment: ``transition``/``reward`` ``(n, A, n)``, ``terminal``
    ``(n,)`` (their rows are zeroed), ``start_probs`` ``(n,)`` over all states; ids are ranks."""
    P = np.array(transition, dtype=np.float64)  # (n, A, n)
    R = np.array(reward, dtype=np.float64)  # (n, A, n)
    terminal = np.asarray(terminal, dtype=bool)
    P[terminal] = 0.0
    R[terminal] = 0.0
    start_probs = np.asarray(start_probs, dtype=np.float64)
    starts = np.flatnonzero(start_probs > 0)
    n = P.shape[0]
    return MDPTask(n_obs=n, transition=P, reward=R, reward_noise=np.zeros_like(P),
                   start_states=starts, start_probs=start_probs[starts] / start_probs[starts].sum(),
                   terminal=terminal, goal=goal, max_steps=max_steps, state_ids=np.arange(n),
                   generator=family, params=dict(params), seed=0)


def solve_model(task: MDPTask) -> TabularModel:
    """Exact reference returns and the oracle table of ``task`` (ids are ranks)."""
    rnd, opt = reference_returns(task, REFERENCE_GAMMA)
    oracle = np.zeros(task.n_obs, dtype=np.int64)
    oracle[task.state_ids] = solve(task, REFERENCE_GAMMA).policy
    oracle.setflags(write=False)
    return TabularModel(task=task, random_return=float(rnd), oracle_return=float(opt), oracle=oracle)


class TabularAdapter(DiscreteAdapter):
    """A ``DiscreteAdapter`` with a tabular model: subclasses set ``self.model`` (a
    ``TabularModel``) and implement ``current_state()`` (the observed id the next action applies
    to); ``oracle_action`` reads the model's oracle table there."""

    model: TabularModel

    def current_state(self) -> int:
        raise NotImplementedError

    def to_task(self) -> MDPTask:
        """The environment as an ``MDPTask`` (same dynamics, rewards and episode limit)."""
        return self.model.task

    def oracle_action(self) -> int:
        return int(self.model.oracle[self.current_state()])

    def observe(self, raw_obs: Any) -> int:
        return int(raw_obs)


__all__ = ["REFERENCE_GAMMA", "TabularAdapter", "TabularModel", "solve_model", "table_task"]
