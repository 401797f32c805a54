"""Compare fla's kernels (through Triton's interpreter) with our ops; prints one JSON report.

    python tests/kernels/compare_fla.py        # run by tests/test_fla_kernels.py (slow)

For each recurrence: the chunk kernel on a segment with an initial state (outputs, final state and
input gradients), and the fused-recurrent kernel on one step without gradients, against our
chunked op, on tiny float32 inputs.
"""

import json
import sys
from pathlib import Path

import fla_interpret  # first: sets up the interpreter before anything imports triton
import torch

assert fla_interpret.INTERPRETING
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from omnirl.model.ops import dispatch, dplr_chunk, gdn_chunk, gsa_chunk, simple_gla_chunk  # noqa: E402


def make(name, T, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    u = lambda *s: torch.rand(*s, generator=g)  # noqa: E731
    B, H, K, M = 1, 2, 32, 16
    q, k, v = r(B, T, H, K), torch.nn.functional.normalize(r(B, T, H, K), dim=-1), r(B, T, H, K)
    if name == "gdn":
        return (q, k, v, -u(B, T, H), u(B, T, H)), r(B, H, K, K) * 0.1
    if name == "simple_gla":
        return (q, k, v, -u(B, T, H)), r(B, H, K, K) * 0.1
    if name == "dplr":
        kk = torch.nn.functional.normalize(r(B, T, H, K), dim=-1)
        return (q, k, v, -kk, kk * u(B, T, H, K), -0.6 * u(B, T, H, K)), r(B, H, K, K) * 0.1
    return (q, k, v, u(B, T, H, M), -u(B, T, H, M) - 0.01), (r(B, H, K, M) * 0.1, r(B, H, M, K) * 0.1)


PAIRS = {"gdn": (dispatch.fla_gated_delta_rule, gdn_chunk), "simple_gla": (dispatch.fla_simple_gla, simple_gla_chunk),
         "dplr": (dispatch.fla_dplr, dplr_chunk), "gsa": (dispatch.fla_gsa, gsa_chunk)}


def flat(x):
    return torch.cat([t.flatten() for t in x]) if isinstance(x, tuple) else x.flatten()


def compare(name):
    fla_fn, ours = PAIRS[name]
    args, h0 = make(name, T=48)
    res = {}
    # chunk kernels, with gradients
    a1 = [t.clone().requires_grad_(True) for t in args]
    a2 = [t.clone().requires_grad_(True) for t in args]
    o1, s1 = fla_fn(*a1, 1.0, h0)
    o2, s2 = ours(*a2, scale=1.0, initial_state=h0, output_final_state=True)
    w = torch.randn_like(o2)
    g1 = torch.autograd.grad((o1 * w).sum(), a1)
    g2 = torch.autograd.grad((o2 * w).sum(), a2)
    res["chunk_out"] = float((o1 - o2).abs().max())
    res["chunk_state"] = float((flat(s1) - flat(s2)).abs().max())
    res["chunk_grad"] = max(float((x - y).abs().max()) for x, y in zip(g1, g2))
    res["scale"] = float(o2.abs().max())
    # fused-recurrent kernels: one step, no gradients
    step, h = make(name, T=1, seed=1)
    with torch.no_grad():
        o1, s1 = fla_fn(*step, 1.0, h)
        o2, s2 = ours(*step, scale=1.0, initial_state=h, output_final_state=True, chunk_size=1)
    res["step_out"] = float((o1 - o2).abs().max())
    res["step_state"] = float((flat(s1) - flat(s2)).abs().max())
    return res


if __name__ == "__main__":
    names = sys.argv[1:] or list(PAIRS)
    report = {}
    for n in names:
        try:
            report[n] = compare(n)
        except Exception as e:  # reported, so the test names the kernel that failed
            report[n] = {"error": f"{type(e).__name__}: {e}"[:500]}
    print(json.dumps(report))
