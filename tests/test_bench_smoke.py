"""Smoke test of the task-generation benchmark (benchmarks/bench_tasks.py) against xenoverse."""

import pytest

from tests.helpers import run_bench

pytest.importorskip("xenoverse.anymdp", reason="the reference generator needs the `bench` extra")


def test_bench_tasks_quick(tmp_path):
    report = run_bench("bench_tasks.py", ["--quick", "--sizes", "16"], tmp_path,
                       ("machine", "xenoverse_version", "settings", "warmup", "results", "all_targets_met"))
    assert report["settings"]["quick"] is True
    assert report["warmup"]["xenoverse_compiled_during_timing"] is False

    (row,) = report["results"]
    assert row["S"] == 16 and row["A"] == 5
    assert row["xenoverse_tasks_per_s"] > 0 and row["omnirl_tasks_per_s"] > 0
    assert row["xenoverse_tasks"] >= 1 and row["omnirl_tasks"] >= 1
    assert row["ratio"] == pytest.approx(row["omnirl_tasks_per_s"] / row["xenoverse_tasks_per_s"])
    assert row["omnirl_mean_attempts"] >= 1
    assert row["target_ratio"] == 10.0
    assert isinstance(row["meets_target"], bool)
