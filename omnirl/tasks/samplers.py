"""One entry point over the task generators: ``sample_task(generator, S, A, seed, ...)``."""

from __future__ import annotations

from typing import Any, Callable

from omnirl._validate import check_choice, check_memory
from omnirl.tasks.anymdp import AnyMDPConfig, sample_anymdp, sample_bandit
from omnirl.tasks.garnet import sample_garnet
from omnirl.tasks.task import MDPTask


def _anymdp(n_states, n_actions, seed, min_states=None, **config: Any) -> MDPTask:
    return sample_anymdp(n_states, n_actions, seed, min_states, AnyMDPConfig(**config))


def _bandit(n_states, n_actions, seed, min_states=None) -> MDPTask:
    if n_states != 1 or min_states is not None:
        raise ValueError(f"the bandit generator needs n_states=1 and no min_states, got "
                         f"n_states={n_states!r}, min_states={min_states!r}")
    return sample_bandit(n_actions, seed)


GENERATORS: dict[str, Callable[..., MDPTask]] = {
    "anymdp": _anymdp,
    "garnet": sample_garnet,
    "bandit": _bandit,
}
"""Task generators by name; each is called as ``f(n_states, n_actions, seed, min_states, **params)``."""


def check_task_memory(n_states: Any, n_actions: Any) -> None:
    """Refuse (ValueError naming both sizes) a task whose arrays cannot fit in memory: the
    ``(S, A, S)`` float32 kernel and three float64 ``(S, S)`` working arrays while it is sampled."""
    if isinstance(n_states, int) and isinstance(n_actions, int) and n_states > 0 and n_actions > 0:
        check_memory(f"a task of n_states={n_states}, n_actions={n_actions}", n_states ** 2 * (4 * n_actions + 24))


def sample_task(generator: str, n_states: int, n_actions: int, seed=0,
                min_states: int | None = None, **params: Any) -> MDPTask:
    """Sample one task from the named generator (``anymdp``, ``garnet`` or ``bandit``).

    Extra ``params`` go to the generator (``AnyMDPConfig`` fields for ``anymdp``; ``branching`` and
    ``reward_sigma`` for ``garnet``); an unknown one is a ``ValueError`` naming it.
    """
    fn = GENERATORS[check_choice("generator", generator, GENERATORS)]
    check_task_memory(n_states, n_actions)
    try:
        return fn(n_states, n_actions, seed, min_states, **params)
    except TypeError as e:  # an unknown keyword for this generator
        raise ValueError(f"bad parameter for generator {generator!r}: {e}") from None
