"""Token mixers with explicit recurrent state, our own parameterisation of fla's layers.

Each mixer maps ``x (B, T, D)`` and a state to ``(y (B, T, D), new state)``; ``init_state(B)``
gives the state of an empty context. States are tuples of fp32 tensors with the batch first, so
they can be detached, saved, indexed by row and reset per row. Only the core recurrence is
dispatched by device (``ops.dispatch``); projections, convolutions and norms are plain torch on
both devices. Parameter names follow fla's layers so weights can be compared.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from omnirl._validate import check_float, check_int
from omnirl.model.layers import GatedRMSNorm, LoRA, ShortConv, token_shift
from omnirl.model.ops import dispatch

State = tuple[Tensor, ...]


def _inverse_softplus_dt(n: int, dt_min: float = 1e-3, dt_max: float = 0.1) -> Tensor:
    """``dt_bias`` such that ``softplus(dt_bias)`` is log-uniform in ``[dt_min, dt_max]``."""
    dt = torch.exp(torch.rand(n) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
    dt = dt.clamp(min=1e-4)
    return dt + torch.log(-torch.expm1(-dt))


class GatedDeltaNet(nn.Module):
    """Gated DeltaNet (Yang et al., 2024): short-convolved, L2-normalised keys and queries, the
    gated delta rule ``S_t = (I - beta_t k_t^T k_t) exp(g_t) S_{t-1} + beta_t k_t^T v_t`` with
    ``g = -exp(A_log) softplus(a_proj(x) + dt_bias)`` and ``beta = sigmoid(b_proj(x))``, then a
    gated RMS norm and the output projection.

    State: ``(conv_q (B, H K, W), conv_k (B, H K, W), conv_v (B, H V, W), S (B, H, K, V))``.
    """

    def __init__(self, dim: int, heads: int, head_dim: int, expand_v: float = 1.0,
                 conv_kernel: int = 4, norm_eps: float = 1e-5) -> None:
        super().__init__()
        self.dim = check_int("dim", dim, min_value=1)
        self.heads = check_int("heads", heads, min_value=1)
        self.head_k = check_int("head_dim", head_dim, min_value=1)
        self.head_v = int(head_dim * check_float("expand_v", expand_v, min_value=0.0, min_inclusive=False))
        if self.head_v < 1:
            raise ValueError(f"expand_v={expand_v} leaves no value dimension for head_dim={head_dim}")
        HK, HV = heads * self.head_k, heads * self.head_v
        self.q_proj = nn.Linear(dim, HK, bias=False)
        self.k_proj = nn.Linear(dim, HK, bias=False)
        self.v_proj = nn.Linear(dim, HV, bias=False)
        self.a_proj = nn.Linear(dim, heads, bias=False)
        self.b_proj = nn.Linear(dim, heads, bias=False)
        self.A_log = nn.Parameter(torch.log(torch.empty(heads).uniform_(1.0, 16.0)))
        self.dt_bias = nn.Parameter(_inverse_softplus_dt(heads))
        self.q_conv1d = ShortConv(HK, conv_kernel)
        self.k_conv1d = ShortConv(HK, conv_kernel)
        self.v_conv1d = ShortConv(HV, conv_kernel)
        self.g_proj = nn.Linear(dim, HV, bias=False)
        self.o_norm = GatedRMSNorm(self.head_v, norm_eps)
        self.o_proj = nn.Linear(HV, dim, bias=False)

    def init_state(self, batch: int, device=None) -> State:
        H, K, V = self.heads, self.head_k, self.head_v
        return (self.q_conv1d.init_cache(batch, device), self.k_conv1d.init_cache(batch, device),
                self.v_conv1d.init_cache(batch, device),
                torch.zeros(batch, H, K, V, device=device, dtype=torch.float32))

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        B, T, _ = x.shape  # (B, T, D)
        cq, ck, cv, S = self.init_state(B, x.device) if state is None else state
        H, K, V = self.heads, self.head_k, self.head_v
        q, cq = self.q_conv1d(self.q_proj(x), cq)  # (B, T, H K)
        k, ck = self.k_conv1d(self.k_proj(x), ck)
        v, cv = self.v_conv1d(self.v_proj(x), cv)  # (B, T, H V)
        q = F.normalize(q.view(B, T, H, K).float(), dim=-1)  # (B, T, H, K)
        k = F.normalize(k.view(B, T, H, K).float(), dim=-1)
        v = v.view(B, T, H, V).float()  # (B, T, H, V)
        beta = torch.sigmoid(self.b_proj(x)).float()  # (B, T, H)
        g = -self.A_log.float().exp() * F.softplus(self.a_proj(x).float() + self.dt_bias)  # (B, T, H)
        o, S = dispatch.gated_delta_rule(q, k, v, g, beta, K ** -0.5, S)  # (B, T, H, V)
        o = self.o_norm(o, self.g_proj(x).view(B, T, H, V).float())
        return self.o_proj(o.reshape(B, T, H * V).to(x.dtype)), (cq, ck, cv, S)


class Mamba2(nn.Module):
    """Mamba2 (Dao and Gu, 2024): ``in_proj`` gives the gate ``z``, ``xBC`` and ``dt``; ``xBC`` goes
    through a causal convolution and SiLU; the selective scan is gated linear attention with a
    scalar decay (``q = C, k = B, v = dt x, g = dt A``, ``A = -exp(A_log)``), which carries state
    across segments; then ``y + D x``, a gated RMS norm with ``z`` and ``out_proj``.

    State: ``(conv (B, I + 2 G N, W), S (B, H, N, P))`` with inner width ``I = H P``.
    """

    def __init__(self, dim: int, head_dim: int, expand: float = 2.0, state_size: int = 128,
                 n_groups: int = 1, conv_kernel: int = 4, norm_eps: float = 1e-5) -> None:
        super().__init__()
        self.dim = check_int("dim", dim, min_value=1)
        self.head_dim = check_int("head_dim", head_dim, min_value=1)
        inner = int(dim * check_float("expand", expand, min_value=0.0, min_inclusive=False))
        if inner % head_dim:
            raise ValueError(f"expand * dim = {inner} must be a multiple of head_dim={head_dim}")
        self.inner, self.heads = inner, inner // head_dim
        self.state_size = check_int("state_size", state_size, min_value=1)
        self.n_groups = check_int("n_groups", n_groups, min_value=1)
        if self.heads % n_groups:
            raise ValueError(f"heads={self.heads} must be a multiple of n_groups={n_groups}")
        conv_dim = inner + 2 * n_groups * state_size
        self.in_proj = nn.Linear(dim, inner + conv_dim + self.heads, bias=False)
        self.conv1d = ShortConv(conv_dim, conv_kernel, bias=True)
        self.dt_bias = nn.Parameter(_inverse_softplus_dt(self.heads))
        self.A_log = nn.Parameter(torch.log(torch.empty(self.heads).uniform_(1.0, 16.0)))
        self.D = nn.Parameter(torch.ones(self.heads))
        self.norm = GatedRMSNorm(inner, norm_eps, norm_before_gate=False, group_size=inner // n_groups)
        self.out_proj = nn.Linear(inner, dim, bias=False)

    def init_state(self, batch: int, device=None) -> State:
        return (self.conv1d.init_cache(batch, device),
                torch.zeros(batch, self.heads, self.state_size, self.head_dim, device=device,
                            dtype=torch.float32))

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        B, T, _ = x.shape  # (B, T, D)
        conv, S = self.init_state(B, x.device) if state is None else state
        H, P, N, G, I = self.heads, self.head_dim, self.state_size, self.n_groups, self.inner
        z, xbc, dt = torch.split(self.in_proj(x), [I, I + 2 * G * N, H], dim=-1)
        xbc, conv = self.conv1d(xbc, conv)  # (B, T, I + 2 G N), SiLU applied
        xs, Bm, Cm = torch.split(xbc.float(), [I, G * N, G * N], dim=-1)
        xs = xs.view(B, T, H, P)  # (B, T, H, P)
        rep = H // G
        Bm = Bm.view(B, T, G, N).repeat_interleave(rep, dim=2)  # (B, T, H, N)
        Cm = Cm.view(B, T, G, N).repeat_interleave(rep, dim=2)
        dt = F.softplus(dt.float() + self.dt_bias)  # (B, T, H)
        A = -self.A_log.float().exp()  # (H,)
        o, S = dispatch.simple_gla(Cm, Bm, xs * dt[..., None], dt * A, 1.0, S)  # (B, T, H, P)
        y = (o + self.D[:, None] * xs).reshape(B, T, I)  # (B, T, I)
        y = self.norm(y, z.float())
        return self.out_proj(y.to(x.dtype)), (conv, S)


def _lora_rank(dim: int, factor: float) -> int:
    """fla's default low-rank size: ``max(32, round(factor * sqrt(dim) / 32) * 32)``."""
    return max(32, int(round(factor * math.sqrt(dim) / 32)) * 32)


