"""What a training run records about itself: provenance, speed, loss-vs-position curves.

``RunTracker`` is a Lightning callback. It acts on the global-zero process only (under DDP the
other ranks neither create a W&B run nor write files) and writes to two places:

* the W&B run (when the trainer has a ``WandbLogger``): the provenance and the parameter count go
  into the run config (``provenance``, ``parameters``); the x-axes are declared explicitly with
  ``define_metric``: every ``train/``, ``val/`` and ``perf/`` metric is plotted against
  ``trainer/global_step``, and the ``tokens/`` copies of the training and validation losses against
  ``tokens_seen`` (environment steps trained on, summed over processes); ``perf/steps_per_s`` and
  ``perf/tokens_per_s`` are measured over the batches since the last log; after every validation,
  each validation set's loss against position in the context goes in as a table
  (``val/NAME/loss_vs_position``: columns ``position`` and one per behaviour) and a line plot
  (``val/NAME/loss_vs_position_plot``);
* the run directory (``logging.out_dir``), whatever the logger: ``run.json`` (provenance, parameter
  count, resolved config), ``progress.json`` (step, latest training loss and elapsed time, rewritten
  at most every ``PROGRESS_SECONDS``: what a parent process shows as a progress bar), ``position_curves.json`` (the latest curves, by validation set and
  behaviour, with the step they were measured at) and ``history.jsonl`` (one line per validation:
  step, tokens seen and every ``val/`` metric), so analysis code reads results without W&B.

Provenance: the git commit of the code and whether the working tree had uncommitted changes (or
``null`` outside a git checkout), and for every dataset the manifest's sha256, its content hash,
its task-set hash, pipeline and size.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import lightning
import numpy as np

from omnirl.data.store import MANIFEST, read_manifest
from omnirl.fileio import atomic_write_bytes, atomic_write_json
from omnirl.rundir import CURVES_FILE, HISTORY_FILE, PROGRESS_FILE, RUN_FILE, git_provenance, plain, wandb_mode

STEP_AXIS = "trainer/global_step"
TOKEN_AXIS = "tokens_seen"
PROGRESS_SECONDS = 1.0
"""Least time between two writes of ``progress.json``."""


def _history_lines(path: Path) -> list[bytes]:
    """The lines of a ``history.jsonl`` that are whole JSON records: a damaged or cut line (an edit, a
    copy that did not finish) is dropped, so the records appended after it stay readable instead of
    being glued to it."""
    if not path.exists():
        return []
    out = []
    for ln in path.read_bytes().splitlines():
        try:
            if isinstance(json.loads(ln), dict):
                out.append(ln)
        except ValueError:
            continue
    return out


LOCK_FILE = ".lock"
"""The file of ``logging.out_dir`` a training run holds locked while it runs (``hold_run_dir``)."""
RANK_VARIABLES = ("LOCAL_RANK", "NODE_RANK", "RANK", "SLURM_PROCID")
"""Environment variables by which a distributed launcher tells a process its rank."""


def hold_run_dir(out: Path, held_run: Any = None) -> Any:
    """Lock ``out`` for this training run until the returned object is released (``with``, or when
    the process ends): a second run into it meanwhile is refused with a ValueError naming it, instead
    of mixing its checkpoints and history with the first's. ``held_run(out)``, when given (a fresh
    run), is checked again under the lock: a run that finished meanwhile is not written over either.
    A process of rank > 0 (``RANK_VARIABLES``) belongs to the run of rank 0, which holds the lock."""
    import contextlib

    from omnirl.fileio import exclusive

    stack = contextlib.ExitStack()
    if any(os.environ.get(k, "0") != "0" for k in RANK_VARIABLES):
        return stack
    with contextlib.ExitStack() as pending:
        pending.enter_context(exclusive(out, "training run (logging.out_dir)", LOCK_FILE,
                                        "then resume it with --train.resume=last, or give another --logging.out_dir"))
        held = held_run(out) if held_run is not None else None
        if held is not None:
            raise ValueError(f"logging.out_dir={str(out)!r} holds a training run already ({held}); resume it with "
                             "--train.resume=last, or give another --logging.out_dir")
        stack.push(pending.pop_all())
    return stack


def dataset_provenance(path: str | Path) -> dict[str, Any]:
    """Identity of the dataset at ``path``: manifest sha256, content and task-set hashes, size."""
    manifest, header = read_manifest(path)
    digest = hashlib.sha256((Path(path) / MANIFEST).read_bytes()).hexdigest()
    pipeline = (header.config or {}).get("pipeline") or {}
    return {"path": str(Path(path).resolve()), "manifest_sha256": digest, "content_hash": manifest.get("content_hash"),
            "task_set_hash": header.task_set_hash, "pipeline": pipeline.get("name"),
            "n_sequences": header.n_sequences, "length": header.length}


def provenance(config: Any) -> dict[str, Any]:
    """Git and dataset provenance of a ``TrainConfig``."""
    return {"git": git_provenance(),
            "data": {"train": [dataset_provenance(p) for p in config.data.train],
                     "validation": {name: dataset_provenance(p) for name, p in config.data.validation.items()}}}


class RunTracker(lightning.Callback):
    """See the module docstring. ``config``: the run's ``TrainConfig``; ``out_dir``: where the run
    files go (default ``config.logging.out_dir``)."""

    def __init__(self, config: Any, out_dir: str | Path | None = None) -> None:
        self.config = config
        self.config_dict = plain(config)
        self.out_dir = Path(out_dir if out_dir is not None else config.logging.out_dir)
        self._last: float | None = None  # time of the last batch end
        self._last_tokens = 0
        self._validated = False  # a validation ran since the last batch end
        self._seconds, self._steps, self._tokens = 0.0, 0, 0  # the current speed window
        self._start: float | None = None  # when fitting started (or resumed)
        self._progress_at = -math.inf  # when progress.json was last written

    # ---------------------------------------------------------------- helpers
    @staticmethod
    def _wandb_run(trainer: lightning.Trainer):
        from lightning.pytorch.loggers import WandbLogger

        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                return logger.experiment
        return None

    # ---------------------------------------------------------------- hooks
    def on_fit_start(self, trainer: lightning.Trainer, pl_module: lightning.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        n_params = sum(p.numel() for p in pl_module.parameters())
        record = {"provenance": provenance(self.config), "parameters": n_params, "config": self.config_dict}
        self.out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.out_dir / RUN_FILE, record)
        self._start = time.perf_counter()
        self._write_progress(trainer)
        run = self._wandb_run(trainer)
        if run is not None:
            run.config.update({"provenance": record["provenance"], "parameters": n_params}, allow_val_change=True)
            run.define_metric(STEP_AXIS)
            run.define_metric(TOKEN_AXIS)
            for prefix in ("train/*", "val/*", "perf/*"):
                run.define_metric(prefix, step_metric=STEP_AXIS)
            run.define_metric("tokens/*", step_metric=TOKEN_AXIS)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # speed over the batch-end to batch-end intervals (data loading included) that contain no
        # validation, logged every log_every_n_steps intervals
        now = time.perf_counter()
        if self._last is not None and not self._validated:
            self._seconds += now - self._last
            self._steps += 1
            self._tokens += pl_module.tokens_seen - self._last_tokens
        self._last, self._last_tokens, self._validated = now, pl_module.tokens_seen, False
        if not trainer.is_global_zero:
            return
        if now - self._progress_at >= PROGRESS_SECONDS or trainer.global_step >= trainer.max_steps:
            self._write_progress(trainer)
        if self._steps < max(1, trainer.log_every_n_steps):
            return
        metrics = {"perf/steps_per_s": self._steps / self._seconds,
                   "perf/tokens_per_s": self._tokens / self._seconds}
        train_loss = trainer.callback_metrics.get("train/policy_loss")
        if train_loss is not None:
            metrics["tokens/train_policy_loss"] = float(train_loss)
        self._log(trainer, pl_module, metrics)
        self._seconds, self._steps, self._tokens = 0.0, 0, 0

    def on_validation_start(self, trainer, pl_module) -> None:
        self._validated = True

    def on_validation_end(self, trainer, pl_module) -> None:
        # after the module's on_validation_epoch_end: its curves and metrics are complete
        if not trainer.is_global_zero or trainer.sanity_checking:
            return
        step, tokens = trainer.global_step, pl_module.tokens_seen
        val = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        curves = {name: {k: plain(v) for k, v in c.items()} for name, c in pl_module.position_curves.items()}
        atomic_write_json(self.out_dir / CURVES_FILE, {"step": step, "tokens_seen": tokens, "curves": curves})
        line = json.dumps(plain({"step": step, "tokens_seen": tokens, **val}), sort_keys=True)
        history = self.out_dir / HISTORY_FILE
        atomic_write_bytes(history, b"".join(ln + b"\n" for ln in _history_lines(history)) + line.encode() + b"\n")

        run = self._wandb_run(trainer)
        if run is None:
            return
        import wandb

        payload: dict[str, Any] = {**val, **{f"tokens/{k[4:]}": v for k, v in val.items() if k.endswith("policy_loss")}}
        for name, c in pl_module.position_curves.items():
            columns = ["position", *[k for k in c if k != "position"]]
            rows = np.stack([np.asarray(c[k], dtype=np.float64) for k in columns], axis=1)  # (bins, columns)
            table = wandb.Table(columns=columns, data=[[None if not math.isfinite(x) else float(x) for x in r]
                                                       for r in rows])
            payload[f"val/{name}/loss_vs_position"] = table
            finite = [k for k in columns[1:] if np.isfinite(np.asarray(c[k], dtype=np.float64)).any()]
            for suffix, what, series in (
                    ("", "policy loss", [k for k in finite if not k.startswith("world/")]),
                    ("_world", "world-model losses", [k for k in finite if k.startswith("world/")])):
                if series:
                    payload[f"val/{name}/loss_vs_position{suffix}_plot"] = wandb.plot.line_series(
                        xs=np.asarray(c["position"], dtype=np.float64).tolist(),
                        ys=[np.nan_to_num(np.asarray(c[k], dtype=np.float64), nan=0.0).tolist() for k in series],
                        keys=series, title=f"{name}: {what} against position (step {step})", xname="position")
        self._log(trainer, pl_module, payload)

    def _write_progress(self, trainer) -> None:
        self._progress_at = now = time.perf_counter()
        loss = trainer.callback_metrics.get("train/policy_loss")
        atomic_write_json(self.out_dir / PROGRESS_FILE, {
            "step": trainer.global_step, "max_steps": trainer.max_steps,
            "loss": None if loss is None else float(loss), "seconds": now - (self._start or now)})

    def _log(self, trainer, pl_module, metrics: dict[str, Any]) -> None:
        run = self._wandb_run(trainer)
        if run is not None and metrics:
            run.log({**metrics, STEP_AXIS: trainer.global_step, TOKEN_AXIS: pl_module.tokens_seen})


__all__ = ["RunTracker", "wandb_mode", "git_provenance", "dataset_provenance", "provenance", "RUN_FILE", "CURVES_FILE",
           "HISTORY_FILE", "PROGRESS_FILE", "PROGRESS_SECONDS"]
