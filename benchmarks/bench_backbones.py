"""Backbone speed on the CPU: training throughput, chunked ops against fla's per-step references,
and one-step inference latency after short and long contexts.

    python benchmarks/bench_backbones.py [--backbones rwkv7,gdn,gsa,mamba2] [--repeats 5]
        [--tiny-batch 4] [--tiny-length 1024] [--paper-batch 1] [--paper-length 256]
        [--op-batch 4] [--op-length 1024] [--op-heads 2] [--op-head-dim 64] [--op-slots 64]
        [--op-repeats 5] [--contexts 1024,65536] [--prefill-chunk 4096] [--decode-steps 500]
        [--infer-batch 1] [--threads 1] [--seed 0] [--quick] [--out FILE]

Everything runs in fp32 on ``--threads`` CPU threads (default one, like the other benchmarks). One
JSON document goes to stdout (progress to stderr); ``--out FILE`` also writes it there atomically.
It has three sections:

``backbones``
    Forward + backward (loss ``mean(y^2)``, empty initial context) of each backbone built by
    ``build_backbone(sized(p, name))`` for the sizes ``tiny`` (default B=4, T=1024) and ``paper``
    (the paper's Table 6 size, 18 blocks of width 512; default B=1, T=256 to stay affordable on a
    CPU). One untimed warm-up, then ``--repeats`` timed runs; tokens/s = B*T / seconds, from the
    best and from the median run.

``ops``
    Each mixer's core recurrence, our chunked op against fla's per-step naive reference, forward +
    backward (gradients to every input and to the initial state) at default B=4, T=1024, H=2,
    K=V=64 (GSA with M=64 slots), fp32:

    =========  =====================================  ==========================================
    mixer      ours                                   reference (fla 0.6.0)
    =========  =====================================  ==========================================
    mamba2     ``simple_gla_chunk(q,k,v,g)``, C=64    ``naive_recurrent_simple_gla(q,k,v,g)``
    gdn        ``gdn_chunk(q,k,v,g,beta)``, C=64      ``naive_recurrent_gated_delta_rule(q,k,v,beta,g)``
    rwkv7      ``dplr_chunk(q,k,v,a,b,w)``, C=64      ``dplr_recurrence(q,k,v,a,b,w)``, head-first
    gsa        ``gsa_chunk(q,k,v,s,f)``, C=8          ``naive_recurrent_gsa(q,k,v,s,f)``
    =========  =====================================  ==========================================

    The inputs are shaped like the layers' (unit keys for GDN, RWKV-7's ``a = -kk, b = kk * gate``
    and bounded decay, GSA's ``s = 1 - exp(f)``), with a random initial state. The reference gets
    the same values in its own layout, prepared outside the timing (``dplr_recurrence`` takes
    ``[B, H, T, D]`` and hard-codes the scale ``K**-0.5``, so it gets ``q * sqrt(K)`` to match
    our ``scale=1``). Each repetition runs the reference and then ours (interleaved, after one
    untimed warm-up of each); the best of ``--op-repeats`` is reported, with the ratio
    reference/ours of the forward+backward time, the target (>= 5) and ``meets_target``. The
    largest output difference between the two (first run) is recorded as a check that both
    compute the same thing.

``inference``
    Each ``tiny`` backbone (default B=1) under ``torch.no_grad()``: a context of each length in
    ``--contexts`` (default 1K and 64K steps of random inputs) is prefilled in chunks of
    ``--prefill-chunk`` steps with the state carried between calls, then ``--decode-steps`` one-step
    calls (T=1) continue each context with its carried state. The one-step calls of the different
    contexts alternate, so machine load hits them alike; the median latency per context is
    reported, with the ratio longest/shortest context (about 1: the state has a fixed size, which
    the report also records in bytes per context).
"""

from __future__ import annotations

# first: importing _common sets one BLAS thread per process before numpy loads
from _common import emit, int_list, log, machine_info, positive_int

import argparse  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from omnirl.model.backbone import BACKBONES, build_backbone, sized  # noqa: E402
from omnirl.model.ops import dplr_chunk, gdn_chunk, gsa_chunk, simple_gla_chunk  # noqa: E402
from omnirl.model.ops.dispatch import CHUNK, GSA_CHUNK  # noqa: E402

