"""Diagonal-plus-low-rank (DPLR) delta rule, the core recurrence of RWKV-7.

Layout (shared by every op in :mod:`omnirl.model.ops`): inputs ``[B, T, H, D]``, recurrent state
fp32 and key-first ``S [B, H, K, V]``. Computation is in fp32 (fp64 if ``q`` is fp64).

Recurrence (fla's ``dplr_recurrence`` with the state key-first). With row vectors
``q_t, k_t, a_t, b_t, w_t in R^K`` and ``v_t in R^V`` (per batch and head):

    u_t = a_t S_{t-1}                                       # [V]: the state read out along a_t
    S_t = diag(exp(w_t)) S_{t-1} + b_t^T u_t + k_t^T v_t    # [K, V]
        = (diag(exp(w_t)) + b_t^T a_t) S_{t-1} + k_t^T v_t
    o_t = scale * q_t S_t                                   # [V], read after the update

Per entry: ``S_t[i, j] = exp(w_t[i]) S_{t-1}[i, j] + b_t[i] * sum_l a_t[l] S_{t-1}[l, j]
+ k_t[i] v_t[j]``; every value column ``S[:, j]`` evolves independently under the same
``K x K`` transition ``diag(exp(w_t)) + b_t^T a_t``. The low-rank term reads the *undecayed*
``S_{t-1}``. Transposed to the value-first layout ``S^T [V, K]`` this is RWKV-7's
``S_t = S_{t-1} (diag(exp(w_t)) + a_t^T b_t) + v_t^T k_t``; the RWKV-7 layer calls it with
``a = -kk``, ``b = kk * a_gate`` and the log-decay ``w = -exp(-0.5) * sigmoid(.)`` in
``(-0.6065, 0)`` (fla: ``chunk_rwkv7(r, w, k, v, -kk, kk * a, ...)``; note that fla puts ``w``
second while here it comes last).

``dplr_recurrent`` is the per-step reference; ``dplr_chunk`` is the chunked form used for training,
prefill and (with ``chunk_size=1``) decode.
"""

from __future__ import annotations

import torch
from torch import Tensor

from omnirl._validate import check_float, check_int
from omnirl.model.ops.chunking import check_step_tensors, from_chunks, to_chunks

__all__ = ["dplr_recurrent", "dplr_chunk", "DPLR_MAX_HALF_SPAN"]

# dplr_chunk factorises the intra-chunk decay exp(G_t - G_j) = exp(G_t - R) * exp(R - G_j), with
# G the in-chunk cumulative log-decay and R the midpoint of its range, so each factor is at most
# exp(|G_chunk_end| / 2). This bound on |G_chunk_end| / 2 keeps every factor, and the product of
# two factors at masked (j > t) positions, finite in fp32 (exp(80) < 3.4e38). RWKV-7's bound
# w >= -0.6065 gives at most 64 * 0.6065 / 2 = 19.4 for chunk 64.
DPLR_MAX_HALF_SPAN = 40.0


def _compute_dtype(*tensors: Tensor | None) -> torch.dtype:
    return torch.float64 if any(t is not None and t.dtype == torch.float64 for t in tensors) \
        else torch.float32


def _validate(q, k, v, a, b, w, scale, initial_state, chunk_size=None) -> tuple[int, int, int, int, int]:
    check_step_tensors(q=q, k=k, v=v, a=a, b=b, w=w)
    B, T, H, K = q.shape
    V = v.shape[-1]
    if T < 1:
        raise ValueError(f"q must have at least one time step, got shape {tuple(q.shape)}")
    for name, x in (("k", k), ("a", a), ("b", b), ("w", w)):
        if tuple(x.shape) != (B, T, H, K):
            raise ValueError(f"{name} must have shape {(B, T, H, K)} like q, got {tuple(x.shape)}")
    if tuple(v.shape[:3]) != (B, T, H):
        raise ValueError(f"v must have shape [B, T, H, V] = {(B, T, H)} + [V], got {tuple(v.shape)}")
    if scale is not None:
        check_float("scale", scale)
    if initial_state is not None:
        if not isinstance(initial_state, Tensor) or not initial_state.is_floating_point():
            raise ValueError("initial_state must be a floating-point torch.Tensor [B, H, K, V] or None")
        if tuple(initial_state.shape) != (B, H, K, V):
            raise ValueError(f"initial_state must have shape {(B, H, K, V)}, got {tuple(initial_state.shape)}")
    if chunk_size is not None:
        check_int("chunk_size", chunk_size, min_value=1)
    return B, T, H, K, V


def _resolve_scale(scale: float | None, K: int) -> float:
    # None follows fla's default K^-1/2; RWKV-7 passes 1.0 (the default here).
    return K ** -0.5 if scale is None else float(scale)


