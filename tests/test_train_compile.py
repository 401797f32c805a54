"""``train.compile``: the compiled model trains to the same losses as the eager one and keeps the
eager model's weights and checkpoint keys."""

import lightning
import pytest
import torch

from omnirl.train.module import OmniRLModule
from tests.test_train_module import loader, make_batch, make_config, trainer

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")]


def test_compile_is_off_by_default_and_must_be_a_bool():
    assert make_config().train.compile is False
    with pytest.raises(ValueError, match="compile must be true or false, got 'yes'"):
        make_config(compile="yes")


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
