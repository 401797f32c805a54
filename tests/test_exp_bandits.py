"""experiments.bandits: the smoke preset end to end, its numbers and claims, and the command line."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from experiments import bandits as bx


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("bandits") / "run"
    assert bx.main(["--preset", "smoke", "--out", str(out), "--wandb-mode", "disabled"]) == 0
    return out, json.loads((out / "summary.json").read_text())


def test_smoke_summary_table_and_figure(smoke):
    out, summary = smoke
    settings = bx.PRESETS["smoke"]
    assert summary["experiment"] == "bandits" and summary["preset"] == "smoke"
    assert summary["finding"].strip() and summary["seconds"] > 0
    results = summary["results"]
    # one row per method, the model first; the numbers are the evaluation's own regret table
    assert [r["method"] for r in summary["table"]] == ["omnirl", "ucb1", "thompson", "uniform"]
    evaluation = json.loads((out / "eval" / "summary.json").read_text())
    by = {r["method"]: r for r in evaluation["regret"]}
    for row in summary["table"]:
        assert row["regret@100"] == pytest.approx(by[row["method"]]["regret@100"])
        assert row["score"] == pytest.approx(by[row["method"]]["regret_score"])
        curve = results["online"][row["method"]]["curve"]
        assert len(curve) == settings.eval_steps and curve[-1] == pytest.approx(row["regret"], rel=1e-4)
        assert np.all(np.diff(curve) >= -1e-6)  # cumulative regret never falls
    assert results["ratio_thompson_100"] == pytest.approx(by["omnirl"]["regret@100"] / by["thompson"]["regret@100"])
    # the reference's probe curve: below uniform and falling with context (it learns from the rewards)
    ref = results["probe_curve"]["reference"]
    assert len(ref) == len(results["probe_curve"]["all"]) == 16
    assert ref[-1] < ref[0] - 0.5 and ref[0] < math.log(settings.actions) + 0.05
    assert (out / "bandits.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "train" / "checkpoints" / "last.ckpt").is_file()
    assert set(results["cpu_seconds"]) == {"data", "train", "eval", "total"}


def test_smoke_claims_follow_the_numbers(smoke):
    _, summary = smoke
    results = summary["results"]
    probe, online, c = results["probe"], results["online"], results["claims"]
    uniform = math.log(bx.PRESETS["smoke"].actions)
    assert c["probe_below_uniform"] == (probe["model_q1"] - probe["model_q4"] > bx.CONTEXT_DROP
                                        and uniform - probe["model_q4"] > bx.CONTEXT_DROP)
    gain = (probe["model_q1"] - probe["model_q4"]) / (probe["reference_q1"] - probe["reference_q4"])
    assert probe["gain"] == pytest.approx(gain)  # validation's gain, from its quarter means
    assert probe["gain"] == results["history"][-1]["val/probe/gain"]
    assert c["gain_reached"] == (gain >= bx.MIN_GAIN)
    share = (uniform - probe["model_q4"]) / (uniform - probe["reference_q4"])
    assert probe["share_q4"] == pytest.approx(share) and c["share_reached"] == (share >= bx.MIN_GAIN)
    ratio = online["omnirl"]["regret"] / online["thompson"]["regret"]
    assert c["regret_close_to_thompson"] == (ratio <= bx.CLOSE_RATIO)
    assert f"{probe['model_q1']:.3f} -> {probe['model_q4']:.3f}" in summary["finding"]


def test_dataset_aggregation_rounds(tmp_path):
    from omnirl.data.store import read_manifest
    from omnirl.rundir import read_training

    out = tmp_path / "run"
    assert bx.main(["--preset", "smoke", "--out", str(out), "--wandb-mode", "disabled", "--dagger_rounds=2",
                    "--dagger_sequences=6", "--dagger_steps=2"]) == 0
    first = read_training(out / "train")
    for k in (1, 2):  # each round: the latest model plays, training goes on from its weights on all data so far
        _, header = read_manifest(out / "data" / f"dagger{k}")
        assert header.config["actor"]["kind"] == "model" and header.n_sequences == 6
        played_by = out / ("train" if k == 1 else "train_dagger1") / "checkpoints" / "last.ckpt"
        assert header.config["actor"]["checkpoint"] == str(played_by)
        config = read_training(out / f"train_dagger{k}")["run"]["config"]
        assert config["train"]["init_from"] == str(played_by) and config["train"]["max_steps"] == 2
        assert config["data"]["train"] == [first["run"]["config"]["data"]["train"][0],
                                           *[str(out / "data" / f"dagger{i}") for i in range(1, k + 1)]]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["results"]["history"] == read_training(out / "train_dagger2")["history"]  # the last model's
    evaluation = json.loads((out / "eval" / "summary.json").read_text())
    assert evaluation["config"]["run"]["checkpoint"] == str(out / "train_dagger2" / "checkpoints" / "last.ckpt")


def test_bad_input_exits_2_before_writing(tmp_path, capsys):
    for arg, name in (("--pipeline=omnirl", "pipeline"), ("--data.window=2000", "length"), ("--actions=1", "actions"),
                      ("--model.reward_transform=log", "reward_transform"),
                      ("--data.policy_target=soft", "policy_target"), ("--decoding.own_tag=9", "own_tag"),
                      ("--decoding.t_final=-1", "t_final")):
        with pytest.raises(SystemExit) as e:
            bx.main(["--preset", "smoke", "--out", str(tmp_path / "x"), arg])
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert [line for line in err.splitlines() if line.startswith("error:") or ": error:" in line]
        assert name in err
    assert not (tmp_path / "x").exists()
