"""Switch2: the two-agent cooperative switch task, our own Gymnasium implementation of ma-gym's
``Switch`` with two agents (``switch2``); each agent is one row of a batch, driven by its own
context of the same model.

The environment (ma-gym's layout and rules)
-------------------------------------------
A 3x7 grid whose free cells are the two 2-column rooms (columns 0-1 and 5-6, all three rows)
joined by a one-cell-wide bridge (row 1, columns 2-4): 15 free cells, numbered row-major
(``CELLS``)::

    A a . . . b B        a, b: starts of agents 0 and 1 (cells (0,1) and (0,5))
    . . = = = . .        A, B: their goals (cells (0,6) and (0,0)): each must cross to the
    . .       . .              other room over the bridge (=), where they cannot pass each other

Actions (each agent): 0 down, 1 left, 2 up, 3 right, 4 no-op. Agents move in index order (agent 0
first); a move into a wall, off the grid, or into the cell the other agent occupies at that moment
leaves the agent in place. An agent that reaches its goal is done: it stays there (still occupying
the cell) and its actions are ignored. The raw reward of an agent is ``ARRIVAL = 5`` on the step
it reaches its goal and 0 otherwise (ma-gym's, with ``step_cost = 0``). The episode ends when both
agents are done (``terminated``) or after ``MAX_EPISODE_STEPS = 200`` steps (``truncated``; the
reference's ``max_steps``). Starts are fixed, and the dynamics deterministic.

Unlike the reference, where a done agent's episode (and context) stops while the other plays on,
both agents share the episode: a done agent's row keeps stepping until the episode ends, seeing
its goal observation and reward 0 (raw and shaped).

Observation of agent ``i`` (reference, ``method 1``): ``15 * (other agent's column) +
(own cell number)``, an id in ``[0, 105)``.

Shaping (``shape_rewards``; reference ``MultiAgentGenerator.reward_shaping``)
------------------------------------------------------------------------
For each agent that was not yet done before the step: ``ARRIVAL_SHAPED = 1.0`` if it reached its
goal, else ``CLOSER = +0.08`` if its Manhattan distance to its goal decreased, ``FARTHER = -0.12``
if it increased, ``STILL = -0.04`` if unchanged; an agent done before the step gets 0. While
neither agent was done before the step, both receive the *sum* of the two shaped rewards (the
cooperative signal). ``shaping=False`` gives the raw rewards.

Reference returns (exact)
-------------------------
The joint state space is small: 210 ordered pairs of distinct cells, 25 joint actions.
``switch_model`` builds that joint MDP (``joint_task``, team reward = sum of the two agents') and
computes each agent's expected raw return exactly over the 200-step limit, for the uniform random
policy of both agents and for the greedy policy of the team's ``Q*`` at discount 0.994 (the
centralised oracle, which ``oracle_action`` plays for both agents). Both agents' rows share one
``EnvInfo``, so its reference returns are the mean over the two agents (the team-average score
is then exactly the mean of the two rows' scores); ``SwitchModel`` keeps the per-agent values.
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
from typing import Any, Sequence

import gymnasium
import numpy as np

from omnirl._validate import check_int
from omnirl.evaluate.envs._tabular import REFERENCE_GAMMA, table_task
from omnirl.evaluate.envs.base import DiscreteAdapter, EnvInfo
from omnirl.tasks import MDPTask, solve
from omnirl.tasks.solver import finite_horizon_values, one_hot_policy, start_distribution, uniform_policy

GRID = (3, 7)
"""Rows and columns of the grid."""
CELLS: tuple[tuple[int, int], ...] = tuple(
    (r, c) for r in range(GRID[0]) for c in range(GRID[1]) if r == 1 or c in (0, 1, 5, 6))
"""The 15 free cells ``(row, col)``, row-major; a cell's number is its index here."""
CELL_NUMBER = {cell: i for i, cell in enumerate(CELLS)}
"""``(row, col)`` -> cell number."""
N_CELLS = len(CELLS)
"""15 free cells."""
N_AGENTS = 2
"""Two agents."""
STARTS = ((0, 1), (0, 5))
"""Start cell of each agent."""
GOALS = ((0, 6), (0, 0))
"""Goal cell of each agent (the far side of the other room)."""
MOVES = ((1, 0), (0, -1), (-1, 0), (0, 1), (0, 0))
"""``(d_row, d_col)`` of each action: down, left, up, right, no-op."""
NOOP = 4
"""The no-op action."""
N_ACTIONS = len(MOVES)
"""5 actions per agent."""
N_STATES = GRID[1] * N_CELLS
"""Observation ids ``15 * other column + own cell``: 105."""
MAX_EPISODE_STEPS = 200
"""Episode limit (the reference's ``max_steps``)."""
ARRIVAL = 5.0
"""Raw reward of an agent on the step it reaches its goal."""
ARRIVAL_SHAPED = 1.0
"""Shaped reward of reaching the goal."""
CLOSER = 0.08
"""Shaped reward of a step that brings the agent closer to its goal (Manhattan distance)."""
FARTHER = -0.12
"""Shaped reward of a step that takes it farther."""
STILL = -0.04
"""Shaped reward of a step that leaves its distance unchanged."""


