"""Oracle behaviour: the greedy policy of the exact ``Q*`` of each row's task, by table lookup.

``oracle_table(task, gamma)`` turns ``solve(task, gamma).policy`` (hidden-rank order) into a table
indexed by *observed* id, so acting for ``B`` rows is one gather ``table[row, obs]``. Solutions are
cached by the task's content hash and ``gamma``: a task set cycled over many sequences is solved
once per discount.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import numpy as np

from omnirl._validate import check_float, check_int
from omnirl.agents.prior import ORACLE_GAMMAS, PriorInfo
from omnirl.tasks import MDPTask, solve

_CACHE: "OrderedDict[tuple[str, float], np.ndarray]" = OrderedDict()
CACHE_SIZE = 8192
"""Most (task, gamma) tables kept by ``oracle_table`` (least recently used dropped first)."""


def oracle_table(task: MDPTask, gamma: float) -> np.ndarray:
    """``(n_obs,)`` int64 greedy oracle action of each observed id (ids no state uses get 0).

    The returned array is read-only and shared between calls for the same task and gamma.
    """
    if not isinstance(task, MDPTask):
        raise ValueError(f"task must be an MDPTask, got {type(task).__name__}")
    gamma = check_float("gamma", gamma, min_value=0.0, max_value=1.0, max_inclusive=False)
    key = (task.content_hash(), gamma)
    table = _CACHE.get(key)
    if table is not None:
        _CACHE.move_to_end(key)
        return table
    table = np.zeros(task.n_obs, dtype=np.int64)
    table[task.state_ids] = solve(task, gamma).policy
    table.setflags(write=False)
    _CACHE[key] = table
    if len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    return table


def clear_oracle_cache() -> None:
    """Forget every cached oracle table."""
    _CACHE.clear()


def oracle_tables(tasks: Sequence[MDPTask], gamma: float, n_obs: int) -> np.ndarray:
    """``(len(tasks), n_obs)`` oracle tables of ``tasks``, padded with action 0 past each ``n_obs``."""
    out = np.zeros((len(tasks), n_obs), dtype=np.int64)
    for i, t in enumerate(tasks):
        if t.n_obs > n_obs:
            raise ValueError(f"tasks[{i}] has n_obs={t.n_obs}, more than the agent's n_obs={n_obs}")
        out[i, :t.n_obs] = oracle_table(t, gamma)
    return out


def check_rows_tasks_seeds(rows, tasks: Sequence[MDPTask], seeds: Sequence, n_envs: int,
                           n_obs: int, n_actions: int) -> np.ndarray:
    """Validate the arguments of an agent's ``reset``; returns ``rows`` as an int64 array."""
    r = np.asarray(rows)
    if r.ndim != 1 or (r.size and r.dtype.kind not in "iu"):
        raise ValueError(f"rows must be a 1-D sequence of integer row indices, got {rows!r}")
    r = r.astype(np.int64)
    if r.size and (r.min() < 0 or r.max() >= n_envs):
        raise ValueError(f"rows must lie in [0, {n_envs}), got {r.tolist()}")
    if len(np.unique(r)) != r.size:
        raise ValueError(f"rows must be distinct, got {r.tolist()}")
    if len(tasks) != r.size or len(seeds) != r.size:
        raise ValueError(f"rows, tasks and seeds must have equal lengths, got {r.size}, "
                         f"{len(tasks)} and {len(seeds)}")
    for i, t in enumerate(tasks):
        if not isinstance(t, MDPTask):
            raise ValueError(f"tasks[{i}] must be an MDPTask, got {type(t).__name__}")
        if t.n_actions != n_actions:
            raise ValueError(f"tasks[{i}] has n_actions={t.n_actions}, the agent has n_actions={n_actions}")
        if t.n_obs > n_obs:
            raise ValueError(f"tasks[{i}] has n_obs={t.n_obs}, more than the agent's n_obs={n_obs}")
    return r


def batch_sizes(tasks: Sequence[MDPTask], seeds: Sequence, n_obs: int | None,
                n_actions: int | None) -> tuple[int, int, int]:
    """``(B, n_obs, n_actions)`` of a new agent: defaults from the tasks, checked against them."""
    tasks = list(tasks)
    if len(tasks) == 0:
        raise ValueError("tasks must hold at least one MDPTask, got an empty sequence")
    if len(seeds) != len(tasks):
        raise ValueError(f"seeds must have one seed per task: got {len(seeds)} seeds for {len(tasks)} tasks")
    for i, t in enumerate(tasks):
        if not isinstance(t, MDPTask):
            raise ValueError(f"tasks[{i}] must be an MDPTask, got {type(t).__name__}")
    S = max(t.n_obs for t in tasks) if n_obs is None else check_int("n_obs", n_obs, min_value=1)
    A = tasks[0].n_actions if n_actions is None else check_int("n_actions", n_actions, min_value=1)
    return len(tasks), S, A


class OracleAgent:
    """Acts with the oracle of discount ``gamma`` (one of ``ORACLE_GAMMAS``) in every row.

    ``tags`` are the ``PriorInfo`` id of that discount. The agent needs no randomness; ``seeds``
    is accepted for the common agent signature.
    """

    def __init__(self, tasks: Sequence[MDPTask], gamma: float, seeds: Sequence, *,
                 n_obs: int | None = None) -> None:
        gamma = check_float("gamma", gamma, min_value=0.0, max_value=1.0, max_inclusive=False)
        ids = [p for p, g in ORACLE_GAMMAS.items() if g == gamma]
        if not ids:
            raise ValueError(f"gamma must be one of the oracle discounts "
                             f"{sorted(ORACLE_GAMMAS.values())}, got {gamma}")
        self.gamma = gamma
        self.tag = PriorInfo(ids[0])
        self.n_envs, self.n_obs, self.n_actions = batch_sizes(tasks, seeds, n_obs, None)
        self._table = oracle_tables(list(tasks), gamma, self.n_obs)  # (B, S)
        self._flat = self._table.reshape(-1)
        self._tags = np.full(self.n_envs, int(self.tag), dtype=np.int64)

    @property
    def last_tags(self) -> np.ndarray:
        """``(B,)`` the oracle's ``PriorInfo`` id in every row."""
        return self._tags

    @property
    def table(self) -> np.ndarray:
        """``(B, n_obs)`` oracle action of each observed id, per row."""
        return self._table

    def act(self, obs: np.ndarray) -> np.ndarray:
        """``(B,)`` oracle actions of ``obs (B,)``."""
        obs = np.asarray(obs, dtype=np.int64)
        return self._flat[np.arange(self.n_envs) * self.n_obs + obs]

    def observe(self, obs, action, reward, next_obs, done) -> None:
        """The oracle does not learn."""

    def reset(self, rows, tasks: Sequence[MDPTask], seeds: Sequence) -> None:
        """Give ``rows`` new tasks."""
        r = check_rows_tasks_seeds(rows, list(tasks), list(seeds), self.n_envs, self.n_obs, self.n_actions)
        self._table[r] = oracle_tables(list(tasks), self.gamma, self.n_obs)
