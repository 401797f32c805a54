"""What the experiments share: the command line, the summary and ``main``.

Every experiment is a module ``experiments.NAME`` with a frozen dataclass of its settings (a
docstring per field; the training settings are ``TrainConfig``'s own sections) and ``PRESETS``,
partial configurations over it: ``smoke`` (the tests), ``laptop`` (the default, a 2-core CPU) and
``paper`` (GPU clusters). Its command line is

    python -m experiments.NAME [--preset laptop] [--out runs/NAME-laptop] [--seed 0]
                               [--wandb-mode auto|online|offline|disabled] [--field=value ...]

where ``--field=value`` overrides any field by its dotted name (``--train.max_steps=800``, the form
W&B sweep agents pass with ``${args}``); ``--help`` lists every field with the preset's value. The
run directory (``--out``, else ``omnirl.experiment.default_out``) holds the resumable steps of
``omnirl.experiment`` and ``summary.json`` (settings, results, table, figures and ``finding``, one
paragraph saying plainly what the run shows).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from omnirl._cli import Parser
from omnirl.experiment import default_out, write_summary
from omnirl.fileio import held_content
from omnirl.rundir import format_table

PRESET_NAMES = ("smoke", "laptop", "paper")


# --------------------------------------------------------------------------- command line
@dataclasses.dataclass(frozen=True)
class Invocation:
    """A parsed experiment command line."""

    preset: str
    """Preset name."""
    settings: Any
    """The preset's settings with the overrides applied."""
    out: Path
    """The run directory."""
    seed: int
    """Seed of everything the experiment draws."""
    wandb_mode: str
    """W&B mode of the experiment's own run and of its training runs."""


def parse(name: str, presets: Mapping[str, Any], argv: Sequence[str] | None, doc: str | None = None,
          default_preset: str = "laptop") -> Invocation:
    """Parse ``argv`` of experiment ``name`` with its ``presets`` (see the module docstring): the
    preset's settings are the defaults that ``--help`` lists and the dotted options override.
    Raises ``SystemExit(2)`` with a one-line message naming the bad value."""
    from omnirl.config import parse_command_line

    argv = list(sys.argv[1:] if argv is None else argv)
    prog = f"python -m experiments.{name}"
    pre = Parser(prog=prog, add_help=False)
    pre.add_argument("--preset", default=default_preset, choices=sorted(presets))
    preset = pre.parse_known_args(argv)[0].preset

    def options(p: Any) -> None:
        p.add_argument("--preset", default=default_preset, choices=sorted(presets),
                       help=f"settings preset, the defaults below (default {default_preset})")
        p.add_argument("--out", type=str, default=None, help=f"run directory (default runs/{name}-PRESET)")
        p.add_argument("--seed", type=int, default=0, help="seed of everything the experiment draws")
        p.add_argument("--wandb-mode", default="auto", choices=("auto", "online", "offline", "disabled"),
                       help="W&B mode of the experiment's run and of its training runs")

    base = presets[preset]
    settings, extra = parse_command_line(type(base), argv, prog=prog, description=doc, defaults=base, options=options)
    if extra["seed"] < 0:
        pre.error(f"--seed must be >= 0, got {extra['seed']}")
    out = Path(extra["out"]) if extra["out"] else default_out(name, preset)
    if out.exists() and not out.is_dir():
        pre.error(f"--out {str(out)!r} is an existing file, not a directory")
    held = held_content(out)
    if held is not None:  # a dataset, task set, training run or evaluation is not an experiment's directory
        pre.error(f"--out {str(out)!r} holds {held}; give the experiment a directory of its own")
    return Invocation(preset=preset, settings=settings, out=out, seed=extra["seed"], wandb_mode=extra["wandb_mode"])


# --------------------------------------------------------------------------- results
def finish(inv: Invocation, name: str, *, results: Mapping[str, Any], table: Sequence[Mapping[str, Any]],
           figures: Sequence[Path], finding: str, seconds: float) -> dict[str, Any]:
    """Write ``summary.json`` and the experiment's W&B run (``omnirl.experiment.write_summary``),
    print the table and the finding; returns the summary."""
    summary = write_summary(inv.out, name, preset=inv.preset, seed=inv.seed, settings=inv.settings, results=results,
                            table=table, figures=figures, finding=finding, seconds=seconds, wandb_mode=inv.wandb_mode)
    print(format_table(summary["table"]), end="")
    print(f"\n{finding}\n\nresults: {inv.out / 'summary.json'}")
    return summary


def main_of(name: str, presets: Mapping[str, Any], run: Callable[[Invocation], dict], doc: str | None):
    """The ``main(argv)`` of an experiment: parse, make the run directory, run, return 0."""
    def main(argv: Sequence[str] | None = None) -> int:
        inv = parse(name, presets, argv, doc)
        inv.out.mkdir(parents=True, exist_ok=True)
        run(inv)
        return 0
    return main


__all__ = ["PRESET_NAMES", "Invocation", "parse", "finish", "main_of"]
