"""Backbones: N pre-norm blocks of one mixer kind behind one interface, with explicit state.

``build_backbone(config)`` returns a ``Backbone`` with

* ``forward(x (B, T, D), state) -> (y (B, T, D), new_state)``; ``state=None`` is an empty context;
* ``init_state(B)``: the state of an empty context.

A state is a tuple (one entry per block) of tuples of fp32 tensors with the batch first, so
``detach_state``, ``select_rows`` and ``reset_rows`` work on any backbone. There is no hidden
memory inside modules: whoever carries the state owns it.

Backbones (names as the paper's Table 6): ``rwkv7``, ``gdn`` (Gated DeltaNet), ``gsa`` (Gated
Slot Attention), ``mamba2``; and a control, ``transformer`` (softmax attention over a rolling
key-value cache, ``mixers.CausalSelfAttention``), whose memory is exact within its window. A block
is ``x + mixer(norm(x))`` followed by ``x + ffn(norm(x))`` (SwiGLU for GDN and the transformer,
RWKV-7's channel mix for RWKV-7, a GELU MLP for GSA, none for Mamba2).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from torch import Tensor, nn

from omnirl._validate import check_choice, check_float, check_int
from omnirl.model.layers import GeluMLP, SwiGLU
from omnirl.model.mixers import (RWKV7, CausalSelfAttention, GatedDeltaNet, GatedSlotAttention, Mamba2,
                                 RWKV7FeedForward)

BACKBONES = ("rwkv7", "gdn", "gsa", "mamba2")
"""The paper's backbones (its Table 6), compared by ``experiments.arch_comparison``."""
CONTROLS = ("transformer",)
"""Control backbones: not the paper's, there to tell a recurrent state's capacity from what the data
and the optimisation teach."""
ALL_BACKBONES = BACKBONES + CONTROLS
"""Every backbone a model can be built on."""
DEFAULT_HEAD_DIM = {"rwkv7": 64, "gdn": 48, "gsa": 64, "mamba2": 128, "transformer": 64}
"""Head dimensions of the paper's Table 6 (and 64 for the transformer)."""

State = tuple[tuple[Tensor, ...], ...]


@dataclasses.dataclass(frozen=True)
class BackboneConfig:
    """Size and kind of a backbone."""

    name: str = "rwkv7"
    """Mixer kind: ``rwkv7``, ``gdn``, ``gsa``, ``mamba2`` or the control ``transformer``."""
    dim: int = 512
    """Hidden width ``D``."""
    layers: int = 18
    """Number of blocks."""
    heads: int = 8
    """Attention heads (RWKV-7, GDN, GSA, transformer); Mamba2's heads are ``expand * dim / head_dim``."""
    head_dim: int | None = None
    """Head dimension; ``None`` takes the paper's (RWKV-7 64, GDN 48, GSA 64, Mamba2 128; transformer 64)."""
    ffn_hidden: int = 1024
    """Hidden width of the feed-forward (unused by Mamba2 blocks, which have none)."""
    num_slots: int = 64
    """GSA memory slots."""
    state_size: int = 128
    """Mamba2 SSM state size ``N``."""
    expand: float = 2.0
    """Mamba2 inner width ``expand * dim``."""
    window: int = 4096
    """Transformer: tokens before a segment that a token can attend to (its key-value cache)."""
    gdn_expand_v: float = 1.0
    """GDN value head dimension as a multiple of ``head_dim``."""
    norm_eps: float = 1e-5
    """Epsilon of the RMS norms."""

    def __post_init__(self) -> None:
        check_choice("name", self.name, ALL_BACKBONES)
        for f in ("dim", "layers", "heads", "ffn_hidden", "num_slots", "state_size", "window"):
            check_int(f, getattr(self, f), min_value=1)
        if self.head_dim is not None:
            check_int("head_dim", self.head_dim, min_value=1)
        check_float("expand", self.expand, min_value=0.0, min_inclusive=False)
        check_float("gdn_expand_v", self.gdn_expand_v, min_value=0.0, min_inclusive=False)
        check_float("norm_eps", self.norm_eps, min_value=0.0, min_inclusive=False)

    @property
    def resolved_head_dim(self) -> int:
        return self.head_dim if self.head_dim is not None else DEFAULT_HEAD_DIM[self.name]


SIZES: dict[str, dict[str, Any]] = {
    "paper": {},  # Table 6: 18 blocks, hidden 512, 8 heads, the default head dims
    "tiny": {"dim": 64, "layers": 2, "heads": 2, "head_dim": 32, "ffn_hidden": 128, "num_slots": 16,
             "state_size": 16},
    "small": {"dim": 128, "layers": 4, "heads": 4, "head_dim": 32, "ffn_hidden": 256, "num_slots": 32,
              "state_size": 32},
}
"""Named sizes: ``paper`` (the paper's Table 6), ``small`` and ``tiny`` (train on a laptop CPU)."""


def sized(size: str, backbone: str, **overrides: Any) -> BackboneConfig:
    """The configuration of ``backbone`` at the named size (``SIZES``: ``tiny``, ``small`` or ``paper``), with
    ``overrides``."""
    return BackboneConfig(name=backbone, **{**SIZES[check_choice("size", size, SIZES)], **overrides})


