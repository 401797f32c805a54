"""Building blocks shared by the mixers: causal short convolution with an explicit cache, token
shift, RMS norms (plain and gated) and the SwiGLU feed-forward.

Caches are explicit values passed in and returned (never module state), so a sequence can be
split into segments anywhere and carried across them: running ``T1`` then ``T2`` steps from the
returned cache equals running ``T1 + T2`` steps at once. Shapes: ``B`` batch, ``T`` steps, ``D``
channels, ``W`` kernel width.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from omnirl._validate import check_int


class ShortConv(nn.Module):
    """Causal depthwise 1-D convolution over time, optionally followed by SiLU (as fla's
    ``ShortConvolution``). The cache holds the last ``W`` inputs ``(B, D, W)``, oldest first."""

    def __init__(self, dim: int, kernel: int = 4, activation: bool = True, bias: bool = False) -> None:
        super().__init__()
        self.dim = check_int("dim", dim, min_value=1)
        self.kernel = check_int("kernel", kernel, min_value=1)
        self.activation = activation
        self.weight = nn.Parameter(torch.empty(dim, 1, kernel))  # (D, 1, W) depthwise
        self.bias = nn.Parameter(torch.zeros(dim)) if bias else None
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def init_cache(self, batch: int, device=None) -> Tensor:
        """An all-zero cache ``(B, D, W)``: the sequence starts from silence."""
        return torch.zeros(batch, self.dim, self.kernel, device=device, dtype=torch.float32)

    def forward(self, x: Tensor, cache: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """x: ``(B, T, D)``; cache: ``(B, D, W)`` or ``None``. Returns ``y (B, T, D)`` and the new cache."""
        B, T, D = x.shape
        if D != self.dim:
            raise ValueError(f"x must have {self.dim} channels, got shape {tuple(x.shape)}")
        if cache is None:
            cache = self.init_cache(B, x.device)
        xt = x.transpose(1, 2)  # (B, D, T)
        full = torch.cat([cache[..., 1:].to(xt.dtype), xt], dim=-1)  # (B, D, W - 1 + T)
        y = F.conv1d(full, self.weight.to(xt.dtype), None if self.bias is None else self.bias.to(xt.dtype),
                     groups=D)  # (B, D, T)
        y = y.transpose(1, 2)  # (B, T, D)
        if self.activation:
            y = F.silu(y)
        new_cache = torch.cat([cache.to(xt.dtype), xt], dim=-1)[..., -self.kernel:]  # (B, D, W)
        return y, new_cache.float()


def token_shift(x: Tensor, last: Tensor | None) -> tuple[Tensor, Tensor]:
    """The previous step's input for every step: x ``(B, T, D)``, last ``(B, D)`` (the input before
    this segment, zeros at the start) -> ``(shifted (B, T, D), new last (B, D))``."""
    B, T, D = x.shape
    if last is None:
        last = x.new_zeros(B, D)
    shifted = torch.cat([last.to(x.dtype)[:, None], x[:, :-1]], dim=1)  # (B, T, D)
    return shifted, x[:, -1].float()


class GatedRMSNorm(nn.Module):
    """RMS norm with a SiLU gate: ``rmsnorm(x) * weight * silu(gate)`` (``norm_before_gate``, as
    fla's ``FusedRMSNormGated``), or ``rmsnorm(x * silu(gate)) * weight`` otherwise (Mamba2).
    With ``group_size`` the RMS is taken within each group of that many channels (Mamba2 with
    several groups normalises each group on its own)."""

    def __init__(self, dim: int, eps: float = 1e-5, norm_before_gate: bool = True,
                 group_size: int | None = None) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps
        self.norm_before_gate = norm_before_gate
        self.group_size = dim if group_size is None else check_int("group_size", group_size, min_value=1)
        if dim % self.group_size:
            raise ValueError(f"group_size={group_size} must divide dim={dim}")

    def forward(self, x: Tensor, gate: Tensor) -> Tensor:
        if not self.norm_before_gate:
            x = x * F.silu(gate)
        xg = x.unflatten(-1, (-1, self.group_size))  # (..., groups, group_size)
        y = (xg * torch.rsqrt(xg.pow(2).mean(-1, keepdim=True) + self.eps)).flatten(-2) * self.weight
        return y * F.silu(gate) if self.norm_before_gate else y


class SwiGLU(nn.Module):
    """The gated feed-forward ``down(silu(gate(x)) * up(x))`` of fla's blocks."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden, bias=False)
        self.up_proj = nn.Linear(dim, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class GeluMLP(nn.Module):
    """The two-layer feed-forward ``fc2(gelu(fc1(x)))`` (the GSA blocks' feed-forward)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class LoRA(nn.Module):
    """Low-rank projection ``up(act(down(x)))`` (RWKV-7's data-dependent gates). With ``zero_up``
    the up-projection starts at zero, so the gate starts at its bias for every input."""

    def __init__(self, dim: int, out: int, rank: int, activation: str | None = None,
                 bias: bool = True, zero_up: bool = True) -> None:
        super().__init__()
        self.down = nn.Linear(dim, rank, bias=False)
        self.up = nn.Linear(rank, out, bias=bias)
        self.activation = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, None: lambda t: t}[activation]
        if zero_up:
            nn.init.zeros_(self.up.weight)

    def forward(self, x: Tensor) -> Tensor:
        return self.up(self.activation(self.down(x)))
