"""Per-row random streams for batched agents.

Row ``b`` draws its ``k``-th numbers as a hash of ``(key_b, k, lane)`` (``omnirl.tasks.rng``), so an
agent acting for B rows at once gives every row the numbers it would get alone: results depend on
a row's seed only, never on the batch or the worker that ran it. Each agent component uses its
own lanes (``LANES``), and ``advance`` moves every row to its next step.

The numbers are exactly ``counter_uniform(key_b, counter_b, lane)``; this class only evaluates
the hash faster: the counter-independent first mixing round of each (row, lane) is cached, and
several lanes (or a subset of rows) are hashed in one broadcast call.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from omnirl.tasks.rng import _GOLDEN, _LANE, _splitmix, seed_to_key

LANES = {
    # behaviour mixture
    "mask_sequence": 21, "mask_episode": 22,
    # 2 lanes each: at an episode end (redraw test, new component); at reset (first component,
    # whether the sequence redraws at all)
    "mix_resample": 24, "mix_initial": 26,
    # per step of a mixture, 3 lanes: the noise test, the oracle test and the noise action
    "mix_step": 72,
    # bandit mixture: the component at reset; per step the exploration test, the uniform arm and the
    # arm drawn from the posterior (3 lanes)
    "bandit_initial": 30, "bandit_step": 76,
    # per-sequence parameter draws (lane + parameter index); each block holds up to 64 lanes
    "params": 128, "random_params": 192, "q_params": 256, "mb_params": 320,
    "bandit_params": 384,
    # per-step draws of one number per action (normals take 2 lanes per action): blocks of 256
    "random_action": 4096, "random_drift": 4352, "q_bonus": 4608, "mb_bonus": 4864,
    "bandit_ties": 5120, "bandit_normal": 5376,
    # the initial logits of the random policy (2 lanes per (state, action) cell)
    "random_logits": 1 << 16,
    # the Monte Carlo draws of the bandit posterior (``omnirl.agents.bandit``, ``posterior``): a few
    # thousand lanes per step, above every block before
    "bandit_posterior": 1 << 40,
}
"""Lane of each use of randomness (distinct, so no two uses share numbers)."""

_SCALE = 1.0 / 9007199254740992.0  # 2**-53


class RowStreams:
    """``B`` independent counter-based streams; ``uniform``/``normal`` return ``(B,)`` (or ``(B, k)``).

    Every draw accepts ``rows`` (an index array) to draw for those rows only, giving them the
    same numbers as a full draw would.
    """

    def __init__(self, seeds: Sequence) -> None:
        self.key = np.array([seed_to_key(s) for s in seeds], dtype=np.uint64)  # (B,)
        self.counter = np.zeros(len(self.key), dtype=np.uint64)  # (B,)
        self._mixed: dict[tuple[int, int], np.ndarray] = {}  # (lane, k) -> (B, k) first round

    @property
    def n(self) -> int:
        return len(self.key)

    def reset(self, rows: np.ndarray, seeds: Sequence) -> None:
        """Re-seed ``rows`` (a new sequence) and rewind their counters."""
        rows = np.asarray(rows, dtype=np.int64)
        self.key[rows] = np.array([seed_to_key(s) for s in seeds], dtype=np.uint64)
        self.counter[rows] = 0
        for (lane, k), mixed in self._mixed.items():
            mixed[rows] = self._first_round(self.key[rows], lane, k)

    def advance(self) -> None:
        """Move every row to its next step."""
        self.counter += np.uint64(1)

    @staticmethod
    def _first_round(key: np.ndarray, lane: int, k: int) -> np.ndarray:
        lanes = np.arange(lane + 1, lane + 1 + k, dtype=np.uint64)  # (k,)
        with np.errstate(over="ignore"):
            return _splitmix(key[:, None] ^ (lanes * _LANE))  # (B, k)

    def _bits(self, lane: int, k: int, rows: np.ndarray | None) -> np.ndarray:
        """``(B or len(rows), k)`` float64 uniforms of lanes ``lane .. lane + k - 1``."""
        mixed = self._mixed.get((lane, k))
        if mixed is None:
            if k > 64:  # large one-off draws (e.g. the random policy's logits at reset): no cache
                key = self.key if rows is None else self.key[rows]
                mixed_rows = self._first_round(key, lane, k)
            else:
                mixed = self._mixed[(lane, k)] = self._first_round(self.key, lane, k)
        if mixed is not None:
            mixed_rows = mixed if rows is None else mixed[rows]
        ctr = self.counter if rows is None else self.counter[rows]
        with np.errstate(over="ignore"):
            x = _splitmix(mixed_rows + ((ctr + np.uint64(1)) * _GOLDEN)[:, None])
        return (x >> np.uint64(11)).astype(np.float64) * _SCALE

    def uniform(self, lane: int, k: int | None = None, rows: np.ndarray | None = None) -> np.ndarray:
        """Uniforms in [0, 1): ``(B,)``, or ``(B, k)`` from ``k`` consecutive lanes."""
        u = self._bits(lane, 1 if k is None else k, rows)
        return u[:, 0] if k is None else u

    def normal(self, lane: int, k: int | None = None, rows: np.ndarray | None = None) -> np.ndarray:
        """Standard normals: ``(B,)``, or ``(B, k)`` from ``2 * ceil(k / 2)`` consecutive lanes.

        Box-Muller: lanes ``lane .. lane + m - 1`` give the radii and the next ``m`` lanes the
        angles of ``m = ceil(k / 2)`` pairs, each pair yielding two normals (cosine and sine).
        """
        kk = 1 if k is None else k
        m = (kk + 1) // 2
        u = self._bits(lane, 2 * m, rows)
        radius = np.sqrt(-2.0 * np.log1p(-u[:, :m]))
        # the angle's cosine and sine in float32 (vectorised, ~10x faster than float64; ~1e-7
        # relative error)
        angle = (2.0 * np.pi * u[:, m:]).astype(np.float32)
        z = np.empty((u.shape[0], 2 * m))
        np.multiply(radius, np.cos(angle), out=z[:, :m])
        np.multiply(radius, np.sin(angle), out=z[:, m:])
        return z[:, 0] if k is None else z[:, :kk]

    def exponential(self, lane: int, mean, rows: np.ndarray | None = None) -> np.ndarray:
        """``(B,)`` exponential draws with the given mean (scalar or per row)."""
        return -np.log1p(-self.uniform(lane, rows=rows)) * mean
