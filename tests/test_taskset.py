"""Task sets: generation, storage, verification, resumption and the command line."""

import json
import os

import numpy as np
import pytest
import yaml

from omnirl.tasks import sample_anymdp
from omnirl.tasks.__main__ import main as cli
from omnirl.tasks.taskset import TaskSet, generate_to_disk, generation_spec, iter_tasks, parse_states
from tests.helpers import assert_help_lists_every_option


@pytest.fixture(scope="module")
def small_set():
    return TaskSet.generate(12, "8:16", 4, seed=3)


def test_generated_task_i_is_the_stream_seed_i(small_set):
    assert len(small_set) == 12
    assert small_set[5] == sample_anymdp(16, 4, seed=(3, 5), min_states=8)
    assert all(8 <= t.n_states <= 16 and t.n_obs == 16 for t in small_set)


def test_directory_and_single_file_roundtrip(small_set, tmp_path):
    d = small_set.save(tmp_path / "set", shard_size=5)
    assert sorted(p.name for p in d.iterdir() if p.suffix == ".npz") == [
        "shard-00000.npz", "shard-00001.npz", "shard-00002.npz"]
    loaded = TaskSet.load(d)
    assert loaded == small_set and loaded.content_hash() == small_set.content_hash()
    assert [t.content_hash() for t in loaded] == [t.content_hash() for t in small_set]
    assert list(iter_tasks(d)) == list(small_set)
    f = small_set.save(tmp_path / "set.npz")
    assert TaskSet.load(f) == small_set
    assert not list(tmp_path.glob("**/*.tmp"))


def test_parallel_generation_equals_serial(tmp_path):
    a = TaskSet.generate(20, 16, 3, seed=1, out=tmp_path / "a", workers=2, shard_size=4)
    b = TaskSet.generate(20, 16, 3, seed=1, out=tmp_path / "b", workers=1, shard_size=7)
    c = TaskSet.generate(20, 16, 3, seed=1)
    assert a == b == c
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["n_tasks"] == 20 and len(manifest["shards"]) == 5
    assert manifest["content_hash"] == c.content_hash()
    assert manifest["info"]["generator"] == "anymdp" and manifest["info"]["seed"] == 1


def test_write_behind_keeps_order_bounds_the_backlog_and_reraises():
    """Results come back in submission order on the caller's thread; at most ``depth`` calls wait
    unfinished; an error in a call is raised in the caller and the calls behind it never run."""
    import threading
    import time

    from omnirl._pool import write_behind
    got, ran, caller = [], [], threading.get_ident()

    def slow(i):
        time.sleep(0.02 * (3 - i % 3))
        ran.append(i)
        return i, threading.get_ident()

    def on_result(r):
        assert threading.get_ident() == caller
        got.append(r)

    with write_behind(on_result, depth=1) as submit:
        for i in range(6):
            submit(slow, i)
            assert len(ran) >= i - 1  # submit returned with at most one call behind
    assert [i for i, _ in got] == list(range(6)) and all(t != caller for _, t in got)

    def boom(i):
        if i == 1:
            raise OSError("disk full")
        ran.append(("after", i))
    ran.clear()
    with pytest.raises(OSError, match="disk full"):
        with write_behind(lambda r: None, depth=1) as submit:
            for i in range(5):
                submit(boom, i)
    assert ("after", 4) not in ran


def test_one_process_generation_writes_a_shard_while_sampling_the_next(tmp_path, monkeypatch):
    """The single-worker path hands each shard to the background writer and samples on; the files
    equal those of writing in line (same bytes, same sidecars)."""
    import threading

    from omnirl.tasks import taskset
    writers = set()
    real = taskset._write_shard
    monkeypatch.setattr(taskset, "_write_shard", lambda *a, **k: writers.add(threading.get_ident()) or real(*a, **k))
    spec = generation_spec(9, 16, 3, 2, "anymdp", shard_size=4, params={})
    generate_to_disk(spec, tmp_path / "a", workers=1)
    assert writers and threading.get_ident() not in writers
    monkeypatch.setattr(taskset, "_write_shard", real)
    inline = tmp_path / "b"
    inline.mkdir()
    for s in range(3):
        taskset._generate_shard(spec, str(inline), s)
    for s in range(3):
        for suffix in (".npz", ".json"):
            name = f"shard-{s:05d}{suffix}"
            assert (tmp_path / "a" / name).read_bytes() == (inline / name).read_bytes()


