"""A gallery of AnyMDP tasks: transition kernels, stationary distributions and oracle values.

Tasks come from a stored task set (``find_task_sets`` / ``load_tasks``: the ``tasks/`` of a
dataset or of the AnyMDP showcase) or, when none is at hand, are sampled afresh
(``sample_tasks``: a few tasks, no training and no dataset). The pictures reuse
``omnirl.tasks.plots`` (kernels ordered by stationary probability, the paper's Figure 12;
stationary distributions of the random and the oracle policy, Figure 2) and add
``plot_oracle_values``: ``V*`` of the oracle and the value of the random policy against hidden
rank (AnyMDP values rise with rank). Figures are ``matplotlib.figure.Figure`` objects (Agg, no
pyplot), written only when ``path`` is given.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from omnirl.analysis.runs import resolve_path
from omnirl.tasks.plots import (GOAL_COLOUR, ORACLE_COLOUR, PITFALL_COLOUR, RANDOM_COLOUR, START_COLOUR,
                                plot_stationary_distributions, plot_transition_kernel)
from omnirl.tasks.task import MDPTask

TASKSET_FORMAT = "omnirl.taskset"


def find_task_sets(root: str | os.PathLike) -> list[Path]:
    """Task set directories (a ``manifest.json`` of format ``omnirl.taskset``) under ``root``
    (``root`` itself included), sorted."""
    import json

    base = resolve_path(root, "root")
    found = []
    for m in sorted(base.rglob("manifest.json")):
        try:
            if json.loads(m.read_text()).get("format") == TASKSET_FORMAT:
                found.append(m.parent)
        except (OSError, ValueError, AttributeError):
            continue
    return found


def load_tasks(task_dir: str | os.PathLike, n: int | None = None) -> list[MDPTask]:
    """The first ``n`` tasks (all with ``None``) of the task set at ``task_dir`` (checksums and
    content hash verified)."""
    from omnirl.tasks.taskset import TaskSet

    d = resolve_path(task_dir, "task_dir")
    if not (d / "manifest.json").is_file():
        raise FileNotFoundError(f"task_dir={str(task_dir)!r} is not a task set (no manifest.json)")
    if n is not None and (not isinstance(n, int) or n < 1):
        raise ValueError(f"n must be an integer >= 1 or None, got {n!r}")
    tasks = TaskSet.load(d)
    return list(tasks[: n if n is not None else len(tasks)])


def sample_tasks(sizes: Sequence[int] = (16, 32, 64), per_size: int = 1, n_actions: int = 5,
                 seed: int = 0) -> list[MDPTask]:
    """``per_size`` fresh AnyMDP tasks of every size in ``sizes`` (task ``i`` of size ``S`` from the
    stream ``(seed, S, i)``)."""
    from omnirl.tasks import sample_anymdp

    if isinstance(sizes, (int, str)) or not sizes:
        raise ValueError(f"sizes must be a non-empty sequence of state counts, got {sizes!r}")
    if not isinstance(per_size, int) or per_size < 1:
        raise ValueError(f"per_size must be an integer >= 1, got {per_size!r}")
    return [sample_anymdp(int(S), n_actions, seed=(seed, int(S), i)) for S in sizes for i in range(per_size)]


def _tasks(tasks: Any) -> list[MDPTask]:
    if isinstance(tasks, MDPTask):
        return [tasks]
    tasks = list(tasks) if isinstance(tasks, Iterable) and not isinstance(tasks, (str, bytes)) else None
    if not tasks or not all(isinstance(t, MDPTask) for t in tasks):
        raise ValueError("tasks must be a non-empty sequence of MDPTask (from load_tasks or sample_tasks)")
    return tasks


def _grid(n: int, cols: int, panel: tuple[float, float]) -> tuple[Figure, list]:
    if not isinstance(cols, int) or cols < 1:
        raise ValueError(f"cols must be an integer >= 1, got {cols!r}")
    cols = min(cols, n)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(panel[0] * cols, panel[1] * rows))
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _save(fig: Figure, path: str | os.PathLike | None) -> None:
    if path is not None:
        from omnirl.tasks.plots import save_figure

        save_figure(fig, Path(path))


def plot_kernels(tasks: Sequence[MDPTask], policy: str = "random", gamma: float = 0.994, cols: int = 3,
                 path: str | os.PathLike | None = None) -> Figure:
    """The state-to-state kernel of ``policy`` (``random`` or ``oracle``) of every task, states
    sorted by decreasing stationary probability, start / goal / pitfall states marked."""
    tasks = _tasks(tasks)
    fig, axes = _grid(len(tasks), cols, (6.4, 6.2))
    for ax, t in zip(axes, tasks):
        before = set(fig.axes)
        plot_transition_kernel(t, ax=ax, policy=policy, gamma=gamma)
        ax.get_legend().set_visible(ax is axes[-1])
        for extra in set(fig.axes) - before:  # the long title sits on the kernel's top strip
            if extra.get_title():
                extra.set_title(f"S={t.n_obs} (n={t.n_states}), {policy} policy, seed {t.seed}", fontsize="small")
    fig.subplots_adjust(wspace=0.55, hspace=0.35)
    _save(fig, path)
    return fig


def plot_stationary(tasks: Sequence[MDPTask] | Mapping[str, Sequence[MDPTask]], gamma: float = 0.994,
                    order: str = "sd", path: str | os.PathLike | None = None) -> Figure:
    """Stationary distributions of the random and the oracle policy (median and 10-90% band over
    tasks); a mapping ``{label: tasks}`` overlays several groups (e.g. sizes) on one axes."""
    groups = dict(tasks) if isinstance(tasks, Mapping) else {None: tasks}
    fig = None
    ax = None
    for label, ts in groups.items():
        fig = plot_stationary_distributions(_tasks(ts), ax=ax, gamma=gamma, label=label, order=order,
                                            normalise=True if len(groups) > 1 else None)
        ax = fig.axes[0]
    fig.set_size_inches(7.2, 5.2)
    fig.set_layout_engine("constrained")
    _save(fig, path)
    return fig


def task_values(task: MDPTask, gamma: float = 0.994) -> dict[str, np.ndarray]:
    """``rank`` ``(n,)``, the oracle's ``V*`` and the random policy's values at ``gamma``, and the
    state kinds (``terminal``, ``start``, ``pitfall``, ``goal`` as ``(n,)`` bools), in hidden-rank
    order."""
    from omnirl.tasks import random_values, solve

    if not isinstance(task, MDPTask):
        raise ValueError(f"task must be an MDPTask, got {type(task).__name__}")
    n = task.n_states
    kinds = {k: np.zeros(n, dtype=bool) for k in ("start", "pitfall", "goal")}
    kinds["start"][list(task.start_states)] = True
    kinds["pitfall"][list(task.pitfalls)] = True
    if task.goal is not None:
        kinds["goal"][task.goal] = True
    return {"rank": np.arange(n), "oracle": solve(task, gamma).v, "random": random_values(task, gamma),
            "terminal": np.asarray(task.terminal, dtype=bool), **kinds}


def plot_oracle_values(tasks: Sequence[MDPTask], gamma: float = 0.994, cols: int = 3,
                       path: str | os.PathLike | None = None) -> Figure:
    """For every task, the oracle's ``V*`` and the random policy's value against hidden rank
    (non-terminal states as lines; start states, the goal and pitfalls marked)."""
    tasks = _tasks(tasks)
    fig, axes = _grid(len(tasks), cols, (4.6, 3.4))
    for i, (ax, t) in enumerate(zip(axes, tasks)):
        v = task_values(t, gamma)
        live = ~v["terminal"]
        r = v["rank"]
        ax.plot(r[live], v["oracle"][live], color=ORACLE_COLOUR, lw=1.6, label="oracle $V^*$")
        ax.plot(r[live], v["random"][live], color=RANDOM_COLOUR, lw=1.6, label="random policy $V$")
        for kind, colour, marker in (("start", START_COLOUR, "o"), ("goal", GOAL_COLOUR, "*"),
                                     ("pitfall", PITFALL_COLOUR, "x")):
            m = v[kind]
            if m.any():
                ax.scatter(r[m], v["oracle"][m] if kind == "start" else np.full(m.sum(), v["oracle"][live].min()),
                           color=colour, marker=marker, s=36, zorder=3, label=kind)
        ax.set_title(f"S={t.n_obs} (n={t.n_states}), seed {t.seed}", fontsize="small")
        ax.set_xlabel("hidden rank")
        if i % min(cols, len(tasks)) == 0:
            ax.set_ylabel(f"value (γ={gamma:g})")
        ax.grid(True, color="#e4e4e4", lw=0.6)
    axes[0].legend(fontsize="x-small", frameon=False)
    fig.suptitle("Oracle and random-policy values against hidden rank (terminal states marked at the bottom)")
    fig.set_layout_engine("constrained")
    _save(fig, path)
    return fig


def task_table(tasks: Sequence[MDPTask], gamma: float = 0.994) -> list[dict[str, Any]]:
    """One row of measured properties per task (``omnirl.tasks.stats.task_properties``)."""
    from omnirl.tasks.stats import task_properties

    return [task_properties(t, gamma) for t in _tasks(tasks)]


__all__ = ["find_task_sets", "load_tasks", "sample_tasks", "plot_kernels", "plot_stationary", "task_values",
           "plot_oracle_values", "task_table"]
