"""Evaluation speed on the CPU: online throughput of the model acting in many environments, and the
cost of a step after a long context against a short one and against recomputing the context.

    python benchmarks/bench_eval.py [--backbones gdn] [--envs 256] [--steps 200] [--warmup-steps 10]
        [--cli-steps 2000] [--contexts 1024,65536] [--context-envs 8] [--context-steps 100]
        [--recompute-context 1024] [--recompute-steps 4] [--threads 1] [--seed 0] [--quick] [--out FILE]

Every model is the ``tiny`` preset of its backbone (``S = 16``, ``A = 5``, compact layout,
untrained: speed does not depend on the weights) in fp32 on ``--threads`` CPU threads (default
one, like the other benchmarks); the environments are ``MDPBatch``es of the evaluation's own
unseen AnyMDP tasks with ``S = 16`` (``anymdp16``: ``unseen_tasks(16, n, seed=--seed)``, the tasks
``python -m omnirl.evaluate --envs anymdp16`` plays). One JSON document goes to stdout (progress
to stderr); ``--out FILE`` also writes it there atomically. Sections:

``online``
    ``evaluate_model`` with the ``online`` protocol in ``--envs`` environments at once (default
    256) for ``--steps`` steps, after an untimed warm-up run: environment steps per second of the
    whole loop (act + environment step + commit to context + record), and for comparison the
    environment alone (uniform random actions, step + record, the same batch and steps), so the
    model's share of the time is visible (``model_share``). Beside it, the same loop with the
    previous decoding path of the CPU ops (every run of tokens padded to a 64-step chunk, no
    per-step forms: ``padded_decoding``), measured in turn with the current one:
    ``padded_env_steps_per_s`` and ``decode_speedup`` (current over padded).

``cli``
    What a user runs: ``python -m omnirl.evaluate --config CFG`` as a whole process, timed from
    start to exit, where ``CFG`` sets only the online section's workload (the first backbone's
    model, saved as a training checkpoint with the same weights; ``run.envs: [anymdp16]``,
    ``run.n_envs: --envs``, ``run.seed: --seed``; ``run.steps: --cli-steps``, default 2,000, the
    command line's own default; ``run.baselines: []``, since the online section times the model
    alone) and ``run.wandb_mode: offline`` (what the default does without W&B credentials);
    everything else at its defaults (the online protocol, the tables, figures, arrays and summary,
    the W&B run), torch on ``--threads`` threads. It runs twice: for ``--cli-steps`` steps and for
    one step (the fixed cost: start-up, imports, the tasks and their reference returns, the files
    and the W&B run). Reported: the whole process's ``env_steps_per_s`` (``n_envs * steps`` over
    wall time), the one-step run's ``startup_s``, ``marginal_env_steps_per_s`` = ``n_envs *
    (steps - 1) / (wall - startup_s)``, and the online rate over each (``ratio``,
    ``marginal_ratio``; ``cpu_ratio``: CPU time per environment step, the command line's over the
    online runs' timed calls); the target is ``ratio`` <= 1.5 (``CLI_TARGET``). The online rate
    here is the online section's timed run and one more after the command line, pooled
    (``online_env_steps_per_s``; the second alone: ``online_env_steps_per_s_after``), so a change
    of load from other processes while the command line runs weighs on both sides.

``context``
    Per-step cost against context length, in ``--context-envs`` environments (default 8): for each
    length in ``--contexts`` (default 1K and 64K steps) ``evaluate_model`` with the ``offline``
    protocol and random demonstrations of that many context entries, loaded into the recurrent
    state in chunks (``OmniRLAgent.load_context``), then ``--context-steps`` online steps of the
    agent continuing that context. The shortest context runs before and after the others and its
    mean is the reference, so a drift in machine load does not masquerade as a context effect.
    Reported: prefill time, milliseconds per step, the ratio longest/shortest context (target
    <= 1.5: the state has a fixed size, recorded in floats per row), ``meets_target``.
    The side-by-side baseline (``recompute``) is what a model without a recurrent state (a
    transformer without a KV cache) does: every step runs the whole context again, here the same
    model over the last ``--recompute-context`` steps (default 1K; a sliding window, end markers
    left out: a cost baseline only) for ``--recompute-steps`` steps. Its cost grows linearly with
    the context; ``speedup_vs_recompute`` is its step time over ours at the same and at the longest
    context (the latter extrapolated linearly from the measured window).
"""

