"""Core recurrences of the OmniRL backbones, as pure-PyTorch chunked ops (the CPU path).

Shared conventions: inputs are ``[B, T, H, D]`` (batch, time, heads, head dim) and are computed in
fp32 (fp64 stays fp64); recurrent states are key-first ``[B, H, K, V]``; every op is called as
``f(q, k, v, <gates>, scale=None, initial_state=None, output_final_state=True, chunk_size=64)``
and returns ``(o [B, T, H, V], final_state or None)``. T need not be a multiple of the chunk size,
``chunk_size=1`` is the one-step decode form, and gradients reach every input and ``initial_state``.

Ops:

* ``simple_gla.simple_gla_chunk`` / ``simple_gla.simple_gla_recurrent``: gated linear attention
  with a scalar log-decay per head and step, ``S_t = exp(g_t) S_{t-1} + k_t^T v_t``; also
  Mamba2's SSD (``q=C, k=B, v=dt*x, g=dt*A, scale=1``).
* ``gdn.gdn_chunk`` / ``gdn.gdn_recurrent``: the gated delta rule (Gated DeltaNet),
  ``S_t = (I - beta_t k_t^T k_t) exp(g_t) S_{t-1} + beta_t k_t^T v_t``.
* ``dplr.dplr_chunk`` / ``dplr.dplr_recurrent``: the diagonal-plus-low-rank delta rule of RWKV-7,
  ``S_t = (diag(exp(w_t)) + b_t^T a_t) S_{t-1} + k_t^T v_t`` (fla's DPLR; RWKV-7 passes
  ``a = -kk, b = kk * a``).
* ``gsa.gsa_chunk`` / ``gsa.gsa_recurrent``: gated slot attention, two gated passes over M slots
  with state ``(hk [B, H, K, M], hv [B, H, M, V])``.
"""

from omnirl.model.ops.dplr import dplr_chunk, dplr_recurrent
from omnirl.model.ops.gdn import gdn_chunk, gdn_recurrent
from omnirl.model.ops.gsa import gsa_chunk, gsa_recurrent
from omnirl.model.ops.simple_gla import simple_gla_chunk, simple_gla_recurrent

__all__ = ["dplr_chunk", "dplr_recurrent", "gdn_chunk", "gdn_recurrent", "gsa_chunk", "gsa_recurrent",
           "simple_gla_chunk", "simple_gla_recurrent"]