def distance(cell: tuple[int, int], agent: int) -> int:
    """Manhattan distance of ``cell`` to ``agent``'s goal."""
    g = GOALS[agent]
    return abs(cell[0] - g[0]) + abs(cell[1] - g[1])


def joint_step(positions: Sequence[tuple[int, int]], actions: Sequence[int]) -> tuple[tuple[int, int], ...]:
    """The positions after one step (ma-gym's rules: agents move in index order, done agents stay)."""
    pos = [tuple(p) for p in positions]
    for i in range(N_AGENTS):
        if pos[i] == GOALS[i]:
            continue
        dr, dc = MOVES[actions[i]]
        nxt = (pos[i][0] + dr, pos[i][1] + dc)
        if nxt in CELL_NUMBER and all(nxt != pos[j] for j in range(N_AGENTS) if j != i):
            pos[i] = nxt
    return tuple(pos)


def shape_rewards(raw: Sequence[float], previous: Sequence[tuple[int, int]],
                  positions: Sequence[tuple[int, int]], was_done: Sequence[bool]) -> list[float]:
    """Shaped rewards of one step (see the module docstring): ``raw`` per-agent raw rewards,
    ``previous``/``positions`` the cells before and after the step, ``was_done`` whether each
    agent had reached its goal before the step."""
    shaped = [0.0] * N_AGENTS
    for i in range(N_AGENTS):
        if was_done[i]:
            continue
        if raw[i] > 0:
            shaped[i] = ARRIVAL_SHAPED
        else:
            before, after = distance(previous[i], i), distance(positions[i], i)
            shaped[i] = CLOSER if after < before else FARTHER if after > before else STILL
    if not any(was_done):
        total = sum(shaped)
        return [total] * N_AGENTS
    return shaped


def observation_ids(positions: Sequence[tuple[int, int]]) -> list[int]:
    """Each agent's observation id: ``15 * other agent's column + own cell number``."""
    return [N_CELLS * positions[1 - i][1] + CELL_NUMBER[tuple(positions[i])] for i in range(N_AGENTS)]