def test_generate_returns_the_tasks_it_sampled_and_loads_only_the_others(tmp_path, monkeypatch):
    """Generating to disk in this process keeps the sampled tasks (no read-back); shards sampled
    earlier (a resumed run) are loaded and verified."""
    from omnirl.tasks import taskset
    loaded = []
    real = taskset.load_shard
    monkeypatch.setattr(taskset, "load_shard", lambda root, entry: loaded.append(entry["index"]) or real(root, entry))
    fresh = TaskSet.generate(10, 16, 3, seed=4, out=tmp_path / "a", shard_size=4)
    assert loaded == [] and fresh == TaskSet.generate(10, 16, 3, seed=4)
    assert fresh.info == json.loads((tmp_path / "a" / "manifest.json").read_text())["info"]
    (tmp_path / "b").mkdir()
    for name in ("shard-00001.npz", "shard-00001.json"):  # shard 1 of an interrupted run
        (tmp_path / "b" / name).write_bytes((tmp_path / "a" / name).read_bytes())
    resumed = TaskSet.generate(10, 16, 3, seed=4, out=tmp_path / "b", shard_size=4)
    assert loaded == [1] and resumed == fresh
    assert [t.content_hash() for t in resumed] == [t.content_hash() for t in TaskSet.load(tmp_path / "b")]


def test_tampered_shard_is_refused(small_set, tmp_path):
    d = small_set.save(tmp_path / "set", shard_size=5)
    shard = d / "shard-00001.npz"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="shard-00001.npz: checksum mismatch"):
        TaskSet.load(d)


def test_truncated_shard_is_refused(small_set, tmp_path):
    d = small_set.save(tmp_path / "set", shard_size=5)
    shard = d / "shard-00002.npz"
    shard.write_bytes(shard.read_bytes()[:100])
    with pytest.raises(ValueError, match="shard-00002.npz: size"):
        TaskSet.load(d)


def test_edited_manifest_is_refused(small_set, tmp_path):
    d = small_set.save(tmp_path / "set", shard_size=5)
    m = json.loads((d / "manifest.json").read_text())
    m["content_hash"] = "0" * 64
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ValueError, match="content hash mismatch"):
        TaskSet.load(d)
    (d / "manifest.json").write_text("{ not json")
    with pytest.raises(ValueError, match="manifest is not valid JSON"):
        TaskSet.load(d)


def test_tampered_or_truncated_single_file_is_refused(small_set, tmp_path):
    f = small_set.save(tmp_path / "set.npz")
    raw = f.read_bytes()
    f.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="truncated or corrupted"):
        TaskSet.load(f)
    # a valid archive whose task data no longer matches its manifest
    arrays = dict(np.load(small_set.save(tmp_path / "ok.npz")))
    arrays["reward"] = arrays["reward"] + np.float32(1.0)
    np.savez(tmp_path / "edited.npz", **arrays)
    with pytest.raises(ValueError, match="content hash mismatch"):
        TaskSet.load(tmp_path / "edited.npz")


