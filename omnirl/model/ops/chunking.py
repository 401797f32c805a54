"""Helpers shared by the chunked ops: input checks, and splitting sequences into chunks and back."""

from __future__ import annotations

import torch
from torch import Tensor


def to_chunks(x: Tensor, C: int) -> Tensor:
    """``(B, T, H, *rest) -> (B, H, N, C, *rest)`` with ``N = ceil(T / C)``, zero-padded in time.

    Zero padding is neutral for every op here: a padded step has ``k = v = 0`` (nothing written),
    ``g = 0`` (no decay) and ``beta = 0`` (no erase), so the state after the last padded step is
    the state after step T.
    """
    B, T, H = x.shape[:3]
    N = -(-T // C)
    if N * C != T:
        x = torch.cat([x, x.new_zeros((B, N * C - T) + tuple(x.shape[2:]))], dim=1)
    x = x.reshape((B, N, C) + tuple(x.shape[2:]))  # (B, N, C, H, *rest)
    return x.movedim(3, 1).contiguous()  # (B, H, N, C, *rest)


def from_chunks(x: Tensor, T: int) -> Tensor:
    """``(B, H, N, C, D) -> (B, T, H, D)``, dropping the padded steps."""
    B, H, N, C, D = x.shape
    return x.movedim(1, 3).reshape(B, N * C, H, D)[:, :T]


def check_step_tensors(**tensors: Tensor) -> None:
    """Every argument must be a floating-point ``[B, T, H, D]`` tensor; a ValueError names the first
    one that is not."""
    for name, x in tensors.items():
        if not isinstance(x, Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 4:
            raise ValueError(f"{name} must have shape [B, T, H, D], got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor, got {x.dtype}")
