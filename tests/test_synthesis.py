"""Step-wise-supervision synthesis and datasets: content follows the spec, output is
reproducible whatever the workers, interrupted runs resume, bad input is refused."""

import json

import numpy as np
import pytest
import yaml

from omnirl.agents import PriorInfo
from omnirl.agents.oracle import oracle_table
from omnirl.data.__main__ import main as cli
from omnirl.data.generate import DatasetSpec, generate_dataset, make_validation_sets, prepare_task_set
from omnirl.data.pipelines import PIPELINES, pipeline
from omnirl.data.schema import STEP_FIELDS
from omnirl.data.store import Dataset
from omnirl.data.synthesis import synthesize
from omnirl.tasks import sample_anymdp
from omnirl.tasks.taskset import TaskSet
from tests.helpers import assert_help_lists_every_option

S, A, T = 16, 5, 600
UNK = int(PriorInfo.UNKNOWN)


def run(tasks, seeds, name="omnirl", length=T):
    out = {f: np.zeros((len(tasks), length), dtype=np.float32 if f == "reward" else np.uint8)
           for f in STEP_FIELDS}
    synthesize(tasks, seeds, pipeline(name), length, out)
    return out


@pytest.fixture(scope="module")
def batch():
    tasks = [sample_anymdp(S, A, seed=(9, i), min_states=8) for i in range(24)]
    seeds = [(5, j) for j in range(24)]
    return tasks, seeds, run(tasks, seeds)


def episodes_of(row_action):
    """Index ranges of the steps of each episode (end markers excluded)."""
    ends = np.flatnonzero(row_action == A)
    starts = np.concatenate([[0], ends + 1])
    return [(a, b) for a, b in zip(starts, np.concatenate([ends, [len(row_action)]])) if b > a]


def test_labels_are_the_reference_oracle_and_prompts_say_so(batch):
    tasks, _, d = batch
    for b, task in enumerate(tasks):
        step = d["action"][b] != A
        table = oracle_table(task, 0.994)
        np.testing.assert_array_equal(d["label"][b][step], table[d["obs"][b][step]])
        assert (d["prompt"][b][step] == int(PriorInfo.ORACLE_G0994)).all()


def test_tags_match_who_acted(batch):
    tasks, _, d = batch
    checked = 0
    for b, task in enumerate(tasks):
        tables = {g: oracle_table(task, gamma) for g, gamma in
                  {0: 0.0, 1: 0.5, 2: 0.93, 3: 0.994}.items()}
        for g, table in tables.items():
            m = d["tag"][b] == g
            np.testing.assert_array_equal(d["action"][b][m], table[d["obs"][b][m]])
            checked += m.sum()
        assert set(np.unique(d["tag"][b])) <= set(range(8))
    assert checked > 1000  # oracles act a good share of the steps


def test_end_markers(batch):
    tasks, _, d = batch
    n_markers = 0
    for b, task in enumerate(tasks):
        marker = d["action"][b] == A
        n_markers += marker.sum()
        assert (d["reward"][b][marker] == 0).all()
        assert (d["tag"][b][marker] == UNK).all() and (d["prompt"][b][marker] == UNK).all()
        assert (d["label"][b][marker] == A).all()
        rank = task.rank_of_obs
        starts = set(task.state_ids[task.start_states].tolist())
        for lo, hi in episodes_of(d["action"][b]):
            if hi < T:  # a complete episode: ends in a marker
                terminal = task.terminal[rank[d["obs"][b][hi]]]
                assert terminal or hi - lo == task.max_steps  # terminated or truncated
                assert (d["action"][b][lo:hi] < A).all()
            if lo > 0:
                assert int(d["obs"][b][lo]) in starts  # a new episode begins in a start state
    assert n_markers > 50