from __future__ import annotations

# first: importing _common sets one BLAS thread per process before numpy loads
from _common import emit, int_list, log, machine_info, positive_int, run_command

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from omnirl.config import config_to_dict  # noqa: E402
from omnirl.evaluate.envs.anymdp import unseen_tasks  # noqa: E402
from omnirl.evaluate.envs.base import MDPBatch, remap_actions  # noqa: E402
from omnirl.evaluate.evaluation import RunSection  # noqa: E402
from omnirl.evaluate.protocols import (ORACLE_TAG, UNKNOWN_TAG, ProtocolConfig, demonstrations,  # noqa: E402
                                       evaluate_model)
from omnirl.evaluate.records import EpisodeRecorder  # noqa: E402
from omnirl.model.backbone import BACKBONES, sized  # noqa: E402
from omnirl.model.omnirl import OmniRL, OmniRLConfig  # noqa: E402
from omnirl.model.ops import dispatch  # noqa: E402
from omnirl.train.config import ModelSection, TrainConfig  # noqa: E402

S, A = 16, 5
ENV = f"anymdp{S}"  # the evaluation's name of these tasks
TARGET_RATIO = 1.5  # per-step cost, longest context / shortest
CLI_TARGET = 1.5  # most online env steps/s over the command line's
DEFAULTS = {"envs": 256, "steps": 200, "warmup_steps": 10, "cli_steps": RunSection.steps, "contexts": [1024, 65536],
            "context_envs": 8, "context_steps": 100, "recompute_context": 1024, "recompute_steps": 4}
QUICK = {"envs": 16, "steps": 20, "warmup_steps": 3, "cli_steps": 10, "contexts": [128, 1024], "context_envs": 2,
         "context_steps": 10, "recompute_context": 128, "recompute_steps": 2}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbones", type=_names, default=["gdn"],
                   help=f"comma-separated backbones from {','.join(BACKBONES)} (default: gdn)")
    for key, help_ in (("envs", "environments of the online throughput run"),
                       ("steps", "timed steps of the online run"),
                       ("warmup_steps", "untimed steps before the online run"),
                       ("cli_steps", "steps of the command line's run (its own default: 2000)"),
                       ("context_envs", "environments of the context-length runs"),
                       ("context_steps", "timed steps after each context"),
                       ("recompute_context", "context (steps) the cache-free baseline recomputes each step"),
                       ("recompute_steps", "timed steps of the cache-free baseline")):
        p.add_argument("--" + key.replace("_", "-"), type=positive_int, default=None,
                       help=f"{help_} (default: {DEFAULTS[key]}, or {QUICK[key]} with --quick)")
    p.add_argument("--contexts", type=lambda s: int_list(s, "--contexts", 1), default=None,
                   help="comma-separated context lengths (entries per row) before the timed steps "
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
    s["contexts"] = sorted(set(s["contexts"]))
    s.update(backbones=args.backbones, threads=args.threads, seed=args.seed, quick=args.quick)
    return s


def model_section(backbone: str) -> ModelSection:
    """The training configuration's model section of the benchmark's models."""
    return ModelSection(backbone=backbone, size="tiny", n_obs=S, n_actions=A)


def make_model(backbone: str, seed: int) -> OmniRL:
    torch.manual_seed(seed)
    config = OmniRLConfig(n_obs=S, n_actions=A, backbone=sized("tiny", backbone))
    if config != model_section(backbone).build():  # the model a checkpoint of it describes
        sys.exit(f"bench_eval: the training configuration's model section does not describe the {backbone} model")
    return OmniRL(config).eval()


def make_batch(tasks) -> MDPBatch:
    return MDPBatch(tasks)


# --------------------------------------------------------------------------- online throughput
def env_only(batch: MDPBatch, steps: int, seed: int) -> float:
    """Environment steps per second of uniform random actions (step + record), no model."""
    rng = np.random.default_rng(seed)
    n_actions = np.array([i.n_actions for i in batch.infos])
    recorder = EpisodeRecorder(batch.infos)
    batch.reset(seed)
    actions = (rng.random((steps, batch.n_envs)) * n_actions).astype(np.int64)
    t0 = time.perf_counter()
    for t in range(steps):
        recorder.record(batch.step(actions[t]))
    return batch.n_envs * steps / (time.perf_counter() - t0)


@contextlib.contextmanager
def padded_decoding():
    """The CPU ops' previous decoding path: a run of tokens shorter than a chunk padded to a full
    chunk (one-token runs excepted), never the per-step forms."""
    saved = dispatch._chunk, dispatch.RECURRENT_STEPS
    dispatch._chunk = lambda x, size=dispatch.CHUNK: 1 if x.shape[1] == 1 else size
    dispatch.RECURRENT_STEPS = 0
    try:
        yield
    finally:
        dispatch._chunk, dispatch.RECURRENT_STEPS = saved


def timed_online(model: OmniRL, batch: MDPBatch, s: dict):
    """One timed online run after an untimed warm-up: its result and the CPU seconds of the call."""
    evaluate_model(model, batch, ProtocolConfig(steps=s["warmup_steps"]), s["seed"])  # warm-up
    c0 = time.process_time()
    r = evaluate_model(model, batch, ProtocolConfig(steps=s["steps"]), s["seed"])
    return r, time.process_time() - c0


def bench_online(name: str, tasks, s: dict) -> dict:
    model = make_model(name, s["seed"])
    batch = make_batch(tasks)
    r, cpu = timed_online(model, batch, s)
    t = r.timing
    with padded_decoding():
        evaluate_model(model, batch, ProtocolConfig(steps=s["warmup_steps"]), s["seed"])
        padded = evaluate_model(model, batch, ProtocolConfig(steps=s["steps"]), s["seed"]).timing
    env_rate = env_only(batch, s["steps"], s["seed"])
    return {"backbone": name, "envs": batch.n_envs, "steps": s["steps"],
            "parameters": sum(p.numel() for p in model.parameters()),
            "env_steps_per_s": t["env_steps_per_s"], "step_ms": 1e3 * t["acting_s"] / s["steps"],
            "acting_s": t["acting_s"], "cpu_seconds": cpu,
            "padded_env_steps_per_s": padded["env_steps_per_s"],
            "decode_speedup": t["env_steps_per_s"] / padded["env_steps_per_s"],
            "env_only_steps_per_s": env_rate,
            "model_share": 1.0 - t["env_s"] / t["acting_s"], "episodes": len(r.episodes)}


# --------------------------------------------------------------------------- command line
def write_checkpoint(name: str, seed: int, path: Path) -> Path:
    """``make_model(name, seed)`` as a training checkpoint (its configuration and weights), the
    file ``python -m omnirl.evaluate --checkpoint`` reads."""
    model = make_model(name, seed)
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
                "hyper_parameters": {"config": config_to_dict(TrainConfig(model=model_section(name)))}}, path)
    return path