class Switch2Env(gymnasium.Env):
    """Two-agent Switch (see the module docstring). ``step`` takes one action per agent and
    returns the positions ``(2, 2)`` (row, col per agent), the list of per-agent raw rewards, and
    ``info`` with ``previous`` (positions before the step), ``positions``, ``was_done`` and
    ``done`` (per agent, before and after the step).

    ``reset(options={"positions": ((r0, c0), (r1, c1))})`` starts from other distinct free cells
    (for tests); by default the agents start at ``STARTS``.
    """

    metadata = {"render_modes": []}

    def __init__(self, *, max_episode_steps: int = MAX_EPISODE_STEPS) -> None:
        self.max_episode_steps = check_int("max_episode_steps", max_episode_steps, min_value=1)
        self.observation_space = gymnasium.spaces.MultiDiscrete(np.array([GRID, GRID]))
        self.action_space = gymnasium.spaces.MultiDiscrete([N_ACTIONS] * N_AGENTS)
        self.positions: tuple[tuple[int, int], ...] = STARTS
        self._steps = 0
        self._over = True

    def _obs(self) -> np.ndarray:
        return np.array(self.positions, dtype=np.int64)  # (2, 2)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        positions = STARTS if not options or "positions" not in options else options["positions"]
        try:
            positions = tuple((int(r), int(c)) for r, c in positions)
        except (TypeError, ValueError):
            raise ValueError(f"options['positions'] must be two (row, col) cells, got {positions!r}") from None
        if (len(positions) != N_AGENTS or any(p not in CELL_NUMBER for p in positions)
                or positions[0] == positions[1] or all(p == g for p, g in zip(positions, GOALS))):
            raise ValueError(f"options['positions'] must be two distinct free cells, not both goals, "
                             f"got {positions!r}")
        self.positions = positions
        self._steps = 0
        self._over = False
        return self._obs(), {}

    def step(self, actions):
        if self._over:
            raise RuntimeError("the episode is over (or never started): call reset() before step()")
        acts = list(actions) if isinstance(actions, (list, tuple, np.ndarray)) else None
        if (acts is None or len(acts) != N_AGENTS
                or any(isinstance(a, bool) or not isinstance(a, numbers.Integral) or not 0 <= a < N_ACTIONS
                       for a in acts)):
            raise ValueError(f"actions must be {N_AGENTS} integers in [0, {N_ACTIONS}), got {actions!r}")
        previous = self.positions
        was_done = tuple(p == g for p, g in zip(previous, GOALS))
        self.positions = joint_step(previous, [int(a) for a in acts])
        done = tuple(p == g for p, g in zip(self.positions, GOALS))
        rewards = [ARRIVAL if d and not w else 0.0 for d, w in zip(done, was_done)]
        self._steps += 1
        terminated = all(done)
        truncated = self._steps >= self.max_episode_steps
        self._over = terminated or truncated
        info = {"previous": previous, "positions": self.positions, "was_done": was_done, "done": done}
        return self._obs(), rewards, terminated, truncated, info


# --------------------------------------------------------------------------- the joint model
@dataclasses.dataclass(frozen=True)
class SwitchModel:
    """The joint MDP of Switch2 and its exact per-agent reference returns."""

    states: tuple[tuple[tuple[int, int], tuple[int, int]], ...]
    """The 210 joint states (positions of agents 0 and 1); a joint state's rank is its index."""
    task: MDPTask
    """The joint MDP: ``n = 210`` ranks, ``25`` joint actions ``5 * a0 + a1``, team reward."""
    random_returns: tuple[float, float]
    """Each agent's exact expected raw return under uniform random play of both."""
    oracle_returns: tuple[float, float]
    """Each agent's exact expected raw return under the team oracle."""
    oracle: np.ndarray
    """``(210,)`` int64 joint oracle action of each joint state (read-only)."""

    def rank(self, positions: Sequence[tuple[int, int]]) -> int:
        """Rank of a joint state."""
        return _RANK[tuple(tuple(p) for p in positions)]


_STATES = tuple((a, b) for a in CELLS for b in CELLS if a != b)
_RANK = {s: i for i, s in enumerate(_STATES)}


