"""benchmarks/compare_generators.py: omnirl's AnyMDP distribution against the reference generator."""

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import BENCHMARKS, run_bench


def _has_reference() -> bool:
    try:
        import xenoverse.anymdp  # noqa: F401
    except ImportError:
        return False
    return True


needs_reference = pytest.mark.skipif(not _has_reference(), reason="the reference generator needs the `bench` extra")

STATISTICS = ("sd_ratio", "sd_slope", "terminal_share", "steps_between_resets", "value_gap",
              "episode_length_random", "episode_length_oracle", "value_rank_spearman",
              "oracle_entropy", "reward_min", "reward_max", "draws", "tql_ucb_score", "random_score")


@needs_reference
def test_compare_generators_quick(tmp_path):
    md = tmp_path / "table.md"
    report = run_bench("compare_generators.py", ["--quick", "--sizes", "16", "--markdown", str(md)], tmp_path,
                       ("machine", "xenoverse_version", "settings", "statistics", "results", "all_agree"))
    assert report["settings"]["quick"] is True and report["settings"]["reference_tasks"] == [6]
    assert tuple(report["statistics"]) == STATISTICS
    (row,) = report["results"]
    assert row["S"] == 16 and row["A"] == 5
    assert row["generation_s_per_task"]["reference"] > 0 and row["generation_s_per_task"]["omnirl"] > 0
    for name in STATISTICS:
        c = row["statistics"][name]
        assert c["reference"]["tasks"] == 6 and c["omnirl"]["tasks"] == 24 or name.endswith("_score")
        for side in ("reference", "omnirl"):
            q = c[side]
            vals = [float(q[k]) for k in ("q10", "median", "q90")]  # "inf" parses as a float
            assert vals == sorted(vals)
        assert isinstance(c["agrees"], bool) and c["rule"] and 0.0 <= c["power"] <= 1.0
    assert row["statistics"]["draws"]["reference"]["median"] >= 1
    assert row["statistics"]["terminal_share"]["wide"] is True  # tasks without pitfalls: a 10% quantile of 0
    assert report["markdown"] == md.read_text()
    assert md.read_text().count("\n") == 2 + len(STATISTICS)


def test_power_tells_a_decided_verdict_from_a_median_between_two_modes():
    sys.path.insert(0, str(BENCHMARKS))
    from compare_generators import power

    rng = np.random.default_rng(0)
    narrow = rng.normal(10.0, 1.0, 1024)  # one mode: 256 reference tasks pin its median
    assert power("value_gap", 256, narrow, rng, draws=200) > 0.95
    # half the tasks near 5, half near 500: the median jumps between the modes from sample to sample
    two_modes = np.where(rng.random(1024) < 0.5, rng.normal(5.0, 0.5, 1024), rng.normal(500.0, 50.0, 1024))
    assert power("steps_between_resets", 256, two_modes, rng, draws=200) < 0.8


@needs_reference
def test_compare_generators_refuses_bad_input(tmp_path):
    out = tmp_path / "bench.json"
    cmd = [sys.executable, str(BENCHMARKS / "compare_generators.py"), "--sizes", "16,32", "--tasks", "8,8,8",
           "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=BENCHMARKS.parent)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: --tasks must hold one number or one per size (2), got 3"
    assert not out.exists()


@pytest.mark.slow
@needs_reference
def test_omnirl_tasks_are_distributed_like_the_reference(tmp_path):
    """A small version of the comparison: 256 reference tasks at S = 16 (fixed seeds). No statistic's
    distribution differs detectably (KS), and every median the reference resolves against itself at
    this size (its two halves agree) agrees with ours. The medians of the bimodal statistics (steps
    between resets, the random policy's episode length) need far more tasks: there the reference's
    halves disagree too."""
    out = tmp_path / "bench.json"
    cmd = [sys.executable, str(BENCHMARKS / "compare_generators.py"), "--sizes", "16", "--tasks", "256",
           "--budget", "2000", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=BENCHMARKS.parent)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    stats = report["results"][0]["statistics"]
    assert {k for k, c in stats.items() if c["ks"]["p"] < 1e-3} == set(), report["markdown"]
    resolved = {k for k, c in stats.items() if c["reference_halves"]["agrees"]}
    assert len(resolved) >= 10, report["markdown"]
    assert {k for k in resolved if not stats[k]["agrees"]} == set(), report["markdown"]
    assert report["all_agree"] == all(c["agrees"] for c in stats.values())
