"""Gated linear attention with a scalar decay per head and step ("simple GLA"), which is also
Mamba2's SSD.

Recurrence, for each batch element and head (``S`` is key-first ``[K, V]``; ``q_t`` and ``k_t`` are
row vectors ``[1, K]``, ``v_t`` is ``[1, V]``, ``g_t <= 0`` is a scalar log-decay)::

    S_t = exp(g_t) * S_{t-1} + k_t^T v_t
    o_t = scale * q_t S_t

Semantics, argument names and state layout follow fla's ``chunk_simple_gla`` /
``naive_recurrent_simple_gla`` (with ``state_v_first=False``), so a CUDA dispatcher can call fla's
kernels with the same arguments.

Mamba2's SSD is this recurrence. Per head, Mamba2 keeps ``h_t [P, N]`` (head dim P, state size N)
and computes ``h_t = exp(dt_t A) h_{t-1} + (dt_t x_t)^T B_t``, ``y_t = h_t C_t^T + D x_t``.
Transposing to the key-first ``S_t = h_t^T [N, P]`` gives exactly the update above with::

    q = C,  k = B,  v = dt * x,  g = dt * A,  scale = 1

(``C, B [.., N]`` repeated from groups to heads, ``x [.., P]``, ``dt > 0`` and ``A < 0`` per
head); the skip term ``D * x`` is added outside the op. The state is ``[B, H, N, P]``, the
transpose of fla's ``Mamba2`` layer cache ``[B, H, P, N]``.

The chunked form never factorises a decay as ``exp(G_i) * exp(-G_j)`` (``G`` the cumulative sum
of ``g``): ``g`` is unbounded below, so ``exp(-G_j)`` can overflow. Every decay is the
exponential of a sum of consecutive gates, ``G_i - G_j = g_{j+1} + ... + g_i <= 0`` for
``j <= i``; entries with ``j > i`` are masked.
"""

from __future__ import annotations

import numbers

import torch
from torch import Tensor

from omnirl._validate import check_int
from omnirl.model.ops.chunking import from_chunks, to_chunks

__all__ = ["simple_gla_chunk", "simple_gla_recurrent"]


# --------------------------------------------------------------------------------------------------
# helpers shared with the other chunked ops of this package
# --------------------------------------------------------------------------------------------------

def _check_tensor(name: str, x, ndim: int, shape: tuple[int, ...] | None, what: str) -> Tensor:
    """Raise ``ValueError`` naming ``name`` unless ``x`` is a floating tensor of the given shape."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dims {what}, got shape {tuple(x.shape)}")
    if shape is not None and tuple(x.shape) != shape:
        raise ValueError(f"{name} must have shape {what}, i.e. {shape}, got {tuple(x.shape)}")
    return x


def _prepare(q, k, v, gates: dict[str, object], scale, initial_state, chunk_size=None):
    """Validate the arguments of a ``[B, T, H, D]`` op and cast them to the compute dtype.

    ``gates`` maps argument names to per-step scalars ``[B, T, H]`` (``g``, ``beta``). The compute
    dtype is fp64 if any tensor is fp64, else fp32 (half inputs are upcast). Returns
    ``(q, k, v, gates, scale, initial_state)`` with ``scale`` defaulting to ``K ** -0.5``.
    """
    _check_tensor("q", q, 4, None, "(B, T, H, K)")
    B, T, H, K = q.shape
    _check_tensor("k", k, 4, (B, T, H, K), "(B, T, H, K) like q")
    _check_tensor("v", v, 4, None, "(B, T, H, V)")
    if tuple(v.shape[:3]) != (B, T, H):
        raise ValueError(f"v must have shape (B, T, H, V) with (B, T, H) = {(B, T, H)} like q, "
                         f"got {tuple(v.shape)}")
    V = v.shape[3]
    for name, x in gates.items():
        _check_tensor(name, x, 3, (B, T, H), "(B, T, H)")
    if initial_state is not None:
        _check_tensor("initial_state", initial_state, 4, (B, H, K, V), "(B, H, K, V)")
    if scale is None:
        scale = K ** -0.5
    elif isinstance(scale, bool) or not isinstance(scale, numbers.Real) or scale != scale \
            or abs(scale) == float("inf"):
        raise ValueError(f"scale must be a finite real number or None, got {scale!r}")
    if chunk_size is not None:
        check_int("chunk_size", chunk_size, min_value=1)

    tensors = [q, k, v, *gates.values()] + ([initial_state] if initial_state is not None else [])
    dtype = torch.float64 if any(x.dtype == torch.float64 for x in tensors) else torch.float32
    q, k, v = q.to(dtype), k.to(dtype), v.to(dtype)
    gates = {name: x.to(dtype) for name, x in gates.items()}
    if initial_state is not None:
        initial_state = initial_state.to(dtype)
    return q, k, v, gates, float(scale), initial_state


def _zero_state(q: Tensor, v: Tensor) -> Tensor:
    """An all-zero key-first state ``[B, H, K, V]`` on ``q``'s device and dtype."""
    B, _, H, K = q.shape
    return q.new_zeros(B, H, K, v.shape[-1])


