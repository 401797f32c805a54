"""Core-recurrence dispatch: our chunked ops on CPU; fla's kernels on CUDA, checked against ours."""

import importlib.util

import pytest
import torch

from omnirl.model.ops import dispatch, dplr_chunk, gdn_chunk, gsa_chunk, simple_gla_chunk


def inputs(device, T=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g).to(device)  # noqa: E731
    B, H, K, M = 2, 2, 16, 8
    q, k, v = r(B, T, H, K), torch.nn.functional.normalize(r(B, T, H, K), dim=-1), r(B, T, H, K)
    return {
        "gdn": (q, k, v, -torch.rand(B, T, H).to(device), torch.rand(B, T, H).to(device)),
        "simple_gla": (q, k, v, -torch.rand(B, T, H).to(device)),
        "dplr": (q, k, v, -k, k * torch.rand(B, T, H, K).to(device), -0.6 * torch.rand(B, T, H, K).to(device)),
        "gsa": (q, k, v, torch.rand(B, T, H, M).to(device), -torch.rand(B, T, H, M).to(device)),
    }


OURS = {"gdn": (dispatch.gated_delta_rule, gdn_chunk), "simple_gla": (dispatch.simple_gla, simple_gla_chunk),
        "dplr": (dispatch.dplr, dplr_chunk), "gsa": (dispatch.gsa, gsa_chunk)}


@pytest.mark.parametrize("name", list(OURS))
def test_cpu_dispatch_runs_our_ops(name):
    args = inputs("cpu")[name]
    routed, ours = OURS[name]
    o, s = routed(*args, 1.0, None)
    o_ref, s_ref = ours(*args, scale=1.0, initial_state=None, output_final_state=True)
    torch.testing.assert_close(o, o_ref)
    # one-step calls take the decode path (chunk size 1) and agree with the parallel pass
    state, outs = None, []
    for t in range(args[0].shape[1]):
        step = tuple(a[:, t:t + 1] for a in args)
        ot, state = routed(*step, 1.0, state)
        outs.append(ot)
    torch.testing.assert_close(torch.cat(outs, 1), o, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("name", list(OURS))
def test_short_runs_without_gradients_step_through(name, monkeypatch):
    """Runs of at most RECURRENT_STEPS steps without gradients (decoding) take the per-step reference
    (but simple GLA, whose chunk is as fast); longer runs, and any run with gradients, the chunked
    op; all agree, carrying the state along."""
    args = inputs("cpu", T=7)[name]
    routed, ours = OURS[name]
    o_ref, s_ref = ours(*args, scale=1.0, initial_state=None, output_final_state=True)
    from omnirl.model import ops

    recurrent = getattr(ops, f"{name}_recurrent")
    calls = []
    monkeypatch.setattr(dispatch, recurrent.__name__, lambda *a, **k: calls.append(a[0].shape[1]) or recurrent(*a, **k),
                        raising=False)
    stepped = [] if name == "simple_gla" else [2, 1]
    with torch.no_grad():
        state, outs = None, []
        for lo, hi in ((0, 2), (2, 3), (3, 7)):  # 2 and 1 steps stepwise, then 4 chunked
            ot, state = routed(*(a[:, lo:hi] for a in args), 1.0, state)
            outs.append(ot)
    assert calls == stepped
    torch.testing.assert_close(torch.cat(outs, 1), o_ref, atol=2e-5, rtol=1e-4)
    routed(*(a[:, :2].requires_grad_() for a in args), 1.0, None)  # with gradients: chunked
    assert calls == stepped


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available() or importlib.util.find_spec("fla") is None,
                    reason="needs a CUDA GPU and flash-linear-attention (the `cuda` extra)")
@pytest.mark.parametrize("name", list(OURS))
def test_fla_kernels_match_our_ops(name):
    cpu, gpu = inputs("cpu", T=200)[name], inputs("cuda", T=200)[name]
    routed, ours = OURS[name]
    o_gpu, s_gpu = routed(*gpu, 1.0, None)
    o_cpu, s_cpu = ours(*cpu, scale=1.0, initial_state=None, output_final_state=True)
    torch.testing.assert_close(o_gpu.cpu(), o_cpu, atol=1e-3, rtol=1e-3)
