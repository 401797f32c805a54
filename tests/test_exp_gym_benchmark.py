"""``python -m experiments.gym_benchmark``: the smoke preset end to end, reuse of a checkpoint, the
finding against its numbers, and loud rejection of bad settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments import gym_benchmark as gb
from experiments._scores import differs


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("gym_benchmark")
    assert gb.main(["--preset", "smoke", "--out", str(out), "--wandb-mode", "disabled"]) == 0
    return out, json.loads((out / "summary.json").read_text())


def test_smoke_summary(smoke):
    out, s = smoke
    settings = gb.PRESETS["smoke"]
    assert s["experiment"] == "gym_benchmark" and s["preset"] == "smoke"
    t1 = [r for r in s["table"] if r["table"] == "1"]
    t2 = [r for r in s["table"] if r["table"] == "2"]
    methods = (gb.MODEL, *settings.online.baselines)
    assert [(r["environment"], r["method"]) for r in t1] == [(e, m) for e in settings.online.envs for m in methods]
    assert [(r["environment"], r["teacher"], r["method"]) for r in t2] == [
        (e, t, m) for e in settings.offline.envs for t in settings.offline.teachers for m in (gb.MODEL, "cql")]
    for name in ("table1_curves.png", "table2_scores.png"):
        assert name in s["figures"] and (out / name).stat().st_size > 1000
    res = s["results"]
    # the smoke model reads 16 ids: cliff (48) is skipped for it, with a note, and its baselines still run
    assert res["model"]["n_obs"] == 16 and "cliff" in res["skipped"]
    cliff = {r["method"]: r for r in t1 if r["environment"] == "cliff"}
    assert cliff[gb.MODEL]["performance"] is None and cliff[gb.MODEL]["note"].startswith("skipped")
    assert all(cliff[b]["note"] == "" for b in settings.online.baselines)
    assert "Skipped for the model" in s["finding"] and "cliff" in s["finding"]
    # the paper's numbers: Table 1 lost in extraction, Table 2 copied
    assert all(v is None for m in res["paper"]["table1"]["values"].values() for v in m.values())
    assert res["paper"]["table2"]["values"]["cliff"]["random"]["cql"] == [-560.2, -16.2]
    assert (out / "train" / "omnirl" / "done.json").exists()


def test_smoke_dumps_memory_for_the_tsne_notebook(smoke):
    from omnirl.analysis.runs import collect_memory

    out, s = smoke
    m, mem = gb.PRESETS["smoke"].memory, s["results"]["memory"]
    assert mem["skipped"] == ["cliff"]  # 48 ids: more than the smoke model reads
    read = [e for e in m.envs if e != "cliff"]
    memory = collect_memory(out)  # what the notebook reads: every dump under the run directory
    assert len(memory) == mem["points"] == len(read) * m.n_envs * len(m.memory_steps)
    assert sorted(set(memory.env.tolist())) == sorted(read) and mem["groups"] == ["anymdp16", "lake"]
    assert sorted(set(memory.step.tolist())) == mem["steps"] == list(m.memory_steps)
    assert memory.states.shape[1] == mem["state_size"] > 0
    assert f"{mem['points']} states" in s["finding"]


def test_finding_follows_the_numbers(smoke):
    _, s = smoke
    online, settings = s["results"]["online"], gb.PRESETS["smoke"]
    evaluated = [e for e in settings.online.envs if gb.MODEL in online.get(e, {})]

    def sc(d):
        return {"performance": float("nan") if d["performance"] is None else d["performance"],
                "se": float("nan") if d["se"] is None else d["se"]}
    for b in settings.online.baselines:
        better = [e for e in evaluated if differs(sc(online[e][gb.MODEL]), sc(online[e][b])) > 0]
        worse = [e for e in evaluated if differs(sc(online[e][gb.MODEL]), sc(online[e][b])) < 0]
        assert f"Against {b}: OmniRL better on {len(better)}, worse on {len(worse)}" in s["finding"]
    assert "Table 1 numbers are not available" in s["finding"]


def test_reuses_a_checkpoint(smoke, tmp_path):
    out, _ = smoke
    ckpt = out / "train" / "omnirl" / "checkpoints" / "last.ckpt"
    argv = ["--preset", "smoke", "--out", str(tmp_path), "--wandb-mode", "disabled", f"--checkpoint={ckpt}",
            "--online.envs=[lake4x4]", "--offline.teachers=[noisy_oracle]", "--memory.envs=[]"]
    assert gb.main(argv) == 0
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["results"]["memory"] == {} and not (tmp_path / "eval" / "memory").exists()  # no dump asked for
    assert not (tmp_path / "train").exists() and not (tmp_path / "data").exists()
    assert s["results"]["model"]["source"].startswith("reused") and Path(s["results"]["model"]["checkpoint"]) == ckpt
    assert [r["teacher"] for r in s["table"] if r["table"] == "2"] == ["noisy_oracle", "noisy_oracle"]


@pytest.mark.parametrize("override, field", [
    ("--checkpoint=/no/such/model.ckpt", "checkpoint"),
    ("--online.envs=[nowhere]", "envs"),
    ("--online.envs=[switch2]", "n_envs"),
    ("--offline.teachers=[expert]", "teachers"),
    ("--offline.demo_epsilon=2", "demo_epsilon"),
    ("--training.data.batch_size=0", "batch_size"),
    ("--online.bogus=1", "bogus"),
    ("--memory.memory_steps=[0, 64]", "memory_steps"),  # beyond the smoke preset's 32 steps
    ("--memory.envs=[anymdp17]", "envs"),
])
def test_bad_overrides_are_rejected(override, field, capsys):
    argv = ["--preset", "smoke", override]
    if "switch2" in override:
        argv.append("--online.n_envs=3")
    with pytest.raises(SystemExit) as e:
        gb.main(argv)
    assert e.value.code == 2
    assert field in capsys.readouterr().err
