"""Unseen AnyMDP tasks (``anymdp16``, ``anymdp32``, ``anymdp64``, ``anymdp128``; ``anymdp8`` for the
in-context RL ladder) and multi-armed bandits (``bandit5``) as ``MDPBatch``es.

Tasks
-----
``unseen_tasks(S, n, seed=...)`` samples ``n`` AnyMDP tasks with an observation space of ``S`` ids
(all ``S`` states active) and ``N_ACTIONS = 5`` actions, the sizes of the paper's evaluation
(``SIZES``); ``bandit_tasks(n, seed=...)`` samples ``n`` bandits (one state, one-step episodes,
``N_ACTIONS`` arms). Episode limits are the sampler's (AnyMDP: ``U(max(4S, 100), max(min(8S, 500),
...))`` steps; bandits: 1). Rewards are raw (no shaping), and the reference returns exact
(``MDPBatch``: uniform random and the greedy ``Q*`` policy at discount 0.994 over the limit).

Seeds: reserved for evaluation, disjoint from training
------------------------------------------------------
Task ``i`` of a draw with ``seed`` is sampled from the stream
``(EVAL_ROOT, S, A, seed, i)`` (``eval_seed``): five entries rooted at ``EVAL_ROOT``, a root
reserved for evaluation. Training tasks never use such a stream: a task set made by
``TaskSet.generate(seed=r)`` samples task ``i`` from ``(r, i)`` and a dataset's fresh tasks come
from ``(seed, 1_000_003, j)``, streams of two and three entries, and distinct ``SeedSequence``
inputs give independent streams, so an evaluation task cannot coincide with a training task (short
of a 64-bit hash collision) whatever training roots were used. ``EVAL_ROOT`` must not be used as
a training task-set root (``generate_eval_taskset`` uses it for the saved evaluation sets).

Saved task sets
---------------
``load_tasks(task_dir, S, n, seed=...)`` takes the tasks from a saved ``TaskSet`` directory (or
``.npz``) instead: the set's tasks with ``S`` observation ids and ``N_ACTIONS`` actions, ``n`` of
them drawn without replacement with ``seed`` (the whole set, cycled, if it holds fewer). By default
every task must come from an evaluation stream (first seed entry ``EVAL_ROOT``, as made by
``generate_eval_taskset``), so a training set is refused; ``check_root=False`` lifts the check.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from omnirl._validate import check_int
from omnirl.evaluate.envs.base import MDPBatch
from omnirl.tasks import MDPTask, sample_anymdp, sample_bandit
from omnirl.tasks.rng import make_rng
from omnirl.tasks.taskset import TaskSet

EVAL_ROOT = 0xE7A15EED
"""Root of every evaluation task stream (3,886,112,493); reserved: never a training root."""
N_ACTIONS = 5
"""Actions of every evaluation task (the model's action space)."""
SIZES = (16, 32, 64, 128)
"""Observation-space sizes of the unseen AnyMDP suites."""
LADDER_SIZES = (8,)
"""Smaller sizes, for the rungs of ``experiments.icrl_ladder`` (the ``ladder`` suite)."""
BANDIT_STATES = 1
"""A bandit has one state."""


def eval_seed(n_obs: int, n_actions: int, seed: int, index: int) -> tuple[int, int, int, int, int]:
    """The stream of evaluation task ``index`` of a draw with ``seed``:
    ``(EVAL_ROOT, n_obs, n_actions, seed, index)``."""
    return (EVAL_ROOT, check_int("n_obs", n_obs, min_value=1),
            check_int("n_actions", n_actions, min_value=2), check_int("seed", seed, min_value=0),
            check_int("index", index, min_value=0))


def is_eval_task(task: MDPTask) -> bool:
    """Whether ``task`` was sampled from an evaluation stream (its seed is rooted at ``EVAL_ROOT``)."""
    return len(task.seed) >= 1 and task.seed[0] == EVAL_ROOT


def unseen_tasks(n_obs: int, n_tasks: int, *, seed: int, n_actions: int = N_ACTIONS) -> list[MDPTask]:
    """``n_tasks`` AnyMDP tasks of ``n_obs`` observation ids never seen in training (streams
    ``eval_seed(n_obs, n_actions, seed, i)``)."""
    n = check_int("n_tasks", n_tasks, min_value=1)
    S = check_int("n_obs", n_obs, min_value=8)
    return [sample_anymdp(S, n_actions, seed=eval_seed(S, n_actions, seed, i)) for i in range(n)]


def bandit_tasks(n_tasks: int, *, seed: int, n_actions: int = N_ACTIONS) -> list[MDPTask]:
    """``n_tasks`` multi-armed bandits with ``n_actions`` arms (streams
    ``eval_seed(1, n_actions, seed, i)``)."""
    n = check_int("n_tasks", n_tasks, min_value=1)
    return [sample_bandit(n_actions, seed=eval_seed(BANDIT_STATES, n_actions, seed, i)) for i in range(n)]


def load_tasks(task_dir: str | os.PathLike, n_obs: int, n_tasks: int, *, seed: int,
               n_actions: int = N_ACTIONS, check_root: bool = True) -> list[MDPTask]:
    """``n_tasks`` tasks of a saved task set (see the module docstring)."""
    n = check_int("n_tasks", n_tasks, min_value=1)
    S = check_int("n_obs", n_obs, min_value=1)
    check_int("seed", seed, min_value=0)
    tasks = [t for t in TaskSet.load(Path(task_dir)) if t.n_obs == S and t.n_actions == n_actions]
    if not tasks:
        raise ValueError(f"task_dir {str(task_dir)!r} holds no task with n_obs={S} and "
                         f"n_actions={n_actions}")
    if check_root:
        foreign = [i for i, t in enumerate(tasks) if not is_eval_task(t)]
        if foreign:
            raise ValueError(f"task_dir {str(task_dir)!r} holds tasks not drawn from the evaluation root "
                             f"EVAL_ROOT={EVAL_ROOT} (e.g. seed {tasks[foreign[0]].seed}): it may be a "
                             "training set; pass check_root=False to use it anyway")
    if n <= len(tasks):
        idx = make_rng((EVAL_ROOT, seed)).choice(len(tasks), size=n, replace=False)
    else:
        idx = np.arange(n) % len(tasks)
    return [tasks[int(i)] for i in idx]


def generate_eval_taskset(out: str | os.PathLike, n_obs: int, n_tasks: int, *, seed: int,
                          n_actions: int = N_ACTIONS) -> TaskSet:
    """Save the ``n_tasks`` evaluation tasks of ``unseen_tasks`` (or ``bandit_tasks`` for
    ``n_obs=1``) as a task set at ``out``, for ``load_tasks``."""
    tasks = (bandit_tasks(n_tasks, seed=seed, n_actions=n_actions) if n_obs == BANDIT_STATES
             else unseen_tasks(n_obs, n_tasks, seed=seed, n_actions=n_actions))
    # a task set's info names S "n_states" (TaskSet.generate's too): stored sets keep reading alike
    info = {"evaluation": True, "root": EVAL_ROOT, "n_states": n_obs, "n_actions": n_actions,
            "seed": seed, "n_tasks": n_tasks}
    ts = TaskSet(tasks, info)
    ts.save(out)
    return ts


def anymdp_batch(n_obs: int, n_envs: int, *, seed: int, n_actions: int = N_ACTIONS,
                 task_dir: str | os.PathLike | None = None, check_root: bool = True) -> MDPBatch:
    """``n_envs`` distinct unseen AnyMDP tasks (or, with ``task_dir``, tasks of a saved set) as an
    ``MDPBatch`` named ``anymdp{n_obs}``."""
    if task_dir is not None:
        tasks: Sequence[MDPTask] = load_tasks(task_dir, n_obs, n_envs, seed=seed, n_actions=n_actions,
                                              check_root=check_root)
    else:
        tasks = unseen_tasks(n_obs, n_envs, seed=seed, n_actions=n_actions)
    return MDPBatch(tasks, names=[f"anymdp{n_obs}"] * len(tasks), family="anymdp")


def bandit_batch(n_envs: int, *, seed: int, n_actions: int = N_ACTIONS,
                 task_dir: str | os.PathLike | None = None, check_root: bool = True) -> MDPBatch:
    """``n_envs`` distinct bandits (or, with ``task_dir``, bandits of a saved set) as an ``MDPBatch``
    named ``bandit{n_actions}``."""
    if task_dir is not None:
        tasks: Sequence[MDPTask] = load_tasks(task_dir, BANDIT_STATES, n_envs, seed=seed,
                                              n_actions=n_actions, check_root=check_root)
    else:
        tasks = bandit_tasks(n_envs, seed=seed, n_actions=n_actions)
    return MDPBatch(tasks, names=[f"bandit{n_actions}"] * len(tasks), family="bandit")


__all__ = ["BANDIT_STATES", "EVAL_ROOT", "LADDER_SIZES", "N_ACTIONS", "SIZES", "anymdp_batch", "bandit_batch",
           "bandit_tasks", "eval_seed", "generate_eval_taskset", "is_eval_task",
           "load_tasks", "unseen_tasks"]
