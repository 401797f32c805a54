"""W&B sweep files: expanded by W&B's engine, command lines as ``wandb agent`` builds them, run
locally and offline with a manifest, parameters checked against the typed configuration."""

from __future__ import annotations

import hashlib
import json
import math
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from omnirl import sweep as sw
from omnirl.train.config import TrainConfig
from tests.helpers import assert_help_lists_every_option

REPO = Path(__file__).resolve().parents[1]
SWEEP_FILES = sorted((REPO / "sweeps").glob("*.yaml"))
COMMAND = ["${env}", "${interpreter}", "-m", "fake_run", "${args}"]

FAKE_RUN = '''
"""Writes summary.json into $OMNIRL_RUN_DIR from its --name=value arguments; counts its calls."""
import json, os, sys
from pathlib import Path
args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--"))
run_dir = Path(os.environ["OMNIRL_RUN_DIR"])
with open(Path(__file__).parent / "calls.log", "a") as f:
    f.write(os.environ["OMNIRL_SWEEP_RUN"] + "\\n")
if args.get("x") == "0.1" and args.get("y") == "b":
    print("failing on purpose", file=sys.stderr)
    sys.exit(3)
x = float(args.get("x", 0.0))
loss = (x - 0.3) ** 2 + {"a": 0.0, "b": 0.1, "c": 0.2}.get(args.get("y"), 0.0)
(run_dir / "summary.json").write_text(json.dumps({
    "val": {"loss": loss}, "args": args, "argv": sys.argv[1:], "run": os.environ["OMNIRL_SWEEP_RUN"],
    "wandb_mode": os.environ["WANDB_MODE"], "cwd": os.getcwd()}))
'''


def write_sweep(path: Path, **sweep) -> Path:
    sweep.setdefault("command", COMMAND)
    path.write_text(yaml.safe_dump(sweep, sort_keys=False))
    return path


@pytest.fixture
def fake_run(tmp_path, monkeypatch):
    """A module ``fake_run`` importable by the runs (on PYTHONPATH); returns the call log."""
    pkg = tmp_path / "prog"
    pkg.mkdir()
    (pkg / "fake_run.py").write_text(FAKE_RUN)
    monkeypatch.setenv("PYTHONPATH", str(pkg))
    monkeypatch.delenv("WANDB_MODE", raising=False)

    def calls() -> list[int]:
        log = pkg / "calls.log"
        return [int(x) for x in log.read_text().split()] if log.is_file() else []
    return calls


GRID = dict(method="grid", metric={"name": "val/loss", "goal": "minimize"},
            parameters={"x": {"values": [0.1, 0.3]}, "y": {"values": ["a", "b", "c"]}})


# --------------------------------------------------------------------------- expansion

def test_grid_expands_every_combination_in_the_engines_order(tmp_path):
    s = sw.load_sweep(write_sweep(tmp_path / "g.yaml", **GRID))
    configs = sw.expand(s, seed=0)
    assert configs == [{"x": x, "y": y} for x in (0.1, 0.3) for y in ("a", "b", "c")]
    assert sw.expand(s, seed=0, max_runs=4) == configs[:4]
    assert sw.expand(s, seed=7) == configs  # a grid does not depend on the seed
    # int_uniform and constants are grid-able too; the counts multiply
    s2 = dict(s, parameters={"n": {"min": 1, "max": 3}, "k": {"value": "z"}, "y": {"values": [True, False]}})
    c2 = sw.expand(s2)
    assert len(c2) == 6 and all(type(c["n"]) is int and c["k"] == "z" and type(c["y"]) is bool for c in c2)


def test_grid_rejects_continuous_parameters(tmp_path):
    s = sw.load_sweep(write_sweep(tmp_path / "g.yaml", method="grid", parameters={"x": {"min": 0.0, "max": 1.0}}))
    with pytest.raises(ValueError, match="x"):
        sw.expand(s)


RANDOM = dict(method="random", metric={"name": "val/loss", "goal": "minimize"}, parameters={
    "train.lr": {"distribution": "log_uniform_values", "min": 1.0e-4, "max": 1.0e-2},
    "data.batch_size": {"values": [8, 16, 32]},
    "model.n_actions": {"min": 2, "max": 6},
    "model.policy_weight": {"min": 0.5, "max": 2.0},
    "model.world_model": {"values": [True, False]},
    "train.warmup_steps": {"distribution": "q_uniform", "min": 0, "max": 100, "q": 10},
})


