"""Oracle behaviour: the greedy policy of the exact ``Q*`` of each row's task, by table lookup.

``oracle_table(task, gamma)`` turns ``solve(task, gamma).policy`` (hidden-rank order) into a table
indexed by *observed* id, so acting for ``B`` rows is one gather ``table[row, obs]``. Tables are
cached per task object and ``gamma``: a task set cycled over many sequences is solved once per
discount, and new tasks are solved in batches.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from typing import Sequence

import numpy as np

from omnirl._validate import check_float, check_int
from omnirl.agents.prior import ORACLE_GAMMAS, PriorInfo
from omnirl.tasks import MDPTask
from omnirl.tasks.batched import check_rows
from omnirl.tasks.solver import expected_reward, policy_iteration_r

# id(task) -> (weak reference to the task, {gamma: table}); weak, so the cache keeps only the small
# tables alive, never the tasks (a dataset of fresh tasks does not accumulate them)
_CACHE: "OrderedDict[int, tuple[weakref.ref, dict[float, np.ndarray]]]" = OrderedDict()
CACHE_SIZE = 8192
"""Most tasks whose oracle tables ``oracle_table`` keeps (least recently used dropped first)."""
_CHUNK = 128  # tasks solved together (bounds the stacked arrays to ~_CHUNK * n * A * n floats)


def _check_gamma(gamma) -> float:
    return check_float("gamma", gamma, min_value=0.0, max_value=1.0, max_inclusive=False)


def _solve_missing(tasks: list[MDPTask], gammas: list[float]) -> None:
    """Solve ``tasks`` at every gamma of ``gammas`` in batches and cache the tables.

    Tasks are padded to a common size (a padded state has no transitions: it is never reached)
    and solved together by batched policy iteration, the gammas in increasing order, each one
    warm-started from the previous solution; a task's tables do not depend on its batch.
    """
    for lo in range(0, len(tasks), _CHUNK):
        chunk = tasks[lo:lo + _CHUNK]
        n = max(t.n_states for t in chunk)
        A = chunk[0].n_actions
        P = np.zeros((len(chunk), n, A, n))  # (k, n, A, n)
        R = np.zeros((len(chunk), n, A, n))
        for i, t in enumerate(chunk):
            m = t.n_states
            P[i, :m, :, :m] = t.transition
            R[i, :m, :, :m] = t.reward
        r = expected_reward(P, R)  # (k, n, A)
        actions = None
        for gamma in sorted(gammas):
            _, actions = policy_iteration_r(P, r, gamma, actions)  # (k, n)
            for i, t in enumerate(chunk):
                table = np.zeros(t.n_obs, dtype=np.int64)
                table[t.state_ids] = actions[i, :t.n_states]
                table.setflags(write=False)
                hit = _CACHE.get(id(t))
                if hit is None or hit[0]() is not t:
                    hit = _CACHE[id(t)] = (weakref.ref(t), {})
                hit[1][gamma] = table
                # newest last, also when a dead task's entry is reused (assigning to an existing key
                # keeps its old place in the order, where the size limit below would drop it first)
                _CACHE.move_to_end(id(t))
    while len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)


def _cached(task: MDPTask, gamma: float) -> np.ndarray | None:
    hit = _CACHE.get(id(task))
    if hit is None or hit[0]() is not task:  # a dead reference: another task reused the id
        return None
    _CACHE.move_to_end(id(task))
    return hit[1].get(gamma)


def oracle_table(task: MDPTask, gamma: float) -> np.ndarray:
    """``(n_obs,)`` int64 greedy oracle action of each observed id (ids no state uses get 0).

    The returned array is read-only and shared between calls for the same task and gamma.
    """
    if not isinstance(task, MDPTask):
        raise ValueError(f"task must be an MDPTask, got {type(task).__name__}")
    gamma = _check_gamma(gamma)
    table = _cached(task, gamma)
    if table is None:
        _solve_missing([task], [gamma])
        table = _cached(task, gamma)
    return table


def clear_oracle_cache() -> None:
    """Forget every cached oracle table."""
    _CACHE.clear()


def oracle_tables(tasks: Sequence[MDPTask], gamma: float, n_obs: int,
                  also: Sequence[float] = ()) -> np.ndarray:
    """``(len(tasks), n_obs)`` oracle tables of ``tasks`` at ``gamma``, padded with action 0 past
    each task's ``n_obs``. Tasks not cached yet are solved together, at ``gamma`` and at the
    discounts in ``also`` (which a caller will ask for next)."""
    gamma = _check_gamma(gamma)
    gammas = sorted({gamma, *(_check_gamma(g) for g in also)})
    for i, t in enumerate(tasks):
        if t.n_obs > n_obs:
            raise ValueError(f"tasks[{i}] has n_obs={t.n_obs}, more than the agent's n_obs={n_obs}")
    missing, seen = [], set()
    for t in tasks:
        if id(t) not in seen and any(_cached(t, g) is None for g in gammas):
            missing.append(t)
            seen.add(id(t))
    if missing:
        _solve_missing(missing, gammas)
    out = np.zeros((len(tasks), n_obs), dtype=np.int64)
    for i, t in enumerate(tasks):
        out[i, :t.n_obs] = oracle_table(t, gamma)  # cached now, unless more tasks than CACHE_SIZE came at once
    return out


def check_rows_tasks_seeds(rows, tasks: Sequence[MDPTask], seeds: Sequence, n_envs: int,
                           n_obs: int, n_actions: int) -> np.ndarray:
    """Validate the arguments of an agent's ``reset``; returns ``rows`` as an int64 array."""
    r = check_rows(rows, tasks, seeds, n_envs)
    for i, t in enumerate(tasks):
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
