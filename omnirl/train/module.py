"""The Lightning module: OmniRL trained with segment-wise truncated back-propagation.

A batch is a dict of ``(B, T + 1)`` tensors (``obs``, ``prompt``, ``tag``, ``action``, ``label``
int64, ``reward`` float32) and ``start (B,)``, the window's offset in its stored sequence. The
model reads the first ``T`` steps; ``obs[:, 1:]`` is the next-state target.

Training step: the ``T`` steps are cut into segments of ``train.segment_len`` steps. Each segment
runs from the state the previous one left (the state crosses segment boundaries), is back-propagated
at once, and its state is then detached (gradients never cross a boundary). Each segment's loss is
scaled by its share of the batch's loss weight, so the accumulated gradient is the gradient of the
weighted mean loss over the whole window. Under DDP the gradients are synchronised once, at the last
segment. A batch whose loss or gradient is not finite is skipped (no optimiser or scheduler step,
weights untouched, ``train/skipped_steps`` counts it); skipped batches do not count towards
``max_steps``. After ``train.max_skipped`` consecutive skipped batches the run stops with
``DivergedError`` (the weights have diverged: no later batch would be finite either).

Policy target (``data.policy_target``): the stored label, or, when the training batch carries
``policy_target`` (``(B, T, A)``, the reference's probabilities), the cross-entropy against those
(``OmniRL.losses``); ``train/policy_loss`` is then that soft cross-entropy (it includes the
target's entropy, so it is not comparable to a hard-label loss). Validation scores the labels.

Action values (``model.value_weight`` > 0): the training step adds the action-value head's targets,
``value_targets`` over the whole window before it is cut into segments (``pair_reward_means`` of
the transformed rewards: for every action, its mean reward in the step's state earlier in the
window), and the head's loss to each segment's.

Loss weights (``train.context_warmup`` = W > 0): the weight of absolute position ``p`` in the
sequence rises linearly from 1e-3 at ``p = 0`` to 1 at ``p = W`` and stays 1 after, so the early,
context-free steps barely count. End markers carry no weight.

Validation: the policy loss against position in the window, binned into ``train.position_bins``
equal bins, overall (``all``) and by who acted (``random``: tag 6, ``oracle``: 0-3, ``learner``:
4-5, ``unknown``: 7). Logged per validation set ``NAME`` (``self.val_names``, by data-loader index):
``val/NAME/policy_loss``, ``val/NAME/policy_loss_last_quarter``, ``val/NAME/policy_loss_first_steps``
(the first 32 steps) and ``val/NAME/BEHAVIOUR/policy_loss``. With a world model, the next-state
and reward losses (over every step but end markers) the same way: ``val/NAME/next_state_loss``,
``val/NAME/reward_loss`` and their ``_last_quarter`` and ``_first_steps`` variants.
``self.position_curves[NAME]`` keeps the binned curves (numpy arrays) for plotting, the
world-model ones under ``world/next_state`` and ``world/reward``.

Reference (when the validation items carry ``omnirl.train.data.REFERENCE_FIELDS``, i.e.
``reference.enabled``): the Bayes-optimal reference's policy loss on the same steps,
``val/NAME/reference_policy_loss`` with ``_last_quarter``, ``_first_quarter`` and ``_first_steps``,
beside the model's ``val/NAME/policy_loss_first_quarter``, and ``val/NAME/gain`` = (model's
first-quarter loss - last-quarter loss) / (reference's), NaN when the reference's drop is below
``omnirl.agents.reference.MIN_GAIN_DROP`` (``learning_gain``). With a world model, the count-based
references ``val/NAME/next_state_loss_reference_state`` / ``_reference_pair`` and
``val/NAME/reward_loss_reference_state`` / ``_reference_pair`` (and their ``_last_quarter``). Their
curves: ``reference`` and ``world/next_state/reference_state`` etc. (``REFERENCE_CURVES``).

Checkpoints: Lightning stores the weights, the optimiser and the learning-rate scheduler (returned
by ``configure_optimizers``, so tracked though stepped by hand here), the loop progress and the
training loader's data cursor (``omnirl.train.data.ResumableDataLoader``); ``on_save_checkpoint``
adds ``skipped_steps``, ``tokens_seen`` and the random-number generator states (torch, CUDA, numpy,
python) of the saving process. Those are restored in a single-process run only: under DDP each rank
keeps its own, seeded, streams (training itself draws no random numbers: windows and shuffling are
derived from ``(seed, epoch, i)``).
"""

