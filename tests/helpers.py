"""Shared builders for tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from omnirl.tasks import MDPTask


def small_task(P, R=None, noise=None, *, terminal=None, start_states=(0,), start_probs=(1.0,),
               max_steps=100, state_ids=None, n_obs=None) -> MDPTask:
    """A hand-made task from a transition array ``P[n, A, n]`` (zero rewards unless given)."""
    P = np.asarray(P, dtype=np.float64)
    n = P.shape[0]
    return MDPTask(
        n_obs=n if n_obs is None else n_obs, transition=P,
        reward=np.zeros_like(P) if R is None else R,
        reward_noise=np.zeros_like(P) if noise is None else noise,
        start_states=list(start_states), start_probs=list(start_probs),
        terminal=np.zeros(n, bool) if terminal is None else terminal, goal=None,
        max_steps=max_steps, state_ids=np.arange(n) if state_ids is None else state_ids,
        generator="test", params={}, seed=0)


def two_state_task() -> MDPTask:
    """Rank 0 --a0--> terminal rank 1 (reward 5); rank 0 --a1--> rank 0. Observed ids 4 and 2 of 6;
    episodes truncate after 3 steps."""
    P = np.zeros((2, 2, 2))
    P[0, 0, 1] = 1.0
    P[0, 1, 0] = 1.0
    R = np.zeros_like(P)
    R[0, 0, 1] = 5.0
    return small_task(P, R, terminal=np.array([False, True]), max_steps=3, state_ids=[4, 2], n_obs=6)


BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def run_bench(script: str, args: list[str], tmp_path: Path, keys: tuple[str, ...],
              reference: bool = True, timeout: float = 120) -> dict:
    """Run ``benchmarks/<script> *args --out tmp_path/bench.json`` and return its JSON report, checked
    for: exit 0, the same report in the ``--out`` file and no leftover temporary file, the top-level
    ``keys``, the xenoverse version (with a ``reference``) and the machine record."""
    out = tmp_path / "bench.json"
    # a subprocess, so the script sets the BLAS thread variables before its own numpy import
    cmd = [sys.executable, str(BENCHMARKS / script), *args, "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=BENCHMARKS.parent)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert json.loads(out.read_text()) == report
    assert not list(tmp_path.glob("*.tmp"))

    for key in keys:
        assert key in report
    if reference:
        assert report["xenoverse_version"]
    for key in ("python", "numpy", "cpu_count"):
        assert report["machine"][key]
    return report


def assert_help_lists_every_option(text: str, options: type) -> None:
    """``--help`` output ``text`` of a command of flat options (``omnirl.config.Command``) shows every
    field of the dataclass ``options`` as its option (``--task-seed``; a positional by name) with the
    field's docstring (compared without whitespace: the help wraps it)."""
    import dataclasses

    import docstring_parser

    docs = {d.arg_name: d.description for d in docstring_parser.parse_from_object(options).params}
    flat = "".join(text.split())
    for f in dataclasses.fields(options):
        name = f.name if f.metadata.get("positional") else "--" + f.name.replace("_", "-")
        assert f" {name}" in text, f"{name} is not in the help"
        assert docs.get(f.name) and "".join(docs[f.name].split()) in flat, f"the docstring of {name} is not in the help"
