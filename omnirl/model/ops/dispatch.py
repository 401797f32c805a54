"""Device dispatch of the core recurrences: the only place the two back-ends meet.

On CUDA (with ``fla-core`` installed: the ``cuda`` extra) fla's Triton kernels run (``fla_*``):
chunk kernels for training and prefill, fused-recurrent kernels for one-step calls without
gradients. Everywhere else our PyTorch ops run: the chunked forms, and for runs of at most
``RECURRENT_STEPS`` steps without gradients (an agent's decoding steps) the per-step references of
the delta rules and of GSA, faster there than a chunk (simple GLA's chunk is as fast or faster). Both
take the same arguments in the same layout (inputs ``[B, T, H, D]``, fp32 key-first states), so
a backbone never knows which one ran. The ``fla_*`` functions are also what the kernel tests run
(on a GPU, or on the CPU through Triton's interpreter) against our ops.
"""

from __future__ import annotations

import functools
import importlib.util

import torch
from torch import Tensor

from omnirl.model.ops.dplr import dplr_chunk, dplr_recurrent
from omnirl.model.ops.gdn import gdn_chunk, gdn_recurrent
from omnirl.model.ops.gsa import gsa_chunk, gsa_recurrent
from omnirl.model.ops.simple_gla import simple_gla_chunk

CHUNK = 64
GSA_CHUNK = 8  # GSA's exact pairwise intra-chunk decay grows as chunk^2 * slots
RECURRENT_STEPS = 2
"""Longest run (steps) without gradients that the CPU path steps through one step at a time
(``benchmarks/bench_eval.py`` times the agent's decoding)."""
RWKV7_LOWER_BOUND = -0.6065306597126334  # RWKV-7's log-decay bound (fla's safe_gate lower_bound)


@functools.lru_cache(maxsize=None)
def fla_available() -> bool:
    """Whether fla's kernels can run here (a CUDA device and the ``fla`` package)."""
    return torch.cuda.is_available() and importlib.util.find_spec("fla") is not None


def _use_fla(x: Tensor) -> bool:
    return x.is_cuda and fla_available()


def _decode(x: Tensor) -> bool:
    return x.shape[1] == 1 and not torch.is_grad_enabled()


def _stepwise(x: Tensor) -> bool:
    return x.shape[1] <= RECURRENT_STEPS and not torch.is_grad_enabled()


def _chunk(x: Tensor, size: int = CHUNK) -> int:
    # a run shorter than a chunk is one chunk of its own length: padding a decoding step's few tokens
    # to ``size`` made stepping an agent ~10x slower (mostly the padded [C, C] triangular solves)
    return min(size, x.shape[1])


# ---------------------------------------------------------------------------- fla kernels


def fla_gated_delta_rule(q, k, v, g, beta, scale, initial_state):
    from fla.ops.gated_delta_rule import chunk_gated_delta_rule, fused_recurrent_gated_delta_rule
    # keywords throughout: the fused kernel's positional order is (q, k, v, g, gk, gv, beta)
    fn = fused_recurrent_gated_delta_rule if _decode(q) else chunk_gated_delta_rule
    o, s = fn(q=q, k=k, v=v, g=g, beta=beta, scale=scale, initial_state=initial_state,
              output_final_state=True)
    return o.float(), s.float()


def fla_simple_gla(q, k, v, g, scale, initial_state):
    from fla.ops.simple_gla import chunk_simple_gla, fused_recurrent_simple_gla
    fn = fused_recurrent_simple_gla if _decode(q) else chunk_simple_gla
    o, s = fn(q=q, k=k, v=v, g=g, scale=scale, initial_state=initial_state, output_final_state=True)
    return o.float(), s.float()


def fla_dplr(q, k, v, a, b, w, scale, initial_state):
    from fla.ops.rwkv7 import chunk_rwkv7, fused_recurrent_rwkv7
    if _decode(q):
        o, s = fused_recurrent_rwkv7(r=q, w=w, k=k, v=v, a=a, b=b, scale=scale,
                                     initial_state=initial_state, output_final_state=True)
    else:  # fla puts the log-decay second: (r, w, k, v, a, b)
        o, s = chunk_rwkv7(r=q, w=w, k=k, v=v, a=a, b=b, scale=scale, initial_state=initial_state,
                           output_final_state=True, safe_gate=True, lower_bound=RWKV7_LOWER_BOUND)
    return o.float(), s.float()


def fla_gsa(q, k, v, s, f, scale, initial_state):
    from fla.ops.gsa import chunk_gsa, fused_recurrent_gsa
    fn = fused_recurrent_gsa if _decode(q) else chunk_gsa
    o, (hk, hv) = fn(q=q, k=k, v=v, s=s, g=f, scale=scale, initial_state=initial_state,
                     output_final_state=True)
    return o.float(), (hk.float(), hv.float())


# ---------------------------------------------------------------------------- dispatch


def gated_delta_rule(q: Tensor, k: Tensor, v: Tensor, g: Tensor, beta: Tensor, scale: float,
                     initial_state: Tensor | None) -> tuple[Tensor, Tensor]:
    """Gated DeltaNet's recurrence (see ``ops.gdn``); returns ``(o, final_state)``."""
    if _use_fla(q):
        return fla_gated_delta_rule(q, k, v, g, beta, scale, initial_state)
    if _stepwise(q):
        return gdn_recurrent(q, k, v, g, beta, scale=scale, initial_state=initial_state, output_final_state=True)
    return gdn_chunk(q, k, v, g, beta, scale=scale, initial_state=initial_state,
                     output_final_state=True, chunk_size=_chunk(q))


def simple_gla(q: Tensor, k: Tensor, v: Tensor, g: Tensor, scale: float,
               initial_state: Tensor | None) -> tuple[Tensor, Tensor]:
    """Gated linear attention with a scalar decay per head (Mamba2's SSD, see ``ops.simple_gla``)."""
    if _use_fla(q):
        return fla_simple_gla(q, k, v, g, scale, initial_state)
    return simple_gla_chunk(q, k, v, g, scale=scale, initial_state=initial_state,
                            output_final_state=True, chunk_size=_chunk(q))


def dplr(q: Tensor, k: Tensor, v: Tensor, a: Tensor, b: Tensor, w: Tensor, scale: float,
         initial_state: Tensor | None) -> tuple[Tensor, Tensor]:
    """RWKV-7's diagonal-plus-low-rank delta rule (see ``ops.dplr``; ``w`` is the log-decay)."""
    if _use_fla(q):
        return fla_dplr(q, k, v, a, b, w, scale, initial_state)
    if _stepwise(q):
        return dplr_recurrent(q, k, v, a, b, w, scale=scale, initial_state=initial_state, output_final_state=True)
    return dplr_chunk(q, k, v, a, b, w, scale=scale, initial_state=initial_state,
                      output_final_state=True, chunk_size=_chunk(q))


def gsa(q: Tensor, k: Tensor, v: Tensor, s: Tensor, f: Tensor, scale: float,
        initial_state: tuple[Tensor, Tensor] | None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """Gated slot attention's two passes (see ``ops.gsa``); the state is ``(hk, hv)``."""
    if _use_fla(q):
        return fla_gsa(q, k, v, s, f, scale, initial_state)
    if _stepwise(q):
        return gsa_recurrent(q, k, v, s, f, scale=scale, initial_state=initial_state, output_final_state=True)
    return gsa_chunk(q, k, v, s, f, scale=scale, initial_state=initial_state, output_final_state=True,
                     chunk_size=_chunk(q, GSA_CHUNK))
