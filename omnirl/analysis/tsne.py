"""t-SNE of the model's recurrent memory states (the paper's Figure 5, right).

The states are those ``python -m omnirl.evaluate`` dumped during online evaluation
(``protocol.memory_steps``; read with ``omnirl.analysis.runs.read_memory`` / ``collect_memory``),
never recomputed here. ``memory_embedding`` reduces them to 2-D: a seeded PCA to at most
``pca_dims`` dimensions first (the states have thousands to a million coordinates), then
``sklearn.manifold.TSNE`` seeded with the same seed, so one seed gives one picture.
``plot_embedding`` draws the points once per label: by task family (AnyMDP sizes apart, then
Gymnasium families and DarkRoom) and by position in the context (the acting step of the dump).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from omnirl.analysis.runs import MemoryStates


@dataclasses.dataclass(frozen=True)
class Embedding:
    """A 2-D embedding of memory states with the points' labels."""

    xy: np.ndarray
    """``(N, 2)`` t-SNE coordinates."""
    labels: dict[str, np.ndarray]
    """Label columns, each ``(N,)`` (``group``, ``env``, ``family``, ``step``, ... for
    ``MemoryStates``)."""
    perplexity: float
    seed: int
    pca_dims: int
    """Dimensions the PCA kept (``D`` when no PCA was needed)."""
    pca_variance: float
    """Fraction of the variance the PCA kept (1.0 without PCA)."""

    def __len__(self) -> int:
        return int(self.xy.shape[0])


def suggested_perplexity(n_points: int, wanted: float = 30.0) -> float:
    """``wanted``, lowered to ``(n_points - 1) / 3`` (the usual bound, which leaves every point
    ``3 * perplexity`` neighbours) for small sets; at least 1."""
    if not isinstance(n_points, (int, np.integer)) or n_points < 2:
        raise ValueError(f"n_points must be an integer >= 2, got {n_points!r}")
    return float(max(1.0, min(float(wanted), (n_points - 1) / 3.0)))


