"""One DDP process of ``tests/test_train_ddp.py``, launched by ``torchrun --nproc-per-node=2``.

    python -m torch.distributed.run --nproc-per-node=2 tests/ddp_worker.py OUT_DIR

Each rank trains the same initial module for one optimiser step on its half of ``global_batch()``
(rank ``r`` gets sequences ``[r * B / 2, (r + 1) * B / 2)``) and writes ``OUT_DIR/rank{r}.pt``: the
gradients the optimiser is about to apply, the parameters after the step and the logged loss.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import lightning
import torch

from omnirl.train.config import DataSection, ModelSection, TrainConfig, TrainSection
from omnirl.train.module import OmniRLModule

S, A = 8, 4  # observed states, actions
B, T, L = 4, 64, 16  # global batch, window, segment (4 segments: 3 without gradient sync)
WORLD_SIZE = 2


def make_module() -> OmniRLModule:
    """The same initial module in every process; no clipping (the raw gradients are compared)."""
    torch.manual_seed(0)
    config = TrainConfig(model=ModelSection(backbone="gdn", size="tiny", n_obs=S, n_actions=A),
                         data=DataSection(window=T, batch_size=B // WORLD_SIZE),
                         train=TrainSection(segment_len=L, max_steps=1, lr=3e-3, warmup_steps=3,
                                            grad_clip=0.0, context_warmup=0))
    return OmniRLModule(config)


def global_batch() -> dict[str, torch.Tensor]:
    """Random valid steps without end markers (every step has loss weight 1, so both halves carry
    the same total weight and the mean of the two halves' mean losses is the global mean loss)."""
    g = torch.Generator().manual_seed(11)
    shape = (B, T + 1)
    obs = torch.randint(0, S, shape, generator=g)
    return {"obs": obs, "prompt": torch.randint(0, 8, shape, generator=g),
            "tag": torch.randint(0, 8, shape, generator=g), "action": torch.randint(0, A + 2, shape, generator=g),
            "label": obs % A, "reward": torch.randn(shape, generator=g),
            "start": torch.randint(0, 3 * T, (B,), generator=g)}


def loader(batch: dict[str, torch.Tensor]) -> torch.utils.data.DataLoader:
    """One batch of all of ``batch``'s sequences, in order."""
    n = len(batch["start"])
    return torch.utils.data.DataLoader([{k: v[i] for k, v in batch.items()} for i in range(n)],
                                       batch_size=n, shuffle=False)


class Record(lightning.Callback):
    """The gradients the optimiser is about to apply and the logged loss."""

    def __init__(self):
        self.grads, self.loss = None, None

    def on_before_optimizer_step(self, trainer, module, optimizer):
        self.grads = {n: p.grad.detach().clone() for n, p in module.named_parameters() if p.grad is not None}

    def on_train_batch_end(self, trainer, module, *args):
        self.loss = float(trainer.callback_metrics["train/loss"])


class HalfBatch(lightning.LightningDataModule):
    """This rank's half of ``global_batch()`` (known once the trainer has set up the processes)."""

    def train_dataloader(self):
        rank, half = self.trainer.global_rank, B // WORLD_SIZE
        return loader({k: v[rank * half:(rank + 1) * half] for k, v in global_batch().items()})


def trainer(devices: int, record: Record, **kwargs) -> lightning.Trainer:
    return lightning.Trainer(accelerator="cpu", devices=devices, max_steps=1, logger=False,
                             enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                             callbacks=[record], **kwargs)


def main(out_dir: Path) -> None:
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    module, record = make_module(), Record()
    fit = trainer(WORLD_SIZE, record, strategy="ddp", use_distributed_sampler=False)
    fit.fit(module, datamodule=HalfBatch())
    assert fit.world_size == WORLD_SIZE and fit.global_step == 1
    torch.save({"rank": fit.global_rank, "grads": record.grads, "loss": record.loss,
                "params": {n: p.detach().clone() for n, p in module.named_parameters()}},
               out_dir / f"rank{fit.global_rank}.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