def run_cli(checkpoint: Path, s: dict, steps: int, work: Path, name: str) -> dict:
    """``python -m omnirl.evaluate --config CFG`` on the online section's workload for ``steps``
    steps, timed as a whole process; checks that it evaluated the model on every row."""
    out = work / name
    cfg = {"run": {"checkpoint": str(checkpoint), "envs": [ENV], "n_envs": s["envs"], "steps": steps,
                   "seed": s["seed"], "baselines": [], "out_dir": str(out), "wandb_mode": "offline"}}
    path = work / f"{name}.yaml"
    path.write_text(json.dumps(cfg, indent=1))  # JSON is YAML
    rec = run_command([sys.executable, "-m", "omnirl.evaluate", "--config", str(path)], work, name,
                      env={"OMP_NUM_THREADS": str(s["threads"]), "WANDB_MODE": "offline"})
    summary = json.loads((out / "summary.json").read_text())
    (row,) = summary["rows"]
    if (row["environment"], row["method"]) != (ENV, "omnirl") or summary["config"]["run"]["steps"] != steps:
        sys.exit(f"bench_eval: the command line {name} did not evaluate the model on {ENV} for {steps} steps")
    env_steps = s["envs"] * steps
    rec.update(config=cfg, steps=steps, env_steps=env_steps, env_steps_per_s=env_steps / rec["seconds"],
               evaluation_s=summary["seconds"][f"{ENV}/omnirl"])
    return rec


