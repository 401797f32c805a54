"""Smoke test of the data-synthesis benchmark (benchmarks/bench_synthesis.py) against xenoverse."""

import pytest

from tests.helpers import run_bench

pytest.importorskip("xenoverse.anymdp", reason="the reference loop needs the `bench` extra")


def test_bench_synthesis_quick(tmp_path):
    args = ["--quick", "--states", "16", "--batch", "6", "--length", "40", "--distinct-tasks", "3",
            "--budget", "0.3", "--repeats", "2", "--memory-lengths", "16,64"]
    report = run_bench("bench_synthesis.py", args, tmp_path,
                       ("machine", "xenoverse_version", "settings", "warmup", "reference", "omnirl",
                        "ratio", "target_steps_per_s", "meets_target", "memory", "cli", "cli_ratio"))
    settings = report["settings"]
    assert settings["quick"] is True and settings["pipeline"] == "omnirl"
    assert (settings["states"], settings["actions"], settings["batch"], settings["length"]) == (16, 5, 6, 40)

    ref, ours = report["reference"], report["omnirl"]
    assert ref["labelled_steps_per_s"] > 0 and ref["steps"] > 0 and ref["seconds"] > 0
    assert len(ref["slices"]) == 2
    assert ours["labelled_steps_per_s"] > 0 and ours["seconds"] > 0
    assert ours["steps"] == 2 * 6 * 40 and len(ours["runs"]) == 2
    assert ours["construction_s"] >= 0
    excl = ours["labelled_steps_per_s_excluding_construction"]
    assert excl is None or excl >= ours["labelled_steps_per_s"]
    assert report["ratio"] == pytest.approx(ours["labelled_steps_per_s"] / ref["labelled_steps_per_s"])
    assert report["target_steps_per_s"] == 500_000
    assert isinstance(report["meets_target"], bool)

    cli = report["cli"]  # the command line as a whole process, on the same workload
    assert cli["command"][1:4] == ["-m", "omnirl.data", "generate"]
    assert "--batch" not in cli["command"] and "--shard-size" not in cli["command"]  # its defaults
    assert cli["same_sequences_as_ours"] is True
    assert cli["labelled_steps"] == 6 * 40 and cli["seconds"] > 0 and cli["cpu_seconds"] > 0
    assert cli["labelled_steps_per_s"] == pytest.approx(cli["labelled_steps"] / cli["seconds"])
    assert "6 sequences x 40 steps" in cli["stdout"]
    assert report["cli_ratio"] == pytest.approx(ours["labelled_steps_per_s"] / cli["labelled_steps_per_s"])
    assert report["cli_cpu_ratio"] == pytest.approx(cli["cpu_seconds"] / (ours["cpu_seconds"] / 2))
    assert report["cli_ratio_with_task_sampling"] == pytest.approx(
        report["omnirl_steps_per_s_with_task_sampling"] / cli["labelled_steps_per_s"])
    assert report["cli_ratio_with_task_sampling"] < report["cli_ratio"]
    assert report["cli_target_ratio"] == 1.5
    assert report["cli_meets_target"] == (report["cli_ratio_with_task_sampling"] <= 1.5)

    mem = report["memory"]
    assert mem["omnirl_before"]["peak_rss_mib"] > 0
    assert mem["omnirl_after"]["peak_rss_mib"] >= mem["omnirl_before"]["peak_rss_mib"]
    vs = mem["vs_length"]
    assert [p["length"] for p in vs["probes"]] == [16, 64]
    for p in vs["probes"]:
        assert p["batch"] == 6 and p["steps_per_s"] > 0 and p["peak_growth_mib"] >= 0
    assert isinstance(vs["memory_independent_of_length"], bool)
