"""Smoke test of the data-synthesis benchmark (benchmarks/bench_synthesis.py) against xenoverse."""

import pytest

from tests.helpers import run_bench

pytest.importorskip("xenoverse.anymdp", reason="the reference loop needs the `bench` extra")


def test_bench_synthesis_quick(tmp_path):
    args = ["--quick", "--states", "16", "--batch", "6", "--length", "40", "--distinct-tasks", "3",
            "--budget", "0.3", "--repeats", "2", "--memory-lengths", "16,64"]
    report = run_bench("bench_synthesis.py", args, tmp_path,
                       ("machine", "xenoverse_version", "settings", "warmup", "reference", "omnirl",
                        "ratio", "target_steps_per_s", "meets_target", "memory"))
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

    mem = report["memory"]
    assert mem["omnirl_before"]["peak_rss_mib"] > 0
    assert mem["omnirl_after"]["peak_rss_mib"] >= mem["omnirl_before"]["peak_rss_mib"]
    vs = mem["vs_length"]
    assert [p["length"] for p in vs["probes"]] == [16, 64]
    for p in vs["probes"]:
        assert p["batch"] == 6 and p["steps_per_s"] > 0 and p["peak_growth_mib"] >= 0
    assert isinstance(vs["memory_independent_of_length"], bool)
