"""Training checkpoints: find, check and read them, and load the trained model (evaluation, resume).

    from omnirl.train.checkpoint import load_model
    model = load_model("runs/train/checkpoints/last.ckpt")      # or the run directory
    model = load_model(path, map_location="cuda")

A training checkpoint is a Lightning checkpoint of ``omnirl.train.module.OmniRLModule``: its
``hyper_parameters["config"]`` holds the ``TrainConfig`` as plain data and its ``state_dict`` the
module's weights, the model's under the prefix ``model.``. ``load_model`` rebuilds the model from
the stored ``model`` section (``omnirl.train.config.ModelSection``; fields added since the
checkpoint was written take their defaults, and settings renamed since (``omnirl.train.config.RENAMED``) are read under
their new names) and loads those weights strictly (every weight of the model present, none left
over). The file is read with ``torch.load(weights_only=True)``: tensors and plain data only, no code
runs. The optimiser and data-loader state are ignored. The model is returned in evaluation mode.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from omnirl.config import config_from_dict
from omnirl.rundir import LAST_CHECKPOINT
from omnirl.model.omnirl import OmniRL
from omnirl.train.config import ModelSection, migrate

PREFIX = "model."
"""Prefix of the model's weights in the module's ``state_dict``."""
LAST = Path(LAST_CHECKPOINT)
"""Where a run directory keeps its checkpoint (``omnirl.rundir``)."""


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """``path`` itself if it is a file; ``path/checkpoints/last.ckpt`` if ``path`` is a run
    directory holding one; else ``FileNotFoundError`` naming ``path``."""
    p = Path(path)
    if p.is_file():
        return p
    if p.is_dir():
        if (p / LAST).is_file():
            return p / LAST
        raise FileNotFoundError(f"checkpoint {str(p)!r} is a directory without {LAST}")
    raise FileNotFoundError(f"checkpoint {str(p)!r}: no such file")


def check_checkpoint(path: str | os.PathLike | None, name: str = "checkpoint") -> None:
    """``ValueError`` naming ``name`` unless ``path`` is ``None`` or resolves to a checkpoint file
    (``resolve_checkpoint``); for settings that name a checkpoint."""
    if path is None:
        return
    try:
        resolve_checkpoint(path)
    except FileNotFoundError as e:
        raise ValueError(f"{name}: {e}") from None


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """The checkpoint at ``path`` (see ``resolve_checkpoint``) as a dict, checked to be an OmniRL
    training checkpoint (``ValueError`` naming the path otherwise)."""
    p = resolve_checkpoint(path)
    try:
        ckpt = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as e:  # pickle, zip and weights-only errors all mean "not a checkpoint we read"
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]  # torch appends pages of advice
        raise ValueError(f"checkpoint {str(p)!r} is not a readable torch checkpoint (truncated or damaged?): "
                         f"{first}") from e
    config = ckpt.get("hyper_parameters", {}).get("config") if isinstance(ckpt, dict) else None
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict) \
            or not isinstance(ckpt.get("state_dict"), dict):
        raise ValueError(f"checkpoint {str(p)!r} is not an OmniRL training checkpoint: it needs "
                         "hyper_parameters['config']['model'] and a state_dict")
    migrate(config)  # a checkpoint written before a setting was renamed
    return ckpt


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> OmniRL:
    """The OmniRL model of the training checkpoint at ``path`` (a ``.ckpt`` file or a run
    directory), on ``map_location``, in evaluation mode (see the module docstring)."""
    ckpt = read_checkpoint(path, map_location)
    p = resolve_checkpoint(path)
    try:
        section = config_from_dict(ModelSection, ckpt["hyper_parameters"]["config"]["model"])
    except ValueError as e:
        raise ValueError(f"checkpoint {str(p)!r}: bad model configuration: {e}") from e
    model = OmniRL(section.build())
    weights = {k[len(PREFIX):]: v for k, v in ckpt["state_dict"].items() if k.startswith(PREFIX)}
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as e:
        raise ValueError(f"checkpoint {str(p)!r}: weights do not fit the model it describes: {e}") from e
    return model.to(torch.device(map_location)).eval()


def export_weights(path: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write the model part of the training checkpoint at ``path`` (its configuration and the
    ``model.`` weights; no optimiser, scheduler or data state) to ``out``, written to a temporary
    name and renamed. ``load_model(out)`` reads it like the full checkpoint; it is a third of the
    size, for sharing a trained model."""
    from omnirl.fileio import atomic_open

    ckpt = read_checkpoint(path)
    slim = {"hyper_parameters": {"config": ckpt["hyper_parameters"]["config"]},
            "state_dict": {k: v for k, v in ckpt["state_dict"].items() if k.startswith(PREFIX)},
            "global_step": ckpt.get("global_step")}
    out = Path(out)
    with atomic_open(out) as f:
        torch.save(slim, f)
    return out


__all__ = ["check_checkpoint", "load_model", "read_checkpoint", "resolve_checkpoint", "export_weights"]
