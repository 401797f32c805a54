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

Every subcommand's ``--help`` lists its options with their docstrings; ``--config FILE`` reads
them from YAML by name (``shard_size: 64``), ``--print_config`` prints them resolved.
"""

import dataclasses
import json
import sys
from pathlib import Path
from typing import Literal

from omnirl.config import POSITIONAL, Command, run_command
from omnirl.data.generate import BACKENDS, DEFAULT_BATCH, DEFAULT_SHARD_SIZE
from omnirl.data.pipelines import PIPELINES

PROG = "python -m omnirl.data"


@dataclasses.dataclass(frozen=True)
class GenerateOptions:
    """Synthesise a dataset of sequences (on a task set of N tasks, or a fresh task per sequence)."""

    tasks: int | Literal["fresh"]
    """Number of tasks N in the task set (sequence j plays task j mod N), or 'fresh': a new task per sequence."""
    sequences: int
    """Number of sequences M."""
    length: int
    """Steps per sequence T (episode-end markers included)."""
    out: str
    """Output directory of the dataset (its task set goes to OUT/tasks); rerunning the same command resumes."""
    pipeline: str = dataclasses.field(default="omnirl", metadata={"names": PIPELINES})
    """Data pipeline (bandit pipelines need bandit tasks: --states 1)."""
    states: str | int = "16:64"
    """S or MIN:MAX: an observation space of MAX ids, the active states of each task drawn in [MIN, MAX]."""
    actions: int = 5
    """Actions of every task."""
    seed: int = 0
    """Sequence seed: sequence j uses the streams of (seed, j)."""
    task_seed: int = 0
    """Seed of the task set."""
    shard_size: int = DEFAULT_SHARD_SIZE
    """Sequences per shard (the unit of writing and resuming; the content does not depend on it)."""
    batch: int = DEFAULT_BATCH
    """Sequences simulated together per worker, across shards (memory grows with it)."""
    workers: int = 1
    """Worker processes (the dataset is bit-identical whatever the workers, batch or backend)."""
    backend: Literal[BACKENDS] = "local"
    """Where the workers run: a local process pool, or Ray (a local Ray instance, or a cluster with --ray-address)."""
    ray_address: str | None = None
    """Ray cluster address (default: start a local Ray)."""
    quiet: bool = False
    """No progress bar."""


@dataclasses.dataclass(frozen=True)
class ValidationOptions:
    """Seen-task and unseen-task validation sets for a dataset (VALDIR/seen and VALDIR/unseen)."""

    path: str = dataclasses.field(metadata=POSITIONAL)
    """The training dataset."""
    sequences: int
    """Sequences of each validation set."""
    out: str
    """Output directory VALDIR: one dataset per validation set in it."""
    batch: int = DEFAULT_BATCH
    """Sequences simulated together per worker (memory grows with it)."""
    workers: int = 1
    """Worker processes."""
    backend: Literal[BACKENDS] = "local"
    """Where the workers run: a local process pool, or a local Ray instance."""
    probe: bool = False
    """Also VALDIR/probe: the unseen tasks under one random policy per sequence (the in-context-RL probe)."""
    probes: str = ""
    """Comma-separated probe pipelines, each also written to VALDIR/NAME: random_probe, uniform_probe (uniform random
    behaviour), myopic_probe (uniform random behaviour, labels of the gamma-0 oracle)."""


@dataclasses.dataclass(frozen=True)
class VerifyOptions:
    """Recompute every shard checksum of a dataset and print the report."""

    path: str = dataclasses.field(metadata=POSITIONAL)
    """Dataset directory (holding manifest.json)."""
    json: bool = False
    """Print the report as JSON."""


def cmd_verify(a: VerifyOptions) -> int:
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


def cmd_generate(a: GenerateOptions) -> int:
    from omnirl._validate import check_disk, check_int
    from omnirl.data.generate import (DatasetSpec, check_backend, check_batch_memory, dataset_bytes,
                                      generate_dataset, load_task_set, task_set_bytes)
    from omnirl.tasks.taskset import parse_states
    S, min_states = parse_states(a.states)
    task_dir = tasks = None
    if a.tasks != "fresh":
        n_tasks = a.tasks
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


def cmd_validation(a: ValidationOptions) -> int:
    from omnirl.data.generate import make_validation_sets
    probes = [p.strip() for p in a.probes.split(",") if p.strip()]
    res = make_validation_sets(a.path, a.out, a.sequences, a.workers, a.backend, a.batch, probe=a.probe,
                               probes=probes)
    for name, m in res.items():
        print(f"{name}: {m['n_sequences']} sequences in {Path(a.out) / name}, content hash {m['content_hash']}")
    return 0


COMMANDS = {
    "generate": Command(GenerateOptions, cmd_generate),
    "validation": Command(ValidationOptions, cmd_validation),
    "verify": Command(VerifyOptions, cmd_verify),
}


def main(argv: list[str] | None = None) -> int:
    return run_command(PROG, __doc__, COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