from __future__ import annotations

import contextlib
import math
import random
from typing import Any, Callable, Mapping

import lightning
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from omnirl.agents.prior import PriorInfo
from omnirl.agents.reference import learning_gain
from omnirl.config import config_from_dict, config_to_dict
from omnirl.model.backbone import State, detach_state
from omnirl.model.omnirl import OmniRL
from omnirl.model.rewards import init_memory, transform_rewards
from omnirl.train.config import TrainConfig

MIN_WEIGHT = 1e-3
"""Loss weight of position 0 under the context warm-up."""
FIRST_STEPS = 32
"""Steps of the ``policy_loss_first_steps`` validation metric."""
WORLD_MODEL_CURVES = {"world/next_state": "next_state", "world/reward": "reward"}
"""Position-curve keys of the world-model losses, and the ``OmniRL.losses`` entries they average."""
REFERENCE_CURVES = {"reference": "ref_policy",
                    "world/next_state/reference_state": "ref_next_state_state",
                    "world/next_state/reference_pair": "ref_next_state_pair",
                    "world/reward/reference_state": "ref_reward_state",
                    "world/reward/reference_pair": "ref_reward_pair"}
"""Position-curve keys of the reference's losses, and the validation-item fields they average."""
REFERENCE_METRICS = {"reference": "reference_policy_loss",
                     "world/next_state/reference_state": "next_state_loss_reference_state",
                     "world/next_state/reference_pair": "next_state_loss_reference_pair",
                     "world/reward/reference_state": "reward_loss_reference_state",
                     "world/reward/reference_pair": "reward_loss_reference_pair"}
"""Metric name (``val/NAME/...``) of each reference curve."""
BEHAVIOURS: dict[str, tuple[int, ...] | None] = {
    "all": None,
    "random": (PriorInfo.RANDOM,),
    "oracle": (PriorInfo.ORACLE_G0, PriorInfo.ORACLE_G05, PriorInfo.ORACLE_G093, PriorInfo.ORACLE_G0994),
    "learner": (PriorInfo.MODEL_BASED, PriorInfo.Q_LEARNING),
    "unknown": (PriorInfo.UNKNOWN,),
}
"""Validation groups by the tag (who acted) of the step; ``all`` is every step."""
INPUTS = ("obs", "prompt", "tag", "action", "reward")


def position_weights(positions: Tensor, warmup: int) -> Tensor:
    """Loss weight of absolute positions: ``MIN_WEIGHT`` at 0 rising linearly to 1 at ``warmup``,
    1 after (all 1 when ``warmup`` is 0). Same shape as ``positions``, float32."""
    if warmup <= 0:
        return torch.ones(positions.shape, device=positions.device)
    ramp = (positions.float() / warmup).clamp(max=1.0)
    return MIN_WEIGHT + (1.0 - MIN_WEIGHT) * ramp


def lr_factor(step: int, warmup: int) -> float:
    """Multiplier of the peak learning rate after ``step`` optimiser steps: linear warm-up to 1 over
    ``warmup`` steps, then inverse-square-root decay (``sqrt(warmup / (step + 1))``)."""
    n = step + 1
    if n <= warmup:
        return n / warmup
    return math.sqrt(max(warmup, 1) / n)


def segment_slices(T: int, L: int) -> list[slice]:
    """``[0, L), [L, 2L), ...`` covering ``T`` steps (the last one may be shorter)."""
    return [slice(i, min(i + L, T)) for i in range(0, T, L)]