@functools.lru_cache(maxsize=None)
def switch_model(max_episode_steps: int = MAX_EPISODE_STEPS) -> SwitchModel:
    """Build and solve the joint MDP (see the module docstring)."""
    H = check_int("max_episode_steps", max_episode_steps, min_value=1)
    n, A = len(_STATES), N_ACTIONS * N_ACTIONS
    P = np.zeros((n, A, n))  # (n, A, n)
    R = np.zeros((N_AGENTS, n, A, n))  # per-agent raw reward of each transition
    terminal = np.array([all(p == g for p, g in zip(s, GOALS)) for s in _STATES])
    for s, positions in enumerate(_STATES):
        if terminal[s]:
            continue
        for ja in range(A):
            nxt = joint_step(positions, divmod(ja, N_ACTIONS))
            s2 = _RANK[nxt]
            P[s, ja, s2] = 1.0
            for i in range(N_AGENTS):
                R[i, s, ja, s2] = ARRIVAL if nxt[i] == GOALS[i] and positions[i] != GOALS[i] else 0.0
    start = np.zeros(n)
    start[_RANK[STARTS]] = 1.0
    task = table_task(family="switch2", transition=P, reward=R.sum(0), terminal=terminal, start_probs=start,
                      goal=None, max_steps=H, params={"joint": True})
    d0 = start_distribution(task)
    policy = one_hot_policy(solve(task, REFERENCE_GAMMA).policy, A)  # (n, A)
    uniform = uniform_policy(n, A)
    rnd = tuple(float(d0 @ finite_horizon_values(P, R[i], uniform, H)) for i in range(N_AGENTS))
    opt = tuple(float(d0 @ finite_horizon_values(P, R[i], policy, H)) for i in range(N_AGENTS))
    oracle = np.argmax(policy, -1).astype(np.int64)
    oracle.setflags(write=False)
    return SwitchModel(states=_STATES, task=task, random_returns=rnd, oracle_returns=opt, oracle=oracle)


def joint_task() -> MDPTask:
    """The joint MDP of Switch2 (team reward), for inspection and tests."""
    return switch_model().task


# --------------------------------------------------------------------------- the adapter
class Switch2Adapter(DiscreteAdapter):
    """Switch2 as a two-agent discrete evaluation environment (``n_agents = 2``: a batch gives it
    two consecutive rows, agent 0 then agent 1)."""

    n_agents = N_AGENTS

    def __init__(self, *, shaping: bool = True) -> None:
        if not isinstance(shaping, bool):
            raise ValueError(f"shaping must be a bool, got {shaping!r}")
        super().__init__(Switch2Env())
        self.shaping = shaping
        self.model = switch_model()
        self.observation_space = gymnasium.spaces.Tuple([gymnasium.spaces.Discrete(N_STATES)] * N_AGENTS)
        self.action_space = gymnasium.spaces.Tuple([gymnasium.spaces.Discrete(N_ACTIONS)] * N_AGENTS)
        self.info = EnvInfo(name="switch2", family="switch2", n_obs=N_STATES, n_actions=N_ACTIONS,
                            max_episode_steps=MAX_EPISODE_STEPS,
                            random_return=float(np.mean(self.model.random_returns)),
                            oracle_return=float(np.mean(self.model.oracle_returns)), exact=True)

    def observe(self, raw_obs: Any) -> list[int]:
        return observation_ids([tuple(int(x) for x in p) for p in raw_obs])

    def shape(self, raw_reward, terminated: bool, truncated: bool, raw_info: dict) -> list[float]:
        return shape_rewards(raw_reward, raw_info["previous"], raw_info["positions"], raw_info["was_done"])

    def oracle_action(self) -> list[int]:
        positions = self.env.unwrapped.positions
        a0, a1 = divmod(int(self.model.oracle[self.model.rank(positions)]), N_ACTIONS)
        return [NOOP if positions[i] == GOALS[i] else a for i, a in enumerate((a0, a1))]


__all__ = ["ARRIVAL", "ARRIVAL_SHAPED", "CELLS", "CELL_NUMBER", "CLOSER", "FARTHER", "GOALS", "GRID",
           "MAX_EPISODE_STEPS", "MOVES", "NOOP", "N_ACTIONS", "N_CELLS", "N_STATES", "STARTS", "STILL",
           "Switch2Adapter", "Switch2Env", "SwitchModel", "distance", "joint_step", "joint_task",
           "observation_ids", "shape_rewards", "switch_model"]
