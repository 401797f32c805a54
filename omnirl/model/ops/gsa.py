"""Gated slot attention (GSA): two gated-linear-attention passes over ``M`` memory slots.

Layout: inputs ``[B, T, H, D]``, computed in fp32 (fp64 if ``q`` is fp64). The state is the pair
``(hk [B, H, K, M], hv [B, H, M, V])``, fp32.

Recurrence (fla's ``naive_recurrent_gsa(q, k, v, s, g=f, scale, initial_state=(hk, hv))``). Per
batch and head, with row vectors ``q_t, k_t in R^K``, ``v_t in R^V``, slot write weights
``s_t in R^M`` and the per-slot log forget gate ``f_t <= 0`` (``s_t = 1 - exp(f_t)`` in the GSA
layer, which also uses ``scale = 1``):

    hk_t = hk_{t-1} diag(exp(f_t)) + k_t^T s_t        # [K, M]: slot keys, decayed per slot (column)
    ok_t = scale * q_t hk_t                           # [M]: slot logits
    p_t  = softmax(ok_t)                              # over the M slots
    hv_t = diag(exp(f_t)) hv_{t-1} + s_t^T v_t        # [M, V]: slot values, decayed per slot (row)
    o_t  = p_t hv_t                                   # [V]

Pass one is a GLA whose decay sits on the value side (the slot axis of ``hk``); pass two is a GLA
whose decay sits on the key side (the slot axis of ``hv``). Both use the same gate ``f``.

``gsa_recurrent`` is the per-step reference; ``gsa_chunk`` is the chunked form used for training,
prefill and (with ``chunk_size=1``) decode.
"""

from __future__ import annotations

import torch
from torch import Tensor

from omnirl._validate import check_float, check_int
from omnirl.model.ops.chunking import check_step_tensors, from_chunks, to_chunks

__all__ = ["gsa_recurrent", "gsa_chunk"]


def _validate(q, k, v, s, f, scale, initial_state, chunk_size=None) -> tuple[int, int, int, int, int, int]:
    check_step_tensors(q=q, k=k, v=v, s=s, f=f)
    B, T, H, K = q.shape
    V, M = v.shape[-1], s.shape[-1]
    if T < 1:
        raise ValueError(f"q must have at least one time step, got shape {tuple(q.shape)}")
    if tuple(k.shape) != (B, T, H, K):
        raise ValueError(f"k must have shape {(B, T, H, K)} like q, got {tuple(k.shape)}")
    if tuple(v.shape[:3]) != (B, T, H):
        raise ValueError(f"v must have shape [B, T, H, V] = {(B, T, H)} + [V], got {tuple(v.shape)}")
    if tuple(s.shape[:3]) != (B, T, H):
        raise ValueError(f"s must have shape [B, T, H, M] = {(B, T, H)} + [M], got {tuple(s.shape)}")
    if tuple(f.shape) != (B, T, H, M):
        raise ValueError(f"f must have shape {(B, T, H, M)} like s, got {tuple(f.shape)}")
    if scale is not None:
        check_float("scale", scale)
    if initial_state is not None:
        if not isinstance(initial_state, (tuple, list)) or len(initial_state) != 2:
            raise ValueError("initial_state must be a pair (hk [B, H, K, M], hv [B, H, M, V]) or None")
        for name, x, shape in (("initial_state[0] (hk)", initial_state[0], (B, H, K, M)),
                               ("initial_state[1] (hv)", initial_state[1], (B, H, M, V))):
            if not isinstance(x, Tensor) or not x.is_floating_point():
                raise ValueError(f"{name} must be a floating-point torch.Tensor")
            if tuple(x.shape) != shape:
                raise ValueError(f"{name} must have shape {shape}, got {tuple(x.shape)}")
    if chunk_size is not None:
        check_int("chunk_size", chunk_size, min_value=1)
    with torch.no_grad():
        fmax, finite = torch.stack([f.max().to(torch.float64), torch.isfinite(f).all().to(torch.float64)]).tolist()
    if not finite:
        raise ValueError("f (log forget gate) must be finite")
    if fmax > 0:
        raise ValueError(f"f is a log forget gate and must be <= 0, got max(f) = {fmax:.4g}")
    return B, T, H, K, V, M


