"""The batched agent contract.

An agent acts for ``B`` environments (rows) at once with numpy arrays, never looping over rows on
the hot path:

* ``act(obs (B,)) -> actions (B,)`` chooses actions; ``last_tags (B,)`` then holds the
  prior-information id (``PriorInfo``) of whoever chose each action (a mixture may let an oracle,
  a learner or noise act in different rows);
* ``observe(obs, action, reward, next_obs, done)`` (all ``(B,)``) shows every transition of the
  stream to the agent, whoever acted, so learners learn off-policy from the whole stream;
* ``reset(rows, tasks, seeds)`` starts new sequences in ``rows`` (fresh learner state, new task
  and random stream).

Observations are observed state ids in ``[0, S)``; ``S`` is the observation space shared by the
batch (tasks' ``n_obs``).
"""

from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np

from omnirl.tasks import MDPTask


class BatchedAgent(Protocol):
    """What every behaviour policy implements (see the module docstring)."""

    n_envs: int

    def act(self, obs: np.ndarray) -> np.ndarray: ...

    @property
    def last_tags(self) -> np.ndarray: ...

    def observe(self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray,
                next_obs: np.ndarray, done: np.ndarray) -> None: ...

    def reset(self, rows: np.ndarray, tasks: Sequence[MDPTask], seeds: Sequence) -> None: ...