def _empty_result(q: Tensor, v: Tensor, initial_state: Tensor | None, output_final_state: bool):
    """The result for ``T == 0``: no output steps, the state passes through unchanged."""
    B, _, H, _ = q.shape
    o = v.new_zeros(B, 0, H, v.shape[-1])
    if not output_final_state:
        return o, None
    return o, (initial_state if initial_state is not None else _zero_state(q, v))


def _causal_decay(g: Tensor) -> Tensor:
    """``L[..., i, j] = exp(g_{j+1} + ... + g_i)`` for ``j <= i``, else 0, from chunked gates.

    ``g (..., C)`` are one chunk's per-step log-decays, so for ``j <= i`` the entry is the decay
    from step j to step i, ``exp(G_i - G_j)`` with ``G`` the cumulative sum, and is at most 1. Each
    exponent is summed from its own terms (a masked cumulative sum down the rows) rather than taken
    as a difference of two cumulative sums: with strong gates those sums reach thousands, where an
    fp32 difference keeps only ~1e-4 absolute precision. Above the diagonal the sum is empty (0),
    and the entry is zeroed after the exponential, so no value or gradient can overflow. Row
    ``C - 1`` holds ``exp(G_C - G_j)``, the decay from step j to the end of the chunk.
    """
    C = g.shape[-1]
    causal = torch.ones(C, C, dtype=torch.bool, device=g.device).tril()  # (i, j): j <= i
    # seg[i, j] = sum_{s <= i} [s > j] g_s = g_{j+1} + ... + g_i  (0 when i <= j)
    seg = (g.unsqueeze(-1) * causal.tril(-1)).cumsum(-2)  # (..., C, C)
    return seg.exp() * causal


# --------------------------------------------------------------------------------------------------
# simple GLA
# --------------------------------------------------------------------------------------------------

def simple_gla_recurrent(q: Tensor, k: Tensor, v: Tensor, g: Tensor, scale: float | None = None,
                         initial_state: Tensor | None = None, output_final_state: bool = True):
    """Per-step reference: ``S_t = exp(g_t) S_{t-1} + k_t^T v_t``, ``o_t = scale * q_t S_t``.

    Args:
        q, k: ``[B, T, H, K]``.  v: ``[B, T, H, V]``.  g: ``[B, T, H]`` log-decays (``<= 0``).
        scale: multiplies the output; ``None`` means ``K ** -0.5``.
        initial_state: ``[B, H, K, V]`` state before step 1 (``None``: zeros).
        output_final_state: also return the state after step T.

    Returns:
        ``(o [B, T, H, V], S_T [B, H, K, V] or None)`` in the compute dtype (fp32, or fp64 for
        fp64 inputs).
    """
    q, k, v, gates, scale, h0 = _prepare(q, k, v, {"g": g}, scale, initial_state)
    o, S = _steps(q, k, v, gates["g"], scale, h0 if h0 is not None else _zero_state(q, v))
    return o, (S if output_final_state else None)


