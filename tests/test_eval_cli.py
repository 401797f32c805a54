"""python -m omnirl.evaluate: tables, figures, arrays and summary for the model and the baselines,
reproducible under a seed; a checkpoint-free mode; errors name the bad value."""

import csv
import json

import numpy as np
import pytest
import torch

from omnirl.config import config_to_dict
from omnirl.evaluate.__main__ import EvaluateConfig, main
from omnirl.evaluate.protocols import ProtocolConfig
from omnirl.model.omnirl import OmniRL
from omnirl.train.config import ModelSection, TrainConfig

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    section = ModelSection(backbone="gdn", n_obs=16, n_actions=5)
    torch.manual_seed(0)
    model = OmniRL(section.build())
    path = tmp_path_factory.mktemp("ckpt") / "model.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
                "hyper_parameters": {"config": config_to_dict(TrainConfig(model=section))}}, path)
    return path


def run(tmp_path, *args):
    out = tmp_path / "out"
    code = main(["--run.n_envs=4", "--run.steps=120", f"--run.out_dir={out}", "--run.wandb_mode=disabled", *args])
    return code, out


def test_model_and_baselines_online(checkpoint, tmp_path, capsys):
    code, out = run(tmp_path, "--checkpoint", str(checkpoint), "--envs", "lake4x4,anymdp16,cliff",
                    "--protocol", "online", "--protocol.memory_steps=[0, 60]")
    assert code == 0
    printed = capsys.readouterr().out
    assert printed.startswith("| environment | method | performance")
    rows = list(csv.DictReader((out / "scores.csv").open()))
    pairs = {(r["environment"], r["method"]) for r in rows}
    assert pairs == {(e, m) for e in ("lake4x4", "anymdp16", "cliff") for m in ("tql_ucb", "ppo")} | \
        {("lake4x4", "omnirl"), ("anymdp16", "omnirl")}  # cliff (48 observation ids) is too big for a model reading 16
    summary = json.loads((out / "summary.json").read_text())
    assert "cliff" in summary["skipped"] and "48 observation ids" in summary["skipped"]["cliff"]
    assert summary["config"]["protocol"]["steps"] == 120
    for name in ("scores.md", "curves.png", "entropy.png"):
        assert (out / name).stat().st_size > 0
    episodes = np.load(out / "episodes.npz")
    assert episodes["lake4x4/omnirl/end_step"].max() <= 120
    memory = np.load(out / "memory.npz")
    assert memory["anymdp16/60"].shape[0] == 4 and str(memory["anymdp16/60/family"]) == "anymdp"
    first = (out / "scores.csv").read_text()

    code, out2 = run(tmp_path / "again", "--checkpoint", str(checkpoint), "--envs", "lake4x4,anymdp16,cliff",
                     "--protocol", "online", "--protocol.memory_steps=[0, 60]")
    assert code == 0 and (out2 / "scores.csv").read_text() == first  # reproducible under the seed


def test_the_command_line_does_not_import_lightning(checkpoint, tmp_path):
    """An evaluation records its provenance and W&B mode without importing Lightning (seconds of
    start-up it does not use)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "WANDB_MODE": "disabled"}
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "omnirl.evaluate", "--checkpoint", str(checkpoint),
                           "--envs", "anymdp16", "--run.n_envs=2", "--run.steps=5", "--run.baselines=[]",
                           f"--run.out_dir={tmp_path / 'out'}"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| anymdp16 | omnirl |" in done.stdout
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "torch" in imported and not {m for m in imported if m.split(".")[0] in ("lightning", "pytorch_lightning")}


def test_offline_protocol_runs_cql_on_matching_data(checkpoint, tmp_path):
    code, out = run(tmp_path, "--checkpoint", str(checkpoint), "--envs", "lake4x4", "--protocol", "offline",
                    "--protocol.demo_steps=100", "--cql.epochs=2")
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert {r["method"] for r in summary["rows"]} == {"omnirl", "cql"}


def test_checkpoint_free_mode(tmp_path):
    code, out = run(tmp_path, "--envs", "darkroom6", "--run.baselines=[tql_ucb]", "--run.steps=1500")
    assert code == 0
    rows = json.loads((out / "summary.json").read_text())["rows"]
    assert [(r["environment"], r["method"]) for r in rows] == [("darkroom6", "tql_ucb")]
    assert rows[0]["performance"] > 0


@pytest.mark.parametrize("args, match", [
    (["--suite", "atari"], "suite"),
    (["--envs", "lake9x9"], "envs"),
    (["--protocol", "sideways"], "protocol"),
    (["--checkpoint", "/no/such.ckpt"], "/no/such.ckpt"),
    (["--run.baselines=[dqn]"], "baselines"),
    (["--protocol.memory_steps=[0, 121]"], "memory_steps must be <= 120"),  # run.steps is 120
    (["--protocol.steps=50"], "protocol.steps=50 differs from run.steps=120"),
])
def test_bad_input_names_it(tmp_path, capsys, args, match):
    code, _ = run(tmp_path, *args)
    assert code == 2
    assert match in capsys.readouterr().err


def test_the_protocol_acts_for_the_runs_steps():
    from omnirl.config import config_from_dict

    cfg = config_from_dict(EvaluateConfig, {"run": {"steps": 4000}}, ["--protocol.memory_steps=[0, 1000, 4000]"])
    assert cfg.protocol.steps == 4000 and cfg.protocol.memory_steps == (0, 1000, 4000)  # beyond ProtocolConfig's 1000
    assert cfg.protocol_config().memory_steps == (0, 1000, 4000)
    assert config_from_dict(EvaluateConfig).protocol.steps == 2000  # RunSection's default


def test_cql_data_follows_the_protocol():
    cfg = EvaluateConfig(protocol=ProtocolConfig(protocol="offline", demo_steps=300, demo_policy="random"))
    cql = cfg.baseline_config("cql")
    assert (cql.behaviour, cql.dataset_steps) == ("random", 300)
    assert cfg.baselines() == ("cql",)