def _stack(memory_arrays: Any, labels: Mapping[str, Any] | None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    if isinstance(memory_arrays, MemoryStates):
        X = memory_arrays.states
        lab = memory_arrays.labels()
    elif isinstance(memory_arrays, np.ndarray):
        X = memory_arrays
        lab = {}
    elif isinstance(memory_arrays, Sequence) and memory_arrays and all(isinstance(a, np.ndarray) for a in memory_arrays):
        shapes = {a.shape[1:] for a in memory_arrays}
        if any(a.ndim != 2 for a in memory_arrays) or len(shapes) > 1:
            raise ValueError(f"memory_arrays must be (rows, D) arrays of one D, got shapes "
                             f"{[a.shape for a in memory_arrays]}")
        X = np.concatenate(memory_arrays)
        lab = {}
    else:
        raise ValueError("memory_arrays must be MemoryStates (read_memory / collect_memory), an (N, D) array or a "
                         f"sequence of (rows, D) arrays, got {type(memory_arrays).__name__}")
    if X.ndim != 2:
        raise ValueError(f"memory_arrays must be 2-D (N points, D), got shape {X.shape}")
    if labels is not None:
        if not isinstance(labels, Mapping):
            raise ValueError(f"labels must be a mapping name -> (N,) values, got {type(labels).__name__}")
        for k, v in labels.items():
            v = np.asarray(v)
            if v.shape != (X.shape[0],):
                raise ValueError(f"labels[{k!r}] has shape {v.shape}, want ({X.shape[0]},) (one per point)")
            lab[k] = v
    return X, lab


def memory_embedding(memory_arrays: Any, labels: Mapping[str, Any] | None = None, seed: int = 0,
                     perplexity: float = 30.0, pca_dims: int = 50) -> Embedding:
    """2-D t-SNE of memory states: ``MemoryStates`` (its label columns come along), an ``(N, D)``
    array or a sequence of ``(rows, D)`` arrays, with optional extra ``labels`` (name -> ``(N,)``).

    PCA (seeded) to ``min(pca_dims, N, D)`` dimensions when ``D`` is larger, then t-SNE (``init="pca"``,
    ``learning_rate="auto"``, ``random_state=seed``). t-SNE needs more points than ``perplexity``
    (see ``suggested_perplexity``); states must be finite."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    X, lab = _stack(memory_arrays, labels)
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    if not isinstance(pca_dims, (int, np.integer)) or pca_dims < 2:
        raise ValueError(f"pca_dims must be an integer >= 2, got {pca_dims!r}")
    try:
        perplexity = float(perplexity)
    except (TypeError, ValueError):
        raise ValueError(f"perplexity must be a number > 0, got {perplexity!r}") from None
    if not perplexity > 0:
        raise ValueError(f"perplexity must be > 0, got {perplexity!r}")
    n = X.shape[0]
    if n <= perplexity:
        raise ValueError(f"perplexity={perplexity:g} needs more than {perplexity:g} points, but there are only {n} "
                         f"memory states; use perplexity <= {suggested_perplexity(n) if n >= 2 else 1:g} "
                         "(suggested_perplexity) or dump more rows / memory_steps")
    if not np.isfinite(X).all():
        bad = int((~np.isfinite(X)).any(axis=1).sum())
        raise ValueError(f"memory_arrays holds non-finite values in {bad} of {n} points")
    if not np.issubdtype(X.dtype, np.floating):
        X = X.astype(np.float64)
    variance = 1.0
    dims = X.shape[1]
    if X.shape[1] > pca_dims:  # in the states' own precision (float32 dumps of the paper's sizes are large)
        dims = int(min(pca_dims, n))
        pca = PCA(n_components=dims, random_state=int(seed))
        X = pca.fit_transform(X)
        variance = float(np.sum(pca.explained_variance_ratio_))
    X = np.asarray(X, dtype=np.float64)
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto", random_state=int(seed))
    xy = tsne.fit_transform(X)
    return Embedding(xy=np.asarray(xy, dtype=np.float64), labels=lab, perplexity=perplexity, seed=int(seed),
                     pca_dims=dims, pca_variance=variance)


_TITLES = {"group": "task family", "env": "environment", "family": "family", "step": "position in context (step)",
           "evaluation": "evaluation"}


def _numeric(v: np.ndarray) -> bool:
    return np.issubdtype(v.dtype, np.number) and not np.issubdtype(v.dtype, np.bool_) and len(np.unique(v)) > 1


def plot_embedding(embedding: Embedding, by: Sequence[str] | str = ("group", "step"), size: float = 14.0,
                   title: str | None = None, path: str | os.PathLike | None = None) -> Figure:
    """The embedded points, one panel per label name in ``by``: categorical labels (family,
    environment) in distinct colours with a legend, numeric ones (step) on a colour scale with a
    colour bar. Returns the figure; writes a PNG only when ``path`` is given."""
    from matplotlib import colormaps

    if not isinstance(embedding, Embedding):
        raise ValueError(f"embedding must be an Embedding (from memory_embedding), got {type(embedding).__name__}")
    by = [by] if isinstance(by, str) else list(by)
    if not by:
        raise ValueError("by must name at least one label")
    for b in by:
        if b not in embedding.labels:
            raise ValueError(f"by={b!r} is not a label of the embedding; it has {sorted(embedding.labels)}")
    fig = Figure(figsize=(5.6 * len(by), 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(by), squeeze=False)[0]
    x, y = embedding.xy[:, 0], embedding.xy[:, 1]
    for ax, b in zip(axes, by):
        v = embedding.labels[b]
        if _numeric(v):
            sc = ax.scatter(x, y, c=v.astype(np.float64), cmap="plasma", s=size, lw=0)
            fig.colorbar(sc, ax=ax, label=_TITLES.get(b, b))
        else:
            cats = list(dict.fromkeys(v.tolist()))
            cmap = colormaps["tab10" if len(cats) <= 10 else "tab20"]
            for i, c in enumerate(cats):
                m = v == c
                ax.scatter(x[m], y[m], color=cmap(i % cmap.N), s=size, lw=0, label=str(c))
            ax.legend(fontsize="small", frameon=False, markerscale=1.5, loc="best",
                      title=_TITLES.get(b, b), title_fontsize="small")
        ax.set_title(f"coloured by {_TITLES.get(b, b)}")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title or f"t-SNE of recurrent memory states ({len(embedding)} points, perplexity "
                 f"{embedding.perplexity:.3g}, seed {embedding.seed})")
    if path is not None:
        from omnirl.tasks.plots import save_figure

        save_figure(fig, Path(path))
    return fig


__all__ = ["Embedding", "suggested_perplexity", "memory_embedding", "plot_embedding"]
