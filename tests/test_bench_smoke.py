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

    cli = row["cli"]  # the command line as a whole process, for the tasks the sampler timed
    assert cli["command"][1:4] == ["-m", "omnirl.tasks", "generate"]
    assert "--workers" not in cli["command"] and "--shard-size" not in cli["command"]  # its defaults
    assert cli["tasks"] == row["omnirl_tasks"] and cli["same_tasks_as_sampler"] is True
    assert cli["seconds"] > 0 and cli["cpu_seconds"] > 0 and cli["shards"] >= 1
    assert f"{cli['tasks']} tasks in" in cli["stdout"]
    assert row["cli_tasks_per_s"] == pytest.approx(cli["tasks"] / cli["seconds"])
    assert row["cli_ratio"] == pytest.approx(row["omnirl_tasks_per_s"] / row["cli_tasks_per_s"])
    assert row["omnirl"]["cpu_seconds"] > 0
    assert row["cli_cpu_ratio"] == pytest.approx(cli["cpu_seconds"] / row["omnirl"]["cpu_seconds"])
    assert row["cli_target_ratio"] == 1.5 and isinstance(row["cli_meets_target"], bool)
    assert report["all_cli_targets_met"] == row["cli_meets_target"]
