"""Task-generation speed: ``omnirl.tasks.anymdp.sample_anymdp`` against the reference generator
``xenoverse.anymdp.AnyMDPTaskSampler`` (xenoverse 0.1.14.0), side by side in one run.

    python benchmarks/bench_tasks.py [--sizes 16,32,64,128] [--actions 5] [--budget 40]
                                     [--max-tasks 2000] [--seed 1000] [--quick] [--out FILE]

For every state-space size ``S`` both samplers generate valid tasks one after another on one core
(single process) until each has spent ``--budget`` seconds of timed work or generated
``--max-tasks`` tasks. The two are interleaved: the next task always goes to the sampler that has
spent less timed work so far, so both are spread over the same wall-clock window and load from
other processes hits both alike. Every task has its own seed: ``seed=(base, i)`` for omnirl,
``seed=base + i`` for xenoverse (which seeds numpy's global RNG with it).

Before any timing both samplers are warmed up: xenoverse once at a small size, which compiles (or
loads from numba's cache) its ``@njit`` value iteration, and omnirl once per size. The report
records the numba signatures of the reference solver before and after the timed runs to show that
no compilation was timed.

Then, per size, what a user runs: the command line ``python -m omnirl.tasks generate --n N
--states S --actions A --seed BASE --out TMP`` with every other option at its default (one worker,
progress bar), for the ``N`` tasks omnirl's sampler timed (the same tasks: the first and last are
checked), as a whole process into a temporary directory, timed from start to exit: interpreter
start-up, imports, sampling, hashing, compressing and writing the shards and manifest included.
``cli_ratio`` = the sampler's tasks/s over the command line's; the target is <= 1.5
(``CLI_TARGET``, ``cli_meets_target``). ``cli_cpu_ratio`` compares CPU time instead (the command
line's process over the sampler's timed calls), which load from other processes changes less.

One JSON document goes to stdout (progress goes to stderr); ``--out FILE`` also writes it there
atomically. Per size it holds the tasks/s of each sampler, the ratio omnirl/xenoverse, how many
tasks were timed, omnirl's mean number of draws per accepted task, and the target ratio (>= 10 at
S=16, >= 50 at S=128) with ``meets_target``, and the command line's record (``cli``).
"""

from __future__ import annotations

# first: one core for both samplers (numpy/BLAS single-threaded, set before numpy is imported)
from _common import emit, int_list, log, machine_info, positive_float, positive_int, run_command

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from importlib import metadata  # noqa: E402
from pathlib import Path  # noqa: E402

from omnirl.tasks.anymdp import sample_anymdp  # noqa: E402

# minimum ratio omnirl/xenoverse in tasks/s; sizes not listed are reported without a target
TARGETS = {16: 10.0, 128: 50.0}
CLI_TARGET = 1.5  # most sampler tasks/s over command-line tasks/s
DEFAULT_SIZES = (16, 32, 64, 128)
DEFAULT_BUDGET = 40.0   # seconds of timed work per size per sampler
QUICK_BUDGET = 0.5
DEFAULT_MAX_TASKS = 2000
WARMUP_SIZE = 16
MISSING_REFERENCE = ("bench_tasks: the reference generator xenoverse is not importable ({err}).\n"
                     "Run `make bench`, which installs the `bench` extra "
                     "(pip install -e '.[bench]') and then runs this benchmark.")


def _import_reference():
    """``(AnyMDPTaskSampler, update_value_matrix)`` from xenoverse, or exit with a clear message."""
    try:
        from xenoverse.anymdp import AnyMDPTaskSampler
        from xenoverse.anymdp.solver import update_value_matrix
    except ImportError as err:  # xenoverse itself, or one of its undeclared deps (attrs, networkx)
        sys.exit(MISSING_REFERENCE.format(err=err))
    return AnyMDPTaskSampler, update_value_matrix


def _parse_sizes(text: str) -> list[int]:
    return int_list(text, "--sizes", 8)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=_parse_sizes, default=list(DEFAULT_SIZES),
                   help="comma-separated state-space sizes (default: 16,32,64,128)")
    p.add_argument("--actions", type=positive_int, default=5, help="action-space size (default: 5)")
    p.add_argument("--budget", type=positive_float, default=None,
                   help=f"seconds of timed work per size per sampler (default: {DEFAULT_BUDGET:g}, "
                        f"or {QUICK_BUDGET:g} with --quick)")
    p.add_argument("--max-tasks", type=positive_int, default=DEFAULT_MAX_TASKS,
                   help=f"stop a sampler after this many tasks per size (default: {DEFAULT_MAX_TASKS})")
    p.add_argument("--seed", type=int, default=1000,
                   help="base seed: omnirl task i uses (seed, i), xenoverse task i uses seed + i")
    p.add_argument("--quick", action="store_true", help="tiny budget, for smoke tests")
    p.add_argument("--out", type=Path, default=None, help="also write the JSON here (atomically)")
    return p


