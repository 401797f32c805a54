"""Smoke test of the task-generation benchmark (benchmarks/bench_tasks.py) against xenoverse."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("xenoverse.anymdp", reason="the reference generator needs the `bench` extra")

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_tasks.py"


def test_bench_tasks_quick(tmp_path):
    out = tmp_path / "bench.json"
    # a subprocess, so the script sets the BLAS thread variables before its own numpy import
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--sizes", "16", "--out", str(out)],
                          capture_output=True, text=True, timeout=120, cwd=SCRIPT.parent.parent)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert json.loads(out.read_text()) == report
    assert not list(tmp_path.glob("*.tmp"))

    for key in ("machine", "xenoverse_version", "settings", "warmup", "results", "all_targets_met"):
        assert key in report
    assert report["xenoverse_version"]
    for key in ("python", "numpy", "cpu_count"):
        assert report["machine"][key]
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