def test_tag_masking_rates():
    tasks = [sample_anymdp(S, A, seed=(3, i % 8)) for i in range(200)]
    d = run(tasks, [(11, j) for j in range(200)], length=400)
    step = d["action"] != A
    all_masked = np.array([(d["tag"][b][step[b]] == UNK).all() for b in range(200)])
    assert 0.07 < all_masked.mean() < 0.25  # 15% of sequences, plus those whose every episode was masked
    eps_masked, eps = 0, 0
    for b in np.flatnonzero(~all_masked):
        for lo, hi in episodes_of(d["action"][b]):
            eps += 1
            eps_masked += (d["tag"][b][lo:hi] == UNK).all()
    assert 0.10 < eps_masked / eps < 0.20  # 15% of episodes


def test_no_prior_masks_everything_and_behaviour_labels():
    tasks = [sample_anymdp(S, A, seed=(3, i)) for i in range(6)]
    seeds = [(1, j) for j in range(6)]
    d = run(tasks, seeds, "omnirl_noprior", 300)
    assert (d["tag"] == UNK).all()
    for name in ("ad", "ad_epsilon"):
        d = run(tasks, seeds, name, 300)
        step = d["action"] != A
        np.testing.assert_array_equal(d["label"][step], d["action"][step])  # label = behaviour
        np.testing.assert_array_equal(d["prompt"][step], d["tag"][step])
    d = run(tasks, seeds, "dpt", 300)
    assert set(np.unique(d["tag"][d["action"] != A])) <= {int(PriorInfo.RANDOM), int(PriorInfo.ORACLE_G0994)}


def test_a_sequence_does_not_depend_on_its_batch(batch):
    tasks, seeds, d = batch
    alone = run(tasks[5:6], seeds[5:6])
    other = run([tasks[5], tasks[0], tasks[9]], [seeds[5], (77, 1), (77, 2)])
    for f in STEP_FIELDS:
        np.testing.assert_array_equal(alone[f][0], d[f][5])
        np.testing.assert_array_equal(other[f][0], d[f][5])


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("ds") / "tasks_only"
    return prepare_task_set(out, 5, "8:16", A, task_seed=2)


def spec(task_dir, **kw):
    args = dict(pipeline="omnirl", n_sequences=11, length=300, n_obs=S, n_actions=A, seed=4,
                task_set=str(task_dir), shard_size=4)
    args.update(kw)
    return DatasetSpec(**args)


def read_all(path):
    ds = Dataset.open(path)
    return {f: np.stack([ds.sequence(j)[f] for j in range(len(ds))]) for f in STEP_FIELDS + ("task_index",)}


def test_dataset_is_identical_whatever_the_workers_and_batch(task_dir, tmp_path):
    m1 = generate_dataset(spec(task_dir), tmp_path / "a", workers=1, batch=3)
    m2 = generate_dataset(spec(task_dir), tmp_path / "b", workers=2, batch=16)
    assert m1["content_hash"] == m2["content_hash"]
    d = read_all(tmp_path / "a")
    assert d["task_index"].tolist() == [j % 5 for j in range(11)]  # sequences cycle over the N tasks
    assert m1["n_sequences"] == 11 and m1["length"] == 300 and m1["n_shards"] == 3
    assert m1["task_set_hash"] == TaskSet.load(task_dir).content_hash()


def test_a_task_set_sampled_here_makes_the_data_of_the_stored_one(task_dir, tmp_path, monkeypatch):
    """The command line's task set is used as sampled (never read back from its shards) and gives
    the very dataset of the same task set loaded from disk."""
    from omnirl.data.generate import load_task_set
    from omnirl.tasks import taskset
    monkeypatch.setattr(taskset, "load_shard", lambda *a: pytest.fail("a task set sampled here was read back"))
    path, tasks = load_task_set(tmp_path / "out", 5, "8:16", A, task_seed=2)
    monkeypatch.undo()
    assert tasks == TaskSet.load(task_dir)
    sampled = generate_dataset(spec(path), tmp_path / "out", batch=3, tasks=tasks)
    stored = generate_dataset(spec(task_dir), tmp_path / "stored", batch=3)  # loads its task set
    assert sampled["content_hash"] == stored["content_hash"]


