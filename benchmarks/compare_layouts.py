"""Token layouts compared by learning: ``paper`` (5 tokens per step) against ``compact`` (2).

    python benchmarks/compare_layouts.py [--backbone gdn] [--minutes 4] [--out FILE]

Both layouts train the same tiny OmniRL model (same seed, same data, same optimiser) on
OmniRL-pipeline sequences of fresh AnyMDP tasks (S = 16, A = 5) for the same wall-clock budget,
with segment-wise truncated back-propagation (state carried and detached between segments).
Every half minute both are scored on sequences of unseen tasks: cross-entropy of the policy
against the label action (end markers excluded), overall and on the second half of each sequence
(where in-context learning shows). One JSON document goes to stdout: steps/s of training and the
validation curves of each layout. The README's choice of default layout cites this.
"""

from __future__ import annotations

# first: importing _common sets one BLAS thread per process before numpy loads
from _common import emit, log, machine_info, positive_float, positive_int

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np
import torch
import torch.nn.functional as F
from omnirl.data.pipelines import pipeline
from omnirl.data.schema import STEP_FIELDS, column_specs
from omnirl.data.synthesis import synthesize
from omnirl.model.backbone import sized
from omnirl.model.omnirl import OmniRL, OmniRLConfig
from omnirl.tasks import sample_anymdp

S, A = 16, 5


def make_data(n: int, length: int, seed: int) -> dict[str, torch.Tensor]:
    tasks = [sample_anymdp(S, A, seed=(seed, i)) for i in range(n)]
    specs = column_specs(S, length)
    out = {f: np.zeros((n, length), dtype=specs[f][0]) for f in STEP_FIELDS}
    synthesize(tasks, [(seed, j) for j in range(n)], pipeline("omnirl"), length, out)
    return {f: torch.as_tensor(out[f].astype(np.float32 if f == "reward" else np.int64)) for f in STEP_FIELDS}


def loss_of(model, d, segment: int, train: bool, opt=None) -> tuple[float, float]:
    """Mean label cross-entropy over ``d`` (all steps, second half), run in segments; with
    ``train``, one optimiser step per batch after accumulating the segments' gradients."""
    B, T = d["obs"].shape
    state, total, count, late, late_n = None, 0.0, 0, 0.0, 0
    if train:
        opt.zero_grad()
    for lo in range(0, T, segment):
        part = {k: v[:, lo:lo + segment] for k, v in d.items()}
        with torch.set_grad_enabled(train):
            out, state = model(part["obs"], part["prompt"], part["tag"], part["action"], part["reward"], state)
            mask = part["label"] < A  # end markers carry no label
            ce = F.cross_entropy(out["policy"][mask], part["label"][mask], reduction="sum")
            if train:
                (ce / mask.sum().clamp(min=1) * part["obs"].shape[1] / T).backward()
        state = (tuple(tuple(t.detach() for t in layer) for layer in state[0]), state[1].detach())
        total += ce.item()
        count += int(mask.sum())
        if lo >= T // 2:
            late += ce.item()
            late_n += int(mask.sum())
    if train:
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return total / max(count, 1), late / max(late_n, 1)


def run_layout(layout: str, args, train_d, val_d) -> dict:
    torch.manual_seed(args.seed)
    model = OmniRL(OmniRLConfig(n_obs=S, n_actions=A, backbone=sized("tiny", args.backbone),
                                layout=layout, world_model=False))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr)
    g = torch.Generator().manual_seed(args.seed)
    curve, steps, t0, next_eval = [], 0, time.perf_counter(), 0.0
    budget = args.minutes * 60.0
    while True:
        elapsed = time.perf_counter() - t0
        if elapsed >= next_eval or elapsed >= budget:
            model.eval()
            v_all, v_late = loss_of(model, val_d, args.segment, False)
            model.train()
            curve.append({"seconds": round(elapsed, 1), "train_steps": steps, "val_ce": v_all,
                          "val_ce_second_half": v_late})
            log(f"{layout:>7} {elapsed:6.0f}s {steps:>8} steps  val CE {v_all:.4f}  (2nd half {v_late:.4f})")
            next_eval += args.eval_every
            if elapsed >= budget:
                break
        idx = torch.randint(0, train_d["obs"].shape[0], (args.batch,), generator=g)
        loss_of(model, {k: v[idx] for k, v in train_d.items()}, args.segment, True, opt)
        steps += args.batch * train_d["obs"].shape[1]
    seconds = time.perf_counter() - t0
    return {"layout": layout, "tokens_per_step": model.config.tokens_per_step,
            "parameters": sum(p.numel() for p in model.parameters()),
            "train_steps_per_s": steps / seconds, "curve": curve,
            "final_val_ce": curve[-1]["val_ce"], "final_val_ce_second_half": curve[-1]["val_ce_second_half"]}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", default="gdn")
    p.add_argument("--minutes", type=positive_float, default=3.0, help="training budget per layout")
    p.add_argument("--sequences", type=positive_int, default=2048)
    p.add_argument("--length", type=positive_int, default=512)
    p.add_argument("--segment", type=positive_int, default=128)
    p.add_argument("--batch", type=positive_int, default=16)
    p.add_argument("--lr", type=positive_float, default=1e-3)
    p.add_argument("--eval-every", type=positive_float, default=30.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    log("synthesising data")
    train_d = make_data(a.sequences, a.length, seed=1)
    val_d = make_data(32, a.length, seed=2)  # other tasks: unseen
    results = [run_layout(layout, a, train_d, val_d) for layout in ("paper", "compact")]
    report = {"benchmark": "token_layouts", "settings": vars(a), "machine": machine_info([], []),
              "results": results,
              "compact_minus_paper_final_val_ce": results[1]["final_val_ce"] - results[0]["final_val_ce"]}
    emit(report, a.out)
    return report


if __name__ == "__main__":
    main()
