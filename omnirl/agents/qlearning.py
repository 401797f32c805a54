"""Tabular Q-learning with an optimistic random exploration bonus.

Acts with ``argmax_a Q[s, a] + c / (1 - gamma) * sqrt(log(H + 1) / n(s, a)) * max(N(0, 1), 0)``
(unvisited actions first; ``H`` is the task's episode limit) and learns from every observed
transition ``Q[s, a] += alpha * (r + gamma * (1 - terminated) * max_a' Q[s', a'] - Q[s, a])``:
entering a terminal state ends the bootstrap; a truncated episode is not shown to the agent as an
end, so it bootstraps as usual. ``alpha``, ``gamma`` and ``c`` are per row.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from omnirl._validate import check_float
from omnirl.agents._tabular import CountModel, bonus_actions, bonus_coef, horizons, rowmax
from omnirl.agents.oracle import batch_sizes, check_rows_tasks_seeds
from omnirl.agents.prior import PriorInfo
from omnirl.agents.streams import LANES, RowStreams
from omnirl.tasks import MDPTask


@dataclasses.dataclass(frozen=True)
class QLearningConfig:
    """Hyper-parameters of ``QLearningAgent`` (the same in every row; rows can be changed later
    through the agent's ``alpha``, ``gamma`` and ``c`` arrays)."""

    alpha: float = 0.1
    """Learning rate in (0, 1]."""
    gamma: float = 0.99
    """Discount factor in [0, 1)."""
    c: float = 0.005
    """Exploration-bonus coefficient (the bonus is scaled by ``1 / (1 - gamma)``)."""

    def __post_init__(self) -> None:
        check_float("alpha", self.alpha, min_value=0.0, max_value=1.0, min_inclusive=False)
        check_float("gamma", self.gamma, min_value=0.0, max_value=1.0, max_inclusive=False)
        check_float("c", self.c, min_value=0.0)


class QLearner:
    """Q tables and hyper-parameters of ``B`` rows; counts come from a shared ``CountModel``."""

    def __init__(self, B: int, S: int, A: int) -> None:
        self.S, self.A = S, A
        self.Q = np.zeros((B, S, A), dtype=np.float64)
        self.alpha = np.full(B, 0.1)  # (B,)
        self.gamma = np.full(B, 0.99)  # (B,)
        self.c = np.full(B, 0.005)  # (B,)
        self.log_h = np.zeros(B)  # (B,) log(H + 1) of each row's task
        self._rows_q = self.Q.reshape(-1, A)  # (B*S, A)
        self._base = np.arange(B, dtype=np.int64) * S

    def reset(self, rows: np.ndarray, tasks: Sequence[MDPTask]) -> None:
        self.Q[rows] = 0.0
        self.log_h[rows] = horizons(tasks)

    def act_rows(self, rows: np.ndarray, obs: np.ndarray, counts: CountModel, z: np.ndarray) -> np.ndarray:
        """Actions ``(k,)`` of ``rows`` in ``obs``; ``z (k, A)`` standard normals of the bonus."""
        idx = rows * self.S + obs
        coef = bonus_coef(self.c[rows], self.gamma[rows], self.log_h[rows])
        q = np.take(self._rows_q, idx, axis=0)  # (k, A); take is faster than fancy row indexing
        return bonus_actions(q, np.take(counts.n.reshape(-1, self.A), idx, axis=0), coef, z)

    def update(self, cell: np.ndarray, r: np.ndarray, s2: np.ndarray, terminated: np.ndarray) -> None:
        """One Q-learning step in every row (``cell`` from ``CountModel.cells``)."""
        flat = self.Q.reshape(-1)
        boot = rowmax(np.take(self._rows_q, self._base + s2, axis=0))
        target = r + self.gamma * np.where(terminated, 0.0, boot)
        q = flat[cell]
        flat[cell] = q + self.alpha * (target - q)


class QLearningAgent:
    """Q-learning in every row (tag ``Q_LEARNING``); see the module docstring.

    ``alpha``, ``gamma`` and ``c`` (``(B,)`` arrays) hold each row's hyper-parameters.
    """

    def __init__(self, tasks: Sequence[MDPTask], seeds: Sequence, config: QLearningConfig | None = None,
                 *, n_obs: int | None = None) -> None:
        config = QLearningConfig() if config is None else config
        if not isinstance(config, QLearningConfig):
            raise ValueError(f"config must be a QLearningConfig, got {type(config).__name__}")
        self.config = config
        self.n_envs, self.n_obs, self.n_actions = batch_sizes(tasks, seeds, n_obs, None)
        B, S, A = self.n_envs, self.n_obs, self.n_actions
        self.streams = RowStreams(list(seeds))
        self.counts = CountModel(B, S, A, full=False)
        self.learner = QLearner(B, S, A)
        self.learner.alpha[:] = config.alpha
        self.learner.gamma[:] = config.gamma
        self.learner.c[:] = config.c
        self._rows = np.arange(B)
        self.learner.reset(self._rows, list(tasks))
        self._tags = np.full(B, int(PriorInfo.Q_LEARNING), dtype=np.int64)

    @property
    def alpha(self) -> np.ndarray:
        return self.learner.alpha

    @property
    def gamma(self) -> np.ndarray:
        return self.learner.gamma

    @property
    def c(self) -> np.ndarray:
        return self.learner.c

    @property
    def Q(self) -> np.ndarray:
        """``(B, S, A)`` current action values."""
        return self.learner.Q

    @property
    def last_tags(self) -> np.ndarray:
        """``(B,)`` always ``Q_LEARNING``."""
        return self._tags

    def act(self, obs: np.ndarray) -> np.ndarray:
        """``(B,)`` optimistic-sampling actions of ``obs (B,)``."""
        z = self.streams.normal(LANES["q_bonus"], self.n_actions)
        return self.learner.act_rows(self._rows, np.asarray(obs, dtype=np.int64), self.counts, z)

    def observe(self, obs, action, reward, next_obs, done) -> None:
        """Learn from each row's transition; ``done`` is *terminated* (no bootstrap)."""
        cell = self.counts.cells(np.asarray(obs, dtype=np.int64), np.asarray(action, dtype=np.int64))
        s2 = np.asarray(next_obs, dtype=np.int64)
        r = np.asarray(reward, dtype=np.float64)
        term = np.asarray(done, dtype=bool)
        self.counts.update(cell, r, s2, term)
        self.learner.update(cell, r, s2, term)
        self.streams.advance()

    def reset(self, rows, tasks: Sequence[MDPTask], seeds: Sequence) -> None:
        """New sequences in ``rows``: fresh tables, new tasks and streams (hyper-parameters kept)."""
        r = check_rows_tasks_seeds(rows, list(tasks), list(seeds), self.n_envs, self.n_obs, self.n_actions)
        self.streams.reset(r, list(seeds))
        self.counts.reset(r)
        self.learner.reset(r, list(tasks))
