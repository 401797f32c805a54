"""Command line for task sets.

    python -m omnirl.tasks generate --n 1000 --states 16:128 --actions 5 --seed 0 --out DIR --workers 2
    python -m omnirl.tasks show DIR
    python -m omnirl.tasks plot DIR --out DIR/plots

``--states 16:128`` means an observation space of 128 ids with the number of active states drawn
per task in [16, 128] (``--states 32``: exactly 32). ``generate`` streams shards to ``DIR`` with a
progress bar, resumes an interrupted run, and prints the manifest's content hash.

Every subcommand's ``--help`` lists its options with their docstrings; ``--config FILE`` reads
them from YAML by name (``shard_size: 64``), ``--print_config`` prints them resolved.
"""

import dataclasses
import json
import sys
from pathlib import Path

from omnirl.config import POSITIONAL, Command, run_command
from omnirl.tasks.samplers import GENERATORS

PROG = "python -m omnirl.tasks"


@dataclasses.dataclass(frozen=True)
class GenerateOptions:
    """Sample a task set to a directory (sharded, resumable), then print its content hash."""

    n: int
    """Number of tasks."""
    out: str
    """Output directory of the task set; rerunning the same command resumes."""
    states: str | int = "16:128"
    """S or MIN:MAX: an observation space of MAX ids, the active states of each task drawn in [MIN, MAX]."""
    actions: int = 5
    """Actions of every task."""
    seed: int = 0
    """Seed of the task set: task i uses the stream (seed, i)."""
    generator: str = dataclasses.field(default="anymdp", metadata={"names": GENERATORS})
    """Task generator."""
    param: tuple[str, ...] = dataclasses.field(default=(), metadata={"metavar": "KEY=VALUE"})
    """Generator parameter, e.g. branching=2 for garnet (repeatable; the value read as JSON, else as text)."""
    workers: int = 1
    """Worker processes."""
    shard_size: int = 64
    """Tasks per shard (the unit of writing and resuming)."""
    quiet: bool = False
    """No progress bar."""


@dataclasses.dataclass(frozen=True)
class ShowOptions:
    """Verify a task set and print summary statistics of its tasks' properties."""

    path: str = dataclasses.field(metadata=POSITIONAL)
    """Task set directory (holding manifest.json)."""
    limit: int = 200
    """Measure at most this many tasks (0: all)."""


@dataclasses.dataclass(frozen=True)
class PlotOptions:
    """Save the kernel and stationary-distribution pictures of a task set (PNG)."""

    path: str = dataclasses.field(metadata=POSITIONAL)
    """Task set directory."""
    out: str | None = None
    """Output directory (default PATH/plots)."""
    index: int = 0
    """Task whose transition kernel is drawn."""
    policy: str = "random"
    """Policy of the kernel picture: random (uniform) or oracle (greedy on the exact Q*)."""
    max_tasks: int = 64
    """Tasks (a sample of the set) in the stationary-distribution picture."""


def _params(pairs: tuple[str, ...]) -> dict:
    out = {}
    for p in pairs:
        if "=" not in p:
            raise ValueError(f"--param must be KEY=VALUE, got {p!r}")
        k, v = p.split("=", 1)
        try:
            out[k] = json.loads(v)
        except ValueError:
            out[k] = v
    return out


def cmd_generate(a: GenerateOptions) -> int:
    from omnirl.tasks.taskset import generate_to_disk, generation_spec, read_manifest
    spec = generation_spec(a.n, a.states, a.actions, a.seed, a.generator, a.shard_size, _params(a.param))
    out = generate_to_disk(spec, Path(a.out), workers=a.workers, progress=not a.quiet)
    m = read_manifest(out)
    print(f"{m['n_tasks']} tasks in {out} ({len(m['shards'])} shards), content hash {m['content_hash']}")
    return 0


def cmd_show(a: ShowOptions) -> int:
    from omnirl.tasks.stats import format_summary, summarize, task_properties
    from omnirl.tasks.taskset import TaskSet
    ts = TaskSet.load(a.path)  # verifies sizes, checksums and the content hash
    sub = ts if a.limit <= 0 or a.limit >= len(ts) else ts.sample(a.limit, seed=0)
    print(f"task set {a.path}: {len(ts)} tasks, content hash {ts.content_hash()} (verified)")
    print(f"made by: {json.dumps(ts.info, sort_keys=True)}")
    print(f"properties over {len(sub)} tasks:")
    print(format_summary(summarize(task_properties(t) for t in sub)))
    return 0


def cmd_plot(a: PlotOptions) -> int:
    from omnirl._validate import check_choice, check_int
    from omnirl.tasks.plots import POLICIES, plot_stationary_distributions, plot_transition_kernel, save_figure
    from omnirl.tasks.taskset import PLOTS, TaskSet
    check_choice("--policy", a.policy, POLICIES)
    check_int("--max-tasks", a.max_tasks, min_value=1)
    ts = TaskSet.load(a.path)
    if not 0 <= a.index < len(ts):
        raise ValueError(f"--index must be in [0, {len(ts)}), got {a.index}")
    out = Path(a.out) if a.out else Path(a.path) / PLOTS
    k = save_figure(plot_transition_kernel(ts[a.index], policy=a.policy), out / f"kernel_{a.index:05d}.png")
    sub = ts if len(ts) <= a.max_tasks else ts.sample(a.max_tasks, seed=0)
    d = save_figure(plot_stationary_distributions(list(sub), label=ts.info.get("generator")),
                    out / "stationary_distribution.png")
    print(f"wrote {k}\nwrote {d}")
    return 0


COMMANDS = {
    "generate": Command(GenerateOptions, cmd_generate),
    "show": Command(ShowOptions, cmd_show),
    "plot": Command(PlotOptions, cmd_plot),
}


def main(argv: list[str] | None = None) -> int:
    return run_command(PROG, __doc__, COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
