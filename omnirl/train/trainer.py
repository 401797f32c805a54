"""Meta-training as a library call: ``fit(config) -> TrainResult``.

    from omnirl.train import TrainConfig, fit
    result = fit(TrainConfig(...))          # what ``python -m omnirl.train`` runs
    result.history[-1]["val/unseen/policy_loss"], result.checkpoint

``fit`` checks everything it can before it writes anything (the data's shards, sizes against the
model, the devices and precision, the checkpoint to resume and its settings, the run directory),
raising ``ValueError`` naming the setting at fault; then it builds the data module, the model, the
loggers and the Lightning trainer and trains. The run directory's files are named in
``omnirl.rundir``; ``TrainResult`` is what they hold when the run ends.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Iterator

from lightning.pytorch.plugins.io import TorchCheckpointIO

from omnirl.fileio import held_content
from omnirl.rundir import CHECKPOINT_DIR, LAST_CHECKPOINT, held_run, read_training
from omnirl.train.config import TrainConfig
from omnirl.train.tracking import hold_run_dir, wandb_mode


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What a finished training run holds (read back from its run directory)."""

    out_dir: Path
    """The run directory (``logging.out_dir``)."""
    checkpoint: Path
    """``last.ckpt``: the weights, optimiser and counters at the last validation."""
    run: dict
    """``run.json``: provenance, parameter count and the resolved configuration."""
    history: list
    """The validation records (``history.jsonl``), oldest first: step, tokens seen, every ``val/`` metric."""
    curves: dict
    """The latest loss-against-position curves, by validation set."""

    @classmethod
    def read(cls, out_dir: str | Path) -> "TrainResult":
        """The result of the training run in ``out_dir``."""
        r = read_training(out_dir)
        return cls(out_dir=Path(out_dir), checkpoint=Path(r["checkpoint"]), run=r["run"], history=r["history"],
                   curves=r["curves"])


def fit(config: TrainConfig) -> TrainResult:
    """Train the model ``config`` describes into ``config.logging.out_dir`` (resuming from
    ``config.train.resume`` when set) and return the run's result. Expected failures (bad data,
    settings or checkpoint, a run directory holding another run, a diverged run after its
    checkpoints) raise ``ValueError`` naming the setting, before anything is written where they can
    be found first."""
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    with warnings.catch_warnings(), _lightning_log_level(logging.WARNING if config.logging.quiet else None):
        # last.ckpt is written after the optimiser step on purpose: a resumed run continues with
        # the next step and matches an uninterrupted one exactly (tests/test_train_resume.py)
        warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization")
        if config.logging.quiet:  # the libraries' notices of their own deprecations
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=FutureWarning)
        _fit(config)
    return TrainResult.read(config.logging.out_dir)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes a checkpoint to a temporary file in the destination directory, flushes it to disk,
    then renames it over the destination (``os.replace``): the destination is always either the
    previous checkpoint or the new one, complete."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike,
                        storage_options: Any | None = None) -> None:
        import torch

        from omnirl.fileio import atomic_open

        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not take storage_options, got {storage_options!r}")
        try:
            with atomic_open(path) as f:
                torch.save(checkpoint, f)
        except RuntimeError as e:  # Ctrl-C inside torch.save: its zip writer's clean-up fails and hides it
            if isinstance(e.__context__, KeyboardInterrupt):
                raise KeyboardInterrupt from None
            raise


@contextlib.contextmanager
def _lightning_log_level(level: int | None) -> Iterator[None]:
    """Lightning's loggers at ``level`` inside the block (``None``: unchanged), restored after."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    before = [lg.level for lg in loggers]
    if level is not None:
        for lg in loggers:
            lg.setLevel(level)
    try:
        yield
    finally:
        for lg, b in zip(loggers, before):
            lg.setLevel(b)


def build_trainer(cfg: Any, logger: Any = False, callbacks: list | None = None):
    """The ``lightning.Trainer`` of a ``TrainConfig``: DDP when several devices or nodes, validation
    and ``last.ckpt`` every ``train.val_every`` steps (atomically written), plus ``callbacks``."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint

    out = Path(cfg.logging.out_dir)
    # no version counter: a resumed run rewrites last.ckpt instead of starting a last-v1.ckpt beside it
    checkpoint = ModelCheckpoint(dirpath=str(out / CHECKPOINT_DIR), every_n_train_steps=cfg.train.val_every,
                                 save_top_k=0, save_last=True, enable_version_counter=False)
    distributed = cfg.train.num_nodes > 1 or (isinstance(cfg.train.devices, int) and cfg.train.devices > 1)
    return L.Trainer(accelerator="auto", devices=cfg.train.devices, num_nodes=cfg.train.num_nodes,
                     strategy="ddp" if distributed else "auto", max_steps=cfg.train.max_steps, logger=logger,
                     default_root_dir=str(out), precision=cfg.train.precision,
                     val_check_interval=cfg.train.val_every, check_val_every_n_epoch=None,
                     callbacks=[checkpoint, *(callbacks or [])], plugins=[AtomicCheckpointIO()],
                     enable_progress_bar=sys.stderr.isatty() and not cfg.logging.quiet,
                     enable_model_summary=not cfg.logging.quiet, log_every_n_steps=10)


