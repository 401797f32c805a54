"""CliffWalking (Gymnasium ``CliffWalking-v1``, deterministic) with the reference's change: stepping
into the cliff ends the episode (``cliff``).

The environment
---------------
A 4x12 grid: 48 states (cell id ``12 * row + col``), start 36 (bottom left), goal 47 (bottom
right), the cliff the ten cells 37..46 between them; 4 actions (0 up, 1 right, 2 down, 3 left),
moves into the border leave the agent in place. Raw rewards are Gymnasium's: -1 per step (the step
into the goal included) and ``CLIFF_REWARD = -100`` for stepping into the cliff.

Gymnasium sends an agent that falls back to the start and lets the episode go on; the reference
wrapper ends the episode instead, and so do we. Unlike the reference (which flags the fall as
``truncated`` and shows the start cell), the fall is ``terminated`` (the cliff is a terminal state,
not a time limit) and the observation it leads to is the cliff cell entered (37..46), so the agent
sees where it fell. Episodes are cut after ``MAX_EPISODE_STEPS = 200`` steps (the reference online
loop's limit).

Shaping (``shape``; reference ``OmniRLGenerator.reward_shaping``)
---------------------------------------------------------------
* ``STEP_REWARD = -0.03`` for every step that does not end the episode;
* ``GOAL_REWARD = +1`` for entering the goal;
* ``FAIL_REWARD = -1`` for an episode end without the goal: the cliff, or the time limit (the
  reference pays -1 whenever an episode ends other than at the goal).

With ``shaping=False`` the agent sees the raw reward.

Reference returns
-----------------
Exact, from the tabular model (``to_task``; the cliff cells are terminal states entered with
reward -100): uniform random and greedy ``Q*`` at discount 0.994 over the 200-step limit. The
oracle walks the 13-step path along the cliff edge (return -13, as the paper's Table 2).
"""

from __future__ import annotations

import functools

import gymnasium
import numpy as np
from gymnasium.envs.toy_text.cliffwalking import CliffWalkingEnv
from gymnasium.wrappers import TimeLimit

from omnirl.evaluate.envs._tabular import TabularAdapter, TabularModel, solve_model, table_task
from omnirl.evaluate.envs.base import EnvInfo

SHAPE = (4, 12)
"""Rows and columns of the grid."""
N_STATES = 48
"""Cells of the grid."""
N_ACTIONS = 4
"""Up, right, down, left."""
START = 36
"""Start cell (row 3, column 0)."""
GOAL = 47
"""Goal cell (row 3, column 11)."""
CLIFF = tuple(range(37, 47))
"""The cliff cells (row 3, columns 1..10)."""
MOVES = ((-1, 0), (0, 1), (1, 0), (0, -1))
"""``(d_row, d_col)`` of each action."""
CLIFF_REWARD = -100
"""Raw reward of stepping into the cliff."""
MAX_EPISODE_STEPS = 200
"""Episode limit (the reference online loop's ``max_steps``)."""
STEP_REWARD = -0.03
"""Shaped reward of a step that does not end the episode."""
GOAL_REWARD = 1.0
"""Shaped reward of entering the goal."""
FAIL_REWARD = -1.0
"""Shaped reward of an episode end without the goal (cliff or time limit)."""


def move(cell: int, action: int) -> int:
    """The cell a move from ``cell`` enters (the border stops it)."""
    row, col = divmod(cell, SHAPE[1])
    dr, dc = MOVES[action]
    row = min(max(row + dr, 0), SHAPE[0] - 1)
    col = min(max(col + dc, 0), SHAPE[1] - 1)
    return row * SHAPE[1] + col


class CliffEndsEpisode(gymnasium.Wrapper):
    """Gymnasium's deterministic CliffWalking with the fall into the cliff ending the episode
    (``terminated``) at the cliff cell entered."""

    def step(self, action):
        cell = int(self.env.unwrapped.s)
        obs, reward, terminated, truncated, info = self.env.step(action)
        if reward == CLIFF_REWARD:
            obs, terminated = move(cell, int(action)), True
            self.env.unwrapped.s = obs  # the agent lies in the cliff until the next reset
        return obs, reward, terminated, truncated, info


@functools.lru_cache(maxsize=None)
def cliff_model() -> TabularModel:
    """The tabular model of the cliff walk and its exact reference returns."""
    n, A = N_STATES, N_ACTIONS
    P = np.zeros((n, A, n))  # (n, A, n)
    R = np.zeros((n, A, n))
    terminal = np.zeros(n, dtype=bool)
    terminal[list(CLIFF) + [GOAL]] = True
    for s in range(n):
        for a in range(A):
            s2 = move(s, a)
            P[s, a, s2] = 1.0
            R[s, a, s2] = CLIFF_REWARD if s2 in CLIFF else -1.0
    start = np.zeros(n)
    start[START] = 1.0
    task = table_task(family="cliff", transition=P, reward=R, terminal=terminal, start_probs=start,
                      goal=GOAL, max_steps=MAX_EPISODE_STEPS, params={"cliff_ends_episode": True})
    return solve_model(task)


class CliffAdapter(TabularAdapter):
    """CliffWalking as a discrete evaluation environment (see the module docstring)."""

    def __init__(self, *, shaping: bool = True) -> None:
        if not isinstance(shaping, bool):
            raise ValueError(f"shaping must be a bool, got {shaping!r}")
        super().__init__(TimeLimit(CliffEndsEpisode(CliffWalkingEnv(is_slippery=False)), MAX_EPISODE_STEPS))
        self.shaping = shaping
        self.model = cliff_model()
        self.observation_space = gymnasium.spaces.Discrete(N_STATES)
        self.action_space = gymnasium.spaces.Discrete(N_ACTIONS)
        self.info = EnvInfo(name="cliff", family="cliff", n_obs=N_STATES, n_actions=N_ACTIONS,
                            max_episode_steps=MAX_EPISODE_STEPS,
                            random_return=self.model.random_return,
                            oracle_return=self.model.oracle_return, exact=True)

    def current_state(self) -> int:
        return int(self.env.unwrapped.s)

    def shape(self, raw_reward: float, terminated: bool, truncated: bool, raw_info: dict) -> float:
        if terminated:
            return FAIL_REWARD if raw_reward == CLIFF_REWARD else GOAL_REWARD
        if truncated:
            return FAIL_REWARD
        return STEP_REWARD


__all__ = ["CLIFF", "CLIFF_REWARD", "CliffAdapter", "CliffEndsEpisode", "FAIL_REWARD", "GOAL",
           "GOAL_REWARD", "MAX_EPISODE_STEPS", "START", "STEP_REWARD", "cliff_model", "move"]
