"""Data-synthesis speed: labelled steps per second on one core, ``omnirl.data.synthesis.synthesize``
against the reference per-step loop of xenoverse 0.1.14.0, side by side in one run.

    python benchmarks/bench_synthesis.py [--states 64] [--actions 5] [--batch 1024] [--length 16000]
                                         [--distinct-tasks N] [--budget 30] [--repeats 3]
                                         [--memory-lengths 1024,4096] [--seed 1000]
                                         [--quick] [--out FILE]

Reference: the authors' per-step data-generation loop. One task from
``xenoverse.anymdp.AnyMDPTaskSampler(S, A)`` in the gym environment ``AnyMDPEnv``; the behaviour
policy is the tabular Q-learner ``AnyMDPSolverQ`` (act with ``policy``, call ``learner`` on every
transition) and every step gets an oracle label from ``AnyMDPSolverOpt(env, gamma=0.994).policy``;
the environment is reset at every episode end. One env step is one labelled step. The task, the
environment and both solvers (the oracle's value iteration included) are built before timing; only
the stepping loop is timed. The loop does not store its steps anywhere, which favours the reference.

Ours: ``synthesize(tasks, seeds, config, length, out)`` with the full OmniRL behaviour mix
(``pipeline("omnirl")``), ``B = --batch`` AnyMDP tasks ``sample_anymdp(S, A, seed=(seed, i))``
(``--distinct-tasks`` of them, tiled over the batch; all distinct by default), row seeds
``(seed, j)``, ``T = --length`` and preallocated in-memory ``(B, T)`` output columns. Every stored
entry (end markers included) is one labelled step: ``B * T`` per call. The whole call is timed,
agent construction (and solving every task's oracle: the oracle cache is cleared before every
call) included; the time spent inside the constructors the call makes (simulator, behaviour mix,
mask streams) is also measured, to report the rate without construction.

Interleaving: ``--repeats`` rounds, each one slice of ``budget / repeats`` seconds of the reference
loop followed by one call of ours, so both are spread over the same wall-clock window and load from
other processes hits both alike. Both are warmed up, untimed, first.

Memory: peak RSS (``resource.getrusage``) just before ours' first timed call (tasks built, output
columns allocated and touched) and after its last. To show that memory does not grow with ``T``,
ours also runs once per ``--memory-lengths`` entry at the same ``B``, each in a fresh subprocess so
that every peak is its own (started first, while this process is small, since a child's
``ru_maxrss`` starts from its parent's); the output columns are touched before the baseline is
read, so the reported growth is the call's working memory only.

Command line: what a user runs, ``python -m omnirl.data generate --tasks D --sequences B --length T
--states S --actions A --seed s --task-seed s --out TMP`` (``D = --distinct-tasks``) with every
other option at its default (pipeline ``omnirl``, batch, shard size, one worker, progress bar), as
a whole process into a temporary directory, timed from start to exit: interpreter start-up,
imports, sampling and writing the task set of ``D`` tasks, synthesis and writing the shards. It
makes the very sequences of ours' calls (checked column by column). ``cli_ratio`` = ours' labelled
steps/s over the command line's. Ours is given its tasks ready-made while the command line samples
them, so the target, <= 1.5 (``CLI_TARGET``, ``cli_meets_target``), is checked on the same work:
``cli_ratio_with_task_sampling`` counts ours' sampling of the ``D`` tasks too.
``cli_cpu_ratio`` compares CPU time instead (the command line's process over one call of ours),
which load from other processes changes less.

One JSON document goes to stdout (progress goes to stderr); ``--out FILE`` also writes it there
atomically. The target is >= 500,000 labelled steps/s on one core for ours, construction included.
"""

from __future__ import annotations

# first: one core for both implementations (numpy/BLAS single-threaded, set before numpy is imported)
from _common import THREAD_VARS as BLAS_THREAD_VARS
from _common import emit, int_list, log, machine_info, positive_float, positive_int, run_command

import os  # noqa: E402

# numba's threads too, before xenoverse imports numba
THREAD_VARS = BLAS_THREAD_VARS + ("NUMBA_NUM_THREADS",)
os.environ["NUMBA_NUM_THREADS"] = "1"

