"""Evaluation environments as batches: ``B`` discrete environments stepped together.

Every protocol and every baseline runs an ``EnvBatch``:

* ``reset(seed) -> obs (B,)``: seeds every row from ``(seed, row)``, once. Later episodes of a
  row continue that row's random stream (a row is never reset with the same seed twice, so
  episodes do not repeat their start states);
* ``step(actions (B,)) -> StepResult``: native actions in ``[0, n_actions)`` of each row; rows
  whose episode ends (terminated or truncated) are reset in the same call, so ``obs`` then holds
  their next episode's first observation while ``StepResult.next_obs`` holds the observation the
  step led to;
* ``oracle_actions() (B,)``: what the best known policy does in each row's current state (used for
  demonstrations and sanity checks);
* ``infos``: one ``EnvInfo`` per row (name, sizes, reference returns).

Rewards: ``StepResult.reward`` is what the agent sees (shaped, see each environment's module),
``StepResult.raw_reward`` what the environment paid; returns and scores use the raw rewards.

Two implementations: ``MDPBatch`` runs ``MDPTask``s (AnyMDP, bandits, and any environment whose
model is a table) on the batched simulator; ``GymBatch`` runs Gymnasium environments wrapped by
``DiscreteAdapter`` subclasses, one Python call per environment per step. A multi-agent adapter
(``n_agents > 1``) takes ``n_agents`` consecutive rows: each agent is a row with its own
observation, reward and (in the protocols) its own context.

Action remapping: a model with ``A`` actions drives an environment with ``n_actions < A`` through
``remap_actions`` (``a % n_actions``: with 4 native actions, 4 plays 0), as the reference does;
the unmapped action is what enters the model's context.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple, Protocol, Sequence

import gymnasium
import numpy as np

from omnirl._validate import check_int
from omnirl.agents.oracle import oracle_tables
from omnirl.agents.prior import ORACLE_GAMMAS, REFERENCE
from omnirl.tasks import MDPTask, reference_returns
from omnirl.tasks.batched import BatchedSimulator
from omnirl.tasks.rng import seed_to_key


@dataclasses.dataclass(frozen=True)
class EnvInfo:
    """What the evaluation needs to know of one environment (one row of a batch)."""

    name: str
    """Environment name as in the suites and tables, e.g. ``lake4x4``, ``anymdp16``."""
    family: str
    """Environment family (``anymdp``, ``bandit``, ``lake``, ``cliff``, ``pendulum``, ``darkroom``,
    ``switch2``): tables and t-SNE plots group by it."""
    n_obs: int
    """Observation ids lie in ``[0, n_obs)``."""
    n_actions: int
    """Native actions ``[0, n_actions)``."""
    max_episode_steps: int
    """Episode limit (truncation)."""
    random_return: float
    """Expected raw episode return of the uniform random policy (NaN if unknown)."""
    oracle_return: float
    """Expected raw episode return of the best known policy (NaN if unknown)."""
    exact: bool
    """Whether the reference returns are exact (computed from the environment's model) rather than
    published constants or Monte-Carlo estimates."""

    def __post_init__(self) -> None:
        check_int("n_obs", self.n_obs, min_value=1)
        check_int("n_actions", self.n_actions, min_value=1)
        check_int("max_episode_steps", self.max_episode_steps, min_value=1)

    def score(self, ret) -> np.ndarray:
        """Normalised score ``(R - R_random) / (R_oracle - R_random)`` of raw returns ``ret``; NaN
        when a reference is unknown or the two coincide."""
        span = self.oracle_return - self.random_return
        ret = np.asarray(ret, dtype=np.float64)
        if not math.isfinite(span) or abs(span) < 1e-12:
            return np.full(ret.shape, np.nan)
        return (ret - self.random_return) / span


class StepResult(NamedTuple):
    """One batched step; every field ``(B,)``."""

    next_obs: np.ndarray
    """int64 observation the step led to (the terminal one where the episode ended)."""
    reward: np.ndarray
    """float64 shaped reward (what the agent sees)."""
    raw_reward: np.ndarray
    """float64 reward the environment paid (what returns are made of)."""
    terminated: np.ndarray
    """bool: the episode ended in a terminal state."""
    truncated: np.ndarray
    """bool: the episode hit its step limit (or the environment cut it)."""


class EnvBatch(Protocol):
    """See the module docstring."""

    infos: tuple[EnvInfo, ...]
    obs: np.ndarray

    @property
    def n_envs(self) -> int: ...

    def reset(self, seed: int) -> np.ndarray: ...

    def step(self, actions: Any) -> StepResult: ...

    def oracle_actions(self) -> np.ndarray: ...


def remap_actions(actions: Any, n_actions: np.ndarray) -> np.ndarray:
    """Model actions ``(B,)`` -> native actions ``a % n_actions`` (``n_actions (B,)`` per row)."""
    a = np.asarray(actions, dtype=np.int64)
    if a.shape != n_actions.shape:
        raise ValueError(f"actions must have shape {n_actions.shape}, got {a.shape}")
    if a.size and a.min() < 0:
        raise ValueError(f"actions must be >= 0, got {a.tolist()}")
    return a % n_actions


def row_seed(seed: int, row: int) -> int:
    """A 63-bit seed for row ``row`` of a batch reset with ``seed``."""
    check_int("seed", seed, min_value=0)
    return int(seed_to_key((seed, row))) >> 1


def _check_actions(actions: Any, infos: Sequence[EnvInfo]) -> np.ndarray:
    a = np.asarray(actions)
    if a.shape != (len(infos),) or (a.size and a.dtype.kind not in "iu"):
        raise ValueError(f"actions must be {len(infos)} integers, got {actions!r}")
    a = a.astype(np.int64)
    high = np.array([i.n_actions for i in infos])
    bad = np.flatnonzero((a < 0) | (a >= high))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"actions[{i}]={int(a[i])} is outside [0, {int(high[i])}) of {infos[i].name}")
    return a


# --------------------------------------------------------------------------- tabular environments
class MDPBatch:
    """``EnvBatch`` of tabular tasks on ``BatchedSimulator`` (all rows share ``n_actions``).

    ``names`` (default ``anymdp{n_obs}``) and ``family`` label the rows; ``shaping`` (optional)
    maps ``(raw_reward, terminated, truncated)`` arrays to the shaped reward. Reference returns are
    exact: ``omnirl.tasks.reference_returns`` (uniform random and the greedy ``Q*`` policy at the
    reference discount); ``oracle_actions`` are that oracle's.
    """

    def __init__(self, tasks: Sequence[MDPTask], *, names: Sequence[str] | None = None,
                 family: str = "anymdp", shaping=None) -> None:
        self.tasks = tuple(tasks)
        if not self.tasks:
            raise ValueError("tasks must hold at least one MDPTask, got an empty sequence")
        if names is not None and len(names) != len(self.tasks):
            raise ValueError(f"names must have {len(self.tasks)} entries, got {len(names)}")
        gamma = ORACLE_GAMMAS[REFERENCE]
        infos = []
        for i, t in enumerate(self.tasks):
            rnd, opt = reference_returns(t, gamma)
            infos.append(EnvInfo(name=f"anymdp{t.n_obs}" if names is None else names[i], family=family,
                                 n_obs=t.n_obs, n_actions=t.n_actions, max_episode_steps=t.max_steps,
                                 random_return=rnd, oracle_return=opt, exact=True))
        self.infos = tuple(infos)
        self._n_obs = max(t.n_obs for t in self.tasks)
        self._oracle = oracle_tables(self.tasks, gamma, self._n_obs)  # (B, n_obs)
        self._shaping = shaping
        self._sim: BatchedSimulator | None = None
        self.obs = np.zeros(len(self.tasks), dtype=np.int64)

    @property
    def n_envs(self) -> int:
        return len(self.tasks)

    def reset(self, seed: int) -> np.ndarray:
        seeds = [(check_int("seed", seed, min_value=0), i) for i in range(self.n_envs)]
        self._sim = BatchedSimulator(self.tasks, seeds)
        self.obs = self._sim.obs.copy()
        return self.obs

    def step(self, actions: Any) -> StepResult:
        if self._sim is None:
            raise RuntimeError("call reset(seed) before step")
        a = _check_actions(actions, self.infos)
        next_obs, raw, terminated, truncated = self._sim.step(a)
        reward = raw if self._shaping is None else self._shaping(raw, terminated, truncated)
        self.obs = self._sim.obs.copy()
        return StepResult(next_obs, np.asarray(reward, dtype=np.float64), raw, terminated, truncated)

    def oracle_actions(self) -> np.ndarray:
        return self._oracle[np.arange(self.n_envs), self.obs]


# --------------------------------------------------------------------------- Gymnasium environments
class DiscreteAdapter(gymnasium.Wrapper):
    """A Gymnasium environment seen as a discrete one: integer observations in
    ``[0, info.n_obs)``, ``Discrete(info.n_actions)`` actions, shaped rewards.

    Subclasses set ``self.info`` (an ``EnvInfo``) and implement ``observe(raw_obs) -> int`` and
    ``shape(raw_reward, terminated, truncated, raw_info) -> float`` (identity when shaping is off),
    and may override ``oracle_action() -> int`` (the best known action in the current state) and
    ``n_agents``. ``step`` returns the shaped reward and puts the raw one in
    ``info["raw_reward"]``.

    Multi-agent adapters (``n_agents > 1``) take and return per-agent sequences: ``step(actions)``
    with one action per agent returns ``(obs list, shaped reward list, terminated, truncated,
    info)`` with ``info["raw_reward"]`` a list, and ``oracle_action()`` returns a list.
    """

    info: EnvInfo
    n_agents: int = 1
    shaping: bool = True

    def observe(self, raw_obs: Any) -> Any:
        raise NotImplementedError

    def shape(self, raw_reward: float, terminated: bool, truncated: bool, raw_info: dict) -> float:
        return raw_reward

    def oracle_action(self) -> Any:
        raise NotImplementedError(f"{type(self).__name__} has no oracle")

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        raw_obs, info = self.env.reset(seed=seed, options=options)
        return self.observe(raw_obs), info

    def step(self, action):
        raw_obs, raw, terminated, truncated, info = self.env.step(action)
        info = dict(info, raw_reward=raw)
        reward = self.shape(raw, terminated, truncated, info) if self.shaping else raw
        return self.observe(raw_obs), reward, terminated, truncated, info


class GymBatch:
    """``EnvBatch`` of ``DiscreteAdapter`` environments; an adapter with ``n_agents = k`` takes
    ``k`` consecutive rows. ``reset(seed)`` seeds environment ``j`` with ``row_seed(seed, j)`` once;
    later episodes reset without a seed (continuing its stream)."""

    def __init__(self, envs: Sequence[DiscreteAdapter]) -> None:
        self.envs = tuple(envs)
        if not self.envs:
            raise ValueError("envs must hold at least one environment, got an empty sequence")
        for j, e in enumerate(self.envs):
            if not isinstance(e, DiscreteAdapter):
                raise ValueError(f"envs[{j}] must be a DiscreteAdapter, got {type(e).__name__}")
        self._rows = []  # (first row, agents) of each environment
        infos: list[EnvInfo] = []
        for e in self.envs:
            self._rows.append((len(infos), e.n_agents))
            infos.extend([e.info] * e.n_agents)
        self.infos = tuple(infos)
        self.obs = np.zeros(len(infos), dtype=np.int64)
        self._ready = False

    @property
    def n_envs(self) -> int:
        return len(self.infos)

    def reset(self, seed: int) -> np.ndarray:
        check_int("seed", seed, min_value=0)
        for j, (e, (lo, k)) in enumerate(zip(self.envs, self._rows)):
            obs, _ = e.reset(seed=row_seed(seed, j))
            self.obs[lo:lo + k] = obs if k > 1 else [obs]
        self._ready = True
        return self.obs.copy()

    def step(self, actions: Any) -> StepResult:
        if not self._ready:
            raise RuntimeError("call reset(seed) before step")
        a = _check_actions(actions, self.infos)
        B = self.n_envs
        next_obs = np.zeros(B, dtype=np.int64)
        reward, raw = np.zeros(B), np.zeros(B)
        terminated, truncated = np.zeros(B, dtype=bool), np.zeros(B, dtype=bool)
        self.obs = self.obs.copy()  # a fresh array: callers may hold the previous one
        for e, (lo, k) in zip(self.envs, self._rows):
            act = int(a[lo]) if k == 1 else [int(x) for x in a[lo:lo + k]]
            obs, r, term, trunc, info = e.step(act)
            next_obs[lo:lo + k] = obs if k > 1 else [obs]
            reward[lo:lo + k] = r if k > 1 else [r]
            raw[lo:lo + k] = info["raw_reward"] if k > 1 else [info["raw_reward"]]
            terminated[lo:lo + k], truncated[lo:lo + k] = term, trunc
            if term or trunc:
                obs, _ = e.reset()
            self.obs[lo:lo + k] = obs if k > 1 else [obs]
        return StepResult(next_obs, reward, raw, terminated, truncated)

    def oracle_actions(self) -> np.ndarray:
        out = np.zeros(self.n_envs, dtype=np.int64)
        for e, (lo, k) in zip(self.envs, self._rows):
            act = e.oracle_action()
            out[lo:lo + k] = act if k > 1 else [act]
        return out


__all__ = ["EnvInfo", "StepResult", "EnvBatch", "MDPBatch", "GymBatch", "DiscreteAdapter",
           "remap_actions", "row_seed"]
