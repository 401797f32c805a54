"""Smoke test of the evaluation benchmark (benchmarks/bench_eval.py)."""

from tests.helpers import run_bench


def test_bench_eval_quick(tmp_path):
    report = run_bench("bench_eval.py", ["--quick"], tmp_path,
                       ("machine", "settings", "online", "context", "all_meet_target"), reference=False)
    s = report["settings"]
    assert s["quick"] is True and s["backbones"] == ["gdn"] and report["machine"]["torch"]

    (online,) = report["online"]
    assert online["backbone"] == "gdn" and online["envs"] == s["envs"] and online["parameters"] > 0
    assert online["env_steps_per_s"] > 0 and online["env_only_steps_per_s"] > online["env_steps_per_s"]
    assert 0 < online["model_share"] < 1 and online["step_ms"] > 0
    assert online["padded_env_steps_per_s"] > 0  # the previous decoding path, measured beside it
    assert online["decode_speedup"] == online["env_steps_per_s"] / online["padded_env_steps_per_s"]

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
