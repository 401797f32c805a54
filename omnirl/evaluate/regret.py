"""Cumulative regret on bandits: what every pull cost against always pulling the best arm.

``RegretBatch(batch)`` wraps an ``MDPBatch`` of bandits (the ``bandit*`` environments) and is itself
an ``EnvBatch``: every method runs the wrapped batch unchanged, and ``step`` also records each row's
*expected* regret of the pull, ``mu* - mu_a`` (the best arm's mean reward minus the pulled arm's,
from the task's true arm means, so the reward noise does not enter). Any runner (the model's
protocols, every baseline) measured through it yields ``regret() (B, steps)``.

``regret_numbers(regret, gap)`` summarises it: the cumulative regret after ``t`` pulls (mean over
rows, and its standard error) at ``REGRET_AT`` and at the end, and the normalised regret score
``1 - R_T / (T * gap)`` per row, averaged over rows, where ``gap = mu* - mean_a mu_a`` is the
expected regret per pull of the uniform random policy (score 0: uniform random, 1: the best arm
from the first pull). It is the expected normalised score of the pulls, without the reward noise.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from omnirl.evaluate.envs.base import EnvInfo, StepResult
from omnirl.tasks.solver import expected_reward

REGRET_AT = (100, 500)
"""Pulls after which the cumulative regret is reported (those within the run)."""


def is_bandit_batch(batch: Any) -> bool:
    """Whether ``batch`` holds tabular bandits (one state per row, the task models known)."""
    return hasattr(batch, "tasks") and all(i.family == "bandit" and i.n_obs == 1 for i in batch.infos)


def arm_means(tasks: Sequence) -> np.ndarray:
    """``(B, A)`` the mean reward of every arm of every bandit."""
    return np.stack([expected_reward(t.transition, t.reward)[0] for t in tasks]).astype(np.float64)


class RegretBatch:
    """An ``EnvBatch`` of bandits that records every pull's expected regret (module docstring)."""

    def __init__(self, batch: Any) -> None:
        if not is_bandit_batch(batch):
            raise ValueError("batch must be an MDPBatch of bandits (family 'bandit', n_obs = 1), got "
                             f"{sorted({i.name for i in getattr(batch, 'infos', ())})}")
        self.batch = batch
        self.means = arm_means(batch.tasks)  # (B, A)
        self.gap = self.means.max(axis=1) - self.means.mean(axis=1)  # (B,) uniform random's regret per pull
        self._rows = np.arange(len(self.means))
        self._regret: list[np.ndarray] = []

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
        """Reset the bandits and forget the recorded pulls."""
        self._regret = []
        return self.batch.reset(seed)

    def step(self, actions: Any) -> StepResult:
        result = self.batch.step(actions)
        a = np.asarray(actions, dtype=np.int64)
        self._regret.append(self.means.max(axis=1) - self.means[self._rows, a])
        return result

    def oracle_actions(self) -> np.ndarray:
        return self.batch.oracle_actions()

    def regret(self) -> np.ndarray:
        """``(B, steps)`` expected regret of every pull since the last ``reset``."""
        if not self._regret:
            return np.zeros((self.n_envs, 0))
        return np.stack(self._regret, axis=1)


def regret_numbers(regret: np.ndarray, gap: np.ndarray, at: Sequence[int] = REGRET_AT) -> dict[str, float]:
    """Summary of ``regret (B, T)`` (per pull) with ``gap (B,)`` (uniform random's regret per pull):
    ``regret@t`` and ``regret@t_se`` for each ``t`` of ``at`` within ``T`` and for ``T`` itself,
    ``regret`` and ``regret_se`` (at ``T``), ``regret_score`` (mean over rows of ``1 - R_T / (T gap)``; rows with
    ``gap = 0`` left out) and ``pulls`` (``T``)."""
    regret = np.asarray(regret, dtype=np.float64)
    B, T = regret.shape
    cum = np.cumsum(regret, axis=1)  # (B, T)
    out: dict[str, float] = {"pulls": T}
    for t in sorted({*(t for t in at if 1 <= t <= T), T}) if T else ():
        out[f"regret@{t}"] = float(cum[:, t - 1].mean())
        out[f"regret@{t}_se"] = float(cum[:, t - 1].std(ddof=1) / np.sqrt(B)) if B > 1 else float("nan")
    out["regret"] = out.get(f"regret@{T}", float("nan"))
    out["regret_se"] = out.get(f"regret@{T}_se", float("nan"))
    ok = np.asarray(gap) > 0
    out["regret_score"] = float(np.mean(1.0 - cum[ok, -1] / (T * np.asarray(gap)[ok]))) if T and ok.any() \
        else float("nan")
    return out


__all__ = ["REGRET_AT", "RegretBatch", "arm_means", "is_bandit_batch", "regret_numbers"]
