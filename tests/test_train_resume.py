"""Resuming: a run killed after step k and resumed from its ``last.ckpt`` continues with the same
per-step losses and ends with the same weights as an uninterrupted run (mid-epoch and at an epoch
boundary); a crash while a checkpoint is being written leaves the previous one loadable."""

import dataclasses
import os
from pathlib import Path

import lightning
import pytest
import torch

from omnirl.data.generate import DatasetSpec, generate_dataset
from omnirl.train import __main__ as entry
from omnirl.train import trainer as training
from omnirl.train.config import DataSection, LoggingSection, ModelSection, TrainConfig, TrainSection
from omnirl.train.data import OmniRLDataModule
from omnirl.train.module import OmniRLModule

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"),  # Lightning's advice (workers, ...)
              pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")]  # lightning vs torch 2.13

N = 6  # steps of a full run; 10 sequences in batches of 4 -> 3 batches (4, 4, 2) per epoch
TOL = 1e-6


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    spec = DatasetSpec(pipeline="omnirl", n_sequences=10, length=48, n_obs=16, n_actions=5, seed=0, shard_size=5)
    generate_dataset(spec, root / "train")
    return root / "train"


def make_config(data: Path, out: Path, val_every: int) -> TrainConfig:
    return TrainConfig(model=ModelSection(backbone="gdn", size="tiny", n_obs=16, n_actions=5),
                       data=DataSection(train=(str(data),), window=32, batch_size=4, seed=3),
                       train=TrainSection(segment_len=16, max_steps=N, lr=3e-3, warmup_steps=4, val_every=val_every,
                                          devices=1),
                       logging=LoggingSection(out_dir=str(out), wandb_mode="disabled"))


class Recording(OmniRLModule):
    """Records the logged training loss of every step (by global step)."""

    def __init__(self, config):
        super().__init__(config)
        self.losses: dict[int, float] = {}

    def log(self, name, value, *args, **kwargs):
        if name == "train/loss":
            self.losses[int(self.trainer.global_step)] = float(value)
        return super().log(name, value, *args, **kwargs)


class Crash(lightning.Callback):
    """Kills the run before training step ``at + 1``."""

    def __init__(self, at: int):
        self.at = at

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.at:
            raise RuntimeError("killed")


def run(cfg: TrainConfig, callbacks=(), ckpt_path=None, seed: int = 0) -> Recording:
    lightning.seed_everything(seed)
    module = Recording(cfg)
    trainer = training.build_trainer(cfg, callbacks=list(callbacks))
    trainer.fit(module, datamodule=OmniRLDataModule(cfg.data), ckpt_path=ckpt_path)
    return module


@pytest.fixture(scope="module")
def uninterrupted(tiny_data, tmp_path_factory):
    return run(make_config(tiny_data, tmp_path_factory.mktemp("full"), val_every=N))


@pytest.mark.parametrize("k", [2, 3, 4], ids=["mid-epoch-0", "epoch-end", "mid-epoch-1"])
def test_resume_matches_uninterrupted(tiny_data, tmp_path, uninterrupted, k):
    cfg = make_config(tiny_data, tmp_path / "run", val_every=k)
    with pytest.raises(RuntimeError, match="killed"):
        run(cfg, callbacks=[Crash(k)])
    last = tmp_path / "run" / training.CHECKPOINT_DIR / "last.ckpt"
    ckpt = torch.load(last, weights_only=False)
    assert ckpt["global_step"] == k
    assert ckpt["lr_schedulers"][0]["last_epoch"] == k  # the scheduler is checkpointed
    assert ckpt["optimizer_states"][0]["state"]  # so is AdamW's state
    assert ckpt["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [{"epoch": (k - 1) // 3,
                                                                           "batches": (k - 1) % 3 + 1}]
    assert "omnirl_rng" in ckpt and "omnirl_counters" in ckpt

    # a fresh process state: other seed, new module, new trainer, restored from the file
    resumed = run(cfg, ckpt_path=str(last), seed=123)
    assert sorted(resumed.losses) == list(range(k + 1, N + 1))
    diffs = [abs(resumed.losses[s] - uninterrupted.losses[s]) for s in resumed.losses]
    assert max(diffs) <= TOL, (resumed.losses, uninterrupted.losses)
    ref = uninterrupted.state_dict()
    for name, p in resumed.state_dict().items():
        torch.testing.assert_close(p, ref[name], rtol=0, atol=TOL, msg=name)
    assert resumed.tokens_seen == uninterrupted.tokens_seen == N * 4 * 32 - 2 * 2 * 32  # 2 short batches
    assert resumed.skipped_steps == uninterrupted.skipped_steps == 0
    assert resumed.lr_schedulers().last_epoch == N


