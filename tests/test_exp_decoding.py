"""experiments.decoding: every temperature schedule and own-action tag evaluated on the same tasks."""

import json
from pathlib import Path

import pytest

from experiments import decoding

ASSET = Path(__file__).resolve().parent / "assets" / "tiny_gdn_anymdp16.pt"


@pytest.fixture(scope="module")
def summary(tmp_path_factory):
    out = tmp_path_factory.mktemp("decoding") / "run"
    assert decoding.main(["--preset", "smoke", f"--checkpoint={ASSET}", "--out", str(out),
                          "--wandb-mode", "disabled"]) == 0
    return json.loads((out / "summary.json").read_text()), out


def test_every_variant_on_every_environment(summary):
    s, out = summary
    settings = decoding.PRESETS["smoke"]
    variants = [decoding.variant_name(sch, tag) for sch in settings.schedules for tag in settings.own_tags]
    assert [(r["environment"], r["variant"]) for r in s["table"]] == [(e, v) for e in settings.envs for v in variants]
    for env in settings.envs:
        assert sum(r["best"] == "yes" for r in s["table"] if r["environment"] == env) == 1
        assert s["results"]["best"][env]["variant"] in variants
    bandit = [r for r in s["table"] if r["environment"] == "bandit5"]
    assert all(r["regret"] is not None and r["regret"] > 0 for r in bandit)
    best = min(bandit, key=lambda r: r["regret"])
    assert best["best"] == "yes"  # on bandits the lowest regret wins
    mdp = [r for r in s["table"] if r["environment"] == "anymdp16"]
    assert all(r["regret"] is None for r in mdp)
    assert max(mdp, key=lambda r: r["performance"])["best"] == "yes"


def test_anymdp_scored_as_a_contextual_bandit(tmp_path):
    out = tmp_path / "run"
    assert decoding.main(["--preset", "smoke", f"--checkpoint={ASSET}", "--out", str(out), "--wandb-mode", "disabled",
                          "--envs=[anymdp16]", "--schedules=[greedy]", "--own_tags=[7, 4]",
                          "--contextual_bandit=true", "--prompt=0"]) == 0
    s = json.loads((out / "summary.json").read_text())
    rows = {r["variant"]: r for r in s["table"]}
    for v, r in rows.items():  # the immediate regret is measured, and the score is made of it
        assert r["regret"] is not None and r["regret"] > 0
        evaluation = out / "eval" / v.replace("/tag", "-tag")
        assert json.loads((evaluation / "summary.json").read_text())["config"]["protocol"]["prompt"] == 0
        assert r["performance"] == pytest.approx(
            decoding.online_scores(evaluation, "anymdp16", "omnirl", 4, contextual=True)["performance"], nan_ok=True)
    assert min(rows.values(), key=lambda r: r["regret"])["best"] == "yes"


def test_each_variant_ran_with_its_temperature_and_tag(summary):
    s, out = summary
    for sch in ("constant", "greedy"):
        for tag in (7, 4):
            cfg = json.loads((out / "eval" / f"{sch}-tag{tag}" / "summary.json").read_text())["config"]["protocol"]
            assert cfg["own_tag"] == tag and cfg["prompt"] == 3  # the reference policy unless set
            expected = {"constant": (1.0, 1.0), "greedy": (0.0, 0.0)}[sch]
            assert (cfg["t_initial"], cfg["t_final"]) == expected
    greedy = [r for r in s["table"] if r["variant"].startswith("greedy") and r["environment"] == "bandit5"]
    constant = [r for r in s["table"] if r["variant"].startswith("constant") and r["environment"] == "bandit5"]
    assert greedy[0]["regret"] != constant[0]["regret"]  # the schedule reaches the sampler


def test_a_checkpoint_is_required_and_nothing_is_written_without_one(tmp_path, capsys):
    out = tmp_path / "run"
    assert decoding.main(["--preset", "smoke", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("python -m experiments.decoding: error: --checkpoint is required")
    assert not out.exists()


@pytest.mark.parametrize("arg, match", [("--checkpoint=/nonexistent.ckpt", "checkpoint"),
                                        ("--schedules=[\"cosine\"]", "schedules"),
                                        ("--own_tags=[9]", "own_tags"), ("--prompt=4", "prompt")])
def test_bad_settings_exit_2(tmp_path, capsys, arg, match):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as e:
        decoding.main(["--preset", "smoke", f"--checkpoint={ASSET}", arg, "--out", str(out)])
    assert e.value.code == 2 and match in capsys.readouterr().err and not out.exists()