class _Timed:
    """Accumulated timed work of one sampler at one size."""

    def __init__(self, run, budget: float, max_tasks: int):
        self.run, self.budget, self.max_tasks = run, budget, max_tasks
        self.times: list[float] = []
        self.elapsed = self.cpu = 0.0

    @property
    def done(self) -> bool:
        return self.elapsed >= self.budget or len(self.times) >= self.max_tasks

    def step(self) -> None:
        i = len(self.times)
        t0, c0 = time.perf_counter(), time.process_time()
        self.run(i)
        dt = time.perf_counter() - t0
        self.cpu += time.process_time() - c0
        self.times.append(dt)
        self.elapsed += dt

    def summary(self) -> dict:
        n = len(self.times)
        return {"tasks": n, "seconds": round(self.elapsed, 6), "cpu_seconds": round(self.cpu, 6),
                "tasks_per_s": n / self.elapsed,
                "median_s_per_task": statistics.median(self.times),
                "max_s_per_task": max(self.times)}


def bench_size(S: int, A: int, budget: float, max_tasks: int, base_seed: int, reference) -> dict:
    """Time both samplers at one size, interleaved so that both see the same machine load."""
    attempts: list[int] = []

    def run_ours(i: int) -> None:
        stats: dict = {}
        sample_anymdp(S, A, seed=(base_seed, i), stats=stats)
        attempts.append(stats["attempts"])

    def run_ref(i: int) -> None:
        reference(S, A, seed=base_seed + i)

    sample_anymdp(S, A, seed=(base_seed + 1, 0))  # untimed warm-up at this size (caches, allocator)
    ref, ours = _Timed(run_ref, budget, max_tasks), _Timed(run_ours, budget, max_tasks)
    while not (ref.done and ours.done):
        # the sampler with less timed work goes next: both advance through the same wall-clock window
        if ours.done or (not ref.done and ref.elapsed <= ours.elapsed):
            ref.step()
        else:
            ours.step()
    r, o = ref.summary(), ours.summary()
    o["mean_attempts"] = statistics.fmean(attempts)
    o["max_attempts"] = max(attempts)
    ratio = o["tasks_per_s"] / r["tasks_per_s"]
    target = TARGETS.get(S)
    return {"S": S, "A": A,
            "xenoverse_tasks_per_s": r["tasks_per_s"], "omnirl_tasks_per_s": o["tasks_per_s"],
            "ratio": ratio, "xenoverse_tasks": r["tasks"], "omnirl_tasks": o["tasks"],
            "omnirl_mean_attempts": o["mean_attempts"],
            "target_ratio": target, "meets_target": None if target is None else bool(ratio >= target),
            "xenoverse": r, "omnirl": o}


