"""Episode records: what every evaluation run (the model's protocols and the baselines) yields.

``EpisodeRecorder`` is fed each batched ``StepResult`` and keeps one record per finished episode
(row, episode index in the row, the step at which it ended, its length, raw and shaped return,
normalised score). ``Episodes`` holds them as columns, with the summaries of the paper's Table 1:
the final performance, and the steps and episodes a run took to reach it.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from omnirl.evaluate.envs.base import EnvInfo, StepResult

COLUMNS = ("row", "episode", "end_step", "length", "raw_return", "shaped_return", "score")
"""Columns of ``Episodes``: row of the batch, episode index within the row, step of the run at which
the episode ended (counted from 1: the number of environment steps the row had taken), length in
steps, raw and shaped returns, normalised score (NaN when the row's references are unknown)."""


@dataclasses.dataclass(frozen=True)
class Episodes:
    """Finished episodes of one run, as equal-length columns (see ``COLUMNS``), plus the rows'
    ``infos`` and the run length ``steps`` (environment steps per row)."""

    row: np.ndarray
    episode: np.ndarray
    end_step: np.ndarray
    length: np.ndarray
    raw_return: np.ndarray
    shaped_return: np.ndarray
    score: np.ndarray
    infos: tuple[EnvInfo, ...]
    steps: int

    def __len__(self) -> int:
        return int(self.row.size)

    def columns(self) -> dict[str, np.ndarray]:
        """The columns by name."""
        return {c: getattr(self, c) for c in COLUMNS}

    def select(self, mask: np.ndarray) -> "Episodes":
        """The episodes where ``mask`` (bool, one per episode) holds."""
        return dataclasses.replace(self, **{c: getattr(self, c)[mask] for c in COLUMNS})

    def by_episode(self, value: str = "score", max_episodes: int | None = None) -> np.ndarray:
        """Mean of ``value`` over rows for each episode index: ``(E,)`` (NaN where no row has that
        many episodes; ``E`` = the most episodes any row finished, or ``max_episodes``)."""
        E = int(self.episode.max()) + 1 if len(self) else 0
        E = E if max_episodes is None else min(E, max_episodes)
        keep = self.episode < E
        sums = np.bincount(self.episode[keep], weights=getattr(self, value)[keep], minlength=E)
        counts = np.bincount(self.episode[keep], minlength=E)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)

    def by_step(self, bins: int, value: str = "score") -> tuple[np.ndarray, np.ndarray]:
        """``(bin centres (bins,), mean value (bins,))`` of episodes binned by the step at which
        they ended (equal bins over ``[0, steps]``; NaN for empty bins): the learning curve
        against steps in context."""
        edges = np.linspace(0, self.steps, bins + 1)
        idx = np.clip(np.searchsorted(edges, self.end_step, side="left") - 1, 0, bins - 1)
        x = getattr(self, value)
        sums = np.bincount(idx, weights=x, minlength=bins)
        counts = np.bincount(idx, minlength=bins)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (edges[:-1] + edges[1:]) / 2, np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)

    def final(self, value: str = "score", fraction: float = 0.25) -> float:
        """The run's performance: mean of ``value`` over the episodes that ended in the last
        ``fraction`` of the run, averaged within each row first, then over rows (each task counts
        once, however many episodes it finished); NaN if no episode ended there."""
        late = self.end_step > (1.0 - fraction) * self.steps
        if not late.any():
            return float("nan")
        rows = self.row[late]
        x = getattr(self, value)[late]
        sums, counts = np.bincount(rows, weights=x), np.bincount(rows)
        return float(np.mean(sums[counts > 0] / counts[counts > 0]))

    def final_gap_weighted(self, fraction: float = 0.25) -> float:
        """``sum(R - R_random) / sum(R_oracle - R_random)`` over the episodes that ended in the last
        ``fraction`` of the run: a score that tasks with nearly equal references cannot dominate."""
        late = self.end_step > (1.0 - fraction) * self.steps
        rnd = np.array([i.random_return for i in self.infos])[self.row[late]]
        opt = np.array([i.oracle_return for i in self.infos])[self.row[late]]
        span = float(np.sum(opt - rnd))
        if not late.any() or not np.isfinite(span) or abs(span) < 1e-12:
            return float("nan")
        return float(np.sum(self.raw_return[late] - rnd) / span)

    def to_reach(self, target: float, value: str = "score", window: int = 10) -> tuple[float, float]:
        """``(steps, episodes)`` until the per-episode mean of ``value`` (``by_episode``), smoothed
        over ``window`` episodes, first reaches ``target``: the episode index (counted from 1) and the
        mean end step of that episode across rows. ``(nan, nan)`` if it never does."""
        curve = self.by_episode(value)
        if curve.size == 0:
            return float("nan"), float("nan")
        w = max(1, min(window, curve.size))
        smooth = np.convolve(np.nan_to_num(curve, nan=-np.inf), np.ones(w) / w, mode="valid")
        hit = np.flatnonzero(smooth >= target)
        if hit.size == 0:
            return float("nan"), float("nan")
        e = int(hit[0]) + w - 1  # the last episode of the first window that reaches the target
        return float(np.mean(self.end_step[self.episode == e])), float(e + 1)

    def summary(self, target_fraction: float = 0.9, value: str = "score") -> dict[str, float]:
        """Table-1 columns: ``performance`` (``final``), ``gap_weighted`` (``final_gap_weighted``),
        ``steps`` and ``episodes`` to reach ``target_fraction`` of the performance (``to_reach``),
        ``episodes_total``, and the mean raw return of the last quarter."""
        perf = self.final(value)
        steps, episodes = self.to_reach(target_fraction * perf, value) if np.isfinite(perf) else (np.nan, np.nan)
        return {"performance": perf, "gap_weighted": self.final_gap_weighted(), "steps_to_reach": steps,
                "episodes_to_reach": episodes, "episodes_total": float(len(self)),
                "raw_return": self.final("raw_return")}


