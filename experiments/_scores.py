"""What the experiments read from an evaluation's episodes, and how they compare two numbers.

``episode_scores`` turns one (environment, method) of an ``omnirl.evaluate`` run directory into the
per-task numbers every experiment reports (``immediate_scores`` the same numbers for an environment
measured as a contextual bandit; ``online_scores`` picks one); ``differs`` and ``trend`` say whether a difference is
resolved (``RESOLVE`` standard errors); ``pm`` prints a number with its standard error.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

RESOLVE = 2.0
"""Standard errors of a difference for it to count as resolved."""
CONTEXT_DROP = 0.05
"""Nats: a validation loss improves with context if its last-quarter mean is this much below both
its first-quarter mean and the uniform guess ``ln A`` (``context_improves``)."""
MIN_GAIN = 0.7
"""Least share of the Bayes-optimal reference's drop on the probe (the gain), and of the way from
uniform to the reference in the last quarter, for the model to learn from rewards like it
(``probe_claims``)."""


def finite(x: Any) -> bool:
    """``x`` is a real, finite number (not a bool, not ``None``)."""
    return isinstance(x, (int, float, np.floating, np.integer)) and not isinstance(x, bool) and math.isfinite(x)


def _mean_se(x: np.ndarray) -> tuple[float, float]:
    x = x[np.isfinite(x)]
    if x.size == 0:
        return math.nan, math.nan
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else math.nan


def episode_scores(eval_dir: Path, env: str, method: str, n_rows: int | None = None, *, steps: int | None = None,
                   bins: int = 8) -> dict[str, Any]:
    """Per-task numbers of one (environment ``env``, ``method``) of the evaluation in ``eval_dir``
    (its ``episodes.npz``; ``summary.json`` for the acting steps and the gap-weighted score):

    * ``performance``: mean normalised score (0 random, 1 oracle) of the episodes that ended in the
      last quarter of the steps, per task then over tasks (the evaluation table's number); ``se``
      its standard error over tasks; ``median`` over tasks; ``per_task`` each task's value (NaN for
      a task without such an episode); ``tasks`` the tasks that have one; ``episodes`` all episodes;
    * ``first_quarter`` and ``first_quarter_se``: the same over the first quarter;
    * ``curve_steps`` and ``curve``: mean score of the episodes ending in each of ``bins`` equal
      bins of the steps (the learning curve);
    * ``raw_early`` and ``raw_late``: mean raw return of episodes 0-19 and of the last 20 of at
      most 200 episodes per task (the columns of the paper's Table 2), with ``late_window`` the
      median over tasks of that window's end;
    * ``gap_weighted``: the evaluation table's ``sum(R - R_random) / sum(R_oracle - R_random)``
      (NaN without ``summary.json``).

    ``n_rows``: rows of the run (default: up to the last row that finished an episode); ``steps``:
    acting steps per row (default: the evaluation's ``summary.json``)."""
    eval_dir = Path(eval_dir)
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    summary_file = eval_dir / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else None
    if steps is None:
        if summary is None:
            raise ValueError(f"steps: not given and {summary_file} does not exist to read it from")
        steps = int(summary["config"]["run"]["steps"])
    with np.load(eval_dir / "episodes.npz") as z:
        keys = [k for k in z.files if k.startswith(f"{env}/{method}/")]
        if not keys:
            raise ValueError(f"env/method: {env}/{method} is not in {eval_dir / 'episodes.npz'}")
        cols = {k.rsplit("/", 1)[1]: z[k] for k in keys}
    row, end, score = cols["row"], cols["end_step"], cols["score"]
    n_rows = n_rows if n_rows is not None else int(row.max()) + 1 if row.size else 0

    def per_row(mask: np.ndarray, values: np.ndarray) -> np.ndarray:
        sums = np.bincount(row[mask], weights=values[mask], minlength=n_rows)
        counts = np.bincount(row[mask], minlength=n_rows)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)

    ok = np.isfinite(score)
    late = per_row((end > 0.75 * steps) & ok, score)  # (n_rows,)
    early = per_row((end <= 0.25 * steps) & ok, score)  # (n_rows,)
    perf, se = _mean_se(late)
    first, first_se = _mean_se(early)
    edges = np.linspace(0, steps, bins + 1)
    idx = np.clip(np.searchsorted(edges, end, side="left") - 1, 0, bins - 1)
    curve = [float(score[(idx == b) & ok].mean()) if ((idx == b) & ok).any() else math.nan for b in range(bins)]
    out: dict[str, Any] = {
        "performance": perf, "se": se, "median": float(np.nanmedian(late)) if np.isfinite(late).any() else math.nan,
        "first_quarter": first, "first_quarter_se": first_se, "per_task": late.tolist(),
        "tasks": int(np.isfinite(late).sum()), "episodes": int(row.size),
        "curve_steps": ((edges[:-1] + edges[1:]) / 2).tolist(), "curve": curve,
        "raw_early": math.nan, "raw_late": math.nan, "late_window": 0, "gap_weighted": math.nan}
    if "episode" in cols and "raw_return" in cols:
        episode, raw = cols["episode"], cols["raw_return"]
        n_eps = np.bincount(row, minlength=n_rows)  # (n_rows,) episodes finished per task
        window_end = np.minimum(n_eps, 200)[row]  # each episode's task's window end
        raw_early = per_row(episode < 20, raw)
        raw_late = per_row((episode < window_end) & (episode >= window_end - 20), raw)
        out.update(raw_early=float(np.nanmean(raw_early)) if np.isfinite(raw_early).any() else math.nan,
                   raw_late=float(np.nanmean(raw_late)) if np.isfinite(raw_late).any() else math.nan,
                   late_window=int(np.median(np.minimum(n_eps, 200))) if n_eps.size else 0)
    if summary is not None:
        out["gap_weighted"] = next((float(r["gap_weighted"]) for r in summary["rows"]
                                    if r["environment"] == env and r["method"] == method
                                    and r["gap_weighted"] is not None), math.nan)
    return out


def immediate_scores(eval_dir: Path, env: str, method: str, n_rows: int | None = None, *,
                     bins: int = 8) -> dict[str, Any]:
    """``episode_scores``' online numbers for an environment measured as a contextual bandit (an
    evaluation with ``run.contextual_bandit``; its ``regret.npz``): each task's score over a span
    of steps is ``1 - sum(regret) / sum(gap)`` there (0 uniform random, 1 the best immediate
    action in every state; ``omnirl.evaluate.regret``). ``performance``, ``se``, ``median``,
    ``per_task`` and ``tasks``: the last quarter of the steps; ``first_quarter`` and
    ``first_quarter_se``: the first; ``curve``: each of ``bins`` equal bins (mean over tasks);
    ``gap_weighted``: the last quarter's over all tasks together."""
    eval_dir = Path(eval_dir)
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    with np.load(eval_dir / "regret.npz") as z:
        if f"{env}/{method}" not in z.files:
            raise ValueError(f"env/method: {env}/{method} is not in {eval_dir / 'regret.npz'}")
        regret = z[f"{env}/{method}"].astype(np.float64)  # (B, T)
        gap_key = f"{env}/{method}/gap"
        gap = z[gap_key].astype(np.float64) if gap_key in z.files else \
            np.repeat(z[f"{env}/gap"].astype(np.float64)[:, None], regret.shape[1], axis=1)  # (B, T)
    if n_rows is not None:
        regret, gap = regret[:n_rows], gap[:n_rows]
    T = regret.shape[1]

    def span(lo: int, hi: int) -> np.ndarray:  # (B,) each task's score over steps [lo, hi)
        g = gap[:, lo:hi].sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(g > 0, 1.0 - regret[:, lo:hi].sum(axis=1) / g, np.nan)

    q4 = int(np.ceil(0.75 * T))
    late, early = span(q4, T), span(0, T // 4)
    g4 = gap[:, q4:].sum()
    gap_weighted = float(1.0 - regret[:, q4:].sum() / g4) if g4 > 0 else math.nan
    perf, se = _mean_se(late)
    first, first_se = _mean_se(early)
    edges = np.linspace(0, T, bins + 1).round().astype(int)
    curve = [float(np.nanmean(c)) if np.isfinite(c).any() else math.nan
             for c in (span(a, b) for a, b in zip(edges[:-1], edges[1:]))]
    return {"performance": perf, "se": se, "median": float(np.nanmedian(late)) if np.isfinite(late).any() else math.nan,
            "first_quarter": first, "first_quarter_se": first_se, "per_task": late.tolist(),
            "tasks": int(np.isfinite(late).sum()), "curve_steps": ((edges[:-1] + edges[1:]) / 2).tolist(),
            "curve": curve, "gap_weighted": gap_weighted}


def online_scores(eval_dir: Path, env: str, method: str, n_rows: int | None = None, *, contextual: bool = False,
                  bins: int = 8) -> dict[str, Any]:
    """A method's online numbers: ``immediate_scores`` when the environment is measured as a
    contextual bandit (``contextual``, a ``Rung``'s), else ``episode_scores``."""
    if contextual:
        return immediate_scores(eval_dir, env, method, n_rows, bins=bins)
    return episode_scores(eval_dir, env, method, n_rows, bins=bins)


def probe_numbers(history: Sequence[Mapping[str, Any]], name: str, actions: int) -> dict[str, float]:
    """Validation set ``name``'s numbers at the last validation of ``history`` (a training run's):
    the model's and the Bayes-optimal reference's first- and last-quarter policy losses, the gain
    (the model's drop over the reference's), ``share_q4`` (how far the model's last quarter is from
    uniform, ``ln actions``, towards the reference's) and both whole-window losses; NaN where missing."""
    last = history[-1] if history else {}
    get = lambda k: last.get(f"val/{name}/{k}", math.nan)  # noqa: E731
    q4, r4 = get("policy_loss_last_quarter"), get("reference_policy_loss_last_quarter")
    uniform = math.log(actions)
    return {"model_q1": get("policy_loss_first_quarter"), "model_q4": q4,
            "reference_q1": get("reference_policy_loss_first_quarter"), "reference_q4": r4, "gain": get("gain"),
            "share_q4": (uniform - q4) / (uniform - r4) if finite(q4) and finite(r4) and uniform > r4 else math.nan,
            "model_loss": get("policy_loss"), "reference_loss": get("reference_policy_loss")}


def probe_claims(probe: Mapping[str, float], actions: int) -> dict[str, bool]:
    """What a probe's numbers (``probe_numbers``) show: its loss falls below uniform with context
    (``CONTEXT_DROP``), and the gain and the last-quarter share reach ``MIN_GAIN``."""
    return {"probe_below_uniform": context_improves(probe["model_q1"], probe["model_q4"], uniform=math.log(actions),
                                                    drop=CONTEXT_DROP),
            "gain_reached": bool(finite(probe["gain"]) and probe["gain"] >= MIN_GAIN),
            "share_reached": bool(finite(probe["share_q4"]) and probe["share_q4"] >= MIN_GAIN)}


def context_improves(q1: Any, q4: Any, *, uniform: float, drop: float) -> bool:
    """A validation loss improves with context: its last-quarter mean ``q4`` is ``drop`` nats below
    both its first-quarter mean ``q1`` and the uniform guess ``uniform`` (``ln A``): a fall from
    above the uniform guess to it is a model learning to be unsure, not learning from its context."""
    return bool(finite(q1) and finite(q4) and q1 - q4 > drop and uniform - q4 > drop)


def paired_se(a: Sequence[float], b: Sequence[float]) -> float:
    """Standard error of the mean of ``a - b`` over the tasks where both are finite."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    d = d[np.isfinite(d)]
    return float(np.std(d, ddof=1) / np.sqrt(d.size)) if d.size > 1 else math.nan


def differs(a: Mapping[str, float], b: Mapping[str, float], key: str = "performance") -> int:
    """+1 if ``a[key]`` is resolved above ``b[key]``, -1 if below, 0 if not resolved
    (``RESOLVE`` standard errors of the difference; ``se`` or ``KEY_se``)."""
    se_key = "se" if key == "performance" else f"{key}_se"
    d = a[key] - b[key]
    se = math.sqrt((a.get(se_key) or 0.0) ** 2 + (b.get(se_key) or 0.0) ** 2)
    if not math.isfinite(d):
        return 0
    if not math.isfinite(se) or abs(d) <= RESOLVE * se:
        return 0
    return 1 if d > 0 else -1


def trend(sc: Mapping[str, float]) -> tuple[dict, dict]:
    """The last-quarter and first-quarter scores of ``sc`` as ``differs`` arguments (positive:
    the score rose within the run)."""
    return ({"performance": sc["performance"], "se": sc["se"]},
            {"performance": sc["first_quarter"], "se": sc["first_quarter_se"]})


def pm(x: float | None, se: float | None) -> str:
    """``x±se`` with two decimals (``x`` alone when ``se`` is unknown, ``-`` when ``x`` is)."""
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:.2f}" if se is None or not math.isfinite(se) else f"{x:.2f}±{se:.2f}"


__all__ = ["RESOLVE", "finite", "probe_numbers", "context_improves", "episode_scores", "immediate_scores", "online_scores",
           "paired_se", "differs", "trend", "pm"]