def _steps(q: Tensor, k: Tensor, v: Tensor, g: Tensor, scale: float, S: Tensor):
    """The recurrence step by step from state ``S [B, H, K, V]``; returns ``(o, S_T)``."""
    outs = []
    for t in range(q.shape[1]):
        # decay the whole memory, then add the outer product k_t^T v_t
        S = g[:, t, :, None, None].exp() * S + k[:, t, :, :, None] * v[:, t, :, None, :]
        outs.append(torch.einsum("bhk,bhkv->bhv", q[:, t], S))  # (B, H, V)
    o = torch.stack(outs, dim=1) * scale if outs else v.new_zeros(v.shape)  # (B, T, H, V)
    return o, S


def simple_gla_chunk(q: Tensor, k: Tensor, v: Tensor, g: Tensor, scale: float | None = None,
                     initial_state: Tensor | None = None, output_final_state: bool = True,
                     chunk_size: int = 64):
    """Chunked simple GLA; same recurrence, arguments and result as :func:`simple_gla_recurrent`.

    Split time into chunks of ``C = min(chunk_size, T)`` steps (the last one zero-padded). Inside
    a chunk with entry state ``S_0`` and cumulative log-decay ``G_i = g_1 + ... + g_i``, unrolling
    the recurrence gives::

        S_i = exp(G_i) S_0 + sum_{j <= i} exp(G_i - G_j) k_j^T v_j
        o_i = scale * [ exp(G_i) q_i S_0  +  sum_{j <= i} exp(G_i - G_j) (q_i . k_j) v_j ]

    The second term of ``o_i`` (intra-chunk, a masked-decay attention) and the chunk's
    contribution ``sum_j exp(G_C - G_j) k_j^T v_j`` to its exit state are computed for all chunks
    at once; only ``S <- exp(G_C) S + contribution`` runs sequentially over chunks. With
    ``chunk_size=1`` this is the per-step recurrence (one-token decode).
    """
    q, k, v, gates, scale, h0 = _prepare(q, k, v, {"g": g}, scale, initial_state, chunk_size)
    g = gates["g"]
    B, T, H, K = q.shape
    if T == 0:
        return _empty_result(q, v, h0, output_final_state)
    C = min(chunk_size, T)
    if C == 1:  # one-step chunks are the recurrence itself; skip the chunk machinery (decode)
        o, S = _steps(q, k, v, g, scale, h0 if h0 is not None else _zero_state(q, v))
        return o, (S if output_final_state else None)

    qc = to_chunks(q * scale, C)  # (B, H, N, C, K)
    kc = to_chunks(k, C)  # (B, H, N, C, K)
    vc = to_chunks(v, C)  # (B, H, N, C, V)
    gc = to_chunks(g, C)  # (B, H, N, C)
    G = gc.cumsum(-1)  # G_i = g_1 + ... + g_i, (B, H, N, C)
    L = _causal_decay(gc)  # exp(G_i - G_j) for j <= i, (B, H, N, C, C)

    # intra-chunk: (q_i . k_j) exp(G_i - G_j) for j <= i, times v_j
    o = (qc @ kc.transpose(-1, -2) * L) @ vc  # (B, H, N, C, V)
    # what each chunk adds to its exit state: sum_j exp(G_C - G_j) k_j^T v_j
    k_to_end = kc * L[..., -1, :].unsqueeze(-1)  # (B, H, N, C, K)
    added = k_to_end.transpose(-1, -2) @ vc  # (B, H, N, K, V)
    chunk_decay = G[..., -1:].exp().unsqueeze(-1)  # exp(G_C), (B, H, N, 1, 1)

    # inter-chunk: pass the state through the chunks; entry[n] is the state entering chunk n
    # (unbind once rather than index per chunk: each indexing op would cost a full-size zero
    # gradient buffer in the backward pass)
    S = h0 if h0 is not None else _zero_state(q, v)  # (B, H, K, V)
    entry = []
    for decay_n, added_n in zip(chunk_decay.unbind(2), added.unbind(2)):
        entry.append(S)
        S = decay_n * S + added_n
    entry = torch.stack(entry, dim=2)  # (B, H, N, K, V)
    # contribution of the entry state: exp(G_i) q_i S_0
    o = o + (qc * G.exp().unsqueeze(-1)) @ entry  # (B, H, N, C, V)
    return from_chunks(o, T), (S if output_final_state else None)  # (B, T, H, V), (B, H, K, V)
