"""Smoke test of the backbone benchmark (benchmarks/bench_backbones.py)."""

import pytest

from tests.helpers import run_bench

for _module in ("fla.ops.simple_gla.naive", "fla.ops.gated_delta_rule.naive",
                "fla.ops.generalized_delta_rule.dplr.naive", "fla.ops.gsa.naive"):
    pytest.importorskip(_module, reason="fla's naive references are needed (fla-core)")

BACKBONES = ("rwkv7", "gdn", "gsa", "mamba2")


def test_bench_backbones_quick(tmp_path):
    report = run_bench("bench_backbones.py", ["--quick"], tmp_path,
                       ("machine", "settings", "backbones", "ops", "inference"), reference=False)
    assert report["settings"]["quick"] is True
    assert report["machine"]["torch"] and report["machine"]["fla-core"]

    rows = report["backbones"]
    assert {(r["preset"], r["backbone"]) for r in rows} == {(p, b) for p in ("tiny", "paper") for b in BACKBONES}
    for r in rows:
        assert r["batch"] >= 1 and r["length"] >= 1 and r["parameters"] > 0
        assert r["tokens_per_s"] > 0 and r["tokens_per_s_median"] > 0 and r["best_s"] > 0

    ops = {r["mixer"]: r for r in report["ops"]}
    assert set(ops) == set(BACKBONES)
    for r in ops.values():
        for side in ("reference", "ours"):
            assert r[side]["fwd_ms"] > 0 and r[side]["bwd_ms"] > 0 and r[side]["total_ms"] > 0
        assert r["ratio"] > 0 and r["target_ratio"] == 5.0
        assert r["meets_target"] == (r["ratio"] >= r["target_ratio"])
        assert r["max_abs_diff_output"] < 1e-3  # both compute the same recurrence
    assert report["all_ops_meet_target"] == all(r["meets_target"] for r in ops.values())

    inference = {r["backbone"]: r for r in report["inference"]}
    assert set(inference) == set(BACKBONES)
    for r in inference.values():
        contexts = r["contexts"]
        assert [c["context"] for c in contexts] == sorted(report["settings"]["contexts"])
        for c in contexts:
            assert c["median_step_ms"] > 0 and c["prefill_s"] > 0 and c["state_bytes"] > 0
        assert len({c["state_bytes"] for c in contexts}) == 1  # the state does not grow
        assert r["ratio_longest_to_shortest"] > 0