def interrupt_synthesis_at_call(monkeypatch, n: int):
    """Make the ``n``-th call of dataset generation's ``synthesize`` raise ``KeyboardInterrupt``;
    returns the real ``synthesize``."""
    import omnirl.data.generate as gen
    real = gen.synthesize
    calls = {"n": 0}

    def dying(*args, **kw):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(gen, "synthesize", dying)
    return real


def test_resume_after_a_run_interrupted_within_a_batch_of_shards(task_dir, tmp_path, monkeypatch):
    import omnirl.data.generate as gen
    real = interrupt_synthesis_at_call(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):  # shards of 2, 4 at a time: dies in shards 2 and 3
        generate_dataset(spec(task_dir, shard_size=2), tmp_path / "r", workers=1, batch=4)
    assert not list((tmp_path / "r").glob("*.tmp")) and not list((tmp_path / "r").glob(".*tmp"))
    assert sorted(p.name for p in (tmp_path / "r").glob("shard-*.bin")) == ["shard-00000.bin", "shard-00001.bin"]
    monkeypatch.setattr(gen, "synthesize", real)
    m = generate_dataset(spec(task_dir, shard_size=2), tmp_path / "r", workers=1, batch=4)
    ref = generate_dataset(spec(task_dir, shard_size=2), tmp_path / "ref", workers=1, batch=3)
    assert m["content_hash"] == ref["content_hash"]


