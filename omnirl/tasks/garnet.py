"""The Garnet baseline generator (Archibald et al., 1995), as used by the paper's Figure 1.

Each state-action pair reaches ``branching`` distinct next states chosen uniformly, with
probabilities from a flat Dirichlet; mean rewards ``R[s, a, s'] ~ N(0, reward_sigma)``; one start
state, no terminal states. It has none of AnyMDP's structure (no band, no ascending value), which
is what makes it the easier baseline.
"""

from __future__ import annotations

import numpy as np

from omnirl._validate import check_float, check_int
from omnirl.tasks.anymdp import (GENERATOR_VERSION, check_sizes, sample_active_states,
                                 sample_max_steps)
from omnirl.tasks.rng import make_rng
from omnirl.tasks.task import MDPTask


def sample_garnet(n_states: int, n_actions: int, seed=0, min_states: int | None = None,
                  branching: int = 2, reward_sigma: float = 0.1) -> MDPTask:
    """Sample a Garnet task with observation space ``n_states`` and ``n_actions``."""
    S, A, min_states = check_sizes(n_states, n_actions, min_states, allow_bandit=False)
    b = check_int("branching", branching, min_value=1)
    sigma = check_float("reward_sigma", reward_sigma, min_value=0.0)
    rng = make_rng(seed)
    n = sample_active_states(rng, S, min_states)
    if b > n:
        raise ValueError(f"branching must be <= the number of states {n}, got {b}")
    max_steps = sample_max_steps(rng, S)
    state_ids = rng.permutation(S)[:n]
    # b distinct successors per (s, a): the b smallest of n random keys
    succ = np.argsort(rng.random((n, A, n)), axis=-1)[..., :b]  # (n, A, b)
    probs = rng.dirichlet(np.ones(b), size=(n, A))  # (n, A, b)
    P = np.zeros((n, A, n))
    np.put_along_axis(P, succ, probs, axis=-1)
    R = rng.standard_normal((n, A, n)) * sigma
    params = {"n_states": S, "n_actions": A, "min_states": min_states, "branching": b,
              "reward_sigma": sigma, "version": GENERATOR_VERSION}
    return MDPTask(n_obs=S, transition=P, reward=R, reward_noise=np.zeros_like(R),
                   start_states=[0], start_probs=[1.0], terminal=np.zeros(n, bool), goal=None,
                   max_steps=max_steps, state_ids=state_ids, generator="garnet", params=params,
                   seed=seed)
