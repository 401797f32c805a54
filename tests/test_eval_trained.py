"""A model meta-trained on AnyMDP (the tiny config, 1,500 steps; tests/assets/README.md) imitates in
context: oracle demonstrations in its context raise its early score on unseen tasks above its
online score from the same states."""

from pathlib import Path

import pytest
import torch

from omnirl.train.checkpoint import load_model
from omnirl.evaluate.envs import make_batch
from omnirl.evaluate.protocols import imitation_gap

ASSET = Path(__file__).resolve().parent / "assets" / "tiny_gdn_anymdp16.pt"


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    return load_model(ASSET)


def test_the_trained_asset_is_an_anymdp_model(model):
    assert (model.config.n_obs, model.config.n_actions) == (16, 5)
    assert torch.load(ASSET, weights_only=True)["global_step"] >= 1500


def test_imitation_scores_above_online_early_in_the_context(model):
    imitation, online = imitation_gap(model, lambda: make_batch("anymdp16", 32, seed=7), steps=300, seed=0,
                                      demo_steps=1000, temperature=0.3)
    assert imitation > online + 0.05, (imitation, online)
