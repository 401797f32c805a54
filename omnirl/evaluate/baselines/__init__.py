"""Baselines of the paper's Tables 1 and 2, batched over the rows of an ``EnvBatch``.

Every row is an independent learner on its own environment (the paper ran one per task), and
every baseline returns ``Episodes`` recorded by ``EpisodeRecorder`` from raw rewards, exactly as
the in-context learner is measured. Agents learn from the shaped rewards.

* ``tql_ucb``: tabular Q-learning with a UCB bonus (``omnirl.evaluate.baselines.tql_ucb``);
* ``ppo``: PPO with per-row actor-critic MLPs (``omnirl.evaluate.baselines.ppo``);
* ``cql``: discrete CQL trained offline on a behaviour's dataset, then evaluated greedily online
  (``omnirl.evaluate.baselines.cql``); ``steps`` are its evaluation steps, and the dataset's
  length is ``dataset_steps=`` (default ``CQLConfig.dataset_steps``);
* ``ucb1``, ``thompson``, ``uniform``: bandit baselines (rows with one state; UCB1, Gaussian
  Thompson sampling, uniform random arms), the learners of ``omnirl.agents.bandit``
  (``omnirl.evaluate.baselines.bandits``). ``BANDIT_BASELINES`` names them.

>>> from omnirl.evaluate.baselines import run_baseline
>>> episodes = run_baseline("tql_ucb", batch, steps=2048, seed=0, config={"c": 0.5})  # doctest: +SKIP

Configs are frozen dataclasses; ``make_config(name, data)`` builds one from a mapping (e.g. a YAML
section), and an unknown key or a bad value is a ``ValueError`` naming it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from omnirl._validate import check_choice
from omnirl.evaluate.baselines._common import check_config
from omnirl.evaluate.baselines.bandits import (ThompsonConfig, UCB1Config, UniformConfig, run_thompson, run_ucb1,
                                               run_uniform)
from omnirl.evaluate.baselines.cql import (CQLConfig, CQLResult, Dataset, collect_dataset, evaluate_policy,
                                           run_cql, train_cql)
from omnirl.evaluate.baselines.ppo import PPOConfig, run_ppo
from omnirl.evaluate.baselines.tql_ucb import TQLUCBConfig, run_tql_ucb
from omnirl.evaluate.records import Episodes


def _cql(batch, steps: int, seed: int, config: CQLConfig, **kw) -> Episodes:
    dataset_steps = kw.pop("dataset_steps", config.dataset_steps)
    return run_cql(batch, dataset_steps, steps, seed, config, **kw)


@dataclasses.dataclass(frozen=True)
class Baseline:
    """A registered baseline: its config class and its runner ``run(batch, steps, seed, config,
    **kw) -> Episodes``."""

    name: str
    config_cls: type
    run: Callable[..., Episodes]


BASELINES: dict[str, Baseline] = {
    "tql_ucb": Baseline("tql_ucb", TQLUCBConfig, run_tql_ucb),
    "ppo": Baseline("ppo", PPOConfig, run_ppo),
    "cql": Baseline("cql", CQLConfig, _cql),
    "ucb1": Baseline("ucb1", UCB1Config, run_ucb1),
    "thompson": Baseline("thompson", ThompsonConfig, run_thompson),
    "uniform": Baseline("uniform", UniformConfig, run_uniform),
}
"""The baselines by name."""
BANDIT_BASELINES = ("ucb1", "thompson", "uniform")
"""The baselines that run on bandits only (rows with one state)."""


def make_config(name: str, config: Any = None) -> Any:
    """The config of baseline ``name`` from ``None`` (defaults), a mapping, or a config instance."""
    check_choice("name", name, BASELINES)
    return check_config(config, BASELINES[name].config_cls)


def run_baseline(name: str, batch, steps: int, seed: int, config: Any = None, **kw) -> Episodes:
    """Run baseline ``name`` on ``batch`` for ``steps`` steps per row with ``seed``; ``config`` as in
    ``make_config``; ``kw`` go to the runner (``log=`` a list for every baseline; ``dataset_steps=``
    for ``cql``)."""
    cfg = make_config(name, config)
    return BASELINES[name].run(batch, steps, seed, cfg, **kw)


__all__ = ["BANDIT_BASELINES", "BASELINES", "Baseline", "UCB1Config", "ThompsonConfig", "UniformConfig",
           "run_ucb1", "run_thompson", "run_uniform", "make_config", "run_baseline", "TQLUCBConfig", "PPOConfig", "CQLConfig",
           "Dataset", "CQLResult", "run_tql_ucb", "run_ppo", "run_cql", "collect_dataset", "train_cql",
           "evaluate_policy"]
