"""fla's Triton kernels (the CUDA path) agree with our ops: run through Triton's interpreter on the
CPU in a fresh process (tests/kernels/compare_fla.py), with the exact calls the dispatcher makes."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

KERNELS = Path(__file__).resolve().parent / "kernels"

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("fla") is None or importlib.util.find_spec("triton") is None,
    reason="needs fla-core and triton (the fla-interpret extra, part of dev)")


@pytest.fixture(scope="module")
def report():
    proc = subprocess.run([sys.executable, str(KERNELS / "compare_fla.py")], capture_output=True, text=True,
                          timeout=600, cwd=KERNELS)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


@pytest.mark.parametrize("name", ["gdn", "simple_gla", "dplr", "gsa"])
def test_fla_kernels_match_our_ops(report, name):
    r = report[name]
    assert "error" not in r, r.get("error")
    assert r["chunk_out"] <= 2e-5 * max(1.0, r["scale"])  # chunk kernels: training and prefill
    assert r["chunk_state"] <= 1e-4
    assert r["chunk_grad"] <= 2e-3  # RWKV-7's safe-gate kernel is the loosest (~1e-3)
    assert r["step_out"] <= 1e-5 and r["step_state"] <= 1e-5  # fused-recurrent kernels: one step