def bench_cli(online: dict, tasks, s: dict) -> dict:
    """The command line for ``--cli-steps`` steps and for one, beside the online section's rate
    (``online``: its row of the first backbone, measured before the command line), measured once
    more after it on the same ``tasks``: the rate the command line is compared with is the two
    timed runs' (their environment steps over their acting time), so a change of the machine's load
    while the command line runs weighs on both sides."""
    name = online["backbone"]
    with tempfile.TemporaryDirectory(prefix="bench_eval-") as tmp:
        work = Path(tmp)
        checkpoint = write_checkpoint(name, s["seed"], work / "model.ckpt")
        run = run_cli(checkpoint, s, s["cli_steps"], work, "cli")
        one = run_cli(checkpoint, s, 1, work, "cli_one_step")
    after, after_cpu = timed_online(make_model(name, s["seed"]), make_batch(tasks), s)
    inner_steps = 2 * online["envs"] * online["steps"]
    inner = inner_steps / (online["acting_s"] + after.timing["acting_s"])
    marginal = (s["envs"] * (run["steps"] - 1) / (run["seconds"] - one["seconds"])
                if run["seconds"] > one["seconds"] and run["steps"] > 1 else None)
    ratio = inner / run["env_steps_per_s"]
    cpu_ratio = (run["cpu_seconds"] / run["env_steps"]) / ((online["cpu_seconds"] + after_cpu) / inner_steps)
    return {"backbone": name, "command": run["command"], "config": run["config"], "envs": s["envs"],
            "steps": run["steps"], "seconds": run["seconds"], "cpu_seconds": run["cpu_seconds"],
            "env_steps_per_s": run["env_steps_per_s"], "evaluation_s": run["evaluation_s"],
            "startup_s": one["seconds"], "startup_cpu_s": one["cpu_seconds"],
            "marginal_env_steps_per_s": marginal, "online_env_steps_per_s_after": after.timing["env_steps_per_s"],
            "online_env_steps_per_s": inner, "ratio": ratio,
            "marginal_ratio": None if marginal is None else inner / marginal, "cpu_ratio": cpu_ratio,
            "target_ratio": CLI_TARGET, "meets_target": bool(ratio <= CLI_TARGET)}


# --------------------------------------------------------------------------- context length
def run_context(model: OmniRL, tasks, context: int, s: dict) -> dict:
    cfg = ProtocolConfig("offline", steps=s["context_steps"], demo_steps=context, demo_policy="random",
                     memory_steps=(0,))
    r = evaluate_model(model, make_batch(tasks), cfg, s["seed"])
    t = r.timing
    return {"context": context, "demo_s": t["demo_s"], "prefill_s": t["prefill_s"],
            "prefill_steps_per_s": len(tasks) * context / t["prefill_s"],
            "step_ms": 1e3 * t["acting_s"] / s["context_steps"], "env_steps_per_s": t["env_steps_per_s"],
            "state_floats": int(r.memory[0].shape[1])}


@torch.no_grad()
def recompute_step_ms(model: OmniRL, tasks, context: int, steps: int, seed: int) -> float:
    """Milliseconds per step of the loop where each step runs the model over the last ``context``
    steps from an empty state (no recurrent state carried): act, environment step, record."""
    batch = make_batch(tasks)
    B = batch.n_envs
    n_actions = np.array([i.n_actions for i in batch.infos])
    history = demonstrations(batch, context, seed, end_action=A, policy="random").trajectory
    hist = {k: torch.as_tensor(v) for k, v in history.items()}  # (B, context)
    generator = torch.Generator().manual_seed(seed)
    recorder = EpisodeRecorder(batch.infos)
    obs = batch.reset(seed).copy()
    t0 = time.perf_counter()
    for _ in range(steps):
        now = {"obs": torch.as_tensor(obs), "prompt": torch.full((B,), ORACLE_TAG),
               "tag": torch.full((B,), UNKNOWN_TAG), "action": torch.full((B,), model.unknown_action),
               "reward": torch.zeros(B)}
        inputs = {k: torch.cat([hist[k][:, 1:], now[k][:, None].to(hist[k].dtype)], dim=1) for k in hist}
        out, _ = model(**inputs)  # the whole window, from an empty context
        probs = torch.softmax(out["policy"][:, -1, :A], dim=-1)
        action = torch.multinomial(probs, 1, generator=generator)[:, 0]
        result = batch.step(remap_actions(action.numpy(), n_actions))
        recorder.record(result)
        inputs["action"][:, -1] = action
        inputs["reward"][:, -1] = torch.as_tensor(result.reward, dtype=torch.float32)
        hist = inputs
        obs = batch.obs.copy()
    return 1e3 * (time.perf_counter() - t0) / steps


