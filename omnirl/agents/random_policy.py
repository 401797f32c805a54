"""Random behaviour: a slowly drifting random stochastic policy per row.

Each row holds per-state logits ``(S, A) ~ N(0, scale)`` with ``scale ~ Exp(scale_mean)`` drawn per
sequence (a small scale gives a near-uniform policy, a large one a near-deterministic one). Every
time the policy acts in a state, that state's logits drift by ``N(0, drift)`` per action, with
``drift ~ Exp(drift_mean)`` per sequence. Actions are drawn by Gumbel-max from the row's stream.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from omnirl._validate import check_float
from omnirl.agents.oracle import batch_sizes, check_rows_tasks_seeds
from omnirl.agents.prior import PriorInfo
from omnirl.agents.streams import LANES, RowStreams
from omnirl.tasks import MDPTask


@dataclasses.dataclass(frozen=True)
class RandomConfig:
    """Parameters of the random policy."""

    scale_mean: float = 2.0
    """Mean of the per-sequence logit scale ``scale ~ Exp(scale_mean)`` (logits ``~ N(0, scale)``)."""
    drift_mean: float = 1e-3
    """Mean of the per-sequence drift ``drift ~ Exp(drift_mean)``: std of the per-step logit change."""

    def __post_init__(self) -> None:
        check_float("scale_mean", self.scale_mean, min_value=0.0)
        check_float("drift_mean", self.drift_mean, min_value=0.0)


class RandomPolicy:
    """The random policies of ``B`` rows (array state only; draws come from a ``RowStreams``)."""

    def __init__(self, B: int, S: int, A: int, config: RandomConfig) -> None:
        self.S, self.A, self.config = S, A, config
        self.logits = np.zeros((B, S, A), dtype=np.float64)
        self.scale = np.zeros(B)  # (B,)
        self.drift = np.zeros(B)  # (B,)
        self._flat = self.logits.reshape(-1, A)  # (B*S, A)

    def redraw(self, rows: np.ndarray, streams: RowStreams) -> None:
        """Draw new policies for ``rows`` (at the rows' current counters)."""
        p = LANES["random_params"]
        self.scale[rows] = streams.exponential(p, self.config.scale_mean, rows=rows)
        self.drift[rows] = streams.exponential(p + 1, self.config.drift_mean, rows=rows)
        z = streams.normal(LANES["random_logits"], self.S * self.A, rows=rows)  # (k, S*A)
        self.logits[rows] = (z * self.scale[rows, None]).reshape(len(rows), self.S, self.A)

    def act_rows(self, rows: np.ndarray, obs: np.ndarray, streams: RowStreams) -> np.ndarray:
        """Actions ``(k,)`` of ``rows (k,)`` in states ``obs (k,)``; the visited logits then drift."""
        idx = rows * self.S + obs
        logits = np.take(self._flat, idx, axis=0)  # (k, A)
        u = streams.uniform(LANES["random_action"], self.A, rows=rows)  # (k, A)
        act = np.argmax(logits - np.log(-np.log(u)), axis=1)  # Gumbel-max
        step = streams.normal(LANES["random_drift"], self.A, rows=rows)  # (k, A)
        self._flat[idx] = logits + step * self.drift[rows, None]
        return act

    def probs(self, rows: np.ndarray, obs: np.ndarray) -> np.ndarray:
        """``(k, A)`` current action probabilities of ``rows`` in ``obs``."""
        logits = self._flat[rows * self.S + obs]
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


class RandomAgent:
    """Random behaviour in every row (tag ``RANDOM``); see the module docstring."""

    def __init__(self, tasks: Sequence[MDPTask], seeds: Sequence, config: RandomConfig | None = None,
                 *, n_obs: int | None = None) -> None:
        config = RandomConfig() if config is None else config
        if not isinstance(config, RandomConfig):
            raise ValueError(f"config must be a RandomConfig, got {type(config).__name__}")
        self.n_envs, self.n_obs, self.n_actions = batch_sizes(tasks, seeds, n_obs, None)
        self.streams = RowStreams(list(seeds))
        self.policy = RandomPolicy(self.n_envs, self.n_obs, self.n_actions, config)
        self._rows = np.arange(self.n_envs)
        self.policy.redraw(self._rows, self.streams)
        self._tags = np.full(self.n_envs, int(PriorInfo.RANDOM), dtype=np.int64)

    @property
    def last_tags(self) -> np.ndarray:
        """``(B,)`` always ``RANDOM``."""
        return self._tags

    def act(self, obs: np.ndarray) -> np.ndarray:
        """``(B,)`` sampled actions of ``obs (B,)``."""
        return self.policy.act_rows(self._rows, np.asarray(obs, dtype=np.int64), self.streams)

    def observe(self, obs, action, reward, next_obs, done) -> None:
        """Nothing is learned; moves every row's stream to its next step."""
        self.streams.advance()

    def reset(self, rows, tasks: Sequence[MDPTask], seeds: Sequence) -> None:
        """New sequences in ``rows``: re-seed and draw new policies."""
        r = check_rows_tasks_seeds(rows, list(tasks), list(seeds), self.n_envs, self.n_obs, self.n_actions)
        self.streams.reset(r, list(seeds))
        self.policy.redraw(r, self.streams)
