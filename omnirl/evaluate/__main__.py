"""Evaluate a trained model and the baselines on a suite of environments.

    python -m omnirl.evaluate --checkpoint runs/tiny/checkpoints/last.ckpt --suite anymdp --protocol online
    python -m omnirl.evaluate --checkpoint CKPT --suite gym --protocol offline --protocol.demo_steps=2000
    python -m omnirl.evaluate --suite gym --protocol online            # no checkpoint: baselines alone
    python -m omnirl.evaluate --config experiments/configs/eval.yaml --run.n_envs=64

Every field of ``EvaluateConfig`` can be set from a YAML file (``--config``) and overridden with
its dotted name (``--run.steps=4000``, ``--ppo.lr=3e-4``); ``--checkpoint``, ``--suite``,
``--envs`` and ``--protocol`` are shorthands for ``run.checkpoint``, ``run.suite``, ``run.envs``
and ``protocol.protocol``.

For every environment of the suite (or of ``run.envs``), the model (when a checkpoint is given)
runs the protocol on ``run.n_envs`` rows for ``run.steps`` acting steps, and every baseline of
``run.baselines`` (default: TQL-UCB and PPO for ``online``, and on bandits also UCB1, Thompson
sampling and uniform random; CQL for ``offline``; none for ``imitation``) runs on a fresh batch of
the same environment built from the same seed; the bandit baselines (``BANDIT_BASELINES``) are
skipped on other environments. CQL learns
from data of the same kind and amount the model gets in its context (``protocol.demo_policy``,
``protocol.demo_epsilon``, ``protocol.demo_steps``). Environments larger than the model's
observation or action vocabulary are skipped for the model (and listed in the summary).

Outputs in ``run.out_dir``: ``scores.csv`` and ``scores.md`` (the paper's Table-1 columns:
performance = mean normalised score of the episodes that ended in the last quarter of the run,
task-weighted, and gap-weighted; steps and episodes to reach 90% of it; raw return; reference
returns), ``curves.png`` (normalised score against steps in context, per environment and method),
``entropy.png`` (the model's policy entropy against step in context), ``episodes.npz`` (every
episode of every run), ``memory.npz`` (recurrent memory states at ``protocol.memory_steps``, with
their environment names and families, for t-SNE), and ``summary.json``. On bandit environments
(``bandit*``) every method is also measured by its expected cumulative regret
(``omnirl.evaluate.regret``): ``regret.csv`` and ``regret.md`` (cumulative regret after 100 and 500
pulls and at the end, with standard errors over rows, and the regret score, 0 for uniform random and
1 for the best arm throughout), ``regret.npz`` (every pull's expected regret, ``ENV/METHOD``
``(B, steps)``, and ``ENV/gap``: uniform random's regret per pull) and ``summary["regret"]``. The
same table, figures and summary go to a W&B run (offline without credentials, see ``omnirl.train.tracking.wandb_mode``).
A run is reproduced by its configuration and seed. The same run from Python:
``omnirl.evaluate.run(EvaluateConfig(...))`` (``omnirl.evaluate.evaluation``).
"""

from __future__ import annotations

import sys

from omnirl._cli import Parser, fail
from omnirl.evaluate.evaluation import REGRET_COLUMNS, EvaluateConfig, RunSection, run


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="python -m omnirl.evaluate", add_help=False)
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--suite", default=None)
    p.add_argument("--envs", default=None)
    p.add_argument("--protocol", default=None)
    args, overrides = p.parse_known_args(sys.argv[1:] if argv is None else argv)
    if args.checkpoint is not None:
        overrides.append(f"--run.checkpoint={args.checkpoint}")
    if args.suite is not None:
        overrides.append(f"--run.suite={args.suite}")
    if args.envs is not None:
        overrides.append(f"--run.envs=[{args.envs}]")
    if args.protocol is not None:
        overrides.append(f"--protocol.protocol={args.protocol}")
        if args.protocol != "online" and not any(o.startswith("--protocol.demo_steps") for o in overrides):
            overrides.append("--protocol.demo_steps=1000")

    from omnirl.config import parse_config

    try:
        cfg = parse_config(EvaluateConfig, overrides, prog="python -m omnirl.evaluate", description=__doc__)
    except SystemExit as e:  # --help, --print_config, or a one-line error
        return int(e.code or 0)
    try:
        summary = run(cfg)
    except (ValueError, OSError, KeyboardInterrupt) as e:
        return fail(e)
    from omnirl.evaluate.report import markdown
    print(markdown(summary["rows"]), end="")
    if summary["regret"]:
        print("\ncumulative regret (bandits):\n" + markdown(summary["regret"], REGRET_COLUMNS), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["EvaluateConfig", "RunSection", "main"]
