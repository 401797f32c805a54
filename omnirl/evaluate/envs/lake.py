"""FrozenLake 4x4 (Gymnasium ``FrozenLake-v1``), non-slippery (``lake4x4``) and slippery
(``lake4x4_slippery``).

The environment
---------------
The standard 4x4 map ``SFFF / FHFH / FFFH / HFFG``: 16 states (cell id ``4 * row + col``; start
0, holes 5, 7, 11, 12, goal 15), 4 actions (0 left, 1 down, 2 right, 3 up). Non-slippery moves
are deterministic; slippery ones go the intended way or to either perpendicular side with
probability 1/3 each. Entering a hole or the goal ends the episode (``terminated``); the raw reward
is 1 for entering the goal and 0 otherwise. Episodes are cut after ``MAX_EPISODE_STEPS = 200``
steps (``truncated``): the reference builds the environment with a 1000-step ``TimeLimit`` but its
online loop ends every episode at its ``max_steps`` of 200, which is the limit that binds.

Shaping (``shape``; reference ``OmniRLGenerator.reward_shaping``)
---------------------------------------------------------------
* an episode that ends without the goal (a hole, or the time limit) pays ``FAIL_REWARD = -1``;
* entering the goal pays its raw +1;
* every other step pays its raw 0.

With ``shaping=False`` the agent sees the raw reward.

Reference returns
-----------------
Exact, from the tabular model (``to_task``): the uniform random policy and the greedy ``Q*``
policy at discount 0.994, both over the 200-step limit (see ``_tabular``). The reference's gym
baselines normalised with fixed oracle returns instead, 1.0 (non-slippery) and 0.833 (slippery);
they are kept as ``PUBLISHED_ORACLE_RETURN`` for comparison only (paper Table 2 reports 77.80% for
its slippery oracle).
"""

from __future__ import annotations

import functools

import gymnasium
import numpy as np
from gymnasium.envs.toy_text.frozen_lake import FrozenLakeEnv
from gymnasium.wrappers import TimeLimit

from omnirl.evaluate.envs._tabular import TabularAdapter, TabularModel, solve_model, table_task
from omnirl.evaluate.envs.base import EnvInfo

MAP_NAME = "4x4"
"""Gymnasium's built-in 4x4 map."""
N_STATES = 16
"""Cells of the 4x4 map."""
N_ACTIONS = 4
"""Left, down, right, up."""
MAX_EPISODE_STEPS = 200
"""Episode limit (the reference online loop's ``max_steps``)."""
FAIL_REWARD = -1.0
"""Shaped reward of an episode end without the goal (hole or time limit)."""
PUBLISHED_ORACLE_RETURN = {False: 1.0, True: 0.833}
"""Oracle returns the reference's gym baselines used (``is_slippery`` -> return); not used here."""


def env_name(slippery: bool) -> str:
    """``lake4x4`` or ``lake4x4_slippery``."""
    return "lake4x4_slippery" if slippery else "lake4x4"


@functools.lru_cache(maxsize=None)
def lake_model(slippery: bool) -> TabularModel:
    """The tabular model of the lake read from Gymnasium's own transition table, and its exact
    reference returns."""
    env = FrozenLakeEnv(map_name=MAP_NAME, is_slippery=slippery)
    n, A = N_STATES, N_ACTIONS
    P = np.zeros((n, A, n))  # (n, A, n)
    R = np.zeros((n, A, n))
    terminal = np.zeros(n, dtype=bool)
    desc = env.desc.reshape(-1)
    for s in range(n):
        terminal[s] = desc[s] in (b"H", b"G")
        for a in range(A):
            for p, s2, r, _ in env.P[s][a]:
                P[s, a, s2] += p
                R[s, a, s2] = r  # the reward depends on the cell entered only
    goal = int(np.flatnonzero(desc == b"G")[0])
    task = table_task(family="lake", transition=P, reward=R, terminal=terminal,
                      start_probs=env.initial_state_distrib, goal=goal, max_steps=MAX_EPISODE_STEPS,
                      params={"map": MAP_NAME, "is_slippery": bool(slippery)})
    return solve_model(task)


class LakeAdapter(TabularAdapter):
    """FrozenLake 4x4 as a discrete evaluation environment (see the module docstring)."""

    def __init__(self, slippery: bool = False, *, shaping: bool = True) -> None:
        if not isinstance(slippery, bool):
            raise ValueError(f"slippery must be a bool, got {slippery!r}")
        if not isinstance(shaping, bool):
            raise ValueError(f"shaping must be a bool, got {shaping!r}")
        super().__init__(TimeLimit(FrozenLakeEnv(map_name=MAP_NAME, is_slippery=slippery),
                                   MAX_EPISODE_STEPS))
        self.slippery = slippery
        self.shaping = shaping
        self.model = lake_model(slippery)
        self.observation_space = gymnasium.spaces.Discrete(N_STATES)
        self.action_space = gymnasium.spaces.Discrete(N_ACTIONS)
        self.info = EnvInfo(name=env_name(slippery), family="lake", n_obs=N_STATES,
                            n_actions=N_ACTIONS, max_episode_steps=MAX_EPISODE_STEPS,
                            random_return=self.model.random_return,
                            oracle_return=self.model.oracle_return, exact=True)

    def current_state(self) -> int:
        return int(self.env.unwrapped.s)

    def shape(self, raw_reward: float, terminated: bool, truncated: bool, raw_info: dict) -> float:
        if (terminated or truncated) and raw_reward < 0.5:
            return FAIL_REWARD
        return float(raw_reward)


__all__ = ["FAIL_REWARD", "LakeAdapter", "MAX_EPISODE_STEPS", "PUBLISHED_ORACLE_RETURN", "env_name",
           "lake_model"]
