"""The training entry point runs for real on tiny data; the shipped configs load and validate."""

import json
from pathlib import Path

import pytest
import torch

from omnirl.config import config_from_dict, load_config
from omnirl.data.generate import DatasetSpec, generate_dataset, make_validation_sets
from omnirl.train.__main__ import main as train_main
from omnirl.train.__main__ import wandb_mode
from omnirl.train.config import TrainConfig

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "experiments" / "configs").glob("*.yaml"))


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    spec = DatasetSpec(pipeline="omnirl", n_sequences=12, length=160, n_obs=16, n_actions=5, seed=0,
                       shard_size=6)
    generate_dataset(spec, root / "train")
    make_validation_sets(root / "train", root / "val", 4)
    return root


def test_train_entry_point_runs(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    args = [f"--data.train=[{tiny_data / 'train'}]", f"--data.validation={{unseen: {tiny_data / 'val' / 'unseen'}}}",
            "--data.window=128", "--data.batch_size=4", "--train.segment_len=32", "--train.max_steps=4",
            "--train.val_every=2", f"--logging.out_dir={tmp_path / 'run'}", "--model.backbone=mamba2"]
    assert train_main(args) == 0
    assert any((tmp_path / "run").rglob("*.ckpt"))
    # the reference (on by default) is logged beside the model's curves
    rows = [json.loads(line) for line in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    val = [r for r in rows if "val/unseen/policy_loss" in r]
    assert len(val) == 2
    for key in ("reference_policy_loss", "reference_policy_loss_first_quarter", "reference_policy_loss_last_quarter",
                "policy_loss_first_quarter", "gain", "next_state_loss_reference_pair",
                "next_state_loss_reference_state", "reward_loss_reference_pair", "reward_loss_reference_state"):
        assert f"val/unseen/{key}" in val[-1], key
    assert 0.0 < val[-1]["val/unseen/reference_policy_loss"] < 1.7
    assert val[0]["val/unseen/reference_policy_loss"] == val[-1]["val/unseen/reference_policy_loss"]
    curves = json.loads((tmp_path / "run" / "position_curves.json").read_text())["curves"]["unseen"]
    assert {"reference", "world/next_state/reference_pair", "world/reward/reference_state"} <= set(curves)


@pytest.mark.parametrize("quiet", [False, True])
def test_quiet_holds_back_lightning_console_output(quiet, tiny_data, tmp_path, monkeypatch, capfd):
    import logging

    monkeypatch.setenv("WANDB_MODE", "disabled")
    args = [f"--data.train=[{tiny_data / 'train'}]", f"--data.validation={{unseen: {tiny_data / 'val' / 'unseen'}}}",
            "--data.window=64", "--data.batch_size=2", "--train.segment_len=32", "--train.max_steps=2",
            "--train.val_every=2", f"--logging.out_dir={tmp_path / 'run'}", f"--logging.quiet={str(quiet).lower()}"]
    level = logging.getLogger("lightning.pytorch").level
    assert train_main(args) == 0
    out, err = capfd.readouterr()
    assert ("Params" in out + err) == (not quiet)  # the model summary
    assert logging.getLogger("lightning.pytorch").level == level  # restored
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()  # the same records either way


def test_bad_config_exits_2(capsys):
    assert train_main(["--train.segmentlen=5"]) == 2
    assert "train.segmentlen" in capsys.readouterr().err


def test_wandb_mode(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert wandb_mode("auto") == "offline"  # no credentials: offline, syncable later
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wandb_mode("auto") == "online"
    assert wandb_mode("disabled") == "disabled"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb_mode("online") == "disabled"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_load(path):
    cfg = load_config(TrainConfig, path)
    assert cfg.model.build().n_actions == cfg.model.n_actions
    assert path.read_text().startswith("# python -m omnirl.train --config")


def test_there_is_a_config():
    assert CONFIGS


def test_a_run_directory_holds_one_run(tiny_data, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    run = tmp_path / "run"
    args = [f"--data.train=[{tiny_data / 'train'}]", f"--data.validation={{unseen: {tiny_data / 'val' / 'unseen'}}}",
            "--data.window=64", "--data.batch_size=2", "--train.segment_len=32", "--train.val_every=2",
            f"--logging.out_dir={run}", "--logging.quiet=true"]
    assert train_main(args + ["--train.max_steps=2"]) == 0
    before = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    capsys.readouterr()
    # a fresh run into it is refused, and nothing in it changes
    assert train_main(args + ["--train.max_steps=4"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: logging.out_dir=") and "--train.resume=last" in err and err.count("\n") == 0
    assert {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    # resuming continues the same run and rewrites its last.ckpt (no last-v1.ckpt beside it)
    assert train_main(args + ["--train.max_steps=4", "--train.resume=last"]) == 0
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.ckpt"]
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 4
    steps = [json.loads(line)["step"] for line in (run / "history.jsonl").read_text().splitlines()]
    assert steps == [2, 4]


def test_help_lists_every_field_with_its_docstring(capsys):
    assert train_main(["--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    for option, doc in [("--train.segment_len", "gradients never cross a segment boundary"),
                        ("--model.backbone", "Backbone kind"), ("--data.verify_checksums", "Recompute every shard"),
                        ("--reference.learner.samples", ""), ("--logging.out_dir", "Run directory")]:
        assert option in out and doc in out, option


def test_print_config_writes_the_resolved_config(tmp_path, capsys):
    import yaml

    (tmp_path / "c.yaml").write_text("model:\n  backbone: gsa\ntrain:\n  lr: 0.002\n")
    assert train_main(["--config", str(tmp_path / "c.yaml"), "--train.lr=0.003", "--print_config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["backbone"] == "gsa" and printed["train"]["lr"] == 0.003
    assert printed["train"]["segment_len"] == 256  # the defaults too: the whole resolved config
    assert load_config(TrainConfig, tmp_path / "c.yaml", ["--train.lr=0.003"]) == \
        config_from_dict(TrainConfig, printed)
