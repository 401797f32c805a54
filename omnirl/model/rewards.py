"""Reward transforms: what the model sees of a reward, and what its reward head predicts.

Raw AnyMDP rewards are heavy-tailed (a few steps carry most of the squared reward) and their scale
differs between tasks by orders of magnitude, so a large reward can drown the state identity it
shares a token with, and a bandit's arm gap can be nearly invisible. A transform is chosen in the
model config (``OmniRLConfig.reward_transform``):

* ``none``: the raw reward;
* ``symlog``: ``sign(r) log(1 + |r|)``;
* ``causal``: the reward standardised by the running mean and standard deviation of the rewards
  seen so far in this context, itself included (``(r - mean) / (std + STD_EPS)``, clipped to
  ``[-CLIP, CLIP]``; 0 while fewer than two rewards have been seen). Episode-end markers carry no
  reward and are left out of the statistics (their transformed reward is 0).

The statistics live in the model state as a *reward memory* ``(B, MEMORY)`` float64: the last
transformed reward (what the next step's first token carries in the ``compact`` layout), and the
count, sum and sum of squares of the rewards seen. The training forward pass (a sequence at a time)
and ``OmniRLAgent`` (a step at a time) call the same ``transform_rewards``, so both see the same
inputs; a fresh memory (``init_memory``) starts a new context.
"""

from __future__ import annotations

import torch
from torch import Tensor

REWARD_TRANSFORMS = ("none", "symlog", "causal")
MEMORY = 4
"""Columns of the reward memory: last transformed reward, count, sum, sum of squares."""
STD_EPS = 1e-3
"""Added to the running standard deviation of ``causal`` (rewards that never vary give 0)."""
CLIP = 10.0
"""``causal`` values are clipped to ``[-CLIP, CLIP]`` (a z-score after t rewards is at most sqrt(t))."""


def init_memory(batch: int, device=None) -> Tensor:
    """An empty reward memory ``(B, MEMORY)``: no reward seen."""
    return torch.zeros(batch, MEMORY, device=device, dtype=torch.float64)


def transform_rewards(kind: str, reward: Tensor, valid: Tensor, memory: Tensor) -> tuple[Tensor, Tensor]:
    """Transformed rewards ``(B, T)`` float32 and the memory after them.

    reward ``(B, T)`` raw rewards; valid ``(B, T)`` bool, the steps whose reward counts (not
    episode-end markers); memory ``(B, MEMORY)`` the reward memory before the first step.
    The value at step ``t`` depends only on the rewards up to ``t`` and the memory.
    """
    r = reward.to(torch.float64)
    v = valid.to(torch.float64)
    count, total, squares = memory[:, 1:2], memory[:, 2:3], memory[:, 3:4]  # (B, 1) each
    if kind == "causal":
        x = r * v
        n = count + v.cumsum(1)  # (B, T) rewards seen up to and including t
        s = total + x.cumsum(1)
        q = squares + (x * x).cumsum(1)
        mean = s / n.clamp(min=1.0)
        std = (q / n.clamp(min=1.0) - mean * mean).clamp(min=0.0).sqrt()
        out = ((r - mean) / (std + STD_EPS)).clamp(-CLIP, CLIP)
        out = torch.where((n >= 2) & valid, out, torch.zeros_like(out))
        new_stats = torch.cat([n[:, -1:], s[:, -1:], q[:, -1:]], dim=1) if r.shape[1] else memory[:, 1:]
    elif kind == "symlog":
        out = torch.sign(r) * torch.log1p(r.abs())
        new_stats = memory[:, 1:]
    elif kind == "none":
        out = r
        new_stats = memory[:, 1:]
    else:
        raise ValueError(f"reward_transform must be one of {list(REWARD_TRANSFORMS)}, got {kind!r}")
    last = out[:, -1:] if r.shape[1] else memory[:, :1]
    return out.to(torch.float32), torch.cat([last, new_stats], dim=1)


__all__ = ["CLIP", "MEMORY", "REWARD_TRANSFORMS", "STD_EPS", "init_memory", "transform_rewards"]
