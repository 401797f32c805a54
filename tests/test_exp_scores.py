"""experiments._scores and the cost records of omnirl.rundir: per-task scores of an
evaluation's episodes, resolved differences, and what reused steps cost."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from omnirl.rundir import record_cost
from experiments._scores import (context_improves, differs, episode_scores, immediate_scores, online_scores,
                                 paired_se, pm, trend)


@pytest.fixture
def episodes(tmp_path):
    """Three tasks, 100 steps: task 0 ends episodes at 10 (score 0) and 90 (score 1), task 1 at 95
    (score 0.5), task 2 none."""
    arrays = {"row": np.array([0, 0, 1]), "end_step": np.array([10, 90, 95]), "score": np.array([0.0, 1.0, 0.5]),
              "episode": np.array([0, 1, 0]), "raw_return": np.array([-3.0, 2.0, 1.0])}
    np.savez(tmp_path / "episodes.npz", **{f"anymdp16/m/{k}": v for k, v in arrays.items()})
    return tmp_path


def test_episode_scores(episodes):
    s = episode_scores(episodes, "anymdp16", "m", 3, steps=100, bins=4)
    assert s["performance"] == pytest.approx(0.75) and s["median"] == pytest.approx(0.75)
    assert s["per_task"][:2] == [1.0, 0.5] and math.isnan(s["per_task"][2])
    assert s["tasks"] == 2 and s["episodes"] == 3
    assert s["se"] == pytest.approx(np.std([1.0, 0.5], ddof=1) / np.sqrt(2))
    assert s["first_quarter"] == pytest.approx(0.0) and math.isnan(s["first_quarter_se"])  # one task
    assert s["curve_steps"] == [12.5, 37.5, 62.5, 87.5]
    assert s["curve"][0] == 0.0 and s["curve"][3] == pytest.approx(0.75) and math.isnan(s["curve"][1])
    # Table 2 columns: episodes 0-19 and the last 20 reached (every episode here), per task then mean
    assert s["raw_early"] == pytest.approx(np.mean([(-3.0 + 2.0) / 2, 1.0]))
    assert s["raw_late"] == pytest.approx(s["raw_early"]) and s["late_window"] == 1
    assert math.isnan(s["gap_weighted"])  # no evaluation summary here


def test_episode_scores_reads_steps_and_gap_weighted_from_the_summary(episodes):
    summary = {"config": {"run": {"steps": 200}},
               "rows": [{"environment": "anymdp16", "method": "m", "gap_weighted": 0.4}]}
    (episodes / "summary.json").write_text(json.dumps(summary))
    s = episode_scores(episodes, "anymdp16", "m")
    assert s["gap_weighted"] == 0.4
    assert math.isnan(s["performance"]) and s["tasks"] == 0  # no episode ends after step 150
    assert s["first_quarter"] == 0.0  # the episode ending at step 10
    assert len(s["per_task"]) == 2  # rows up to the last that finished an episode
    assert s["curve_steps"][-1] == pytest.approx(200 - 200 / 16)  # 8 bins of 200 steps


def test_immediate_scores(tmp_path):
    """Two tasks, 8 steps: task 0 pays no regret in the last quarter (score 1), task 1 the uniform
    policy's (score 0); the first quarter is the other way round for task 0."""
    regret = np.array([[1.0, 1.0, 0, 0, 0, 0, 0, 0], [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]])
    gap = np.array([[1.0] * 8, [0.5] * 8])
    np.savez(tmp_path / "regret.npz", **{"anymdp8/m": regret, "anymdp8/m/gap": gap})
    s = immediate_scores(tmp_path, "anymdp8", "m", bins=4)
    assert s["per_task"] == [1.0, 0.0] and s["performance"] == pytest.approx(0.5) and s["tasks"] == 2
    assert s["se"] == pytest.approx(np.std([1.0, 0.0], ddof=1) / np.sqrt(2))
    assert s["first_quarter"] == pytest.approx(0.0)  # both tasks at the uniform policy's regret
    assert s["curve_steps"] == [1.0, 3.0, 5.0, 7.0] and s["curve"] == pytest.approx([0.0, 0.5, 0.5, 0.5])
    assert s["gap_weighted"] == pytest.approx(1 - 1.0 / 3.0)  # regret 0 + 1 over gaps 2 + 1
    assert online_scores(tmp_path, "anymdp8", "m", contextual=True, bins=4) == s
    # a bandit's gap is stored once per task
    np.savez(tmp_path / "regret.npz", **{"bandit5/m": regret, "bandit5/gap": np.array([1.0, 0.5])})
    assert immediate_scores(tmp_path, "bandit5", "m", bins=4)["per_task"] == [1.0, 0.0]
    with pytest.raises(ValueError, match="lake4x4/m"):
        immediate_scores(tmp_path, "lake4x4", "m")


def test_episode_scores_errors_name_the_problem(episodes):
    with pytest.raises(ValueError, match="steps"):
        episode_scores(episodes, "anymdp16", "m")  # no summary to read the steps from
    with pytest.raises(ValueError, match="lake4x4/m"):
        episode_scores(episodes, "lake4x4", "m", steps=100)
    with pytest.raises(ValueError, match="bins"):
        episode_scores(episodes, "anymdp16", "m", steps=100, bins=0)


def test_differs_trend_paired_se_and_pm():
    assert differs({"performance": 0.5, "se": 0.1}, {"performance": 0.0, "se": 0.0}) == 1
    assert differs({"performance": 0.1, "se": 0.1}, {"performance": 0.0, "se": 0.0}) == 0
    assert differs({"performance": -0.5, "se": 0.1}, {"performance": 0.0, "se": 0.1}) == -1
    assert differs({"performance": math.nan, "se": 0.1}, {"performance": 0.0, "se": 0.1}) == 0
    assert differs({"raw": 3.0, "raw_se": 0.5}, {"raw": 1.0}, key="raw") == 1
    rising = {"performance": 0.8, "se": 0.05, "first_quarter": 0.2, "first_quarter_se": 0.05}
    assert differs(*trend(rising)) == 1 and differs(*reversed(trend(rising))) == -1
    assert paired_se([1.0, 2.0, math.nan], [0.0, 0.0, 1.0]) == pytest.approx(np.std([1.0, 2.0], ddof=1) / np.sqrt(2))
    assert math.isnan(paired_se([1.0], [0.0]))
    assert pm(0.514, 0.0321) == "0.51±0.03" and pm(0.5, None) == "0.50" and pm(math.nan, 0.1) == "-"


def test_record_cost_keeps_what_a_step_cost(tmp_path):
    cost, reused = record_cost(tmp_path, {"cpu_seconds": 12.5, "wall_seconds": 7})
    assert cost == {"cpu_seconds": 12.5, "wall_seconds": 7.0} and not reused
    assert record_cost(tmp_path, None) == (cost, True)  # found done: the recorded cost
    fresh = tmp_path / "never"
    fresh.mkdir()
    cost, reused = record_cost(fresh, None)
    assert reused and math.isnan(cost["cpu_seconds"]) and math.isnan(cost["wall_seconds"])


def test_context_improves():
    u = math.log(5)
    assert context_improves(1.6, 1.4, uniform=u, drop=0.05)
    assert not context_improves(1.9, 1.6, uniform=u, drop=0.05)  # falls, but only to the uniform guess
    assert not context_improves(1.45, 1.42, uniform=u, drop=0.05)  # below uniform, but no fall
    assert not context_improves(None, 1.0, uniform=u, drop=0.05) and not context_improves(1.6, math.nan, uniform=u,
                                                                                          drop=0.05)