def dplr_recurrent(q: Tensor, k: Tensor, v: Tensor, a: Tensor, b: Tensor, w: Tensor, scale: float | None = 1.0,
                   initial_state: Tensor | None = None, output_final_state: bool = True
                   ) -> tuple[Tensor, Tensor | None]:
    """Per-step DPLR delta rule (reference): ``S_t = (diag(e^{w_t}) + b_t^T a_t) S_{t-1} + k_t^T v_t``,
    ``o_t = scale q_t S_t``.

    Args: q, k, a, b, w ``[B, T, H, K]`` (``w`` the log-decay), v ``[B, T, H, V]``,
    initial_state ``[B, H, K, V]`` or None (zeros); ``scale=None`` means ``K ** -0.5`` (fla's default).
    Returns ``(o [B, T, H, V], S_T [B, H, K, V] or None)`` in the compute dtype.
    """
    B, T, H, K, V = _validate(q, k, v, a, b, w, scale, initial_state)
    scale = _resolve_scale(scale, K)
    dt = _compute_dtype(q, k, v, a, b, w, initial_state)
    # [B, T, H, D] -> [B, H, T, D]
    q, k, v, a, b, w = (x.to(dt).transpose(1, 2) for x in (q, k, v, a, b, w))
    S = q.new_zeros(B, H, K, V) if initial_state is None else initial_state.to(dt)
    outs = []
    for t in range(T):
        u = torch.einsum("bhk,bhkv->bhv", a[:, :, t], S)                               # [B, H, V]
        S = (S * w[:, :, t].exp().unsqueeze(-1)
             + b[:, :, t].unsqueeze(-1) * u.unsqueeze(-2)
             + k[:, :, t].unsqueeze(-1) * v[:, :, t].unsqueeze(-2))                     # [B, H, K, V]
        outs.append(torch.einsum("bhk,bhkv->bhv", q[:, :, t], S) * scale)              # [B, H, V]
    o = torch.stack(outs, dim=1)                                                        # [B, T, H, V]
    return o, (S if output_final_state else None)


