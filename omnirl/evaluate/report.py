"""Score tables and learning-curve figures of evaluation runs (the paper's Table 1 layout).

``table_rows(results)`` turns ``{(environment, method): Episodes}`` into one row per pair: the
final performance (mean normalised score over the episodes that ended in the last quarter of the
run), the steps and episodes taken to reach 90% of it, the raw return, and the environment's
reference returns. ``write_table`` writes them as CSV and Markdown; ``plot_curves`` draws the
normalised score against steps in context, one panel per environment and one line per method.
Files are written to a temporary name and renamed.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from omnirl.evaluate.records import Episodes
from omnirl.fileio import atomic_write_bytes

COLUMNS = ("environment", "method", "performance", "gap_weighted", "steps_to_reach", "episodes_to_reach", "episodes",
           "raw_return", "random_return", "oracle_return", "exact_references")
"""Columns of the score table."""


def table_rows(results: Mapping[tuple[str, str], Episodes], target_fraction: float = 0.9) -> list[dict]:
    """One row per ``(environment, method)`` (see ``COLUMNS``), in the order of ``results``."""
    rows = []
    for (env, method), eps in results.items():
        s = eps.summary(target_fraction)
        info = eps.infos[0]
        rows.append({"environment": env, "method": method, "performance": s["performance"],
                     "gap_weighted": s["gap_weighted"],
                     "steps_to_reach": s["steps_to_reach"], "episodes_to_reach": s["episodes_to_reach"],
                     "episodes": int(s["episodes_total"]), "raw_return": s["raw_return"],
                     "random_return": float(np.mean([i.random_return for i in eps.infos])),
                     "oracle_return": float(np.mean([i.oracle_return for i in eps.infos])),
                     "exact_references": info.exact})
    return rows


def _fmt(x) -> str:
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return "–" if not math.isfinite(x) else f"{x:.3g}" if abs(x) < 1000 else f"{x:.0f}"
    return str(x)


def markdown(rows: list[dict], columns: Sequence[str] = COLUMNS) -> str:
    """The rows as a Markdown table of ``columns`` (default: the score table's)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(r[c]) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write_table(rows: list[dict], out_dir: str | Path, name: str = "scores",
                columns: Sequence[str] = COLUMNS) -> tuple[Path, Path]:
    """``out_dir/NAME.csv`` and ``out_dir/NAME.md`` of ``columns`` (default: the score table's);
    returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns))
    writer.writeheader()
    writer.writerows(rows)
    csv_path, md_path = out / f"{name}.csv", out / f"{name}.md"
    atomic_write_bytes(csv_path, buf.getvalue().encode())
    atomic_write_bytes(md_path, markdown(rows, columns).encode())
    return csv_path, md_path


def plot_curves(results: Mapping[tuple[str, str], Episodes], path: str | Path, bins: int = 16,
                title: str | None = None) -> Path:
    """Normalised score against steps in context, a panel per environment, a line per method;
    saved to ``path`` (PNG)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = list(dict.fromkeys(env for env, _ in results))
    cols = min(4, len(envs))
    rows = math.ceil(len(envs) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    for ax, env in zip(axes.flat, envs):
        for (e, method), eps in results.items():
            if e != env:
                continue
            x, y = eps.by_step(bins)
            ax.plot(x, y, marker="o", ms=3, label=method)
        ax.axhline(0.0, color="grey", lw=0.8, ls=":")
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")
        ax.set_title(env)
        ax.set_xlabel("steps in context")
        ax.set_ylabel("normalised score")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(envs):]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())
    return path


__all__ = ["COLUMNS", "table_rows", "markdown", "write_table", "plot_curves"]