import argparse  # noqa: E402
import gc  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from importlib import metadata  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from omnirl.tasks import sample_anymdp  # noqa: E402

TARGET_STEPS_PER_S = 500_000.0  # labelled steps/s on one core, ours, construction included
CLI_TARGET = 1.5  # most ours' labelled steps/s over the command line's
ORACLE_GAMMA = 0.994
# T = 16,000: the sequence length of the reference implementation's data-generation script
# (dump_anymdp.sh, --max_steps 16000); shorter sequences pay the per-sequence set-up (solving four
# oracles per new task) over fewer steps, which `--length 2048` shows.
DEFAULTS = {"batch": 1024, "length": 16000, "budget": 30.0, "repeats": 3,
            "memory_lengths": [1024, 4096]}
QUICK = {"batch": 16, "length": 128, "budget": 0.5, "repeats": 1, "memory_lengths": [64, 256]}
CHECK_EVERY = 128  # reference steps between two clock reads
# constructors that ``synthesize`` calls (module globals of omnirl.data.synthesis), timed to
# report the rate without construction
CONSTRUCTORS = ("BatchedSimulator", "BehaviourMix", "RowStreams")
# memory counts as independent of T when the growth differs by at most this much between lengths
MEMORY_TOLERANCE_MIB = 16.0
MISSING_REFERENCE = ("bench_synthesis: the reference implementation xenoverse is not importable "
                     "({err}).\nRun `make bench`, which installs the `bench` extra "
                     "(pip install -e '.[bench]') and then runs the benchmarks.")


def _import_reference():
    """``(AnyMDPTaskSampler, AnyMDPEnv, AnyMDPSolverQ, AnyMDPSolverOpt)``, or exit with a message."""
    try:
        from xenoverse.anymdp import AnyMDPEnv, AnyMDPSolverOpt, AnyMDPSolverQ, AnyMDPTaskSampler
    except ImportError as err:  # xenoverse itself, or one of its undeclared deps (attrs, networkx)
        sys.exit(MISSING_REFERENCE.format(err=err))
    return AnyMDPTaskSampler, AnyMDPEnv, AnyMDPSolverQ, AnyMDPSolverOpt


def _import_ours():
    """``(synthesis module, pipeline)``, or exit with a message."""
    try:
        from omnirl.data import synthesis
        from omnirl.data.pipelines import pipeline
    except ImportError as err:
        sys.exit(f"bench_synthesis: omnirl.data.synthesis is not importable ({err}).")
    return synthesis, pipeline


def _length(text: str) -> int:
    value = int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be >= 2, got {text!r}")
    return value


def _parse_lengths(text: str) -> list[int]:
    if text.strip().lower() in ("", "none"):
        return []
    return int_list(text, "--memory-lengths", 2, allow_empty=True)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--states", type=positive_int, default=64, help="state-space size S (default: 64)")
    p.add_argument("--actions", type=positive_int, default=5, help="action-space size A (default: 5)")
    p.add_argument("--batch", type=positive_int, default=None,
                   help=f"sequences B per call of ours (default: {DEFAULTS['batch']}, "
                        f"or {QUICK['batch']} with --quick)")
    p.add_argument("--length", type=_length, default=None,
                   help=f"steps T per sequence (default: {DEFAULTS['length']}, "
                        f"or {QUICK['length']} with --quick)")
    p.add_argument("--distinct-tasks", type=positive_int, default=None,
                   help="distinct tasks tiled over the batch (default: B, all distinct)")
    p.add_argument("--budget", type=positive_float, default=None,
                   help=f"seconds of timed reference stepping in all (default: {DEFAULTS['budget']:g}, "
                        f"or {QUICK['budget']:g} with --quick)")
    p.add_argument("--repeats", type=positive_int, default=None,
                   help=f"interleaved rounds: a reference slice then one call of ours "
                        f"(default: {DEFAULTS['repeats']}, or {QUICK['repeats']} with --quick)")
    p.add_argument("--memory-lengths", type=_parse_lengths, default=None,
                   help="lengths T at which ours runs once more in a fresh process to compare peak "
                        "memory, comma-separated, or 'none' (default: 1024,4096, or 64,256 with --quick)")
    p.add_argument("--seed", type=int, default=1000,
                   help="base seed s: task i is sample_anymdp(S, A, seed=(s, i)), row j has seed (s, j); "
                        "the reference task uses seed s")
    p.add_argument("--quick", action="store_true", help="tiny sizes and budget, for smoke tests")
    p.add_argument("--out", type=Path, default=None, help="also write the JSON here (atomically)")
    # internal: run ours once at this length and print its memory record (used for --memory-lengths)
    p.add_argument("--memory-probe", type=_length, default=None, help=argparse.SUPPRESS)
    return p


