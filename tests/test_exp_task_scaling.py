"""experiments.task_scaling: the smoke preset end to end, the command line, the presets and the sweep file."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from experiments import _common
from omnirl import experiment as steps
from experiments import task_scaling as ts

ROOT = Path(__file__).resolve().parents[1]
SWEEP = ROOT / "sweeps" / "task_scaling.yaml"


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("task_scaling") / "run"
    assert ts.main(["--preset", "smoke", "--out", str(out), "--wandb-mode", "disabled"]) == 0
    return out, json.loads((out / "summary.json").read_text())


def test_smoke_summary_table_and_figure(smoke, capsys):
    out, summary = smoke
    assert summary["experiment"] == "task_scaling" and summary["preset"] == "smoke" and summary["seed"] == 0
    settings = ts.PRESETS["smoke"]
    assert summary["settings"]["n_tasks"] == list(settings.n_tasks)
    assert summary["seconds"] > 0 and summary["finding"].strip()
    # one row per N, in order, with the numbers of results
    assert [row["N"] for row in summary["table"]] == sorted(settings.n_tasks)
    assert list(summary["table"][0])[:2] == ["N", "seq/task"]  # the printed column order, kept on disk
    results = summary["results"]
    assert sorted(results["per_n"], key=int) == [str(n) for n in sorted(settings.n_tasks)]
    for row in summary["table"]:
        r = results["per_n"][str(row["N"])]
        assert row["unseen"] == r["unseen_policy_loss"] and row["seen"] == r["seen_policy_loss"]
        assert row["gap"] == pytest.approx(r["unseen_policy_loss"] - r["seen_policy_loss"])
        assert row["TQL-UCB"] == results["tql_ucb"]["performance"]
        # validation against training step and against position, seen and unseen, by behaviour
        assert [h["step"] for h in r["history"]] == list(range(settings.train.val_every,
                                                                settings.train.max_steps + 1,
                                                                settings.train.val_every))
        for name in ("seen", "unseen", "probe"):
            assert set(r["curves"][name]) >= {"position", "all", "random", "oracle"}
            assert len(r["curves"][name]["all"]) == 16
        last = r["history"][-1]
        assert row["probe Q4"] == r["probe"]["model_q4"] == pytest.approx(
            last["val/probe/policy_loss_last_quarter"], nan_ok=True)
        assert row["probe ref Q1"] == pytest.approx(last["val/probe/reference_policy_loss_first_quarter"], nan_ok=True)
        # the Bayes-optimal reference beside the model: the same windows for every N
        first = results["per_n"][str(summary["table"][0]["N"])]
        for name in ("unseen", "probe"):
            assert r["curves"][name]["reference"] == first["curves"][name]["reference"]
        assert 0.0 < row["ref Q4"] < 2 * math.log(settings.actions) and row["ref Q1"] == r["unseen_reference_q1"]
        assert row["gain"] == pytest.approx(r["history"][-1]["val/unseen/gain"], nan_ok=True)
        assert row["probe gain"] == pytest.approx(r["history"][-1]["val/probe/gain"], nan_ok=True)
        assert len(r["online"]["curve"]) == ts.ONLINE_BINS
        assert len(r["online"]["per_task"]) == settings.eval_envs
    # the online numbers agree with the evaluation's own table
    evaluation = json.loads((out / "eval" / "n4" / "summary.json").read_text())
    (row,) = evaluation["rows"]
    assert row["method"] == "omnirl" and row["environment"] == "anymdp16"
    assert results["per_n"]["4"]["online"]["performance"] == pytest.approx(row["performance"], nan_ok=True)
    assert results["unseen_policy_loss"] == results["per_n"]["64"]["unseen_policy_loss"]
    # figure, training runs, cost accounting
    assert summary["figures"] == ["task_scaling.png"]
    assert (out / "task_scaling.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for n in settings.n_tasks:
        assert (out / "train" / f"n{n}" / "checkpoints" / "last.ckpt").is_file()
    assert set(results["cpu_seconds"]) == {"data", "train", "eval", "total"}


def test_smoke_finding_follows_the_numbers(smoke):
    _, summary = smoke
    results, finding = summary["results"], summary["finding"]
    per_n = [results["per_n"][k] for k in sorted(results["per_n"], key=int)]
    small, large = per_n[0], per_n[-1]
    c = results["claims"]
    # recompute the claims from the numbers
    assert c["smallest_memorised"] == (small["gap"] > ts.MEMORISED_GAP)
    assert c["largest_gap_closed"] == (large["gap"] < ts.CLOSED_GAP)
    uniform = math.log(ts.PRESETS["smoke"].actions)
    assert c["random_steps_improve"] == (large["unseen_random_q1"] - large["unseen_random_q4"] > ts.CONTEXT_DROP
                                         and uniform - large["unseen_random_q4"] > ts.CONTEXT_DROP)
    probe = large["probe"]
    assert c["probe_improves"] == (probe["model_q1"] - probe["model_q4"] > ts.CONTEXT_DROP
                                   and uniform - probe["model_q4"] > ts.CONTEXT_DROP)
    assert c["probe_gain_reached"] == (probe["gain"] >= ts.MIN_GAIN)
    assert f"{probe['model_q1']:.3f} -> {probe['model_q4']:.3f} nats" in finding
    online = large["online"]
    above = online["performance"] is not None and online["se"] is not None and \
        online["performance"] - 2 * online["se"] > 0
    assert c["online_above_random"] == above
    assert c["task_count_effect"] == (c["smallest_memorised"] and c["largest_gap_closed"])
    assert c["icrl_from_rewards"] == (c["probe_improves"] and c["probe_gain_reached"] and c["online_above_random"]
                                      and c["online_rises"])
    # and the text says what they say
    assert ("it memorised its training tasks" in finding) == c["smallest_memorised"]
    assert f"(gap {small['gap']:+.3f})" in finding
    assert ("this run shows the task-count effect" in finding) == c["task_count_effect"]
    shows_icrl = "it shows in-context RL from rewards" in finding
    assert shows_icrl == c["icrl_from_rewards"]
    if not c["icrl_from_rewards"]:
        assert "in-context RL from rewards" in finding  # says plainly that it does not show it
    # what the run shows, beside the paper's claim
    shown = (f"memorisation (fewest tasks) {'yes' if c['smallest_memorised'] else 'no'}; in-context imitation "
             f"{'yes' if c['oracle_steps_improve'] else 'no'}; in-context RL from rewards on unseen tasks "
             f"{'yes' if c['icrl_from_rewards'] else 'no'}")
    assert shown in finding and ts.PAPER_CLAIM in finding


def test_smoke_on_a_ladder_rung(tmp_path):
    """``world``: the bandit rung's tasks (S = 1) in nested task sets, its unseen set as the probe, online on
    its environment."""
    out = tmp_path / "run"
    assert ts.main(["--preset", "smoke", "--world", "bandit", "--n_tasks=[4]", "--train.max_steps=4",
                    "--out", str(out), "--wandb-mode", "disabled"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    (r,) = summary["results"]["per_n"].values()
    assert set(r["curves"]) == {"seen", "unseen"}  # no separate probe set
    assert r["probe"]["model_q4"] == pytest.approx(r["history"][-1]["val/unseen/policy_loss_last_quarter"])
    assert r["probe"]["reference_q4"] < math.log(5)  # the reference learns the best arm from the rewards
    evaluation = json.loads((out / "eval" / "n4" / "summary.json").read_text())
    assert {row["environment"] for row in evaluation["rows"]} == {"bandit5"}
    manifest = json.loads((out / "data" / "n4" / "train" / "manifest.json").read_text())
    assert manifest["config"]["spec"]["pipeline"] == "uniform_probe" and manifest["config"]["spec"]["n_obs"] == 1
    assert "unseen tasks of the bandit rung" in summary["finding"]
    assert "in-context imitation not measured" in summary["finding"]
    with pytest.raises(ValueError, match="world"):
        dataclasses.replace(ts.PRESETS["smoke"], world="mdp99")


def test_on_the_contextual_bandit_the_model_is_asked_for_the_best_immediate_action(tmp_path):
    out = tmp_path / "run"
    assert ts.main(["--preset", "smoke", "--world", "contextual8", "--n_tasks=[4]", "--train.max_steps=2",
                    "--train.val_every=2", "--out", str(out), "--wandb-mode", "disabled"]) == 0
    manifest = json.loads((out / "data" / "n4" / "train" / "manifest.json").read_text())
    assert manifest["config"]["spec"]["pipeline"] == "myopic_probe"
    evaluation = json.loads((out / "eval" / "n4" / "summary.json").read_text())
    assert evaluation["config"]["protocol"]["prompt"] == 0  # its labels are the gamma-0 oracle's


def test_a_run_of_other_settings_is_refused_not_resumed(smoke):
    import dataclasses

    from omnirl.config import config_from_dict
    from omnirl.train.config import TrainConfig

    out, _ = smoke
    run_dir = out / "train" / "n4"
    config = config_from_dict(TrainConfig, json.loads((run_dir / "done.json").read_text())["config"])
    before = (run_dir / "checkpoints" / "last.ckpt").read_bytes()
    other = dataclasses.replace(config, train=dataclasses.replace(config.train, max_steps=16))
    with pytest.raises(ValueError, match=f"{run_dir}.*other settings.*train.max_steps=16"):
        steps.train(run_dir, other, wandb_mode="disabled")
    assert (run_dir / "checkpoints" / "last.ckpt").read_bytes() == before  # untouched
    assert steps.train(run_dir, config, wandb_mode="disabled")["run"]  # the same settings: found done


def test_a_run_recorded_under_older_names_is_found_done(smoke, monkeypatch):
    out, _ = smoke
    run_dir = out / "train" / "n4"
    done = run_dir / "done.json"
    record = json.loads(done.read_text())
    from omnirl.config import config_from_dict
    from omnirl.train.config import TrainConfig

    config = config_from_dict(TrainConfig, record["config"])
    old = json.loads(json.dumps(record))  # as an older version wrote it: a renamed and a missing setting
    old["config"]["model"]["n_states"] = old["config"]["model"].pop("n_obs")
    del old["config"]["train"]["init_from"]
    monkeypatch.setattr("omnirl.train.fit", lambda *a: pytest.fail("retrained"))
    try:
        done.write_text(json.dumps(old))
        assert steps.recorded_settings(done) == record["config"]
        assert steps.train(run_dir, config, wandb_mode="disabled")["run"]  # found done, not refused or retrained
    finally:
        done.write_text(json.dumps(record))


def test_quarter_means():
    assert ts.quarter_means([1.0, None, 3.0, 4.0, 5.0, 6.0, 7.0, float("nan")]) == (1.0, 7.0)
    assert all(math.isnan(x) for x in ts.quarter_means([None] * 4))


@pytest.mark.parametrize("override, named", [
    ("--n_tasks=abc", "n_tasks"),
    ("--n_tasks=[0]", "n_tasks"),
    ("--n_tasks=[16, 16]", "n_tasks"),
    ("--bogus=1", "bogus"),
    ("--states=20", "states"),
    ("--data.window=5000", "length"),
    ("--train.max_steps=450", "val_every"),
    ("--model.backbone=lstm", "backbone"),
    ("--sequences=100", "sequences"),
])
def test_cli_rejects_bad_overrides(override, named, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        ts.main([override, "--out", str(tmp_path / "never")])
    assert e.value.code == 2
    assert named in capsys.readouterr().err
    assert not (tmp_path / "never").exists()


def test_presets(monkeypatch):
    for var in ("OMNIRL_RUN_DIR", "WANDB_SWEEP_ID", "WANDB_RUN_ID"):
        monkeypatch.delenv(var, raising=False)
    assert set(ts.PRESETS) == {*_common.PRESET_NAMES, "laptop_anymdp"}
    laptop, paper, anymdp = ts.PRESETS["laptop"], ts.PRESETS["paper"], ts.PRESETS["laptop_anymdp"]
    # a preset changes only what it names: the training settings keep their one default
    assert laptop.train == dataclasses.replace(ts.Settings().train, max_steps=300, lr=1e-3, warmup_steps=30,
                                               val_every=100)
    assert anymdp.train == dataclasses.replace(ts.Settings().train, max_steps=400, warmup_steps=50, val_every=100)
    assert laptop.data == anymdp.data == ts.Settings().data
    assert laptop.model.backbone == anymdp.model.backbone == "rwkv7"
    assert laptop.n_tasks == anymdp.n_tasks == (16, 256, 4096) and laptop.sequences / min(laptop.n_tasks) >= 100
    # the laptop preset runs on the highest rung of the ladder reached at laptop scale, the paper's on AnyMDP
    assert (laptop.world, laptop.env, laptop.probe) == ("bandit", "bandit5", "unseen")
    assert (anymdp.world, anymdp.env, anymdp.probe) == (paper.world, "anymdp16", "probe") == ("anymdp", "anymdp16", "probe")
    assert paper.n_tasks == (100, 1_000, 10_000, 128_000) and paper.model.size == "paper"
    assert paper.data.window > laptop.data.window
    inv = _common.parse("task_scaling", ts.PRESETS, ["--n_tasks=[1000]", "--preset=paper"])
    assert inv.settings == dataclasses.replace(paper, n_tasks=(1000,))
    assert inv.out == Path("runs/task_scaling-paper")
    # under a sweep runner every run gets its own directory
    monkeypatch.setenv("WANDB_SWEEP_ID", "s1")
    monkeypatch.setenv("WANDB_RUN_ID", "r1")
    assert _common.parse("task_scaling", ts.PRESETS, []).out == Path("runs/task_scaling-laptop/r1")
    monkeypatch.setenv("OMNIRL_RUN_DIR", "/tmp/sweep/run-3")
    assert _common.parse("task_scaling", ts.PRESETS, []).out == Path("/tmp/sweep/run-3")
    assert _common.parse("task_scaling", ts.PRESETS, ["--out", "x"]).out == Path("x")


def test_sweep_file_expands_to_real_fields_and_runs_in_smoke(tmp_path, monkeypatch):
    from omnirl.sweep import check_parameters, command_line, expand, load_sweep, run_local

    sweep = load_sweep(SWEEP)
    assert {"method", "metric", "parameters", "command"} <= set(sweep)
    assert sweep["command"] == ["${env}", "${interpreter}", "-m", "experiments.task_scaling", "${args}"]
    configs = expand(sweep)
    assert len(configs) == 4
    assert sorted(c["n_tasks"][0] for c in configs) == [100, 1_000, 10_000, 128_000]
    fields = [f.name for f in dataclasses.fields(ts.Settings)]
    assert check_parameters(sweep, ts.Settings, prefixes=fields) == ["n_tasks"]
    assert set(sweep["parameters"]) - set(fields) == {"preset"}
    for c in configs:  # every configuration parses as the run will read its command line
        argv = command_line(sweep, c)
        inv = _common.parse("task_scaling", ts.PRESETS, argv[argv.index("experiments.task_scaling") + 1:])
        assert inv.preset == "paper" and inv.settings.n_tasks == tuple(c["n_tasks"])

    monkeypatch.delenv("WANDB_MODE", raising=False)
    manifest = run_local(SWEEP, max_runs=1, out_dir=tmp_path, cwd=ROOT, out_dir_arg="--out", quiet=True,
                         extra_args=["--preset=smoke", "--sequences=128", "--train.max_steps=2", "--train.val_every=2",
                                     "--eval_envs=2"])
    (entry,) = manifest["runs"]
    assert entry["exit_code"] == 0, (Path(entry["run_dir"]) / "sweep_run.log").read_text()[-3000:]
    assert entry["params"] == {"n_tasks": [100], "preset": "paper"}
    assert math.isfinite(entry["metric"])
    summary = json.loads((tmp_path / "run-0" / "summary.json").read_text())
    assert summary["preset"] == "smoke" and summary["settings"]["n_tasks"] == [100]
    assert summary["results"]["unseen_policy_loss"] == entry["metric"]
    assert summary["results"]["claims"]["task_count_effect"] is None
    assert "one task count (N=100)" in summary["finding"]