def bench_context(name: str, tasks, s: dict) -> dict:
    model = make_model(name, s["seed"])
    contexts = s["contexts"]
    shortest, *others = contexts
    runs = [run_context(model, tasks, shortest, s)]
    runs += [run_context(model, tasks, c, s) for c in others]
    if others:  # the shortest again, after the others
        runs.append(run_context(model, tasks, shortest, s))
    rows = []
    for c in contexts:
        mine = [r for r in runs if r["context"] == c]
        row = dict(mine[0])
        for key in ("step_ms", "env_steps_per_s", "prefill_s", "demo_s", "prefill_steps_per_s"):
            row[key] = float(np.mean([r[key] for r in mine]))
        row["runs"] = len(mine)
        rows.append(row)
    ratio = rows[-1]["step_ms"] / rows[0]["step_ms"]
    window = s["recompute_context"]
    recompute_ms = recompute_step_ms(model, tasks, window, s["recompute_steps"], s["seed"])
    ours_at_window = min(rows, key=lambda r: abs(r["context"] - window))
    return {"backbone": name, "envs": len(tasks), "contexts": rows,
            "ratio_longest_to_shortest": ratio, "target_ratio": TARGET_RATIO, "meets_target": ratio <= TARGET_RATIO,
            "recompute": {"context": window, "step_ms": recompute_ms,
                          "env_steps_per_s": 1e3 * len(tasks) / recompute_ms,
                          "extrapolated_step_ms_at_longest": recompute_ms * contexts[-1] / window},
            "speedup_vs_recompute": {"at_context": ours_at_window["context"],
                                     "same_context": recompute_ms / ours_at_window["step_ms"],
                                     "at_longest_extrapolated": recompute_ms * contexts[-1] / window
                                     / rows[-1]["step_ms"]}}


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    s = _settings(args)
    torch.set_num_threads(s["threads"])
    t0 = time.perf_counter()
    tasks = unseen_tasks(S, max(s["envs"], s["context_envs"]), seed=s["seed"], n_actions=A)
    log(f"sampled {len(tasks)} AnyMDP tasks in {time.perf_counter() - t0:.1f} s")

    online = []
    for name in s["backbones"]:
        row = bench_online(name, tasks[:s["envs"]], s)
        log(f"online {name:>6} B={row['envs']}: {row['env_steps_per_s']:8.0f} env steps/s with the model "
            f"({row['step_ms']:.1f} ms/step), env alone {row['env_only_steps_per_s']:8.0f}/s, "
            f"model share {row['model_share']:.0%}; previous (padded) decoding {row['padded_env_steps_per_s']:.0f}/s, "
            f"{row['decode_speedup']:.2f}x")
        online.append(row)

    cli = bench_cli(online[0], tasks[:s["envs"]], s)
    log(f"command line {cli['backbone']:>6} B={cli['envs']}, {cli['steps']} steps: {cli['env_steps_per_s']:8.0f} env "
        f"steps/s (whole process, {cli['seconds']:.1f} s; one step {cli['startup_s']:.1f} s), online/command line "
        f"{cli['ratio']:.2f} (target <= {CLI_TARGET:g}: {'met' if cli['meets_target'] else 'NOT met'}), beyond "
        f"the first step {cli['marginal_ratio'] or float('nan'):.2f}, CPU time per step {cli['cpu_ratio']:.2f}")

    context = []
    for name in s["backbones"]:
        row = bench_context(name, tasks[:s["context_envs"]], s)
        log(f"context {name:>6} B={row['envs']}: " + ", ".join(
            f"ctx {c['context']}: {c['step_ms']:.2f} ms/step (prefill {c['prefill_s']:.1f} s)" for c in row["contexts"])
            + f"; ratio {row['ratio_longest_to_shortest']:.2f}; recompute ctx {row['recompute']['context']}: "
            f"{row['recompute']['step_ms']:.1f} ms/step")
        context.append(row)

    report = {"benchmark": "eval", "settings": s,
              "machine": {**machine_info(("torch",)), "torch_threads": torch.get_num_threads()},
              "online": online, "cli": cli, "context": context,
              "all_meet_target": all(r["meets_target"] for r in context),
              "total_s": time.perf_counter() - t0}
    emit(report, args.out)
    return report


if __name__ == "__main__":
    main()
