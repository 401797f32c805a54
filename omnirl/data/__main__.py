"""Command line for step-wise-supervision datasets.

    python -m omnirl.data generate --tasks N --sequences M --length T --pipeline omnirl --out DIR --workers K
    python -m omnirl.data generate --tasks fresh --sequences M --length T --out DIR      # a new task per sequence
    python -m omnirl.data validation DIR --sequences M --out VALDIR    # VALDIR/seen and VALDIR/unseen
        [--probe] [--probes uniform_probe,myopic_probe]                # and VALDIR/probe, VALDIR/NAME
    python -m omnirl.data verify DIR [--json]

``generate`` writes the task set of exactly N tasks to ``DIR/tasks`` (sequence j plays task
j mod N), then the sequences as checksummed shards; rerunning the same command resumes. The
result is bit-identical whatever ``--workers``, ``--batch`` or ``--backend`` (``local`` process
pool, or ``ray``: a local Ray instance, or a cluster with ``--ray-address``).

``verify`` recomputes the size and sha256 of every shard against the manifest, checks that its ids
fit the header's sizes and that ``DIR/tasks`` is the dataset's intact task set, and prints the
report; it exits 0 if the dataset is intact, 1 if the manifest or any shard is damaged or
missing, and 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from omnirl._cli import Parser, run


def cmd_verify(a: argparse.Namespace) -> int:
    from omnirl.data.store import verify
    path = Path(a.path)
    if not path.is_dir():
        print(f"error: {str(path)!r} is not a directory", file=sys.stderr)
        return 2
    report = verify(path)
    if a.json:
        print(json.dumps(report, indent=1, sort_keys=True))
        return 0 if report["ok"] else 1
    if report["manifest_error"] is not None:
        print(f"dataset {path}: DAMAGED: {report['manifest_error']}")
        return 1
    state = "intact" if report["ok"] else "DAMAGED"
    print(f"dataset {path}: {report['n_sequences']} sequences in {report['n_shards']} shards, "
          f"{report['n_intact']} intact, {len(report['damaged'])} damaged, "
          f"{len(report['missing'])} missing: {state}")
    for d in report["damaged"]:
        print(f"  damaged {d['file']}: {d['reason']}")
    for m in report["missing"]:
        print(f"  missing {m['file']}")
    if report["tasks"] is not None:
        print(f"  task set {report['tasks']}: {report['tasks_error'] or 'intact'}")
    return 0 if report["ok"] else 1


def cmd_generate(a: argparse.Namespace) -> int:
    from omnirl._validate import check_disk, check_int
    from omnirl.data.generate import (DatasetSpec, check_backend, check_batch_memory, dataset_bytes,
                                      generate_dataset, load_task_set, task_set_bytes)
    from omnirl.tasks.taskset import parse_states
    S, min_states = parse_states(a.states)
    task_dir = tasks = None
    if a.tasks != "fresh":
        try:
            n_tasks = int(a.tasks)
        except ValueError:
            raise ValueError(f"--tasks must be a number of tasks or 'fresh', got {a.tasks!r}") from None
        if n_tasks <= 0:
            raise ValueError(f"--tasks must be >= 1, got {n_tasks}")
    spec_args = dict(pipeline=a.pipeline, n_sequences=a.sequences, length=a.length, n_obs=S,
                     n_actions=a.actions, seed=a.seed, min_states=min_states, shard_size=a.shard_size)
    check_int("workers", a.workers, min_value=1)
    check_backend(a.backend, a.ray_address)
    check_batch_memory(DatasetSpec(**spec_args), a.batch)  # validate everything before anything is written
    need = dataset_bytes(DatasetSpec(**spec_args), a.out)
    if a.tasks != "fresh":
        need += task_set_bytes(a.out, n_tasks, a.states, a.actions, a.task_seed)
    check_disk("--out", a.out, need)  # the task set and the dataset, before either is written
    if a.tasks != "fresh":
        path, tasks = load_task_set(a.out, n_tasks, a.states, a.actions, a.task_seed, a.workers)
        task_dir = str(path)
    spec = DatasetSpec(**spec_args, task_set=task_dir)
    m = generate_dataset(spec, a.out, workers=a.workers, backend=a.backend, batch=a.batch,
                         progress=not a.quiet, ray_address=a.ray_address, tasks=tasks)
    print(f"{m['n_sequences']} sequences x {m['length']} steps in {a.out} ({m['n_shards']} shards), "
          f"content hash {m['content_hash']}")
    return 0


def cmd_validation(a: argparse.Namespace) -> int:
    from omnirl.data.generate import make_validation_sets
    probes = [p.strip() for p in a.probes.split(",") if p.strip()]
    res = make_validation_sets(a.path, a.out, a.sequences, a.workers, a.backend, a.batch, probe=a.probe,
                               probes=probes)
    for name, m in res.items():
        print(f"{name}: {m['n_sequences']} sequences in {Path(a.out) / name}, content hash {m['content_hash']}")
    return 0


def add_generate(sub: argparse._SubParsersAction) -> None:
    from omnirl.data.generate import DEFAULT_BATCH, DEFAULT_SHARD_SIZE
    from omnirl.data.pipelines import PIPELINES
    g = sub.add_parser("generate", help="synthesise a dataset of sequences")
    g.add_argument("--tasks", required=True, help="number of tasks N in the task set, or 'fresh'")
    g.add_argument("--sequences", type=int, required=True, help="number of sequences M")
    g.add_argument("--length", type=int, required=True, help="steps per sequence T")
    g.add_argument("--pipeline", default="omnirl", help=f"one of {sorted(PIPELINES)}")
    g.add_argument("--out", required=True)
    g.add_argument("--states", default="16:64", help="S or MIN:MAX (observation space MAX)")
    g.add_argument("--actions", type=int, default=5)
    g.add_argument("--seed", type=int, default=0, help="sequence seed")
    g.add_argument("--task-seed", type=int, default=0, help="seed of the task set")
    g.add_argument("--shard-size", type=int, default=DEFAULT_SHARD_SIZE,
                   help=f"sequences per shard (default {DEFAULT_SHARD_SIZE})")
    g.add_argument("--batch", type=int, default=DEFAULT_BATCH,
                   help=f"sequences simulated together per worker, across shards (default {DEFAULT_BATCH}; "
                        "memory grows with it)")
    g.add_argument("--workers", type=int, default=1)
    g.add_argument("--backend", default="local", choices=["local", "ray"])
    g.add_argument("--ray-address", default=None, help="Ray cluster address (default: start a local Ray)")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.set_defaults(fn=cmd_generate)
    v = sub.add_parser("validation", help="seen-task and unseen-task validation sets for a dataset")
    v.add_argument("path", help="the training dataset")
    v.add_argument("--sequences", type=int, required=True)
    v.add_argument("--out", required=True)
    v.add_argument("--batch", type=int, default=DEFAULT_BATCH,
                   help=f"sequences simulated together per worker (default {DEFAULT_BATCH})")
    v.add_argument("--workers", type=int, default=1)
    v.add_argument("--backend", default="local", choices=["local", "ray"])
    v.add_argument("--probe", action="store_true",
                   help="also VALDIR/probe: the unseen tasks under one random policy per sequence (the "
                        "in-context-RL probe)")
    v.add_argument("--probes", default="",
                   help="comma-separated probe pipelines, each also written to VALDIR/NAME: random_probe, "
                        "uniform_probe (uniform random behaviour), myopic_probe (uniform random behaviour, "
                        "labels of the gamma-0 oracle)")
    v.set_defaults(fn=cmd_validation)


def add_verify(sub: argparse._SubParsersAction) -> None:
    v = sub.add_parser("verify", help="recompute every shard checksum of a dataset")
    v.add_argument("path", help="dataset directory (holding manifest.json)")
    v.add_argument("--json", action="store_true", help="print the report as JSON")
    v.set_defaults(fn=cmd_verify)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m omnirl.data", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    add_generate(sub)
    add_verify(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
