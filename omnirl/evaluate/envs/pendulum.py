"""Discrete Pendulum: Gymnasium ``Pendulum-v1`` at gravity ``g`` in {1, 5, 9.81} seen through a
60-cell grid with 5 torques (``pendulum_g1``, ``pendulum_g5``, ``pendulum_g9.8``).

The environment
---------------
Gymnasium's pendulum (``dt = 0.05``, ``|theta_dot| <= 8``, torque in [-2, 2], raw reward
``-(theta^2 + 0.1 theta_dot^2 + 0.001 u^2)`` in [-16.3, 0] with theta the angle from upright), each
episode starting at a uniform angle in [-pi, pi] and speed in [-1, 1], cut after
``MAX_EPISODE_STEPS = 200`` steps (Pendulum-v1's own limit, and the reference's ``max_steps``).

Observation (reference ``pendulum12x5``): the angle ``atan2(sin, cos)`` moved to [0, 2 pi) falls in
one of ``N_ANGLE = 12`` equal bins, the speed (clipped to [-8, 8]) in one of ``N_SPEED = 5`` equal
bins; the id is ``5 * angle_bin + speed_bin``, 60 states. Actions: ``TORQUES`` = 5 torques
linearly spaced in [-2, 2] (action 0 = -2, 2 = 0, 4 = +2).

Gravity: the paper's table lists g = 1, 5 and 9.8; the reference builds ``Pendulum-v1(g=9.81)``
and measured its oracle constant there, so ``pendulum_g9.8`` runs at ``g = 9.81`` (``GRAVITIES``
maps names to values). Unlike the reference, which resets with ``seed=123`` before every episode
(every episode started in the same state), each row is seeded once and its later episodes
continue its stream.

Shaping (reference ``reward_shaping``): ``max(r / 30 + 0.1, -0.1)`` maps the raw reward from
[-16.3, 0] to [-0.1, 0.1] (upright and still: +0.1). ``shaping=False`` gives the raw reward.

Reference returns (not exact: the model is continuous)
------------------------------------------------------
* ``ORACLE_RETURN``: the reference's fixed oracle returns, g = 9.81 -> -385, g = 5 -> -200,
  g = 1 -> -40 (``data/anymdp/evaluate_gymnasium_q.py``), used as published.
* ``RANDOM_RETURN``: the uniform random policy's mean return, measured by Monte Carlo over
  200,000 episodes (``measure_random_return``, a vectorised replica of the Pendulum-v1 equations
  and reset law; standard error about 0.6); the tests re-measure it through the adapter.
* ``oracle_action``: a controller that sees the true continuous state and picks, among the 5
  torques, the one minimising ``cost + CONTROLLER_GAMMA * V(next state)``, with ``V`` from value
  iteration on a ``CONTROLLER_GRID`` grid of (angle, speed) with bilinear interpolation, built
  once per ``g`` on first use (a fraction of a second). Its mean return ``CONTROLLER_RETURN``,
  measured on the replica (``measure_controller_return``, 2,000 episodes, standard error below
  2), is *better* than the published oracle at g = 5 and 9.81 (-93 and -140 against -200 and
  -385; -41 against -40 at g = 1), so it scores above 1 there (1.12 and 1.29): the published
  constants are kept for comparability with the paper.
"""

from __future__ import annotations

import bisect
import functools
import math

import gymnasium
import numpy as np
from gymnasium.envs.classic_control.pendulum import PendulumEnv
from gymnasium.wrappers import TimeLimit

from omnirl._validate import check_choice, check_int
from omnirl.evaluate.envs.base import DiscreteAdapter, EnvInfo

GRAVITIES = {"pendulum_g1": 1.0, "pendulum_g5": 5.0, "pendulum_g9.8": 9.81}
"""Environment name -> gravity ``g``."""
N_ANGLE = 12
"""Angle bins over [0, 2 pi)."""
N_SPEED = 5
"""Angular-speed bins over [-8, 8]."""
N_STATES = N_ANGLE * N_SPEED
"""60 observation ids."""
TORQUES = np.linspace(-2.0, 2.0, 5)
"""Torque of each action: [-2, -1, 0, 1, 2]."""
N_ACTIONS = len(TORQUES)
"""5 torques."""
MAX_SPEED = 8.0
"""Pendulum-v1's speed limit."""
DT = 0.05
"""Pendulum-v1's time step."""
MAX_EPISODE_STEPS = 200
"""Episode limit."""
ORACLE_RETURN = {1.0: -40.0, 5.0: -200.0, 9.81: -385.0}
"""Published oracle returns of the reference (``g`` -> return)."""
RANDOM_RETURN = {1.0: -899.8, 5.0: -1119.6, 9.81: -1221.1}
"""Monte-Carlo mean return of the uniform random policy (``g`` -> return, 200,000 episodes)."""
CONTROLLER_RETURN = {1.0: -40.8, 5.0: -93.1, 9.81: -140.3}
"""Measured mean return of ``oracle_action``'s controller (``g`` -> return, 2,000 episodes)."""
CONTROLLER_GRID = (101, 101)
"""(angle, speed) grid of the controller's value iteration."""
CONTROLLER_GAMMA = 0.98
"""Discount of the controller's value iteration."""

