"""DarkRoom: our own Gymnasium implementation of the reference's ``DarkroomEnv`` (``darkroom6``,
``darkroom8``, ``darkroom10``).

The environment
---------------
A ``d x d`` room, ``d`` in ``SIZES = (6, 8, 10)``: ``d * d`` states (cell id ``x * d + y``), the goal
fixed in the far corner ``(d - 1, d - 1)`` (id ``d * d - 1``), every episode starting in a
uniformly random non-goal cell. 4 actions (0: x + 1, 1: x - 1, 2: y + 1, 3: y - 1; the walls stop
a move). Entering the goal pays ``GOAL_REWARD = +1`` and ends the episode (``terminated``); every
other step pays ``STEP_REWARD = -0.1``. Episodes are cut after ``MAX_EPISODE_STEPS = 200`` steps
(the reference's horizon is its online loop's ``max_steps``, 200).

The step penalty follows the reference's source (``gym_env_wapper.py::DarkroomEnv.transit``: -0.1)
and the paper's Table 2, whose 10x10 oracle (0.22) and random (-15.07) returns match it (exact
values here: 0.19 and -15.93); with -0.01 they would be 0.92 and -1.29. ``DarkRoomEnv`` takes
another ``step_reward`` if wanted. Unlike the reference (which reseeds numpy's global generator),
start cells come from the environment's own seeded generator.

Shaping: none (the reference feeds DarkRoom's raw rewards); ``shaping`` is accepted for the common
signature and changes nothing.

Reference returns
-----------------
Exact, from the tabular model (``to_task``): uniform random and greedy ``Q*`` at discount 0.994
over the 200-step limit, from the uniform non-goal start.
"""

from __future__ import annotations

import functools
import numbers

import gymnasium
import numpy as np

from omnirl._validate import check_choice, check_float, check_int
from omnirl.evaluate.envs._tabular import TabularAdapter, TabularModel, solve_model, table_task
from omnirl.evaluate.envs.base import EnvInfo

SIZES = (6, 8, 10)
"""Room sizes of the evaluation suite."""
N_ACTIONS = 4
"""x + 1, x - 1, y + 1, y - 1."""
MOVES = ((1, 0), (-1, 0), (0, 1), (0, -1))
"""``(dx, dy)`` of each action."""
MAX_EPISODE_STEPS = 200
"""Episode limit (the reference's ``max_steps``)."""
GOAL_REWARD = 1.0
"""Raw reward of entering the goal."""
STEP_REWARD = -0.1
"""Raw reward of every other step (the reference's value; see the module docstring)."""


class DarkRoomEnv(gymnasium.Env):
    """A ``size x size`` dark room with the goal in the far corner (see the module docstring)."""

    metadata = {"render_modes": []}

    def __init__(self, size: int, *, max_episode_steps: int = MAX_EPISODE_STEPS,
                 step_reward: float = STEP_REWARD, goal_reward: float = GOAL_REWARD) -> None:
        self.size = check_int("size", size, min_value=2)
        self.max_episode_steps = check_int("max_episode_steps", max_episode_steps, min_value=1)
        self.step_reward = check_float("step_reward", step_reward)
        self.goal_reward = check_float("goal_reward", goal_reward)
        self.goal = self.size * self.size - 1
        self.observation_space = gymnasium.spaces.Discrete(self.size * self.size)
        self.action_space = gymnasium.spaces.Discrete(N_ACTIONS)
        self.state: int | None = None
        self._steps = 0
        self._over = True

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.state = int(self.np_random.integers(0, self.goal))  # the goal is the last id
        self._steps = 0
        self._over = False
        return self.state, {}

    def step(self, action):
        if self._over:
            raise RuntimeError("the episode is over (or never started): call reset() before step()")
        if isinstance(action, bool) or not isinstance(action, numbers.Integral) or not 0 <= action < N_ACTIONS:
            raise ValueError(f"action must be an integer in [0, {N_ACTIONS}), got {action!r}")
        self.state = self.next_state(self.state, int(action))
        self._steps += 1
        terminated = self.state == self.goal
        truncated = self._steps >= self.max_episode_steps
        self._over = terminated or truncated
        return self.state, self.goal_reward if terminated else self.step_reward, terminated, truncated, {}

    def next_state(self, state: int, action: int) -> int:
        """The cell a move from ``state`` enters (walls stop it)."""
        x, y = divmod(state, self.size)
        dx, dy = MOVES[action]
        x = min(max(x + dx, 0), self.size - 1)
        y = min(max(y + dy, 0), self.size - 1)
        return x * self.size + y


def env_name(size: int) -> str:
    """``darkroom{size}``."""
    return f"darkroom{size}"


@functools.lru_cache(maxsize=None)
def darkroom_model(size: int, step_reward: float = STEP_REWARD) -> TabularModel:
    """The tabular model of a ``size x size`` room and its exact reference returns."""
    env = DarkRoomEnv(size, step_reward=step_reward)
    n, A = size * size, N_ACTIONS
    P = np.zeros((n, A, n))  # (n, A, n)
    R = np.zeros((n, A, n))
    for s in range(n):
        for a in range(A):
            s2 = env.next_state(s, a)
            P[s, a, s2] = 1.0
            R[s, a, s2] = env.goal_reward if s2 == env.goal else env.step_reward
    terminal = np.zeros(n, dtype=bool)
    terminal[env.goal] = True
    start = np.where(terminal, 0.0, 1.0)
    task = table_task(family="darkroom", transition=P, reward=R, terminal=terminal,
                      start_probs=start, goal=env.goal, max_steps=MAX_EPISODE_STEPS,
                      params={"size": size, "step_reward": step_reward, "goal_reward": env.goal_reward})
    return solve_model(task)


class DarkRoomAdapter(TabularAdapter):
    """DarkRoom as a discrete evaluation environment (see the module docstring)."""

    def __init__(self, size: int, *, shaping: bool = True) -> None:
        check_choice("size", size, SIZES)
        if not isinstance(shaping, bool):
            raise ValueError(f"shaping must be a bool, got {shaping!r}")
        super().__init__(DarkRoomEnv(size))
        self.size = size
        self.shaping = shaping
        self.model = darkroom_model(size)
        self.observation_space = gymnasium.spaces.Discrete(size * size)
        self.action_space = gymnasium.spaces.Discrete(N_ACTIONS)
        self.info = EnvInfo(name=env_name(size), family="darkroom", n_obs=size * size,
                            n_actions=N_ACTIONS, max_episode_steps=MAX_EPISODE_STEPS,
                            random_return=self.model.random_return,
                            oracle_return=self.model.oracle_return, exact=True)

    def current_state(self) -> int:
        return int(self.env.unwrapped.state)

    def shape(self, raw_reward: float, terminated: bool, truncated: bool, raw_info: dict) -> float:
        return float(raw_reward)  # DarkRoom is not shaped


__all__ = ["DarkRoomAdapter", "DarkRoomEnv", "GOAL_REWARD", "MAX_EPISODE_STEPS", "MOVES", "SIZES",
           "STEP_REWARD", "darkroom_model", "env_name"]
