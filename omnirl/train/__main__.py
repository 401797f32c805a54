"""Meta-train an OmniRL model with segment-wise truncated back-propagation.

    python -m omnirl.train --config experiments/configs/tiny.yaml [--model.backbone=gdn ...]

Any configuration field can be overridden with its dotted name (``--train.segment_len=512``), the
form W&B sweep agents pass with ``${args}``.

Single GPU:
    python -m omnirl.train --config CONFIG
Several GPUs on one machine (DDP, one process per GPU; Lightning launches them):
    python -m omnirl.train --config CONFIG --train.devices=4
Several machines (torchrun on every node; or the same command under SLURM's srun):
    torchrun --nnodes=2 --nproc-per-node=8 --rdzv-backend=c10d --rdzv-endpoint=HOST:29500 \\
        -m omnirl.train --config CONFIG --train.devices=8 --train.num_nodes=2
    srun python -m omnirl.train --config CONFIG --train.devices=8 --train.num_nodes=2

Checkpoints: ``<logging.out_dir>/checkpoints/last.ckpt``, rewritten every ``train.val_every`` steps
(written to a temporary file, then renamed: a killed run leaves the previous one intact). It holds
everything a resumed run needs (weights, optimiser, scheduler, counters, data cursor, RNG states):
    python -m omnirl.train --config CONFIG --train.resume=last     # or --train.resume=PATH
gives the same subsequent losses as an uninterrupted run (``last``: start afresh if there is none).

W&B: online when credentials are configured (``wandb login`` or ``WANDB_API_KEY``), otherwise
offline into ``<logging.out_dir>/wandb`` (upload later with ``wandb sync``); ``WANDB_MODE=disabled``
or ``--logging.wandb_mode=disabled`` turns it off. Every run logs its config, provenance (git
commit and dirty flag, dataset manifest and task-set hashes), parameter count, steps/s and tokens/s,
and loss-vs-position tables; checkpoints become W&B artifacts when online. The run directory also
gets ``run.json``, ``history.jsonl`` and ``position_curves.json`` (``omnirl.train.tracking``).

The same run from Python: ``omnirl.train.fit(TrainConfig(...))`` (``omnirl.train.trainer``).
"""

from __future__ import annotations

import sys

from omnirl._cli import fail
from omnirl.train.tracking import wandb_mode  # noqa: F401  (part of this entry point's interface)


def main(argv: list[str] | None = None) -> int:
    from omnirl.config import parse_config
    from omnirl.train.config import TrainConfig
    from omnirl.train.trainer import fit

    try:
        cfg = parse_config(TrainConfig, argv, prog="python -m omnirl.train", description=__doc__)
    except SystemExit as e:  # --help, --print_config, or a one-line error
        return int(e.code or 0)
    try:
        fit(cfg)
    except (ValueError, OSError, KeyboardInterrupt) as e:  # bad input; a diverged run; Ctrl-C
        return fail(e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
