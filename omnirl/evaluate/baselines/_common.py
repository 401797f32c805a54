"""Pieces shared by the baselines: argument checks, row sizes and masks, per-row random streams.

Every baseline runs ``B`` independent learners, one per row of an ``EnvBatch``. Rows may differ
in ``n_obs`` and ``n_actions`` (their ``EnvInfo``): tables and networks are padded to the
largest of each, and padded actions are masked out of every choice, maximum and softmax.

Randomness never touches a global state. Per-step draws come from ``RowStreams`` (counter-based,
keyed by ``(seed, tag, row)``), so a row draws the same numbers whatever batch it runs in: a row's
run depends on its environment, the seed and the row index only.
"""

from __future__ import annotations

from typing import Any, Mapping, TypeVar

import numpy as np

from omnirl._validate import check_int
# the baselines' argmax with random tie breaks, and uniform random actions (row-wise action counts)
from omnirl.agents.bandit import pick  # noqa: F401
from omnirl.agents.bandit import uniform_arms as uniform_actions  # noqa: F401
from omnirl.agents.streams import RowStreams
from omnirl.config import config_from_dict
from omnirl.tasks.rng import seed_to_key

C = TypeVar("C")

# Tags that separate the random streams of the baselines (and of their phases) from each other and
# from the environment's own streams (which are keyed ``(seed, row)``).
TAG_TQL = 101
TAG_PPO_ACT = 201
TAG_PPO_SHUFFLE = 202
TAG_PPO_INIT = 203
TAG_CQL_BEHAVIOUR = 301
TAG_CQL_SHUFFLE = 302
TAG_CQL_INIT = 303
TAG_CQL_EVAL = 304


def check_run(batch: Any, steps: Any, seed: Any) -> tuple[int, int]:
    """Validate the common arguments of a run; returns ``(steps, seed)`` as ints."""
    for attr in ("infos", "reset", "step"):
        if not hasattr(batch, attr):
            raise ValueError(f"batch must be an EnvBatch (with infos, reset, step), got "
                             f"{type(batch).__name__}")
    return check_int("steps", steps, min_value=1), check_int("seed", seed, min_value=0)


def check_config(config: Any, cls: type[C]) -> C:
    """``config`` as a ``cls``: ``None`` gives the defaults, a mapping is read with
    ``omnirl.config.config_from_dict`` (unknown keys are errors), an instance is returned as is."""
    if config is None:
        return cls()
    if isinstance(config, cls):
        return config
    if isinstance(config, Mapping):
        return config_from_dict(cls, config)
    raise ValueError(f"config must be a {cls.__name__}, a mapping or None, got {type(config).__name__}")


def row_sizes(infos) -> tuple[np.ndarray, np.ndarray]:
    """``(n_obs (B,), n_actions (B,))`` int64 of each row."""
    return (np.array([i.n_obs for i in infos], dtype=np.int64),
            np.array([i.n_actions for i in infos], dtype=np.int64))


def action_mask(n_actions: np.ndarray) -> np.ndarray:
    """``(B, A_max)`` bool: which padded actions are valid in each row."""
    return np.arange(int(n_actions.max()))[None, :] < n_actions[:, None]


def streams(seed: int, tag: int, n_rows: int) -> RowStreams:
    """Counter-based streams of ``n_rows`` rows keyed ``(seed, tag, row)``."""
    return RowStreams([(seed, tag, r) for r in range(n_rows)])


def row_rng(seed: int, tag: int, row: int) -> np.random.Generator:
    """A PCG64 generator of one row (used once, e.g. to initialise a row's network)."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(tag, row))))


def derived_seed(seed: int, tag: int) -> int:
    """A non-negative int seed for a second phase of a run (e.g. the evaluation after a
    collection), distinct from ``seed`` itself."""
    return int(seed_to_key((seed, tag))) >> 1