def _setup(q, k, v, s, f, scale, initial_state):
    dt = torch.float64 if any(x.dtype == torch.float64 for x in (q, k, v, s, f)) or (
        initial_state is not None and any(x.dtype == torch.float64 for x in initial_state)) else torch.float32
    scale = q.shape[-1] ** -0.5 if scale is None else float(scale)  # None: fla's default K^-1/2
    return dt, scale


def gsa_recurrent(q: Tensor, k: Tensor, v: Tensor, s: Tensor, f: Tensor, scale: float | None = 1.0,
                  initial_state: tuple[Tensor, Tensor] | None = None, output_final_state: bool = True
                  ) -> tuple[Tensor, tuple[Tensor, Tensor] | None]:
    """Per-step gated slot attention (reference), two passes as in the module docstring.

    Args: q, k ``[B, T, H, K]``, v ``[B, T, H, V]``, s, f ``[B, T, H, M]`` (``f <= 0``),
    initial_state ``(hk [B, H, K, M], hv [B, H, M, V])`` or None (zeros); ``scale=None`` means
    ``K ** -0.5``.
    Returns ``(o [B, T, H, V], (hk_T, hv_T) or None)`` in the compute dtype.
    """
    B, T, H, K, V, M = _validate(q, k, v, s, f, scale, initial_state)
    dt, scale = _setup(q, k, v, s, f, scale, initial_state)
    # [B, T, H, D] -> [B, H, T, D]
    q, k, v, s, f = (x.to(dt).transpose(1, 2) for x in (q, k, v, s, f))
    decay = f.exp()                                                                  # [B, H, T, M]
    if initial_state is None:
        hk, hv = q.new_zeros(B, H, K, M), q.new_zeros(B, H, M, V)
    else:
        hk, hv = (x.to(dt) for x in initial_state)
    logits = []
    for t in range(T):
        hk = hk * decay[:, :, t].unsqueeze(-2) + k[:, :, t].unsqueeze(-1) * s[:, :, t].unsqueeze(-2)
        logits.append(torch.einsum("bhk,bhkm->bhm", q[:, :, t], hk) * scale)       # [B, H, M]
    p = torch.stack(logits, dim=2).softmax(-1)                                       # [B, H, T, M]
    outs = []
    for t in range(T):
        hv = hv * decay[:, :, t].unsqueeze(-1) + s[:, :, t].unsqueeze(-1) * v[:, :, t].unsqueeze(-2)
        outs.append(torch.einsum("bhm,bhmv->bhv", p[:, :, t], hv))                   # [B, H, V]
    o = torch.stack(outs, dim=1)                                                     # [B, T, H, V]
    return o, ((hk, hv) if output_final_state else None)


