"""``train.compile``: the compiled model trains to the same losses as the eager one and keeps the
eager model's weights and checkpoint keys."""

import lightning
import pytest
import torch

from omnirl.train.module import OmniRLModule
from tests.test_train_module import loader, make_batch, make_config, trainer

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")]


def test_compile_is_auto_by_default_and_must_be_a_bool_or_auto():
    assert make_config().train.compile == "auto"
    with pytest.raises(ValueError, match="compile must be true, false or 'auto', got 'yes'"):
        make_config(compile="yes")


@pytest.mark.parametrize("backbone, size, max_steps, cuda, compiler, expected", [
    ("rwkv7", "tiny", 300, False, True, True),      # faster per step and long enough to earn the compile back
    ("rwkv7", "tiny", 100, False, True, False),     # too short: the compile time is not earned back
    ("gdn", "tiny", 5000, False, True, False),      # its compiled step is no faster
    ("mamba2", "tiny", 340, False, True, True),
    ("gsa", "paper", 5000, False, True, False),     # measured on the tiny backbones only
    ("rwkv7", "tiny", 5000, True, True, False),     # not measured on GPUs
    ("rwkv7", "tiny", 5000, False, False, False),   # no C++ compiler for the CPU backend
])
def test_auto_compiles_where_the_whole_run_is_faster(monkeypatch, backbone, size, max_steps, cuda, compiler,
                                                     expected):
    import dataclasses
    import shutil

    from omnirl.train.config import COMPILE_BREAK_EVEN, use_compile

    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/c++" if compiler else None)
    cfg = make_config()
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, backbone=backbone, size=size),
                              train=dataclasses.replace(cfg.train, max_steps=max_steps))
    assert use_compile(cfg, cuda=cuda) is expected
    assert use_compile(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, compile=False)), cuda=cuda) is False
    assert use_compile(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, compile=True)), cuda=cuda) is True
    assert set(COMPILE_BREAK_EVEN) == {"rwkv7", "gsa", "mamba2"}


def test_compiled_module_keeps_the_eager_state_dict_keys():
    torch.manual_seed(0)
    eager = OmniRLModule(make_config())
    torch.manual_seed(0)
    compiled = OmniRLModule(make_config(compile=True))
    assert list(compiled.state_dict()) == list(eager.state_dict())
    for k, v in eager.state_dict().items():
        assert torch.equal(compiled.state_dict()[k], v)


@pytest.mark.slow
def test_compiled_training_gives_the_eager_losses():
    batches = [make_batch(seed) for seed in range(3)]
    losses = {}
    for compile_ in (False, True):
        torch.manual_seed(0)
        module = OmniRLModule(make_config(compile=compile_, max_steps=3))
        seen = []

        class Record(lightning.Callback):
            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                seen.append(float(trainer.callback_metrics["train/loss"]))

        trainer(3, callbacks=[Record()]).fit(module, loader(*batches))
        losses[compile_] = seen
    assert len(losses[True]) == 3
    assert losses[True] == pytest.approx(losses[False], rel=1e-4, abs=1e-5)