def check_random(configs):
    for c in configs:
        assert set(c) == set(RANDOM["parameters"])
        assert all(type(v) in (int, float, str, bool) for v in c.values()), c  # no numpy scalars
        assert type(c["train.lr"]) is float and 1e-4 <= c["train.lr"] <= 1e-2
        assert c["data.batch_size"] in (8, 16, 32)
        assert type(c["model.n_actions"]) is int and 2 <= c["model.n_actions"] <= 6
        assert type(c["model.policy_weight"]) is float and 0.5 <= c["model.policy_weight"] <= 2.0
        assert type(c["model.world_model"]) is bool
        assert type(c["train.warmup_steps"]) is int and c["train.warmup_steps"] % 10 == 0


def test_random_is_seeded_plain_and_within_the_distributions(tmp_path):
    s = sw.load_sweep(write_sweep(tmp_path / "r.yaml", **RANDOM))
    random.seed(123)
    np.random.seed(123)
    expected = (random.random(), np.random.random())
    random.seed(123)
    np.random.seed(123)
    a = sw.expand(s, seed=0, max_runs=5)
    assert (random.random(), np.random.random()) == expected  # the caller's global RNGs are untouched
    assert len(a) == 5 and len({json.dumps(c, sort_keys=True) for c in a}) == 5
    assert sw.expand(s, seed=0, max_runs=5) == a
    assert sw.expand(s, seed=0, max_runs=3) == a[:3]  # configuration i depends on (seed, i) only
    assert sw.expand(s, seed=1, max_runs=5) != a
    check_random(a + sw.expand(s, seed=2, max_runs=40))
    sw.check_parameters(s, TrainConfig, configs=a)
    with pytest.raises(ValueError, match="max_runs"):
        sw.expand(s, seed=0)  # random search never ends by itself
    assert len(sw.expand(dict(s, run_cap=3), seed=0)) == 3


def test_bayes_expands_random_like_and_uses_results(tmp_path):
    s = sw.load_sweep(write_sweep(tmp_path / "b.yaml", method="bayes", metric={"name": "loss", "goal": "minimize"},
                                  parameters={"u": {"min": 0.0, "max": 1.0}, "c": {"values": [1, 2, 3]}}))
    a = sw.expand(s, seed=0, max_runs=4)
    assert a == sw.expand(s, seed=0, max_runs=4) and a != sw.expand(s, seed=1, max_runs=4)
    assert all(type(c["u"]) is float and 0 <= c["u"] <= 1 and c["c"] in (1, 2, 3) for c in a)
    # with results the engine fits them: the proposal differs from the result-free one
    history = [({"u": u, "c": 1}, 0, (u - 0.3) ** 2) for u in (0.05, 0.5, 0.9, 0.2)]
    with_results = sw.suggest(s, seed=0, index=4, history=history)
    assert with_results == sw.suggest(s, seed=0, index=4, history=history)  # reproducible
    assert with_results != sw.suggest(s, seed=0, index=4)
    assert type(with_results["u"]) is float and type(with_results["c"]) is int
    failed = sw.suggest(s, seed=0, index=4, history=history[:3] + [({"u": 0.2, "c": 1}, 1, None)])
    assert 0 <= failed["u"] <= 1


# --------------------------------------------------------------------------- command lines

PARAMS = {"n": 3, "lr": 0.001, "tiny": 1e-05, "name": "gdn", "path": "data/tiny/train", "on": True, "off": False,
          "xs": [1, 2], "names": ["a", "b"], "none": None, "d": {"k": 1}}


def test_command_line_formats_values_like_wandb():
    s = {"command": ["${env}", "${interpreter}", "-m", "pkg.mod", "--config", "c.yaml", "${args}"]}
    argv = sw.command_line(s, PARAMS, interpreter="python")
    assert argv == ["/usr/bin/env", "python", "-m", "pkg.mod", "--config", "c.yaml", "--n=3", "--lr=0.001",
                    "--tiny=1e-05", "--name=gdn", "--path=data/tiny/train", "--on=True", "--off=False",
                    "--xs=[1, 2]", "--names=['a', 'b']", "--none=None", "--d={'k': 1}"]
    m = sw.macro_values(PARAMS)
    assert m["args_no_hyphens"][:2] == ["n=3", "lr=0.001"]
    assert m["args_no_equals"][:4] == ["--n", "3", "--lr", "0.001"]
    assert "--on" in m["args_no_boolean_flags"] and not any("off" in a for a in m["args_no_boolean_flags"])
    assert json.loads(m["args_json"][0]) == PARAMS