RESUMABLE = ("train.max_steps", "train.val_every", "train.resume", "train.devices", "train.num_nodes",
             "train.precision", "train.compile", "train.max_skipped", "train.position_bins", "data.num_workers",
             "data.validation", "data.verify_checksums", "reference.", "logging.")
"""Settings (dotted names, or prefixes ending in ``.``) a resumed run may change. The others define
the run being continued (the restored weights, optimiser, schedule and data cursor follow them):
a resumed run asking for other values is refused, naming them."""


def check_resume(cfg: Any, path: Path) -> None:
    """Raise ValueError naming ``path`` unless it is a readable OmniRL checkpoint trained with the
    settings ``cfg`` asks for (all but ``RESUMABLE`` ones)."""
    from omnirl.config import changed_settings, config_from_dict, config_to_dict
    from omnirl.train.checkpoint import read_checkpoint
    from omnirl.train.config import TrainConfig

    ckpt = read_checkpoint(path)
    try:
        held = config_to_dict(config_from_dict(TrainConfig, ckpt["hyper_parameters"]["config"]))
    except ValueError as e:
        raise ValueError(f"train.resume={str(path)!r}: the checkpoint's configuration is not valid here: {e}") from None
    changed = [f"{k}={new!r} (the checkpoint's: {old!r})" for k, new, old in changed_settings(config_to_dict(cfg), held)
               if not any(k == r or (r.endswith(".") and k.startswith(r)) for r in RESUMABLE)]
    if changed:
        raise ValueError(f"train.resume={str(path)!r} continues a run with other settings: {'; '.join(changed)}; "
                         "resume with the checkpoint's settings, or start a new run in another logging.out_dir")


OBS_ROWS = {"obs_embed.weight": 1, "state_head.out.weight": 0, "state_head.out.bias": 0}
"""The tensors whose rows are observation ids, and how many ids past ``n_obs`` each has (the
embedding's extra id ``n_obs``)."""


def grow_observations(theirs: dict[str, Any], ours: dict[str, Any], n_theirs: int, n_ours: int) -> dict[str, Any]:
    """``theirs`` (a state dict of a network with ``n_theirs`` observation ids) fitted to ``ours``
    (the same network with ``n_ours >= n_theirs`` ids): in every ``OBS_ROWS`` tensor the rows of
    ids ``[0, n_theirs)`` and of the extra id are ``theirs``, the new ids' rows stay ``ours`` (this
    run's initialisation). The other tensors are ``theirs`` unchanged."""
    out = dict(theirs)
    for k, extra in OBS_ROWS.items():
        if k not in ours or k not in theirs:  # e.g. no next-state head without the world model
            continue
        grown = ours[k].clone()
        grown[:n_theirs] = theirs[k][:n_theirs]
        if extra:
            grown[n_ours:] = theirs[k][n_theirs:]
        out[k] = grown
    return out