def _resolve(args: argparse.Namespace) -> argparse.Namespace:
    base = QUICK if args.quick else DEFAULTS
    for key, value in base.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.distinct_tasks is None:
        args.distinct_tasks = args.batch
    args.distinct_tasks = min(args.distinct_tasks, args.batch)
    if not 0 <= args.seed < 2**32:  # numpy's legacy seed (the reference) is 32-bit
        sys.exit(f"bench_synthesis: --seed must be in [0, {2**32}), got {args.seed}")
    return args


# ----------------------------------------------------------------------------- memory
def _peak_rss_mib() -> float:
    """Peak resident set size of this process so far, MiB (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def _current_rss_mib() -> float | None:
    """Current resident set size, MiB, where ``/proc`` tells it."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


def _memory_snapshot() -> dict:
    return {"peak_rss_mib": round(_peak_rss_mib(), 2), "current_rss_mib":
            None if (cur := _current_rss_mib()) is None else round(cur, 2)}


# ----------------------------------------------------------------------------- reference
class Reference:
    """The authors' per-step loop: gym env + Q-learning behaviour + oracle label, stepped on demand."""

    def __init__(self, S: int, A: int, seed: int):
        sampler, env_cls, solver_q, solver_opt = _import_reference()
        t0 = time.perf_counter()
        self.task = sampler(S, A, seed=seed)
        self.task_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        self.env = env_cls(max_steps=5000)  # the task's own max_steps replaces this in set_task
        self.env.set_task(self.task)
        self.behaviour = solver_q(self.env)
        self.oracle = solver_opt(self.env, gamma=ORACLE_GAMMA)  # value iteration: set-up
        self.setup_s = time.perf_counter() - t0
        self.obs, _ = self.env.reset()
        self.steps = self.episodes = 0
        self.seconds = self.cpu_seconds = 0.0
        self.slices: list[dict] = []

    def _run(self, n: int) -> None:
        env, behaviour, oracle = self.env, self.behaviour, self.oracle
        obs = self.obs
        for _ in range(n):
            action = behaviour.policy(obs)
            oracle.policy(obs)  # the step's label (oracle action on the current state)
            next_obs, reward, terminated, truncated, _info = env.step(action)
            behaviour.learner(obs, action, next_obs, reward, terminated, truncated)
            if terminated or truncated:
                obs, _info = env.reset()
                self.episodes += 1
            else:
                obs = next_obs
        self.obs = obs

    def warm_up(self, n: int = 256) -> float:
        t0 = time.perf_counter()
        self._run(n)
        return time.perf_counter() - t0

    def run_for(self, budget: float) -> dict:
        """Step for ``budget`` seconds (clock read every ``CHECK_EVERY`` steps); the slice's record."""
        steps = 0
        c0, t0 = time.process_time(), time.perf_counter()
        while True:
            self._run(CHECK_EVERY)
            steps += CHECK_EVERY
            elapsed = time.perf_counter() - t0
            if elapsed >= budget:
                break
        cpu = time.process_time() - c0
        self.steps += steps
        self.seconds += elapsed
        self.cpu_seconds += cpu
        rec = {"steps": steps, "seconds": round(elapsed, 6), "cpu_seconds": round(cpu, 6),
               "steps_per_s": steps / elapsed}
        self.slices.append(rec)
        return rec

    def summary(self) -> dict:
        return {"labelled_steps_per_s": self.steps / self.seconds, "steps": self.steps,
                "seconds": round(self.seconds, 6), "cpu_seconds": round(self.cpu_seconds, 6),
                "episodes": self.episodes, "task_sampling_s": round(self.task_s, 6),
                "setup_s": round(self.setup_s, 6), "slices": self.slices,
                "task_max_steps": float(self.task["max_steps"])}


