"""Command line for task sets.

    python -m omnirl.tasks generate --n 1000 --states 16:128 --actions 5 --seed 0 --out DIR --workers 2
    python -m omnirl.tasks show DIR
    python -m omnirl.tasks plot DIR --out DIR/plots

``--states 16:128`` means an observation space of 128 ids with the number of active states drawn
per task in [16, 128] (``--states 32``: exactly 32). ``generate`` streams shards to ``DIR`` with a
progress bar, resumes an interrupted run, and prints the manifest's content hash.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from omnirl._cli import Parser, run
from omnirl.tasks.samplers import GENERATORS


def _params(pairs: list[str]) -> dict:
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


def cmd_generate(a: argparse.Namespace) -> int:
    from omnirl.tasks.taskset import generate_to_disk, generation_spec, read_manifest
    spec = generation_spec(a.n, a.states, a.actions, a.seed, a.generator, a.shard_size, _params(a.param))
    out = generate_to_disk(spec, Path(a.out), workers=a.workers, progress=not a.quiet)
    m = read_manifest(out)
    print(f"{m['n_tasks']} tasks in {out} ({len(m['shards'])} shards), content hash {m['content_hash']}")
    return 0


def cmd_show(a: argparse.Namespace) -> int:
    from omnirl.tasks.stats import format_summary, summarize, task_properties
    from omnirl.tasks.taskset import TaskSet
    ts = TaskSet.load(a.path)  # verifies sizes, checksums and the content hash
    sub = ts if a.limit <= 0 or a.limit >= len(ts) else ts.sample(a.limit, seed=0)
    print(f"task set {a.path}: {len(ts)} tasks, content hash {ts.content_hash()} (verified)")
    print(f"made by: {json.dumps(ts.info, sort_keys=True)}")
    print(f"properties over {len(sub)} tasks:")
    print(format_summary(summarize(task_properties(t) for t in sub)))
    return 0


def cmd_plot(a: argparse.Namespace) -> int:
    from omnirl._validate import check_int
    from omnirl.tasks.plots import plot_stationary_distributions, plot_transition_kernel, save_figure
    from omnirl.tasks.taskset import PLOTS, TaskSet
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


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m omnirl.tasks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="sample a task set to a directory")
    g.add_argument("--n", type=int, required=True, help="number of tasks")
    g.add_argument("--states", default="16:128", help="S or MIN:MAX (observation space MAX)")
    g.add_argument("--actions", type=int, default=5)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--generator", default="anymdp", help=f"one of {sorted(GENERATORS)}")
    g.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="generator parameter, e.g. branching=2 for garnet (repeatable)")
    g.add_argument("--out", required=True)
    g.add_argument("--workers", type=int, default=1)
    g.add_argument("--shard-size", type=int, default=64)
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.set_defaults(fn=cmd_generate)
    s = sub.add_parser("show", help="verify a task set and print summary statistics")
    s.add_argument("path")
    s.add_argument("--limit", type=int, default=200, help="measure at most this many tasks (0: all)")
    s.set_defaults(fn=cmd_show)
    f = sub.add_parser("plot", help="save the kernel and stationary-distribution pictures (PNG)")
    f.add_argument("path")
    f.add_argument("--out", default=None, help="output directory (default PATH/plots)")
    f.add_argument("--index", type=int, default=0, help="task whose kernel is drawn")
    f.add_argument("--policy", default="random", choices=["random", "oracle"])
    f.add_argument("--max-tasks", type=int, default=64)
    f.set_defaults(fn=cmd_plot)
    return p


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
