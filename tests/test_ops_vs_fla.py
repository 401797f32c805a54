"""Our chunked CPU ops against fla's own per-step PyTorch references (``fla/ops/*/naive.py``).

Each test runs one op and its fla reference on the same leaves, with an initial state and a
sequence length that is not a multiple of the chunk size, and compares the outputs, the final
states and the gradients of a random linear loss with respect to every input, the initial state
included. fla's references compute in fp32 whatever the input dtype (they call ``.float()``), so
the comparison is in fp32.

Traps of the references (fla 0.6.0):

* ``naive_recurrent_gated_delta_rule(q, k, v, beta, g, ...)`` takes ``beta`` before ``g``; ours
  takes ``g, beta``.
* ``dplr_recurrence(q, k, v, alpha, beta, gk, ...)`` is head-first ``[B, H, T, D]`` and multiplies
  ``q`` by a hard-coded ``K ** -0.5``: pass ``q * K ** 0.5`` to get our RWKV-7 scale 1. Its update
  ``S = S * exp(gk) + k^T v + beta^T (alpha S)`` is ours with ``alpha = a``, ``beta = b``,
  ``gk = w`` (fla's ``chunk_rwkv7(r, w, k, v, a, b)`` forwards ``a, b, w`` as
  ``chunk_dplr_delta_rule(a=a, b=b, gk=w)``, the same roles).
* ``naive_recurrent_gsa`` takes the state as the pair ``(hk [B, H, K, M], hv [B, H, M, V])``.
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

from omnirl.model.ops.dplr import dplr_chunk
from omnirl.model.ops.gdn import gdn_chunk
from omnirl.model.ops.gsa import gsa_chunk
from omnirl.model.ops.simple_gla import simple_gla_chunk

B, T, H, K, V, M = 2, 50, 2, 16, 16, 8
DTYPE = torch.float32  # the references' compute dtype
W_MIN = -0.6065306597126334  # RWKV-7's log-decay bound, -exp(-1/2)
# Largest difference allowed, relative to the largest magnitude of the reference quantity.
OUT_TOL, GRAD_TOL = 2e-5, 5e-5


def _reference(module: str, name: str):
    """fla's reference ``module.name``; the test is skipped if it cannot be imported."""
    with warnings.catch_warnings():
        # fla warns at import that Triton has no driver here; its naive references are plain torch
        warnings.filterwarnings("ignore", message=".*roll back to CPU.*")
        mod = pytest.importorskip(module, reason=f"fla's reference {module}.{name} is not importable "
                                                 "(needs fla-core and einops, part of the dev extra)")
    fn = getattr(mod, name, None)
    if fn is None:
        pytest.skip(f"{module} has no {name} (fla version other than 0.6.0?)")
    return fn


def _leaves(**tensors: torch.Tensor) -> dict[str, torch.Tensor]:
    return {n: t.to(DTYPE).detach().requires_grad_(True) for n, t in tensors.items()}


def _flat(state) -> tuple[torch.Tensor, ...]:
    return tuple(state) if isinstance(state, (tuple, list)) else (state,)


def _compare(ours, ref, leaves: dict[str, torch.Tensor], seed: int) -> dict[str, float]:
    """Run ``ours()`` and ``ref()`` (each ``-> (o, state)``) and check outputs, final states and the
    gradients of ``sum(o * go) + sum(state * gs)`` w.r.t. every leaf. Returns the max |diff|s."""
    o1, s1 = ours()
    o2, s2 = ref()
    s1, s2 = _flat(s1), _flat(s2)
    assert o1.shape == o2.shape and len(s1) == len(s2)
    gen = torch.Generator().manual_seed(seed + 1000)
    go = torch.randn(o2.shape, generator=gen, dtype=DTYPE)
    gs = [torch.randn(s.shape, generator=gen, dtype=DTYPE) for s in s2]
    names = list(leaves)

    def grads(o, states):
        loss = (o * go).sum() + sum((s * g).sum() for s, g in zip(states, gs))
        return torch.autograd.grad(loss, [leaves[n] for n in names])

    g1, g2 = grads(o1, s1), grads(o2, s2)
    diffs = {"out": (o1 - o2).abs().max().item()}
    assert diffs["out"] <= OUT_TOL * max(1.0, o2.abs().max().item()), diffs
    for i, (a, b) in enumerate(zip(s1, s2)):
        assert a.shape == b.shape, (i, a.shape, b.shape)
        diffs[f"state{i}"] = d = (a - b).abs().max().item()
        assert d <= OUT_TOL * max(1.0, b.abs().max().item()), (f"state{i}", d)
    for n, a, b in zip(names, g1, g2):
        assert a is not None and b is not None, n
        diffs[f"d{n}"] = d = (a - b).abs().max().item()
        assert d <= GRAD_TOL * max(1.0, b.abs().max().item()), (f"d{n}", d, b.abs().max().item())
        assert b.abs().max() > 0, f"d{n} is zero: the loss does not depend on {n}"
    return diffs


def _randn(gen, *shape):
    return torch.randn(*shape, generator=gen, dtype=torch.float64)