def dplr_chunk(q: Tensor, k: Tensor, v: Tensor, a: Tensor, b: Tensor, w: Tensor, scale: float | None = 1.0,
               initial_state: Tensor | None = None, output_final_state: bool = True, chunk_size: int = 64
               ) -> tuple[Tensor, Tensor | None]:
    """Chunked DPLR delta rule; same recurrence and results as :func:`dplr_recurrent`.

    Inside a chunk of ``C`` steps, with ``S_0`` the state entering the chunk, ``G_t = sum_{i<=t} w_i``
    (inclusive, per key) and ``G_{t-1}`` its exclusive version, unrolling gives

        S_t = e^{G_t} S_0 + sum_{j<=t} e^{G_t - G_j} (k_j^T v_j + b_j^T u_j)      (e^{.} diagonal)
        u_t = (a_t e^{G_{t-1}}) S_0 + sum_{j<t} A_ak[t,j] v_j + sum_{j<t} A_ab[t,j] u_j

    with ``A_ak[t,j] = sum_i a_t[i] e^{G_{t-1}[i]-G_j[i]} k_j[i]`` and ``A_ab`` the same with ``b_j``.
    So ``U = (I - A_ab)^{-1} (A_ak V + (a e^{G_{t-1}}) S_0) = U0 + W S_0`` (one unit lower
    triangular solve per chunk), and

        o = scale [A_qk V + A_qb U0 + (q e^{G} + A_qb W) S_0]                 (A_q* inclusive of j = t)
        S_C = (diag(e^{G_C}) + (b e^{G_C-G})^T W) S_0 + (k e^{G_C-G})^T V + (b e^{G_C-G})^T U0

    Everything except the ``S_0`` chain is computed for all chunks at once; the chain
    ``S_C = M S_0 + R`` is one ``[K, K] @ [K, V]`` product per chunk.

    Numerical assumption: the ``[C, C]`` matrices use the factorised decay
    ``e^{G_t - R} e^{R - G_j}`` with ``R = G_C / 2``, each factor at most ``e^{|G_C|/2}``. This requires
    ``w <= 0`` and ``|sum of w over a chunk| / 2 <= DPLR_MAX_HALF_SPAN`` (40); RWKV-7's
    ``w >= -0.6065`` satisfies it up to ``chunk_size=128``. A ``w`` outside these limits raises
    ``ValueError`` (use a smaller ``chunk_size``). Padding steps (T not a multiple of C) use zero
    inputs and ``w = 0``, which leave the state unchanged.

    Args: q, k, a, b, w ``[B, T, H, K]``, v ``[B, T, H, V]``, initial_state ``[B, H, K, V]`` or None.
    Returns ``(o [B, T, H, V], S_T [B, H, K, V] or None)`` in the compute dtype (fp32, or fp64).
    """
    B, T, H, K, V = _validate(q, k, v, a, b, w, scale, initial_state, chunk_size)
    scale = _resolve_scale(scale, K)
    dt = _compute_dtype(q, k, v, a, b, w, initial_state)
    C = int(chunk_size)

    q, k, v, a, b, w = (to_chunks(x.to(dt), C) for x in (q, k, v, a, b, w))  # [B, H, N, C, D]
    G = w.cumsum(-2)                                    # [B, H, N, C, K] inclusive log-decay
    Gx = G - w                                          # exclusive: G_{t-1}, with G_0 = 0
    G_end = G[..., -1:, :]                              # [B, H, N, 1, K]

    with torch.no_grad():
        wmax, half_span = torch.stack([w.max(), (-G_end).max() / 2]).tolist()
    if wmax > 0:
        raise ValueError(f"w is a log-decay and must be <= 0, got max(w) = {wmax:.4g}")
    if not half_span <= DPLR_MAX_HALF_SPAN:  # also catches NaN
        raise ValueError(
            f"w is too negative for chunk_size={C}: half the summed log-decay over a chunk is {half_span:.4g} > "
            f"{DPLR_MAX_HALF_SPAN} (the factorised intra-chunk decay would overflow); use a smaller chunk_size")

    R = G_end / 2                                       # midpoint of [G_C, 0] per key
    qf = q * (G - R).exp()                              # [B, H, N, C, K]  q_t e^{G_t - R}
    af = a * (Gx - R).exp()                             #                  a_t e^{G_{t-1} - R}
    kb = torch.cat([k, b], dim=-2) * (R - G).exp().repeat(1, 1, 1, 2, 1)   # [.., 2C, K] (k_j; b_j) e^{R - G_j}
    idx = torch.arange(C, device=q.device)
    incl = idx[:, None] >= idx[None, :]                 # [C, C] j <= t
    strict = idx[:, None] > idx[None, :]                # [C, C] j < t
    zero = q.new_zeros(())
    Aq = qf @ kb.transpose(-1, -2)                      # [B, H, N, C, 2C]
    A_qk = torch.where(incl, Aq[..., :C], zero)         # [B, H, N, C, C]
    A_qb = torch.where(incl, Aq[..., C:], zero)
    Aa = af @ kb.transpose(-1, -2)
    A_ak = torch.where(strict, Aa[..., :C], zero)
    A_ab = torch.where(strict, Aa[..., C:], zero)

    # (I - A_ab) [U0 | W] = [A_ak V | a e^{G_{t-1}}]
    rhs = torch.cat([A_ak @ v, a * Gx.exp()], dim=-1)                             # [B, H, N, C, V+K]
    if C == 1:  # one-step chunks (decode): A_ab is empty, I - A_ab = I
        Z = rhs
    else:
        L = torch.eye(C, dtype=dt, device=q.device) - A_ab                       # [B, H, N, C, C]
        Z = torch.linalg.solve_triangular(L, rhs, upper=False, unitriangular=True)
    U0, W = Z[..., :V], Z[..., V:]                                                # [.., C, V], [.., C, K]

    intra = A_qk @ v + A_qb @ U0                                                  # [B, H, N, C, V]
    Q_eff = q * G.exp() + A_qb @ W                                                # [B, H, N, C, K]
    tail = (G_end - G).exp()                                                      # e^{G_C - G_j} <= 1
    kt, bt = k * tail, b * tail                                                   # [B, H, N, C, K]
    M = torch.diag_embed(G_end.squeeze(-2).exp()) + bt.transpose(-1, -2) @ W      # [B, H, N, K, K]
    Roff = kt.transpose(-1, -2) @ v + bt.transpose(-1, -2) @ U0                   # [B, H, N, K, V]

    S = q.new_zeros(B, H, K, V) if initial_state is None else initial_state.to(dt)
    starts = []
    # unbind (not indexing in the loop): its backward stacks the N gradients once
    for M_n, R_n in zip(M.unbind(2), Roff.unbind(2)):
        starts.append(S)
        S = M_n @ S + R_n                                                         # [B, H, K, V]
    S0 = torch.stack(starts, dim=2)                                               # [B, H, N, K, V]
    o = (intra + Q_eff @ S0) * scale                                              # [B, H, N, C, V]
    o = from_chunks(o, T)                                                        # [B, T, H, V]
    return o, (S if output_final_state else None)
