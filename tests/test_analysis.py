"""omnirl.analysis reads back exactly what training and evaluation wrote (round trips against the
smoke run directory of tests/test_notebooks.py), draws it, and names the bad path or argument."""

import csv
import json
import shutil
import types

import numpy as np
import pytest

from omnirl.analysis import curves, gallery
from omnirl.analysis.runs import (collect_memory, find_runs, format_table, history_from_wandb, natural_key,
                                  read_evaluation, read_memory, read_summary, read_training_run, resolve_path,
                                  training_runs)
from tests.test_notebooks import SMOKE_EXPERIMENT, SmokeSettings, smoke_run_dir

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::FutureWarning")]
TRAIN = ("tasks2_gdn", "tasks4_mamba2")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return smoke_run_dir(tmp_path_factory)


# --------------------------------------------------------------------------- runs
def test_summary_and_find_runs(run_dir):
    s = read_summary(run_dir)
    assert s["experiment"] == SMOKE_EXPERIMENT and s["preset"] == "smoke"
    assert {"settings", "results", "table", "figures", "finding"} <= set(s)
    assert find_runs(run_dir) == [run_dir]  # its eval/NAME/summary.json is part of it
    assert find_runs(run_dir.parent, experiment=SMOKE_EXPERIMENT) == [run_dir]
    assert find_runs(run_dir, experiment="no_such_experiment") == []


def test_training_runs_round_trip(run_dir):
    runs = training_runs(run_dir)
    assert list(runs) == list(TRAIN)
    for name, backbone, n_tasks in zip(TRAIN, SmokeSettings().backbones, SmokeSettings().task_counts):
        r = runs[name]
        d = run_dir / "train" / name
        assert r.backbone == backbone and r.n_tasks == n_tasks and r.name == name
        assert r.run == json.loads((d / "run.json").read_text())
        lines = [json.loads(x) for x in (d / "history.jsonl").read_text().splitlines()]
        assert r.step.tolist() == [x["step"] for x in lines] == [1, 2]
        assert r.tokens_seen.tolist() == [x["tokens_seen"] for x in lines]
        np.testing.assert_allclose(r.loss("unseen"), [x["val/unseen/policy_loss"] for x in lines])
        np.testing.assert_allclose(r.loss("seen", "random"), [x["val/seen/random/policy_loss"] for x in lines])
        raw = json.loads((d / "position_curves.json").read_text())
        assert r.curves_step == raw["step"] == 2 and set(r.validation_sets) == {"seen", "unseen"}
        x, y = r.curve("unseen", "oracle")
        assert x.tolist() == raw["curves"]["unseen"]["position"]
        np.testing.assert_array_equal(np.isnan(y), [v is None for v in raw["curves"]["unseen"]["oracle"]])
        # the reference: the same windows for every run, so the same curve; the gain as logged
        x, ref = r.reference_curve("unseen")
        np.testing.assert_allclose(ref, raw["curves"]["unseen"]["reference"])
        assert np.isfinite(ref).all() and (ref > 0).all()
        gains = [x.get("val/unseen/gain") for x in lines]
        assert all(g is not None for g in gains)
        last = [g for g in gains if np.isfinite(g)]
        assert (r.gain("unseen") == pytest.approx(last[-1])) if last else np.isnan(r.gain("unseen"))
        np.testing.assert_allclose(r.loss("unseen", metric="reference_policy_loss"),
                                   [x["val/unseen/reference_policy_loss"] for x in lines])
    assert training_runs(run_dir, names=["tasks4_mamba2"])["tasks4_mamba2"].backbone == "mamba2"
    with pytest.raises(KeyError, match="val/unseen/nobody/policy_loss"):
        runs["tasks2_gdn"].loss("unseen", "nobody")
    with pytest.raises(KeyError, match="validation set 'test'"):
        runs["tasks2_gdn"].curve("test")


