"""``MDPTask``: one tabular MDP as an immutable value.

A task is sampled once (``omnirl.tasks.sample_task``) and then passed *into* environments,
simulators, solvers and agents; nothing downstream samples or mutates it.

Conventions
-----------
* Arrays are indexed by **hidden rank** ``i in [0, n)``: rank order is the order in which the
  AnyMDP generator builds its banded kernel (low ranks near the start, high ranks rewarding).
  What an agent observes is ``state_ids[i]``, a random injective map into ``[0, n_obs)``, so the
  rank never leaks through the observation.
* Terminal states (pitfalls and the optional goal) have all-zero transition rows: an episode ends
  when it *enters* one, and the reward for entering it lives in ``reward[s, a, terminal]``.
* ``transition``, ``reward`` and ``reward_noise`` are float32 (compact on disk, exact for the
  simulator); solvers compute in float64.
"""

from __future__ import annotations

import dataclasses
import hashlib
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

from omnirl._validate import check_int, check_seed

MAX_ACTIONS = 255
"""Largest number of actions of a task: its actions 0..A-1 and the episode-end marker A fit in the
uint8 of stored sequences (``omnirl.data.schema``), and the solver's work grows with A squared."""


def _frozen(a, dtype) -> np.ndarray:
    out = np.array(a, dtype=dtype, copy=True)
    out.setflags(write=False)
    return out


