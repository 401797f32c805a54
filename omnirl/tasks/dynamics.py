"""The stochastic step of a tabular MDP, shared by ``AnyMDPEnv`` and ``BatchedSimulator``.

Both environments run exactly these functions, on arrays of ``B`` rows (the Gymnasium environment
with ``B = 1``), so a task stepped with the same seed and actions gives bit-identical trajectories
in either of them.

Protocol
--------
Each environment holds a uint64 ``key = seed_to_key(seed)`` and a uint64 ``counter``:

* a reset with a seed sets the key and ``counter = 0``; every reset draws the start state at the
  current counter (``sample_start``) and then increments the counter;
* every step draws the next state (``sample_next``) and the reward noise (``sample_reward``) at the
  current counter, then increments it. The episode step count ``t`` grows by one per step, and
  ``episode_end`` gives ``terminated = terminal[next]`` and
  ``truncated = (t >= max_steps) and not terminated``.

A reset without a seed keeps the key and continues the counter, which is what the batched
simulator does when it resets a finished row automatically.

Shapes: ``B`` rows, ``n`` states (possibly padded), ``A`` actions.
"""

from __future__ import annotations

import numpy as np

from omnirl.tasks.rng import LANE_RESET, LANE_TRANSITION, counter_normal, counter_uniform
from omnirl.tasks.task import MDPTask


def transition_cdf(task: MDPTask) -> np.ndarray:
    """``(n, A, n)`` float32 cumulative transition law of ``task``.

    The cumulative sum of ``P[s, a, :]`` is taken in float64 and divided by its last element, so
    the last entry is exactly 1.0; terminal rows (never stepped from) are all 1.0.
    """
    c = np.cumsum(task.transition.astype(np.float64), axis=-1)  # (n, A, n)
    last = c[..., -1:]  # (n, A, 1)
    bad = (last[..., 0] <= 0.0) & ~task.terminal[:, None]  # (n, A)
    if bad.any():
        s, a = np.argwhere(bad)[0]
        raise ValueError(f"transition[{s}, {a}, :] of non-terminal state {s} has no probability mass")
    with np.errstate(divide="ignore", invalid="ignore"):
        c = c / last
    c[task.terminal] = 1.0
    return c.astype(np.float32)


def start_cdf(task: MDPTask) -> np.ndarray:
    """``(n,)`` float64 cumulative start law over all ranks (last entry exactly 1.0)."""
    p = np.zeros(task.n_states)
    np.add.at(p, task.start_states, task.start_probs)
    c = np.cumsum(p)
    return c / c[-1]


def search_cdf(table: np.ndarray, rows: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF draw: ``(B,)`` int64 count of entries ``<= u[b]`` in row ``rows[b]`` of
    ``table``, clipped to ``n - 1``.

    table: ``(R, n)`` C-contiguous, each row non-decreasing and ending in 1.0 (padded columns
    1.0); rows: ``(B,)`` int64 row indices; u: ``(B,)`` float64 uniforms in [0, 1).
    A binary search over each row (``log2 n`` gathers of ``B`` entries), equal to
    ``np.count_nonzero(table[rows] <= u[:, None], axis=1)`` for non-decreasing rows.
    """
    n = table.shape[1]
    flat = table.reshape(-1)  # view of the contiguous table
    base = np.asarray(rows, dtype=np.int64) * n  # (B,)
    pos = np.zeros(base.shape, dtype=np.int64)  # (B,) entries known to be <= u
    step = 1 << (n.bit_length() - 1)  # largest power of two <= n
    while step:
        cand = pos + step  # (B,)
        ok = cand <= n
        ok &= flat[base + np.minimum(cand, n) - 1] <= u
        pos = np.where(ok, cand, pos)
        step >>= 1
    return np.minimum(pos, n - 1, out=pos)


def sample_start(table: np.ndarray, rows: np.ndarray, key: np.ndarray,
                 counter: np.ndarray) -> np.ndarray:
    """Start ranks ``(B,)`` int64.

    table: ``(R, n)`` start cdfs (``start_cdf``, padded columns 1.0); rows: ``(B,)`` the table
    row of each environment; key, counter: ``(B,)`` uint64 stream positions (lane ``LANE_RESET``).
    """
    return search_cdf(table, rows, counter_uniform(key, counter, LANE_RESET))


def sample_next(table: np.ndarray, rows: np.ndarray, key: np.ndarray,
                counter: np.ndarray) -> np.ndarray:
    """Next ranks ``(B,)`` int64.

    table: ``(R, n)`` transition cdf rows (``transition_cdf(task).reshape(n * A, n)``, or several
    tasks' padded tables stacked); rows: ``(B,)`` the row ``s * A + a`` (plus the task's offset) of
    each environment's state and action; key, counter: ``(B,)`` uint64 (lane ``LANE_TRANSITION``).
    """
    return search_cdf(table, rows, counter_uniform(key, counter, LANE_TRANSITION))


def sample_reward(mean: np.ndarray, std: np.ndarray, key: np.ndarray,
                  counter: np.ndarray) -> np.ndarray:
    """Rewards ``(B,)`` float64: ``mean + std * N(0, 1)`` in float64.

    mean, std: ``(B,)`` float32 ``reward[s, a, s']`` and ``reward_noise[s, a, s']`` of each row's
    transition; key, counter: ``(B,)`` uint64 (the normal draw of ``counter_normal``).
    """
    z = counter_normal(key, counter)
    return mean.astype(np.float64) + std.astype(np.float64) * z


def episode_end(terminal_next: np.ndarray, steps: np.ndarray,
                max_steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(terminated, truncated)`` bool ``(B,)`` after a step.

    terminal_next: ``(B,)`` bool, whether the state just entered is terminal;
    steps: ``(B,)`` episode step counts *after* the step; max_steps: ``(B,)`` limits.
    """
    terminated = np.asarray(terminal_next, dtype=bool)
    truncated = (steps >= max_steps) & ~terminated
    return terminated, truncated