# ----------------------------------------------------------------------------- ours
class _ConstructionTimer:
    """Times the constructors ``synthesize`` calls, by wrapping its module globals while active."""

    def __init__(self, module, names=CONSTRUCTORS):
        self.module = module
        self.names = [n for n in names if hasattr(module, n)]
        self.seconds = 0.0

    def __enter__(self):
        self._saved = {n: getattr(self.module, n) for n in self.names}
        for name, orig in self._saved.items():
            setattr(self.module, name, self._wrap(orig))
        return self

    def _wrap(self, orig):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return orig(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t0
        return timed

    def __exit__(self, *exc):
        for name, orig in self._saved.items():
            setattr(self.module, name, orig)
        return False


def _clear_oracle_cache() -> bool:
    """Forget cached oracle solutions, so every timed call solves its tasks; whether there was a cache."""
    try:
        from omnirl.agents.oracle import clear_oracle_cache
    except ImportError:
        return False
    clear_oracle_cache()
    return True


def make_tasks(S: int, A: int, B: int, distinct: int, seed: int) -> list:
    """``B`` tasks: ``distinct`` of them, ``sample_anymdp(S, A, seed=(seed, i))``, tiled over the batch."""
    pool = [sample_anymdp(S, A, seed=(seed, i)) for i in range(distinct)]
    return [pool[j % distinct] for j in range(B)]


def make_out(B: int, T: int, n_obs: int) -> dict[str, np.ndarray]:
    """Preallocated ``(B, T)`` output columns of the dataset schema, every page touched (resident
    before any timing)."""
    from omnirl.data.schema import STEP_FIELDS, column_specs
    out = {}
    specs = column_specs(n_obs, T)
    for name in STEP_FIELDS:
        a = np.empty((B, T), dtype=specs[name][0])
        a.fill(0)
        out[name] = a
    return out


def run_ours(synthesis, tasks: list, seeds: list, config, T: int, out: dict) -> dict:
    """One timed call of ``synthesize`` (oracle cache cleared first, untimed); its record."""
    B = len(tasks)
    _clear_oracle_cache()
    gc.collect()
    with _ConstructionTimer(synthesis) as ct:
        c0, t0 = time.process_time(), time.perf_counter()
        counts = synthesis.synthesize(tasks, seeds, config, T, out)
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - c0
    steps = B * T
    loop = elapsed - ct.seconds
    return {"labelled_steps": steps, "seconds": round(elapsed, 6), "cpu_seconds": round(cpu, 6),
            "construction_s": round(ct.seconds, 6), "steps_per_s": steps / elapsed,
            "steps_per_s_excluding_construction": steps / loop if loop > 0 else None,
            "returned": {k: int(v) for k, v in dict(counts or {}).items()}}


def memory_probe(args: argparse.Namespace) -> dict:
    """Ours once at ``T = args.memory_probe`` in this (fresh) process: its peak-memory record."""
    synthesis, pipeline = _import_ours()
    S, A, B, T = args.states, args.actions, args.batch, args.memory_probe
    config = pipeline("omnirl")
    # warm-up: first-call costs (lazy imports, caches) are not the call's working memory
    synthesis.synthesize([sample_anymdp(S, A, seed=(args.seed + 1, 0))] * 2, [(args.seed + 1, 0),
                         (args.seed + 1, 1)], config, 16, make_out(2, 16, S))
    tasks = make_tasks(S, A, B, args.distinct_tasks, args.seed)
    seeds = [(args.seed, j) for j in range(B)]
    out = make_out(B, T, S)
    gc.collect()
    before = _memory_snapshot()
    rec = run_ours(synthesis, tasks, seeds, config, T, out)
    after = _memory_snapshot()
    out_bytes = sum(a.nbytes for a in out.values())
    return {"length": T, "batch": B, "distinct_tasks": args.distinct_tasks,
            "output_columns_mib": round(out_bytes / 2**20, 3),
            "before": before, "after": after,
            "peak_growth_mib": round(after["peak_rss_mib"] - before["peak_rss_mib"], 2),
            "steps_per_s": rec["steps_per_s"],
            "steps_per_s_excluding_construction": rec["steps_per_s_excluding_construction"],
            "seconds": rec["seconds"], "construction_s": rec["construction_s"]}


def run_memory_probes(args: argparse.Namespace) -> dict | None:
    """``memory_probe`` at every ``--memory-lengths`` entry, each in a fresh subprocess."""
    if not args.memory_lengths:
        return None
    probes = []
    for T in args.memory_lengths:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--memory-probe", str(T),
               "--states", str(args.states), "--actions", str(args.actions),
               "--batch", str(args.batch), "--distinct-tasks", str(args.distinct_tasks),
               "--seed", str(args.seed)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"bench_synthesis: the memory probe at T={T} failed:\n{proc.stderr}")
        probe = json.loads(proc.stdout)
        probes.append(probe)
        log(f"memory T={T:6d}: peak RSS {probe['before']['peak_rss_mib']:.1f} -> "
            f"{probe['after']['peak_rss_mib']:.1f} MiB (growth {probe['peak_growth_mib']:.1f} MiB; "
            f"output columns {probe['output_columns_mib']:.1f} MiB, allocated before)")
    growth = [p["peak_growth_mib"] for p in probes]
    spread = max(growth) - min(growth)
    tolerance = max(MEMORY_TOLERANCE_MIB, 0.1 * max(min(growth), 0.0))
    lo, hi = probes[0], probes[-1]
    return {"lengths": args.memory_lengths, "probes": probes,
            "peak_growth_spread_mib": round(spread, 2),
            "output_columns_spread_mib": round(max(p["output_columns_mib"] for p in probes)
                                               - min(p["output_columns_mib"] for p in probes), 3),
            "length_ratio": hi["length"] / lo["length"],
            "tolerance_mib": tolerance,
            "memory_independent_of_length": bool(spread <= tolerance),
            "method": "each length in a fresh process, started before this process imports "
                      "xenoverse (a child's ru_maxrss starts from its parent's); output columns "
                      "(B, T) allocated and touched before the baseline peak RSS is read, so the "
                      "growth is the call's working memory"}


