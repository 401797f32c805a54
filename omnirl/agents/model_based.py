"""Model-based learner: a count-based model of the task and optimistic values planned on it.

The model (``CountModel``) holds next-state counts, reward sums and the ids seen to be terminal.
Values ``Q (B, S, A)`` follow the model backup

    backup(s, a) = r_hat(s, a) + gamma * sum_s' P_hat(s' | s, a) * V(s'),   V(s') = max_a' Q(s', a')

with ``V = 0`` at ids seen to be terminal and ``Q = 0`` where ``(s, a)`` was never tried:

* after every transition, the visited ``(s, a)`` of each row moves to its backup by ``alpha``
  (``O(S)`` per row: the counts row dotted with ``V``);
* every ``sweep_every`` steps of a row, ``sweep_iters`` value-iteration sweeps over all
  ``(s, a)`` of the learned model (one batched matrix-vector product per sweep) propagate values
  beyond the visited cells.

Actions are ``argmax_a Q[s, a] + c / (1 - gamma) * sqrt(log(H + 1) / n(s, a)) * max(N(0, 1), 0)``
(a posterior-sampling-like random optimism; unvisited actions first).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from omnirl._validate import check_float, check_int
from omnirl.agents._tabular import CountModel, bonus_actions, bonus_coef, horizons, rowmax
from omnirl.agents.oracle import batch_sizes, check_rows_tasks_seeds
from omnirl.agents.prior import PriorInfo
from omnirl.agents.streams import LANES, RowStreams
from omnirl.tasks import MDPTask


@dataclasses.dataclass(frozen=True)
class ModelBasedConfig:
    """Hyper-parameters of ``ModelBasedAgent`` (``gamma``, ``c`` and ``alpha`` can later be changed
    per row through the agent's arrays)."""

    gamma: float = 0.99
    """Discount factor in [0, 1)."""
    c: float = 0.005
    """Exploration-bonus coefficient (the bonus is scaled by ``1 / (1 - gamma)``)."""
    alpha: float = 1.0
    """Step of the per-transition update towards the model backup, in (0, 1]."""
    sweep_every: int = 256
    """Steps of a row between value-iteration sweeps over its whole model (0: never)."""
    sweep_iters: int = 1
    """Value-iteration sweeps each time (>= 1)."""

    def __post_init__(self) -> None:
        check_float("gamma", self.gamma, min_value=0.0, max_value=1.0, max_inclusive=False)
        check_float("c", self.c, min_value=0.0)
        check_float("alpha", self.alpha, min_value=0.0, max_value=1.0, min_inclusive=False)
        check_int("sweep_every", self.sweep_every, min_value=0)
        check_int("sweep_iters", self.sweep_iters, min_value=1)


class ModelValues:
    """Values planned on a shared ``CountModel`` for ``B`` rows, in ``heads`` independent copies
    with their own per-row ``gamma``, ``c`` and ``alpha`` (``(heads, B)`` arrays): heads with
    different hyper-parameters share the model and are updated and swept together."""

    def __init__(self, B: int, S: int, A: int, heads: int = 1) -> None:
        self.B, self.S, self.A, self.H = B, S, A, heads
        self.Q = np.zeros((heads, B, S, A), dtype=np.float64)
        # max_a Q, 0 at terminal ids; float32 (like the counts) for a fast per-step dot product
        self.V = np.zeros((heads, B, S), dtype=np.float32)
        self.gamma = np.full((heads, B), 0.99)
        self.c = np.full((heads, B), 0.005)
        self.alpha = np.ones((heads, B))
        self.log_h = np.zeros(B)  # (B,) log(H + 1) of each row's task
        self._flat_q = self.Q.reshape(-1)  # (heads*B*S*A,)
        self._rows_q = self.Q.reshape(-1, A)  # (heads*B*S, A)
        self._flat_v = self.V.reshape(-1)  # (heads*B*S,)
        self._base = np.arange(B, dtype=np.int64) * S
        self._head_cells = np.arange(heads, dtype=np.int64)[:, None] * (B * S * A)  # (heads, 1)
        self._head_states = np.arange(heads, dtype=np.int64)[:, None] * (B * S)  # (heads, 1)

    def reset(self, rows: np.ndarray, tasks: Sequence[MDPTask]) -> None:
        self.Q[:, rows] = 0.0
        self.V[:, rows] = 0.0
        self.log_h[rows] = horizons(tasks)

    def act_rows(self, rows: np.ndarray, obs: np.ndarray, model: CountModel, z: np.ndarray,
                 head: int = 0) -> np.ndarray:
        """Actions ``(k,)`` of ``rows`` in ``obs`` by ``head``; ``z (k, A)`` normals of the bonus."""
        idx = rows * self.S + obs
        coef = bonus_coef(self.c[head, rows], self.gamma[head, rows], self.log_h[rows])
        q = np.take(self._rows_q, head * self.B * self.S + idx, axis=0)  # (k, A)
        return bonus_actions(q, np.take(model.n.reshape(-1, self.A), idx, axis=0), coef, z)

    def update(self, cell: np.ndarray, s: np.ndarray, model: CountModel, next_counts: np.ndarray,
               s2: np.ndarray, terminated: np.ndarray) -> None:
        """Move each row's visited ``Q[cell]`` to its model backup (after ``model.update``).

        next_counts: ``(B, S)`` the model's next-state counts of ``cell``; s: ``(B,)`` visited ids.
        """
        ended = np.flatnonzero(terminated)
        if ended.size:  # a newly seen terminal id is worth 0 from now on
            self._flat_v[(self._head_states + (self._base[ended] + s2[ended])).reshape(-1)] = 0.0
        n = model.n.reshape(-1)[cell]
        # sum_s' N(s, a, s') V(s') per head and row
        expected_v = np.einsum("bs,hbs->hb", next_counts, self.V)
        backup = (model.rsum.reshape(-1)[cell] + self.gamma * expected_v) / n  # (heads, B)
        hc = (self._head_cells + cell).reshape(-1)  # (heads*B,) flat cells of every head
        q = self._flat_q[hc]
        self._flat_q[hc] = q + (self.alpha * (backup - q.reshape(self.H, -1))).reshape(-1)
        hs = (self._head_states + (self._base + s)).reshape(-1)  # (heads*B,) flat visited states
        self._flat_v[hs] = rowmax(np.take(self._rows_q, hs, axis=0))

    def sweep(self, rows: np.ndarray | None, model: CountModel, iters: int) -> None:
        """``iters`` value-iteration sweeps over every ``(s, a)`` of the model of ``rows`` (all if
        None), for every head at once."""
        sel = slice(None) if rows is None else rows
        N = model.N if rows is None else np.take(model.N, rows, axis=0)  # (k, S, A, S)
        k, S, A, H = N.shape[0], self.S, self.A, self.H
        n = model.n[sel].astype(np.float64)  # (k, S, A)
        seen = n > 0
        inv = np.where(seen, 1.0 / np.maximum(n, 1.0), 0.0)
        r_hat = model.rsum[sel] * inv
        live = ~model.term[sel]  # (k, S)
        gamma = self.gamma[:, sel][:, :, None, None]  # (H, k, 1, 1)
        Q = self.Q[:, sel]  # (H, k, S, A)
        N2 = N.reshape(k, S * A, S)
        for _ in range(iters):
            V = (rowmax(Q) * live).astype(np.float32)  # (H, k, S)
            PV = np.matmul(N2, V.transpose(1, 2, 0))  # (k, S*A, H)
            PV = PV.transpose(2, 0, 1).reshape(H, k, S, A)
            Q = np.where(seen, r_hat + gamma * PV * inv, Q)
        self.Q[:, sel] = Q
        self.V[:, sel] = rowmax(Q) * live


class ModelBasedAgent:
    """The model-based learner in every row (tag ``MODEL_BASED``); see the module docstring.

    ``gamma``, ``c`` and ``alpha`` (``(B,)`` arrays) hold each row's hyper-parameters.
    """

    def __init__(self, tasks: Sequence[MDPTask], seeds: Sequence, config: ModelBasedConfig | None = None,
                 *, n_obs: int | None = None) -> None:
        config = ModelBasedConfig() if config is None else config
        if not isinstance(config, ModelBasedConfig):
            raise ValueError(f"config must be a ModelBasedConfig, got {type(config).__name__}")
        self.config = config
        self.n_envs, self.n_obs, self.n_actions = batch_sizes(tasks, seeds, n_obs, None)
        B, S, A = self.n_envs, self.n_obs, self.n_actions
        self.streams = RowStreams(list(seeds))
        self.model = CountModel(B, S, A, full=True)
        self.values = ModelValues(B, S, A)
        self.values.gamma[:] = config.gamma
        self.values.c[:] = config.c
        self.values.alpha[:] = config.alpha
        self._rows = np.arange(B)
        self.values.reset(self._rows, list(tasks))
        self.t = np.zeros(B, dtype=np.int64)  # (B,) steps since each row's sequence began
        self._tags = np.full(B, int(PriorInfo.MODEL_BASED), dtype=np.int64)

    @property
    def gamma(self) -> np.ndarray:
        return self.values.gamma[0]

    @property
    def c(self) -> np.ndarray:
        return self.values.c[0]

    @property
    def alpha(self) -> np.ndarray:
        return self.values.alpha[0]

    @property
    def Q(self) -> np.ndarray:
        """``(B, S, A)`` current action values."""
        return self.values.Q[0]

    @property
    def last_tags(self) -> np.ndarray:
        """``(B,)`` always ``MODEL_BASED``."""
        return self._tags

    def act(self, obs: np.ndarray) -> np.ndarray:
        """``(B,)`` optimistic-sampling actions of ``obs (B,)``."""
        z = self.streams.normal(LANES["mb_bonus"], self.n_actions)
        return self.values.act_rows(self._rows, np.asarray(obs, dtype=np.int64), self.model, z)

    def observe(self, obs, action, reward, next_obs, done) -> None:
        """Update the model and the values; ``done`` is *terminated* (next id is terminal)."""
        s = np.asarray(obs, dtype=np.int64)
        cell = self.model.cells(s, np.asarray(action, dtype=np.int64))
        s2 = np.asarray(next_obs, dtype=np.int64)
        term = np.asarray(done, dtype=bool)
        self.model.update(cell, np.asarray(reward, dtype=np.float64), s2, term)
        counts = np.take(self.model.N.reshape(-1, self.n_obs), cell, axis=0)  # (B, S)
        self.values.update(cell, s, self.model, counts, s2, term)
        self.t += 1
        run_sweeps(self.t, self.config.sweep_every, self.config.sweep_iters, self.model, self.values)
        self.streams.advance()

    def reset(self, rows, tasks: Sequence[MDPTask], seeds: Sequence) -> None:
        """New sequences in ``rows``: fresh model and values, new tasks and streams."""
        r = check_rows_tasks_seeds(rows, list(tasks), list(seeds), self.n_envs, self.n_obs, self.n_actions)
        self.streams.reset(r, list(seeds))
        self.model.reset(r)
        self.values.reset(r, list(tasks))
        self.t[r] = 0


def run_sweeps(t: np.ndarray, every: int, iters: int, model: CountModel, values: ModelValues) -> None:
    """Sweep the rows whose step count ``t (B,)`` is a multiple of ``every`` (0: never)."""
    if every <= 0:
        return
    due = (t % every) == 0
    if not due.any():
        return
    values.sweep(None if due.all() else np.flatnonzero(due), model, iters)
