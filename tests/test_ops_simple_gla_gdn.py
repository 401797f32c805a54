"""Chunked simple-GLA and gated-delta-rule ops against their per-step references and hand checks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from omnirl.model.ops.gdn import gdn_chunk, gdn_recurrent
from omnirl.model.ops.simple_gla import simple_gla_chunk, simple_gla_recurrent

# name -> (chunked op, per-step op, whether it takes beta)
OPS = {
    "simple_gla": (simple_gla_chunk, simple_gla_recurrent, False),
    "gdn": (gdn_chunk, gdn_recurrent, True),
}
TOL = {torch.float32: 1e-5, torch.float64: 1e-10}


def make_inputs(B=2, T=50, H=2, K=16, V=16, *, dtype=torch.float64, seed=0, h0=True,
                g_shift=2.0):
    """Random op inputs: unit keys (GDN's usual L2-normalised keys), g = logsigmoid(.) < 0,
    beta in (0, 1). ``g_shift`` moves the gates towards 0 (long memory) when large."""
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=gen, dtype=dtype)

    return {
        "q": randn(B, T, H, K),
        "k": F.normalize(randn(B, T, H, K), dim=-1),
        "v": randn(B, T, H, V),
        "g": F.logsigmoid(randn(B, T, H) + g_shift),
        "beta": torch.rand(B, T, H, generator=gen, dtype=dtype),
        "initial_state": randn(B, H, K, V) if h0 else None,
    }


def call(op: str, fn, x: dict, **kw):
    """Call one of the ops with the inputs in ``x`` (positional q, k, v, g[, beta])."""
    args = [x["q"], x["k"], x["v"], x["g"]] + ([x["beta"]] if OPS[op][2] else [])
    return fn(*args, initial_state=x["initial_state"], **kw)


def grad_names(op: str, x: dict) -> list[str]:
    names = ["q", "k", "v", "g"] + (["beta"] if OPS[op][2] else [])
    return names + (["initial_state"] if x["initial_state"] is not None else [])


def assert_close(a: torch.Tensor, b: torch.Tensor, tol: float, what: str = ""):
    """max |a - b| <= tol * max(1, max |b|), i.e. absolute for O(1) values, relative above."""
    assert a.shape == b.shape, (what, a.shape, b.shape)
    assert torch.isfinite(a).all(), what
    err = (a - b).abs().max().item() if a.numel() else 0.0
    bound = tol * max(1.0, b.abs().max().item() if b.numel() else 0.0)
    assert err <= bound, f"{what}: max|diff| = {err:.3e} > {bound:.3e}"


def loss_and_grads(op: str, fn, x: dict, **kw):
    """Output, final state and the gradients of a random linear loss of both wrt every input."""
    x = {n: (t.detach().clone().requires_grad_() if t is not None else None) for n, t in x.items()}
    o, s = call(op, fn, x, **kw)
    gen = torch.Generator().manual_seed(123)
    wo = torch.randn(o.shape, generator=gen, dtype=o.dtype)
    ws = torch.randn(s.shape, generator=gen, dtype=s.dtype)
    loss = (o * wo).sum() + (s * ws).sum()
    names = grad_names(op, x)
    grads = torch.autograd.grad(loss, [x[n] for n in names])
    return o.detach(), s.detach(), dict(zip(names, grads))


# --------------------------------------------------------------------------------------------------
# chunked == per-step, forward and backward
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("T,chunk,K,V", [(50, 16, 16, 16), (130, 64, 16, 16), (50, 16, 16, 8),
                                         (37, 8, 8, 24)])
@pytest.mark.parametrize("h0", [True, False], ids=["h0", "no_h0"])
def test_chunk_matches_recurrent(op, dtype, T, chunk, K, V, h0):
    chunk_fn, rec_fn, _ = OPS[op]
    x = make_inputs(T=T, K=K, V=V, dtype=dtype, h0=h0, seed=T + K + V)
    o1, s1, g1 = loss_and_grads(op, chunk_fn, x, chunk_size=chunk)
    o2, s2, g2 = loss_and_grads(op, rec_fn, x)
    tol = TOL[dtype]
    assert o1.dtype == s1.dtype == dtype
    assert o1.shape == (2, T, 2, V) and s1.shape == (2, 2, K, V)
    assert_close(o1, o2, tol, "o")
    assert_close(s1, s2, tol, "final state")
    for name in g2:
        assert_close(g1[name], g2[name], tol, f"d{name}")


@pytest.mark.parametrize("op", OPS)
def test_chunk_size_does_not_change_result(op):
    chunk_fn = OPS[op][0]
    x = make_inputs(T=70, dtype=torch.float64, seed=3)
    ref_o, ref_s = call(op, chunk_fn, x, chunk_size=70)  # a single chunk
    for c in (1, 3, 16, 64, 1000):
        o, s = call(op, chunk_fn, x, chunk_size=c)
        assert_close(o, ref_o, 1e-10, f"o, chunk {c}")
        assert_close(s, ref_s, 1e-10, f"state, chunk {c}")


@pytest.mark.parametrize("op", OPS)
def test_gradcheck_tiny(op):
    """Finite differences on a tiny fp64 problem, several chunks with a padded last one."""
    chunk_fn = OPS[op][0]
    x = make_inputs(B=1, T=7, H=1, K=3, V=2, dtype=torch.float64, seed=5)
    names = grad_names(op, x)

    def f(*ts):
        y = dict(x, **dict(zip(names, ts)))
        o, s = call(op, chunk_fn, y, chunk_size=3)
        return o, s

    assert torch.autograd.gradcheck(f, [x[n].clone().requires_grad_() for n in names])


# --------------------------------------------------------------------------------------------------
# state carry and decode
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_segment_carry_equals_one_pass(op, seed):
    chunk_fn = OPS[op][0]
    T = 100
    x = make_inputs(T=T, dtype=torch.float64, seed=10 + seed)
    full_o, full_s = call(op, chunk_fn, x, chunk_size=16)
    gen = torch.Generator().manual_seed(seed)
    cuts = sorted(torch.randperm(T - 1, generator=gen)[:4].add(1).tolist())
    state, outs = x["initial_state"], []
    for a, b in zip([0] + cuts, cuts + [T]):
        seg = {n: (t[:, a:b] if n != "initial_state" else state) for n, t in x.items()}
        o, state = call(op, chunk_fn, seg, chunk_size=16)
        outs.append(o)
    assert_close(torch.cat(outs, dim=1), full_o, 1e-10, f"o, cuts {cuts}")
    assert_close(state, full_s, 1e-10, f"state, cuts {cuts}")


@pytest.mark.parametrize("op", OPS)
def test_gradient_flows_through_carried_state(op):
    """Backprop across two segments (no detach) equals backprop through one pass."""
    chunk_fn = OPS[op][0]
    x = make_inputs(T=40, dtype=torch.float64, seed=4)
    _, _, g_full = loss_and_grads(op, chunk_fn, x, chunk_size=16)

    def two_segments(*args, initial_state=None, chunk_size=16):
        first = [a[:, :23] for a in args]
        second = [a[:, 23:] for a in args]
        o1, s1 = chunk_fn(*first, initial_state=initial_state, chunk_size=chunk_size)
        o2, s2 = chunk_fn(*second, initial_state=s1, chunk_size=chunk_size)
        return torch.cat([o1, o2], dim=1), s2

    _, _, g_split = loss_and_grads(op, two_segments, x)
    for name in g_full:
        assert_close(g_split[name], g_full[name], 1e-10, f"d{name}")


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
def test_decode_equals_parallel(op, dtype):
    chunk_fn = OPS[op][0]
    T = 24
    x = make_inputs(T=T, dtype=dtype, seed=6)
    full_o, full_s = call(op, chunk_fn, x, chunk_size=64)
    state, outs = x["initial_state"], []
    for t in range(T):
        step = {n: (v[:, t:t + 1] if n != "initial_state" else state) for n, v in x.items()}
        o, state = call(op, chunk_fn, step, chunk_size=1)
        outs.append(o)
    assert_close(torch.cat(outs, dim=1), full_o, TOL[dtype], "o")
    assert_close(state, full_s, TOL[dtype], "state")


@pytest.mark.parametrize("op", OPS)
def test_empty_sequence_and_no_final_state(op):
    chunk_fn, rec_fn, _ = OPS[op]
    x = make_inputs(T=0, dtype=torch.float64)
    for fn in (chunk_fn, rec_fn):
        o, s = call(op, fn, x)
        assert o.shape == (2, 0, 2, 16)
        assert torch.equal(s, x["initial_state"])
    x = make_inputs(T=5, dtype=torch.float64)
    assert call(op, chunk_fn, x, output_final_state=False)[1] is None
    assert call(op, rec_fn, x, output_final_state=False)[1] is None


@pytest.mark.parametrize("op", OPS)
def test_half_inputs_compute_in_fp32(op):
    chunk_fn, rec_fn, _ = OPS[op]
    x = make_inputs(T=20, dtype=torch.float32, seed=8)
    ref_o, ref_s = call(op, chunk_fn, x, chunk_size=8)
    xh = {n: t.to(torch.bfloat16) if n != "initial_state" else t for n, t in x.items()}
    o, s = call(op, chunk_fn, xh, chunk_size=8)
    assert o.dtype == torch.float32 and s.dtype == torch.float32
    assert_close(o, ref_o, 0.1, "bf16 o")  # only the inputs are rounded


# --------------------------------------------------------------------------------------------------
# hand-checked cases
# --------------------------------------------------------------------------------------------------

def _unit(i, n, dtype=torch.float64):
    return torch.eye(n, dtype=dtype)[i]


@pytest.mark.parametrize("fn", [gdn_chunk, gdn_recurrent])
def test_gdn_overwrites_value_at_key(fn):
    """g = 0, beta = 1, orthonormal keys: each write replaces the value stored at its key."""
    K, V = 4, 3
    e0, e1 = _unit(0, K), _unit(1, K)
    keys = torch.stack([e0, e1, e0, e0])  # (T, K)
    vals = torch.tensor([[1., 2., 3.], [4., 5., 6.], [7., 8., 9.], [-1., 0., 1.]],
                        dtype=torch.float64)
    q = torch.stack([e0, e0, e1, e0])  # read key 0, key 0, key 1, key 0
    shape4 = lambda x: x[None, :, None, :]  # (T, D) -> (1, T, 1, D)
    zeros = torch.zeros(1, 4, 1, dtype=torch.float64)
    h0 = torch.zeros(1, 1, K, V, dtype=torch.float64)
    h0[0, 0, 2] = torch.tensor([10., 20., 30.])  # something stored at key 2 beforehand
    kw = dict(scale=1.0, initial_state=h0)
    if fn is gdn_chunk:
        kw["chunk_size"] = 3
    o, S = fn(shape4(q), shape4(keys), shape4(vals), zeros, zeros + 1, **kw)
    expected = torch.stack([vals[0], vals[0], vals[1], vals[3]])
    torch.testing.assert_close(o[0, :, 0], expected, rtol=0, atol=1e-12)
    # final memory: key 0 -> last value written there, key 1 -> vals[1], key 2 untouched
    expected_S = torch.zeros(K, V, dtype=torch.float64)
    expected_S[0], expected_S[1], expected_S[2] = vals[3], vals[1], h0[0, 0, 2]
    torch.testing.assert_close(S[0, 0], expected_S, rtol=0, atol=1e-12)


def test_gdn_write_replaces_projection_on_non_basis_key():
    """With a unit key k, g = 0 and beta = 1, k S_1 = v whatever the prior memory S_0 held."""
    gen = torch.Generator().manual_seed(0)
    K, V = 5, 3
    k = F.normalize(torch.randn(1, 1, 1, K, generator=gen, dtype=torch.float64), dim=-1)
    v = torch.randn(1, 1, 1, V, generator=gen, dtype=torch.float64)
    h0 = torch.randn(1, 1, K, V, generator=gen, dtype=torch.float64)
    zeros = torch.zeros(1, 1, 1, dtype=torch.float64)
    o, S = gdn_chunk(k, k, v, zeros, zeros + 1, scale=1.0, initial_state=h0)
    torch.testing.assert_close(o[0, 0, 0], v[0, 0, 0], rtol=0, atol=1e-12)
    # directions orthogonal to k are untouched: (I - k^T k) S_1 = (I - k^T k) S_0
    P = torch.eye(K, dtype=torch.float64) - k[0, 0, 0, :, None] * k[0, 0, 0, None, :]
    torch.testing.assert_close(P @ S[0, 0], P @ h0[0, 0], rtol=0, atol=1e-12)


@pytest.mark.parametrize("fn", [gdn_chunk, gdn_recurrent])
def test_gdn_closed_form_two_steps(fn):
    """T = 2, S_0 = 0, scalar-valued heads written out by hand:
    S_1 = b1 k1^T v1;  u_2 = b2 (v2 - e^{g2} (k2.k1) b1 v1);  S_2 = e^{g2} S_1 + k2^T u_2."""
    gen = torch.Generator().manual_seed(1)
    K, V = 3, 2
    q, k = (torch.randn(1, 2, 1, K, generator=gen, dtype=torch.float64) for _ in range(2))
    v = torch.randn(1, 2, 1, V, generator=gen, dtype=torch.float64)
    g = torch.tensor([[[-0.3], [-0.7]]], dtype=torch.float64)
    b = torch.tensor([[[0.6], [0.9]]], dtype=torch.float64)
    scale = 0.5
    kw = {"chunk_size": 2} if fn is gdn_chunk else {}
    o, S = fn(q, k, v, g, b, scale=scale, **kw)
    q1, q2, k1, k2 = q[0, 0, 0], q[0, 1, 0], k[0, 0, 0], k[0, 1, 0]
    v1, v2, b1, b2, g2 = v[0, 0, 0], v[0, 1, 0], b[0, 0, 0], b[0, 1, 0], g[0, 1, 0]
    u2 = b2 * (v2 - g2.exp() * (k2 @ k1) * b1 * v1)
    o1 = scale * b1 * (q1 @ k1) * v1
    o2 = scale * (g2.exp() * b1 * (q2 @ k1) * v1 + (q2 @ k2) * u2)
    S2 = g2.exp() * b1 * torch.outer(k1, v1) + torch.outer(k2, u2)
    torch.testing.assert_close(o[0, :, 0], torch.stack([o1, o2]), rtol=0, atol=1e-12)
    torch.testing.assert_close(S[0, 0], S2, rtol=0, atol=1e-12)


@pytest.mark.parametrize("fn", [simple_gla_chunk, simple_gla_recurrent])
def test_simple_gla_closed_form_two_steps(fn):
    """o_2 = scale (e^{g1+g2} q2 S_0 + e^{g2} (q2.k1) v1 + (q2.k2) v2)."""
    x = make_inputs(B=1, T=2, H=1, K=3, V=2, seed=2)
    kw = {"chunk_size": 2} if fn is simple_gla_chunk else {}
    o, S = fn(x["q"], x["k"], x["v"], x["g"], scale=0.7, initial_state=x["initial_state"], **kw)
    q1, q2 = x["q"][0, :, 0]
    k1, k2 = x["k"][0, :, 0]
    v1, v2 = x["v"][0, :, 0]
    g1, g2 = x["g"][0, :, 0]
    S0 = x["initial_state"][0, 0]
    o1 = 0.7 * (g1.exp() * q1 @ S0 + (q1 @ k1) * v1)
    o2 = 0.7 * ((g1 + g2).exp() * q2 @ S0 + g2.exp() * (q2 @ k1) * v1 + (q2 @ k2) * v2)
    S2 = (g1 + g2).exp() * S0 + g2.exp() * torch.outer(k1, v1) + torch.outer(k2, v2)
    torch.testing.assert_close(o[0, :, 0], torch.stack([o1, o2]), rtol=0, atol=1e-12)
    torch.testing.assert_close(S[0, 0], S2, rtol=0, atol=1e-12)


def test_simple_gla_without_decay_is_causal_linear_attention():
    x = make_inputs(T=30, dtype=torch.float64, seed=9, h0=False)
    zeros = torch.zeros_like(x["g"])
    o, _ = simple_gla_chunk(x["q"], x["k"], x["v"], zeros, scale=0.3, chunk_size=8)
    scores = torch.einsum("bthk,bshk->bhts", x["q"], x["k"]).tril()  # (B, H, T, T), s <= t
    expected = 0.3 * torch.einsum("bhts,bshv->bthv", scores, x["v"])
    assert_close(o, expected, 1e-12, "o")


@pytest.mark.parametrize("op", OPS)
def test_no_memory_with_huge_decay(op):
    """g = -1e4 per step: exp(g) = 0, the memory (and S_0) is forgotten at every step, so
    o_t = scale * beta_t (q_t . k_t) v_t and S_T = beta_T k_T^T v_T (beta = 1 for simple GLA)."""
    chunk_fn, rec_fn, has_beta = OPS[op]
    x = make_inputs(T=20, dtype=torch.float32, seed=11)
    x["g"] = torch.full_like(x["g"], -1e4)
    beta = x["beta"] if has_beta else torch.ones_like(x["g"])
    scale = x["q"].shape[-1] ** -0.5
    expected_o = scale * (beta * (x["q"] * x["k"]).sum(-1)).unsqueeze(-1) * x["v"]
    expected_S = beta[:, -1, :, None, None] * x["k"][:, -1, :, :, None] * x["v"][:, -1, :, None, :]
    for fn, kw in ((chunk_fn, {"chunk_size": 8}), (rec_fn, {})):
        o, S = call(op, fn, x, **kw)
        assert_close(o, expected_o, 1e-6, "o")
        assert_close(S, expected_S, 1e-6, "state")


def test_simple_gla_is_mamba2_ssd():
    """simple GLA with q=C, k=B, v=dt*x, g=dt*A, scale=1 equals Mamba2's SSD, written here in
    Mamba2's own layout h [P, N]: h_t = exp(dt_t A) h_{t-1} + (dt_t x_t)^T B_t, y_t = h_t C_t^T."""
    gen = torch.Generator().manual_seed(12)
    Bsz, T, H, P, N = 2, 21, 3, 4, 5
    randn = lambda *s: torch.randn(*s, generator=gen, dtype=torch.float64)
    xs, Bm, Cm = randn(Bsz, T, H, P), randn(Bsz, T, H, N), randn(Bsz, T, H, N)
    dt = F.softplus(randn(Bsz, T, H))
    A = -torch.exp(randn(H))
    h = randn(Bsz, H, P, N)  # Mamba2 cache layout
    h0 = h.transpose(-1, -2).clone()  # key-first (N, P)
    ys = []
    for t in range(T):
        h = (dt[:, t] * A).exp()[..., None, None] * h \
            + (dt[:, t, :, None] * xs[:, t])[..., :, None] * Bm[:, t, :, None, :]
        ys.append(torch.einsum("bhpn,bhn->bhp", h, Cm[:, t]))
    y_ref = torch.stack(ys, dim=1)
    o, S = simple_gla_chunk(Cm, Bm, dt[..., None] * xs, dt * A, scale=1.0, initial_state=h0,
                            chunk_size=8)
    assert_close(o, y_ref, 1e-12, "y")
    assert_close(S, h.transpose(-1, -2), 1e-12, "state")


# --------------------------------------------------------------------------------------------------
# numerical safety
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("g_value", [-50.0, -1e3])
def test_strongly_negative_gates_stay_finite(op, g_value):
    chunk_fn, rec_fn, _ = OPS[op]
    x = make_inputs(T=130, dtype=torch.float32, seed=13)
    x["g"] = torch.full_like(x["g"], g_value)
    o1, s1, g1 = loss_and_grads(op, chunk_fn, x, chunk_size=64)
    o2, s2, g2 = loss_and_grads(op, rec_fn, x)
    for t in [o1, s1, *g1.values()]:
        assert torch.isfinite(t).all()
    assert_close(o1, o2, 1e-5, "o")
    assert_close(s1, s2, 1e-5, "state")
    for name in g2:
        assert_close(g1[name], g2[name], 1e-5, f"d{name}")


@pytest.mark.parametrize("op", OPS)
def test_mixed_gates_long_chunk_finite(op):
    """Gates spanning 0 to -80 inside one 64-step chunk: a factorised exp(G_i) exp(-G_j) would
    overflow fp32 here (cumulative sums reach several thousand), and a difference of two such sums
    would lose ~1e-4 of precision; the per-pair segment sums keep fp32 accuracy."""
    chunk_fn, rec_fn, _ = OPS[op]
    x = make_inputs(T=64, dtype=torch.float32, seed=14)
    x["g"] = -80 * torch.rand(x["g"].shape, generator=torch.Generator().manual_seed(0))
    o1, s1, g1 = loss_and_grads(op, chunk_fn, x, chunk_size=64)
    o2, s2, g2 = loss_and_grads(op, rec_fn, x)
    assert_close(o1, o2, 1e-5, "o")
    for name in g2:
        assert_close(g1[name], g2[name], 1e-5, f"d{name}")


# --------------------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("fn_index", [0, 1], ids=["chunk", "recurrent"])
@pytest.mark.parametrize("name,bad,match", [
    ("q", lambda t: t[0], "q must have 4 dims"),
    ("k", lambda t: t[..., :-1], "k must have shape"),
    ("k", lambda t: t[:, :-1], "k must have shape"),
    ("v", lambda t: t[:, :, :1], "v must have shape"),
    ("v", lambda t: t[..., 0], "v must have 4 dims"),
    ("g", lambda t: t[..., None], "g must have 3 dims"),
    ("g", lambda t: t[:, :-1], "g must have shape"),
    ("beta", lambda t: t[:1], "beta must have shape"),
    ("initial_state", lambda t: t.transpose(-1, -2)[..., :3], "initial_state must have shape"),
    ("q", lambda t: t.to(torch.int64), "q must be a floating-point"),
    ("v", lambda t: t.tolist(), "v must be a torch.Tensor"),
])
def test_bad_shapes_raise(op, fn_index, name, bad, match):
    if name == "beta" and not OPS[op][2]:
        pytest.skip("simple GLA has no beta")
    x = make_inputs(T=6, K=4, V=5)
    x[name] = bad(x[name])
    with pytest.raises(ValueError, match=match):
        call(op, OPS[op][fn_index], x)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("chunk_size", [0, -3, 2.5, True])
def test_bad_chunk_size_raises(op, chunk_size):
    x = make_inputs(T=6)
    with pytest.raises(ValueError, match="chunk_size"):
        call(op, OPS[op][0], x, chunk_size=chunk_size)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("scale", [math.inf, "1", True])
def test_bad_scale_raises(op, scale):
    x = make_inputs(T=6)
    for fn in OPS[op][:2]:
        with pytest.raises(ValueError, match="scale"):
            call(op, fn, x, scale=scale)
