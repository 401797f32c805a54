"""Evaluation environments: the registry of every environment of the paper's evaluation.

``make_batch(name, n_envs, seed=..., shaping=True)`` builds an ``EnvBatch`` (see
``omnirl.evaluate.envs.base``) for any name; ``make_env(name, shaping=True)`` one Gymnasium
``DiscreteAdapter`` for the Gymnasium names. For ``anymdp*`` and ``bandit5`` a batch holds
``n_envs`` distinct unseen tasks drawn from ``seed`` (``omnirl.evaluate.envs.anymdp``; or from a
saved evaluation task set, ``task_dir``); for the Gymnasium names it holds ``n_envs`` copies of the
environment (``seed`` plays no part: rows are seeded by ``reset(seed)``), and ``switch2``, whose
environment takes two rows (one per agent), needs an even ``n_envs`` (``n_envs / 2``
environments). ``SUITES`` groups the names as in the paper's tables and t-SNE plots.

Environments
------------
One module per family holds its constants, shaping and references; the returns below are raw
expected episode returns (what scores are made of). "Exact" references are computed from the
environment's model (``MDPTask``); AnyMDP and bandit references are exact per task.

==================  ======  =======  =======  ========================  ===============  ===============  =====
name                states  actions  limit    shaping (agent sees)      random return    oracle return    exact
==================  ======  =======  =======  ========================  ===============  ===============  =====
anymdp8             8       5        100-101  none                      per task         per task         yes
anymdp16            16      5        100-128  none                      per task         per task         yes
anymdp32            32      5        128-256  none                      per task         per task         yes
anymdp64            64      5        256-500  none                      per task         per task         yes
anymdp128           128     5        512-513  none                      per task         per task         yes
bandit5             1       5        1        none                      per task         per task         yes
lake4x4             16      4        200      end w/o goal -1           0.0139           1.0              yes
lake4x4_slippery    16      4        200      end w/o goal -1           0.0139           0.8164           yes
cliff               48      4        200      -0.03/step, goal +1,      -109.65          -13.0            yes
                                              cliff or limit -1
pendulum_g1         60      5        200      max(r/30 + 0.1, -0.1)     -899.8 (MC)      -40 (publ.)      no
pendulum_g5         60      5        200      max(r/30 + 0.1, -0.1)     -1119.6 (MC)     -200 (publ.)     no
pendulum_g9.8       60      5        200      max(r/30 + 0.1, -0.1)     -1221.1 (MC)     -385 (publ.)     no
darkroom6           36      4        200      none (raw: -0.1/step,     -9.800           0.5857           yes
darkroom8           64      4        200      goal +1)                  -13.762          0.3889           yes
darkroom10          100     4        200                                -15.930          0.1909           yes
switch2             105     5        200      distance +0.08/-0.12/     2.439            5.0              yes
                    (each   (each             -0.04, goal 1.0, summed   (per agent,      (per agent)
                    agent)  agent)            while both active         mean of two)
==================  ======  =======  =======  ========================  ===============  ===============  =====

AnyMDP limits are the sampler's ``U(max(4S, 100), max(min(8S, 500), ...))``. The pendulum's
``pendulum_g9.8`` runs at the reference's ``g = 9.81``; its random returns are Monte-Carlo
constants (200,000 episodes) and its oracle returns the reference's published constants, which the
``oracle_action`` controller beats at g = 5 and 9.81 (measured -40.8, -93.1, -140.3 for g = 1, 5,
9.81). Every oracle of an exact row is the greedy ``Q*`` policy at discount 0.994 (Switch2: the
centralised team oracle). Shaping is switched off with ``shaping=False`` (the agent then sees the
raw reward). The reference returns of Lake (fixed 1.0 / 0.833 oracles in the reference) and Cliff
(-109.84 / -13 in the paper) are recomputed exactly here.

Action remapping
----------------
The model acts in ``A = 5`` actions. An environment with fewer native actions (Lake, Cliff and
DarkRoom: 4) receives ``base.remap_actions(a, n_actions) = a % n_actions``: actions 0-3 are
themselves and action 4 plays action 0 (a 6-way head's end marker 5 would play 1), as the
reference's ``action % action_clip``. The unmapped action is what enters the model's context.
Pendulum (5 torques), Switch2 (4 moves + no-op), AnyMDP and bandits have 5 native actions.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable

from omnirl._validate import check_choice, check_int
from omnirl.evaluate.envs import anymdp, cliff, darkroom, lake, pendulum, switch
from omnirl.evaluate.envs.base import DiscreteAdapter, EnvBatch, GymBatch


@dataclasses.dataclass(frozen=True)
class EnvFactory:
    """How to build one named environment."""

    name: str
    """Registry name (``lake4x4``, ``anymdp16``, ...)."""
    family: str
    """Environment family (``EnvInfo.family``)."""
    suite: str
    """The suite of ``SUITES`` it belongs to."""
    adapter: Callable[[bool], DiscreteAdapter] | None = None
    """``adapter(shaping)`` -> a Gymnasium ``DiscreteAdapter``; ``None`` for tabular task families."""
    tasks: Callable[..., EnvBatch] | None = None
    """``tasks(n_envs, seed=..., task_dir=...)`` -> an ``MDPBatch`` of distinct tasks; ``None`` for
    Gymnasium environments."""
    n_agents: int = 1
    """Rows per environment in a batch."""

    def __post_init__(self) -> None:
        if (self.adapter is None) == (self.tasks is None):
            raise ValueError(f"{self.name}: exactly one of adapter and tasks must be given")


def _anymdp(S: int, suite: str = "anymdp") -> EnvFactory:
    return EnvFactory(f"anymdp{S}", "anymdp", suite,
                      tasks=lambda n, *, seed, task_dir=None: anymdp.anymdp_batch(S, n, seed=seed,
                                                                                  task_dir=task_dir))


def _gym(name: str, family: str, suite: str, adapter: Callable[[bool], DiscreteAdapter],
         n_agents: int = 1) -> EnvFactory:
    return EnvFactory(name, family, suite, adapter=adapter, n_agents=n_agents)


_FACTORIES = (
    *(_anymdp(S) for S in anymdp.SIZES),
    *(_anymdp(S, "ladder") for S in anymdp.LADDER_SIZES),
    EnvFactory(f"bandit{anymdp.N_ACTIONS}", "bandit", "anymdp",
               tasks=lambda n, *, seed, task_dir=None: anymdp.bandit_batch(n, seed=seed, task_dir=task_dir)),
    _gym("lake4x4", "lake", "gym", lambda shaping: lake.LakeAdapter(False, shaping=shaping)),
    _gym("lake4x4_slippery", "lake", "gym", lambda shaping: lake.LakeAdapter(True, shaping=shaping)),
    _gym("cliff", "cliff", "gym", lambda shaping: cliff.CliffAdapter(shaping=shaping)),
    *(_gym(name, "pendulum", "gym", lambda shaping, g=g: pendulum.PendulumAdapter(g, shaping=shaping))
      for name, g in pendulum.GRAVITIES.items()),
    _gym("switch2", "switch2", "gym", lambda shaping: switch.Switch2Adapter(shaping=shaping),
         n_agents=switch.N_AGENTS),
    *(_gym(darkroom.env_name(d), "darkroom", "darkroom",
           lambda shaping, d=d: darkroom.DarkRoomAdapter(d, shaping=shaping)) for d in darkroom.SIZES),
)

ENVIRONMENTS: dict[str, EnvFactory] = {f.name: f for f in _FACTORIES}
"""Every evaluation environment by name (see the module docstring's table)."""

SUITES: dict[str, tuple[str, ...]] = {
    suite: tuple(f.name for f in _FACTORIES if f.suite == suite) for suite in ("anymdp", "gym", "darkroom", "ladder")}
"""Names by suite: ``anymdp`` (unseen AnyMDP sizes and bandits), ``gym`` (Lake, Cliff, Pendulum,
Switch2), ``darkroom``, ``ladder`` (smaller AnyMDP tasks for ``experiments.icrl_ladder``)."""


def _factory(name: str) -> EnvFactory:
    return ENVIRONMENTS[check_choice("name", name, ENVIRONMENTS)]


def make_env(name: str, shaping: bool = True) -> DiscreteAdapter:
    """One Gymnasium ``DiscreteAdapter`` of the environment ``name`` (not for AnyMDP or bandits,
    which are task families: use ``make_batch``)."""
    f = _factory(name)
    if not isinstance(shaping, bool):
        raise ValueError(f"shaping must be a bool, got {shaping!r}")
    if f.adapter is None:
        gym_names = sorted(n for n, g in ENVIRONMENTS.items() if g.adapter is not None)
        raise ValueError(f"name={name!r} is a family of tabular tasks, not a Gymnasium environment: use "
                         f"make_batch; make_env takes one of {gym_names}")
    return f.adapter(shaping)


def make_batch(name: str, n_envs: int, *, seed: int, shaping: bool = True,
               task_dir: str | os.PathLike | None = None) -> EnvBatch:
    """An ``EnvBatch`` of ``n_envs`` rows of the environment ``name`` (see the module docstring).

    ``task_dir`` (AnyMDP and bandits only) takes the tasks from a saved evaluation task set
    (``anymdp.load_tasks``)."""
    f = _factory(name)
    n_envs = check_int("n_envs", n_envs, min_value=1)
    seed = check_int("seed", seed, min_value=0)
    if not isinstance(shaping, bool):
        raise ValueError(f"shaping must be a bool, got {shaping!r}")
    if f.tasks is not None:
        return f.tasks(n_envs, seed=seed, task_dir=task_dir)
    if task_dir is not None:
        raise ValueError(f"task_dir is only for the AnyMDP and bandit names, got task_dir={str(task_dir)!r} "
                         f"for name={name!r}")
    if n_envs % f.n_agents:
        raise ValueError(f"n_envs must be a multiple of {f.n_agents} for {name!r} (one row per agent, "
                         f"{f.n_agents} agents per environment), got {n_envs}")
    return GymBatch([f.adapter(shaping) for _ in range(n_envs // f.n_agents)])


def observation_ids(name: str) -> int:
    """Observation ids of environment ``name``: a model must read at least this many to play it."""
    f = ENVIRONMENTS[check_choice("env", name, ENVIRONMENTS)]
    return max(i.n_obs for i in make_batch(name, f.n_agents, seed=0).infos)


__all__ = ["ENVIRONMENTS", "EnvFactory", "SUITES", "make_batch", "make_env", "observation_ids"]