# ----------------------------------------------------------------------------- command line
def bench_cli(args: argparse.Namespace, work: Path, inner: dict[str, np.ndarray]) -> dict:
    """``python -m omnirl.data generate`` for ours' workload, defaults otherwise, timed as a whole
    process; whether it wrote ``inner``, the sequences of ours' calls."""
    from omnirl.data.schema import STEP_FIELDS
    from omnirl.data.store import Dataset
    B, T = args.batch, args.length
    data = work / "data"
    cmd = [sys.executable, "-m", "omnirl.data", "generate", "--tasks", str(args.distinct_tasks),
           "--sequences", str(B), "--length", str(T), "--states", str(args.states),
           "--actions", str(args.actions), "--seed", str(args.seed), "--task-seed", str(args.seed),
           "--out", str(data)]
    rec = run_command(cmd, work, "cli")
    ds = Dataset.open(data)
    same = len(ds) == B
    for i in range(ds.n_shards):
        cols = ds.shard(i)
        first = ds.header.shard_first(i)
        rows = slice(first, first + ds.header.shard_rows(i))
        same = same and all(np.array_equal(cols[f], inner[f][rows]) for f in STEP_FIELDS)
    if not same:
        sys.exit("bench_synthesis: the command line did not write the sequences of ours' calls")
    rec.update(labelled_steps=B * T, labelled_steps_per_s=B * T / rec["seconds"], shards=ds.n_shards,
               shard_size=ds.header.shard_size, same_sequences_as_ours=same)
    return rec


