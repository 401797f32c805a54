"""Smoke test of the token-layout comparison (benchmarks/compare_layouts.py)."""

from tests.helpers import run_bench


def test_compare_layouts_quick(tmp_path):
    report = run_bench("compare_layouts.py", ["--minutes", "0.03", "--sequences", "8", "--length", "64",
                                              "--segment", "32", "--batch", "4", "--eval-every", "1"],
                       tmp_path, ("machine", "settings", "results"), reference=False)
    paper, compact = report["results"]
    assert (paper["layout"], paper["tokens_per_step"]) == ("paper", 5)
    assert (compact["layout"], compact["tokens_per_step"]) == ("compact", 2)
    for r in (paper, compact):
        assert r["train_steps_per_s"] > 0 and len(r["curve"]) >= 2
        assert r["curve"][-1]["train_steps"] > 0 and r["final_val_ce"] > 0
