"""Reading logged results back: experiment run directories, training runs, evaluations, W&B runs.

Everything here reads what the experiments, ``python -m omnirl.train`` and ``python -m
omnirl.evaluate`` wrote (see ``experiments/_common.py`` for the run-directory layout); nothing is
recomputed. The readers return plain numpy arrays and dicts, ready for ``omnirl.analysis.curves``
and ``omnirl.analysis.tsne``:

* ``read_summary(run_dir)`` / ``find_runs(root, experiment=None)``: an experiment's
  ``summary.json``, and the run directories holding one;
* ``read_training_run(dir)`` -> ``TrainingRun``: ``history.jsonl`` as columns, the latest
  ``position_curves.json``, ``run.json``; ``training_runs(experiment_dir)`` reads every
  ``train/NAME/`` of a run directory;
* ``read_evaluation(dir)`` -> ``Evaluation``: ``scores.csv`` rows, ``episodes.npz`` by
  ``(environment, method)``, ``memory.npz`` as ``MemoryStates``; ``collect_memory(run_dir)``
  stacks the memory states of every evaluation under a run directory;
* ``history_from_wandb(source)``: the logged history of a W&B run, offline (a run directory's
  ``wandb/offline-run-*``, read from disk by ``omnirl.analysis.wandb_offline``) or online (a run
  path ``entity/project/run_id``, through ``wandb.Api()``).

Relative paths that do not exist from the working directory are also tried from the repository
root, so notebooks (run from ``notebooks/``) can name ``runs/...`` directly. Every error names the
path or argument at fault.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from omnirl.rundir import (CURVES_FILE, EPISODES_FILE, HISTORY_FILE, MEMORY_FILE, RUN_FILE, SCORES_FILE,
                          SUMMARY_FILE, format_table)

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The repository root (relative run paths are also tried from here)."""
PER_TASK_FAMILIES = ("anymdp", "bandit")
"""Families whose environment names (sizes) stay apart in ``MemoryStates.group``."""


# --------------------------------------------------------------------------- paths
def resolve_path(path: str | os.PathLike, what: str = "path") -> Path:
    """``path`` if it exists; else, when relative, the same path under the repository root; else a
    ``FileNotFoundError`` naming both places (``what`` names the argument)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{what} must be a path, got {path!r} ({type(path).__name__})")
    p = Path(path).expanduser()
    if p.exists():
        return p
    if not p.is_absolute() and (REPO_ROOT / p).exists():
        return REPO_ROOT / p
    where = f" (nor {REPO_ROOT / p})" if not p.is_absolute() else ""
    raise FileNotFoundError(f"{what}={str(path)!r} does not exist{where}")


def _read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: {what}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None


# --------------------------------------------------------------------------- experiment runs
def read_summary(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The ``summary.json`` of a run directory (an experiment's: ``experiment``, ``preset``,
    ``settings``, ``results``, ``table``, ``figures``, ``finding``, ...; or an evaluation's)."""
    d = resolve_path(run_dir, "run_dir")
    if d.is_file():
        raise ValueError(f"run_dir={str(run_dir)!r} is a file; pass the directory holding {SUMMARY_FILE}")
    return _read_json(d / SUMMARY_FILE, f"run_dir={str(run_dir)!r} is not a finished run directory")


def find_runs(root: str | os.PathLike = "runs", experiment: str | None = None) -> list[Path]:
    """Run directories under ``root`` (``root`` itself included): directories holding a
    ``summary.json``, not searched further below (so an experiment's ``eval/NAME/`` directories are
    part of it, not runs of their own). With ``experiment``, only those whose summary names it."""
    base = resolve_path(root, "root")
    found = []
    for dirpath, dirnames, filenames in os.walk(base):
        if SUMMARY_FILE in filenames:
            dirnames[:] = []
            if experiment is not None:
                try:
                    if json.loads((Path(dirpath) / SUMMARY_FILE).read_text()).get("experiment") != experiment:
                        continue
                except (json.JSONDecodeError, AttributeError):
                    continue
            found.append(Path(dirpath))
        else:
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in ("wandb", "checkpoints"))
    return sorted(found)