def test_resume_last_from_entry_point(tiny_data, tmp_path, monkeypatch):
    """``--train.resume=last`` starts afresh without a checkpoint, and continues from one."""
    monkeypatch.setenv("WANDB_MODE", "disabled")
    out = tmp_path / "run"
    args = [f"--data.train=[{tiny_data}]", "--data.window=32", "--data.batch_size=4", "--train.segment_len=16",
            "--train.val_every=2", f"--logging.out_dir={out}", "--train.resume=last"]
    assert entry.main([*args, "--train.max_steps=2"]) == 0
    assert torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 2
    assert entry.main([*args, "--train.max_steps=4"]) == 0
    assert torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 4
    assert entry.main([*args[:-1], f"--train.resume={out / 'nope.ckpt'}"]) == 2


def test_crash_while_writing_keeps_previous_checkpoint(tmp_path, monkeypatch):
    io = training.AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"step": 1, "w": torch.arange(1000)}, path)

    def dying_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a checkpoint")
        f.flush()
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"step": 2, "w": torch.zeros(1000)}, path)
    monkeypatch.undo()
    ckpt = torch.load(path, weights_only=False)
    assert ckpt["step"] == 1 and torch.equal(ckpt["w"], torch.arange(1000))
    assert os.listdir(path.parent) == ["last.ckpt"]  # no temporary file left behind
    io.save_checkpoint({"step": 3}, path)
    assert torch.load(path, weights_only=False)["step"] == 3


def test_an_interrupt_while_a_checkpoint_is_written_stays_an_interrupt(tmp_path, monkeypatch):
    """Ctrl-C while ``torch.save`` writes makes its zip writer's clean-up raise a RuntimeError; the
    checkpoint writer re-raises the interrupt (so training ends as interrupted) and the previous
    checkpoint is untouched."""
    import contextlib

    import omnirl.fileio

    path = tmp_path / "last.ckpt"
    io = training.AtomicCheckpointIO()
    io.save_checkpoint({"step": 1}, path)
    before = path.read_bytes()
    real = omnirl.fileio.atomic_open

    class Interrupted:  # the temporary file, interrupted at its third write
        def __init__(self, f):
            self.f, self.writes = f, 0

        def write(self, data):
            self.writes += 1
            if self.writes == 3:
                raise KeyboardInterrupt
            return self.f.write(data)

        def __getattr__(self, name):
            return getattr(self.f, name)

    @contextlib.contextmanager
    def interrupted_open(p):
        with real(p) as f:
            yield Interrupted(f)

    monkeypatch.setattr(omnirl.fileio, "atomic_open", interrupted_open)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"step": 2, "w": torch.zeros(100_000), "v": torch.ones(100_000)}, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


