"""The run directory: the names of the files a run writes, and the small tools every writer and
reader of them shares.

A training run (``omnirl.train.fit``) writes into ``logging.out_dir``:

* ``run.json`` (``RUN_FILE``): provenance, parameter count and the resolved configuration;
* ``history.jsonl`` (``HISTORY_FILE``): one JSON line per validation;
* ``position_curves.json`` (``CURVES_FILE``): the latest loss-against-position curves;
* ``progress.json`` (``PROGRESS_FILE``): the step, the latest training loss and the elapsed time,
  rewritten about every second while the run trains (``read_progress``);
* ``checkpoints/last.ckpt`` (``LAST_CHECKPOINT``).

An evaluation (``omnirl.evaluate.run``) writes ``summary.json`` (``SUMMARY_FILE``), ``scores.csv``
(``SCORES_FILE``), ``episodes.npz`` (``EPISODES_FILE``) and ``memory.npz`` (``MEMORY_FILE``) into
``run.out_dir``. An experiment writes its own ``summary.json`` at the top of its run directory and
keeps its steps under ``data/``, ``train/NAME/`` and ``eval/NAME/``; a step it ran records its cost
in ``cost.json`` (``COST_FILE``), and a resumable step the request it ran (``REQUEST_FILE``).

Every run also records where its code came from (``git_provenance``) and sends its record to W&B in
the mode ``wandb_mode`` resolves. Nothing here imports more than the standard library and numpy, so
analysis code, the sweep runner and an evaluation read and write run directories without loading
Lightning (importing it costs seconds).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
from pathlib import Path
from typing import Any, Mapping, Sequence

RUN_FILE = "run.json"
"""Provenance, parameter count and configuration of a training run."""
HISTORY_FILE = "history.jsonl"
"""One JSON line per validation of a training run: step, tokens seen and every ``val/`` metric."""
CURVES_FILE = "position_curves.json"
"""The latest loss-against-position curves of a training run, by validation set and behaviour."""
PROGRESS_FILE = "progress.json"
"""Where a training run stands: ``step``, ``max_steps``, ``loss`` (the latest training policy loss)
and ``seconds`` (since it started or resumed)."""
CHECKPOINT_DIR = "checkpoints"
"""Sub-directory of a training run holding ``last.ckpt``."""
LAST_CHECKPOINT = f"{CHECKPOINT_DIR}/last.ckpt"
"""A training run's checkpoint, rewritten at every validation (relative to the run directory)."""
SUMMARY_FILE = "summary.json"
"""An evaluation's or an experiment's summary."""
SCORES_FILE = "scores.csv"
"""An evaluation's score table."""
EPISODES_FILE = "episodes.npz"
"""Every episode of an evaluation."""
MEMORY_FILE = "memory.npz"
"""Recurrent memory states of an evaluation (for t-SNE)."""
COST_FILE = "cost.json"
"""What a step of an experiment cost when it ran (``cpu_seconds``, ``wall_seconds``, ...)."""
REQUEST_FILE = "request.json"
"""The request a finished step ran (an experiment resumes without repeating it)."""


def plain(x: Any) -> Any:
    """``x`` as plain JSON data: dataclasses and mappings as dicts (string keys), tuples and arrays as
    lists, numpy and torch scalars as Python numbers, non-finite floats as ``None``."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {f.name: plain(getattr(x, f.name)) for f in dataclasses.fields(x)}
    if isinstance(x, Mapping):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if hasattr(x, "tolist") and hasattr(x, "ndim"):  # numpy arrays and scalars, tensors
        x = x.tolist()
        if isinstance(x, list):
            return [plain(v) for v in x]
    elif hasattr(x, "item") and not isinstance(x, (str, bytes)):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Rows (dicts) as an aligned plain-text table, floats with 4 significant digits, missing and
    NaN cells as ``-`` (the columns of the first row unless ``columns`` are given)."""
    rows = list(rows)
    if not rows:
        return "(no rows)\n"
    columns = list(columns or rows[0])

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return "-" if v != v else f"{v:.4g}"
        return "-" if v is None else str(v)

    cells = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines) + "\n"


def held_run(out: str | Path) -> str | None:
    """What in ``out`` shows that it holds a training run (its checkpoint or its validation
    history), or ``None``."""
    for rel in (LAST_CHECKPOINT, HISTORY_FILE):
        if (Path(out) / rel).exists():
            return rel
    return None


def read_training(out: str | Path) -> dict[str, Any]:
    """A training run directory as plain data: ``run`` (``RUN_FILE``), ``history`` (the validation
    lines, oldest first) and ``curves`` (the latest, by validation set), both empty for a run
    without validation sets, and ``checkpoint`` (the path of ``last.ckpt``)."""
    out = Path(out)
    history, curves = [], {}
    if (out / HISTORY_FILE).is_file():
        history = [json.loads(line) for line in (out / HISTORY_FILE).read_text().splitlines() if line.strip()]
    if (out / CURVES_FILE).is_file():
        curves = json.loads((out / CURVES_FILE).read_text())["curves"]
    return {"run": json.loads((out / RUN_FILE).read_text()), "history": history, "curves": curves,
            "checkpoint": str(out / LAST_CHECKPOINT)}


def read_progress(out: str | Path) -> dict[str, Any] | None:
    """The training run's ``PROGRESS_FILE`` in ``out``, or ``None`` when there is none yet (or it
    cannot be read: it is replaced atomically, so only a missing file or a foreign one fails)."""
    try:
        return json.loads((Path(out) / PROGRESS_FILE).read_text())
    except (OSError, ValueError):
        return None


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and of its finished children, in seconds: the
    cost of a run on a shared machine, where wall-clock time depends on the other work."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def record_cost(out: Path, cost: Mapping[str, float] | None) -> tuple[dict[str, float], bool]:
    """``(cost, reused)`` of the step in ``out``: ``cost`` (``cpu_seconds``, ``wall_seconds``, ...)
    recorded in ``out/cost.json`` when the step ran now, or (``cost`` ``None``: the step was found
    done) the recorded cost read back, NaN when never recorded."""
    from omnirl.fileio import atomic_write_json

    if cost is not None:
        cost = {k: float(v) for k, v in cost.items()}
        atomic_write_json(out / COST_FILE, cost)
        return cost, False
    f = out / COST_FILE
    if f.is_file():
        return {k: float(v) for k, v in json.loads(f.read_text()).items()}, True
    return {"cpu_seconds": float("nan"), "wall_seconds": float("nan")}, True


def wandb_mode(requested: str) -> str:
    """``auto`` -> ``online`` with credentials, else ``offline``; ``WANDB_MODE`` wins when set."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if requested != "auto":
        return requested
    has_key = bool(os.environ.get("WANDB_API_KEY")) or (Path.home() / ".netrc").is_file() and \
        "api.wandb.ai" in (Path.home() / ".netrc").read_text(errors="ignore")
    return "online" if has_key else "offline"


def git_provenance(path: str | Path | None = None) -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}`` of the git checkout holding ``path``
    (default: this package's source)."""
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True,
                                text=True, timeout=10)
        if commit.returncode != 0:
            return {"commit": None, "dirty": None}
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                                capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}
