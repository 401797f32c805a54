"""The gated delta rule (Gated DeltaNet): a decayed associative memory that overwrites, per step,
the value stored at the current key.

Recurrence, for each batch element and head, in the key-first layout (``S`` is ``[K, V]``;
``q_t``, ``k_t`` are row vectors ``[1, K]``, ``v_t`` is ``[1, V]``; ``g_t <= 0`` is a scalar
log-decay and ``beta_t`` a scalar write strength)::

    S_t = (I - beta_t k_t^T k_t) exp(g_t) S_{t-1} + beta_t k_t^T v_t
    o_t = scale * q_t S_t

Equivalently: decay the memory, read the value it holds at key ``k_t``,
``r_t = k_t exp(g_t) S_{t-1}``, and move it towards ``v_t``:
``S_t = exp(g_t) S_{t-1} + beta_t k_t^T (v_t - r_t)``. With ``g_t = 0``, ``beta_t = 1`` and a unit
key, ``k_t S_t = v_t``: the value at ``k_t`` is replaced. (The paper writes the value-first
transpose, ``S_t = exp(g_t) S_{t-1} (I - beta_t k_t k_t^T) + beta_t v_t k_t^T``.) ``beta_t`` lies in
``(0, 1]``, or in ``(0, 2]`` to allow negative eigenvalues of the transition.

Arguments are ordered ``(q, k, v, g, beta)`` like fla's ``chunk_gated_delta_rule`` (fla's naive
recurrent reference takes ``beta, g``; here both functions take ``g, beta``). The state layout is
fla's op default ``[B, H, K, V]`` (``state_v_first=False``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from omnirl.model.ops.chunking import from_chunks, to_chunks
from omnirl.model.ops.simple_gla import _causal_decay, _empty_result, _prepare, _zero_state

__all__ = ["gdn_chunk", "gdn_recurrent"]


class _UnitLowerInverse(torch.autograd.Function):
    """``T = (I + A)^{-1}`` for a batch of strictly lower-triangular ``A (..., C, C)``.

    Forward: one unit-lower-triangular solve against the identity per matrix. Backward: from
    ``dT = -T dA T``, the gradient is ``-T^T gT T^T``, kept on the strictly lower triangle where
    ``A`` lives. Two matrix products, which on CPU is much cheaper than differentiating through
    the solve (a second triangular solve plus a product).
    """

    @staticmethod
    def forward(ctx, A: Tensor) -> Tensor:
        eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device).expand_as(A)
        T = torch.linalg.solve_triangular(A, eye, upper=False, unitriangular=True)
        ctx.save_for_backward(T)
        return T

    @staticmethod
    def backward(ctx, grad_T: Tensor) -> Tensor:
        (T,) = ctx.saved_tensors
        Tt = T.transpose(-1, -2)
        return -(Tt @ grad_T @ Tt).tril(-1)


def gdn_recurrent(q: Tensor, k: Tensor, v: Tensor, g: Tensor, beta: Tensor,
                  scale: float | None = None, initial_state: Tensor | None = None,
                  output_final_state: bool = True):
    """Per-step reference of the gated delta rule (see the module docstring).

    Args:
        q, k: ``[B, T, H, K]`` (k is usually L2-normalised).  v: ``[B, T, H, V]``.
        g: ``[B, T, H]`` log-decays (``<= 0``).  beta: ``[B, T, H]`` write strengths.
        scale: multiplies the output; ``None`` means ``K ** -0.5``.
        initial_state: ``[B, H, K, V]`` state before step 1 (``None``: zeros).
        output_final_state: also return the state after step T.

    Returns:
        ``(o [B, T, H, V], S_T [B, H, K, V] or None)`` in the compute dtype (fp32, or fp64 for
        fp64 inputs).
    """
    q, k, v, gates, scale, h0 = _prepare(q, k, v, {"g": g, "beta": beta}, scale, initial_state)
    o, S = _steps(q, k, v, gates["g"], gates["beta"], scale,
                  h0 if h0 is not None else _zero_state(q, v))
    return o, (S if output_final_state else None)


def _steps(q: Tensor, k: Tensor, v: Tensor, g: Tensor, beta: Tensor, scale: float, S: Tensor):
    """The recurrence step by step from state ``S [B, H, K, V]``; returns ``(o, S_T)``."""
    outs = []
    for t in range(q.shape[1]):
        k_t = k[:, t]  # (B, H, K)
        S = g[:, t, :, None, None].exp() * S
        read = torch.einsum("bhk,bhkv->bhv", k_t, S)  # value currently stored at k_t, (B, H, V)
        delta = beta[:, t, :, None] * (v[:, t] - read)  # (B, H, V)
        S = S + k_t.unsqueeze(-1) * delta.unsqueeze(-2)
        outs.append(torch.einsum("bhk,bhkv->bhv", q[:, t], S))  # (B, H, V)
    o = torch.stack(outs, dim=1) * scale if outs else v.new_zeros(v.shape)  # (B, T, H, V)
    return o, S


def gdn_chunk(q: Tensor, k: Tensor, v: Tensor, g: Tensor, beta: Tensor,
              scale: float | None = None, initial_state: Tensor | None = None,
              output_final_state: bool = True, chunk_size: int = 64):
    """Chunked gated delta rule (WY form); same arguments and result as :func:`gdn_recurrent`.

    Inside a chunk with entry state ``S_0`` and cumulative log-decay ``G_i = g_1 + ... + g_i``,
    write the update as ``S_i = exp(g_i) S_{i-1} + k_i^T u_i`` with the *effective value*
    ``u_i = beta_i (v_i - k_i exp(g_i) S_{i-1})``. Unrolling,
    ``exp(g_i) S_{i-1} = exp(G_i) S_0 + sum_{j < i} exp(G_i - G_j) k_j^T u_j``, hence::

        u_i + sum_{j < i} A_ij u_j = beta_i v_i - beta_i exp(G_i) k_i S_0,
        A_ij = beta_i exp(G_i - G_j) (k_i . k_j)            (strictly lower triangular)

    i.e. ``(I + A) U = diag(beta) V - diag(beta exp(G)) K S_0``. One unit-lower-triangular solve per
    chunk (for all chunks, batch elements and heads at once) gives ``T = (I + A)^{-1}``, then
    ``W = T diag(beta exp(G)) K`` and ``U_0 = T diag(beta) V`` (the WY representation), so that
    ``U = U_0 - W S_0`` is linear in the entry state. Then, as for simple GLA::

        o_i = scale * [ exp(G_i) q_i S_0 + sum_{j <= i} exp(G_i - G_j) (q_i . k_j) u_j ]
        S_C = exp(G_C) S_0 + sum_j exp(G_C - G_j) k_j^T u_j

    Only ``U = U_0 - W S`` and the state update run sequentially over chunks. Every decay is
    ``exp(G_i - G_j)`` with ``j <= i`` (a masked segment sum, see ``simple_gla._causal_decay``) or
    ``exp(G_i)``, so all factors are ``<= 1`` for any ``g <= 0``; nothing is factorised as
    ``exp(G_i) exp(-G_j)``. With ``chunk_size=1`` this is the per-step recurrence (one-token
    decode).
    """
    q, k, v, gates, scale, h0 = _prepare(q, k, v, {"g": g, "beta": beta}, scale, initial_state,
                                         chunk_size)
    g, beta = gates["g"], gates["beta"]
    B, T, H, K = q.shape
    if T == 0:
        return _empty_result(q, v, h0, output_final_state)
    C = min(chunk_size, T)
    if C == 1:  # one-step chunks are the recurrence itself; skip the chunk machinery (decode)
        o, S = _steps(q, k, v, g, beta, scale, h0 if h0 is not None else _zero_state(q, v))
        return o, (S if output_final_state else None)

    qc = to_chunks(q * scale, C)  # (B, H, N, C, K)
    kc = to_chunks(k, C)  # (B, H, N, C, K)
    vc = to_chunks(v, C)  # (B, H, N, C, V)
    bc = to_chunks(beta, C).unsqueeze(-1)  # (B, H, N, C, 1)
    gc = to_chunks(g, C)  # (B, H, N, C)
    G = gc.cumsum(-1)  # G_i = g_1 + ... + g_i, (B, H, N, C)
    decay_in = G.exp().unsqueeze(-1)  # exp(G_i): chunk entry -> step i, (B, H, N, C, 1)

    L = _causal_decay(gc)  # exp(G_i - G_j) for j <= i, (B, H, N, C, C)
    A = (bc * (kc @ kc.transpose(-1, -2)) * L).tril(-1)  # strictly lower, (B, H, N, C, C)
    Tinv = _UnitLowerInverse.apply(A)  # (I + A)^{-1}, (B, H, N, C, C)
    W = Tinv @ (kc * (bc * decay_in))  # (B, H, N, C, K)
    U0 = Tinv @ (vc * bc)  # (B, H, N, C, V)
    attn = qc @ kc.transpose(-1, -2) * L  # (q_i . k_j) exp(G_i - G_j), j <= i, (B, H, N, C, C)
    k_to_end = kc * L[..., -1, :].unsqueeze(-1)  # exp(G_C - G_j) k_j, (B, H, N, C, K)
    chunk_decay = G[..., -1:].exp().unsqueeze(-1)  # exp(G_C), (B, H, N, 1, 1)

    # inter-chunk: entry[n] is the state entering chunk n, U[n] that chunk's effective values
    S = h0 if h0 is not None else _zero_state(q, v)  # (B, H, K, V)
    entry, U = [], []
    for decay_n, U0_n, W_n, k_end_n in zip(chunk_decay.unbind(2), U0.unbind(2), W.unbind(2),
                                           k_to_end.transpose(-1, -2).unbind(2)):
        entry.append(S)
        u = U0_n - W_n @ S  # (B, H, C, V)
        U.append(u)
        S = decay_n * S + k_end_n @ u
    entry = torch.stack(entry, dim=2)  # (B, H, N, K, V)
    U = torch.stack(U, dim=2)  # (B, H, N, C, V)
    o = (qc * decay_in) @ entry + attn @ U  # (B, H, N, C, V)
    return from_chunks(o, T), (S if output_final_state else None)  # (B, T, H, V), (B, H, K, V)