def _shift_ramp(dim: int, power: float) -> Tensor:
    """Initial token-shift mix ``1 - (i / dim)^power`` per channel."""
    return 1.0 - (torch.arange(dim, dtype=torch.float32) / dim) ** power


RWKV7_DECAY_BOUND = math.exp(-0.5)
"""RWKV-7's log-decay lies in ``(-exp(-0.5), 0)`` (``w = -exp(-0.5) * sigmoid(.)``)."""


class RWKV7(nn.Module):
    """RWKV-7 time mixing (Peng et al., 2025): token-shift interpolations of the input feed the
    receptance, key and value projections and low-rank data-dependent gates; the state follows
    the diagonal-plus-low-rank delta rule ``S_t = S_{t-1} (diag(exp(w_t)) + a_t^T b_t) + v_t^T k_t``
    with ``a = -kk``, ``b = kk * a_gate`` (``kk``: normalised key); the value of the first layer
    (``v_first``) is mixed into later layers' values; group norm, the bonus ``(r k r_k) v`` and an
    output gate follow.

    State: ``(last input (B, D), S (B, H, K, V))``. ``forward`` takes and returns ``v_first``
    (``None`` for the first layer, which produces it).
    """

    def __init__(self, dim: int, heads: int, head_dim: int, layer_idx: int, norm_eps: float = 1e-5) -> None:
        super().__init__()
        self.dim = check_int("dim", dim, min_value=1)
        self.heads = check_int("heads", heads, min_value=1)
        self.head_dim = check_int("head_dim", head_dim, min_value=1)
        self.layer_idx = check_int("layer_idx", layer_idx, min_value=0)
        inner = heads * head_dim
        # token-shift mixes start as channel ramps 1 - (i/D)^p: some channels look at the
        # previous step, others at the current one
        self.x_r, self.x_w, self.x_k, self.x_v, self.x_a, self.x_g = (
            nn.Parameter(_shift_ramp(dim, p)) for p in (0.2, 0.9, 0.7, 0.7, 0.9, 0.2))
        self.r_proj = nn.Linear(dim, inner, bias=False)
        self.k_proj = nn.Linear(dim, inner, bias=False)
        self.v_proj = nn.Linear(dim, inner, bias=False)
        self.o_proj = nn.Linear(inner, dim, bias=False)
        self.w_lora = LoRA(dim, inner, _lora_rank(dim, 2.5), activation="tanh")
        self.a_lora = LoRA(dim, inner, _lora_rank(dim, 2.5))
        self.v_lora = LoRA(dim, inner, _lora_rank(dim, 1.7)) if layer_idx > 0 else None
        self.g_lora = LoRA(dim, inner, _lora_rank(dim, 5.0), activation="sigmoid", bias=False,
                           zero_up=False)
        # decay biases spread from slow (sigmoid(-7): w ~ -5e-4, memory of ~2000 steps) to fast
        # (sigmoid(-2): w ~ -0.07) over the channels, so the state starts with long memories
        with torch.no_grad():
            ramp = torch.arange(inner, dtype=torch.float32) / max(inner - 1, 1)
            self.w_lora.up.bias.copy_(-7.0 + 5.0 * ramp ** 0.85)
        self.k_k = nn.Parameter(torch.full((inner,), 0.85))
        self.k_a = nn.Parameter(torch.ones(inner))
        self.r_k = nn.Parameter(torch.zeros(heads, head_dim))
        self.g_norm = nn.GroupNorm(heads, inner, eps=head_dim * norm_eps)

    def init_state(self, batch: int, device=None) -> State:
        return (torch.zeros(batch, self.dim, device=device, dtype=torch.float32),
                torch.zeros(batch, self.heads, self.head_dim, self.head_dim, device=device,
                            dtype=torch.float32))

    def forward(self, x: Tensor, state: State | None = None,
                v_first: Tensor | None = None) -> tuple[Tensor, State, Tensor]:
        B, T, _ = x.shape  # (B, T, D)
        last, S = self.init_state(B, x.device) if state is None else state
        H, K = self.heads, self.head_dim
        shifted, last = token_shift(x, last)
        delta = shifted - x  # (B, T, D)
        xr, xw, xk, xv, xa, xg = (x + delta * m for m in (self.x_r, self.x_w, self.x_k, self.x_v,
                                                          self.x_a, self.x_g))
        r = self.r_proj(xr).float()  # (B, T, H K)
        w = -RWKV7_DECAY_BOUND * torch.sigmoid(self.w_lora(xw).float())  # (B, T, H K) in (-0.61, 0)
        k = self.k_proj(xk).float()
        v = self.v_proj(xv).float()
        if self.v_lora is None:
            v_first = v
        else:
            if v_first is None:
                raise ValueError(f"RWKV7 layer {self.layer_idx} needs the first layer's v_first")
            v = torch.lerp(v, v_first, torch.sigmoid(self.v_lora(xv).float()))
        a = torch.sigmoid(self.a_lora(xa).float())  # (B, T, H K)
        g = self.g_lora(xg).float()
        kk = F.normalize((k * self.k_k).view(B, T, H, K), dim=-1)  # (B, T, H, K)
        k = k * (1 + (a - 1) * self.k_a)
        heads = lambda t: t.view(B, T, H, K)  # noqa: E731
        o, S = dispatch.dplr(heads(r), heads(k), heads(v), -kk, kk * heads(a), heads(w), 1.0, S)
        o = self.g_norm(o.reshape(B * T, H * K)).view(B, T, H, K)  # (B, T, H, K)
        bonus = (heads(r) * heads(k) * self.r_k).sum(-1, keepdim=True) * heads(v)  # (B, T, H, K)
        o = ((o + bonus).reshape(B, T, H * K) * g).to(x.dtype)
        return self.o_proj(o), (last, S), v_first


