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
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from omnirl._validate import check_int
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
                "schedule": p.schedule, "own_tag": p.own_tag}


__all__ = ["ModelActor", "ModelActors"]