class Block(nn.Module):
    """``x + mixer(norm(x))`` then ``x + ffn(norm(x))``; state ``(mixer state..., ffn state...)``."""

    def __init__(self, config: BackboneConfig, layer_idx: int) -> None:
        super().__init__()
        c, hd = config, config.resolved_head_dim
        self.kind = c.name
        self.mixer_norm = nn.RMSNorm(c.dim, eps=c.norm_eps)
        if c.name == "rwkv7":
            self.mixer = RWKV7(c.dim, c.heads, hd, layer_idx, c.norm_eps)
            self.ffn = RWKV7FeedForward(c.dim, c.ffn_hidden)
        elif c.name == "gdn":
            self.mixer = GatedDeltaNet(c.dim, c.heads, hd, c.gdn_expand_v, norm_eps=c.norm_eps)
            self.ffn = SwiGLU(c.dim, c.ffn_hidden)
        elif c.name == "transformer":
            self.mixer = CausalSelfAttention(c.dim, c.heads, hd, c.window)
            self.ffn = SwiGLU(c.dim, c.ffn_hidden)
        elif c.name == "gsa":
            self.mixer = GatedSlotAttention(c.dim, c.heads, hd, c.num_slots, norm_eps=c.norm_eps)
            self.ffn = GeluMLP(c.dim, c.ffn_hidden)
        else:
            self.mixer = Mamba2(c.dim, hd, c.expand, c.state_size, norm_eps=c.norm_eps)
            self.ffn = None
        self.ffn_norm = nn.RMSNorm(c.dim, eps=c.norm_eps) if self.ffn is not None else None
        self.n_mixer_state = len(self.mixer.init_state(1))

    def init_state(self, batch: int, device=None) -> tuple[Tensor, ...]:
        ffn = self.ffn.init_state(batch, device) if isinstance(self.ffn, RWKV7FeedForward) else ()
        return (*self.mixer.init_state(batch, device), *ffn)

    def forward(self, x: Tensor, state: tuple[Tensor, ...],
                v_first: Tensor | None = None) -> tuple[Tensor, tuple[Tensor, ...], Tensor | None]:
        ms, fs = state[:self.n_mixer_state], state[self.n_mixer_state:]
        h = self.mixer_norm(x)
        if self.kind == "rwkv7":
            y, ms, v_first = self.mixer(h, ms, v_first)
        else:
            y, ms = self.mixer(h, ms)
        x = x + y
        if self.ffn is not None:
            h = self.ffn_norm(x)
            if isinstance(self.ffn, RWKV7FeedForward):
                y, fs = self.ffn(h, fs)
            else:
                y = self.ffn(h)
            x = x + y
        return x, (*ms, *fs), v_first


class Backbone(nn.Module):
    """``layers`` blocks and a final norm (see the module docstring)."""

    def __init__(self, config: BackboneConfig) -> None:
        super().__init__()
        self.config = config
        self.blocks = nn.ModuleList(Block(config, i) for i in range(config.layers))
        self.norm = nn.RMSNorm(config.dim, eps=config.norm_eps)

    def init_state(self, batch: int, device=None) -> State:
        batch = check_int("batch", batch, min_value=1)
        return tuple(b.init_state(batch, device) for b in self.blocks)

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """x: ``(B, T, D)`` -> ``(y (B, T, D), new state)``."""
        if x.ndim != 3 or x.shape[-1] != self.config.dim:
            raise ValueError(f"x must have shape (B, T, {self.config.dim}), got {tuple(x.shape)}")
        if state is None:
            state = self.init_state(x.shape[0], x.device)
        if len(state) != len(self.blocks):
            raise ValueError(f"state has {len(state)} layers, the backbone {len(self.blocks)}")
        new, v_first = [], None
        for block, s in zip(self.blocks, state):
            x, s, v_first = block(x, s, v_first)
            new.append(s)
        return self.norm(x), tuple(new)


def build_backbone(config: BackboneConfig) -> Backbone:
    """The backbone of ``config`` (``BackboneConfig``, e.g. one of the named sizes via ``sized``)."""
    if not isinstance(config, BackboneConfig):
        raise ValueError(f"config must be a BackboneConfig, got {type(config).__name__}")
    return Backbone(config)


def detach_state(state: State) -> State:
    """The same state cut from the autograd graph (between training segments)."""
    return tuple(tuple(t.detach() for t in layer) for layer in state)


def select_rows(state: State, rows: Tensor | slice) -> State:
    """The state of a subset of batch rows."""
    return tuple(tuple(t[rows] for t in layer) for layer in state)


def reset_rows(state: State, rows: Tensor) -> State:
    """The state with ``rows`` (bool ``(B,)`` mask or indices) back to an empty context (zeros)."""
    out = []
    for layer in state:
        new = []
        for t in layer:
            t = t.clone()
            t[rows] = 0.0
            new.append(t)
        out.append(tuple(new))
    return tuple(out)