def split_window(batch: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """A ``(B, T + 1)`` batch -> model inputs and loss targets, all ``(B, T)`` (and the soft policy
    targets ``(B, T, A)`` when the batch carries them)."""
    inputs = {k: batch[k][:, :-1] for k in INPUTS}
    targets = {"label": batch["label"][:, :-1], "next_obs": batch["obs"][:, 1:],
               "reward": batch["reward"][:, :-1]}
    if "policy_target" in batch:  # (B, T, A) soft targets of the T steps (data.policy_target)
        targets["policy_target"] = batch["policy_target"]
    return inputs, targets


def pair_reward_means(obs: Tensor, action: Tensor, reward: Tensor, n_obs: int, n_actions: int) -> Tensor:
    """``(B, T, A)``: at each step, the mean of ``reward`` over the earlier steps of the window that
    took each action in the step's state (NaN for an action not yet taken there); the action-value
    head's targets. obs, action, reward ``(B, T)`` (``action >= n_actions``: an end marker, not
    counted). Step ``t``'s means use only the steps before it."""
    B, T = obs.shape
    A = n_actions
    live = action < A  # (B, T)
    row = obs.clamp(max=n_obs - 1).long() * A  # (B, T) the state's first pair
    hot = F.one_hot(row + action.clamp(max=A - 1), n_obs * A).to(torch.float64) * live[..., None]  # (B, T, S A)
    paid = hot * reward.to(torch.float64)[..., None]  # (B, T, S A)
    count, total = hot.cumsum(1) - hot, paid.cumsum(1) - paid  # (B, T, S A) over the steps before t
    at = row[..., None] + torch.arange(A, device=obs.device)  # (B, T, A)
    n, s = count.gather(2, at), total.gather(2, at)  # (B, T, A)
    return torch.where(n > 0, s / n.clamp(min=1.0), torch.nan).to(torch.float32)


def value_targets(model: OmniRL, inputs: Mapping[str, Tensor]) -> Tensor:
    """``(B, T, A)`` the action-value head's targets for a window's model inputs (``(B, T)`` from
    its first step): ``pair_reward_means`` of the rewards as the model sees them (its reward
    transform, from an empty context)."""
    c = model.config
    action = inputs["action"]
    r, _ = transform_rewards(c.reward_transform, inputs["reward"], action < c.n_actions,
                             init_memory(action.shape[0], action.device))
    return pair_reward_means(inputs["obs"], action, r, c.n_obs, c.n_actions)


def per_position_loss(model: OmniRL, parts: Mapping[str, Tensor]) -> Tensor:
    """The per-position ``(B, T)`` combination of the losses ``OmniRL.losses`` returns, with the
    model's loss weights (its ``total`` is this averaged uniformly over the steps)."""
    c = model.config
    loss = c.policy_weight * parts["policy"]
    if "next_state" in parts:
        loss = loss + c.state_weight * parts["next_state"] + c.reward_weight * parts["reward"]
    if "values" in parts:
        loss = loss + c.value_weight * parts["values"]
    return loss


def tbptt_backward(model: OmniRL, batch: Mapping[str, Tensor], segment_len: int, context_warmup: int = 0,
                   backward: Callable[[Tensor], None] = Tensor.backward,
                   sync: Callable[[bool], Any] | None = None) -> tuple[Tensor, Tensor]:
    """The forward and backward passes of one training batch by truncated back-propagation:
    segments of ``segment_len`` steps, the recurrent state carried across them and detached at
    every boundary, each segment's loss weighted by its share of the batch's (position-weighted,
    ``context_warmup``) steps, so the gradients equal those of the whole window's mean loss up to
    the truncation. ``backward(loss)`` runs each segment's backward pass (Lightning's
    ``manual_backward`` in training); ``sync(last)`` is a context in which gradients synchronise
    across processes only at the last segment (DDP). The optimiser step is the caller's.
    ``batch``: ``(B, T + 1)`` tensors of a window. Returns the batch's loss and policy loss
    (detached scalars)."""
    inputs, targets = split_window(batch)
    if model.value_head is not None:
        targets["value_target"] = value_targets(model, inputs)  # (B, T, A) over the whole window
    B, T = targets["label"].shape
    positions = batch["start"][:, None] + torch.arange(T, device=targets["label"].device)  # (B, T)
    steps = targets["label"] < model.config.n_actions  # (B, T) not an end marker
    weights = position_weights(positions, context_warmup) * steps  # (B, T)
    total_weight = weights.sum().clamp(min=1e-12)
    segments = segment_slices(T, segment_len)
    state = None
    loss = policy_loss = torch.zeros((), device=weights.device)
    for k, seg in enumerate(segments):
        with (sync(k == len(segments) - 1) if sync is not None else contextlib.nullcontext()):
            out, state = model(**{n: x[:, seg] for n, x in inputs.items()}, state=state)
            parts = model.losses(out, **{n: x[:, seg] for n, x in targets.items()})
            w = weights[:, seg]
            segment_weight = w.sum()
            segment_loss = (per_position_loss(model, parts) * w).sum() / segment_weight.clamp(min=1e-12)
            segment_share = segment_weight / total_weight
            backward(segment_loss * segment_share)
        state = detach_model_state(state)
        loss = loss + segment_loss.detach() * segment_share
        policy_loss = policy_loss + (parts["policy"] * w).sum().detach() / total_weight
    return loss, policy_loss


def rng_states() -> dict[str, Any]:
    """The global random-number generator states of torch (CPU and CUDA), numpy and python, as
    tensors and plain python values (loadable by ``torch.load(..., weights_only=True)``)."""
    kind, key, pos, has_gauss, gauss = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "torch.cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": [str(kind), torch.from_numpy(key.astype(np.int64)), int(pos), int(has_gauss), float(gauss)],
            "python": random.getstate()}


