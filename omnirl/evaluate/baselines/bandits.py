"""Bandit baselines: UCB1, Gaussian Thompson sampling and the uniform random policy.

Each row of the batch is an independent learner on its own bandit (rows must all have the same
number of arms), using the learners of ``omnirl.agents.bandit`` (the same code the bandit
pipeline's behaviours run): per-row pulls and reward sums, and

* ``ucb1``: an untried arm first, then ``argmax_a mean_a + c * sqrt(2 ln t / N_a)``
  (``UCB1Config``; default ``c = omnirl.agents.bandit.UCB_C``, measured best on generator bandits);
* ``thompson``: one draw per arm from the Gaussian posterior of its mean reward (prior
  ``N(prior_mean, prior_std^2)``, noise std ``noise_std``; ``ThompsonConfig``, defaults
  ``omnirl.agents.bandit.THOMPSON_PRIOR``);
* ``uniform``: a uniformly random arm at every pull (the reference of the regret score).

On a task with several states (``n_obs > 1``: AnyMDP measured as a contextual bandit, see
``omnirl.evaluate.regret``) each observation of a row is its own bandit, with its own pulls and
reward sums: the learners are contextual bandits, blind to where an action leads. They learn from
the shaped reward (the raw one on the bandit and AnyMDP environments). Ties and draws come from
per-row counter streams keyed ``(seed, tag, row)``, so a row's run is the same in any batch.
``log`` (optional list) receives ``{"step", "tried"}`` every ``log_every`` steps: the fraction of
(observation, arm) pairs pulled at least once, mean over rows.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from omnirl._validate import check_float, check_int
from omnirl.agents.bandit import THOMPSON_PRIOR, UCB_C, ArmStats, thompson_actions, ucb1_actions, uniform_arms
from omnirl.agents.streams import RowStreams
from omnirl.evaluate.baselines._common import check_config, check_run, row_sizes, streams
from omnirl.evaluate.records import EpisodeRecorder, Episodes

TAG_BANDIT = 401
"""Stream tag of the bandit baselines (distinct from the other baselines')."""


@dataclasses.dataclass(frozen=True)
class UCB1Config:
    """Hyper-parameters of UCB1 (the same in every row)."""

    c: float = UCB_C
    """Coefficient ``c >= 0`` of the bonus ``c * sqrt(2 ln t / N_a)`` (reward units)."""
    log_every: int = 256
    """Steps between two entries of the optional log."""

    def __post_init__(self) -> None:
        check_float("c", self.c, min_value=0.0)
        check_int("log_every", self.log_every, min_value=1)


@dataclasses.dataclass(frozen=True)
class ThompsonConfig:
    """Prior and likelihood of Gaussian Thompson sampling (the same in every row)."""

    prior_mean: float = THOMPSON_PRIOR["prior_mean"]
    """Prior mean of every arm's mean reward."""
    prior_std: float = THOMPSON_PRIOR["prior_std"]
    """Prior standard deviation of every arm's mean reward (> 0)."""
    noise_std: float = THOMPSON_PRIOR["noise_std"]
    """Standard deviation of a pull's reward around its arm's mean, as the likelihood assumes (> 0)."""
    log_every: int = 256
    """Steps between two entries of the optional log."""

    def __post_init__(self) -> None:
        check_float("prior_mean", self.prior_mean)
        check_float("prior_std", self.prior_std, min_value=0.0, min_inclusive=False)
        check_float("noise_std", self.noise_std, min_value=0.0, min_inclusive=False)
        check_int("log_every", self.log_every, min_value=1)


@dataclasses.dataclass(frozen=True)
class UniformConfig:
    """The uniform random policy (nothing to set but the log)."""

    log_every: int = 256
    """Steps between two entries of the optional log."""

    def __post_init__(self) -> None:
        check_int("log_every", self.log_every, min_value=1)


Chooser = Callable[[ArmStats, RowStreams, int], np.ndarray]


def _run(batch, steps: int, seed: int, choose: Chooser, log_every: int, log: list | None) -> Episodes:
    """``B`` learners pulling ``choose(stats, streams, A) -> arms (B,)`` for ``steps`` pulls each
    (``stats`` those of each row's current observation)."""
    steps, seed = check_run(batch, steps, seed)
    n_obs, n_actions = row_sizes(batch.infos)
    if (n_actions != n_actions[0]).any():
        raise ValueError(f"the bandit baselines need one number of arms in every row, got {sorted(set(n_actions))}")
    A, B, S = int(n_actions[0]), len(n_actions), int(n_obs.max())
    table = ArmStats(B * S, A)  # (B * S, A): a bandit per (row, observation)
    rng = streams(seed, TAG_BANDIT, B)
    recorder = EpisodeRecorder(batch.infos)
    obs = batch.reset(seed)
    for t in range(1, steps + 1):
        keys = np.arange(B) * S + np.asarray(obs, dtype=np.int64)  # (B,) each row's current bandit
        arms = choose(table.select(keys), rng, A)  # (B,)
        res = batch.step(arms)
        obs = batch.obs
        recorder.record(res)
        table.update(arms, np.asarray(res.reward, dtype=np.float64), keys)
        rng.advance()
        if log is not None and (t % log_every == 0 or t == steps):
            tried = (table.N > 0).reshape(B, S, A).sum(axis=(1, 2)) / (n_obs * A)  # (B,)
            log.append({"step": t, "tried": float(tried.mean())})
    return recorder.episodes()


_TIES, _NORMAL, _ARM = 1, 1024, 2048  # stream lanes of the tie breaks, posterior draws and uniform arms


def run_ucb1(batch, steps: int, seed: int, config: UCB1Config | dict | None = None, *,
             log: list | None = None) -> Episodes:
    """UCB1 in every row of ``batch`` (reset with ``seed``) for ``steps`` pulls; its episodes."""
    cfg = check_config(config, UCB1Config)
    return _run(batch, steps, seed, lambda st, rng, A: ucb1_actions(st, cfg.c, rng.uniform(_TIES, A)),
                cfg.log_every, log)


def run_thompson(batch, steps: int, seed: int, config: ThompsonConfig | dict | None = None, *,
                 log: list | None = None) -> Episodes:
    """Gaussian Thompson sampling in every row of ``batch`` for ``steps`` pulls; its episodes."""
    cfg = check_config(config, ThompsonConfig)

    def choose(st: ArmStats, rng: RowStreams, A: int) -> np.ndarray:
        return thompson_actions(st, rng.normal(_NORMAL, A), cfg.prior_mean, cfg.prior_std, cfg.noise_std)

    return _run(batch, steps, seed, choose, cfg.log_every, log)


def run_uniform(batch, steps: int, seed: int, config: UniformConfig | dict | None = None, *,
                log: list | None = None) -> Episodes:
    """A uniformly random arm in every row of ``batch`` at each of ``steps`` pulls; its episodes."""
    cfg = check_config(config, UniformConfig)
    return _run(batch, steps, seed, lambda st, rng, A: uniform_arms(rng.uniform(_ARM), A), cfg.log_every, log)


__all__ = ["TAG_BANDIT", "ThompsonConfig", "UCB1Config", "UniformConfig", "run_thompson", "run_ucb1",
           "run_uniform"]
