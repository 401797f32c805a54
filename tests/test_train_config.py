"""The training configuration: sections, overrides in the sweep-agent form, validation naming keys."""

import pytest

from omnirl.config import config_to_dict, load_config
from omnirl.train.config import TrainConfig


def test_defaults_and_sweep_style_overrides():
    cfg = load_config(TrainConfig, None, ["--model.backbone=mamba2", "--train.segment_len=128",
                                          "--data.validation={seen: a, unseen: b}", "--data.train=[x, y]"])
    assert cfg.model.backbone == "mamba2" and cfg.train.segment_len == 128
    assert cfg.data.validation == {"seen": "a", "unseen": "b"} and cfg.data.train == ("x", "y")
    model = cfg.model.build()
    assert model.backbone.name == "mamba2" and model.layout == "compact"
    assert load_config(TrainConfig, None, [f"--{k}={v}" for k, v in
                                           {"model.layout": "paper"}.items()]).model.build().tokens_per_step == 5
    assert config_to_dict(cfg)["train"]["segment_len"] == 128


def test_action_rewards_reach_the_model():
    from omnirl.model.omnirl import OmniRL

    on = load_config(TrainConfig, None, ["--model.action_rewards=true"]).model.build()
    assert on.action_rewards and OmniRL(on).action_reward_embed.num_embeddings == on.n_actions + 2
    assert OmniRL(load_config(TrainConfig, None, []).model.build()).action_reward_embed is None


def test_heads_override_the_size_and_reach_the_model():
    import torch

    from omnirl.model.omnirl import OmniRL

    cfg = load_config(TrainConfig, None, ["--model.backbone=gdn", "--model.heads=8", "--model.head_dim=16"])
    backbone = cfg.model.build().backbone
    assert (backbone.heads, backbone.head_dim, backbone.dim) == (8, 16, 64)  # the width stays the size's
    default = load_config(TrainConfig, None, ["--model.backbone=gdn"]).model.build().backbone
    assert (default.heads, default.head_dim) == (2, 32)
    model = OmniRL(cfg.model.build())
    assert (model.backbone.blocks[0].mixer.heads, model.backbone.blocks[0].mixer.head_k) == (8, 16)
    B, T = 2, 6
    z = torch.zeros(B, T, dtype=torch.long)
    out, _ = model(z, z, z, z, torch.zeros(B, T))
    assert out["policy"].shape == (B, T, cfg.model.n_actions + 1)


@pytest.mark.parametrize("overrides, match", [
    (["--model.backbone=lstm"], "model: backbone must be one of"),
    (["--train.segment_len=0"], "train: segment_len must be >= 1"),
    (["--train.lr=fast"], '"train.lr": Expected a'),
    (["--train.segmentlen=5"], "'train' does not accept option 'segmentlen'"),
    (["--data.window=64", "--train.segment_len=128"], "data.window=64 must be >= train.segment_len=128"),
    (["--logging.wandb_mode=cloud"], "wandb_mode"),
    (["--model.heads=0"], "heads must be >= 1"),
])
def test_bad_config_names_the_key(overrides, match):
    with pytest.raises(ValueError, match=match.replace(".", r"\.").replace("'", "'")):
        load_config(TrainConfig, None, overrides)
