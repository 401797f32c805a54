"""Array building blocks shared by the tabular learners (Q-learning, model-based) and the mixture.

Tables are ``(B, S, A)`` (``S`` observed ids, ``A`` actions); a row's visited cell is addressed
through the flat index ``cell = (b * S + s) * A + a``, so every per-step update is one gather and
one scatter over ``B`` entries, with no loop over rows.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from omnirl.tasks import MDPTask


def horizons(tasks: Sequence[MDPTask]) -> np.ndarray:
    """``(k,)`` ``log(H + 1)`` of each task's episode limit ``H`` (the bonus' log factor)."""
    return np.log(np.array([t.max_steps for t in tasks], dtype=np.float64) + 1.0)


def rowmax(x: np.ndarray) -> np.ndarray:
    """``x.max(axis=-1)`` for a short last axis (the actions), as a few elementwise maxima: numpy's
    reduction over a short trailing axis is several times slower."""
    m = x[..., 0].copy()
    for j in range(1, x.shape[-1]):
        np.maximum(m, x[..., j], out=m)
    return m


UNVISITED = 1e9
"""Score of an unvisited action (plus a standard normal, for a random order among them)."""


def bonus_actions(q: np.ndarray, n: np.ndarray, coef: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Optimistic-sampling actions of ``k`` rows.

    q, n, z: ``(k, A)`` values, visit counts and standard normals; coef: ``(k,)`` the bonus
    scale ``c / (1 - gamma) * sqrt(log(H + 1))``. Returns ``argmax_a q + coef * max(z, 0) /
    sqrt(n)``; a state with unvisited actions picks one of them uniformly at random (by ``z``):
    they score ``UNVISITED + z``, above any value a learner reaches.
    """
    score = q + np.maximum(z, 0.0) * coef[:, None] / np.sqrt(np.maximum(n, 1.0))
    score = np.where(n == 0, UNVISITED + z, score)
    return np.argmax(score, axis=1)


def bonus_coef(c: np.ndarray, gamma: np.ndarray, log_h: np.ndarray) -> np.ndarray:
    """``c / (1 - gamma) * sqrt(log(H + 1))``, the scale of the exploration bonus."""
    return c / (1.0 - gamma) * np.sqrt(log_h)


class CountModel:
    """Visit counts ``n (B, S, A)`` and, if ``full``, the empirical model of the transitions:
    next-state counts ``N (B, S, A, S)`` float32, reward sums ``rsum (B, S, A)`` and the
    observed ids seen to be terminal ``term (B, S)``."""

    def __init__(self, B: int, S: int, A: int, full: bool) -> None:
        self.B, self.S, self.A, self.full = B, S, A, full
        self.n = np.zeros((B, S, A), dtype=np.float32)
        self._base = np.arange(B, dtype=np.int64) * S  # (B,) b * S
        if full:
            self.N = np.zeros((B, S, A, S), dtype=np.float32)
            self.rsum = np.zeros((B, S, A), dtype=np.float64)
            self.term = np.zeros((B, S), dtype=bool)

    def reset(self, rows: np.ndarray) -> None:
        """Forget everything in ``rows``."""
        self.n[rows] = 0.0
        if self.full:
            self.N[rows] = 0.0
            self.rsum[rows] = 0.0
            self.term[rows] = False

    def cells(self, s: np.ndarray, a: np.ndarray) -> np.ndarray:
        """``(B,)`` flat ``(B*S*A)`` index of each row's ``(s, a)``."""
        return (self._base + s) * self.A + a

    def update(self, cell: np.ndarray, r: np.ndarray, s2: np.ndarray, terminated: np.ndarray) -> None:
        """Count each row's transition ``cell -> s2`` with reward ``r`` (all ``(B,)``)."""
        self.n.reshape(-1)[cell] += 1.0
        if self.full:
            self.N.reshape(-1)[cell * self.S + s2] += 1.0
            self.rsum.reshape(-1)[cell] += r
            self.term.reshape(-1)[self._base + s2] |= terminated