def warm_start(module: Any, cfg: Any) -> None:
    """Load ``cfg.train.init_from``'s model weights into ``module.model`` (``ValueError`` naming the
    setting when they do not fit). A network with fewer observation ids than this run's (a rung of
    fewer states) fits: its ids keep their weights, the new ids start from this run's
    initialisation (``grow_observations``), as they would in one network sized for the largest
    rung from the start."""
    from omnirl.train.checkpoint import check_checkpoint, load_model

    check_checkpoint(cfg.train.init_from, "train.init_from")
    source = load_model(cfg.train.init_from)
    ours, theirs = module.model.state_dict(), source.state_dict()
    n_theirs, n_ours = source.config.n_obs, module.model.config.n_obs
    if n_theirs < n_ours and set(theirs) == set(ours):
        theirs = grow_observations(theirs, ours, n_theirs, n_ours)
    differ = sorted(k for k in ours.keys() | theirs.keys()
                    if k not in ours or k not in theirs or ours[k].shape != theirs[k].shape)
    if differ:
        shown = ", ".join(f"{k} {tuple(theirs[k].shape) if k in theirs else 'missing'} (this run's: "
                          f"{tuple(ours[k].shape) if k in ours else 'missing'})" for k in differ[:3])
        raise ValueError(f"train.init_from={cfg.train.init_from!r}: its network is not this run's model "
                         f"({len(differ)} tensors differ, e.g. {shown}); model.* must describe the same network")
    module.model.load_state_dict(theirs, strict=True)


def _fit(cfg: Any) -> None:
    """``fit``'s work, inside its warning and log-level settings."""
    import lightning as L
    from lightning.fabric.utilities.exceptions import MisconfigurationException
    from lightning.pytorch.loggers import WandbLogger

    from omnirl.config import config_to_dict
    from omnirl.train.data import OmniRLDataModule
    from omnirl.train.module import OmniRLModule
    from omnirl.train.tracking import RunTracker

    out = Path(cfg.logging.out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"logging.out_dir={str(out)!r} is a file, not a directory")
    content = held_content(out)
    if content is not None and "training run" not in content:
        raise ValueError(f"logging.out_dir={str(out)!r} holds {content}; give the training run a directory of its "
                         "own (another --logging.out_dir)")
    held = held_run(out)
    if held is not None and cfg.train.resume is None:
        # one run directory holds one run: a fresh run would mix its history and checkpoints with the old
        raise ValueError(f"logging.out_dir={str(out)!r} holds a training run already ({held}); resume it with "
                         "--train.resume=last, or give another --logging.out_dir")
    ckpt_path = cfg.train.resume
    if ckpt_path is not None:
        path = out / LAST_CHECKPOINT if ckpt_path == "last" else Path(ckpt_path)
        if ckpt_path != "last" and not path.is_file():
            raise ValueError(f"train.resume={ckpt_path!r}: no such checkpoint file")
        if path.is_file():
            check_resume(cfg, path)
    L.seed_everything(cfg.train.seed, workers=True)
    data = OmniRLDataModule(cfg.data, reference=cfg.reference, model=cfg.model)
    module = OmniRLModule(cfg)
    module.val_names = list(data.val_names)
    resuming = ckpt_path is not None and (ckpt_path != "last" or (out / LAST_CHECKPOINT).is_file())
    if cfg.train.init_from is not None and not resuming:
        warm_start(module, cfg)
    mode = wandb_mode(cfg.logging.wandb_mode)
    import torch
    cpus = os.cpu_count() or 1
    if not torch.cuda.is_available() and isinstance(cfg.train.devices, int) and cfg.train.devices > cpus:
        raise ValueError(f"train.devices={cfg.train.devices}: this machine has no GPU and {cpus} CPUs (one "
                         "process per device)")
    try:
        build_trainer(cfg)  # Lightning's own checks of the devices and precision, before anything is written
    except MisconfigurationException as e:
        raise ValueError(f"train.devices={cfg.train.devices!r}, train.precision={cfg.train.precision!r}: {e}") from None
    out.mkdir(parents=True, exist_ok=True)
    with hold_run_dir(out, held_run if cfg.train.resume is None else None):  # one run in out at a time
        logger = False
        if mode != "disabled":
            # checkpoints become artifacts when online (an offline run cannot hold artifacts)
            logger = WandbLogger(project=cfg.logging.wandb_project, save_dir=str(out), mode=mode,
                                 config=config_to_dict(cfg), log_model="all" if mode == "online" else False)
        trainer = build_trainer(cfg, logger, callbacks=[RunTracker(cfg)])
        try:
            trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
        except SystemExit:
            if trainer.interrupted:  # Lightning exits after a Ctrl-C; the caller reports the interrupt
                raise KeyboardInterrupt from None
            raise
        if logger and trainer.is_global_zero:
            logger.experiment.finish()  # flush and close the run now, not at interpreter exit
