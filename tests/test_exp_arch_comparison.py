"""experiments.arch_comparison: the smoke preset end to end, the command line, the presets and the sweep file."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from experiments import _common
from experiments import arch_comparison as ac

ROOT = Path(__file__).resolve().parents[1]
SWEEP = ROOT / "sweeps" / "arch_comparison.yaml"
BACKBONES = ("rwkv7", "gdn", "gsa", "mamba2")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("arch_comparison") / "run"
    assert ac.main(["--preset", "smoke", "--out", str(out), "--wandb-mode", "disabled"]) == 0
    return out, json.loads((out / "summary.json").read_text())


def test_smoke_summary_table_and_figure(smoke):
    out, summary = smoke
    assert summary["experiment"] == "arch_comparison" and summary["preset"] == "smoke"
    assert summary["finding"].strip() and summary["seconds"] > 0
    settings = ac.PRESETS["smoke"]
    assert [row["backbone"] for row in summary["table"]] == list(BACKBONES)
    results = summary["results"]
    for row in summary["table"]:
        r = results["per_backbone"][row["backbone"]]
        run = json.loads((out / "train" / row["backbone"] / "run.json").read_text())
        assert row["params"] == r["parameters"] == run["parameters"]
        assert run["config"]["model"]["backbone"] == row["backbone"]
        # the same data and budget for every backbone
        assert run["config"]["data"]["train"] == [str(out / "data" / "train")]
        assert run["config"]["train"]["max_steps"] == settings.train.max_steps
        assert r["tokens_seen"] == settings.train.max_steps * settings.data.batch_size * settings.data.window
        assert row["env steps/CPU-s"] > 0 and r["tokens_per_cpu_s"] > 0 and r["cpu_share"] > 0
        assert row["unseen"] == r["unseen_policy_loss"] and math.isfinite(row["unseen"])
        assert len(r["curves"]["unseen"]["all"]) == 16
        assert [h["step"] for h in r["history"]] == [2, 4]
        # the Bayes-optimal reference and the gain beside the model's numbers
        assert row["ref Q1"] == r["unseen_reference_q1"] and math.isfinite(row["ref Q4"])
        assert row["gain"] == pytest.approx(r["history"][-1]["val/unseen/gain"], nan_ok=True)
    # parameter counts differ by backbone
    assert len({row["params"] for row in summary["table"]}) == 4
    assert summary["figures"] == ["arch_comparison.png"]
    assert (out / "arch_comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_smoke_finding_follows_the_numbers(smoke):
    _, summary = smoke
    results, finding, c = summary["results"], summary["finding"], summary["results"]["claims"]
    losses = {b: r["unseen_policy_loss"] for b, r in results["per_backbone"].items()}
    best, worst = min(losses, key=losses.get), max(losses, key=losses.get)
    assert c["ranking"] == sorted(losses, key=losses.get)
    assert (c["best"], c["worst"]) == (best, worst) and results["best_backbone"] == best
    assert results["best_unseen_policy_loss"] == losses[best]
    assert f"lowest {best} ({losses[best]:.3f} nats)" in finding
    spread = losses[worst] - losses[best]
    assert c["distinguishable"] == (spread >= ac.DISTINGUISHABLE)
    assert ("not told apart" in finding) == (not c["distinguishable"])
    uniform = math.log(ac.PRESETS["smoke"].actions)
    for b, r in results["per_backbone"].items():
        q1, q4 = r["unseen_random_q1"], r["unseen_random_q4"]
        expected = q1 is not None and q4 is not None and q1 - q4 > ac.CONTEXT_DROP and uniform - q4 > ac.CONTEXT_DROP
        assert c["random_steps_improve"][b] == expected
        p1, p4 = r["probe_all_q1"], r["probe_all_q4"]
        assert c["probe_improves"][b] == (p1 is not None and p4 is not None and p1 - p4 > ac.CONTEXT_DROP
                                          and uniform - p4 > ac.CONTEXT_DROP)
        assert f"{b} {p1:.3f} -> {p4:.3f}" in finding
    speeds = {b: r["tokens_per_cpu_s"] for b, r in results["per_backbone"].items()}
    assert c["fastest"] == max(speeds, key=speeds.get) and f"fastest {c['fastest']}" in finding


@pytest.mark.parametrize("override, named", [
    ("--backbones=[lstm]", "backbones"),
    ("--backbones=[]", "backbones"),
    ("--n_tasks=0", "n_tasks"),
    ("--train.segment_len=2048", "segment_len"),
    ("--nope=1", "nope"),
    ("--train.lr=-1", "lr"),
])
def test_cli_rejects_bad_overrides(override, named, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        ac.main([override, "--out", str(tmp_path / "never")])
    assert e.value.code == 2
    assert named in capsys.readouterr().err
    assert not (tmp_path / "never").exists()


def test_presets():
    assert set(ac.PRESETS) == set(_common.PRESET_NAMES)
    assert ac.PRESETS["laptop"].train == dataclasses.replace(ac.Settings().train, max_steps=300, warmup_steps=50,
                                                             val_every=100)
    for p in ac.PRESETS.values():
        assert p.backbones == BACKBONES
    assert ac.PRESETS["paper"].model.size == "paper" and ac.PRESETS["paper"].model.layout == "paper"
    inv = _common.parse("arch_comparison", ac.PRESETS, ["--backbones=['gsa']", "--preset=paper"])
    assert inv.settings == dataclasses.replace(ac.PRESETS["paper"], backbones=("gsa",))


def test_sweep_file_expands_to_real_fields_and_runs_in_smoke(tmp_path, monkeypatch):
    from omnirl.sweep import check_parameters, command_line, expand, load_sweep, run_local

    sweep = load_sweep(SWEEP)
    assert {"method", "metric", "parameters", "command"} <= set(sweep)
    assert sweep["command"] == ["${env}", "${interpreter}", "-m", "experiments.arch_comparison", "${args}"]
    configs = expand(sweep)
    assert len(configs) == 4 and sorted(c["backbones"][0] for c in configs) == sorted(BACKBONES)
    fields = [f.name for f in dataclasses.fields(ac.Settings)]
    assert check_parameters(sweep, ac.Settings, prefixes=fields, configs=configs) == ["backbones"]
    assert set(sweep["parameters"]) - set(fields) == {"preset"}
    for c in configs:
        argv = command_line(sweep, c)
        inv = _common.parse("arch_comparison", ac.PRESETS, argv[argv.index("experiments.arch_comparison") + 1:])
        assert inv.preset == "paper" and inv.settings.backbones == tuple(c["backbones"])

    monkeypatch.delenv("WANDB_MODE", raising=False)
    manifest = run_local(SWEEP, max_runs=1, out_dir=tmp_path, cwd=ROOT, out_dir_arg="--out", quiet=True,
                         extra_args=["--preset=smoke"])
    (entry,) = manifest["runs"]
    assert entry["exit_code"] == 0, (Path(entry["run_dir"]) / "sweep_run.log").read_text()[-3000:]
    assert entry["params"] == {"backbones": ["rwkv7"], "preset": "paper"}
    summary = json.loads((tmp_path / "run-0" / "summary.json").read_text())
    assert summary["preset"] == "smoke" and summary["settings"]["backbones"] == ["rwkv7"]
    assert entry["metric"] == summary["results"]["best_unseen_policy_loss"]
    assert [row["backbone"] for row in summary["table"]] == ["rwkv7"]