def test_evaluation_round_trip(run_dir):
    s = SmokeSettings()
    d = run_dir / "eval" / "tasks4"
    ev = read_evaluation(d)
    with open(d / "scores.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["environment"], r["method"]) for r in ev.scores] == [(r["environment"], r["method"]) for r in rows]
    assert {(r["environment"], r["method"]) for r in ev.scores} == {(e, m) for e in s.envs for m in ("omnirl", "tql_ucb")}
    for r in ev.summary["rows"]:
        got = ev.score(r["environment"], r["method"])
        assert got == pytest.approx(r["performance"], nan_ok=True)
        assert isinstance(ev.score(r["environment"], r["method"], "exact_references"), bool)
    with np.load(d / "episodes.npz") as z:
        assert sorted(f"{e}/{m}/{c}" for (e, m), cols in ev.episodes.items() for c in cols) == sorted(z.files)
        np.testing.assert_array_equal(ev.episodes[("lake4x4", "omnirl")]["score"], z["lake4x4/omnirl/score"])
    m = ev.memory
    assert len(m) == len(s.envs) * s.n_envs * len(s.memory_steps)
    with np.load(d / "memory.npz") as z:
        for env in s.envs:
            for step in s.memory_steps:
                sel = (m.env == env) & (m.step == step)
                np.testing.assert_array_equal(m.states[sel], z[f"{env}/{step}"])
                assert set(m.family[sel]) == {str(z[f"{env}/{step}/family"])}
    assert set(m.group) == {"anymdp16", "lake"} and set(m.evaluation) == {"tasks4"}
    assert m.states.dtype == np.float32 and m.step.dtype == np.int64
    both = collect_memory(run_dir)
    np.testing.assert_array_equal(both.states, read_memory(d / "memory.npz").states)
    assert len(m.select(m.step == 0)) == len(s.envs) * s.n_envs
    with pytest.raises(FileNotFoundError, match=r"evaluations \['nope'\]"):
        collect_memory(run_dir, ["nope"])


def test_collect_memory_refuses_two_models(run_dir, tmp_path):
    for name, ckpt in (("a", "one.ckpt"), ("b", "two.ckpt")):
        shutil.copytree(run_dir / "eval" / "tasks4", tmp_path / "eval" / name)
        summary = json.loads((tmp_path / "eval" / name / "summary.json").read_text())
        summary["config"]["run"]["checkpoint"] = ckpt
        (tmp_path / "eval" / name / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(ValueError, match=r"2 checkpoints.*evaluations=\[\.\.\.\]"):
        collect_memory(tmp_path)
    assert set(collect_memory(tmp_path, ["b"]).evaluation) == {"b"}
    assert sorted(["n128", "n16", "fresh", "n2"], key=natural_key) == ["fresh", "n2", "n16", "n128"]


def test_history_from_offline_wandb_matches_history_jsonl(run_dir):
    d = run_dir / "train" / "tasks2_gdn"
    h = history_from_wandb(d)
    jsonl = [json.loads(x) for x in (d / "history.jsonl").read_text().splitlines()]
    for key in ("val/unseen/policy_loss", "val/seen/policy_loss_last_quarter"):
        logged = h[key][np.isfinite(h[key])]
        np.testing.assert_allclose(logged, [x[key] for x in jsonl], rtol=1e-6)
    assert "step" in h and len(h["step"]) == len(h["val/unseen/policy_loss"])
    only = history_from_wandb(next((d / "wandb").glob("offline-run-*")), keys=["tokens_seen"])
    assert set(only) == {"tokens_seen", "step"}
    with pytest.raises(FileNotFoundError, match="holds no offline W&B run"):
        history_from_wandb(run_dir / "train" / "tasks4_mamba2")  # trained with W&B disabled
    with pytest.raises(KeyError, match="logged no"):
        history_from_wandb(d, keys=["val/nothing"])


def test_history_from_online_wandb_uses_the_api(monkeypatch):
    import wandb

    seen = []

    class FakeApi:
        def run(self, path):
            seen.append(path)
            return types.SimpleNamespace(scan_history=lambda: iter([
                {"trainer/global_step": 5, "val/unseen/policy_loss": 1.5, "_step": 0},
                {"trainer/global_step": 10, "val/unseen/policy_loss": 1.25, "note": "text", "_step": 1}]))

    monkeypatch.setattr(wandb, "Api", FakeApi)
    h = history_from_wandb("someone/omnirl/abc123")
    assert seen == ["someone/omnirl/abc123"]
    assert h["step"].tolist() == [5, 10] and h["val/unseen/policy_loss"].tolist() == [1.5, 1.25]
    assert "note" not in h


def test_reader_errors_name_the_path(run_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_summary(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="summary.json is missing"):
        read_summary(tmp_path)
    with pytest.raises(FileNotFoundError, match=f"{tmp_path}.*no run.json"):
        read_training_run(tmp_path)
    with pytest.raises(FileNotFoundError, match="holds no training runs"):
        training_runs(tmp_path)
    with pytest.raises(FileNotFoundError, match="not an evaluation directory"):
        read_evaluation(run_dir)
    with pytest.raises(FileNotFoundError, match="holds no memory.npz"):
        read_memory(tmp_path)
    with pytest.raises(FileNotFoundError, match="holds no memory.npz"):
        collect_memory(tmp_path)
    with pytest.raises(FileNotFoundError, match="neither an existing path"):
        history_from_wandb(str(tmp_path / "no" / "such" / "dir"))
    (tmp_path / "run.json").write_text("{}")
    (tmp_path / "history.jsonl").write_text('{"step": 1}\nnot json\n')
    with pytest.raises(ValueError, match="history.jsonl, line 2"):
        read_training_run(tmp_path)


def test_relative_paths_resolve_from_the_repository(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert resolve_path("omnirl/analysis").is_dir()
    # a run whose datasets were recorded relative to the repository (as `make run` writes them) still
    # knows its task count when read from elsewhere (a notebook runs in notebooks/)
    from omnirl.analysis import runs as runs_module

    repo = tmp_path / "repo"
    data = repo / "runs" / "x" / "data"
    (data / "tasks").mkdir(parents=True)
    (data / "tasks" / "manifest.json").write_text(json.dumps({"n_tasks": 16}))
    (data / "manifest.json").write_text(json.dumps({"config": {"spec": {"task_set": "runs/x/data/tasks"}}}))
    run = {"provenance": {"data": {"train": [{"path": "runs/x/data", "task_set_hash": "h"}]}}}
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    monkeypatch.setattr(runs_module, "REPO_ROOT", repo)
    assert runs_module._task_count(run) == 16
    monkeypatch.setattr(runs_module, "REPO_ROOT", tmp_path / "elsewhere")
    assert runs_module._task_count(run) is None  # found nowhere: unknown
    assert format_table([{"a": 1.23456, "b": None}]) == "a      b\n-----  -\n1.235  -\n"
    assert format_table([]) == "(no rows)\n"


# --------------------------------------------------------------------------- pictures
def test_curves(run_dir, tmp_path):
    runs = training_runs(run_dir)
    fig = curves.plot_loss_vs_position(runs)
    lines = fig.axes[0].lines
    # two runs on two sets, then the reference once per set (thin, black)
    assert len(lines) == 6 and [ln.get_linestyle() for ln in lines] == ["-", "--", "-", "--", "-", "--"]
    assert lines[0].get_color() != lines[2].get_color()  # one colour per task count
    assert lines[4].get_color() == curves.REFERENCE_COLOUR
    np.testing.assert_array_equal(lines[5].get_ydata(), runs["tasks2_gdn"].reference_curve("unseen")[1])
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend[:2] == ["2 tasks", "4 tasks"] and legend[-1] == "Bayes-optimal reference"
    assert len(curves.plot_loss_vs_position(runs, behaviour="oracle").axes[0].lines) == 4
    assert len(curves.plot_loss_vs_position_split(runs).axes) == 2
    it = curves.plot_loss_vs_iteration(runs, sets=["unseen"], x="tokens_seen", colour_by="backbone")
    np.testing.assert_array_equal(it.axes[0].lines[0].get_xdata(), runs["tasks2_gdn"].tokens_seen)
    assert curves.plot_loss_vs_task_count(runs).axes[0].get_xscale() == "log"
    rows = curves.final_losses(runs)
    assert rows[1]["unseen/policy_loss"] == pytest.approx(runs["tasks4_mamba2"].loss("unseen")[-1])
    curves.plot_history(runs["tasks2_gdn"].history, path=tmp_path / "h.png")
    assert (tmp_path / "h.png").stat().st_size > 0
    with pytest.raises(ValueError, match="x must be one of"):
        curves.plot_loss_vs_iteration(runs, x="epoch")
    with pytest.raises(ValueError, match="colour_by must be one of"):
        curves.plot_loss_vs_position(runs, colour_by="seed")
    with pytest.raises(ValueError, match="runs must be a non-empty mapping"):
        curves.plot_loss_vs_position({})
    with pytest.raises(ValueError, match="wrap it"):
        curves.plot_loss_vs_position(runs, sets="unseen")


def test_tsne(run_dir):
    pytest.importorskip("sklearn")
    from omnirl.analysis.tsne import memory_embedding, plot_embedding, suggested_perplexity

    m = collect_memory(run_dir)
    p = suggested_perplexity(len(m))
    a = memory_embedding(m, seed=3, perplexity=p)
    b = memory_embedding(m, seed=3, perplexity=p)
    np.testing.assert_array_equal(a.xy, b.xy)  # seeded
    assert a.xy.shape == (len(m), 2) and a.pca_dims == len(m) <= 50 and set(a.labels) >= {"group", "step"}
    fig = plot_embedding(a, by=("group", "step", "env"))
    assert [ax.get_title() for ax in fig.axes if ax.collections and ax.get_title()] == [
        "coloured by task family", "coloured by position in context (step)", "coloured by environment"]
    raw = memory_embedding([m.states[:9], m.states[9:]], labels={"k": np.arange(len(m))}, perplexity=2)
    assert raw.labels["k"].shape == (len(m),)
    with pytest.raises(ValueError, match=f"only {len(m)} memory states"):
        memory_embedding(m, perplexity=30)
    with pytest.raises(ValueError, match=r"labels\['k'\] has shape"):
        memory_embedding(m.states, labels={"k": [1, 2]}, perplexity=2)
    bad = m.states.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite values in 1 of"):
        memory_embedding(bad, perplexity=2)
    with pytest.raises(ValueError, match="by='colour' is not a label"):
        plot_embedding(a, by="colour")


def test_gallery(run_dir):
    from omnirl.tasks import solve

    sets = gallery.find_task_sets(run_dir)
    assert [s.relative_to(run_dir).as_posix() for s in sets] == ["data/tasks2/tasks", "data/tasks4/tasks"]
    tasks = gallery.load_tasks(sets[1], 3)
    assert len(tasks) == 3 and gallery.load_tasks(sets[0])[1] == tasks[1]  # nested task sets
    v = gallery.task_values(tasks[0])
    np.testing.assert_allclose(v["oracle"], solve(tasks[0], 0.994).v)
    assert v["terminal"].sum() == v["pitfall"].sum() + v["goal"].sum()
    fresh = gallery.sample_tasks((16,), per_size=2, seed=1)
    assert [t.n_obs for t in fresh] == [16, 16] and fresh[0] != fresh[1]
    assert len(gallery.plot_oracle_values(tasks, cols=2).axes) == 4  # a 2 x 2 grid, the last hidden
    assert gallery.plot_stationary({"a": tasks, "b": fresh}).axes[0].get_yscale() == "log"
    with pytest.raises(FileNotFoundError, match="is not a task set"):
        gallery.load_tasks(run_dir)
    with pytest.raises(ValueError, match="sizes must be"):
        gallery.sample_tasks(16)
