"""Loss curves of training runs: against position in the context and against training iteration.

The paper's Figure 7 (loss against position and against iteration for each number of training
tasks, on seen and on unseen tasks) and the architecture comparison, drawn from ``TrainingRun``
objects (``omnirl.analysis.runs.read_training_run`` / ``training_runs``). Every function draws on a
fresh ``matplotlib.figure.Figure`` (Agg canvas, no pyplot state) and returns it; nothing is written
unless ``path`` is given.

Conventions: one colour per run, ordered by ``colour_by`` (``n_tasks``: a sequential map from few to
many tasks; ``backbone`` or ``name``: one categorical colour each); validation set ``seen`` solid,
``unseen`` dashed (others dotted); ``split`` panels separate the behaviours that acted in the
validation sequences (``random`` and ``oracle`` by default). Loss-against-position plots of all
steps draw the Bayes-optimal reference's curve (thin, black) where the runs logged it.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from omnirl.analysis.runs import TrainingRun

SET_STYLES = {"seen": "-", "unseen": "--"}
"""Line style of each validation set (others: dotted)."""
REFERENCE_COLOUR = "black"
"""Colour of the Bayes-optimal reference's curve (thin, in its validation set's line style)."""
COLOUR_BY = ("n_tasks", "backbone", "name")
X_AXES = ("step", "tokens_seen")


def _check_runs(runs: Any) -> dict[str, TrainingRun]:
    if isinstance(runs, TrainingRun):
        return {runs.name: runs}
    if not isinstance(runs, Mapping) or not runs:
        raise ValueError(f"runs must be a non-empty mapping name -> TrainingRun (from training_runs), got {runs!r}")
    for k, r in runs.items():
        if not isinstance(r, TrainingRun):
            raise ValueError(f"runs[{k!r}] must be a TrainingRun, got {type(r).__name__}")
    return dict(runs)


def _check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def task_count_label(n: float | None) -> str:
    """``"128 tasks"``, ``"fresh tasks"`` (``inf``) or ``"? tasks"`` (unknown)."""
    if n is None:
        return "? tasks"
    if math.isinf(n):
        return "fresh tasks"
    return f"{int(n)} task" + ("s" if n != 1 else "")


def run_label(run: TrainingRun, colour_by: str = "n_tasks") -> str:
    """The legend label of a run: its task count, backbone or name (with the name appended when
    the key alone is unknown)."""
    _check_choice("colour_by", colour_by, COLOUR_BY)
    if colour_by == "n_tasks":
        return task_count_label(run.n_tasks) if run.n_tasks is not None else run.name
    if colour_by == "backbone":
        return run.backbone or run.name
    return run.name


def run_colours(runs: Mapping[str, TrainingRun], colour_by: str = "n_tasks") -> dict[str, Any]:
    """``{name: colour}``: a sequential map (viridis, few to many tasks; fresh tasks last) for
    ``n_tasks``, categorical (tab10) for ``backbone`` and ``name`` (runs sharing a key share it)."""
    from matplotlib import colormaps

    runs = _check_runs(runs)
    _check_choice("colour_by", colour_by, COLOUR_BY)
    if colour_by == "n_tasks" and all(r.n_tasks is not None for r in runs.values()):
        values = sorted({r.n_tasks for r in runs.values()})
        cmap = colormaps["viridis"]
        pos = {v: (i / (len(values) - 1) if len(values) > 1 else 0.0) * 0.9 for i, v in enumerate(values)}
        return {k: cmap(pos[r.n_tasks]) for k, r in runs.items()}
    keys = list(dict.fromkeys(run_label(r, "name" if colour_by == "n_tasks" else colour_by) for r in runs.values()))
    cmap = colormaps["tab10"]
    return {k: cmap(keys.index(run_label(r, "name" if colour_by == "n_tasks" else colour_by)) % 10)
            for k, r in runs.items()}


def _ordered(runs: Mapping[str, TrainingRun], colour_by: str) -> list[tuple[str, TrainingRun]]:
    if colour_by == "n_tasks":
        return sorted(runs.items(), key=lambda kv: (math.inf if kv[1].n_tasks is None else kv[1].n_tasks, kv[0]))
    return list(runs.items())


def _figure(n_panels: int, panel: tuple[float, float] = (5.0, 3.8), sharey: bool = True) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(panel[0] * n_panels, panel[1]), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, n_panels, sharey=sharey, squeeze=False)[0]
    return fig, list(axes)


def _legend(ax: Axes, runs: list[tuple[str, TrainingRun]], colours: Mapping[str, Any],
            colour_by: str, sets: Sequence[str], reference: bool = False) -> None:
    handles = [Line2D([], [], color=colours[k], lw=2, label=run_label(r, colour_by)) for k, r in runs]
    seen_labels: dict[str, Line2D] = {}
    for h in handles:  # one entry per label
        seen_labels.setdefault(h.get_label(), h)
    handles = list(seen_labels.values())
    if len(sets) > 1:
        handles += [Line2D([], [], color="0.3", ls=SET_STYLES.get(s, ":"), label=f"{s} tasks") for s in sets]
    if reference and any(r.reference_curve(s) is not None for _, r in runs for s in sets):
        handles.append(Line2D([], [], color=REFERENCE_COLOUR, lw=1.0, label="Bayes-optimal reference"))
    ax.legend(handles=handles, fontsize="small", frameon=False)


def _save(fig: Figure, path: str | os.PathLike | None) -> None:
    if path is not None:
        from omnirl.tasks.plots import save_figure

        save_figure(fig, Path(path))


def _sets_of(runs: Mapping[str, TrainingRun], sets: Sequence[str] | None) -> list[str]:
    if sets is None:
        found = list(dict.fromkeys(s for r in runs.values() for s in r.validation_sets))
        return sorted(found, key=lambda s: (s not in SET_STYLES, list(SET_STYLES).index(s) if s in SET_STYLES else 0, s))
    if isinstance(sets, str):
        raise ValueError(f"sets must be a sequence of validation-set names, got the string {sets!r}; wrap it: [{sets!r}]")
    return list(sets)


def plot_loss_vs_position(runs: Mapping[str, TrainingRun], behaviour: str = "all", sets: Sequence[str] | None = None,
                          colour_by: str = "n_tasks", title: str | None = None,
                          path: str | os.PathLike | None = None) -> Figure:
    """Validation policy loss against position in the context (the latest curves of each run),
    one line per run and validation set (``sets``, default every set logged: seen solid, unseen
    dashed), for the steps ``behaviour`` acted (``all``, ``random``, ``oracle``, ...)."""
    runs = _check_runs(runs)
    sets = _sets_of(runs, sets)
    fig, (ax,) = _figure(1, (6.4, 4.2))
    _draw_position(ax, runs, behaviour, sets, colour_by)
    ax.set_title(title or f"Policy loss against position ({behaviour} steps)")
    _legend(ax, _ordered(runs, colour_by), run_colours(runs, colour_by), colour_by, sets,
            reference=behaviour == "all")
    _save(fig, path)
    return fig


def _draw_position(ax: Axes, runs: Mapping[str, TrainingRun], behaviour: str, sets: Sequence[str],
                   colour_by: str) -> int:
    colours = run_colours(runs, colour_by)
    drawn = 0
    for k, r in _ordered(runs, colour_by):
        for s in sets:
            if s not in r.curves or behaviour not in r.curves[s]:
                continue
            x, y = r.curve(s, behaviour)
            ax.plot(x, y, color=colours[k], ls=SET_STYLES.get(s, ":"), lw=1.8,
                    label=f"{run_label(r, colour_by)}, {s}")
            drawn += 1
    if behaviour == "all":  # the reference is a property of the windows: one line per set
        for s in sets:
            ref = next((r.reference_curve(s) for _, r in _ordered(runs, colour_by)
                        if r.reference_curve(s) is not None), None)
            if ref is not None:
                ax.plot(*ref, color=REFERENCE_COLOUR, ls=SET_STYLES.get(s, ":"), lw=1.0,
                        label=f"Bayes-optimal reference, {s}")
    ax.set_xlabel("position in context (steps)")
    ax.set_ylabel("policy loss (nats)")
    ax.grid(True, color="#e4e4e4", lw=0.6)
    if not drawn:
        ax.text(0.5, 0.5, f"no {behaviour!r} curves of {list(sets)}", transform=ax.transAxes, ha="center")
    return drawn


def plot_loss_vs_position_split(runs: Mapping[str, TrainingRun], behaviours: Sequence[str] = ("random", "oracle"),
                                sets: Sequence[str] | None = None, colour_by: str = "n_tasks",
                                title: str | None = None, path: str | os.PathLike | None = None) -> Figure:
    """``plot_loss_vs_position`` with one panel per behaviour (default: the steps the random policy
    acted against those an oracle acted), sharing the y axis."""
    runs = _check_runs(runs)
    sets = _sets_of(runs, sets)
    if isinstance(behaviours, str) or not behaviours:
        raise ValueError(f"behaviours must be a non-empty sequence of behaviour names, got {behaviours!r}")
    fig, axes = _figure(len(behaviours))
    for ax, b in zip(axes, behaviours):
        _draw_position(ax, runs, b, sets, colour_by)
        ax.set_title(f"{b} steps")
    _legend(axes[-1], _ordered(runs, colour_by), run_colours(runs, colour_by), colour_by, sets)
    fig.suptitle(title or "Policy loss against position, by the policy that acted")
    _save(fig, path)
    return fig


def plot_loss_vs_iteration(runs: Mapping[str, TrainingRun], sets: Sequence[str] | None = None,
                           behaviour: str | None = None, metric: str = "policy_loss", x: str = "step",
                           colour_by: str = "n_tasks", logx: bool = False, title: str | None = None,
                           path: str | os.PathLike | None = None) -> Figure:
    """Validation loss (``val/SET[/BEHAVIOUR]/METRIC``) against training step (``x="step"``) or
    environment steps trained on (``x="tokens_seen"``), one line per run and validation set."""
    runs = _check_runs(runs)
    sets = _sets_of(runs, sets)
    _check_choice("x", x, X_AXES)
    colours = run_colours(runs, colour_by)
    fig, (ax,) = _figure(1, (6.4, 4.2))
    drawn = 0
    for k, r in _ordered(runs, colour_by):
        xs = r.step if x == "step" else r.tokens_seen
        for s in sets:
            try:
                y = r.loss(s, behaviour, metric)
            except KeyError:
                continue
            ok = np.isfinite(y)
            ax.plot(xs[ok], y[ok], color=colours[k], ls=SET_STYLES.get(s, ":"), lw=1.8,
                    marker="o" if ok.sum() < 12 else None, ms=3, label=f"{run_label(r, colour_by)}, {s}")
            drawn += 1
    if not drawn:
        raise ValueError(f"no run logged val/SET/{behaviour + '/' if behaviour else ''}{metric} for sets {sets}")
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel("training step" if x == "step" else "environment steps trained on")
    ax.set_ylabel(f"{metric.replace('_', ' ')} (nats)")
    ax.grid(True, color="#e4e4e4", lw=0.6)
    ax.set_title(title or f"Validation loss against {'training step' if x == 'step' else 'data seen'}"
                 + (f" ({behaviour} steps)" if behaviour else ""))
    _legend(ax, _ordered(runs, colour_by), colours, colour_by, sets)
    _save(fig, path)
    return fig


def final_losses(runs: Mapping[str, TrainingRun], sets: Sequence[str] | None = None,
                 metrics: Sequence[str] = ("policy_loss", "policy_loss_last_quarter")) -> list[dict[str, Any]]:
    """One row per run: name, backbone, task count, parameters, last step and the last validation
    value of ``val/SET/METRIC`` for every set and metric (``None`` when not logged)."""
    runs = _check_runs(runs)
    sets = _sets_of(runs, sets)
    rows = []
    for k, r in runs.items():
        row: dict[str, Any] = {"run": k, "backbone": r.backbone, "n_tasks": r.n_tasks, "parameters": r.parameters,
                               "step": int(r.step[-1]) if len(r.step) else None}
        for s in sets:
            for m in metrics:
                key = f"val/{s}/{m}"
                col = r.history.get(key)
                row[f"{s}/{m}"] = float(col[np.isfinite(col)][-1]) if col is not None and np.isfinite(col).any() else None
        rows.append(row)
    return rows


def plot_loss_vs_task_count(runs: Mapping[str, TrainingRun], sets: Sequence[str] | None = None,
                            metric: str = "policy_loss", title: str | None = None,
                            path: str | os.PathLike | None = None) -> Figure:
    """The last validation loss of each run against its number of training tasks (log x; runs on
    fresh tasks drawn at the right edge), one line per validation set (seen solid, unseen dashed):
    where seen and unseen meet, the model stopped memorising and generalises."""
    runs = _check_runs(runs)
    sets = _sets_of(runs, sets)
    counted = {k: r for k, r in runs.items() if r.n_tasks is not None}
    if not counted:
        raise ValueError("no run's task count is known (their datasets' manifests are missing)")
    finite = [r.n_tasks for r in counted.values() if not math.isinf(r.n_tasks)]
    fresh_x = (max(finite) * 4 if finite else 1.0)
    fig, (ax,) = _figure(1, (6.0, 4.0))
    for s in sets:
        pts = []
        for r in counted.values():
            col = r.history.get(f"val/{s}/{metric}")
            if col is not None and np.isfinite(col).any():
                pts.append((fresh_x if math.isinf(r.n_tasks) else r.n_tasks, float(col[np.isfinite(col)][-1])))
        if pts:
            pts.sort()
            ax.plot(*zip(*pts), ls=SET_STYLES.get(s, ":"), marker="o", color="#1f5fa8" if s == "seen" else "#e66100",
                    label=f"{s} tasks")
    ax.set_xscale("log")
    ticks = sorted(set(finite)) + ([fresh_x] if any(math.isinf(r.n_tasks) for r in counted.values()) else [])
    ax.set_xticks(ticks, [("fresh" if t == fresh_x and t not in finite else f"{int(t)}") for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("training tasks")
    ax.set_ylabel(f"final {metric.replace('_', ' ')} (nats)")
    ax.grid(True, color="#e4e4e4", lw=0.6)
    ax.legend(frameon=False, fontsize="small")
    ax.set_title(title or "Final validation loss against the number of training tasks")
    _save(fig, path)
    return fig


def plot_history(history: Mapping[str, np.ndarray], keys: Sequence[str] | None = None, x: str = "step",
                 title: str | None = None, path: str | os.PathLike | None = None) -> Figure:
    """Columns ``keys`` of a history (``TrainingRun.history`` or ``history_from_wandb``; default:
    every ``val/SET/policy_loss``) against column ``x``, one line each (NaN rows skipped)."""
    if not isinstance(history, Mapping):
        raise ValueError(f"history must be a mapping of columns, got {type(history).__name__}")
    if x not in history:
        raise KeyError(f"history has no x column {x!r}; it has {sorted(history)}")
    if keys is None:
        keys = sorted(k for k in history if re.fullmatch(r"val/[^/]+/policy_loss", k))
    keys = [keys] if isinstance(keys, str) else list(keys)
    missing = [k for k in keys if k not in history]
    if missing or not keys:
        raise KeyError(f"history has no columns {missing or keys}; it has {sorted(history)}")
    fig, (ax,) = _figure(1, (6.4, 4.0))
    xs = np.asarray(history[x], dtype=np.float64)
    for k in keys:
        y = np.asarray(history[k], dtype=np.float64)
        ok = np.isfinite(y) & np.isfinite(xs)
        ax.plot(xs[ok], y[ok], marker="o" if ok.sum() < 12 else None, ms=3, label=k)
    ax.set_xlabel(x)
    ax.grid(True, color="#e4e4e4", lw=0.6)
    ax.legend(frameon=False, fontsize="small")
    if title:
        ax.set_title(title)
    _save(fig, path)
    return fig


__all__ = ["SET_STYLES", "task_count_label", "run_label", "run_colours", "plot_loss_vs_position",
           "plot_loss_vs_position_split", "plot_loss_vs_iteration", "final_losses", "plot_loss_vs_task_count",
           "plot_history"]