def test_command_line_is_the_one_wandb_agent_runs(tmp_path, monkeypatch):
    """Every macro, filled by ``wandb agent``'s own run step (``Agent._command_run``, its process
    start captured) and by ``command_line``: the same argv. Fails when W&B changes its builder."""
    from wandb import wandb_agent
    started = []

    class Started:
        def __init__(self, command, env, **kwargs):
            started.append(command)
    monkeypatch.setattr(wandb_agent, "AgentProcess", Started)
    for name, value in [("WANDB_DIR", str(tmp_path)), ("WANDB_SWEEP_ID", "s1"), ("WANDB_RUN_ID", "x"),
                        ("WANDB_SWEEP_PARAM_PATH", "x"), ("SWEEP_TAG", "t1")]:
        monkeypatch.setenv(name, value)  # the agent sets the last two itself: put back afterwards
    monkeypatch.delenv("UNSET_TAG", raising=False)
    command = ["${env}", "${interpreter}", "${program}", "--tag=${envvar:SWEEP_TAG}", "x${envvar:UNSET_TAG}y", 7,
               "${args}", "${args_no_hyphens}", "${args_no_equals}", "${args_no_boolean_flags}", "${args_json}",
               "${args_json_file}", "${args_append_hydra}", "${args_override_hydra}"]
    agent = object.__new__(wandb_agent.Agent)
    agent.__dict__.update(_in_jupyter=False, _function=None, _forward_signals=False, _run_processes={},
                          _sweep_command=list(command))
    agent._command_run({"run_id": "r1", "program": "train.py", "args": {k: {"value": v} for k, v in PARAMS.items()}})
    json_file = str(tmp_path / "wandb" / "sweep-s1" / "config-r1.json")
    ours = sw.command_line({"program": "train.py", "command": command}, PARAMS, interpreter="python",
                           args_json_file=json_file)
    assert started == [ours]
    assert ours[:5] == ["/usr/bin/env", "python", "train.py", "--tag=t1", "xUNSET_TAGy"] and "--d={'k': 1}" in ours


def test_command_line_values_read_back_through_the_config_parser():
    from omnirl.config import parse_overrides
    args = sw.macro_values({"model.backbone": "rwkv7", "train.max_steps": 10, "train.lr": 0.0005,
                            "model.world_model": False, "data.train": ["a/b", "c"]})["args"]
    assert parse_overrides(args) == {"model.backbone": "rwkv7", "train.max_steps": 10, "train.lr": 0.0005,
                                     "model.world_model": False, "data.train": ["a/b", "c"]}


# --------------------------------------------------------------------------- loading

BAD = [
    ("- a list", "must hold a mapping"),
    ("parameters: {x: {value: 1}}\ncommand: [a]", "method"),
    ("method: hyper\nparameters: {x: {value: 1}}\ncommand: [a]", "method"),
    ("method: grid\ncommand: [a]", "parameters"),
    ("method: grid\nparameters: {}\ncommand: [a]", "parameters"),
    ("method: grid\nparameters: {x: {value: 1}}", "command"),
    ("method: grid\nparameters: {x: 3}\ncommand: [a]", "parameters.x"),
    ("method: grid\nparameters: {model: {parameters: {lr: {value: 1}}}}\ncommand: [a]", "parameters.model"),
    ("method: bayes\nparameters: {x: {min: 0.0, max: 1.0}}\ncommand: ['${interpreter}', -m, m, '${args}']",
     "metric"),
    ("method: grid\nparameters: {x: {value: 1}}\ncommand: ['${interpreter}', -m, m]", "command"),
    ("method: grid\nparameters: {x: {value: 1}}\ncommand: [python, -m, m, '${args}']", "command"),
    ("method: grid\nparameters: {x: {value: 1}}\ncommand: ['${interpreter}', m.py, '${args}']", "command"),
    ("method: grid\nparameters: {x: {value: 1}}\ncommand: ['${interpreter}', -m, m, '${args}', '${argz}']",
     "command"),
    ("method: grid\nparameters: {x: {value: 1}}\ncommand: ['${interpreter}', '${program}', -m, m, '${args}']",
     "program"),
    ("method: random\nparameters: {x: {distribution: log_uniform, min: -5, max: -1}}\n"
     "command: ['${interpreter}', -m, m, '${args}']", "schema"),
    # an unknown top-level key breaks W&B's schema: why the run directory goes by environment variable
    ("method: grid\nparameters: {x: {value: 1}}\ncommand: ['${interpreter}', -m, m, '${args}']\n"
     "omnirl: {out_dir_arg: --logging.out_dir}", "omnirl"),
]


