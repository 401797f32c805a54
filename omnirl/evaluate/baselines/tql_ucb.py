"""TQL-UCB: tabular Q-learning with an upper-confidence-bound exploration bonus (the paper's
Table 1 baseline "TQL-UCB", Watkins Q-learning [71] with UCB action selection [72]).

Each row of the batch is an independent learner with its own tables ``Q, N (S_max, A_max)``
(padded to the largest row; padded actions are never chosen nor maximised over). At every step a
row in observation ``s`` plays

* an untried action of ``s`` if there is one (uniformly at random among them), else
* ``argmax_a Q[s, a] + c * sqrt(ln(N_s + 1) / N[s, a])`` with ``N_s = sum_a N[s, a]`` (ties at random),

then learns from the shaped reward ``r`` of the transition ``(s, a, r, s')``:
``Q[s, a] += alpha * (r + gamma * (1 - terminated) * max_a' Q[s', a'] - Q[s, a])``.
Entering a terminal state ends the bootstrap; a truncated episode (time limit) bootstraps from
the observation it stopped in, since the task itself did not end there.

Defaults (``Q0 = 0, alpha = 0.5, c = 1, gamma = 0.99``) are the UCB-Q of the project's calibration
runs, tuned on held-out AnyMDP tasks (scores were flat over ``c in [0.1, 1]``,
``alpha in [0.5, 0.9]``). Unlike the paper's protocol (5 test episodes after every 100 training
episodes) the baseline is measured on its own training episodes, exactly like the in-context
learner: every episode counts.

Randomness (tie breaks) comes from per-row counter streams keyed ``(seed, row)``, so a row's run
is the same alone or in any batch.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from omnirl._validate import check_float, check_int
from omnirl.evaluate.baselines._common import (TAG_TQL, action_mask, check_config, check_run, pick,
                                               row_sizes, streams)
from omnirl.evaluate.records import EpisodeRecorder, Episodes


@dataclasses.dataclass(frozen=True)
class TQLUCBConfig:
    """Hyper-parameters of TQL-UCB (the same in every row)."""

    q0: float = 0.0
    """Initial value of every ``Q[s, a]``."""
    alpha: float = 0.5
    """Learning rate in (0, 1]."""
    gamma: float = 0.99
    """Discount factor in [0, 1)."""
    c: float = 1.0
    """UCB coefficient ``c >= 0`` of the bonus ``c * sqrt(ln(N_s + 1) / N_sa)`` (0: greedy after
    every action was tried once)."""
    log_every: int = 256
    """Steps between two entries of the optional learning log."""

    def __post_init__(self) -> None:
        check_float("q0", self.q0)
        check_float("alpha", self.alpha, min_value=0.0, max_value=1.0, min_inclusive=False)
        check_float("gamma", self.gamma, min_value=0.0, max_value=1.0, max_inclusive=False)
        check_float("c", self.c, min_value=0.0)
        check_int("log_every", self.log_every, min_value=1)


class TQLUCB:
    """The tables and the two per-step operations of ``B`` TQL-UCB learners."""

    def __init__(self, n_obs: np.ndarray, n_actions: np.ndarray, config: TQLUCBConfig) -> None:
        self.config = config
        B, S, A = len(n_obs), int(n_obs.max()), int(n_actions.max())
        self.valid = action_mask(n_actions)  # (B, A)
        self.Q = np.full((B, S, A), config.q0, dtype=np.float64)  # (B, S, A)
        self.N = np.zeros((B, S, A), dtype=np.float64)  # (B, S, A) visit counts
        self._rows = np.arange(B)

    def act(self, obs: np.ndarray, u: np.ndarray) -> np.ndarray:
        """``(B,)`` actions in ``obs (B,)``; ``u (B, A)`` uniforms break ties."""
        q = self.Q[self._rows, obs]  # (B, A)
        n = self.N[self._rows, obs]  # (B, A)
        untried = (n == 0) & self.valid
        any_untried = untried.any(axis=1, keepdims=True)  # (B, 1)
        log_ns = np.log(n.sum(axis=1, keepdims=True) + 1.0)  # (B, 1)
        score = q + self.config.c * np.sqrt(log_ns / np.maximum(n, 1.0))
        score = np.where(any_untried, 0.0, score)
        return pick(score, np.where(any_untried, untried, self.valid), u)

    def learn(self, obs: np.ndarray, actions: np.ndarray, reward: np.ndarray, next_obs: np.ndarray,
              terminated: np.ndarray) -> np.ndarray:
        """One Q-learning update per row; returns the TD errors ``(B,)``."""
        rows = self._rows
        self.N[rows, obs, actions] += 1.0
        boot = np.where(self.valid, self.Q[rows, next_obs], -np.inf).max(axis=1)  # (B,)
        target = reward + self.config.gamma * np.where(terminated, 0.0, boot)
        td = target - self.Q[rows, obs, actions]
        self.Q[rows, obs, actions] += self.config.alpha * td
        return td


def run_tql_ucb(batch, steps: int, seed: int, config: TQLUCBConfig | dict | None = None, *,
                log: list | None = None) -> Episodes:
    """Run ``B`` independent TQL-UCB learners for ``steps`` steps per row on ``batch`` (reset
    with ``seed``) and return their episodes.

    ``log`` (optional list) receives one dict every ``config.log_every`` steps: ``step``,
    ``td_error`` (mean absolute TD error since the last entry, over rows) and ``tried`` (fraction
    of the valid state-action pairs tried so far, mean over rows).
    """
    steps, seed = check_run(batch, steps, seed)
    cfg = check_config(config, TQLUCBConfig)
    n_obs, n_actions = row_sizes(batch.infos)
    agent = TQLUCB(n_obs, n_actions, cfg)
    rng = streams(seed, TAG_TQL, len(n_obs))
    A = agent.valid.shape[1]
    recorder = EpisodeRecorder(batch.infos)
    obs = np.array(batch.reset(seed), dtype=np.int64)  # (B,)
    td_sum = 0.0
    for t in range(1, steps + 1):
        actions = agent.act(obs, rng.uniform(0, A))  # (B,)
        res = batch.step(actions)
        recorder.record(res)
        td = agent.learn(obs, actions, res.reward, np.asarray(res.next_obs, dtype=np.int64),
                         np.asarray(res.terminated, dtype=bool))
        rng.advance()
        obs = np.array(batch.obs, dtype=np.int64)  # a copy: batch.obs may change in place
        if log is not None:
            td_sum += float(np.abs(td).mean())
            if t % cfg.log_every == 0 or t == steps:
                per = t % cfg.log_every or cfg.log_every
                valid_cells = (agent.valid[:, None, :] & (np.arange(agent.Q.shape[1])[None, :, None]
                                                          < n_obs[:, None, None]))
                tried = ((agent.N > 0) & valid_cells).sum(axis=(1, 2)) / valid_cells.sum(axis=(1, 2))
                log.append({"step": t, "td_error": td_sum / per, "tried": float(tried.mean())})
                td_sum = 0.0
    return recorder.episodes()


__all__ = ["TQLUCBConfig", "TQLUCB", "run_tql_ucb"]