def bench_cli(S: int, A: int, n: int, base_seed: int, work: Path) -> dict:
    """``python -m omnirl.tasks generate`` for ``n`` tasks of size ``S``, defaults otherwise, timed
    as a whole process; checks that it made the sampler's tasks."""
    out = work / f"tasks-S{S}"
    cmd = [sys.executable, "-m", "omnirl.tasks", "generate", "--n", str(n), "--states", str(S),
           "--actions", str(A), "--seed", str(base_seed), "--out", str(out)]
    rec = run_command(cmd, work, f"cli-S{S}")
    manifest = json.loads((out / "manifest.json").read_text())
    shards = manifest["shards"]
    first = json.loads((out / shards[0]["file"]).with_suffix(".json").read_text())["task_hashes"][0]
    last = json.loads((out / shards[-1]["file"]).with_suffix(".json").read_text())["task_hashes"][-1]
    same = (manifest["n_tasks"] == n and first == sample_anymdp(S, A, seed=(base_seed, 0)).content_hash()
            and last == sample_anymdp(S, A, seed=(base_seed, n - 1)).content_hash())
    if not same:
        sys.exit(f"bench_tasks: the command line at S={S} did not make the sampler's {n} tasks")
    rec.update(tasks=n, shards=len(shards), tasks_per_s=n / rec["seconds"], same_tasks_as_sampler=same)
    return rec


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    budget = args.budget if args.budget is not None else (QUICK_BUDGET if args.quick else DEFAULT_BUDGET)
    if not 0 <= args.seed < 2**32 - 10**9 - args.max_tasks:  # numpy's legacy seed is 32-bit
        sys.exit(f"bench_tasks: --seed must be in [0, {2**32 - 10**9 - args.max_tasks}), got {args.seed}")
    reference, ref_solver = _import_reference()
    t_start = time.perf_counter()

    # warm-up, untimed: numba JIT (or cache load) of the reference solver, first-call costs of both
    t0 = time.perf_counter()
    reference(WARMUP_SIZE, args.actions, seed=args.seed + 10**9)
    warm_ref = time.perf_counter() - t0
    t0 = time.perf_counter()
    sample_anymdp(WARMUP_SIZE, args.actions, seed=(args.seed + 10**9, 0))
    warm_ours = time.perf_counter() - t0
    sigs_before = len(ref_solver.signatures)
    log(f"warm-up: xenoverse {warm_ref:.2f}s, omnirl {warm_ours:.2f}s; "
        f"budget {budget:g}s per size per sampler")

    results = []
    with tempfile.TemporaryDirectory(prefix="bench_tasks-") as work:
        for S in args.sizes:
            row = bench_size(S, args.actions, budget, args.max_tasks, args.seed, reference)
            log(f"S={S:4d}: xenoverse {row['xenoverse_tasks_per_s']:9.3f} tasks/s ({row['xenoverse_tasks']} tasks), "
                f"omnirl {row['omnirl_tasks_per_s']:9.2f} tasks/s ({row['omnirl_tasks']} tasks), "
                f"ratio {row['ratio']:8.1f}" + ("" if row["target_ratio"] is None else
                                               f" (target >= {row['target_ratio']:g}: "
                                               f"{'met' if row['meets_target'] else 'NOT met'})"))
            cli = bench_cli(S, args.actions, row["omnirl_tasks"], args.seed, Path(work))
            row.update(cli_tasks_per_s=cli["tasks_per_s"], cli_ratio=row["omnirl_tasks_per_s"] / cli["tasks_per_s"],
                       cli_cpu_ratio=cli["cpu_seconds"] / row["omnirl"]["cpu_seconds"],
                       cli_target_ratio=CLI_TARGET, cli=cli)
            row["cli_meets_target"] = bool(row["cli_ratio"] <= CLI_TARGET)
            results.append(row)
            log(f"S={S:4d}: command line {cli['tasks_per_s']:9.2f} tasks/s ({cli['tasks']} tasks in "
                f"{cli['seconds']:.2f}s, whole process), sampler/command line {row['cli_ratio']:.2f} "
                f"(CPU time {row['cli_cpu_ratio']:.2f}) "
                f"(target <= {CLI_TARGET:g}: {'met' if row['cli_meets_target'] else 'NOT met'})")
    sigs_after = len(ref_solver.signatures)

    checked = [r["meets_target"] for r in results if r["meets_target"] is not None]
    cli_checked = [r["cli_meets_target"] for r in results]
    report = {
        "benchmark": "task_generation",
        "description": "valid AnyMDP tasks generated per second, one core, single process: "
                       "omnirl.tasks.anymdp.sample_anymdp vs xenoverse.anymdp.AnyMDPTaskSampler",
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "settings": {"sizes": args.sizes, "actions": args.actions, "budget_s": budget,
                     "max_tasks": args.max_tasks, "base_seed": args.seed, "quick": args.quick,
                     "seeds": {"omnirl": "(base_seed, i)", "xenoverse": "base_seed + i"},
                     "schedule": "interleaved: the sampler with less accumulated timed work runs next",
                     "cli": "python -m omnirl.tasks generate --n N --states S --actions A --seed base_seed "
                            "--out TMP, defaults otherwise, N = the tasks omnirl's sampler timed; one "
                            "whole process timed from start to exit"},
        "machine": machine_info(("numba",)),
        "xenoverse_version": metadata.version("xenoverse"),
        "warmup": {"size": WARMUP_SIZE, "xenoverse_s": warm_ref, "omnirl_s": warm_ours,
                   "xenoverse_jit_signatures_before_timing": sigs_before,
                   "xenoverse_jit_signatures_after_timing": sigs_after,
                   "xenoverse_compiled_during_timing": sigs_after != sigs_before},
        "targets": {str(k): v for k, v in TARGETS.items()},
        "results": results,
        "all_targets_met": all(checked) if checked else None,
        "cli_target_ratio": CLI_TARGET,
        "all_cli_targets_met": all(cli_checked),
        "total_wall_s": time.perf_counter() - t_start,
    }
    return emit(report, args.out)


if __name__ == "__main__":
    main()
