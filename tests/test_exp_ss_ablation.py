"""``python -m experiments.ss_ablation``: the smoke preset end to end (and resumed), its finding
against its numbers, bad settings, and ``sweeps/ss_ablation.yaml``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from experiments import ss_ablation as ss
from experiments._scores import differs

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("ss_ablation")
    assert ss.main(["--preset", "smoke", "--out", str(out), "--wandb-mode", "disabled"]) == 0
    return out, json.loads((out / "summary.json").read_text())


def test_smoke_summary(smoke):
    out, s = smoke
    settings = ss.PRESETS["smoke"]
    assert s["experiment"] == "ss_ablation" and s["preset"] == "smoke"
    assert s["settings"]["pipelines"] == list(settings.pipelines)
    protocols = settings.evaluation.protocols
    rows = [r for r in s["table"] if not r["pipeline"].startswith("(")]
    assert [(r["pipeline"], r["protocol"]) for r in rows] == [(p, q) for p in settings.pipelines for q in protocols]
    assert [r["pipeline"] for r in s["table"] if r["pipeline"].startswith("(")] == \
        [f"({b})" for b in settings.evaluation.baselines]
    for name in ("ss_ablation_scores.png", "ss_ablation_curves.png"):
        assert name in s["figures"] and (out / name).stat().st_size > 1000
    res = s["results"]
    for p in settings.pipelines:  # one dataset, model and evaluation per pipeline
        assert (out / "data" / p / "manifest.json").exists()
        assert (out / "train" / p / "done.json").exists()
        assert Path(res["training"][p]["checkpoint"]).exists()
        assert "val/unseen/policy_loss_first_steps" in res["training"][p]["validation"]
        for q in protocols:
            assert (out / "eval" / f"{p}-{q}" / "episodes.npz").exists()
            assert set(res["scores"][p][q]) >= {"performance", "se", "first_quarter", "curve"}
    # same tasks for every pipeline: the task sets are identical
    hashes = {json.loads((out / "data" / p / "tasks" / "manifest.json").read_text())["content_hash"]
              for p in settings.pipelines}
    assert len(hashes) == 1
    assert res["paper"]["figure6"]["values"] is None


def test_finding_follows_the_numbers(smoke):
    _, s = smoke
    res, settings = s["results"], ss.PRESETS["smoke"]
    for q in settings.evaluation.protocols:
        mean = res[f"mean_{q}"]
        vals = [res["scores"][p][q]["performance"] for p in settings.pipelines]
        assert mean == pytest.approx(np.nanmean([np.nan if v is None else v for v in vals]))
    # the online sentence follows the resolved comparison with random play
    scores = {p: {k: (math.nan if v is None else v) for k, v in res["scores"][p]["online"].items()
                  if k in ("performance", "se")} for p in settings.pipelines}
    above = [p for p in settings.pipelines if differs(scores[p], {"performance": 0.0, "se": 0.0}) > 0]
    if above:
        assert f"Online, {', '.join(above)} scored above random play" in s["finding"]
    else:
        assert "no model scored resolvably above random play" in s["finding"]
    # the demonstration gains are the score differences
    for p in settings.pipelines:
        for q, g in res["demonstration_gain"][p].items():
            d = res["scores"][p][q]["performance"] - res["scores"][p]["online"]["performance"]
            assert g["difference"] == pytest.approx(d)


def test_rerun_reuses_everything(smoke):
    out, s = smoke
    assert ss.main(["--preset", "smoke", "--out", str(out), "--wandb-mode", "disabled"]) == 0
    again = json.loads((out / "summary.json").read_text())
    settings, first, t = ss.PRESETS["smoke"], s["results"]["timing"], again["results"]["timing"]
    assert first["reused"] == []
    assert set(t["reused"]) == {f"train/{p}" for p in settings.pipelines} | {"eval/reference"} | {
        f"eval/{p}-{q}" for p in settings.pipelines for q in settings.evaluation.protocols}
    # what the reused steps cost is reported as recorded when they ran
    assert t["train_cpu_seconds"] == first["train_cpu_seconds"] and t["eval_cpu_seconds"] == first["eval_cpu_seconds"]
    assert t["cpu_seconds"] < first["cpu_seconds"]
    assert again["table"] == s["table"]


@pytest.mark.parametrize("override, field", [
    ("--pipelines=[foo]", "pipelines"),
    ("--pipelines=[ad, ad]", "pipelines"),
    ("--training.train.max_steps=0", "max_steps"),
    ("--training.data.window=32", "window"),
    ("--evaluation.env=anymdp32", "evaluation.env"),
    ("--evaluation.protocols=[online, bogus]", "protocols"),
    ("--dataset.states=abc", "states"),
    ("--nope=1", "nope"),
])
def test_bad_overrides_are_rejected(override, field, capsys):
    with pytest.raises(SystemExit) as e:
        ss.main(["--preset", "smoke", override])
    assert e.value.code == 2
    assert field in capsys.readouterr().err


def test_sweep_file(tmp_path, monkeypatch):
    import omnirl.sweep as sw
    from experiments._common import parse

    path = REPO / "sweeps" / "ss_ablation.yaml"
    s = sw.load_sweep(path)
    configs = sw.expand(s, seed=0)
    assert sorted(c["pipelines"][0] for c in configs) == sorted(ss.PIPELINE_NAMES)
    assert sw.check_parameters(s, ss.SSAblationSettings, configs=configs) == ["pipelines"]
    plan = sw.run_local(path, seed=0, out_dir=tmp_path, dry_run=True)
    assert plan["n_runs"] == len(ss.PIPELINE_NAMES)
    argv = plan["runs"][0]["argv"]
    assert argv[argv.index("-m") + 1] == "experiments.ss_ablation"
    # the command line a run gets parses into settings with that one pipeline, in the run's directory
    monkeypatch.setenv("OMNIRL_RUN_DIR", str(tmp_path / "run-0"))
    inv = parse("ss_ablation", ss.PRESETS, argv[argv.index("-m") + 2:])
    assert inv.settings.pipelines == tuple(configs[0]["pipelines"]) and inv.out == tmp_path / "run-0"
    assert s["metric"]["name"] == "results/mean_imitation"