def set_rng_states(states: Mapping[str, Any]) -> None:
    """Restore ``rng_states()`` (the CUDA ones when there is CUDA and they were saved)."""
    torch.set_rng_state(states["torch"])
    if torch.cuda.is_available() and states.get("torch.cuda"):
        torch.cuda.set_rng_state_all(states["torch.cuda"])
    kind, key, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, key.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))


def detach_model_state(state: tuple[State, Tensor]) -> tuple[State, Tensor]:
    """The model state ``(backbone state, reward memory)`` cut from the autograd graph."""
    backbone_state, memory = state
    return detach_state(backbone_state), memory.detach()


class DivergedError(ValueError):
    """Training stopped: ``train.max_skipped`` consecutive batches had a non-finite loss or gradient."""


class OmniRLModule(lightning.LightningModule):
    """OmniRL with segment-wise truncated back-propagation (see the module docstring).

    ``config``: a ``TrainConfig`` (or its ``config_to_dict`` form, as stored in checkpoints).
    """

    def __init__(self, config: TrainConfig | Mapping[str, Any]) -> None:
        super().__init__()
        if isinstance(config, Mapping):
            config = config_from_dict(TrainConfig, config)
        if not isinstance(config, TrainConfig):
            raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
        self.save_hyperparameters({"config": config_to_dict(config)})
        self.config = config
        self.model = OmniRL(config.model.build())
        if config.train.compile:
            self.model.compile()  # compiles the model's __call__; parameters and state_dict unchanged
        self.automatic_optimization = False
        self.val_names: list[str] = []
        """Validation-set names by data-loader index (``val{i}`` beyond the list)."""
        self.position_curves: dict[str, dict[str, np.ndarray]] = {}
        """By validation set: ``position`` (bin centres, steps) and the mean policy loss per bin of
        each behaviour (``all``, ``random``, ``oracle``, ``learner``, ``unknown``; NaN if empty)."""
        self.skipped_steps = 0
        self.consecutive_skips = 0
        """Batches skipped since the last optimiser step (not checkpointed: a resumed run starts at 0)."""
        self.tokens_seen = 0
        """Environment steps trained on (``B * T`` per batch, summed over processes)."""
        self._val_sums: dict[str, tuple[tuple[str, ...], Tensor, Tensor]] = {}

    # ---------------------------------------------------------------- training

    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        B, T = batch["label"].shape[0], batch["label"].shape[1] - 1
        loss, policy_loss = tbptt_backward(self.model, batch, self.config.train.segment_len,
                                           self.config.train.context_warmup, self.manual_backward,
                                           self._gradient_sync)
        lr = self._optimizer_step(loss)
        self.tokens_seen += B * T * self.trainer.world_size
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/policy_loss", policy_loss)
        self.log("train/lr", lr)
        self.log("train/skipped_steps", float(self.skipped_steps))
        self.log("tokens_seen", float(self.tokens_seen))

    def _gradient_sync(self, enabled: bool):
        """A context in which backward passes do (``enabled``) or do not synchronise gradients
        across DDP processes; a no-op without DDP."""
        block = getattr(self.trainer.strategy, "block_backward_sync", None)
        return contextlib.nullcontext() if enabled or block is None else block()

    def _optimizer_step(self, loss: Tensor) -> float:
        """Clip, step the optimiser and the scheduler, zero the gradients; or skip the batch when
        the loss or a gradient is not finite (in any process). Returns the learning rate used."""
        optimizer, scheduler = self.optimizers(), self.lr_schedulers()
        lr = optimizer.param_groups[0]["lr"]
        params = [p for p in self.parameters() if p.grad is not None]
        grad_norm = torch.nn.utils.get_total_norm([p.grad for p in params])
        finite = bool(torch.isfinite(loss) & torch.isfinite(grad_norm))
        if self.trainer.strategy.reduce_boolean_decision(not finite, all=False):
            optimizer.zero_grad(set_to_none=True)
            self.skipped_steps += 1
            self.consecutive_skips += 1
            limit = self.config.train.max_skipped
            if limit and self.consecutive_skips >= limit:
                raise DivergedError(
                    f"{self.consecutive_skips} consecutive batches had a non-finite loss or gradient after "
                    f"{self.global_step} optimiser steps: training diverged (train.lr={self.config.train.lr}); "
                    f"lower train.lr, or raise train.max_skipped={limit}. The last checkpoint written "
                    "before is kept")
            return lr
        self.consecutive_skips = 0
        if self.config.train.grad_clip > 0:
            torch.nn.utils.clip_grads_with_norm_(params, self.config.train.grad_clip, grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        self.log("train/grad_norm", grad_norm)
        return lr

    def configure_optimizers(self) -> dict[str, Any]:
        t = self.config.train
        optimizer = torch.optim.AdamW(self.parameters(), lr=t.lr, weight_decay=t.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: lr_factor(step, t.warmup_steps))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def _world_size(self) -> int:
        trainer = self._trainer
        return 1 if trainer is None else int(trainer.world_size)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["omnirl_counters"] = {"skipped_steps": self.skipped_steps, "tokens_seen": self.tokens_seen}
        checkpoint["omnirl_rng"] = {"world_size": self._world_size(), "states": rng_states()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        counters = checkpoint.get("omnirl_counters", {})
        self.skipped_steps = counters.get("skipped_steps", 0)
        self.tokens_seen = counters.get("tokens_seen", 0)
        rng = checkpoint.get("omnirl_rng")
        if rng is not None and rng["world_size"] == 1 and self._world_size() == 1:
            set_rng_states(rng["states"])

    # ---------------------------------------------------------------- validation

    def val_name(self, dataloader_idx: int) -> str:
        """The name of validation set ``dataloader_idx``."""
        if dataloader_idx < len(self.val_names):
            return self.val_names[dataloader_idx]
        return f"val{dataloader_idx}"

    def on_validation_epoch_start(self) -> None:
        self._val_sums = {}

    def _curve_names(self, reference: bool = False) -> tuple[str, ...]:
        """The rows of a validation set's sums: the policy loss by behaviour, then the world-model
        losses (over all steps) when the model has a world model, then the reference's (with
        ``reference``: its policy loss, and its world-model losses with a world model)."""
        world = self.model.state_head is not None
        rows = (*BEHAVIOURS, *(WORLD_MODEL_CURVES if world else ()))
        if reference:
            rows += tuple(k for k in REFERENCE_CURVES if world or not k.startswith("world/"))
        return rows

    def validation_step(self, batch: Mapping[str, Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        inputs, targets = split_window(batch)
        targets.pop("policy_target", None)  # validation scores the labels
        label, tag = targets["label"], inputs["tag"]
        T = label.shape[1]
        state, parts = None, []
        for seg in segment_slices(T, self.config.train.segment_len):
            out, state = self.model(**{n: x[:, seg] for n, x in inputs.items()}, state=state)
            parts.append(self.model.losses(out, **{n: x[:, seg] for n, x in targets.items()}))
        policy = torch.cat([p["policy"] for p in parts], dim=1)  # (B, T), 0 at end markers
        steps = label < self.model.config.n_actions  # (B, T)

        name = self.val_name(dataloader_idx)
        rows = self._curve_names(reference=REFERENCE_CURVES["reference"] in batch)
        if name not in self._val_sums:
            shape = (len(rows), T)
            self._val_sums[name] = (rows, torch.zeros(shape, device=self.device),
                                    torch.zeros(shape, device=self.device))
        held, sums, counts = self._val_sums[name]  # (rows, T): loss sums and step counts by position
        if sums.shape[1] != T:
            raise ValueError(f"validation set {name!r}: windows of {T} steps after windows of {sums.shape[1]}")
        if held != rows:
            raise ValueError(f"validation set {name!r}: batches with and without reference losses")
        for i, tags in enumerate(BEHAVIOURS.values()):
            mask = steps if tags is None else steps & torch.isin(tag, torch.tensor(tags, device=tag.device))
            sums[i] += (policy * mask).sum(dim=0)
            counts[i] += mask.sum(dim=0)
        for i, key in enumerate(rows[len(BEHAVIOURS):], start=len(BEHAVIOURS)):
            if key in WORLD_MODEL_CURVES:
                loss = torch.cat([p[WORLD_MODEL_CURVES[key]] for p in parts], dim=1)  # 0 at end markers
            else:
                loss = batch[REFERENCE_CURVES[key]].to(sums.dtype)  # (B, T), 0 at end markers
            sums[i] += loss.sum(dim=0)
            counts[i] += steps.sum(dim=0)

    def on_validation_epoch_end(self) -> None:
        bins = self.config.train.position_bins
        for name, (rows, sums, counts) in self._val_sums.items():
            sums = self.trainer.strategy.reduce(sums.clone(), reduce_op="sum")
            counts = self.trainer.strategy.reduce(counts.clone(), reduce_op="sum")
            T = sums.shape[1]
            position = torch.arange(T, device=sums.device)
            first, last_quarter = position < FIRST_STEPS, position >= (3 * T) // 4
            first_quarter = position < T // 4

            def mean(i: int, where: Tensor | slice = slice(None)) -> Tensor:
                return sums[i, where].sum() / counts[i, where].sum()

            # logger=False: RunTracker logs them, against the optimiser steps taken so far (Lightning's
            # logger would label them one step lower under manual optimisation)
            self.log(f"val/{name}/policy_loss", mean(0), logger=False)
            self.log(f"val/{name}/policy_loss_last_quarter", mean(0, last_quarter), logger=False)
            self.log(f"val/{name}/policy_loss_first_quarter", mean(0, first_quarter), logger=False)
            self.log(f"val/{name}/policy_loss_first_steps", mean(0, first), logger=False)
            for i, behaviour in enumerate(BEHAVIOURS):
                if behaviour != "all" and counts[i].sum() > 0:
                    self.log(f"val/{name}/{behaviour}/policy_loss", mean(i), logger=False)
            for i, key in enumerate(rows[len(BEHAVIOURS):], start=len(BEHAVIOURS)):
                if key in WORLD_MODEL_CURVES:
                    metric = f"{WORLD_MODEL_CURVES[key]}_loss"
                    self.log(f"val/{name}/{metric}_first_steps", mean(i, first), logger=False)
                else:
                    metric = REFERENCE_METRICS[key]
                self.log(f"val/{name}/{metric}", mean(i), logger=False)
                self.log(f"val/{name}/{metric}_last_quarter", mean(i, last_quarter), logger=False)
            if "reference" in rows:
                r = rows.index("reference")
                self.log(f"val/{name}/reference_policy_loss_first_quarter", mean(r, first_quarter), logger=False)
                self.log(f"val/{name}/reference_policy_loss_first_steps", mean(r, first), logger=False)
                gain = learning_gain(float(mean(0, first_quarter)), float(mean(0, last_quarter)),
                                     float(mean(r, first_quarter)), float(mean(r, last_quarter)))
                self.log(f"val/{name}/gain", torch.tensor(gain), logger=False)

            bin_of = position * bins // T  # (T,) bin index of each position

            def per_bin(x: Tensor) -> Tensor:
                return torch.zeros(*x.shape[:-1], bins, device=x.device).index_add_(-1, bin_of, x)

            width = per_bin(torch.ones(T, device=sums.device))
            curves = {"position": per_bin(position.float()) / width}
            curves.update(zip(rows, per_bin(sums) / per_bin(counts)))
            self.position_curves[name] = {k: v.cpu().numpy() for k, v in curves.items()}
        self._val_sums = {}


__all__ = ["DivergedError", "REFERENCE_CURVES", "REFERENCE_METRICS", "WORLD_MODEL_CURVES", "OmniRLModule", "position_weights", "lr_factor", "segment_slices", "split_window", "tbptt_backward",
           "detach_model_state", "pair_reward_means", "value_targets", "rng_states", "set_rng_states", "BEHAVIOURS", "FIRST_STEPS", "MIN_WEIGHT"]
