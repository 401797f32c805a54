"""Chunked DPLR (RWKV-7) and gated-slot-attention ops against their per-step references and hand checks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from omnirl.model.ops.dplr import dplr_chunk, dplr_recurrent
from omnirl.model.ops.gsa import gsa_chunk, gsa_recurrent

W_MIN = -0.6065306597126334  # RWKV-7's log-decay bound, -exp(-1/2)
TOL = {torch.float32: 2e-5, torch.float64: 1e-10}


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def dplr_inputs(B=2, T=50, H=2, K=16, V=16, *, dtype=torch.float64, seed=0, h0=True, w=None):
    """RWKV-7-shaped inputs: a = -kk, b = kk * gate with kk unit-norm, w = W_MIN * sigmoid(.)."""
    gen = _gen(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=gen, dtype=dtype)

    kk = F.normalize(randn(B, T, H, K), dim=-1)
    gate = torch.rand(B, T, H, K, generator=gen, dtype=dtype)
    args = {
        "q": randn(B, T, H, K),
        "k": randn(B, T, H, K) * 0.5,
        "v": randn(B, T, H, V),
        "a": -kk,
        "b": kk * gate,
        "w": W_MIN * torch.sigmoid(randn(B, T, H, K)) if w is None else torch.full((B, T, H, K), w, dtype=dtype),
    }
    state = randn(B, H, K, V) if h0 else None
    return args, state


def gsa_inputs(B=2, T=50, H=2, K=16, V=16, M=8, *, dtype=torch.float64, seed=0, h0=True, f=None):
    """GSA-layer-shaped inputs: q, k = silu(.), f = logsigmoid(.) / 8 (widened), s = 1 - exp(f)."""
    gen = _gen(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=gen, dtype=dtype)

    if f is None:
        f = F.logsigmoid(2 * randn(B, T, H, M)) / 2
    args = {"q": F.silu(randn(B, T, H, K)), "k": F.silu(randn(B, T, H, K)), "v": randn(B, T, H, V),
            "s": 1 - f.exp(), "f": f}
    state = (randn(B, H, K, M), randn(B, H, M, V)) if h0 else None
    return args, state


OPS = {
    "dplr": (dplr_chunk, dplr_recurrent, dplr_inputs, 0.7),
    "gsa": (gsa_chunk, gsa_recurrent, gsa_inputs, 1.0),
}


def _states(st):
    return [] if st is None else (list(st) if isinstance(st, tuple) else [st])


def _close(x, y, tol, what):
    err = (x - y).abs().max().item()
    ref = max(1.0, y.abs().max().item())
    assert err <= tol * ref, f"{what}: max|diff| {err:.3g} > {tol:.1g} * {ref:.3g}"


@pytest.mark.parametrize("name", list(OPS))
@pytest.mark.parametrize("T,C", [(50, 16), (130, 64), (9, 1)])
@pytest.mark.parametrize("h0", [True, False])
def test_chunk_matches_recurrent_with_grads(name, T, C, h0):
    chunk, rec, make, scale = OPS[name]
    args, st0 = make(T=T, h0=h0, seed=T + C)
    leaves = {k: v.clone().requires_grad_() for k, v in args.items()}
    st_leaves = [x.clone().requires_grad_() for x in _states(st0)]
    init = None if st0 is None else (tuple(st_leaves) if name == "gsa" else st_leaves[0])
    wanted = list(leaves.values()) + st_leaves
    gen = _gen(1)
    results = []
    for fn, kw in ((rec, {}), (chunk, {"chunk_size": C})):
        o, st = fn(**leaves, scale=scale, initial_state=init, **kw)
        sts = _states(st)
        gen.manual_seed(1)
        loss = (o * torch.randn(o.shape, generator=gen, dtype=o.dtype)).sum()
        for x in sts:
            loss = loss + (x * torch.randn(x.shape, generator=gen, dtype=x.dtype)).sum()
        results.append((o, sts, torch.autograd.grad(loss, wanted)))
    (o1, s1, g1), (o2, s2, g2) = results
    assert o2.shape == o1.shape == (2, T, 2, 16) and o2.dtype == torch.float64
    _close(o2, o1, 1e-10, "o")
    for x, y in zip(s2, s1):
        _close(x, y, 1e-10, "final state")
    names = list(leaves) + [f"initial_state[{i}]" for i in range(len(st_leaves))]
    for n, x, y in zip(names, g2, g1):
        _close(x, y, 1e-9, f"grad {n}")
    if h0:  # the carried state really receives a gradient
        assert all(g.abs().max() > 0 for g in g2[len(leaves):])


@pytest.mark.parametrize("name", list(OPS))
def test_fp32_matches_fp64(name):
    chunk, rec, make, scale = OPS[name]
    args, st0 = make(T=100, seed=3)
    o64, s64 = rec(**args, scale=scale, initial_state=st0)
    a32 = {k: v.float() for k, v in args.items()}
    st32 = None if st0 is None else (tuple(x.float() for x in st0) if name == "gsa" else st0.float())
    o32, s32 = chunk(**a32, scale=scale, initial_state=st32)
    assert o32.dtype == torch.float32
    _close(o32.double(), o64, 2e-5, "o fp32")
    for x, y in zip(_states(s32), _states(s64)):
        assert x.dtype == torch.float32
        _close(x.double(), y, 2e-5, "state fp32")


@pytest.mark.parametrize("name", list(OPS))
def test_segment_carry_and_decode(name):
    chunk, _, make, scale = OPS[name]
    T = 97
    args, st0 = make(T=T, seed=5)
    o_full, s_full = chunk(**args, scale=scale, initial_state=st0, chunk_size=16)
    gen = _gen(11)
    for _ in range(3):  # random splits, state carried between segments
        cuts = sorted(torch.randperm(T - 1, generator=gen)[:3].add(1).tolist())
        st, outs = st0, []
        for lo, hi in zip([0] + cuts, cuts + [T]):
            o, st = chunk(**{k: v[:, lo:hi] for k, v in args.items()}, scale=scale, initial_state=st, chunk_size=16)
            outs.append(o)
        _close(torch.cat(outs, 1), o_full, 1e-10, f"split {cuts}")
        for x, y in zip(_states(st), _states(s_full)):
            _close(x, y, 1e-10, "split state")
    # one-token decode with chunk_size=1
    st, outs = st0, []
    for t in range(T):
        o, st = chunk(**{k: v[:, t:t + 1] for k, v in args.items()}, scale=scale, initial_state=st, chunk_size=1)
        outs.append(o)
    _close(torch.cat(outs, 1), o_full, 1e-10, "decode")
    for x, y in zip(_states(st), _states(s_full)):
        _close(x, y, 1e-10, "decode state")
    # no final state requested
    assert chunk(**args, scale=scale, initial_state=st0, output_final_state=False)[1] is None


def test_dplr_hand_checked_step():
    # K=2, V=1, one step. S0 = [1, 2]^T; a = e1 reads u = a S0 = 1 from the *undecayed* S0;
    # b = e2 writes u into key row 2; decay diag(1, 1/2); k^T v adds 3 to both rows:
    # S1 = [1, 1]^T + [0, 1]^T + [3, 3]^T = [4, 5]^T, o = q S1 = 9 (scale 1).
    def t(*x):
        return torch.tensor(x, dtype=torch.float64).view(1, 1, 1, -1)

    args = dict(q=t(1.0, 1.0), k=t(1.0, 1.0), v=t(3.0), a=t(1.0, 0.0), b=t(0.0, 1.0), w=t(0.0, math.log(0.5)))
    S0 = torch.tensor([1.0, 2.0], dtype=torch.float64).view(1, 1, 2, 1)
    for fn in (dplr_recurrent, dplr_chunk):
        o, S = fn(**args, initial_state=S0)
        assert o.item() == pytest.approx(9.0)
        assert S.flatten().tolist() == pytest.approx([4.0, 5.0])


def test_dplr_without_low_rank_is_gla_with_per_key_decay():
    # a = b = 0: S_t = diag(e^{w_t}) S_{t-1} + k_t^T v_t, so
    # o_t = scale [ (q_t e^{G_t}) S_0 + sum_{j<=t} sum_i q_t[i] e^{G_t[i] - G_j[i]} k_j[i] v_j ].
    args, S0 = dplr_inputs(T=40, seed=7)
    args["a"] = torch.zeros_like(args["a"])
    args["b"] = torch.zeros_like(args["b"])
    G = args["w"].cumsum(1)                                                    # [B, T, H, K]
    T = G.shape[1]
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool)).view(1, T, T, 1, 1)
    decay = torch.where(mask, (G.unsqueeze(2) - G.unsqueeze(1)), -math.inf).exp()  # [B, t, j, H, K]
    A = torch.einsum("bthi,btjhi,bjhi->bthj", args["q"], decay, args["k"])
    ref = torch.einsum("bthj,bjhv->bthv", A, args["v"])
    ref = ref + torch.einsum("bthi,bhiv->bthv", args["q"] * G.exp(), S0)
    for fn, kw in ((dplr_recurrent, {}), (dplr_chunk, {"chunk_size": 16})):
        o, _ = fn(**args, scale=0.5, initial_state=S0, **kw)
        _close(o, 0.5 * ref, 1e-10, fn.__name__)


def test_gsa_one_slot_and_hand_checked_step():
    # M = 1: the softmax over one slot is 1, so o_t = hv_t = e^{F_t} hv_0 + sum_{j<=t} e^{F_t - F_j} s_j v_j
    # and q, k do not matter.
    args, (hk0, hv0) = gsa_inputs(T=30, M=1, seed=9)
    F_ = args["f"].cumsum(1)[..., 0]                                           # [B, T, H]
    T = F_.shape[1]
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool)).view(1, T, T, 1)
    decay = torch.where(mask, F_.unsqueeze(2) - F_.unsqueeze(1), -math.inf).exp()  # [B, t, j, H]
    ref = torch.einsum("btjh,bjh,bjhv->bthv", decay, args["s"][..., 0], args["v"])
    ref = ref + F_.exp().unsqueeze(-1) * hv0[:, :, 0].unsqueeze(1)
    for fn, kw in ((gsa_recurrent, {}), (gsa_chunk, {"chunk_size": 8})):
        o, _ = fn(**args, initial_state=(hk0, hv0), **kw)
        _close(o, ref, 1e-10, fn.__name__)

    # M = 2, K = V = 1, one step, by hand: hk1 = hk0 e^f + k s, logits = q hk1, p = softmax,
    # hv1 = e^f hv0 + s v, o = p . hv1.
    def t(*x):
        return torch.tensor(x, dtype=torch.float64).view(1, 1, 1, -1)

    f = (math.log(0.5), math.log(0.25))
    s = (0.5, 0.75)
    args = dict(q=t(2.0), k=t(1.0), v=t(4.0), s=t(*s), f=t(*f))
    hk0 = torch.tensor([1.0, -1.0], dtype=torch.float64).view(1, 1, 1, 2)
    hv0 = torch.tensor([2.0, 8.0], dtype=torch.float64).view(1, 1, 2, 1)
    hk1 = [1.0 * 0.5 + 0.5, -1.0 * 0.25 + 0.75]                               # [1.0, 0.5]
    logits = [2.0 * x for x in hk1]                                            # [2.0, 1.0]
    p0 = 1 / (1 + math.exp(logits[1] - logits[0]))
    hv1 = [2.0 * 0.5 + 0.5 * 4.0, 8.0 * 0.25 + 0.75 * 4.0]                     # [3.0, 5.0]
    expected = p0 * hv1[0] + (1 - p0) * hv1[1]
    for fn in (gsa_recurrent, gsa_chunk):
        o, (hk, hv) = fn(**args, initial_state=(hk0, hv0))
        assert o.item() == pytest.approx(expected)
        assert hk.flatten().tolist() == pytest.approx(hk1)
        assert hv.flatten().tolist() == pytest.approx(hv1)


def test_dplr_fp32_safe_at_the_decay_bound():
    # every w at RWKV-7's bound: the chunk-64 factorised decay reaches e^{+-19.4}; fp32 must stay
    # finite and agree with the fp64 recurrence, gradients included.
    args, S0 = dplr_inputs(T=130, w=W_MIN, seed=13)
    o64, s64 = dplr_recurrent(**args, initial_state=S0)
    a32 = {k: v.float().requires_grad_() for k, v in args.items()}
    S32 = S0.float().requires_grad_()
    o32, s32 = dplr_chunk(**a32, initial_state=S32, chunk_size=64)
    _close(o32.double(), o64, 1e-5, "o")
    _close(s32.double(), s64, 1e-5, "state")
    grads = torch.autograd.grad(o32.sum() + s32.sum(), list(a32.values()) + [S32])
    assert all(torch.isfinite(g).all() for g in grads)
    # a decay too strong for the factorised chunk is refused (and works with a smaller chunk)
    strong, _ = dplr_inputs(T=64, w=-2.0, seed=1, h0=False)
    with pytest.raises(ValueError, match=r"^w is too negative"):
        dplr_chunk(**strong, chunk_size=64)
    o16, _ = dplr_chunk(**strong, chunk_size=16)
    _close(o16, dplr_recurrent(**strong)[0], 1e-10, "strong decay, chunk 16")


def test_gsa_fp32_safe_with_very_negative_gates():
    gen = _gen(17)
    B, T, H, M = 2, 64, 2, 8
    # mix of near-0, moderate and huge negative log forget gates (e^{-1000} underflows to 0)
    choice = torch.randint(0, 3, (B, T, H, M), generator=gen)
    f = torch.stack([torch.full((B, T, H, M), -0.01, dtype=torch.float64),
                     -torch.rand(B, T, H, M, generator=gen, dtype=torch.float64) * 30,
                     torch.full((B, T, H, M), -1000.0, dtype=torch.float64)]).gather(0, choice[None])[0]
    args, st0 = gsa_inputs(T=T, M=M, f=f, seed=19)
    o64, s64 = gsa_recurrent(**args, initial_state=st0)
    a32 = {k: v.float().requires_grad_() for k, v in args.items()}
    st32 = tuple(x.float().requires_grad_() for x in st0)
    o32, s32 = gsa_chunk(**a32, initial_state=st32, chunk_size=16)
    _close(o32.double(), o64, 2e-5, "o")
    for x, y in zip(s32, s64):
        _close(x.double(), y, 2e-5, "state")
    grads = torch.autograd.grad(o32.sum() + sum(x.sum() for x in s32), list(a32.values()) + list(st32))
    assert all(torch.isfinite(g).all() for g in grads)


def test_bad_inputs_name_the_argument():
    d, S0 = dplr_inputs(T=5, seed=0)
    g, st = gsa_inputs(T=5, seed=0)
    cases = [
        (dplr_chunk, {**d, "k": d["k"][:, :4]}, {}, "k"),
        (dplr_chunk, {**d, "q": d["q"].numpy()}, {}, "q"),
        (dplr_chunk, {**d, "v": d["v"][:, :, :1]}, {}, "v"),
        (dplr_recurrent, {**d, "b": d["b"][..., :3]}, {}, "b"),
        (dplr_chunk, {**d, "w": d["w"].abs()}, {}, "w"),
        (dplr_chunk, d, {"initial_state": S0[..., :3]}, "initial_state"),
        (dplr_chunk, d, {"chunk_size": 0}, "chunk_size"),
        (dplr_chunk, d, {"scale": float("nan")}, "scale"),
        (gsa_chunk, {**g, "s": g["s"][..., :3]}, {}, "f"),
        (gsa_chunk, {**g, "s": g["s"][:, :4]}, {}, "s"),
        (gsa_chunk, {**g, "f": -g["f"] + 0.1}, {}, "f"),
        (gsa_recurrent, {**g, "f": g["f"].masked_fill(g["f"] < -0.1, float("nan"))}, {}, "f"),
        (gsa_chunk, g, {"initial_state": st[0]}, "initial_state"),
        (gsa_chunk, g, {"initial_state": (st[0], st[1][..., :2])}, r"initial_state\[1\]"),
        (gsa_chunk, g, {"chunk_size": 2.5}, "chunk_size"),
        (gsa_chunk, {**g, "q": g["q"].long()}, {}, "q"),
    ]
    for fn, args, kw, name in cases:
        with pytest.raises(ValueError, match=rf"^{name}"):
            fn(**args, **kw)


def test_scale_none_is_fla_default():
    d, S0 = dplr_inputs(T=10, seed=2)
    K = d["q"].shape[-1]
    _close(dplr_chunk(**d, scale=None, initial_state=S0)[0],
           dplr_chunk(**d, scale=K ** -0.5, initial_state=S0)[0], 1e-12, "dplr scale")
    g, st = gsa_inputs(T=10, seed=2)
    _close(gsa_chunk(**g, scale=None, initial_state=st)[0],
           gsa_chunk(**g, scale=K ** -0.5, initial_state=st)[0], 1e-12, "gsa scale")