@pytest.mark.parametrize("chunk_size", [16, 64])
def test_simple_gla_matches_fla_naive_recurrent(chunk_size):
    ref = _reference("fla.ops.simple_gla.naive", "naive_recurrent_simple_gla")
    gen = torch.Generator().manual_seed(1)
    x = _leaves(q=_randn(gen, B, T, H, K), k=_randn(gen, B, T, H, K), v=_randn(gen, B, T, H, V),
                g=F.logsigmoid(2 + _randn(gen, B, T, H)), h0=_randn(gen, B, H, K, V))
    scale = 0.5  # not the default K^-1/2, so a dropped scale shows up
    _compare(lambda: simple_gla_chunk(x["q"], x["k"], x["v"], x["g"], scale=scale, initial_state=x["h0"],
                                      output_final_state=True, chunk_size=chunk_size),
             lambda: ref(x["q"], x["k"], x["v"], x["g"], scale=scale, initial_state=x["h0"],
                         output_final_state=True),
             x, seed=1)


@pytest.mark.parametrize("chunk_size", [16, 64])
def test_gdn_matches_fla_naive_recurrent(chunk_size):
    ref = _reference("fla.ops.gated_delta_rule.naive", "naive_recurrent_gated_delta_rule")
    gen = torch.Generator().manual_seed(2)
    x = _leaves(q=F.normalize(_randn(gen, B, T, H, K), dim=-1), k=F.normalize(_randn(gen, B, T, H, K), dim=-1),
                v=_randn(gen, B, T, H, V), g=F.logsigmoid(2 + _randn(gen, B, T, H)),
                beta=torch.sigmoid(_randn(gen, B, T, H)), h0=_randn(gen, B, H, K, V))
    # scale None: both default to K^-1/2. fla's reference takes (beta, g), ours (g, beta).
    _compare(lambda: gdn_chunk(x["q"], x["k"], x["v"], x["g"], x["beta"], scale=None, initial_state=x["h0"],
                               output_final_state=True, chunk_size=chunk_size),
             lambda: ref(x["q"], x["k"], x["v"], x["beta"], x["g"], scale=None, initial_state=x["h0"],
                         output_final_state=True),
             x, seed=2)


def _dplr_leaves(seed):
    """RWKV-7-shaped inputs: a = -kk, b = kk * gate (kk unit-norm), w = W_MIN * sigmoid(.)."""
    gen = torch.Generator().manual_seed(seed)
    kk = F.normalize(_randn(gen, B, T, H, K), dim=-1)
    gate = torch.rand(B, T, H, K, generator=gen, dtype=torch.float64)
    return _leaves(q=_randn(gen, B, T, H, K), k=0.5 * _randn(gen, B, T, H, K), v=_randn(gen, B, T, H, V),
                   a=-kk, b=kk * gate, w=W_MIN * torch.sigmoid(_randn(gen, B, T, H, K)),
                   h0=_randn(gen, B, H, K, V))


def _dplr_reference(ref, x, alpha="a", beta="b"):
    """fla's head-first ``dplr_recurrence`` on our ``[B, T, H, D]`` inputs, scale 1, state ``[B, H, K, V]``."""
    hf = {n: t.transpose(1, 2) for n, t in x.items() if n != "h0"}
    o, S = ref(hf["q"] * K ** 0.5, hf["k"], hf["v"], hf[alpha], hf[beta], hf["w"],
               initial_state=x["h0"], output_final_state=True)
    return o.transpose(1, 2), S


@pytest.mark.parametrize("chunk_size", [16, 64])
def test_dplr_matches_fla_dplr_recurrence(chunk_size):
    ref = _reference("fla.ops.generalized_delta_rule.dplr.naive", "dplr_recurrence")
    x = _dplr_leaves(3)
    _compare(lambda: dplr_chunk(x["q"], x["k"], x["v"], x["a"], x["b"], x["w"], scale=1.0, initial_state=x["h0"],
                                output_final_state=True, chunk_size=chunk_size),
             lambda: _dplr_reference(ref, x), x, seed=3)


def test_dplr_mapping_is_alpha_a_beta_b():
    """The roles are not interchangeable: with alpha and beta swapped the reference disagrees."""
    ref = _reference("fla.ops.generalized_delta_rule.dplr.naive", "dplr_recurrence")
    x = {n: t.detach() for n, t in _dplr_leaves(4).items()}
    o, S = dplr_chunk(x["q"], x["k"], x["v"], x["a"], x["b"], x["w"], scale=1.0, initial_state=x["h0"],
                      output_final_state=True, chunk_size=16)
    o_ref, S_ref = _dplr_reference(ref, x)
    o_swap, _ = _dplr_reference(ref, x, alpha="b", beta="a")
    torch.testing.assert_close(o, o_ref, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(S, S_ref, atol=1e-4, rtol=1e-5)
    assert (o - o_swap).abs().max() > 1e-2


@pytest.mark.parametrize("chunk_size", [16, 64])
def test_gsa_matches_fla_naive_recurrent(chunk_size):
    ref = _reference("fla.ops.gsa.naive", "naive_recurrent_gsa")
    gen = torch.Generator().manual_seed(5)
    f = F.logsigmoid(2 * _randn(gen, B, T, H, M)) / 2
    x = _leaves(q=F.silu(_randn(gen, B, T, H, K)), k=F.silu(_randn(gen, B, T, H, K)), v=_randn(gen, B, T, H, V),
                s=1 - f.exp(), f=f, hk=_randn(gen, B, H, K, M), hv=_randn(gen, B, H, M, V))
    _compare(lambda: gsa_chunk(x["q"], x["k"], x["v"], x["s"], x["f"], scale=1.0, initial_state=(x["hk"], x["hv"]),
                               output_final_state=True, chunk_size=chunk_size),
             lambda: ref(x["q"], x["k"], x["v"], x["s"], x["f"], scale=1.0, initial_state=(x["hk"], x["hv"]),
                         output_final_state=True),
             x, seed=5)