@dataclasses.dataclass(frozen=True, eq=False)
class MDPTask:
    """An immutable tabular MDP with its provenance."""

    n_obs: int
    """Size of the observation space ``S``: observed state ids lie in ``[0, n_obs)``."""
    transition: np.ndarray
    """``P[n, A, n]`` float32, hidden-rank order; rows of non-terminal states sum to 1, terminal rows are 0."""
    reward: np.ndarray
    """``R[n, A, n]`` float32: mean reward of the transition ``(s, a) -> s'``."""
    reward_noise: np.ndarray
    """``[n, A, n]`` float32: standard deviation of the Gaussian noise added to ``reward``."""
    start_states: np.ndarray
    """``(k,)`` int64 hidden ranks an episode can start in."""
    start_probs: np.ndarray
    """``(k,)`` float64 probabilities of ``start_states`` (sum to 1)."""
    terminal: np.ndarray
    """``(n,)`` bool: entering this rank ends the episode (pitfalls and the goal)."""
    goal: int | None
    """Hidden rank of the goal terminal state, or ``None`` when the task has no goal."""
    max_steps: int
    """Episode step limit (truncation)."""
    state_ids: np.ndarray
    """``(n,)`` int64 observed id of each hidden rank (injective into ``[0, n_obs)``)."""
    generator: str
    """Name of the sampler that made the task (``anymdp``, ``garnet``, ``bandit``)."""
    params: Mapping[str, Any]
    """The sampler's parameters (read-only mapping of plain values)."""
    seed: tuple[int, ...]
    """Seed of the sampler's stream: ``(root,)`` or ``(root, index, ...)``."""

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "transition", _frozen(self.transition, np.float32))
        set_(self, "reward", _frozen(self.reward, np.float32))
        set_(self, "reward_noise", _frozen(self.reward_noise, np.float32))
        set_(self, "start_states", _frozen(self.start_states, np.int64))
        set_(self, "start_probs", _frozen(self.start_probs, np.float64))
        set_(self, "terminal", _frozen(self.terminal, bool))
        set_(self, "state_ids", _frozen(self.state_ids, np.int64))
        set_(self, "params", MappingProxyType(dict(self.params)))
        set_(self, "seed", check_seed("seed", self.seed))
        set_(self, "n_obs", check_int("n_obs", self.n_obs, min_value=1))
        set_(self, "max_steps", check_int("max_steps", self.max_steps, min_value=1))
        if self.goal is not None:
            set_(self, "goal", check_int("goal", self.goal, min_value=0))
        self._check_shapes()

    def _check_shapes(self) -> None:
        P = self.transition
        if P.ndim != 3 or P.shape[0] != P.shape[2]:
            raise ValueError(f"transition must have shape (n, A, n), got {P.shape}")
        n, A, _ = P.shape
        for name in ("reward", "reward_noise"):
            if getattr(self, name).shape != P.shape:
                raise ValueError(f"{name} must have shape {P.shape}, got {getattr(self, name).shape}")
        if self.terminal.shape != (n,) or self.state_ids.shape != (n,):
            raise ValueError(f"terminal and state_ids must have shape ({n},), got "
                             f"{self.terminal.shape} and {self.state_ids.shape}")
        if n > self.n_obs:
            raise ValueError(f"n_obs={self.n_obs} is smaller than the number of states {n}")
        ids = self.state_ids
        if ids.min() < 0 or ids.max() >= self.n_obs or len(np.unique(ids)) != n:
            raise ValueError(f"state_ids must be distinct ids in [0, {self.n_obs}), got {ids.tolist()}")
        if self.start_states.shape != self.start_probs.shape or self.start_states.size == 0:
            raise ValueError("start_states and start_probs must be non-empty and of equal shape, got "
                             f"{self.start_states.shape} and {self.start_probs.shape}")
        if self.start_states.min() < 0 or self.start_states.max() >= n:
            raise ValueError(f"start_states must be ranks in [0, {n}), got {self.start_states.tolist()}")
        if np.any(self.terminal[self.start_states]):
            raise ValueError(f"start_states {self.start_states.tolist()} include a terminal state")
        if abs(float(self.start_probs.sum()) - 1.0) > 1e-9 or self.start_probs.min() < 0:
            raise ValueError(f"start_probs must be a probability vector, got {self.start_probs.tolist()}")
        if self.goal is not None and (self.goal >= n or not self.terminal[self.goal]):
            raise ValueError(f"goal={self.goal} must be a terminal rank in [0, {n})")

    # ----------------------------------------------------------------- derived views
    @property
    def n_states(self) -> int:
        """Number of active (hidden) states ``n <= n_obs``."""
        return self.transition.shape[0]

    @property
    def n_actions(self) -> int:
        """Number of actions ``A``."""
        return self.transition.shape[1]

    @property
    def pitfalls(self) -> np.ndarray:
        """Hidden ranks of the terminal states other than the goal."""
        mask = self.terminal.copy()
        if self.goal is not None:
            mask[self.goal] = False
        return np.flatnonzero(mask)

    @property
    def rank_of_obs(self) -> np.ndarray:
        """``(n_obs,)`` hidden rank of each observed id, ``-1`` for ids no state uses."""
        out = np.full(self.n_obs, -1, dtype=np.int64)
        out[self.state_ids] = np.arange(self.n_states)
        return out

    def row_sum_error(self) -> float:
        """Largest ``|sum_s' P[s, a, s'] - 1|`` over non-terminal ``s`` (float64 arithmetic)."""
        sums = self.transition.astype(np.float64).sum(-1)[~self.terminal]
        return float(np.abs(sums - 1.0).max()) if sums.size else 0.0

    def content_hash(self) -> str:
        """SHA-256 of everything that defines the task (arrays, sizes, provenance); computed once."""
        cached = self.__dict__.get("_content_hash")
        if cached is not None:
            return cached
        h = hashlib.sha256()
        h.update(repr((self.n_obs, self.goal, self.max_steps, self.generator,
                       sorted(self.params.items()), self.seed)).encode())
        for a in (self.transition, self.reward, self.reward_noise, self.start_states,
                  self.start_probs, self.terminal, self.state_ids):
            h.update(str(a.shape).encode())
            h.update(np.ascontiguousarray(a).tobytes())
        object.__setattr__(self, "_content_hash", h.hexdigest())
        return self.__dict__["_content_hash"]

    # an immutable value: copies are the value itself, and pickling rebuilds it from plain fields
    def __copy__(self) -> "MDPTask":
        return self

    def __deepcopy__(self, memo: dict) -> "MDPTask":
        return self

    def __reduce__(self):
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        fields["params"] = dict(self.params)
        return (_rebuild_task, (fields,))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MDPTask) and self.content_hash() == other.content_hash()

    def __hash__(self) -> int:
        return hash(self.content_hash())

    def __repr__(self) -> str:
        return (f"MDPTask({self.generator}, n_states={self.n_states}, n_obs={self.n_obs}, "
                f"n_actions={self.n_actions}, pitfalls={len(self.pitfalls)}, goal={self.goal}, "
                f"max_steps={self.max_steps}, seed={self.seed})")


def _rebuild_task(fields: dict) -> MDPTask:
    return MDPTask(**fields)
