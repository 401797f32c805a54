"""experiments.icrl_ladder: the smoke preset end to end, the curriculum, the claims, the command line."""

from __future__ import annotations

import json
import math

import pytest

from experiments import icrl_ladder as lx
from omnirl.data.store import read_manifest
from omnirl.rundir import read_training


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("ladder") / "run"
    assert lx.main(["--preset", "smoke", "--out", str(out), "--wandb-mode", "disabled"]) == 0
    return out, json.loads((out / "summary.json").read_text())


def test_every_rung_has_its_data_model_and_evaluation(smoke):
    out, summary = smoke
    settings = lx.PRESETS["smoke"]
    assert [r["rung"] for r in summary["table"]] == list(settings.rungs) == ["bandit", "contextual8"]
    for name in settings.rungs:
        rung = lx.RUNGS[name]
        _, header = read_manifest(out / "data" / name / "train")
        assert header.config["spec"]["pipeline"] == rung.pipeline and header.n_obs == rung.states
        run = read_training(out / "train" / name)
        assert run["run"]["config"]["model"]["n_obs"] == settings.n_obs == 8  # one network on every rung
        assert run["run"]["config"]["data"]["validation"] == {"unseen": str(out / "data" / name / "val" / "unseen")}
        evaluation = json.loads((out / "eval" / name / "summary.json").read_text())
        assert evaluation["config"]["run"]["envs"] == [rung.env]
        assert {r["method"] for r in evaluation["rows"]} == {lx.MODEL, *rung.baselines}
        assert evaluation["config"]["run"]["contextual_bandit"] == rung.contextual
        # asked online for the oracle its labels came from: the best immediate action on the contextual bandit
        assert evaluation["config"]["protocol"]["prompt"] == rung.prompt == (0 if rung.contextual else 3)
        # the contextual bandit's online play is scored by its immediate regret, UCB1 learning per state
        assert {r["method"] for r in evaluation["regret"]} == ({lx.MODEL, *rung.baselines} if rung.states == 1
                                                               or rung.contextual else set())
    # the curriculum: the second rung starts from the first rung's weights
    second = read_training(out / "train" / "contextual8")["run"]["config"]["train"]
    assert second["init_from"] == str(out / "train" / "bandit" / "checkpoints" / "last.ckpt")
    assert read_training(out / "train" / "bandit")["run"]["config"]["train"]["init_from"] is None
    assert (out / "icrl_ladder.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_probe_on_own_play(smoke):
    from omnirl.evaluate.rollouts import context_probe
    from omnirl.train.checkpoint import load_model

    out, summary = smoke
    for name, r in summary["results"]["per_rung"].items():
        checkpoint = out / "train" / name / "checkpoints" / "last.ckpt"
        played = out / "eval" / name / "own_play"
        _, head = read_manifest(played)
        _, probe_head = read_manifest(out / "data" / name / "val" / "unseen")
        assert head.config["spec"] == probe_head.config["spec"]  # the probe's tasks and seeds...
        assert head.config["actor"]["prompt"] == lx.RUNGS[name].prompt  # ...played by the model as online
        assert head.config["actor"]["own_tag"] == lx.PRESETS["smoke"].decoding.own_tag
        own = r["own_probe"]
        assert own == pytest.approx(context_probe(load_model(checkpoint), played), nan_ok=True)
        row = next(t for t in summary["table"] if t["rung"] == name)
        assert (row["own_q4"], row["own_share_q4"]) == (own["model_q4"], own["share_q4"])
        # scored as validation scores the probe: on the probe set itself, the same numbers as training's
        probe = context_probe(load_model(checkpoint), out / "data" / name / "val" / "unseen")
        for k in ("model_q1", "model_q4", "reference_q1", "reference_q4"):
            assert probe[k] == pytest.approx(r["probe"][k], rel=2e-3), (name, k)
        assert f"on its own play {own['model_q1']:.3f} -> {own['model_q4']:.3f}" in summary["finding"]


def test_claims_follow_the_numbers(smoke):
    _, summary = smoke
    for name, r in summary["results"]["per_rung"].items():
        p, c, m = r["probe"], r["claims"], r["online"][lx.MODEL]
        uniform = math.log(lx.PRESETS["smoke"].actions)
        assert c["probe_below_uniform"] == (p["model_q1"] - p["model_q4"] > lx.CONTEXT_DROP
                                            and uniform - p["model_q4"] > lx.CONTEXT_DROP)
        assert p["gain"] == r["history"][-1]["val/unseen/gain"]
        assert c["gain_reached"] == (p["gain"] >= lx.MIN_GAIN)
        assert c["online_above_random"] == (m["performance"] > 2 * m["se"])
        assert c["icrl_appears"] == all(v for k, v in c.items() if k != "icrl_appears")
        row = next(t for t in summary["table"] if t["rung"] == name)
        assert row["icrl"] == c["icrl_appears"] and row["online_q4"] == pytest.approx(m["performance"])
    reached = [n for n, r in summary["results"]["per_rung"].items() if r["claims"]["icrl_appears"]]
    assert summary["results"]["highest_rung"] == (reached[-1] if reached else None)
    assert f"Highest rung where it appears: {reached[-1] if reached else 'none'}." in summary["finding"]


def test_without_curriculum_every_rung_starts_afresh(tmp_path):
    out = tmp_path / "run"
    assert lx.main(["--preset", "smoke", "--out", str(out), "--wandb-mode", "disabled", "--curriculum=false",
                    "--rungs=[contextual8]", "--rung_steps=[2]"]) == 0
    assert read_training(out / "train" / "contextual8")["run"]["config"]["train"]["init_from"] is None
    assert not (out / "train" / "bandit").exists()


def test_the_first_rung_can_start_from_a_given_checkpoint(smoke, tmp_path):
    bandit = str(smoke[0] / "train" / "bandit" / "checkpoints" / "last.ckpt")
    out = tmp_path / "run"
    assert lx.main(["--preset", "smoke", "--out", str(out), "--wandb-mode", "disabled", "--curriculum=false",
                    "--rungs=[contextual8]", "--rung_steps=[2]", f"--train.init_from={bandit}"]) == 0
    assert read_training(out / "train" / "contextual8")["run"]["config"]["train"]["init_from"] == bandit
    summary = json.loads((out / "summary.json").read_text())
    assert summary["results"]["per_rung"]["contextual8"]["init_from"] == bandit


def test_another_training_pipeline_keeps_the_rungs_probe(tmp_path):
    out = tmp_path / "run"
    assert lx.main(["--preset", "smoke", "--out", str(out), "--wandb-mode", "disabled", "--curriculum=false",
                    "--rungs=[contextual8]", "--rung_steps=[2]", "--pipeline=myopic_mix"]) == 0
    _, header = read_manifest(out / "data" / "contextual8" / "train")
    assert header.config["spec"]["pipeline"] == "myopic_mix"
    val = read_training(out / "train" / "contextual8")["run"]["config"]["data"]["validation"]
    assert set(val) == {"unseen", "myopic_probe"}
    _, probe_header = read_manifest(val["myopic_probe"])
    assert probe_header.config["spec"]["pipeline"] == lx.RUNGS["contextual8"].pipeline == "myopic_probe"
    r = json.loads((out / "summary.json").read_text())["results"]["per_rung"]["contextual8"]
    assert r["probe"]["gain"] == r["history"][-1]["val/myopic_probe/gain"]  # the probe is the rung's own


@pytest.mark.parametrize("arg, named", [("--pipeline=nope", "pipeline"), ("--rungs=[mdp99]", "rungs"), ("--rung_steps=[4]", "rung_steps"),
                                        ("--rung_steps=[4, 3]", "rung_steps"), ("--data.window=2000", "length")])
def test_bad_input_exits_2_before_writing(arg, named, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        lx.main(["--preset", "smoke", "--out", str(tmp_path / "x"), arg])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "error:" in err[0] and named in err[0]
    assert not (tmp_path / "x").exists()