def test_resume_after_an_interrupted_run(task_dir, tmp_path, monkeypatch):
    import omnirl.data.generate as gen
    real = interrupt_synthesis_at_call(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(spec(task_dir), tmp_path / "r", workers=1, batch=4)
    assert not list((tmp_path / "r").glob("*.tmp")) and not list((tmp_path / "r").glob(".*tmp"))
    monkeypatch.setattr(gen, "synthesize", real)
    m = generate_dataset(spec(task_dir), tmp_path / "r", workers=1, batch=4)
    ref = generate_dataset(spec(task_dir), tmp_path / "ref", workers=1, batch=4)
    assert m["content_hash"] == ref["content_hash"]
    seq = read_all(tmp_path / "r")
    assert len(seq["obs"]) == 11


def test_another_dataset_in_the_directory_is_refused(task_dir, tmp_path):
    generate_dataset(spec(task_dir), tmp_path / "x")
    before = {p.name: p.read_bytes() for p in (tmp_path / "x").iterdir() if p.is_file()}
    with pytest.raises(ValueError, match="seed"):
        generate_dataset(spec(task_dir, seed=5), tmp_path / "x")
    with pytest.raises(ValueError, match="n_sequences"):
        generate_dataset(spec(task_dir, n_sequences=12), tmp_path / "x")
    after = {p.name: p.read_bytes() for p in (tmp_path / "x").iterdir() if p.is_file()}
    assert before == after


def test_validation_sets(task_dir, tmp_path):
    generate_dataset(spec(task_dir), tmp_path / "train")
    res = make_validation_sets(tmp_path / "train", tmp_path / "val", 6)
    seen, unseen = Dataset.open(tmp_path / "val" / "seen"), Dataset.open(tmp_path / "val" / "unseen")
    train_hashes = {t.content_hash() for t in TaskSet.load(task_dir)}
    from omnirl.data.schema import task_hash_hex
    assert {task_hash_hex(seen.sequence(j)["task_hash"]) for j in range(6)} <= train_hashes
    assert not {task_hash_hex(unseen.sequence(j)["task_hash"]) for j in range(6)} & train_hashes
    assert res["seen"]["content_hash"] != read_all(tmp_path / "train")
    assert set(res) == {"seen", "unseen"}  # no probe unless asked for


def test_validation_probe_is_the_unseen_tasks_under_a_random_policy(task_dir, tmp_path):
    from omnirl.data.generate import PROBE

    generate_dataset(spec(task_dir), tmp_path / "train")
    res = make_validation_sets(tmp_path / "train", tmp_path / "val", 6, probe=True)
    assert set(res) == {"seen", "unseen", PROBE}
    unseen, probe = read_all(tmp_path / "val" / "unseen"), read_all(tmp_path / "val" / PROBE)
    hashes = [Dataset.open(tmp_path / "val" / n).sequence(j)["task_hash"].tobytes()
              for n in ("unseen", PROBE) for j in range(6)]
    assert hashes[:6] == hashes[6:]  # the same unseen tasks
    steps = probe["label"] < A  # not episode-end markers
    assert (probe["tag"][steps] == int(PriorInfo.RANDOM)).all()  # every action random, none masked
    assert (unseen["tag"][unseen["label"] < A] != int(PriorInfo.RANDOM)).any()  # the mix has other behaviours
    assert (probe["label"][steps] != probe["action"][steps]).mean() > 0.5  # the labels are the oracle's


def test_uniform_and_myopic_probes(task_dir, tmp_path):
    from omnirl.data.generate import _fresh_task
    from omnirl.tasks.solver import greedy_actions, expected_reward, task_arrays

    generate_dataset(spec(task_dir), tmp_path / "train")
    res = make_validation_sets(tmp_path / "train", tmp_path / "val", 6, probes=("uniform_probe", "myopic_probe"))
    assert set(res) == {"seen", "unseen", "uniform_probe", "myopic_probe"}
    unseen_spec = DatasetSpec(**{**spec(task_dir).__dict__, "n_sequences": 6, "seed": 5, "task_set": None})
    hashes = {n: [Dataset.open(tmp_path / "val" / n).sequence(j)["task_hash"].tobytes() for j in range(6)]
              for n in ("unseen", "uniform_probe", "myopic_probe")}
    assert hashes["unseen"] == hashes["uniform_probe"] == hashes["myopic_probe"]  # the same unseen tasks
    for name, oracle, gamma in (("uniform_probe", PriorInfo.ORACLE_G0994, 0.994), ("myopic_probe", PriorInfo.ORACLE_G0, 0.0)):
        d = read_all(tmp_path / "val" / name)
        steps = d["label"] < A  # not episode-end markers
        assert (d["tag"][steps] == int(PriorInfo.RANDOM)).all() and (d["prompt"][steps] == int(oracle)).all()
        share = np.bincount(d["action"][steps], minlength=A) / steps.sum()
        assert np.abs(share - 1 / A).max() < 0.03, share  # uniform: every action as often
        for j in range(6):
            task = _fresh_task(unseen_spec, j)
            if gamma == 0.0:  # the best immediate reward, computed here from the task's arrays
                table = np.zeros(task.n_obs, dtype=np.int64)
                table[task.state_ids] = greedy_actions(expected_reward(*task_arrays(task)))
            else:
                table = oracle_table(task, gamma)
            assert np.array_equal(d["label"][j][steps[j]], table[d["obs"][j][steps[j]]]), (name, j)
    myopic, uniform = read_all(tmp_path / "val" / "myopic_probe"), read_all(tmp_path / "val" / "uniform_probe")
    assert (myopic["label"] != uniform["label"]).any()


def test_uniform_probe_on_bandits_is_the_bandit_probe(tmp_path):
    tasks_dir = prepare_task_set(tmp_path / "bandits", 4, "1", A, task_seed=3)
    bandit = DatasetSpec(pipeline="uniform_probe", n_sequences=4, length=400, n_obs=1, n_actions=A, seed=2,
                         task_set=str(tasks_dir))
    generate_dataset(bandit, tmp_path / "d")
    d = read_all(tmp_path / "d")
    tasks = TaskSet.load(tasks_dir)
    steps = d["label"] < A  # every other entry is an episode-end marker: episodes of one pull
    assert steps.mean() == pytest.approx(0.5, abs=0.01) and (d["obs"] == 0).all()
    for j in range(4):
        arms = tasks[int(d["task_index"][j])].reward[0, :, 0]  # (A,) mean reward of each arm
        assert (d["label"][j][steps[j]] == int(np.argmax(arms))).all()  # the best arm
    share = np.bincount(d["action"][steps], minlength=A) / steps.sum()
    assert np.abs(share - 1 / A).max() < 0.05, share


def test_unknown_probe_is_refused_before_anything_is_written(task_dir, tmp_path):
    generate_dataset(spec(task_dir), tmp_path / "train")
    with pytest.raises(ValueError, match="probes"):
        make_validation_sets(tmp_path / "train", tmp_path / "val", 6, probes=("uniform_probe", "greedy_probe"))
    assert not (tmp_path / "val").exists()


@pytest.mark.parametrize("kw, name", [
    (dict(pipeline="gato"), "pipeline"),
    (dict(length=1), "length"),
    (dict(n_sequences=0), "n_sequences"),
    (dict(seed=-1), "seed"),
])
def test_bad_spec(task_dir, kw, name):
    with pytest.raises(ValueError, match=name):
        spec(task_dir, **kw)


def test_cli(tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["generate", "--tasks", "3", "--sequences", "5", "--length", "200", "--states", "16",
            "--out", str(out), "--shard-size", "2", "--quiet"]
    assert cli(args) == 0
    assert "5 sequences x 200 steps" in capsys.readouterr().out
    assert cli(args) == 0  # rerun: everything is there already
    assert cli(["verify", str(out)]) == 0
    assert cli(["validation", str(out), "--sequences", "2", "--out", str(tmp_path / "val"), "--probe"]) == 0
    assert [line.split(":")[0] for line in capsys.readouterr().out.splitlines()[-3:]] == ["seen", "unseen", "probe"]
    assert cli(["validation", str(out), "--sequences", "2", "--out", str(tmp_path / "val2"),
                "--probes", "myopic_probe"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("myopic_probe: 2 sequences")
    assert cli(["validation", str(out), "--sequences", "2", "--out", str(tmp_path / "val3"),
                "--probes", "nope"]) == 2
    assert "probes" in capsys.readouterr().err and not (tmp_path / "val3").exists()
    shard = out / "shard-00001.bin"
    raw = bytearray(shard.read_bytes())
    raw[100] ^= 0xFF
    shard.write_bytes(bytes(raw))
    assert cli(["verify", str(out)]) == 1
    assert "shard-00001.bin" in capsys.readouterr().out
    assert cli(["generate", "--tasks", "0", "--sequences", "5", "--length", "200", "--out", str(tmp_path / "z")]) == 2
    assert cli(["generate", "--tasks", "3", "--sequences", "5", "--length", "1", "--out", str(tmp_path / "z")]) == 2
    assert cli(["generate", "--tasks", "3", "--sequences", "5", "--length", "9", "--pipeline", "x",
                "--out", str(tmp_path / "z")]) == 2
    assert not (tmp_path / "z").exists()
    # a directory holding another dataset's task set is refused without touching it
    assert cli(["generate", "--tasks", "4", "--sequences", "5", "--length", "200", "--states", "16",
                "--out", str(out), "--quiet"]) == 2
    assert "another task set" in capsys.readouterr().err


def test_cli_config_file_print_config_and_help(tmp_path, capsys):
    """Every subcommand reads its options from ``--config FILE`` (overridden by the options after
    it), prints them resolved with ``--print_config`` (running nothing), refuses an unknown key of
    the file with one error line, and lists every option with its docstring in ``--help``."""
    from omnirl.data.__main__ import COMMANDS
    cfg, out = tmp_path / "gen.yaml", tmp_path / "ds"
    cfg.write_text("tasks: 3\nsequences: 4\nlength: 16\nstates: 8:16\nshard_size: 2\nquiet: true\n")
    with pytest.raises(SystemExit) as e:
        cli(["generate", "--config", str(cfg), "--out", str(out), "--task-seed", "5", "--print_config"])
    assert e.value.code == 0 and not out.exists()
    assert yaml.safe_load(capsys.readouterr().out) == {
        "tasks": 3, "sequences": 4, "length": 16, "out": str(out), "pipeline": "omnirl", "states": "8:16",
        "actions": 5, "seed": 0, "task_seed": 5, "shard_size": 2, "batch": 1024, "workers": 1, "backend": "local",
        "ray_address": None, "quiet": True}
    assert cli(["generate", "--config", str(cfg), "--out", str(out), "--length", "8"]) == 0
    text = capsys.readouterr().out
    assert "4 sequences x 8 steps" in text and "(2 shards)" in text
    assert TaskSet.load(out / "tasks").info["n_states"] == 16 and len(TaskSet.load(out / "tasks")) == 3
    (tmp_path / "val.yaml").write_text(f"path: {out}\nsequences: 2\nprobe: true\n")
    with pytest.raises(SystemExit) as e:
        cli(["validation", "--config", str(tmp_path / "val.yaml"), "--out", str(tmp_path / "val"), "--print_config"])
    assert e.value.code == 0 and yaml.safe_load(capsys.readouterr().out)["probe"] is True
    (tmp_path / "bad.yaml").write_text("tasks: 3\nsequenses: 4\n")
    with pytest.raises(SystemExit) as e:
        cli(["generate", "--config", str(tmp_path / "bad.yaml"), "--out", str(tmp_path / "z")])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1, err
    assert err[0].startswith("python -m omnirl.data generate: error: ") and "'sequenses'" in err[0]
    assert not (tmp_path / "z").exists()
    for name, command in COMMANDS.items():
        with pytest.raises(SystemExit) as e:
            cli([name, "--help"])
        assert e.value.code == 0
        text = capsys.readouterr().out
        assert "--config CONFIG" in text and "--print_config" in text
        assert_help_lists_every_option(text, command.options)


def test_all_pipelines_are_named():
    assert set(PIPELINES) == {"omnirl", "omnirl_noprior", "ad", "ad_epsilon", "dpt", "random_probe",
                              "uniform_probe", "myopic_probe", "myopic_mix", "myopic_uneven", "bandit", "bandit_thompson", "bandit_posterior",
                              "bandit_switch"}
    assert json.dumps(pipeline("omnirl").to_dict())
    assert json.dumps(pipeline("bandit").to_dict()) and pipeline("bandit").bandit and not pipeline("omnirl").bandit


def test_sequences_do_not_depend_on_the_shard_size(task_dir, tmp_path):
    generate_dataset(spec(task_dir, shard_size=4), tmp_path / "a")
    m = generate_dataset(spec(task_dir, shard_size=11), tmp_path / "b")
    assert m["n_shards"] == 1
    a, b = read_all(tmp_path / "a"), read_all(tmp_path / "b")
    for f in a:
        np.testing.assert_array_equal(a[f], b[f])


def test_a_batch_spans_shards(task_dir, tmp_path, monkeypatch):
    import omnirl.data.generate as gen
    real, sizes = gen.synthesize, []

    def counted(tasks, *args, **kw):
        sizes.append(len(tasks))
        return real(tasks, *args, **kw)

    monkeypatch.setattr(gen, "synthesize", counted)
    m = generate_dataset(spec(task_dir, shard_size=2), tmp_path / "a", batch=8)
    assert m["n_shards"] == 6 and sizes == [8, 3]  # shards of 2 simulated 8 at a time, not 2
    sizes.clear()
    generate_dataset(spec(task_dir, shard_size=3), tmp_path / "b", batch=100)
    assert sizes == [11]
    sizes.clear()
    generate_dataset(spec(task_dir, shard_size=11), tmp_path / "c", batch=4)
    assert sizes == [4, 4, 3]  # a shard larger than the batch is simulated in parts
    ref = read_all(tmp_path / "a")
    for other in ("b", "c"):
        d = read_all(tmp_path / other)
        for f in ref:
            np.testing.assert_array_equal(ref[f], d[f])
    ds, ts = Dataset.open(tmp_path / "a"), TaskSet.load(task_dir)
    from omnirl.data.schema import task_hash_hex
    assert [int(ds.sequence(j)["sequence_index"]) for j in range(11)] == list(range(11))
    assert [task_hash_hex(ds.sequence(j)["task_hash"]) for j in range(11)] == [
        ts[j % 5].content_hash() for j in range(11)]


def test_a_loaded_task_set_is_used_when_it_is_the_spec_s(task_dir, tmp_path):
    from omnirl.data.generate import load_task_set
    path, tasks = load_task_set(task_dir.parent, 5, "8:16", A, task_seed=2)
    assert path == task_dir and tasks == TaskSet.load(task_dir)
    m = generate_dataset(spec(task_dir), tmp_path / "a", tasks=tasks)
    assert m["content_hash"] == generate_dataset(spec(task_dir), tmp_path / "b")["content_hash"]
    with pytest.raises(ValueError, match="content hash differs"):
        generate_dataset(spec(task_dir), tmp_path / "c", tasks=tasks[:4])
    with pytest.raises(ValueError, match="fresh tasks"):
        generate_dataset(spec(task_dir, task_set=None), tmp_path / "c", tasks=tasks)
    assert not (tmp_path / "c").exists()


def test_shard_groups_fill_the_batch_and_every_worker():
    from omnirl.data.generate import shard_groups
    sp = DatasetSpec(pipeline="omnirl", n_sequences=100, length=10, n_obs=S, n_actions=A, seed=0, shard_size=10)
    assert shard_groups(sp, list(range(10)), batch=40) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert shard_groups(sp, [1, 4, 5, 9], batch=25) == [[1, 4], [5, 9]]  # any shards, in order
    assert shard_groups(sp, list(range(10)), batch=5) == [[s] for s in range(10)]
    assert shard_groups(sp, list(range(10)), batch=1000, workers=3) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_synthesis_into_row_blocks_equals_one_block(batch):
    tasks, seeds, d = batch
    cut = (0, 5, 6, 24)
    blocks = [{f: np.zeros((hi - lo, T), dtype=d[f].dtype) for f in STEP_FIELDS} for lo, hi in zip(cut, cut[1:])]
    synthesize(tasks, seeds, pipeline("omnirl"), T, blocks)
    for f in STEP_FIELDS:
        np.testing.assert_array_equal(np.concatenate([b[f] for b in blocks]), d[f])
    with pytest.raises(ValueError, match="24 rows"):
        synthesize(tasks, seeds, pipeline("omnirl"), T, blocks[:2])
    short = [{f: np.zeros((24, T - 1), dtype=d[f].dtype) for f in STEP_FIELDS}]
    with pytest.raises(ValueError, match=r"out\[0\]\['obs'\] must have shape"):
        synthesize(tasks, seeds, pipeline("omnirl"), T, short)


def test_myopic_uneven_tries_actions_unevenly_without_favouring_the_label(batch):
    tasks, seeds, _ = batch
    uneven, uniform = run(tasks, seeds, "myopic_uneven"), run(tasks, seeds, "myopic_probe")
    for d in (uneven, uniform):
        steps = d["label"] < A
        assert (d["tag"][steps] == int(PriorInfo.RANDOM)).all()
        assert (d["prompt"][steps] == int(PriorInfo.ORACLE_G0)).all()
    for j in range(len(tasks)):  # both labelled with the best immediate action of the state
        table = {}
        for d in (uneven, uniform):
            steps = d["label"][j] < A
            for o, a in zip(d["obs"][j][steps].tolist(), d["label"][j][steps].tolist()):
                assert table.setdefault(o, a) == a

    def top_share(d):  # per sequence and state, the share of the state's most tried action
        out = []
        for j in range(len(tasks)):
            steps = d["label"][j] < A
            for o in np.unique(d["obs"][j][steps]):
                acts = d["action"][j][steps & (d["obs"][j] == o)]
                if len(acts) >= 20:
                    out.append(np.bincount(acts, minlength=A).max() / len(acts))
        return np.array(out)

    assert top_share(uniform).mean() + 0.1 < top_share(uneven).mean()
    steps = uneven["label"] < A
    hit = (uneven["action"][steps] == uneven["label"][steps]).mean()
    assert abs(hit - 1 / A) < 0.06, hit  # how often an action is tried says nothing of the label