def test_init_from_starts_with_the_checkpoint_weights(tiny_data, tmp_path):
    from omnirl.train import fit
    from omnirl.train.checkpoint import load_model

    first = make_config(tiny_data, tmp_path / "first", val_every=N)
    fit(first)
    source = load_model(tmp_path / "first")
    # a second run from those weights, with a learning rate too small to move them visibly
    warm = dataclasses.replace(first, logging=dataclasses.replace(first.logging, out_dir=str(tmp_path / "warm")),
                               train=dataclasses.replace(first.train, init_from=str(tmp_path / "first"), lr=1e-12,
                                                         max_steps=1, val_every=1, warmup_steps=0, seed=7))
    fit(warm)
    got = load_model(tmp_path / "warm").state_dict()
    assert all(torch.allclose(got[k], v, atol=1e-7) for k, v in source.state_dict().items())
    cold = dataclasses.replace(warm, logging=dataclasses.replace(warm.logging, out_dir=str(tmp_path / "cold")),
                               train=dataclasses.replace(warm.train, init_from=None))
    fit(cold)  # the same run without the warm start: other weights
    fresh = load_model(tmp_path / "cold").state_dict()
    assert not all(torch.allclose(fresh[k], v, atol=1e-3) for k, v in source.state_dict().items())

    other = dataclasses.replace(warm, model=dataclasses.replace(warm.model, backbone="rwkv7"),
                                logging=dataclasses.replace(warm.logging, out_dir=str(tmp_path / "other")))
    with pytest.raises(ValueError, match="train.init_from=.*not this run's model"):
        fit(other)
    assert not (tmp_path / "other" / "checkpoints").exists()
    with pytest.raises(ValueError, match="train.init_from"):
        fit(dataclasses.replace(other, train=dataclasses.replace(other.train, init_from=str(tmp_path / "none"))))


def test_init_from_a_network_with_fewer_observation_ids_grows_them(tmp_path):
    from types import SimpleNamespace

    from omnirl.config import config_to_dict
    from omnirl.model.omnirl import OmniRL

    small_cfg = TrainConfig(model=ModelSection(backbone="gdn", n_obs=8, n_actions=5))
    torch.manual_seed(0)
    small = OmniRL(small_cfg.model.build())
    path = tmp_path / "small.ckpt"
    torch.save({"hyper_parameters": {"config": config_to_dict(small_cfg)},
                "state_dict": {f"model.{k}": v for k, v in small.state_dict().items()}}, path)
    torch.manual_seed(1)
    big = OmniRL(ModelSection(backbone="gdn", n_obs=16, n_actions=5).build())
    fresh = {k: v.clone() for k, v in big.state_dict().items()}
    training.warm_start(SimpleNamespace(model=big), SimpleNamespace(train=SimpleNamespace(init_from=str(path))))
    got, theirs = big.state_dict(), small.state_dict()
    for k, v in theirs.items():
        if k not in training.OBS_ROWS:
            assert torch.equal(got[k], v), k
    emb = got["obs_embed.weight"]  # (17, D): ids 0-15 and the extra id 16
    assert torch.equal(emb[:8], theirs["obs_embed.weight"][:8]) and torch.equal(emb[16], theirs["obs_embed.weight"][8])
    assert torch.equal(emb[8:16], fresh["obs_embed.weight"][8:16])  # the new ids: this run's initialisation
    assert torch.equal(got["state_head.out.weight"][:8], theirs["state_head.out.weight"])
    assert torch.equal(got["state_head.out.bias"][8:], fresh["state_head.out.bias"][8:])
    # fewer ids than the checkpoint's, or another network, still do not fit
    with pytest.raises(ValueError, match="train.init_from=.*not this run's model"):
        training.warm_start(SimpleNamespace(model=OmniRL(ModelSection(backbone="gdn", n_obs=4, n_actions=5).build())),
                            SimpleNamespace(train=SimpleNamespace(init_from=str(path))))
    with pytest.raises(ValueError, match="train.init_from=.*not this run's model"):
        training.warm_start(SimpleNamespace(model=OmniRL(ModelSection(backbone="rwkv7", n_obs=16, n_actions=5).build())),
                            SimpleNamespace(train=SimpleNamespace(init_from=str(path))))
