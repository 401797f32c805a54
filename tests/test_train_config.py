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


@pytest.mark.parametrize("overrides, match", [
    (["--model.backbone=lstm"], "model: backbone must be one of"),
    (["--train.segment_len=0"], "train: segment_len must be >= 1"),
    (["--train.lr=fast"], '"train.lr": Expected a'),
    (["--train.segmentlen=5"], "'train' does not accept option 'segmentlen'"),
    (["--data.window=64", "--train.segment_len=128"], "data.window=64 must be >= train.segment_len=128"),
    (["--logging.wandb_mode=cloud"], "wandb_mode"),
])
def test_bad_config_names_the_key(overrides, match):
    with pytest.raises(ValueError, match=match.replace(".", r"\.").replace("'", "'")):
        load_config(TrainConfig, None, overrides)