@pytest.mark.parametrize("text,key", BAD)
def test_load_sweep_errors_name_the_file_and_the_key(tmp_path, text, key):
    path = tmp_path / "bad_sweep.yaml"
    path.write_text(text)
    with pytest.raises(ValueError) as e:
        sw.load_sweep(path)
    assert str(path) in str(e.value) and key in str(e.value)


def test_load_sweep_missing_file(tmp_path):
    with pytest.raises(ValueError, match="nope.yaml"):
        sw.load_sweep(tmp_path / "nope.yaml")


# --------------------------------------------------------------------------- running locally

def test_run_local_runs_records_and_resumes(tmp_path, fake_run, capsys):
    path = write_sweep(tmp_path / "g.yaml", **GRID)
    out = tmp_path / "out"
    m = sw.run_local(path, seed=3, out_dir=out, cwd=tmp_path)
    assert fake_run() == [0, 1, 2, 3, 4, 5]  # the failing run 1 did not stop the others
    on_disk = json.loads((out / sw.MANIFEST).read_text())
    assert on_disk == m
    assert m["sweep_file"] == str(path) and m["sweep_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert m["seed"] == 3 and m["method"] == "grid" and m["n_runs"] == 6 and len(m["runs"]) == 6
    for i, (r, params) in enumerate(zip(m["runs"], sw.expand(sw.load_sweep(path)))):
        assert r["index"] == i and r["params"] == params and r["seconds"] >= 0
        assert r["run_dir"] == str((out / f"run-{i}").absolute())
        assert r["argv"][:4] == ["/usr/bin/env", sys.executable, "-m", "fake_run"]
        assert r["argv"][4:] == [f"--x={params['x']}", f"--y={params['y']}"]
        if i == 1:
            assert r["exit_code"] == 3 and r["metric"] is None
            assert "failing on purpose" in (out / "run-1" / "sweep_run.log").read_text()
            continue
        assert r["exit_code"] == 0
        summary = json.loads((out / f"run-{i}" / "summary.json").read_text())
        # the parameters reach the run on its command line; W&B offline; the run knows its index
        assert summary["args"] == {"x": str(params["x"]), "y": params["y"]}
        assert summary["wandb_mode"] == "offline" and summary["run"] == str(i)
        assert summary["cwd"] == str(tmp_path)
        expected = (params["x"] - 0.3) ** 2 + {"a": 0.0, "b": 0.1, "c": 0.2}[params["y"]]
        assert r["metric"] == pytest.approx(expected) and r["metric_source"] == "summary.json"
    assert "failing on purpose" in capsys.readouterr().out  # the tail of a failed run's log

    # resume: completed runs are skipped, the failed one runs again
    m2 = sw.run_local(path, seed=3, out_dir=out, cwd=tmp_path)
    assert fake_run() == [0, 1, 2, 3, 4, 5, 1]
    assert [r["exit_code"] for r in m2["runs"]] == [0, 3, 0, 0, 0, 0]
    assert m2["runs"][0] == m["runs"][0] and json.loads((out / sw.MANIFEST).read_text()) == m2

    # other values at the same index: run again, the old run directory kept aside
    write_sweep(path, **dict(GRID, parameters={"x": {"values": [0.1, 0.3]}, "y": {"values": ["a", "c", "b"]}}))
    m3 = sw.run_local(path, seed=3, out_dir=out, cwd=tmp_path, max_runs=3, quiet=True)
    assert fake_run()[7:] == [1, 2]
    assert [r["params"]["y"] for r in m3["runs"][:3]] == ["a", "c", "b"]
    assert len(m3["runs"]) == 6 and m3["runs"][3:] == m2["runs"][3:]  # later runs kept as they were
    assert json.loads((out / sw.MANIFEST).read_text()) == m3
    assert (out / "run-1.replaced-1").is_dir() and (out / "run-2.replaced-1" / "summary.json").is_file()


def test_run_local_bayes_feeds_results_back_and_resumes(tmp_path, fake_run):
    path = write_sweep(tmp_path / "b.yaml", method="bayes", metric={"name": "val/loss", "goal": "minimize"},
                       parameters={"x": {"min": 0.2, "max": 1.0}, "y": {"values": ["a", "c"]}})
    m = sw.run_local(path, seed=0, max_runs=5, out_dir=tmp_path / "out", quiet=True)
    assert fake_run() == [0, 1, 2, 3, 4]
    assert all(r["exit_code"] == 0 and r["metric"] is not None for r in m["runs"])
    history = []
    for r in m["runs"]:  # every proposal is the engine's answer to the results before it
        assert r["params"] == sw.suggest(sw.load_sweep(path), seed=0, index=r["index"], history=history)
        history.append((r["params"], 0, r["metric"]))
    m2 = sw.run_local(path, seed=0, max_runs=6, out_dir=tmp_path / "out", quiet=True)
    assert fake_run() == [0, 1, 2, 3, 4, 5] and m2["runs"][:5] == m["runs"]


def test_run_local_dry_run_extra_args_and_out_dir_arg(tmp_path, fake_run):
    path = write_sweep(tmp_path / "g.yaml", **GRID)
    m = sw.run_local(path, out_dir=tmp_path / "out", dry_run=True, extra_args=["--preset=smoke"],
                     out_dir_arg="--logging.out_dir")
    assert m["n_runs"] == 6 and fake_run() == [] and not (tmp_path / "out").exists()
    run_dir = (tmp_path / "out" / "run-2").absolute()
    assert m["runs"][2]["argv"][-3:] == ["--y=c", "--preset=smoke", f"--logging.out_dir={run_dir}"]


def test_run_local_metric_from_history_when_no_summary(tmp_path, monkeypatch):
    prog = tmp_path / "prog"
    prog.mkdir()
    (prog / "hist_run.py").write_text(
        "import json, os\nfrom pathlib import Path\n"
        "d = Path(os.environ['OMNIRL_RUN_DIR'])\n"
        "rows = [{'step': 1, 'val/seen/loss': 2.0}, {'step': 2, 'val/seen/loss': 1.5}, {'step': 3}]\n"
        "(d / 'history.jsonl').write_text(''.join(json.dumps(r) + '\\n' for r in rows))\n")
    monkeypatch.setenv("PYTHONPATH", str(prog))
    path = write_sweep(tmp_path / "h.yaml", method="grid", metric={"name": "val/seen/loss"},
                       parameters={"a": {"value": 1}}, command=["${interpreter}", "-m", "hist_run", "${args}"])
    m = sw.run_local(path, out_dir=tmp_path / "out", quiet=True)
    assert m["runs"][0]["metric"] == 1.5 and m["runs"][0]["metric_source"] == "history.jsonl"


def test_read_metric(tmp_path):
    def at(summary):
        (tmp_path / "summary.json").write_text(json.dumps(summary))
        return sw.read_metric(tmp_path, "val/seen/loss")
    assert at({"val/seen/loss": 1.0}) == (1.0, "summary.json")
    assert at({"val": {"seen": {"loss": 2}}}) == (2.0, "summary.json")
    assert at({"val": {"seen/loss": 3.0}}) == (3.0, "summary.json")
    assert at({"val": {"seen": {"loss": "x"}}})[0] is None
    assert at({"val": {"seen": {"loss": True}}})[0] is None
    (tmp_path / "summary.json").write_text('{"val/seen/loss": NaN}')
    value, why = sw.read_metric(tmp_path, "val/seen/loss")
    assert value is None and "finite" in why
    value, why = at({"other": 1})
    assert value is None and "val/seen/loss" in why


# --------------------------------------------------------------------------- command line

def test_cli(tmp_path, fake_run, capsys):
    path = write_sweep(tmp_path / "g.yaml", **GRID)
    assert sw.main([str(path), "--local", "--dry-run", "--out", str(tmp_path / "o"), "--", "--z=1"]) == 0
    out = capsys.readouterr().out
    assert out.strip().endswith("6 runs") and out.count("--z=1") == 6
    assert sw.main([str(path)]) == 2  # W&B sweeps run on W&B: say how
    err = capsys.readouterr().err
    assert f"wandb sweep {path}" in err and "wandb agent ENTITY/PROJECT/ID" in err
    assert sw.main([str(tmp_path / "missing.yaml"), "--local"]) == 2
    assert "missing.yaml" in capsys.readouterr().err
    rnd = write_sweep(tmp_path / "r.yaml", **RANDOM)
    assert sw.main([str(rnd), "--local", "--dry-run"]) == 2  # random without --max-runs
    assert "max_runs" in capsys.readouterr().err
    assert sw.main([str(rnd), "--local", "--dry-run", "--max-runs", "2", "--seed", "4"]) == 0
    assert capsys.readouterr().out.strip().endswith("2 runs")
    assert sw.main([str(path), "--local", "--out", str(tmp_path / "o")]) == 1  # run 1 fails
    assert "5 of 6 runs succeeded" in capsys.readouterr().out


def test_cli_config_file_print_config_and_help(tmp_path, capsys):
    """The options from ``--config FILE`` (overridden by the options after it), printed resolved
    with ``--print_config`` (running nothing), an unknown key of the file refused with one error
    line, every option with its docstring in ``--help``."""
    rnd = write_sweep(tmp_path / "r.yaml", **RANDOM)
    opts = tmp_path / "opts.yaml"
    opts.write_text(f"sweep: {rnd}\nlocal: true\ndry_run: true\nmax_runs: 3\nout_dir_arg: --logging.out_dir\n")
    with pytest.raises(SystemExit) as e:
        sw.main(["--config", str(opts), "--seed", "4", "--print_config"])
    assert e.value.code == 0
    assert yaml.safe_load(capsys.readouterr().out) == {
        "sweep": str(rnd), "local": True, "seed": 4, "max_runs": 3, "out": None, "dry_run": True,
        "out_dir_arg": "--logging.out_dir"}
    assert sw.main(["--config", str(opts), "--max-runs", "2", "--out", str(tmp_path / "o"), "--", "--z=1"]) == 0
    out = capsys.readouterr().out
    assert out.strip().endswith("2 runs") and out.count("--z=1") == 2 and out.count("--logging.out_dir=") == 2
    assert not (tmp_path / "o").exists()  # a dry run
    (tmp_path / "bad.yaml").write_text(f"sweep: {rnd}\nmax_run: 3\n")
    with pytest.raises(SystemExit) as e:
        sw.main(["--config", str(tmp_path / "bad.yaml")])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and err[0].startswith("python -m omnirl.sweep: error: "), err
    assert "'max_run'" in err[0]
    with pytest.raises(SystemExit) as e:
        sw.main(["--help"])
    assert e.value.code == 0
    assert_help_lists_every_option(capsys.readouterr().out, sw.SweepOptions)


def test_engine_is_the_installed_package_from_the_repo_root(tmp_path):
    """The repository's ``sweeps/`` folder (sweep files, no ``__init__.py``) is a namespace portion
    named ``sweeps`` wherever the repository root is on ``sys.path`` (the current directory of
    ``python -c`` and ``python -m``, pytest's root); Python takes the installed regular package
    before it, wherever each sits on the path."""
    from importlib.machinery import PathFinder
    from importlib.metadata import distribution
    engine_file = str(distribution("sweeps").locate_file("sweeps/__init__.py"))
    assert sw.engine().__file__ == engine_file  # under pytest
    assert PathFinder.find_spec("sweeps", [str(REPO)] + sys.path).origin == engine_file  # the root first
    alone = PathFinder.find_spec("sweeps", [str(REPO)])
    assert alone.origin is None and str(REPO / "sweeps") in list(alone.submodule_search_locations)
    code = "import sys, sweeps; from omnirl.sweep import engine; assert sys.path[0] == ''; print(engine().__file__)"
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == engine_file, r.stderr
    grid = write_sweep(tmp_path / "g.yaml", method="grid", parameters={"a": {"values": [1, 2]}})
    r = subprocess.run([sys.executable, "-m", "omnirl.sweep", str(grid), "--local", "--dry-run"], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip().endswith("2 runs"), r.stderr


def test_engine_missing_says_how_to_install(monkeypatch):
    """Without the engine, ``sweeps`` from the repository root is only the folder: an ImportError
    naming the install command and the folder, never the folder taken for the engine."""
    monkeypatch.delitem(sys.modules, "sweeps", raising=False)
    monkeypatch.setattr(sys, "path", [str(REPO)])
    with pytest.raises(ImportError, match=r"pip install 'sweeps==0.2.0'") as e:
        sw.engine()
    assert str(REPO / "sweeps") in str(e.value) and "sweeps" not in sys.modules


def test_engine_missing_is_one_error_line(tmp_path, monkeypatch, capsys):
    def missing():
        raise ImportError(f"W&B's sweep engine is not installed: {sw.INSTALL_HINT}")

    monkeypatch.setattr(sw, "engine", missing)
    grid = write_sweep(tmp_path / "g.yaml", method="grid", parameters={"a": {"values": [1, 2]}})
    assert sw.main([str(grid), "--local", "--dry-run"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "pip install" in err[0]


# --------------------------------------------------------------------------- parameters vs config

def test_check_parameters():
    s = {"method": "grid", "parameters": {"train.lr": {"values": [0.001]}, "model.backbone": {"values": ["gdn"]},
                                          "data.validation.seen": {"value": "d/seen"}, "seeds": {"value": 3}}}
    assert sw.check_parameters(s, TrainConfig, prefixes=("model", "data", "train", "logging")) == \
        ["train.lr", "model.backbone", "data.validation.seen"]
    with pytest.raises(ValueError, match="'seeds'"):
        sw.check_parameters(s, TrainConfig)
    bad = {"method": "grid", "parameters": {"train.segment_length": {"value": 3}}}
    with pytest.raises(ValueError, match="train.segment_length.*no field 'segment_length'"):
        sw.check_parameters(bad, TrainConfig)
    with pytest.raises(ValueError, match="train.lr.x"):
        sw.check_parameters({"parameters": {"train.lr.x": {"value": 1}}}, TrainConfig)
    # values as the run reads them: a bad choice, a wrong type, and W&B's str() of a small float
    for params, match in [({"model.backbone": "lstm"}, "backbone must be one of"),
                          ({"train.max_steps": 1.5}, r"max_steps.*int.*1\.5")]:
        s2 = {"method": "grid", "parameters": {k: {"value": v} for k, v in params.items()}}
        with pytest.raises(ValueError, match=match):
            sw.check_parameters(s2, TrainConfig, configs=sw.expand(s2))
    # W&B's str() of a small float (1e-05) reads back as the float
    s3 = {"method": "grid", "parameters": {"train.lr": {"value": 1e-05}}}
    assert sw.check_parameters(s3, TrainConfig, configs=sw.expand(s3)) == ["train.lr"]


# --------------------------------------------------------------------------- this repository's sweeps

def grid_size(parameters) -> int:
    n = 1
    for spec in parameters.values():
        if "values" in spec:
            n *= len(spec["values"])
        elif "min" in spec and spec.get("distribution", "int_uniform") == "int_uniform":
            n *= spec["max"] - spec["min"] + 1
        elif spec.get("distribution") == "q_uniform":
            n *= len(np.arange(spec["min"], spec["max"], spec.get("q", 1)))
    return n


@pytest.mark.parametrize("path", SWEEP_FILES or [None], ids=[p.name for p in SWEEP_FILES] or ["none"])
def test_repository_sweep_files(path, tmp_path):
    if path is None:
        pytest.skip("no sweeps/*.yaml yet")
    s = sw.load_sweep(path)
    max_runs = None if s["method"] == "grid" else s.get("run_cap", 3)
    configs = sw.expand(s, seed=0, max_runs=max_runs)
    expected = grid_size(s["parameters"]) if s["method"] == "grid" else max_runs
    assert len(configs) == expected
    assert all(set(c) == set(s["parameters"]) for c in configs)
    # every training parameter is a real TrainConfig field and every value reads back as valid
    sw.check_parameters(s, TrainConfig, prefixes=("model", "data", "train", "logging"), configs=configs)
    plan = sw.run_local(path, seed=0, max_runs=max_runs, out_dir=tmp_path, dry_run=True)
    assert plan["n_runs"] == expected and all(math.isfinite(len(r["argv"])) for r in plan["runs"])