class EpisodeRecorder:
    """Accumulates the episodes of a batched run: call ``record(result)`` after every step."""

    def __init__(self, infos: Sequence[EnvInfo]) -> None:
        self.infos = tuple(infos)
        B = len(self.infos)
        self._raw = np.zeros(B)
        self._shaped = np.zeros(B)
        self._length = np.zeros(B, dtype=np.int64)
        self._episode = np.zeros(B, dtype=np.int64)
        self._steps = 0
        self._done: list[tuple[np.ndarray, ...]] = []

    def record(self, result: StepResult) -> None:
        """Add one step of every row; rows where the episode ended close an episode."""
        self._steps += 1
        self._raw += result.raw_reward
        self._shaped += result.reward
        self._length += 1
        done = np.flatnonzero(result.terminated | result.truncated)
        if done.size:
            self._done.append((done, self._episode[done].copy(), np.full(done.size, self._steps),
                               self._length[done].copy(), self._raw[done].copy(), self._shaped[done].copy()))
            self._episode[done] += 1
            self._raw[done] = self._shaped[done] = 0.0
            self._length[done] = 0

    def episodes(self) -> Episodes:
        """The finished episodes so far (unfinished ones are left out)."""
        parts = list(zip(*self._done)) if self._done else [[np.zeros(0, np.int64)]] * 6
        row, episode, end_step, length, raw, shaped = (np.concatenate(p) for p in parts)
        score = np.full(row.size, np.nan)
        for r in np.unique(row):
            m = row == r
            score[m] = self.infos[int(r)].score(raw[m])
        return Episodes(row=row.astype(np.int64), episode=episode.astype(np.int64),
                        end_step=end_step.astype(np.int64), length=length.astype(np.int64),
                        raw_return=raw.astype(np.float64), shaped_return=shaped.astype(np.float64),
                        score=score, infos=self.infos, steps=self._steps)


__all__ = ["COLUMNS", "Episodes", "EpisodeRecorder"]
