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
count, sum, sum of squares, minimum and maximum of the rewards seen (all 0 before the first);
every transform keeps all of them. The training forward pass (a sequence at a time)
and ``OmniRLAgent`` (a step at a time) call the same ``transform_rewards``, so both see the same
inputs; a fresh memory (``init_memory``) starts a new context.
"""

from __future__ import annotations

import torch
from torch import Tensor

REWARD_TRANSFORMS = ("none", "symlog", "causal", "range")
MEMORY = 6
"""Columns of the reward memory: last transformed reward, count, sum, sum of squares, minimum,
maximum."""
STD_EPS = 1e-3
"""Added to the running standard deviation of ``causal`` (rewards that never vary give 0)."""
RANGE_EPS = 1e-6
"""``range``: relative floor of the range (rewards that never vary give 0)."""
CLIP = 10.0
"""``causal`` values are clipped to ``[-CLIP, CLIP]`` (a z-score after t rewards is at most sqrt(t))."""


def init_memory(batch: int, device=None) -> Tensor:
    """An empty reward memory ``(B, MEMORY)``: no reward seen (all zeros; the minimum and maximum
    count from the first reward on)."""
    return torch.zeros(batch, MEMORY, device=device, dtype=torch.float64)


def transform_rewards(kind: str, reward: Tensor, valid: Tensor, memory: Tensor) -> tuple[Tensor, Tensor]:
    """Transformed rewards ``(B, T)`` float32 and the memory after them.

    reward ``(B, T)`` raw rewards; valid ``(B, T)`` bool, the steps whose reward counts (not
    episode-end markers); memory ``(B, MEMORY)`` the reward memory before the first step.
    The value at step ``t`` depends only on the rewards up to ``t`` and the memory. Every kind keeps
    all the statistics of the memory up to date.
    """
    if kind not in REWARD_TRANSFORMS:
        raise ValueError(f"reward_transform must be one of {list(REWARD_TRANSFORMS)}, got {kind!r}")
    if reward.shape[1] == 0:
        return reward.to(torch.float32), memory
    r = reward.to(torch.float64)
    v = valid.to(torch.float64)
    count, total, squares = memory[:, 1:2], memory[:, 2:3], memory[:, 3:4]  # (B, 1) each
    seen = count > 0
    low = torch.where(seen, memory[:, 4:5], torch.inf)
    high = torch.where(seen, memory[:, 5:6], -torch.inf)
    x = r * v
    n = count + v.cumsum(1)  # (B, T) rewards seen up to and including t
    s = total + x.cumsum(1)
    q = squares + (x * x).cumsum(1)
    lo = torch.minimum(torch.where(valid, r, torch.inf).cummin(1).values, low)  # (B, T)
    hi = torch.maximum(torch.where(valid, r, -torch.inf).cummax(1).values, high)
    if kind == "causal":
        mean = s / n.clamp(min=1.0)
        std = (q / n.clamp(min=1.0) - mean * mean).clamp(min=0.0).sqrt()
        out = ((r - mean) / (std + STD_EPS)).clamp(-CLIP, CLIP)
        out = torch.where((n >= 2) & valid, out, torch.zeros_like(out))
    elif kind == "range":
        span = torch.where(n >= 2, hi - lo, torch.zeros_like(r))
        floor = RANGE_EPS * torch.maximum(hi.abs(), lo.abs()).nan_to_num(posinf=0.0)
        out = torch.where((n >= 2) & valid & (span > 0), 2.0 * (r - lo) / (span + floor) - 1.0,
                          torch.zeros_like(r))
    elif kind == "symlog":
        out = torch.sign(r) * torch.log1p(r.abs())
    else:
        out = r
    last = n[:, -1:] > 0
    stats = [out[:, -1:], n[:, -1:], s[:, -1:], q[:, -1:], torch.where(last, lo[:, -1:], 0.0),
             torch.where(last, hi[:, -1:], 0.0)]
    return out.to(torch.float32), torch.cat(stats, dim=1)


__all__ = ["CLIP", "MEMORY", "RANGE_EPS", "REWARD_TRANSFORMS", "STD_EPS", "init_memory", "transform_rewards"]