def test_resume_skips_finished_shards_and_redoes_broken_ones(tmp_path):
    spec = generation_spec(15, 16, 3, 2, "anymdp", 5, {})
    out = generate_to_disk(spec, tmp_path / "set", workers=1)
    t0 = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.npz")}
    # an interrupted run: shard 1 lost its sidecar (written last), shard 2 is gone, a temp file remains
    (out / "shard-00001.json").unlink()
    (out / "shard-00002.npz").unlink()
    (out / ".shard-00003.npz.abc.tmp").write_bytes(b"partial")
    os.utime(out / "shard-00000.npz", ns=(1, 1))
    generate_to_disk(spec, out, workers=1)
    assert (out / "shard-00000.npz").stat().st_mtime_ns == 1  # intact shard was not rewritten
    assert (out / "shard-00001.npz").stat().st_mtime_ns != t0["shard-00001.npz"]
    assert TaskSet.load(out) == TaskSet.generate(15, 16, 3, seed=2)
    # a task set of other parameters is never written over it: refused before anything is written
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    spec2 = generation_spec(15, 16, 3, 9, "anymdp", 5, {})
    with pytest.raises(ValueError, match="another task set"):
        generate_to_disk(spec2, out, workers=1)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # nor are the shards of an interrupted run of other parameters, nor foreign files
    (out / "manifest.json").unlink()
    with pytest.raises(ValueError, match=r"shard-\d+\.json' of another task set"):
        generate_to_disk(spec2, out, workers=1)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="notes.txt"):
        generate_to_disk(spec, other, workers=1)
    assert [p.name for p in other.iterdir()] == ["notes.txt"]
    # and a dataset directory is refused too
    from omnirl.data.generate import DatasetSpec, generate_dataset
    ds = tmp_path / "ds"
    generate_dataset(DatasetSpec(pipeline="omnirl", n_sequences=2, length=20, n_obs=16, n_actions=3, seed=1,
                                 task_set=str(generate_to_disk(generation_spec(3, 16, 3, 1, "anymdp", 5, {}),
                                                               tmp_path / "t3"))), ds)
    with pytest.raises(ValueError, match="another task set or a dataset"):
        generate_to_disk(spec, ds, workers=1)


def test_selection(small_set):
    train, test = small_set.split(8)
    assert len(train) == 8 and len(test) == 4 and list(train) + list(test) == list(small_set)
    a, b = small_set.split(0.5, 0.25)
    assert (len(a), len(b)) == (6, 3)
    s = small_set.sample(5, seed=0)
    assert len(s) == 5 and len({t.content_hash() for t in s}) == 5
    assert s == small_set.sample(5, seed=0) and s != small_set.sample(5, seed=1)
    sh = small_set.shuffle(seed=4)
    assert sorted(sh.task_hashes()) == sorted(small_set.task_hashes()) and sh != small_set
    assert isinstance(small_set[2:4], TaskSet) and len(small_set[2:4]) == 2


@pytest.mark.parametrize("call, name", [
    (lambda s: s.split(13), "train"),
    (lambda s: s.split(8, 5), "exceeds"),
    (lambda s: s.split(1.5), "train"),
    (lambda s: s.sample(13), "k"),
    (lambda s: s.save("x", shard_size=0), "shard_size"),
])
def test_selection_bad_input(small_set, call, name):
    with pytest.raises(ValueError, match=name):
        call(small_set)


def test_generation_bad_input(tmp_path):
    with pytest.raises(ValueError, match="n must be"):
        TaskSet.generate(0, 16, 5)
    with pytest.raises(ValueError, match="states"):
        parse_states("a:b")
    with pytest.raises(ValueError, match="MIN <= MAX"):
        parse_states("64:16")
    with pytest.raises(ValueError, match="workers"):
        TaskSet.generate(2, 16, 5, out=tmp_path / "w", workers=0)
    with pytest.raises(ValueError, match="does not exist"):
        TaskSet.load(tmp_path / "missing")
    with pytest.raises(ValueError, match="tasks\\[0\\]"):
        TaskSet(["not a task"])
    assert parse_states("16:128") == (128, 16) and parse_states(32) == (32, None)


def test_cli_generate_show(tmp_path, capsys):
    out = tmp_path / "cli"
    assert cli(["generate", "--n", "6", "--states", "8:16", "--actions", "3", "--seed", "1",
                "--out", str(out), "--workers", "2", "--shard-size", "2", "--quiet"]) == 0
    assert "6 tasks in" in capsys.readouterr().out
    assert TaskSet.load(out) == TaskSet.generate(6, "8:16", 3, seed=1)
    assert cli(["show", str(out)]) == 0
    text = capsys.readouterr().out
    assert "6 tasks" in text and "(verified)" in text and "sd_low_quarter" in text
    assert cli(["generate", "--n", "6", "--states", "4", "--out", str(tmp_path / "bad")]) == 2
    assert "n_states must be >= 8" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    assert cli(["generate", "--n", "3", "--generator", "garnet", "--param", "branching=2",
                "--states", "16", "--out", str(tmp_path / "g"), "--quiet"]) == 0
    assert TaskSet.load(tmp_path / "g")[0].generator == "garnet"