TARGET_RATIO = 5.0  # reference/ours, forward+backward of the core recurrence
RWKV7_W_MIN = -0.6065306597126334  # RWKV-7's log-decay bound, -exp(-1/2)
MISSING_REFERENCE = ("bench_backbones: fla's naive references are not importable ({err}).\n"
                     "Install fla-core (pip install -e '.[dev]') and run this benchmark again.")

DEFAULTS = {"tiny_batch": 4, "tiny_length": 1024, "paper_batch": 1, "paper_length": 256, "repeats": 5,
            "op_batch": 4, "op_length": 1024, "op_heads": 2, "op_head_dim": 64, "op_slots": 64,
            "op_repeats": 5, "contexts": [1024, 65536], "prefill_chunk": 4096, "decode_steps": 500,
            "infer_batch": 1}
QUICK = {"tiny_batch": 2, "tiny_length": 64, "paper_batch": 1, "paper_length": 16, "repeats": 1,
         "op_batch": 1, "op_length": 64, "op_heads": 2, "op_head_dim": 16, "op_slots": 8,
         "op_repeats": 1, "contexts": [64, 512], "prefill_chunk": 256, "decode_steps": 5,
         "infer_batch": 1}


def _import_references() -> dict:
    """fla's per-step naive references by mixer, or exit with a clear message."""
    try:
        from fla.ops.gated_delta_rule.naive import naive_recurrent_gated_delta_rule
        from fla.ops.generalized_delta_rule.dplr.naive import dplr_recurrence
        from fla.ops.gsa.naive import naive_recurrent_gsa
        from fla.ops.simple_gla.naive import naive_recurrent_simple_gla
    except ImportError as err:
        sys.exit(MISSING_REFERENCE.format(err=err))
    return {"mamba2": naive_recurrent_simple_gla, "gdn": naive_recurrent_gated_delta_rule,
            "rwkv7": dplr_recurrence, "gsa": naive_recurrent_gsa}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbones", type=lambda s: _names(s), default=list(BACKBONES),
                   help="comma-separated backbones (default: rwkv7,gdn,gsa,mamba2)")
    for key, help_ in (("tiny_batch", "batch of the tiny-preset throughput run"),
                       ("tiny_length", "sequence length of the tiny-preset throughput run"),
                       ("paper_batch", "batch of the paper-preset throughput run"),
                       ("paper_length", "sequence length of the paper-preset throughput run"),
                       ("repeats", "timed forward+backward runs per backbone and preset"),
                       ("op_batch", "batch of the op comparison"),
                       ("op_length", "sequence length of the op comparison"),
                       ("op_heads", "heads of the op comparison"),
                       ("op_head_dim", "key = value head dimension of the op comparison"),
                       ("op_slots", "GSA slots of the op comparison"),
                       ("op_repeats", "interleaved timed runs per op (best of)"),
                       ("prefill_chunk", "steps per prefill call when building a context"),
                       ("decode_steps", "timed one-step calls per context"),
                       ("infer_batch", "batch of the inference runs")):
        p.add_argument("--" + key.replace("_", "-"), type=positive_int, default=None,
                       help=f"{help_} (default: {DEFAULTS[key]}, or {QUICK[key]} with --quick)")
    p.add_argument("--contexts", type=lambda s: int_list(s, "--contexts", 1), default=None,
                   help="comma-separated context lengths before the one-step calls "
                        f"(default: {','.join(map(str, DEFAULTS['contexts']))})")
    p.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads (default: 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="tiny sizes, for smoke tests")
    p.add_argument("--out", type=Path, default=None, help="also write the JSON here (atomically)")
    return p