class RWKV7FeedForward(nn.Module):
    """RWKV-7 channel mixing: a token-shift interpolation, ``relu(key(x))^2``, then ``value``.
    State: the last input ``(B, D)``."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.x_k = nn.Parameter(_shift_ramp(dim, 1.0))
        self.key = nn.Linear(dim, hidden, bias=False)
        self.value = nn.Linear(hidden, dim, bias=False)
        self.dim = dim

    def init_state(self, batch: int, device=None) -> State:
        return (torch.zeros(batch, self.dim, device=device, dtype=torch.float32),)

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        last = None if state is None else state[0]
        shifted, last = token_shift(x, last)
        h = x + (shifted - x) * self.x_k  # (B, T, D)
        return self.value(F.relu(self.key(h)).square()), (last,)


class GatedSlotAttention(nn.Module):
    """Gated Slot Attention (Zhang et al., 2024): swish feature maps on queries and keys, SiLU
    values, per-slot forget gates ``f = logsigmoid(f_proj(x)) / 8`` with write weights
    ``s = 1 - exp(f)``, two gated passes over ``M`` slots (``ops.gsa``), then an RMS norm of
    ``silu(o)`` and the output projection.

    State: ``(hk (B, H, K, M), hv (B, H, M, V))``.
    """

    def __init__(self, dim: int, heads: int, head_dim: int, num_slots: int = 64,
                 gate_logit_normalizer: float = 8.0, norm_eps: float = 1e-5) -> None:
        super().__init__()
        self.dim = check_int("dim", dim, min_value=1)
        self.heads = check_int("heads", heads, min_value=1)
        self.head_dim = check_int("head_dim", head_dim, min_value=1)
        self.num_slots = check_int("num_slots", num_slots, min_value=1)
        self.normalizer = check_float("gate_logit_normalizer", gate_logit_normalizer, min_value=0.0,
                                      min_inclusive=False)
        inner = heads * head_dim
        self.q_proj = nn.Linear(dim, inner, bias=False)
        self.k_proj = nn.Linear(dim, inner, bias=False)
        self.v_proj = nn.Linear(dim, inner, bias=False)
        self.f_proj = nn.Linear(dim, heads * num_slots, bias=False)
        self.g_norm = nn.RMSNorm(head_dim, eps=norm_eps)
        self.o_proj = nn.Linear(inner, dim, bias=False)

    def init_state(self, batch: int, device=None) -> State:
        H, K, M = self.heads, self.head_dim, self.num_slots
        z = lambda *s: torch.zeros(batch, *s, device=device, dtype=torch.float32)  # noqa: E731
        return (z(H, K, M), z(H, M, K))

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        B, T, _ = x.shape  # (B, T, D)
        hk, hv = self.init_state(B, x.device) if state is None else state
        H, K, M = self.heads, self.head_dim, self.num_slots
        q = F.silu(self.q_proj(x).float()).view(B, T, H, K)  # (B, T, H, K)
        k = F.silu(self.k_proj(x).float()).view(B, T, H, K)
        v = F.silu(self.v_proj(x).float()).view(B, T, H, K)
        f = F.logsigmoid(self.f_proj(x).float()).view(B, T, H, M) / self.normalizer  # (B, T, H, M)
        s = -torch.expm1(f)  # 1 - exp(f)
        o, (hk, hv) = dispatch.gsa(q, k, v, s, f, 1.0, (hk, hv))  # (B, T, H, K)
        o = self.g_norm(F.silu(o)).reshape(B, T, H * K).to(x.dtype)
        return self.o_proj(o), (hk, hv)


def rotary(x: Tensor, positions: Tensor, base: float) -> Tensor:
    """Rotary position embedding: x ``(B, T, H, K)`` (``K`` even) rotated by ``positions (B, T)``;
    channel pairs ``(i, i + K / 2)`` turn at frequencies ``base^(-2 i / K)``."""
    half = x.shape[-1] // 2
    freq = base ** (-torch.arange(half, device=x.device, dtype=torch.float32) / half)  # (K/2,)
    angle = positions[..., None, None] * freq  # (B, T, 1, K/2)
    cos, sin = angle.cos(), angle.sin()
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class CausalSelfAttention(nn.Module):
    """Softmax self-attention (``F.scaled_dot_product_attention``) with rotary positions over a
    rolling key-value cache: a token attends to itself, the earlier tokens of its segment and the
    last ``window`` tokens before it. Queries, keys and values first pass short causal convolutions
    (``conv_kernel`` tokens, as Gated DeltaNet's; 0: none), so that, like every recurrent backbone
    here (token shift, short convolutions), a token sees its neighbours without spending an
    attention layer on it: a step's fields spread over adjacent tokens. The control backbone: its
    memory is exact up to the window, so it separates what a recurrent state cannot hold from what
    the data and optimisation cannot teach.

    State: ``(keys (B, H, W, K), values (B, H, W, K), filled (B, W), position (B,))``, then the
    convolutions' caches ``(B, H K, conv_kernel)`` of queries, keys and values: the rotated keys and
    the values of the last ``W`` tokens (oldest first), 1 where a slot holds a token, and the
    number of tokens seen. Zeros are an empty context.
    """

    def __init__(self, dim: int, heads: int, head_dim: int, window: int, rope_base: float = 10000.0,
                 conv_kernel: int = 4) -> None:
        super().__init__()
        self.dim = check_int("dim", dim, min_value=1)
        self.heads = check_int("heads", heads, min_value=1)
        self.head_dim = check_int("head_dim", head_dim, min_value=2)
        if head_dim % 2:
            raise ValueError(f"head_dim={head_dim} must be even for rotary positions")
        self.window = check_int("window", window, min_value=1)
        self.rope_base = check_float("rope_base", rope_base, min_value=1.0, min_inclusive=False)
        inner = heads * head_dim
        self.q_proj = nn.Linear(dim, inner, bias=False)
        self.k_proj = nn.Linear(dim, inner, bias=False)
        self.v_proj = nn.Linear(dim, inner, bias=False)
        self.o_proj = nn.Linear(inner, dim, bias=False)
        self.conv_kernel = check_int("conv_kernel", conv_kernel, min_value=0)
        self.convs = nn.ModuleList(ShortConv(inner, conv_kernel, activation=False) for _ in range(3)) \
            if conv_kernel else None

    def init_state(self, batch: int, device=None) -> State:
        H, W, K = self.heads, self.window, self.head_dim
        z = lambda *s: torch.zeros(batch, *s, device=device, dtype=torch.float32)  # noqa: E731
        convs = tuple(c.init_cache(batch, device) for c in self.convs) if self.convs is not None else ()
        return (z(H, W, K), z(H, W, K), z(W), z(), *convs)

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        B, T, _ = x.shape  # (B, T, D)
        keys, values, filled, position, *caches = self.init_state(B, x.device) if state is None else state
        H, K = self.heads, self.head_dim
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)  # (B, T, H K)
        if self.convs is not None:
            (q, cq), (k, ck), (v, cv) = (conv(t, c) for conv, t, c in zip(self.convs, (q, k, v), caches))
            caches = [cq, ck, cv]
        positions = position[:, None] + torch.arange(T, device=x.device, dtype=torch.float32)  # (B, T)
        q = rotary(q.float().view(B, T, H, K), positions, self.rope_base).transpose(1, 2)  # (B, H, T, K)
        k = rotary(k.float().view(B, T, H, K), positions, self.rope_base).transpose(1, 2)
        v = v.float().view(B, T, H, K).transpose(1, 2)  # (B, H, T, K)
        all_k = torch.cat([keys, k], dim=2)  # (B, H, W + T, K)
        all_v = torch.cat([values, v], dim=2)
        all_filled = torch.cat([filled, filled.new_ones(B, T)], dim=1)  # (B, W + T)
        causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()  # (T, T)
        if bool(filled.any()):
            past = (filled > 0)[:, None, None, :].expand(B, 1, T, self.window)  # (B, 1, T, W)
            mask = torch.cat([past, causal.expand(B, 1, T, T)], dim=-1)  # (B, 1, T, W + T)
            o = F.scaled_dot_product_attention(q, all_k, all_v, attn_mask=mask)  # (B, H, T, K)
        else:  # an empty context: only the segment itself
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        o = o.transpose(1, 2).reshape(B, T, H * K).to(x.dtype)
        W = self.window
        return self.o_proj(o), (all_k[:, :, -W:], all_v[:, :, -W:], all_filled[:, -W:], position + T, *caches)
