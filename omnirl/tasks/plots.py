"""Figures of a task's structure, drawn on ``matplotlib.figure.Figure`` objects (Agg, no pyplot).

* ``plot_transition_kernel``        the state-to-state kernel of a policy with states sorted by
  decreasing stationary probability, start states, goal and pitfalls marked (paper Figure 12).
* ``plot_stationary_distributions`` stationary distribution of the random and the oracle policy,
  each task's states sorted by decreasing probability (paper Figure 2) or by hidden rank, median
  and 10-90% band over a set of tasks; call it again on the same axes to overlay another generator.
* ``save_figure``                   atomic PNG writer.

``kernel_order`` and ``stationary_profiles`` return the numbers the figures draw, so they can be
checked without looking at pixels. Everything is in hidden-rank order unless stated otherwise.

>>> from omnirl.tasks import sample_anymdp
>>> fig = plot_transition_kernel(sample_anymdp(16, 3, seed=0))
>>> fig.axes[0].get_images()[0].get_array().shape
(16, 16)
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LinearSegmentedColormap, ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from mpl_toolkits.axes_grid1 import make_axes_locatable

from omnirl._validate import check_choice, check_float, check_int
from omnirl.fileio import atomic_write_bytes
from omnirl.tasks.solver import (one_hot_policy, policy_transition, reset_chain, solve,
                                 start_distribution, stationary_distribution, task_arrays,
                                 uniform_policy)
from omnirl.tasks.task import MDPTask

POLICIES = ("random", "oracle")
"""Policies the figures know: the uniform random policy and the greedy oracle at ``gamma``."""

KERNEL_IMAGE_LABEL = "transition-kernel"
"""Label of the ``AxesImage`` holding the reordered kernel in ``plot_transition_kernel``."""

# state markers of the kernel figure, and the policy colours of the profile figure
START_COLOUR = "#2ca02c"
GOAL_COLOUR = "#f0b400"
PITFALL_COLOUR = "#d62728"
RANDOM_COLOUR = "#1f5fa8"
ORACLE_COLOUR = "#e66100"
_KERNEL_CMAP = LinearSegmentedColormap.from_list("kernel", ["#ffffff", "#08306b"])
_GENERATOR_STYLES = ("-", "--", ":", "-.")
_PROFILE_GID = "omnirl-sd"

# ---------------------------------------------------------------------------- validation


def _check_task(name: str, task: Any) -> MDPTask:
    if not isinstance(task, MDPTask):
        raise ValueError(f"{name} must be an MDPTask, got {task!r} ({type(task).__name__})")
    return task


def _check_tasks(tasks: Any) -> list[MDPTask]:
    if isinstance(tasks, MDPTask) or isinstance(tasks, (str, bytes)) or not isinstance(tasks, Iterable):
        raise ValueError("tasks must be a non-empty sequence of MDPTask (wrap a single task as "
                         f"[task]), got {tasks!r} ({type(tasks).__name__})")
    out = list(tasks)
    if not out:
        raise ValueError(f"tasks must be a non-empty sequence of MDPTask, got {tasks!r}")
    for i, t in enumerate(out):
        _check_task(f"tasks[{i}]", t)
    return out


def _check_gamma(gamma: Any) -> float:
    return check_float("gamma", gamma, min_value=0.0, max_value=1.0, max_inclusive=False)


def _check_ax(ax: Any) -> Axes | None:
    if ax is not None and not isinstance(ax, Axes):
        raise ValueError(f"ax must be a matplotlib Axes or None, got {ax!r} ({type(ax).__name__})")
    return ax


def _new_axes(figsize: tuple[float, float]) -> Axes:
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig.add_subplot()


# ---------------------------------------------------------------------------- numbers


def policy_matrix(task: MDPTask, policy: str = "random", gamma: float = 0.994) -> np.ndarray:
    """``(n, A)`` action probabilities of the named policy (``random`` or ``oracle`` at ``gamma``)."""
    _check_task("task", task)
    check_choice("policy", policy, POLICIES)
    gamma = _check_gamma(gamma)
    if policy == "random":
        return uniform_policy(task.n_states, task.n_actions)
    return one_hot_policy(solve(task, gamma).policy, task.n_actions)


def _kernel_and_sd(task: MDPTask, policy: str, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """The policy's kernel ``sum_a pi(a|s) P[s, a, s']`` (terminal rows zero) and the stationary
    distribution of its chain with terminal resets, started from the start law."""
    pi = policy_matrix(task, policy, gamma)
    P, _ = task_arrays(task)
    kernel = policy_transition(P, pi)
    sd = stationary_distribution(reset_chain(task, pi), start_distribution(task))
    return kernel, sd


def kernel_order(task: MDPTask, policy: str = "random", gamma: float = 0.994) -> np.ndarray:
    """``(n,)`` hidden ranks sorted by decreasing stationary probability of ``policy``'s chain
    with terminal resets; ties (e.g. states the oracle never visits) keep rank order."""
    _, sd = _kernel_and_sd(task, policy, gamma)
    return np.argsort(-sd, kind="stable")


ORDERS = ("sd", "rank")
"""x axis of the profiles: states sorted by decreasing stationary probability (the paper's
Figure 2), or hidden rank."""


def stationary_profiles(tasks: Iterable[MDPTask], gamma: float = 0.994,
                        normalise: bool | None = None, order: str = "sd") -> dict[str, Any]:
    """Stationary distributions of the random and the oracle policy of each task.

    With ``order="sd"`` each task's distribution is sorted in decreasing order (x = the state's
    place in that order, as in the paper's Figure 2: how concentrated the policy's visits are);
    with ``order="rank"`` it is indexed by hidden rank (how visits spread along the chain).

    Returns a dict with

    * ``x``: ``(G,)`` rank index ``0 .. n-1`` when every task has ``n`` states (and ``normalise``
      is not ``True``), else the normalised rank ``linspace(0, 1, G)`` with ``G`` the largest ``n``;
    * ``normalised``: which of the two ``x`` is;
    * ``n_states``: ``(T,)`` active states of each task;
    * ``random``, ``oracle``: ``(T, G)`` stationary distributions. On the normalised grid, task
      ``t`` is interpolated linearly in ``log10`` between its ranks at ``i / (n_t - 1)``, with
      zeros taken as ``1e-300``;
    * ``random_median``, ``random_q10``, ``random_q90`` and the same for ``oracle``: ``(G,)``
      median and 10% / 90% quantiles over tasks at each ``x``.
    """
    tasks = _check_tasks(tasks)
    gamma = _check_gamma(gamma)
    check_choice("order", order, ORDERS)
    if normalise is not None and not isinstance(normalise, bool):
        raise ValueError(f"normalise must be True, False or None, got {normalise!r}")
    sizes = np.array([t.n_states for t in tasks])
    normalised = bool(normalise) if normalise is not None else bool(np.any(sizes != sizes[0]))
    sds = {p: [_kernel_and_sd(t, p, gamma)[1] for t in tasks] for p in POLICIES}
    if order == "sd":
        sds = {p: [np.sort(d)[::-1] for d in ds] for p, ds in sds.items()}
    G = int(sizes.max())
    if normalised:
        x = np.linspace(0.0, 1.0, G)
        for p in POLICIES:
            rows = []
            for d in sds[p]:
                xp = np.arange(d.size) / max(d.size - 1, 1)
                rows.append(10.0 ** np.interp(x, xp, np.log10(np.maximum(d, 1e-300))))
            sds[p] = rows
    else:
        x = np.arange(G, dtype=np.float64)
    out: dict[str, Any] = {"x": x, "normalised": normalised, "order": order, "n_states": sizes}
    for p in POLICIES:
        arr = np.stack(sds[p])
        q10, med, q90 = np.quantile(arr, [0.1, 0.5, 0.9], axis=0)
        out.update({p: arr, f"{p}_median": med, f"{p}_q10": q10, f"{p}_q90": q90})
    return out


# ---------------------------------------------------------------------------- kernel figure


def _state_kinds(task: MDPTask) -> np.ndarray:
    """``(n,)`` 0 = other, 1 = start, 2 = goal, 3 = pitfall."""
    kind = np.zeros(task.n_states, dtype=np.int64)
    kind[task.start_states] = 1
    if task.goal is not None:
        kind[task.goal] = 2
    kind[task.pitfalls] = 3
    return kind


def plot_transition_kernel(task: MDPTask, ax: Axes | None = None, policy: str = "random",
                           gamma: float = 0.994) -> Figure:
    """Draw ``policy``'s state-to-state kernel with states sorted by decreasing stationary
    probability (``kernel_order``); the darker a cell, the likelier the transition (the colour
    saturates at the 99th percentile of the non-zero probabilities).

    Row ``i`` / column ``j`` is the ``i``-th / ``j``-th most visited state. Coloured strips along
    both axes mark the start states, the goal and the pitfalls; terminal rows are blank because the
    episode ends there. ``ax`` is split to make room for the strips and the colour bar; without it
    a new figure is made. Returns the figure.
    """
    _check_task("task", task)
    check_choice("policy", policy, POLICIES)
    gamma = _check_gamma(gamma)
    ax = _check_ax(ax)
    if ax is None:
        ax = _new_axes((7.0, 6.6))
    fig = ax.figure
    kernel, sd = _kernel_and_sd(task, policy, gamma)
    order = np.argsort(-sd, kind="stable")
    K = kernel[order][:, order]
    n = task.n_states

    # darkness is proportional to probability up to the 99th percentile of the non-zero entries,
    # so a few near-deterministic transitions do not wash out the rest of the band
    positive = K[K > 0]
    vmax = float(np.quantile(positive, 0.99)) if positive.size else 1.0
    im = ax.imshow(K, cmap=_KERNEL_CMAP, vmin=0.0, vmax=vmax, interpolation="nearest",
                   aspect="equal")
    im.set_label(KERNEL_IMAGE_LABEL)
    ax.set_xlabel("next state $s'$ (same order)")
    ax.tick_params(labelleft=False, left=False)
    for side in ("top", "right"):
        ax.spines[side].set_visible(True)

    # strips of state kinds along both axes, sharing the matrix's coordinates
    kinds = _state_kinds(task)[order]
    kind_cmap = ListedColormap(["#eeeeee", START_COLOUR, GOAL_COLOUR, PITFALL_COLOUR])
    divider = make_axes_locatable(ax)
    left = divider.append_axes("left", size="3.5%", pad=0.04, sharey=ax)
    top = divider.append_axes("top", size="3.5%", pad=0.04, sharex=ax)
    cax = divider.append_axes("right", size="4%", pad=0.12)
    left.imshow(kinds[:, None], cmap=kind_cmap, vmin=-0.5, vmax=3.5, aspect="auto",
                interpolation="nearest", extent=(-0.5, 0.5, n - 0.5, -0.5))
    top.imshow(kinds[None, :], cmap=kind_cmap, vmin=-0.5, vmax=3.5, aspect="auto",
               interpolation="nearest", extent=(-0.5, n - 0.5, 0.5, -0.5))
    left.set_xticks([])
    left.set_ylabel(f"state $s$ (sorted by {policy}-policy stationary probability, high → low)")
    top.tick_params(labelbottom=False, bottom=False, left=False, labelleft=False)
    top.set_xlim(-0.5, n - 0.5)
    left.set_ylim(n - 0.5, -0.5)

    cb = fig.colorbar(im, cax=cax, extend="max" if vmax < K.max() else "neither")
    cb.set_label(f"$P_\\pi(s' \\mid s)$, {policy} policy")

    n_pits = len(task.pitfalls)
    handles = [Patch(color=START_COLOUR, label=f"start ({len(task.start_states)})"),
               Patch(color=GOAL_COLOUR, label="goal" if task.goal is not None else "goal (none)"),
               Patch(color=PITFALL_COLOUR, label=f"pitfall ({n_pits})")]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.09), ncol=3,
              frameon=False, handlelength=1.2, columnspacing=1.6)
    gen = task.generator if task.generator != "anymdp" else "AnyMDP"
    seed = task.seed[0] if len(task.seed) == 1 else task.seed
    size = f"S={task.n_obs}" + (f" (n={n} active)" if n != task.n_obs else "")
    gamma_note = f", γ={gamma:g}" if policy == "oracle" else ""
    top.set_title(f"{gen} task, {size}, A={task.n_actions}, seed {seed}: "
                  f"{policy}-policy kernel{gamma_note}", pad=8)
    return fig


# ---------------------------------------------------------------------------- profile figure


def _profile_handles(ax: Axes) -> tuple[list, list[str]]:
    """Legend entries (band + median line) of every profile drawn on ``ax``, in drawing order."""
    bands = {c.get_gid(): c for c in ax.collections
             if isinstance(c.get_gid(), str) and c.get_gid().startswith(_PROFILE_GID)}
    handles, labels = [], []
    for line in ax.get_lines():
        gid = line.get_gid()
        if isinstance(gid, str) and gid.startswith(_PROFILE_GID):
            band = bands.get(gid)
            handles.append((band, line) if band is not None else line)
            labels.append(line.get_label())
    return handles, labels


def plot_stationary_distributions(tasks: Iterable[MDPTask], ax: Axes | None = None,
                                  gamma: float = 0.994, label: str | None = None,
                                  floor: float = 1e-10, normalise: bool | None = None,
                                  order: str = "sd") -> Figure:
    """Draw the stationary distribution of the random and the oracle policy: median over
    ``tasks`` with a shaded 10-90% band, log-scale y axis, states sorted by decreasing stationary
    probability (``order="sd"``, the paper's Figure 2) or by hidden rank (``order="rank"``).

    ``x`` is the rank index when all tasks have the same size, else the rank normalised to
    ``[0, 1]`` (force either with ``normalise``). Probabilities below ``floor`` (the oracle never
    visits many states) are drawn at ``floor``, the bottom of the axis. Calling it again on the
    same ``ax`` with another ``label`` overlays another task set in the next line style, its band
    outlined rather than filled; the legend, below the axes, lists every set. Returns the figure.
    """
    ax = _check_ax(ax)
    floor = check_float("floor", floor, min_value=0.0, max_value=1.0, min_inclusive=False)
    if label is not None and not isinstance(label, str):
        raise ValueError(f"label must be a string or None, got {label!r} ({type(label).__name__})")
    prof = stationary_profiles(tasks, gamma, normalise, order)
    if ax is None:
        ax = _new_axes((7.2, 4.6))
    fig = ax.figure
    k = len({ln.get_gid().split(":")[1] for ln in ax.get_lines()
             if isinstance(ln.get_gid(), str) and ln.get_gid().startswith(_PROFILE_GID)})
    style = _GENERATOR_STYLES[k % len(_GENERATOR_STYLES)]
    x = prof["x"]
    n_tasks = len(prof["n_states"])
    prefix = f"{label} " if label else ""
    for p, colour in (("random", RANDOM_COLOUR), ("oracle", ORACLE_COLOUR)):
        gid = f"{_PROFILE_GID}:{k}:{p}"
        lo = np.maximum(prof[f"{p}_q10"], floor)
        hi = np.maximum(prof[f"{p}_q90"], floor)
        if k == 0:
            band = ax.fill_between(x, lo, hi, color=colour, alpha=0.14, lw=0)
        else:  # later sets outline their band only, so the first set's bands stay readable
            band = ax.fill_between(x, lo, hi, facecolor="none", edgecolor=colour, lw=0.9,
                                   ls=":", alpha=0.9)
        band.set_gid(gid)
        ax.plot(x, np.maximum(prof[f"{p}_median"], floor), color=colour, lw=2.0, ls=style,
                gid=gid, label=f"{prefix}{p} policy ({n_tasks} tasks)")

    ax.set_yscale("log")
    ax.set_ylim(bottom=floor, top=max(1.0, ax.get_ylim()[1]))
    what = "state, by decreasing stationary probability" if order == "sd" else "hidden rank"
    if prof["normalised"]:
        ax.set_xlabel(f"{what} / (n − 1)")
        ax.set_xlim(0.0, 1.0)
    else:
        ax.set_xlabel(what if order == "sd" else "hidden rank (low: near the start, high: rewarding)")
        ax.set_xlim(0.0, max(float(x[-1]), ax.get_xlim()[1] if k > 0 else 0.0))
    ax.set_ylabel("stationary probability")
    ax.grid(True, which="major", color="#dddddd", lw=0.6)
    if not ax.get_title():
        ax.set_title("Stationary distributions of the random and the oracle policy"
                     f" (γ={float(gamma):g})" + (", by hidden rank" if order == "rank" else ""))
    handles, labels = _profile_handles(ax)
    ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2,
              fontsize="small", frameon=False, title="line: median over tasks, band: 10–90% of tasks",
              title_fontsize="small")
    return fig


# ---------------------------------------------------------------------------- output


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 150) -> Path:
    """Write ``fig`` as PNG to ``path`` atomically (temporary file in the same directory, then
    ``os.replace``), creating parent directories. Returns the path."""
    if not isinstance(fig, Figure):
        raise ValueError(f"fig must be a matplotlib Figure, got {fig!r} ({type(fig).__name__})")
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"path must be a str or os.PathLike, got {path!r} ({type(path).__name__})")
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"path must end in .png, got {str(path)!r}")
    dpi = check_int("dpi", dpi, min_value=1)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    return atomic_write_bytes(path, buf.getvalue())
