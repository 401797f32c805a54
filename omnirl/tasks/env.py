"""``AnyMDPEnv``: one ``MDPTask`` as a Gymnasium environment (registered as ``omnirl/AnyMDP-v0``).

>>> import gymnasium, omnirl.tasks
>>> task = omnirl.tasks.sample_anymdp(16, 5, seed=0)
>>> env = gymnasium.make("omnirl/AnyMDP-v0", task=task)
>>> obs, info = env.reset(seed=1)
>>> info
{'steps': 0}

The step is ``omnirl.tasks.dynamics`` with one row, so for the same task, seed and actions the
trajectory equals a row of ``BatchedSimulator`` bit for bit, provided every episode after the
first is started with ``reset()`` without a seed (the simulator's automatic reset continues the
same random stream). The task carries its own episode limit (``max_steps``), so the registration
has no ``max_episode_steps``.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from omnirl._validate import check_int, check_seed
from omnirl.tasks import dynamics
from omnirl.tasks.rng import seed_to_key
from omnirl.tasks.task import MDPTask

ENV_ID = "omnirl/AnyMDP-v0"


class AnyMDPEnv(gymnasium.Env):
    """A tabular MDP: observations are ``task.state_ids[rank]``, actions ``[0, n_actions)``.

    ``reset(seed=...)`` accepts what ``MDPTask`` seeds accept (an int or a tuple of ints). Info
    dictionaries hold ``{"steps": t}``, the step count of the current episode.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(self, task: MDPTask | None = None, render_mode: str | None = None) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, "
                             f"got {render_mode!r}")
        self.render_mode = render_mode
        self._task: MDPTask | None = None
        self._key: np.ndarray | None = None  # (1,) uint64, None until the first reset
        self._counter = np.zeros(1, dtype=np.uint64)  # (1,) position in the random stream
        self._rank = 0
        self._steps = 0
        self._ready = False  # a reset happened since the task was set and the episode is running
        self._last: tuple[int, float] | None = None  # (action, reward) of the last step
        self.observation_space = spaces.Discrete(1)
        self.action_space = spaces.Discrete(1)
        if task is not None:
            self.set_task(task)

    # ----------------------------------------------------------------- task
    @property
    def task(self) -> MDPTask | None:
        """The current task (``None`` until ``set_task``)."""
        return self._task

    def set_task(self, task: MDPTask) -> None:
        """Switch to ``task``; the spaces follow it and the next call must be ``reset``.

        The random stream (key and counter) is kept, so a ``reset()`` without a seed continues it.
        """
        if not isinstance(task, MDPTask):
            raise ValueError(f"task must be an MDPTask, got {type(task).__name__}")
        self._task = task
        n, A = task.n_states, task.n_actions
        self._cdf = dynamics.transition_cdf(task).reshape(n * A, n)  # (n*A, n) row s*A+a
        self._start_cdf = dynamics.start_cdf(task)[None, :]  # (1, n) float64
        self._max_steps = np.array([task.max_steps], dtype=np.int64)
        self.observation_space = spaces.Discrete(task.n_obs)
        self.action_space = spaces.Discrete(task.n_actions)
        self._ready = False
        self._last = None

    # ----------------------------------------------------------------- gymnasium API
    def reset(self, *, seed: int | tuple[int, ...] | None = None,
              options: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        if self._task is None:
            raise RuntimeError("AnyMDPEnv has no task: call env.unwrapped.set_task(task) "
                               "(or pass task=...) before reset")
        if seed is not None:
            parts = check_seed("seed", seed)
            key = seed_to_key(parts)
            # gymnasium seeds np_random from a single non-negative Python int
            super().reset(seed=parts[0] if len(parts) == 1 else int(key))
            self._key = np.array([key], dtype=np.uint64)
            self._counter = np.zeros(1, dtype=np.uint64)
        else:
            super().reset(seed=None)
            if self._key is None:
                self._key = np.array([self.np_random.integers(0, 2**63)], dtype=np.uint64)
                self._counter = np.zeros(1, dtype=np.uint64)
        self._rank = int(dynamics.sample_start(self._start_cdf, np.zeros(1, dtype=np.int64),
                                               self._key, self._counter)[0])
        self._counter += np.uint64(1)
        self._steps = 0
        self._ready = True
        self._last = None
        return self._obs(), {"steps": 0}

    def step(self, action: Any) -> tuple[int, float, bool, bool, dict[str, Any]]:
        if self._task is None:
            raise RuntimeError("AnyMDPEnv has no task: call env.unwrapped.set_task(task) first")
        if not self._ready:
            raise RuntimeError("AnyMDPEnv.step called before reset, or after the episode ended "
                               "(terminated or truncated) or the task changed: call reset() first")
        if isinstance(action, np.ndarray) and action.ndim == 0:
            action = action.item()
        a = check_int("action", action, min_value=0, max_value=self._task.n_actions - 1)
        s = self._rank
        row = np.array([s * self._task.n_actions + a], dtype=np.int64)  # (1,)
        nxt = dynamics.sample_next(self._cdf, row, self._key, self._counter)  # (1,)
        s2 = int(nxt[0])
        task = self._task
        reward = dynamics.sample_reward(task.reward[s, a, nxt], task.reward_noise[s, a, nxt],
                                        self._key, self._counter)
        self._counter += np.uint64(1)
        self._steps += 1
        term, trunc = dynamics.episode_end(task.terminal[nxt], np.array([self._steps]),
                                           self._max_steps)
        terminated, truncated = bool(term[0]), bool(trunc[0])
        self._rank = s2
        self._ready = not (terminated or truncated)
        self._last = (a, float(reward[0]))
        return self._obs(), float(reward[0]), terminated, truncated, {"steps": self._steps}

    def render(self) -> str | None:
        """With ``render_mode="ansi"``: one line with the step count, observation and last step."""
        if self.render_mode is None or self._task is None:
            return None
        line = f"t={self._steps} obs={self._obs()}"
        if self._last is not None:
            line += f" action={self._last[0]} reward={self._last[1]:+.4f}"
        return line

    # ----------------------------------------------------------------- helpers
    @property
    def rank(self) -> int:
        """Hidden rank of the current state (for oracle agents and tests)."""
        return self._rank

    def _obs(self) -> int:
        return int(self._task.state_ids[self._rank])


if ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point="omnirl.tasks.env:AnyMDPEnv")