def _names(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    bad = [n for n in names if n not in BACKBONES]
    if not names or bad:
        raise argparse.ArgumentTypeError(f"--backbones must be names from {','.join(BACKBONES)}, got {text!r}")
    return names


def _settings(args) -> dict:
    base = QUICK if args.quick else DEFAULTS
    s = {k: (getattr(args, k) if getattr(args, k) is not None else v) for k, v in base.items()}
    s.update(backbones=args.backbones, threads=args.threads, seed=args.seed, quick=args.quick)
    return s


def _state_bytes(state) -> int:
    return sum(t.numel() * t.element_size() for layer in state for t in layer)


# ---------------------------------------------------------------------------- 1. backbones


def bench_backbone(name: str, preset_name: str, B: int, T: int, repeats: int, seed: int) -> dict:
    torch.manual_seed(seed)
    config = sized(preset_name, name)
    model = build_backbone(config)
    x = torch.randn(B, T, config.dim)

    def run() -> float:
        t0 = time.perf_counter()
        y, _ = model(x)
        y.pow(2).mean().backward()
        dt = time.perf_counter() - t0
        model.zero_grad(set_to_none=True)
        return dt

    run()  # warm-up
    times = [run() for _ in range(repeats)]
    best, median = min(times), statistics.median(times)
    return {"backbone": name, "preset": preset_name, "batch": B, "length": T, "dim": config.dim,
            "layers": config.layers, "parameters": sum(p.numel() for p in model.parameters()),
            "best_s": best, "median_s": median, "tokens_per_s": B * T / best,
            "tokens_per_s_median": B * T / median, "runs": len(times)}


# ---------------------------------------------------------------------------- 2. ops


def op_inputs(mixer: str, B: int, T: int, H: int, K: int, M: int, seed: int):
    """``(ours_fn, ours_args, ours_kwargs, ref_fn_call, ref_args)`` for one mixer: leaves for ours
    in ``[B, T, H, D]`` and separate leaves with the same values in the reference's layout."""
    gen = torch.Generator().manual_seed(seed)
    V = K

    def randn(*shape):
        return torch.randn(*shape, generator=gen)

    if mixer == "mamba2":  # Mamba2's SSD = simple GLA: q=C, k=B, v=dt*x, g=dt*A (scale 1)
        x = {"q": randn(B, T, H, K), "k": randn(B, T, H, K) * K ** -0.5, "v": randn(B, T, H, V),
             "g": F.logsigmoid(randn(B, T, H) + 2.0)}
        h0 = randn(B, H, K, V)
        order, ref_order = ("q", "k", "v", "g"), ("q", "k", "v", "g")
    elif mixer == "gdn":
        x = {"q": F.normalize(randn(B, T, H, K), dim=-1), "k": F.normalize(randn(B, T, H, K), dim=-1),
             "v": randn(B, T, H, V), "g": F.logsigmoid(randn(B, T, H) + 2.0),
             "beta": torch.rand(B, T, H, generator=gen)}
        h0 = randn(B, H, K, V)
        order, ref_order = ("q", "k", "v", "g", "beta"), ("q", "k", "v", "beta", "g")  # fla: beta, g
    elif mixer == "rwkv7":
        kk = F.normalize(randn(B, T, H, K), dim=-1)
        x = {"q": randn(B, T, H, K), "k": randn(B, T, H, K) * 0.5, "v": randn(B, T, H, V), "a": -kk,
             "b": kk * torch.rand(B, T, H, K, generator=gen),
             "w": RWKV7_W_MIN * torch.sigmoid(randn(B, T, H, K))}
        h0 = randn(B, H, K, V) * 0.1
        order, ref_order = ("q", "k", "v", "a", "b", "w"), ("q", "k", "v", "a", "b", "w")
    elif mixer == "gsa":
        f = F.logsigmoid(randn(B, T, H, M)) / 8
        x = {"q": F.silu(randn(B, T, H, K)), "k": F.silu(randn(B, T, H, K)), "v": randn(B, T, H, V),
             "s": 1 - f.exp(), "f": f}
        h0 = (randn(B, H, K, M) * 0.1, randn(B, H, M, V) * 0.1)
        order, ref_order = ("q", "k", "v", "s", "f"), ("q", "k", "v", "s", "f")
    else:
        raise ValueError(mixer)

    leaf = lambda t: t.detach().clone().requires_grad_()  # noqa: E731
    ours = {k: leaf(v) for k, v in x.items()}
    ours_h0 = tuple(leaf(t) for t in h0) if isinstance(h0, tuple) else leaf(h0)
    if mixer == "rwkv7":  # head-first [B, H, T, D]; the reference scales q by K**-0.5 itself
        ref = {k: leaf((v * math.sqrt(K) if k == "q" else v).transpose(1, 2).contiguous())
               for k, v in x.items()}
    else:
        ref = {k: leaf(v) for k, v in x.items()}
    ref_h0 = tuple(leaf(t) for t in h0) if isinstance(h0, tuple) else leaf(h0)
    return order, ref_order, ours, ours_h0, ref, ref_h0


def _fwd_bwd(call, leaves: list[torch.Tensor], seed: int):
    """Time ``o, state = call()`` and the backward of a fixed random linear loss on both."""
    t0 = time.perf_counter()
    o, st = call()
    t1 = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    sts = st if isinstance(st, tuple) else (st,)
    cot = [torch.randn(t.shape, generator=gen) for t in (o, *sts)]
    t2 = time.perf_counter()
    loss = sum((t * c).sum() for t, c in zip((o, *sts), cot))
    loss.backward()
    t3 = time.perf_counter()
    for t in leaves:
        t.grad = None
    return t1 - t0, t3 - t2, o.detach()


def bench_op(mixer: str, ref_fn, B: int, T: int, H: int, K: int, M: int, repeats: int, seed: int) -> dict:
    order, ref_order, ours, ours_h0, ref, ref_h0 = op_inputs(mixer, B, T, H, K, M, seed)
    scale = 1.0 if mixer in ("mamba2", "rwkv7", "gsa") else K ** -0.5
    if mixer == "mamba2":
        ours_call = lambda: simple_gla_chunk(*(ours[k] for k in order), scale=scale,  # noqa: E731
                                             initial_state=ours_h0, output_final_state=True, chunk_size=CHUNK)
        ref_call = lambda: ref_fn(*(ref[k] for k in ref_order), scale=scale,  # noqa: E731
                                  initial_state=ref_h0, output_final_state=True)
        ours_name, ref_name = f"simple_gla_chunk(chunk_size={CHUNK})", "fla naive_recurrent_simple_gla"
    elif mixer == "gdn":
        ours_call = lambda: gdn_chunk(*(ours[k] for k in order), scale=scale,  # noqa: E731
                                      initial_state=ours_h0, output_final_state=True, chunk_size=CHUNK)
        ref_call = lambda: ref_fn(*(ref[k] for k in ref_order), scale=scale,  # noqa: E731
                                  initial_state=ref_h0, output_final_state=True)
        ours_name, ref_name = f"gdn_chunk(chunk_size={CHUNK})", "fla naive_recurrent_gated_delta_rule (beta, g)"
    elif mixer == "rwkv7":
        ours_call = lambda: dplr_chunk(*(ours[k] for k in order), scale=scale,  # noqa: E731
                                       initial_state=ours_h0, output_final_state=True, chunk_size=CHUNK)
        ref_call = lambda: ref_fn(*(ref[k] for k in ref_order), initial_state=ref_h0,  # noqa: E731
                                  output_final_state=True)
        ours_name, ref_name = f"dplr_chunk(chunk_size={CHUNK})", "fla dplr_recurrence (head-first)"
    else:
        ours_call = lambda: gsa_chunk(*(ours[k] for k in order), scale=scale,  # noqa: E731
                                      initial_state=ours_h0, output_final_state=True, chunk_size=GSA_CHUNK)
        ref_call = lambda: ref_fn(*(ref[k] for k in ref_order), scale=scale,  # noqa: E731
                                  initial_state=ref_h0, output_final_state=True)
        ours_name, ref_name = f"gsa_chunk(chunk_size={GSA_CHUNK})", "fla naive_recurrent_gsa"
    ours_leaves = [*ours.values(), *(ours_h0 if isinstance(ours_h0, tuple) else (ours_h0,))]
    ref_leaves = [*ref.values(), *(ref_h0 if isinstance(ref_h0, tuple) else (ref_h0,))]

    # untimed warm-ups, which also check that both compute the same outputs
    _, _, o_ref = _fwd_bwd(ref_call, ref_leaves, seed)
    _, _, o_ours = _fwd_bwd(ours_call, ours_leaves, seed)
    if mixer == "rwkv7":
        o_ref = o_ref.transpose(1, 2)
    max_diff = (o_ours - o_ref).abs().max().item()
    timed = {"reference": [], "ours": []}
    for i in range(repeats):  # interleaved: the reference, then ours, in every repetition
        timed["reference"].append(_fwd_bwd(ref_call, ref_leaves, seed + 1 + i)[:2])
        timed["ours"].append(_fwd_bwd(ours_call, ours_leaves, seed + 1 + i)[:2])

    def summary(runs):
        totals = [f + b for f, b in runs]
        return {"fwd_ms": 1e3 * min(f for f, _ in runs), "bwd_ms": 1e3 * min(b for _, b in runs),
                "total_ms": 1e3 * min(totals), "median_total_ms": 1e3 * statistics.median(totals)}

    r, o = summary(timed["reference"]), summary(timed["ours"])
    ratio = r["total_ms"] / o["total_ms"]
    return {"mixer": mixer, "ours_op": ours_name, "reference_op": ref_name,
            "shape": {"B": B, "T": T, "H": H, "K": K, "V": K, **({"M": M} if mixer == "gsa" else {})},
            "reference": r, "ours": o, "ratio": ratio, "target_ratio": TARGET_RATIO,
            "meets_target": bool(ratio >= TARGET_RATIO), "max_abs_diff_output": max_diff,
            "runs": repeats}


# ---------------------------------------------------------------------------- 3. inference


@torch.no_grad()
def bench_inference(name: str, B: int, contexts: list[int], chunk: int, steps: int, seed: int) -> dict:
    torch.manual_seed(seed)
    config = sized("tiny", name)
    model = build_backbone(config).eval()
    gen = torch.Generator().manual_seed(seed)
    states, prefill = {}, {}
    for L in contexts:
        state, t0 = None, time.perf_counter()
        for lo in range(0, L, chunk):
            _, state = model(torch.randn(B, min(chunk, L - lo), config.dim, generator=gen), state)
        prefill[L] = time.perf_counter() - t0
        states[L] = state
        if not all(torch.isfinite(t).all() for layer in state for t in layer):
            raise RuntimeError(f"{name}: non-finite state after a context of {L} steps")
    xs = torch.randn(steps + 3, B, 1, config.dim, generator=gen)
    times = {L: [] for L in contexts}
    for i, x in enumerate(xs):
        for L in contexts:  # alternate the contexts step by step
            t0 = time.perf_counter()
            _, states[L] = model(x, states[L])
            if i >= 3:  # the first few steps are warm-up
                times[L].append(time.perf_counter() - t0)
    rows = [{"context": L, "prefill_s": prefill[L], "prefill_tokens_per_s": B * L / prefill[L],
             "state_bytes": _state_bytes(states[L]), "median_step_ms": 1e3 * statistics.median(times[L]),
             "min_step_ms": 1e3 * min(times[L])} for L in contexts]
    short, long_ = rows[0], rows[-1]
    return {"backbone": name, "preset": "tiny", "batch": B, "prefill_chunk": chunk, "steps": steps,
            "prefill": "exact: the backbone run over the whole context in chunks, state carried",
            "contexts": rows,
            "ratio_longest_to_shortest": long_["median_step_ms"] / short["median_step_ms"]}


# ---------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    s = _settings(args)
    torch.set_num_threads(s["threads"])
    refs = _import_references()

    backbones = []
    for preset_name, B, T in (("tiny", s["tiny_batch"], s["tiny_length"]),
                              ("paper", s["paper_batch"], s["paper_length"])):
        for name in s["backbones"]:
            row = bench_backbone(name, preset_name, B, T, s["repeats"], s["seed"])
            log(f"backbone {preset_name:>5} {name:>6} B={B} T={T}: {row['tokens_per_s']:9.0f} tokens/s "
                f"(fwd+bwd {row['best_s'] * 1e3:.0f} ms)")
            backbones.append(row)

    ops = []
    for name in s["backbones"]:
        row = bench_op(name, refs[name], s["op_batch"], s["op_length"], s["op_heads"], s["op_head_dim"],
                       s["op_slots"], s["op_repeats"], s["seed"])
        log(f"op {name:>6}: reference {row['reference']['total_ms']:7.1f} ms, ours {row['ours']['total_ms']:6.1f} ms, "
            f"ratio {row['ratio']:.1f} (max|diff| {row['max_abs_diff_output']:.1e})")
        ops.append(row)

    inference = []
    contexts = sorted(set(s["contexts"]))
    for name in s["backbones"]:
        row = bench_inference(name, s["infer_batch"], contexts, s["prefill_chunk"], s["decode_steps"], s["seed"])
        log(f"inference {name:>6}: " + ", ".join(
            f"ctx {c['context']}: {c['median_step_ms']:.2f} ms/step (prefill {c['prefill_s']:.1f} s)"
            for c in row["contexts"]) + f"; ratio {row['ratio_longest_to_shortest']:.2f}")
        inference.append(row)

    report = {"benchmark": "backbones", "settings": s,
              "machine": {**machine_info(("torch", "fla-core")), "torch_threads": torch.get_num_threads()},
              "backbones": backbones, "ops": ops, "inference": inference,
              "all_ops_meet_target": all(r["meets_target"] for r in ops)}
    emit(report, args.out)
    return report


if __name__ == "__main__":
    main()