_ANGLE_EDGES = np.linspace(0.0, 2.0 * np.pi, N_ANGLE + 1).tolist()
_SPEED_EDGES = np.linspace(-MAX_SPEED, MAX_SPEED, N_SPEED + 1).tolist()


def _bin(value: float, edges: list[float]) -> int:
    """``numpy.digitize`` of a clipped value minus 1, clipped to the bins (the reference's map)."""
    value = min(max(value, edges[0]), edges[-1])
    return min(max(bisect.bisect_right(edges, value) - 1, 0), len(edges) - 2)


def observation_id(cos_theta: float, sin_theta: float, theta_dot: float) -> int:
    """The discrete id of a Pendulum-v1 observation ``(cos, sin, theta_dot)``."""
    theta = math.atan2(sin_theta, cos_theta)
    if theta < 0.0:
        theta += 2.0 * math.pi
    return N_SPEED * _bin(theta, _ANGLE_EDGES) + _bin(theta_dot, _SPEED_EDGES)


def shape_reward(raw_reward: float) -> float:
    """``max(r / 30 + 0.1, -0.1)``."""
    return max(raw_reward / 30.0 + 0.1, -0.1)


# --------------------------------------------------------------------------- dynamics and controller
def _angle_normalize(theta):
    return ((theta + np.pi) % (2.0 * np.pi)) - np.pi


def dynamics(theta, theta_dot, torque, g: float):
    """One Pendulum-v1 step (arrays broadcast): ``(theta', theta_dot', cost)``."""
    cost = _angle_normalize(theta) ** 2 + 0.1 * theta_dot ** 2 + 0.001 * torque ** 2
    new_dot = np.clip(theta_dot + (3.0 * g / 2.0 * np.sin(theta) + 3.0 * torque) * DT, -MAX_SPEED, MAX_SPEED)
    return theta + new_dot * DT, new_dot, cost


def _interp_weights(n_angle: int, n_speed: int, theta, theta_dot):
    """Flat indices ``(4, ...)`` and weights ``(4, ...)`` of the bilinear interpolation of a grid
    ``(n_angle, n_speed)`` (periodic in the angle) at ``(theta, theta_dot)``."""
    ft = (_angle_normalize(theta) + np.pi) / (2.0 * np.pi) * n_angle
    i0 = np.floor(ft).astype(np.int64)
    wt = ft - i0
    i0 %= n_angle
    i1 = (i0 + 1) % n_angle
    fv = (np.clip(theta_dot, -MAX_SPEED, MAX_SPEED) + MAX_SPEED) / (2.0 * MAX_SPEED) * (n_speed - 1)
    j0 = np.clip(np.floor(fv).astype(np.int64), 0, n_speed - 2)
    wv = fv - j0
    idx = np.stack([i0 * n_speed + j0, i0 * n_speed + j0 + 1, i1 * n_speed + j0, i1 * n_speed + j0 + 1])
    w = np.stack([(1 - wt) * (1 - wv), (1 - wt) * wv, wt * (1 - wv), wt * wv])
    return idx, w


@functools.lru_cache(maxsize=None)
def controller_values(g: float, tol: float = 1e-4) -> np.ndarray:
    """Cost-to-go ``V (n_angle, n_speed)`` of the pendulum at gravity ``g`` by value iteration on
    ``CONTROLLER_GRID`` with discount ``CONTROLLER_GAMMA``, to a sup-norm change below ``tol``
    (read-only)."""
    nt, nv = CONTROLLER_GRID
    theta = np.linspace(-np.pi, np.pi, nt, endpoint=False)[:, None, None]  # (nt, 1, 1)
    speed = np.linspace(-MAX_SPEED, MAX_SPEED, nv)[None, :, None]  # (1, nv, 1)
    th2, dot2, cost = dynamics(theta, speed, TORQUES, g)  # (nt, nv, A)
    idx, w = _interp_weights(nt, nv, th2, dot2)  # (4, nt, nv, A)
    V = np.zeros(nt * nv)
    for _ in range(100_000):
        V_new = (cost + CONTROLLER_GAMMA * (w * V[idx]).sum(0)).min(-1).reshape(-1)
        done = np.abs(V_new - V).max() < tol
        V = V_new
        if done:
            break
    V = V.reshape(nt, nv)
    V.setflags(write=False)
    return V


def controller_q(V: np.ndarray, theta, theta_dot, g: float) -> np.ndarray:
    """``cost + CONTROLLER_GAMMA * V(next)`` of each torque, ``(..., A)``, in states ``(...)``."""
    th2, dot2, cost = dynamics(np.asarray(theta, np.float64)[..., None],
                               np.asarray(theta_dot, np.float64)[..., None], TORQUES, g)
    idx, w = _interp_weights(*V.shape, th2, dot2)
    return cost + CONTROLLER_GAMMA * (w * V.reshape(-1)[idx]).sum(0)