# ----------------------------------------------------------------------------- report
def main(argv: list[str] | None = None) -> dict:
    args = _resolve(build_parser().parse_args(argv))
    if args.memory_probe is not None:
        probe = memory_probe(args)
        sys.stdout.write(json.dumps(probe) + "\n")
        return probe

    if importlib.util.find_spec("xenoverse") is None:  # cheap check before the long parts
        sys.exit(MISSING_REFERENCE.format(err="No module named 'xenoverse'"))
    synthesis, pipeline = _import_ours()
    t_start = time.perf_counter()
    # First, while this process is still small: a child's ru_maxrss starts from its parent's
    # high-water mark (it is carried across fork and exec), and importing xenoverse.anymdp alone
    # takes this process to ~200 MiB.
    memory_vs_length = run_memory_probes(args)

    reference = Reference(args.states, args.actions, args.seed)  # exits if xenoverse is missing
    S, A, B, T = args.states, args.actions, args.batch, args.length
    config = pipeline("omnirl")

    t0 = time.perf_counter()
    tasks = make_tasks(S, A, B, args.distinct_tasks, args.seed)
    tasks_s = time.perf_counter() - t0
    seeds = [(args.seed, j) for j in range(B)]
    out = make_out(B, T, S)
    log(f"set-up: reference task {reference.task_s:.2f}s + env/solvers {reference.setup_s:.2f}s; "
        f"ours {args.distinct_tasks} distinct tasks for B={B} in {tasks_s:.2f}s")

    # warm-up, untimed: first-call costs of both
    warm_ref = reference.warm_up()
    t0 = time.perf_counter()
    wB, wT = min(B, 8), min(T, 64)
    synthesis.synthesize(tasks[:wB], seeds[:wB], config, wT, make_out(wB, wT, S))
    warm_ours = time.perf_counter() - t0
    log(f"warm-up: reference {warm_ref:.2f}s, ours {warm_ours:.2f}s; reference budget "
        f"{args.budget:g}s in {args.repeats} slice(s), ours {args.repeats} call(s) of B={B}, T={T}")

    gc.collect()
    mem_before = _memory_snapshot()
    ours_runs = []
    for r in range(args.repeats):
        sl = reference.run_for(args.budget / args.repeats)
        log(f"round {r + 1}/{args.repeats}: reference {sl['steps_per_s']:10.0f} steps/s "
            f"({sl['steps']} steps in {sl['seconds']:.2f}s)")
        rec = run_ours(synthesis, tasks, seeds, config, T, out)
        ours_runs.append(rec)
        log(f"round {r + 1}/{args.repeats}: ours      {rec['steps_per_s']:10.0f} steps/s "
            f"({rec['labelled_steps']} steps in {rec['seconds']:.2f}s, "
            f"construction {rec['construction_s']:.2f}s)")
    mem_after = _memory_snapshot()
    ref = reference.summary()
    with tempfile.TemporaryDirectory(prefix="bench_synthesis-") as work:
        cli = bench_cli(args, Path(work), out)
    log(f"command line: {cli['labelled_steps_per_s']:10.0f} steps/s ({cli['labelled_steps']} steps in "
        f"{cli['seconds']:.2f}s, whole process, {args.distinct_tasks} tasks sampled and written)")

    steps = sum(r["labelled_steps"] for r in ours_runs)
    seconds = sum(r["seconds"] for r in ours_runs)
    construction = sum(r["construction_s"] for r in ours_runs)
    ours = {"labelled_steps_per_s": steps / seconds,
            "labelled_steps_per_s_excluding_construction":
                steps / (seconds - construction) if seconds > construction else None,
            "steps": steps, "seconds": round(seconds, 6),
            "cpu_seconds": round(sum(r["cpu_seconds"] for r in ours_runs), 6),
            "construction_s": round(construction, 6),
            "median_steps_per_s": statistics.median(r["steps_per_s"] for r in ours_runs),
            "task_sampling_s": round(tasks_s, 6), "runs": ours_runs}
    ratio = ours["labelled_steps_per_s"] / ref["labelled_steps_per_s"]
    cli_ratio = ours["labelled_steps_per_s"] / cli["labelled_steps_per_s"]
    cli_cpu_ratio = cli["cpu_seconds"] / (ours["cpu_seconds"] / len(ours_runs))
    with_sampling = B * T / (seconds / len(ours_runs) + tasks_s)
    same_work = with_sampling / cli["labelled_steps_per_s"]
    log(f"ours/command line: {cli_ratio:.2f}, CPU time {cli_cpu_ratio:.2f}; counting ours' task sampling "
        f"({tasks_s:.2f}s), the same work: {same_work:.2f} (target <= {CLI_TARGET:g}: "
        f"{'met' if same_work <= CLI_TARGET else 'NOT met'})")
    log(f"ours/reference: {ratio:.1f}x; ours {ours['labelled_steps_per_s']:.0f} labelled steps/s "
        f"(target >= {TARGET_STEPS_PER_S:.0f}: "
        f"{'met' if ours['labelled_steps_per_s'] >= TARGET_STEPS_PER_S else 'NOT met'})")

    report = {
        "benchmark": "synthesis",
        "description": "labelled steps per second, one core, single process: omnirl.data.synthesis."
                       "synthesize (pipeline 'omnirl', batched) vs the xenoverse per-step loop "
                       "(AnyMDPEnv + AnyMDPSolverQ behaviour + AnyMDPSolverOpt(gamma=0.994) label)",
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "settings": {"states": S, "actions": A, "batch": B, "length": T,
                     "distinct_tasks": args.distinct_tasks, "budget_s": args.budget,
                     "repeats": args.repeats, "memory_lengths": args.memory_lengths,
                     "base_seed": args.seed, "quick": args.quick, "pipeline": config.name,
                     "oracle_gamma": ORACLE_GAMMA,
                     "seeds": {"omnirl_tasks": "sample_anymdp(S, A, seed=(base_seed, i % distinct_tasks))",
                               "omnirl_rows": "(base_seed, j)", "xenoverse_task": "base_seed"},
                     "labelled_step": {"reference": "one env step",
                                       "omnirl": "one stored entry of (B, T), end markers included"},
                     "timed": {"reference": "the stepping loop only (task, env, solvers built before)",
                               "omnirl": "the whole synthesize call, construction included; oracle "
                                         "cache cleared (untimed) before every call"},
                     "schedule": "interleaved: each round is a reference slice of budget/repeats "
                                 "seconds, then one call of ours",
                     "cli": "python -m omnirl.data generate --tasks distinct_tasks --sequences batch "
                            "--length length --states states --actions actions --seed base_seed "
                            "--task-seed base_seed --out TMP, defaults otherwise; one whole process "
                            "timed from start to exit"},
        "machine": machine_info(("numba", "gymnasium"), THREAD_VARS),
        "xenoverse_version": metadata.version("xenoverse"),
        "warmup": {"reference_s": warm_ref, "omnirl_s": warm_ours},
        "reference": ref,
        "omnirl": ours,
        "ratio": ratio,
        "target_steps_per_s": TARGET_STEPS_PER_S,
        "meets_target": bool(ours["labelled_steps_per_s"] >= TARGET_STEPS_PER_S),
        "cli": cli,
        "cli_ratio": cli_ratio,
        "cli_cpu_ratio": cli_cpu_ratio,
        "omnirl_steps_per_s_with_task_sampling": with_sampling,
        "cli_ratio_with_task_sampling": same_work,
        "cli_target_ratio": CLI_TARGET,
        "cli_meets_target": bool(same_work <= CLI_TARGET),
        "memory": {"omnirl_before": mem_before, "omnirl_after": mem_after,
                   "omnirl_peak_growth_mib": round(mem_after["peak_rss_mib"] - mem_before["peak_rss_mib"], 2),
                   "output_columns_mib": round(sum(a.nbytes for a in out.values()) / 2**20, 3),
                   "vs_length": memory_vs_length},
        "total_wall_s": time.perf_counter() - t_start,
    }
    return emit(report, args.out)


if __name__ == "__main__":
    main()
