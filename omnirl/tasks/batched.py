"""``BatchedSimulator``: ``B`` tabular MDPs stepped at once in numpy.

Every row follows the protocol of ``omnirl.tasks.dynamics`` with its own key and counter, so a
row's trajectory is a function of its task, seed and actions only (never of the other rows), and
equals, bit for bit, the trajectory of ``AnyMDPEnv`` reset with the same seed and then reset
without a seed after every episode end. Rows whose episode ends are reset in the same ``step``.

Tasks may differ in ``n_states`` and ``n_obs`` (they must share ``n_actions``): tables are padded
to ``n_pad`` states, and padded cdf columns hold 1.0 so they are never drawn. Tables are stored
once per distinct task object (rows that share a task share its tables), so a batch of thousands
of rows over a few dozen tasks stays small; ``slot`` maps each row to its task's tables.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from omnirl._validate import check_int, check_seed
from omnirl.tasks import dynamics
from omnirl.tasks.rng import seed_to_key
from omnirl.tasks.task import MDPTask


def check_rows(rows: Any, tasks: Sequence, seeds: Sequence, n_envs: int) -> np.ndarray:
    """Validate the ``rows`` of a batch of ``n_envs`` rows that get new ``tasks`` and ``seeds``:
    distinct integer indices in ``[0, n_envs)``, one task (an ``MDPTask``) and one seed per row.
    Returns ``rows`` as an int64 array."""
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
    return r


class BatchedSimulator:
    """Step ``B = len(tasks)`` environments at once; row ``i`` runs ``tasks[i]`` seeded ``seeds[i]``.

    ``n_pad`` (default: the largest ``n_states`` among ``tasks``) is the padded state count; pass
    a larger one to leave room for bigger tasks in later ``set_tasks`` calls.
    The simulator is reset on construction; ``reset()`` re-seeds every row.
    """

    def __init__(self, tasks: Sequence[MDPTask], seeds: Sequence[int | tuple[int, ...]], *,
                 n_pad: int | None = None) -> None:
        tasks, seeds = list(tasks), list(seeds)
        if len(tasks) == 0:
            raise ValueError("tasks must hold at least one MDPTask, got an empty sequence")
        if len(seeds) != len(tasks):
            raise ValueError(f"seeds must have one seed per task: got {len(seeds)} seeds for "
                             f"{len(tasks)} tasks")
        for i, t in enumerate(tasks):
            if not isinstance(t, MDPTask):
                raise ValueError(f"tasks[{i}] must be an MDPTask, got {type(t).__name__}")
        A = tasks[0].n_actions
        for i, t in enumerate(tasks):
            if t.n_actions != A:
                raise ValueError(f"all tasks must have the same n_actions: tasks[0] has {A}, "
                                 f"tasks[{i}] has {t.n_actions}")
        n_max = max(t.n_states for t in tasks)
        n = n_max if n_pad is None else check_int("n_pad", n_pad, min_value=n_max)
        B = len(tasks)
        self._B, self._A, self._n = B, A, n

        # task tables, one slot per distinct task object: T slots
        self._pool: list[MDPTask | None] = []  # (T,) task in each slot, None if free
        self._slot_of: dict[int, int] = {}  # id(task) -> slot
        self._alloc(0)

        # per-row state
        self._slot = np.zeros(B, dtype=np.int64)  # (B,) table slot of each row
        self._base = np.zeros(B, dtype=np.int64)  # (B,) slot * n: offset into flat (T*n) tables
        self._max_steps = np.zeros(B, dtype=np.int64)  # (B,)
        self._seed_key = np.zeros(B, dtype=np.uint64)  # (B,) seed_to_key of each row's seed
        self._seeds: list[tuple[int, ...]] = [()] * B
        self._key = np.zeros(B, dtype=np.uint64)  # (B,)
        self._counter = np.zeros(B, dtype=np.uint64)  # (B,)
        self._rank = np.zeros(B, dtype=np.int64)  # (B,) hidden rank of the current state
        self._steps = np.zeros(B, dtype=np.int64)  # (B,) episode step counts

        rows = np.arange(B)
        parts, keys = self._check_seeds(seeds)
        self._install(rows, tasks, parts, keys)
        self.reset()

    # ----------------------------------------------------------------- properties
    @property
    def n_envs(self) -> int:
        """Number of rows ``B``."""
        return self._B

    @property
    def n_actions(self) -> int:
        """Number of actions ``A`` shared by every task."""
        return self._A

    @property
    def n_pad(self) -> int:
        """Padded number of states: every task must have ``n_states <= n_pad``."""
        return self._n

    @property
    def obs(self) -> np.ndarray:
        """``(B,)`` int64 current observation of each row (the one the next action applies to)."""
        return self._ids[self._base + self._rank]

    @property
    def rank(self) -> np.ndarray:
        """``(B,)`` int64 hidden rank of each row's current state (for oracle agents)."""
        return self._rank.copy()

    @property
    def steps(self) -> np.ndarray:
        """``(B,)`` int64 step count of each row's current episode."""
        return self._steps.copy()

    @property
    def tasks(self) -> tuple[MDPTask, ...]:
        """The task of each row."""
        return tuple(self._pool[s] for s in self._slot)

    @property
    def seeds(self) -> tuple[tuple[int, ...], ...]:
        """The seed of each row, normalised to a tuple."""
        return tuple(self._seeds)

    # ----------------------------------------------------------------- stepping
    def reset(self) -> np.ndarray:
        """Reset every row as ``AnyMDPEnv.reset(seed)`` with its seed; returns ``obs (B,)``."""
        self._key[:] = self._seed_key
        self._counter[:] = 0
        self._reset_rows(np.arange(self._B))
        return self.obs

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Apply ``actions (B,)``; returns ``(next_obs, reward, terminated, truncated)``, each ``(B,)``.

        ``next_obs`` (int64) is the observation each action led to, terminal ones included;
        ``reward`` is float64. Rows that terminate or truncate are reset in the same call, so
        ``obs`` then holds their new start observation.
        """
        a = self._check_actions(actions)
        n, A = self._n, self._A
        key, ctr = self._key, self._counter
        row = (self._base + self._rank) * A + a  # (B,) row of the flat (T*n*A, n) cdf
        nxt = dynamics.sample_next(self._cdf_rows, row, key, ctr)  # (B,)
        cell = row * n + nxt  # (B,) index into the flat (T*n*A*n,) reward tables
        reward = dynamics.sample_reward(self._reward_flat[cell], self._noise_flat[cell], key, ctr)
        ctr += np.uint64(1)
        self._steps += 1
        at = self._base + nxt  # (B,) index into flat (T*n,) state tables
        terminated, truncated = dynamics.episode_end(self._terminal[at], self._steps, self._max_steps)
        next_obs = self._ids[at]
        self._rank = nxt
        done = terminated | truncated
        if done.any():
            self._reset_rows(np.flatnonzero(done))
        return next_obs, reward, terminated, truncated

    def set_tasks(self, rows: Any, tasks: Sequence[MDPTask],
                  seeds: Sequence[int | tuple[int, ...]]) -> np.ndarray:
        """Give ``rows`` new ``tasks`` and ``seeds`` and reset them; returns their ``obs``.

        rows: distinct row indices ``(k,)``; tasks and seeds: ``k`` each. Tasks must have
        ``n_actions == self.n_actions`` and ``n_states <= self.n_pad``. Other rows are untouched.
        """
        tasks, seeds = list(tasks), list(seeds)
        r = check_rows(rows, tasks, seeds, self._B)
        for i, t in enumerate(tasks):
            if t.n_actions != self._A:
                raise ValueError(f"tasks[{i}] has n_actions={t.n_actions}, the simulator has "
                                 f"n_actions={self._A}")
            if t.n_states > self._n:
                raise ValueError(f"tasks[{i}] has n_states={t.n_states}, more than the simulator's "
                                 f"padded size n_pad={self._n} (construct it with a larger n_pad)")
        parts, keys = self._check_seeds(seeds)
        self._install(r, tasks, parts, keys)
        self._key[r] = self._seed_key[r]
        self._counter[r] = 0
        self._reset_rows(r)
        return self._ids[self._base[r] + self._rank[r]]

    # ----------------------------------------------------------------- internals
    def _check_actions(self, actions: Any) -> np.ndarray:
        a = np.asarray(actions)
        if a.shape != (self._B,):
            raise ValueError(f"actions must have shape ({self._B},), got {a.shape}")
        if a.dtype.kind not in "iu":
            raise ValueError(f"actions must be integers, got dtype {a.dtype}")
        bad = (a < 0) | (a >= self._A)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"actions must lie in [0, {self._A}), got actions[{i}]={a[i]}")
        return a.astype(np.int64, copy=False)

    @staticmethod
    def _check_seeds(seeds: list) -> tuple[list[tuple[int, ...]], np.ndarray]:
        parts = [check_seed(f"seeds[{i}]", s) for i, s in enumerate(seeds)]
        return parts, np.array([seed_to_key(p) for p in parts], dtype=np.uint64)

    def _reset_rows(self, idx: np.ndarray) -> None:
        """Draw start states for rows ``idx (k,)`` at their current counters."""
        k, c = self._key[idx], self._counter[idx]
        self._rank[idx] = dynamics.sample_start(self._start_cdf, self._slot[idx], k, c)
        self._counter[idx] = c + np.uint64(1)
        self._steps[idx] = 0

    def _alloc(self, T: int) -> None:
        """Grow the tables to ``T`` slots, keeping the existing ones."""
        n, A = self._n, self._A
        old = 0 if not self._pool else len(self._pool)
        if old and T <= old:
            return
        new = {
            "_cdf": np.ones((T, n, A, n), dtype=np.float32),
            "_reward": np.zeros((T, n, A, n), dtype=np.float32),
            "_noise": np.zeros((T, n, A, n), dtype=np.float32),
            "_term2": np.zeros((T, n), dtype=bool),
            "_ids2": np.full((T, n), -1, dtype=np.int64),
            "_start_cdf": np.ones((T, n), dtype=np.float64),
            "_slot_max_steps": np.zeros(T, dtype=np.int64),
        }
        for name, arr in new.items():
            if old:
                arr[:old] = getattr(self, name)
            setattr(self, name, arr)
        self._pool.extend([None] * (T - old))
        # flat views used on the hot path
        self._cdf_rows = self._cdf.reshape(T * n * A, n)
        self._reward_flat = self._reward.reshape(-1)
        self._noise_flat = self._noise.reshape(-1)
        self._terminal = self._term2.reshape(-1)
        self._ids = self._ids2.reshape(-1)

    def _write(self, slot: int, task: MDPTask) -> None:
        """Store ``task``'s padded tables in ``slot``."""
        m = task.n_states
        if m < self._n:  # clear the padding left by a previous, larger task
            self._cdf[slot] = 1.0
            self._reward[slot] = 0.0
            self._noise[slot] = 0.0
        self._cdf[slot, :m, :, :m] = dynamics.transition_cdf(task)
        self._reward[slot, :m, :, :m] = task.reward
        self._noise[slot, :m, :, :m] = task.reward_noise
        self._term2[slot] = False
        self._term2[slot, :m] = task.terminal
        self._ids2[slot] = -1
        self._ids2[slot, :m] = task.state_ids
        self._start_cdf[slot] = 1.0
        self._start_cdf[slot, :m] = dynamics.start_cdf(task)
        self._slot_max_steps[slot] = task.max_steps
        old = self._pool[slot]
        if old is not None:
            del self._slot_of[id(old)]
        self._pool[slot] = task
        self._slot_of[id(task)] = slot

    def _install(self, rows: np.ndarray, tasks: list[MDPTask], parts: list[tuple[int, ...]],
                 keys: np.ndarray) -> None:
        """Point ``rows`` at ``tasks`` (storing tables of tasks not held yet) and set their seeds."""
        T = len(self._pool)
        keep = np.ones(self._B, dtype=bool)
        keep[rows] = False
        in_use = np.zeros(T, dtype=bool)
        if T:
            in_use[self._slot[keep]] = True
        slots = np.empty(len(tasks), dtype=np.int64)
        pending: dict[int, list[int]] = {}  # id(task) of tasks without a slot -> positions
        for i, t in enumerate(tasks):
            s = self._slot_of.get(id(t))
            if s is not None and self._pool[s] is t:
                slots[i] = s
                in_use[s] = True
            else:
                pending.setdefault(id(t), []).append(i)
        free = list(np.flatnonzero(~in_use))
        extra = len(pending) - len(free)
        if extra > 0:
            free += list(range(T, T + extra))
            self._alloc(T + extra)
        for (_, pos), s in zip(pending.items(), free):
            self._write(int(s), tasks[pos[0]])
            slots[pos] = s
        self._slot[rows] = slots
        self._base[rows] = slots * self._n
        self._max_steps[rows] = self._slot_max_steps[slots]
        self._seed_key[rows] = keys
        for r, p in zip(rows.tolist(), parts):
            self._seeds[r] = p
