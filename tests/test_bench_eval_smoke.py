"""Smoke test of the evaluation benchmark (benchmarks/bench_eval.py)."""

import pytest

from tests.helpers import run_bench


def test_bench_eval_quick(tmp_path):
    report = run_bench("bench_eval.py", ["--quick", "--cli-steps", "4"], tmp_path,
                       ("machine", "settings", "online", "cli", "context", "all_meet_target"), reference=False)
    s = report["settings"]
    assert s["quick"] is True and s["backbones"] == ["gdn"] and report["machine"]["torch"]

    (online,) = report["online"]
    assert online["backbone"] == "gdn" and online["envs"] == s["envs"] and online["parameters"] > 0
    assert online["env_steps_per_s"] > 0 and online["env_only_steps_per_s"] > online["env_steps_per_s"]
    assert 0 < online["model_share"] < 1 and online["step_ms"] > 0
    assert online["padded_env_steps_per_s"] > 0  # the previous decoding path, measured beside it
    assert online["decode_speedup"] == online["env_steps_per_s"] / online["padded_env_steps_per_s"]

    cli = report["cli"]  # the command line as a whole process, on the online workload, beside it
    assert cli["command"][1:4] == ["-m", "omnirl.evaluate", "--config"] and cli["backbone"] == "gdn"
    run = cli["config"]["run"]
    assert run["envs"] == ["anymdp16"] and run["n_envs"] == s["envs"] == cli["envs"] and run["baselines"] == []
    assert set(run) == {"checkpoint", "envs", "n_envs", "steps", "seed", "baselines", "out_dir", "wandb_mode"}
    assert cli["steps"] == s["cli_steps"] == 4 and cli["seconds"] > cli["evaluation_s"] > 0 and cli["startup_s"] > 0
    assert cli["env_steps_per_s"] == pytest.approx(s["envs"] * 4 / cli["seconds"])
    before, after = online["env_steps_per_s"], cli["online_env_steps_per_s_after"]  # pooled: between the two
    assert min(before, after) * (1 - 1e-9) <= cli["online_env_steps_per_s"] <= max(before, after) * (1 + 1e-9)
    n = s["envs"] * s["steps"]
    assert cli["online_env_steps_per_s"] == pytest.approx(2 * n / (online["acting_s"] + n / after))
    assert cli["ratio"] == pytest.approx(cli["online_env_steps_per_s"] / cli["env_steps_per_s"])
    assert cli["marginal_ratio"] is None or cli["marginal_ratio"] > 0
    assert cli["cpu_ratio"] > 0 and online["cpu_seconds"] > 0
    assert cli["target_ratio"] == 1.5 and cli["meets_target"] == (cli["ratio"] <= 1.5)

    (context,) = report["context"]
    rows = context["contexts"]
    assert [r["context"] for r in rows] == s["contexts"] and context["envs"] == s["context_envs"]
    assert rows[0]["runs"] == 2  # the shortest context runs before and after the others
    for r in rows:
        assert r["step_ms"] > 0 and r["prefill_s"] > 0 and r["prefill_steps_per_s"] > 0
    assert len({r["state_floats"] for r in rows}) == 1  # the state does not grow with the context
    ratio = context["ratio_longest_to_shortest"]
    assert ratio > 0 and context["target_ratio"] == 1.5 and context["meets_target"] == (ratio <= 1.5)
    assert report["all_meet_target"] == context["meets_target"]
    rec = context["recompute"]
    assert rec["context"] == s["recompute_context"] and rec["step_ms"] > 0
    assert context["speedup_vs_recompute"]["same_context"] > 0
