"""On-policy data: datasets whose sequences a trained model plays.

A model trained on one behaviour's contexts meets other contexts when it plays: its own. Dataset
aggregation (DAgger: Ross, Gordon and Bagnell 2011, "A reduction of imitation learning and
structured prediction to no-regret online learning") trains it on those too: the model plays
training tasks exactly as it does online, and the pipeline's label oracle labels every step.

``ModelActors(checkpoint, protocol, seed)`` is the actor factory that
``omnirl.data.generate.generate_dataset(..., actor=...)`` plays a dataset with: in each batch of
sequences an ``OmniRLAgent`` acts with ``protocol``'s temperature schedule (over the acting steps
of the sequence), own tag and prompt, as online, and its steps are
stored with that tag. The manifest records the checkpoint (path and SHA-256), the decoding and the
seed; a batch's samples depend on the batch (``generate_dataset``'s ``batch`` is recorded too).

The probe on own play: a validation probe measures how well the model predicts the label from
contexts some behaviour made (uniform play, on the ladder); online the model reads the contexts its
own play makes. ``play_like(dataset, out, actors)`` plays the sequences of a stored dataset (the
same tasks, environment seeds and label oracle) with the model instead of the dataset's behaviour,
and ``context_probe(model, dataset)`` scores a model on a stored dataset as validation does: its
policy cross-entropy against the labels and the Bayes-optimal reference's
(``omnirl.agents.reference``), by quarter of the sequence, the gain and the last-quarter share. On
the model's own play, the reference reads the same contexts, so a share that falls from the uniform
probe's says the model reads its own contexts worse than it reads uniform play, not that its own
contexts hold less to learn from.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from omnirl._validate import check_int
from omnirl.agents.reference import ReferenceConfig, learning_gain
from omnirl.evaluate.protocols import ProtocolConfig
from omnirl.model.agent import OmniRLAgent
from omnirl.model.omnirl import OmniRL


class ModelActor:
    """The model playing ``n_rows`` sequences in step (``omnirl.data.synthesis.Actor``)."""

    def __init__(self, model: OmniRL, n_rows: int, seed: int, protocol: ProtocolConfig) -> None:
        self.agent = OmniRLAgent(model, n_rows, seed=seed)
        self.protocol = protocol
        self.tag = int(protocol.own_tag)
        self.steps = 0  # acting steps so far (the temperature schedule's clock)

    def act(self, obs: np.ndarray) -> np.ndarray:
        t = self.protocol.temperature(self.steps)
        self.steps += 1
        return self.agent.act(obs, prompt=self.protocol.prompt, tag=self.tag, temperature=t).cpu().numpy()  # (B,)

    def observe(self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, next_obs: np.ndarray,
                done: np.ndarray) -> None:
        self.agent.observe(obs, action, np.asarray(reward, dtype=np.float32), done=done, terminal_obs=next_obs,
                           prompt=self.protocol.prompt, tag=self.tag)


class ModelActors:
    """Makes a ``ModelActor`` per batch (``omnirl.data.synthesis.ActorFactory``; see the module
    docstring). ``checkpoint``: a training checkpoint or run directory; ``batch``: the batch size the
    dataset is played in (recorded)."""

    def __init__(self, checkpoint: str | Path, protocol: ProtocolConfig, seed: int, batch: int) -> None:
        from omnirl.train.checkpoint import load_model, resolve_checkpoint

        if not isinstance(protocol, ProtocolConfig) or protocol.protocol != "online":
            raise ValueError(f"protocol must be an online ProtocolConfig, got {protocol!r}")
        self.path = resolve_checkpoint(checkpoint)
        self.sha256 = hashlib.sha256(self.path.read_bytes()).hexdigest()
        self.model = load_model(self.path)
        self.protocol = protocol
        self.seed = check_int("seed", seed, min_value=0)
        self.batch = check_int("batch", batch, min_value=1)

    def __call__(self, n_rows: int, first: int) -> ModelActor:
        return ModelActor(self.model, n_rows, seed=self.seed * 1_000_003 + first, protocol=self.protocol)

    def describe(self) -> dict[str, Any]:
        p = self.protocol
        return {"kind": "model", "checkpoint": str(self.path), "sha256": self.sha256, "seed": self.seed,
                "batch": self.batch, "t_initial": p.t_initial, "t_final": p.t_final, "t_steps": p.t_steps,
                "schedule": p.schedule, "own_tag": p.own_tag, "prompt": p.prompt}


def play_like(dataset: str | Path, out: str | Path, actors: ModelActors) -> Path:
    """The sequences of the stored ``dataset`` (its tasks, seeds, length and label oracle: its
    manifest's spec) played by ``actors`` instead of its behaviour, into ``out`` (made if missing,
    resumed if interrupted; played ``actors.batch`` sequences at a time)."""
    from omnirl.data.generate import DatasetSpec, generate_dataset
    from omnirl.data.store import read_manifest

    out = Path(out)
    _, header = read_manifest(dataset)
    if (out / "manifest.json").exists():
        _, played = read_manifest(out)
        if played.config.get("actor") != actors.describe() or played.config["spec"] != header.config["spec"]:
            raise ValueError(f"out: {str(out)!r} holds another play (another model, decoding or dataset)")
        return out
    generate_dataset(DatasetSpec(**header.config["spec"]), out, batch=actors.batch, actor=actors)
    return out


def context_probe(model: OmniRL, dataset: str | Path, reference: ReferenceConfig | None = None,
                  segment: int = 1024) -> dict[str, float]:
    """``model``'s policy cross-entropy on the whole sequences of the stored ``dataset`` beside the
    Bayes-optimal reference's (``reference``: its settings, default ``ReferenceConfig()``), as
    validation measures a probe (see the module docstring): ``model_q1``, ``model_q4``,
    ``reference_q1``, ``reference_q4`` (first- and last-quarter means over the decision steps),
    ``gain`` (``learning_gain``), ``share_q4`` (how far the model's last quarter is from uniform,
    ``ln A``, towards the reference's), and ``label_prob_q4``, the model's mean probability of the
    label in the last quarter. The model reads the sequences ``segment`` steps at a time, its memory
    carried across."""
    from omnirl.data.store import read_manifest
    from omnirl.train.data import WindowDataset
    from omnirl.train.module import segment_slices, split_window

    cfg = model.config
    ds = WindowDataset(dataset, window=read_manifest(dataset)[1].length - 1, random_start=False)
    ref = ds.compute_reference(reference or ReferenceConfig(), cfg.reward_transform, cfg.reward_loss)["ref_policy"]
    batch = {k: torch.stack([ds[i][k] for i in range(len(ds))]) for k in ("obs", "prompt", "tag", "action",
                                                                        "reward", "label")}  # (B, T + 1) each
    inputs, targets = split_window(batch)  # (B, T) each
    device = next(model.parameters()).device
    loss, p_label, state = [], [], None
    with torch.no_grad():
        for seg in segment_slices(inputs["obs"].shape[1], segment):
            out, state = model(**{k: v[:, seg].to(device) for k, v in inputs.items()}, state=state)
            loss.append(model.losses(out, **{k: v[:, seg].to(device) for k, v in targets.items()})["policy"].cpu())
            probs = torch.softmax(out["policy"].float(), dim=-1).cpu()  # (B, t, A + 1)
            p_label.append(probs.gather(-1, targets["label"][:, seg, None])[..., 0])  # (B, t)
    steps = (targets["label"] < cfg.n_actions).numpy()  # (B, T) decision steps
    T = steps.shape[1]
    q1, q4 = slice(0, T // 4), slice((3 * T) // 4, T)

    def mean(x: np.ndarray, where: slice) -> float:
        return float((x[:, where] * steps[:, where]).sum() / max(int(steps[:, where].sum()), 1))

    model_loss, label_prob = torch.cat(loss, 1).numpy(), torch.cat(p_label, 1).numpy()  # (B, T)
    r = {"model_q1": mean(model_loss, q1), "model_q4": mean(model_loss, q4), "reference_q1": mean(ref, q1),
         "reference_q4": mean(ref, q4), "label_prob_q4": mean(label_prob, q4)}
    r["gain"] = learning_gain(r["model_q1"], r["model_q4"], r["reference_q1"], r["reference_q4"])
    uniform = math.log(cfg.n_actions)
    drop = uniform - r["reference_q4"]
    r["share_q4"] = (uniform - r["model_q4"]) / drop if drop > 0 else math.nan
    return r


__all__ = ["ModelActor", "ModelActors", "context_probe", "play_like"]
