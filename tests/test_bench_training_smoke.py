"""Smoke test of the training benchmark (benchmarks/bench_training.py)."""

import pytest
import torch

from tests.helpers import run_bench

BACKBONES = ("rwkv7", "gdn", "gsa", "mamba2")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    return run_bench("bench_training.py", ["--quick"], tmp_path_factory.mktemp("bench_training"),
                     ("machine", "settings", "dataset", "training", "memory", "loading", "cli", "compile", "gpu"), reference=False)


def test_settings_and_dataset(report):
    s = report["settings"]
    assert s["quick"] is True and s["threads"] == 1
    assert report["machine"]["torch"] and report["machine"]["lightning"] and report["machine"]["torch_threads"] == 1
    d = report["dataset"]
    assert (d["n_obs"], d["n_actions"]) == (16, 5) and d["sequences"] == s["sequences"]
    assert d["length"] > max(s["window"], *s["memory_lengths"])  # one extra step for the last target


def test_training(report):
    s = report["settings"]
    rows = {r["backbone"]: r for r in report["training"]}
    assert set(rows) == set(BACKBONES) and len(report["training"]) == len(BACKBONES)
    for r in rows.values():
        assert (r["batch"], r["window"], r["segment"]) == (s["batch"], s["window"], s["segment"])
        assert r["segments_per_step"] == -(-s["window"] // s["segment"]) >= 2  # truncation is exercised
        assert r["parameters"] > 0 and r["timed_steps"] == s["steps"] and r["skipped_steps"] == 0
        assert r["steps_per_s"] > 0 and r["tokens_per_s"] > 0 and r["loop_steps_per_s"] > 0
        assert r["tokens_per_s"] == pytest.approx(r["batch"] * r["window"] * r["steps_per_s"])
        assert r["steps_per_s"] == pytest.approx(1 / r["median_step_s"]) and r["min_step_s"] <= r["median_step_s"]
        assert r["median_step_cpu_s"] > 0 and r["cpu_share"] > 0


def test_memory(report):
    s, m = report["settings"], report["memory"]
    assert m["backbone"] == s["memory_backbone"] and m["segment"] == s["memory_segment"]
    assert [r["T"] for r in m["rows"]] == sorted(s["memory_lengths"]) and len(m["rows"]) >= 2
    for r in m["rows"]:
        tr, un = r["truncated"], r["untruncated"]
        assert (tr["T"], tr["segment"]) == (r["T"], s["memory_segment"])
        assert (un["T"], un["segment"], un["segments"]) == (r["T"], r["T"], 1)  # the control: one segment
        for x in (tr, un):
            assert x["peak_rss_mib"] > 0 and x["rss_before_mib"] > 0 and x["step_s"] > 0
            assert x["delta_mib"] == pytest.approx(x["peak_rss_mib"] - x["rss_before_mib"])
    deltas = [r["truncated"]["delta_mib"] for r in m["rows"]]
    ratio = m["ratio_largest_to_smallest_T"]
    if deltas[0] > 0:
        assert ratio == pytest.approx(deltas[-1] / deltas[0])
    else:
        assert ratio is None
    assert m["flat_ratio"] == 1.25
    assert m["flat"] == (ratio is not None and ratio <= m["flat_ratio"])
    assert m["untruncated_ratio_largest_to_smallest_T"] is None or m["untruncated_ratio_largest_to_smallest_T"] > 0


def test_loading(report):
    s, lo = report["settings"], report["loading"]
    assert [r["num_workers"] for r in lo["rows"]] == sorted(s["loader_workers"])
    for r in lo["rows"]:
        assert r["batches"] == s["loader_batches"] and r["batches_per_s"] > 0
        assert r["env_steps_per_s"] == pytest.approx(r["batches_per_s"] * s["batch"] * s["window"])
    fastest = max(report["training"], key=lambda r: r["tokens_per_s"])
    assert lo["fastest_training_backbone"] == fastest["backbone"]
    assert lo["ratio_to_training"] == pytest.approx(lo["rows"][0]["env_steps_per_s"] / fastest["tokens_per_s"])
    assert lo["target_ratio"] == 10.0
    assert lo["meets_target"] == (lo["ratio_to_training"] >= lo["target_ratio"])


def test_cli(report):
    s, c = report["settings"], report["cli"]
    assert c["command"][1:3] == ["-m", "omnirl.train"] and c["backbone"] == s["cli_backbone"]
    cfg = c["config"]  # the workload of the training section; everything else at its defaults
    assert (cfg["data"]["batch_size"], cfg["data"]["window"], cfg["train"]["segment_len"]) == (
        s["batch"], s["window"], s["segment"])
    assert cfg["train"]["max_steps"] == c["steps"] == s["cli_steps"]
    assert set(cfg["train"]) == {"segment_len", "max_steps", "seed"} and cfg["logging"]["wandb_mode"] == "offline"
    assert c["seconds"] > 0 and c["startup_s"] > 0 and c["cpu_seconds"] > 0  # two timings: either may be larger
    assert c["steps_per_s"] == pytest.approx(c["steps"] / c["seconds"])
    assert c["tokens_per_s"] == pytest.approx(c["steps_per_s"] * s["batch"] * s["window"])
    inner = next(r for r in report["training"] if r["backbone"] == c["backbone"])
    assert c["training_steps_per_s"] == inner["steps_per_s"]
    assert c["ratio"] == pytest.approx(inner["steps_per_s"] / c["steps_per_s"])
    if c["seconds"] > c["startup_s"]:
        assert c["marginal_steps_per_s"] == pytest.approx((c["steps"] - 1) / (c["seconds"] - c["startup_s"]))
    else:  # on a loaded machine the short run can take longer than the one-step run
        assert c["marginal_steps_per_s"] is None and c["marginal_ratio"] is None
    assert c["target_ratio"] == 1.5 and c["meets_target"] == (c["ratio"] <= 1.5)


def test_compile_and_gpu_sections_in_the_quick_run(report):
    assert report["settings"]["compile_backbones"] == []  # --quick compiles nothing by default
    assert report["compile"]["rows"] == [] and report["compile"]["adopted"] == []
    assert report["cli"]["compiled"] is None
    if not torch.cuda.is_available():
        assert report["gpu"] == {"skipped": "no CUDA device"}


@pytest.mark.slow
def test_compile_section(tmp_path):
    r = run_bench("bench_training.py", ["--quick", "--backbones", "gdn", "--compile-backbones", "gdn",
                                        "--loader-workers", "0", "--memory-lengths", "32,64"],
                  tmp_path, ("training", "compile", "cli"), reference=False, timeout=900)
    (row,) = r["compile"]["rows"]
    eager = r["training"][0]
    assert row["backbone"] == "gdn" and row["eager_median_step_s"] == eager["median_step_s"]
    assert row["speedup"] == pytest.approx(eager["median_step_s"] / row["compiled_median_step_s"])
    assert row["compile_s"] > 0 and row["losses_equal"] and row["max_loss_rel_diff"] <= r["compile"]["loss_rtol"]
    assert row["adopt"] == (row["speedup"] >= r["compile"]["target_speedup"])
    assert r["compile"]["adopted"] == (["gdn"] if row["adopt"] else [])
    c = r["cli"]["compiled"]
    assert c["seconds"] > 0 and c["speedup"] == pytest.approx(r["cli"]["seconds"] / c["seconds"])