def test_cli_config_file_print_config_and_help(tmp_path, capsys):
    """Every subcommand reads its options from ``--config FILE`` (the options after it override or,
    for the repeated ``--param``, add to it), prints them resolved with ``--print_config`` (running
    nothing), refuses an unknown key of the file with one error line, and lists every option with
    its docstring in ``--help``."""
    from omnirl.tasks.__main__ import COMMANDS
    cfg, out = tmp_path / "gen.yaml", tmp_path / "g"
    cfg.write_text("n: 3\nstates: 8:16\ngenerator: garnet\nparam: [branching=2]\nquiet: true\n")
    with pytest.raises(SystemExit) as e:
        cli(["generate", "--config", str(cfg), "--out", str(out), "--param", "x=1", "--shard-size", "2",
             "--print_config"])
    assert e.value.code == 0 and not out.exists()
    assert yaml.safe_load(capsys.readouterr().out) == {
        "n": 3, "out": str(out), "states": "8:16", "actions": 5, "seed": 0, "generator": "garnet",
        "param": ["branching=2", "x=1"], "workers": 1, "shard_size": 2, "quiet": True}
    assert cli(["generate", "--config", str(cfg), "--out", str(out)]) == 0
    assert "3 tasks in" in capsys.readouterr().out
    ts = TaskSet.load(out)
    assert len(ts) == 3 and ts.info["params"] == {"branching": 2} and ts.info["min_states"] == 8
    (tmp_path / "plot.yaml").write_text("max_tasks: 2\npolicy: oracle\n")
    with pytest.raises(SystemExit) as e:
        cli(["plot", str(out), "--config", str(tmp_path / "plot.yaml"), "--print_config"])
    assert e.value.code == 0
    assert yaml.safe_load(capsys.readouterr().out) == {"path": str(out), "out": None, "index": 0, "policy": "oracle",
                                                       "max_tasks": 2}
    (tmp_path / "bad.yaml").write_text("n: 3\nshards: 2\n")
    with pytest.raises(SystemExit) as e:
        cli(["generate", "--config", str(tmp_path / "bad.yaml"), "--out", str(tmp_path / "z")])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1, err
    assert err[0].startswith("python -m omnirl.tasks generate: error: ") and "'shards'" in err[0]
    assert not (tmp_path / "z").exists()
    for name, command in COMMANDS.items():
        with pytest.raises(SystemExit) as e:
            cli([name, "--help"])
        assert e.value.code == 0
        assert_help_lists_every_option(capsys.readouterr().out, command.options)


def test_showcase_command_line(tmp_path, capsys):
    """``python -m experiments.anymdp_showcase``: ``--config FILE`` and ``--print_config``, an
    unknown key or a bad setting refused with one error line before anything runs, ``--help``."""
    from experiments.anymdp_showcase import ShowcaseOptions, main

    cfg = tmp_path / "showcase.yaml"
    cfg.write_text("n: 4\nstates: 16:32\nsim_steps: 50\n")
    with pytest.raises(SystemExit) as e:
        main(["--config", str(cfg), "--workers", "1", "--print_config"])
    assert e.value.code == 0
    assert yaml.safe_load(capsys.readouterr().out) == {"n": 4, "states": "16:32", "actions": 5, "seed": 0,
                                                       "workers": 1, "sim_steps": 50, "out": "runs/anymdp_showcase"}
    (tmp_path / "bad.yaml").write_text("n: 4\nsim_step: 50\n")
    with pytest.raises(SystemExit) as e:
        main(["--config", str(tmp_path / "bad.yaml")])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and "'sim_step'" in err[0], err
    assert err[0].startswith("python -m experiments.anymdp_showcase: error: ")
    assert main(["--config", str(cfg), "--states", "abc", "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: states") and "'abc'" in err[0], err
    assert not (tmp_path / "s").exists()
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    assert_help_lists_every_option(capsys.readouterr().out, ShowcaseOptions)
