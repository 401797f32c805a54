"""``python -m experiments.task_difficulty``: the smoke preset end to end, its finding against its
numbers, and loud rejection of bad settings."""

from __future__ import annotations

import json

import numpy as np
import pytest

from experiments import task_difficulty as td


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("task_difficulty")
    assert td.main(["--preset", "smoke", "--out", str(out), "--wandb-mode", "disabled"]) == 0
    return out, json.loads((out / "summary.json").read_text())


def test_smoke_summary(smoke):
    out, s = smoke
    assert s["experiment"] == "task_difficulty" and s["preset"] == "smoke" and s["seed"] == 0
    settings = td.PRESETS["smoke"]
    assert s["settings"]["sizes"] == list(settings.sizes)
    families = ["anymdp", *(td.family_name(b) for b in settings.garnet_branching)]
    assert len(s["table"]) == len(settings.sizes) * len(settings.methods) * len(families)
    assert {(r["S"], r["method"], r["family"]) for r in s["table"]} == {
        (S, m, f) for S in settings.sizes for m in settings.methods for f in families}
    for name in ("learning_curves.png", "stationary_distribution.png"):
        assert name in s["figures"] and (out / name).stat().st_size > 1000
    res = s["results"]
    assert set(res) >= {"curves", "tasks", "comparisons", "stationary", "timing"}
    curve = res["curves"][f"anymdp/{settings.sizes[0]}/tql_ucb"]
    assert len(curve["steps"]) == settings.bins == len(curve["median"])
    assert len(res["tasks"][f"anymdp/{settings.sizes[0]}/ppo"]["auc"]) == settings.n_tasks
    assert len(res["comparisons"]) == len(settings.sizes) * len(settings.methods) * len(td.METRICS)
    assert res["timing"]["cpu_seconds"] > 0


def test_finding_follows_the_numbers(smoke):
    _, s = smoke
    res = s["results"]
    for c in res["comparisons"]:  # the verdict follows the interval
        if c["harder"] == "anymdp":
            assert c["high"] < 0
        elif c["harder"] == "unclear":
            assert c["low"] <= 0 <= c["high"] or not np.isfinite(c["difference"])
        else:
            assert c["low"] > 0
    # the table's numbers are the metrics of the per-task arrays
    row = s["table"][0]
    t = {k: np.asarray(v, dtype=float) for k, v in res["tasks"][f"{row['family']}/{row['S']}/{row['method']}"].items()
         if isinstance(v, list)}
    assert row["auc_median"] == pytest.approx(td.median_auc(t))
    assert row["final_gap_weighted"] == pytest.approx(td.gap_weighted(t))
    # the stationary-distribution sentence quotes the measured shares and states their order
    a, g = res["stationary"]["anymdp"], res["stationary"]["garnet_b2"]
    assert f"{100 * a['random']['bottom_half_mass']:.2g}% of the visits on AnyMDP" in s["finding"]
    if a["random"]["bottom_half_mass"] < g["random"]["bottom_half_mass"]:
        assert "the direction of the paper's Figure 2" in s["finding"]
    else:
        assert "unlike the paper's Figure 2" in s["finding"]
    if all(c["harder"] == "unclear" for c in res["comparisons"]):
        assert "neither reproduces nor contradicts" in s["finding"]


def test_curves_of_a_known_run():
    """Per-task binned scores and the gap-weighted score of a tiny hand-made episode record."""
    from omnirl.evaluate.envs.base import EnvInfo
    from omnirl.evaluate.records import Episodes

    info = EnvInfo(name="t", family="t", n_obs=2, n_actions=2, max_episode_steps=10, random_return=0.0,
                   oracle_return=2.0, exact=True)
    eps = Episodes(row=np.array([0, 0, 1]), episode=np.array([0, 1, 0]), end_step=np.array([2, 9, 9]),
                   length=np.array([2, 7, 9]), raw_return=np.array([0.0, 2.0, 1.0]),
                   shaped_return=np.zeros(3), score=np.array([0.0, 1.0, 0.5]), infos=(info, info), steps=10)
    x, scores, gap = td.task_curves(eps, 2)
    assert x.tolist() == [2.5, 7.5]
    assert np.allclose(scores, [[0.0, 1.0], [np.nan, 0.5]], equal_nan=True)
    assert np.allclose(gap, [0.0, 3.0 / 4.0])
    late = td.task_finals(eps)
    assert np.allclose(late["final"], [1.0, 0.5]) and td.gap_weighted(late) == pytest.approx(0.75)


@pytest.mark.parametrize("override, field", [
    ("--n_tasks=1", "n_tasks"),
    ("--sizes=[4]", "sizes"),
    ("--methods=[dqn]", "methods"),
    ("--garnet_branching=[99]", "garnet_branching"),
    ("--bogus=1", "bogus"),
])
def test_bad_overrides_are_rejected(override, field, capsys):
    with pytest.raises(SystemExit) as e:
        td.main(["--preset", "smoke", override])
    assert e.value.code == 2
    assert field in capsys.readouterr().err