def controller_action(theta: float, theta_dot: float, g: float) -> int:
    """The controller's action (index into ``TORQUES``) in the true state ``(theta, theta_dot)``."""
    return int(np.argmin(controller_q(controller_values(float(g)), theta, theta_dot, g)))


def measure_random_return(g: float, n_episodes: int, seed: int = 0) -> tuple[float, float]:
    """``(mean, standard error)`` of the uniform random policy's return over ``n_episodes``
    episodes of a vectorised replica of Pendulum-v1 at gravity ``g`` (how ``RANDOM_RETURN`` was
    measured, with 200,000 episodes and ``seed=0``)."""
    n = check_int("n_episodes", n_episodes, min_value=2)
    rng = np.random.default_rng(check_int("seed", seed, min_value=0))
    theta = rng.uniform(-np.pi, np.pi, n)
    theta_dot = rng.uniform(-1.0, 1.0, n)
    ret = np.zeros(n)
    for _ in range(MAX_EPISODE_STEPS):
        theta, theta_dot, cost = dynamics(theta, theta_dot, TORQUES[rng.integers(0, N_ACTIONS, n)], g)
        ret -= cost
    return float(ret.mean()), float(ret.std(ddof=1) / math.sqrt(n))


def measure_controller_return(g: float, n_episodes: int, seed: int = 0) -> tuple[float, float]:
    """``(mean, standard error)`` of the controller's return over ``n_episodes`` episodes of the
    vectorised replica (how ``CONTROLLER_RETURN`` was measured, with 2,000 episodes and
    ``seed=1``)."""
    n = check_int("n_episodes", n_episodes, min_value=2)
    rng = np.random.default_rng(check_int("seed", seed, min_value=0))
    theta = rng.uniform(-np.pi, np.pi, n)
    theta_dot = rng.uniform(-1.0, 1.0, n)
    V = controller_values(float(g))
    ret = np.zeros(n)
    for _ in range(MAX_EPISODE_STEPS):
        action = np.argmin(controller_q(V, theta, theta_dot, g), -1)
        theta, theta_dot, cost = dynamics(theta, theta_dot, TORQUES[action], g)
        ret -= cost
    return float(ret.mean()), float(ret.std(ddof=1) / math.sqrt(n))


# --------------------------------------------------------------------------- the adapter
class TorqueActions(gymnasium.ActionWrapper):
    """Discrete action ``a`` -> the torque ``TORQUES[a]`` (a float32 array of shape ``(1,)``)."""

    def __init__(self, env: gymnasium.Env) -> None:
        super().__init__(env)
        self.action_space = gymnasium.spaces.Discrete(N_ACTIONS)

    def action(self, action):
        a = int(action)
        if not 0 <= a < N_ACTIONS:
            raise ValueError(f"action must be in [0, {N_ACTIONS}), got {action!r}")
        return np.array([TORQUES[a]], dtype=np.float32)


class PendulumAdapter(DiscreteAdapter):
    """Discrete Pendulum at gravity ``g`` (see the module docstring)."""

    def __init__(self, g: float, *, shaping: bool = True) -> None:
        g = check_choice("g", g, ORACLE_RETURN)
        if not isinstance(shaping, bool):
            raise ValueError(f"shaping must be a bool, got {shaping!r}")
        super().__init__(TorqueActions(TimeLimit(PendulumEnv(g=g), MAX_EPISODE_STEPS)))
        self.g = float(g)
        self.shaping = shaping
        self.observation_space = gymnasium.spaces.Discrete(N_STATES)
        self.action_space = gymnasium.spaces.Discrete(N_ACTIONS)
        name = next(k for k, v in GRAVITIES.items() if v == g)
        self.info = EnvInfo(name=name, family="pendulum", n_obs=N_STATES, n_actions=N_ACTIONS,
                            max_episode_steps=MAX_EPISODE_STEPS, random_return=RANDOM_RETURN[g],
                            oracle_return=ORACLE_RETURN[g], exact=False)

    def observe(self, raw_obs) -> int:
        return observation_id(float(raw_obs[0]), float(raw_obs[1]), float(raw_obs[2]))

    def shape(self, raw_reward: float, terminated: bool, truncated: bool, raw_info: dict) -> float:
        return shape_reward(float(raw_reward))

    def oracle_action(self) -> int:
        theta, theta_dot = self.env.unwrapped.state
        return controller_action(float(theta), float(theta_dot), self.g)


__all__ = ["CONTROLLER_GAMMA", "CONTROLLER_GRID", "CONTROLLER_RETURN", "GRAVITIES", "MAX_EPISODE_STEPS",
           "N_ACTIONS", "N_ANGLE", "N_SPEED", "N_STATES", "ORACLE_RETURN", "PendulumAdapter",
           "RANDOM_RETURN", "TORQUES", "TorqueActions", "controller_action", "controller_q", "controller_values",
           "dynamics", "measure_controller_return", "measure_random_return", "observation_id", "shape_reward"]
