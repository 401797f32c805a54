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

W&B: online when credentials are configured (``wandb login`` or ``WANDB_API_KEY``), otherwise
offline into ``<logging.out_dir>/wandb`` (upload later with ``wandb sync``); ``WANDB_MODE=disabled``
or ``--logging.wandb_mode=disabled`` turns it off.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def wandb_mode(requested: str) -> str:
    """``auto`` -> ``online`` with credentials, else ``offline``; ``WANDB_MODE`` wins when set."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if requested != "auto":
        return requested
    has_key = bool(os.environ.get("WANDB_API_KEY")) or (Path.home() / ".netrc").is_file() and \
        "api.wandb.ai" in (Path.home() / ".netrc").read_text(errors="ignore")
    return "online" if has_key else "offline"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m omnirl.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=None, help="YAML file (fields not set keep their defaults)")
    args, overrides = p.parse_known_args(argv)

    from omnirl.config import config_to_dict, load_config
    from omnirl.train.config import TrainConfig
    try:
        cfg = load_config(TrainConfig, args.config, overrides)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    import lightning as L
    from lightning.pytorch.loggers import WandbLogger

    from omnirl.train.data import OmniRLDataModule
    from omnirl.train.module import OmniRLModule

    out = Path(cfg.logging.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    L.seed_everything(cfg.train.seed, workers=True)
    data = OmniRLDataModule(cfg.data)
    module = OmniRLModule(cfg)
    module.val_names = list(data.val_names)
    mode = wandb_mode(cfg.logging.wandb_mode)
    logger = False
    if mode != "disabled":
        logger = WandbLogger(project=cfg.logging.wandb_project, save_dir=str(out), mode=mode,
                             config=config_to_dict(cfg))
    distributed = cfg.train.num_nodes > 1 or (isinstance(cfg.train.devices, int) and cfg.train.devices > 1)
    trainer = L.Trainer(accelerator="auto", devices=cfg.train.devices, num_nodes=cfg.train.num_nodes,
                        strategy="ddp" if distributed else "auto", max_steps=cfg.train.max_steps, logger=logger,
                        default_root_dir=str(out), precision=cfg.train.precision,
                        val_check_interval=cfg.train.val_every, check_val_every_n_epoch=None,
                        enable_progress_bar=sys.stderr.isatty(), log_every_n_steps=10)
    trainer.fit(module, datamodule=data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