# --------------------------------------------------------------------------- training runs
def _columns(rows: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Rows of scalars as float64 columns (NaN where a row lacks a key or holds a non-number);
    keys holding no number in any row are left out."""
    keys: dict[str, None] = {}
    for r in rows:
        for k, v in r.items():
            if isinstance(v, (int, float)) or v is None:
                keys.setdefault(k)
    out = {}
    for k in keys:
        col = np.array([float(v) if isinstance((v := r.get(k)), (int, float)) else np.nan for r in rows],
                       dtype=np.float64)
        if np.isfinite(col).any():
            out[k] = col
    return out


def _task_count(run: Mapping[str, Any]) -> int | float | None:
    """Tasks the training data cycles over: their count for task-set data, ``inf`` for a fresh
    task per sequence, ``None`` when a dataset's manifest cannot be read."""
    data = ((run.get("provenance") or {}).get("data") or {}).get("train") or []
    if not data:
        return None
    hashes: dict[str, int] = {}
    for d in data:
        if d.get("task_set_hash") is None:
            return math.inf
        try:
            manifest = json.loads((resolve_path(d["path"], "dataset") / "manifest.json").read_text())
            task_dir = resolve_path(manifest["config"]["spec"]["task_set"], "task_set")
            hashes[d["task_set_hash"]] = int(json.loads((task_dir / "manifest.json").read_text())["n_tasks"])
        except (OSError, KeyError, TypeError, ValueError):  # FileNotFoundError is an OSError
            return None
    return sum(hashes.values())


@dataclasses.dataclass(frozen=True)
class TrainingRun:
    """One training run directory (``logging.out_dir`` of ``python -m omnirl.train``)."""

    path: Path
    """The run directory."""
    name: str
    """Its directory name (``NAME`` of an experiment's ``train/NAME/``)."""
    run: dict[str, Any]
    """``run.json``: ``provenance``, ``parameters``, ``config`` (the resolved ``TrainConfig``)."""
    history: dict[str, np.ndarray]
    """``history.jsonl`` as float64 columns, one entry per validation: ``step``, ``tokens_seen`` and
    every ``val/...`` metric (NaN where a validation lacks it); empty before the first validation."""
    curves: dict[str, dict[str, np.ndarray]]
    """The latest loss-against-position curves by validation set (``seen``, ``unseen``, ...): arrays
    ``position`` (bin centres) and one per behaviour (``all``, ``random``, ``oracle``, ``learner``,
    ``unknown``; NaN where a bin holds no step of that behaviour); with the reference on, also
    ``reference`` (the Bayes-optimal reference's policy loss) and the world-model curves
    ``world/next_state``, ``world/reward`` with their count-based references
    (``world/next_state/reference_state``, ``.../reference_pair``, ...)."""
    curves_step: int | None
    """Training step at which ``curves`` were measured (``None`` without curves)."""
    n_tasks: int | float | None
    """Tasks of the training data: a count for task-set data, ``inf`` for a fresh task per
    sequence, ``None`` when the datasets' manifests are no longer where ``run.json`` says."""

    @property
    def backbone(self) -> str | None:
        """The model's backbone (``gdn``, ``mamba2``, ...)."""
        return ((self.run.get("config") or {}).get("model") or {}).get("backbone")

    @property
    def parameters(self) -> int | None:
        """Parameter count of the model."""
        return self.run.get("parameters")

    @property
    def step(self) -> np.ndarray:
        """``(V,)`` training step of each validation."""
        return self.history.get("step", np.zeros(0))

    @property
    def tokens_seen(self) -> np.ndarray:
        """``(V,)`` environment steps trained on at each validation."""
        return self.history.get("tokens_seen", np.zeros(0))

    @property
    def validation_sets(self) -> tuple[str, ...]:
        """Names of the validation sets, from the curves or the history."""
        names = dict.fromkeys(self.curves)
        for k in self.history:
            m = re.fullmatch(r"val/([^/]+)/policy_loss", k)
            if m:
                names.setdefault(m.group(1))
        return tuple(names)

    def loss(self, validation: str = "unseen", behaviour: str | None = None,
             metric: str = "policy_loss") -> np.ndarray:
        """``(V,)`` history column ``val/VALIDATION[/BEHAVIOUR]/METRIC`` (``metric`` also
        ``policy_loss_last_quarter``, ``policy_loss_first_steps``, ``reference_policy_loss[_...]``
        or ``gain`` without a behaviour)."""
        key = f"val/{validation}/{behaviour}/{metric}" if behaviour not in (None, "all") else \
            f"val/{validation}/{metric}"
        if key not in self.history:
            have = sorted(k for k in self.history if k.startswith("val/"))
            raise KeyError(f"training run {str(self.path)!r} logged no {key!r}; it has {have}")
        return self.history[key]

    def reference_curve(self, validation: str = "unseen") -> tuple[np.ndarray, np.ndarray] | None:
        """``(position, loss)`` of the Bayes-optimal reference's latest curve, ``None`` when the
        run logged none (reference off, or a run from before it existed)."""
        c = self.curves.get(validation, {})
        return (c["position"], c["reference"]) if "reference" in c else None

    def gain(self, validation: str = "unseen") -> float:
        """The last finite ``val/VALIDATION/gain``: the model's first- minus last-quarter loss over
        the reference's (NaN when not logged or never finite)."""
        col = self.history.get(f"val/{validation}/gain")
        if col is None or not np.isfinite(col).any():
            return float("nan")
        return float(col[np.isfinite(col)][-1])

    def curve(self, validation: str = "unseen", behaviour: str = "all") -> tuple[np.ndarray, np.ndarray]:
        """``(position, loss)`` of the latest loss-against-position curve."""
        if validation not in self.curves:
            raise KeyError(f"training run {str(self.path)!r} has no curves of validation set "
                           f"{validation!r}; it has {sorted(self.curves)}")
        c = self.curves[validation]
        if behaviour not in c:
            raise KeyError(f"training run {str(self.path)!r}: validation set {validation!r} has no "
                           f"behaviour {behaviour!r}; it has {sorted(k for k in c if k != 'position')}")
        return c["position"], c[behaviour]


def read_training_run(run_dir: str | os.PathLike) -> TrainingRun:
    """A training run directory: ``run.json`` (required), ``history.jsonl`` and
    ``position_curves.json`` (empty before the first validation)."""
    d = resolve_path(run_dir, "run_dir")
    if not (d / RUN_FILE).is_file():
        raise FileNotFoundError(f"run_dir={str(run_dir)!r} is not a training run directory: it holds no {RUN_FILE} "
                                "(written when python -m omnirl.train starts fitting)")
    run = _read_json(d / RUN_FILE, "")
    rows = []
    if (d / HISTORY_FILE).is_file():
        for i, line in enumerate((d / HISTORY_FILE).read_text().splitlines()):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{d / HISTORY_FILE}, line {i + 1}: not valid JSON ({e})") from None
    curves, curves_step = {}, None
    if (d / CURVES_FILE).is_file():
        raw = _read_json(d / CURVES_FILE, "")
        curves_step = raw.get("step")
        curves = {name: {k: np.array([np.nan if v is None else v for v in vals], dtype=np.float64)
                         for k, vals in c.items()} for name, c in raw.get("curves", {}).items()}
    return TrainingRun(path=d, name=d.name, run=run, history=_columns(rows), curves=curves,
                       curves_step=curves_step, n_tasks=_task_count(run))


def natural_key(name: str) -> list:
    """Sort key ordering the numbers inside names by value (``n16`` before ``n128``)."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", name) if t]


def training_runs(experiment_dir: str | os.PathLike, names: Iterable[str] | None = None) -> dict[str, TrainingRun]:
    """``{NAME: TrainingRun}`` of every ``train/NAME/`` of an experiment's run directory holding a
    ``run.json`` (in natural name order: ``n16`` before ``n128``; with ``names``, those only, in
    that order)."""
    d = resolve_path(experiment_dir, "experiment_dir")
    train = d / "train"
    if names is not None:
        return {n: read_training_run(train / n) for n in names}
    found = sorted((p for p in train.glob("*") if (p / RUN_FILE).is_file()),
                   key=lambda p: natural_key(p.name)) if train.is_dir() else []
    if not found:
        raise FileNotFoundError(f"experiment_dir={str(experiment_dir)!r} holds no training runs "
                                f"(no {train}/NAME/{RUN_FILE})")
    return {p.name: read_training_run(p) for p in found}


# --------------------------------------------------------------------------- evaluations
@dataclasses.dataclass(frozen=True)
class MemoryStates:
    """Recurrent memory states dumped by an evaluation (``protocol.memory_steps``): one point per
    row of every ``(environment, step)``, all of one model (equal state size ``D``)."""

    states: np.ndarray
    """``(N, D)`` float32 flattened memory states."""
    env: np.ndarray
    """``(N,)`` environment name of each point (``anymdp16``, ``lake4x4``, ...)."""
    family: np.ndarray
    """``(N,)`` environment family (``anymdp``, ``lake``, ``darkroom``, ...)."""
    step: np.ndarray
    """``(N,)`` int64 acting steps in context after which the state was taken."""
    evaluation: np.ndarray
    """``(N,)`` name of the evaluation directory each point comes from."""

    def __len__(self) -> int:
        return int(self.states.shape[0])

    @property
    def group(self) -> np.ndarray:
        """``(N,)`` the t-SNE colour: the environment name for AnyMDP and bandits (sizes apart),
        the family for every other environment (Lake, Cliff, Pendulum, DarkRoom, ...)."""
        return np.where(np.isin(self.family, PER_TASK_FAMILIES), self.env, self.family)

    def labels(self) -> dict[str, np.ndarray]:
        """The label columns by name: ``group``, ``env``, ``family``, ``step``, ``evaluation``."""
        return {"group": self.group, "env": self.env, "family": self.family, "step": self.step,
                "evaluation": self.evaluation}

    def select(self, mask: np.ndarray) -> "MemoryStates":
        """The points where ``mask`` (``(N,)`` bool) holds."""
        mask = np.asarray(mask)
        if mask.shape != (len(self),):
            raise ValueError(f"mask must have shape ({len(self)},), got {mask.shape}")
        return MemoryStates(**{f.name: getattr(self, f.name)[mask] for f in dataclasses.fields(self)})


def read_memory(path: str | os.PathLike) -> MemoryStates:
    """The ``memory.npz`` of an evaluation (the file, or its directory): keys ``ENV/STEP`` ->
    ``(B, D)`` float32 and ``ENV/STEP/family`` -> the family name."""
    p = resolve_path(path, "path")
    f = p / MEMORY_FILE if p.is_dir() else p
    if not f.is_file():
        raise FileNotFoundError(f"path={str(path)!r} holds no {MEMORY_FILE}: the evaluation dumped no memory "
                                "(run it with --protocol.memory_steps=[...] and a checkpoint)")
    with np.load(f, allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    blocks, families = [], {}
    for key, v in data.items():
        parts = key.split("/")
        if parts[-1] == "family":
            families["/".join(parts[:-1])] = str(v)
            continue
        if len(parts) < 2 or not parts[-1].isdigit():
            raise ValueError(f"{f}: unexpected key {key!r} (want ENV/STEP or ENV/STEP/family)")
        if v.ndim != 2:
            raise ValueError(f"{f}: {key!r} has shape {v.shape}, want (rows, D)")
        blocks.append(("/".join(parts[:-1]), int(parts[-1]), key, v))
    if not blocks:
        raise ValueError(f"{f} holds no memory states")
    dims = {v.shape[1] for *_, v in blocks}
    if len(dims) > 1:
        raise ValueError(f"{f}: memory states of different sizes {sorted(dims)}")
    blocks.sort(key=lambda b: (b[0], b[1]))
    name = f.parent.name
    return MemoryStates(
        states=np.concatenate([v.astype(np.float32, copy=False) for *_, v in blocks]),
        env=np.concatenate([np.full(len(v), env) for env, _, _, v in blocks]),
        family=np.concatenate([np.full(len(v), families.get(key, env)) for env, _, key, v in blocks]),
        step=np.concatenate([np.full(len(v), step, dtype=np.int64) for _, step, _, v in blocks]),
        evaluation=np.full(sum(len(v) for *_, v in blocks), name))


def memory_files(run_dir: str | os.PathLike) -> list[Path]:
    """Every ``memory.npz`` under a run directory (its evaluations' dumps), sorted."""
    d = resolve_path(run_dir, "run_dir")
    return sorted(d.rglob(MEMORY_FILE)) if d.is_dir() else [d]


def _checkpoint_of(memory_file: Path) -> str | None:
    try:
        return json.loads((memory_file.parent / SUMMARY_FILE).read_text())["config"]["run"]["checkpoint"]
    except (OSError, KeyError, TypeError, ValueError):
        return None


def collect_memory(run_dir: str | os.PathLike, evaluations: Iterable[str] | None = None) -> MemoryStates:
    """The memory states of every evaluation under ``run_dir`` (or of the evaluation directories
    named in ``evaluations``), stacked. They must come from one model: without ``evaluations``,
    dumps of different checkpoints (by their ``summary.json``) are refused, and in any case dumps of
    different state sizes."""
    files = memory_files(run_dir)
    if evaluations is None:
        checkpoints = {f.parent.name: _checkpoint_of(f) for f in files}
        if len(set(checkpoints.values())) > 1:
            raise ValueError(f"run_dir={str(run_dir)!r} holds memory dumps of {len(set(checkpoints.values()))} "
                             f"checkpoints ({checkpoints}); pass evaluations=[...] naming evaluations of one model")
    else:
        wanted = list(evaluations)
        files = [f for f in files if f.parent.name in wanted]
        missing = sorted(set(wanted) - {f.parent.name for f in files})
        if missing:
            raise FileNotFoundError(f"run_dir={str(run_dir)!r} has no {MEMORY_FILE} in evaluations {missing}")
    if not files:
        raise FileNotFoundError(f"run_dir={str(run_dir)!r} holds no {MEMORY_FILE} (no evaluation dumped memory "
                                "states: set protocol.memory_steps)")
    parts = [read_memory(f) for f in files]
    dims = {str(f): m.states.shape[1] for f, m in zip(files, parts)}
    if len(set(dims.values())) > 1:
        raise ValueError(f"memory states of different sizes (different models?): {dims}; pass evaluations=[...] "
                         "naming evaluations of one model")
    return MemoryStates(**{fld.name: np.concatenate([getattr(m, fld.name) for m in parts])
                           for fld in dataclasses.fields(MemoryStates)})


def _number(v: str) -> Any:
    if v in ("True", "False"):
        return v == "True"
    if v == "":
        return float("nan")
    try:
        return int(v)
    except ValueError:
        try:
            return float(v)
        except ValueError:
            return v


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """One evaluation directory (``run.out_dir`` of ``python -m omnirl.evaluate``)."""

    path: Path
    """The directory."""
    name: str
    """Its directory name (``NAME`` of an experiment's ``eval/NAME/``)."""
    summary: dict[str, Any]
    """``summary.json``: ``config``, ``rows``, ``skipped``, ``seconds``, ``files``."""
    scores: list[dict[str, Any]]
    """Rows of ``scores.csv`` (numbers as numbers, NaN for blanks): ``environment``, ``method``,
    ``performance``, ``gap_weighted``, ..."""
    episodes: dict[tuple[str, str], dict[str, np.ndarray]]
    """``(environment, method)`` -> episode columns (``row``, ``episode``, ``end_step``, ``length``,
    ``raw_return``, ``shaped_return``, ``score``)."""
    memory: MemoryStates | None
    """The dumped memory states (``None`` without ``memory.npz``)."""

    def score(self, environment: str, method: str, column: str = "performance") -> Any:
        """One cell of the scores table."""
        for r in self.scores:
            if r.get("environment") == environment and r.get("method") == method:
                if column not in r:
                    raise KeyError(f"{self.path / SCORES_FILE} has no column {column!r}; it has {sorted(r)}")
                return r[column]
        raise KeyError(f"{self.path / SCORES_FILE} has no row for environment={environment!r}, method={method!r}")


def read_evaluation(eval_dir: str | os.PathLike) -> Evaluation:
    """An evaluation directory: ``summary.json`` and ``scores.csv`` (required), ``episodes.npz``
    and ``memory.npz`` (when written)."""
    d = resolve_path(eval_dir, "eval_dir")
    if not (d / SCORES_FILE).is_file():
        raise FileNotFoundError(f"eval_dir={str(eval_dir)!r} is not an evaluation directory: it holds no {SCORES_FILE} "
                                "(written by python -m omnirl.evaluate)")
    summary = _read_json(d / SUMMARY_FILE, f"eval_dir={str(eval_dir)!r} is not a finished evaluation")
    with open(d / SCORES_FILE, newline="") as fh:
        scores = [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(fh)]
    episodes: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    if (d / EPISODES_FILE).is_file():
        with np.load(d / EPISODES_FILE, allow_pickle=False) as z:
            for key in z.files:
                parts = key.rsplit("/", 2)
                if len(parts) != 3:
                    raise ValueError(f"{d / EPISODES_FILE}: unexpected key {key!r} (want ENV/METHOD/COLUMN)")
                episodes.setdefault((parts[0], parts[1]), {})[parts[2]] = z[key]
    memory = read_memory(d) if (d / MEMORY_FILE).is_file() else None
    return Evaluation(path=d, name=d.name, summary=summary, scores=scores, episodes=episodes, memory=memory)


def evaluations(experiment_dir: str | os.PathLike) -> dict[str, Evaluation]:
    """``{NAME: Evaluation}`` of every ``eval/NAME/`` of an experiment's run directory."""
    d = resolve_path(experiment_dir, "experiment_dir")
    found = sorted(p for p in (d / "eval").glob("*") if (p / SCORES_FILE).is_file()) if (d / "eval").is_dir() else []
    if not found:
        raise FileNotFoundError(f"experiment_dir={str(experiment_dir)!r} holds no evaluations "
                                f"(no {d / 'eval'}/NAME/{SCORES_FILE})")
    return {p.name: read_evaluation(p) for p in found}


# --------------------------------------------------------------------------- W&B
ONLINE_PATH = re.compile(r"[\w.-]+/[\w.-]+/[\w-]+")
"""An online W&B run path ``entity/project/run_id``."""


def offline_runs(path: str | os.PathLike) -> list[Path]:
    """The offline W&B run directories (``offline-run-*``) of ``path``: a training or experiment
    run directory (searched for ``wandb/offline-run-*``), a ``wandb`` directory, or one
    ``offline-run-*`` directory or ``run-*.wandb`` file. In time order (their names start with the
    date)."""
    p = resolve_path(path, "path")
    if p.is_file() or list(p.glob("run-*.wandb")):
        return [p]
    for pattern in ("offline-run-*", "wandb/offline-run-*"):
        runs = sorted(r for r in p.glob(pattern) if r.is_dir())
        if runs:
            return runs
    return []


def history_from_wandb(source: str | os.PathLike, keys: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """The logged history of a W&B run as float64 columns (NaN where a row lacks a key; only
    numeric keys), plus ``step`` (``trainer/global_step`` when logged, else W&B's ``_step``).

    ``source`` is either a local path (see ``offline_runs``; several offline runs of one directory,
    e.g. a resumed training run, are concatenated in time order) or an online run path
    ``entity/project/run_id``, read with ``wandb.Api().run(path).scan_history()`` (needs network
    access and credentials; not exercised by the tests). ``keys`` keeps only those columns (and
    ``step``)."""
    rows: list[dict[str, Any]]
    local = None
    try:
        local = resolve_path(source, "source")
    except FileNotFoundError:
        if not (isinstance(source, str) and ONLINE_PATH.fullmatch(source)):
            raise FileNotFoundError(f"source={str(source)!r} is neither an existing path (an offline run) nor an "
                                    "online run path entity/project/run_id") from None
    if local is not None:
        from omnirl.analysis.wandb_offline import read_offline_run

        runs = offline_runs(local)
        if not runs:
            raise FileNotFoundError(f"source={str(source)!r} holds no offline W&B run (no wandb/offline-run-* or "
                                    "run-*.wandb; was it logged with wandb_mode=disabled or online?)")
        rows = [row for r in runs for row in read_offline_run(r)["history"]]
    else:
        import wandb

        rows = list(wandb.Api().run(str(source)).scan_history())
    cols = _columns(rows)
    step = cols.get("trainer/global_step", cols.get("_step"))
    if keys is not None:
        keys = list(keys)
        missing = [k for k in keys if k not in cols]
        if missing:
            raise KeyError(f"W&B run {str(source)!r} logged no {missing}; it has {sorted(cols)}")
        cols = {k: cols[k] for k in keys}
    if step is not None:
        cols["step"] = step
    return cols


__all__ = ["REPO_ROOT", "resolve_path", "read_summary", "find_runs", "TrainingRun", "read_training_run",
           "natural_key", "training_runs", "MemoryStates", "read_memory", "memory_files", "collect_memory", "Evaluation",
           "read_evaluation", "evaluations", "format_table", "offline_runs", "history_from_wandb"]