def gsa_chunk(q: Tensor, k: Tensor, v: Tensor, s: Tensor, f: Tensor, scale: float | None = 1.0,
              initial_state: tuple[Tensor, Tensor] | None = None, output_final_state: bool = True,
              chunk_size: int = 8) -> tuple[Tensor, tuple[Tensor, Tensor] | None]:
    """Chunked gated slot attention; same recurrence and results as :func:`gsa_recurrent`.

    Inside a chunk of ``C`` steps entered with ``(hk_0, hv_0)``, let ``F_t = sum_{i<=t} f_i`` (per
    slot, inclusive) and ``E[t, j, m] = exp(F_t[m] - F_j[m])`` for ``j <= t`` (0 otherwise). Then

        ok_t[m] = scale [ e^{F_t[m]} (q_t hk_0)[m] + sum_{j<=t} (q_t . k_j) E[t,j,m] s_j[m] ]
        o_t     = (p_t e^{F_t}) hv_0 + sum_{j<=t} P[t, j] v_j,   P[t, j] = sum_m p_t[m] E[t,j,m] s_j[m]
        hk_C    = hk_0 diag(e^{F_C}) + k^T (s e^{F_C - F})
        hv_C    = diag(e^{F_C}) hv_0 + (s e^{F_C - F})^T v

    ``f`` is unbounded below, so ``E`` is never factorised as ``e^{F_t} e^{-F_j}`` (which would
    overflow): it is the exponential of the pairwise window sums ``F_t - F_j = sum_{j<i<=t} f_i``
    (a masked cumulative sum over a ``[C, C, M]`` tensor, exact even after a huge negative ``f``)
    with the ``j > t`` entries masked to ``-inf`` first, so every exponent is ``<= 0``. ``E * s`` is
    shared by both passes, and its last row ``s_j e^{F_C - F_j}`` feeds the state update. The state
    chain is not affected by the softmax, so ``hk`` and ``hv`` at every chunk start come from one
    loop over chunks; the intra-chunk terms are computed for all chunks at once.
    Padding steps (T not a multiple of C) use zero inputs and ``f = 0``, which leave the state
    unchanged.

    Args: as :func:`gsa_recurrent`, plus ``chunk_size`` (8 was fastest on a 2-core CPU).
    Returns ``(o [B, T, H, V], (hk_T [B, H, K, M], hv_T [B, H, M, V]) or None)``.
    """
    B, T, H, K, V, M = _validate(q, k, v, s, f, scale, initial_state, chunk_size)
    dt, scale = _setup(q, k, v, s, f, scale, initial_state)
    C = int(chunk_size)

    q, k, v, s, f = (to_chunks(x.to(dt), C) for x in (q, k, v, s, f))  # [B, H, N, C, D]
    F = f.cumsum(-2)                                             # [B, H, N, C, M]
    F_end = F[..., -1:, :]                                       # [B, H, N, 1, M]
    idx = torch.arange(C, device=q.device)
    after = (idx[:, None] > idx[None, :]).unsqueeze(-1)          # [C(t), C(j), 1]: j < t
    future = (idx[:, None] < idx[None, :]).unsqueeze(-1)         # [C(t), C(j), 1]: j > t
    # D[t, j] = F_t - F_j = sum_{j < i <= t} f_i, summed directly over the window rather than as a
    # difference of cumulative sums, which loses precision after a very negative f (F ~ -1e3).
    D = torch.where(after, f.unsqueeze(-2), 0.0).cumsum(-3)      # [B, H, N, C(t), C(j), M], <= 0
    E = D.masked_fill(future, float("-inf")).exp()               # e^{F_t - F_j} for j <= t, else 0
    Es = E * s.unsqueeze(-3)                                     # [B, H, N, C, C, M]  E[t,j,m] s_j[m]

    # state at every chunk start (one loop over chunks; both states only depend on k, v, s, f)
    s_tail = Es[..., -1, :, :]                                   # [B, H, N, C, M]  s_j e^{F_C - F_j}
    dk_all = k.transpose(-1, -2) @ s_tail                        # [B, H, N, K, M]
    dv_all = s_tail.transpose(-1, -2) @ v                        # [B, H, N, M, V]
    g_end = F_end.exp()                                          # [B, H, N, 1, M]
    if initial_state is None:
        hk, hv = q.new_zeros(B, H, K, M), q.new_zeros(B, H, M, V)
    else:
        hk, hv = (x.to(dt) for x in initial_state)
    hk0, hv0 = [], []
    # unbind (not indexing in the loop): its backward stacks the N gradients once instead of
    # scattering each into a full-size zero tensor
    for g, dk, dv in zip(g_end.unbind(2), dk_all.unbind(2), dv_all.unbind(2)):
        hk0.append(hk)
        hv0.append(hv)
        hk = hk * g + dk                                                          # [B, H, K, M]; g [B, H, 1, M]
        hv = hv * g.transpose(-1, -2) + dv                                        # [B, H, M, V]
    hk0, hv0 = torch.stack(hk0, dim=2), torch.stack(hv0, dim=2)   # [B, H, N, K, M], [B, H, N, M, V]

    # pass one: slot logits and their softmax
    A = q @ k.transpose(-1, -2)                                                   # [B, H, N, C, C]
    ok = (A.unsqueeze(-2) @ Es).squeeze(-2) + (q @ hk0) * F.exp()                 # [B, H, N, C, M]
    p = (ok * scale).softmax(-1)
    # pass two: read the slot values
    P = (p.unsqueeze(-2) @ Es.transpose(-1, -2)).squeeze(-2)                      # [B, H, N, C, C]
    o = P @ v + (p * F.exp()) @ hv0                                               # [B, H, N, C, V]
    o = from_chunks(o, T)                                                        # [B, T, H, V]
    return o, ((hk, hv) if output_final_state else None)
