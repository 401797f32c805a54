"""The sequence store: round trip, zero-copy reads, resumption, refusal of damaged or foreign data."""

import errno
import json
import os

import numpy as np
import pytest

from omnirl.data import (Dataset, DatasetHeader, DatasetWriter, column_specs, schema_markdown,
                         task_hash_bytes, task_hash_hex, verify)
from omnirl.data.__main__ import main as cli
from omnirl.data.store import MANIFEST, shard_layout

TASK_SET_HASH = "ab" * 32


def make_header(**kw):
    base = dict(n_obs=16, n_actions=4, length=12, n_sequences=10, shard_size=3,
                task_set_hash=TASK_SET_HASH, config={"generator": "anymdp", "seed": 7})
    base.update(kw)
    return DatasetHeader(**base)


def make_columns(header, s, seed=0):
    """Random but schema-valid columns for shard ``s``."""
    rng = np.random.default_rng((seed, s))
    n, first, T = header.shard_rows(s), header.shard_first(s), header.length
    specs = column_specs(header.n_obs, T)
    cols = {
        "obs": rng.integers(0, header.n_obs, (n, T)).astype(specs["obs"][0]),
        "action": rng.integers(0, header.n_actions + 1, (n, T)).astype(np.uint8),
        "reward": rng.standard_normal((n, T)).astype(np.float32),
        "tag": rng.integers(0, 8, (n, T)).astype(np.uint8),
        "prompt": rng.integers(0, 8, (n, T)).astype(np.uint8),
        "label": rng.integers(0, header.n_actions + 1, (n, T)).astype(np.uint8),
        "task_index": rng.integers(-1, 100, n).astype(np.int64),
        "sequence_index": np.arange(first, first + n, dtype=np.int64),
        "task_hash": rng.integers(0, 256, (n, 32)).astype(np.uint8),
    }
    return cols


def write_all(path, header, shards=None, seed=0):
    w = DatasetWriter(path, header)
    for s in (range(header.n_shards) if shards is None else shards):
        w.write_shard(s, make_columns(header, s, seed))
    return w


def snapshot(path):
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


@pytest.fixture
def dataset(tmp_path):
    header = make_header()
    d = tmp_path / "ds"
    write_all(d, header).finalize()
    return d, header


def test_round_trip_is_bit_identical(dataset):
    d, header = dataset
    ds = Dataset.open(d)
    assert len(ds) == 10 and ds.header == header and ds.n_shards == 4
    for s in range(header.n_shards):
        want, got = make_columns(header, s), ds.shard(s)
        assert set(got) == set(want)
        for name in want:
            assert got[name].dtype == want[name].dtype and got[name].shape == want[name].shape
            assert got[name].tobytes() == want[name].tobytes(), name
    seq = ds.sequence(7)  # shard 2, row 1
    want = make_columns(header, 2)
    assert seq["obs"].shape == (12,) and np.array_equal(seq["obs"], want["obs"][1])
    assert int(seq["sequence_index"]) == 7 and int(seq["task_index"]) == want["task_index"][1]
    assert np.array_equal(seq["task_hash"], want["task_hash"][1])
    win = ds.window(7, 3, 5)
    assert all(win[k].shape == (5,) for k in ("obs", "action", "reward", "tag", "prompt", "label"))
    assert np.array_equal(win["reward"], want["reward"][1, 3:8])
    with pytest.raises(ValueError, match="length"):
        ds.window(7, 10, 5)
    with pytest.raises(ValueError, match="sequence"):
        ds.sequence(10)
    assert not list(d.glob("*.tmp")) and not list(d.glob(".*.tmp"))
    assert verify(d)["ok"] and cli(["verify", str(d)]) == 0


def test_manifest_contents(dataset):
    d, header = dataset
    m = json.loads((d / MANIFEST).read_text())
    assert m["format"] == "omnirl.sws" and m["schema_version"] == 1
    assert (m["n_obs"], m["n_actions"], m["length"], m["n_sequences"]) == (16, 4, 12, 10)
    assert m["task_set_hash"] == TASK_SET_HASH and m["config"] == {"generator": "anymdp", "seed": 7}
    assert [f["name"] for f in m["fields"]][:2] == ["obs", "action"]
    assert [e["n_sequences"] for e in m["shards"]] == [3, 3, 3, 1]
    side = json.loads((d / "shard-00003.json").read_text())
    assert side["sha256"] == m["shards"][3]["sha256"] and side["first_sequence"] == 9
    assert side["header_hash"] == header.header_hash() == m["header_hash"]
    assert (d / "shard-00003.bin").stat().st_size == side["bytes"]
    assert "| `obs` |" in schema_markdown()


def test_columns_are_memory_mapped_views(dataset):
    d, _ = dataset
    ds = Dataset.open(d)
    cols = ds.shard(1)
    for name, a in cols.items():
        assert isinstance(a, np.memmap), name
        assert not a.flags.owndata and not a.flags.writeable
    win = ds.window(4, 2, 6)
    assert isinstance(win["obs"], np.memmap) and np.shares_memory(win["obs"], cols["obs"])


def test_header_hash_is_stable_and_validated():
    a, b = make_header(), make_header(config={"seed": 7, "generator": "anymdp"})
    assert a.header_hash() == b.header_hash() and a == b and hash(a) == hash(b)
    assert make_header(n_sequences=11).header_hash() != a.header_hash()
    assert make_header(n_obs=300).header_hash() != a.header_hash()
    with pytest.raises(ValueError, match="n_actions"):
        make_header(n_actions=256)
    with pytest.raises(ValueError, match="task_set_hash"):
        make_header(task_set_hash="xyz")
    with pytest.raises(ValueError, match="config"):
        make_header(config={"f": object()})
    with pytest.raises(ValueError, match="schema_version"):
        make_header(schema_version=2)
    assert task_hash_hex(task_hash_bytes(TASK_SET_HASH)) == TASK_SET_HASH


def test_large_observation_space_uses_int16(tmp_path):
    header = make_header(n_obs=1000, n_sequences=4, shard_size=4)
    write_all(tmp_path / "ds", header).finalize()
    ds = Dataset.open(tmp_path / "ds")
    assert ds.shard(0)["obs"].dtype == np.int16
    assert np.array_equal(ds.shard(0)["obs"], make_columns(header, 0)["obs"])


def test_resume_writes_only_missing_shards(tmp_path):
    header = make_header(n_sequences=12, shard_size=3)
    d = tmp_path / "ds"
    assert DatasetWriter(d, header).missing_shards() == [0, 1, 2, 3]
    write_all(d, header, shards=[0, 2])
    before = {p: (d / p).stat().st_mtime_ns for p in ("shard-00000.bin", "shard-00002.bin")}
    w = DatasetWriter(d, header)
    assert w.missing_shards() == [1, 3]
    with pytest.raises(ValueError, match=r"cannot finalize.*\[1, 3\]"):
        w.finalize()
    for s in w.missing_shards():
        w.write_shard(s, make_columns(header, s))
    assert w.missing_shards() == []
    m = w.finalize()
    assert len(m["shards"]) == 4
    assert before == {p: (d / p).stat().st_mtime_ns for p in before}
    ds = Dataset.open(d)
    idx = np.concatenate([ds.shard(s)["sequence_index"] for s in range(4)])
    assert np.array_equal(idx, np.arange(12))  # no sequence duplicated or lost
    # a finished dataset reopened with the same header has nothing left to do
    assert DatasetWriter(d, header).missing_shards() == []


def test_resume_rewrites_a_damaged_shard(tmp_path):
    header = make_header()
    d = tmp_path / "ds"
    write_all(d, header, shards=[0, 1])
    data = bytearray((d / "shard-00001.bin").read_bytes())
    data[5] ^= 0xFF
    (d / "shard-00001.bin").write_bytes(bytes(data))
    (d / "shard-00000.json").write_text("{not json")
    assert DatasetWriter(d, header).missing_shards() == [0, 1, 2, 3]


def test_writer_refuses_a_different_dataset(dataset, tmp_path):
    d, header = dataset
    before = snapshot(d)
    for other in (make_header(n_sequences=11), make_header(config={"generator": "anymdp", "seed": 8}),
                  make_header(n_obs=300)):
        with pytest.raises(ValueError) as e:
            DatasetWriter(d, other)
        assert str(d) in str(e.value)
    with pytest.raises(ValueError, match=r"config\['seed'\] 7 -> 8"):
        DatasetWriter(d, make_header(config={"generator": "anymdp", "seed": 8}))
    with pytest.raises(ValueError, match="n_sequences 10 -> 11"):
        DatasetWriter(d, make_header(n_sequences=11))
    assert snapshot(d) == before
    # an unfinished dataset (sidecars only) is protected the same way
    partial = tmp_path / "partial"
    write_all(partial, header, shards=[1])
    before = snapshot(partial)
    with pytest.raises(ValueError, match=r"partial.*length 12 -> 13"):
        DatasetWriter(partial, make_header(length=13))
    assert snapshot(partial) == before
    # and so is a directory of another kind (a task set)
    other = tmp_path / "taskset"
    other.mkdir()
    (other / MANIFEST).write_text(json.dumps({"format": "omnirl.taskset"}))
    with pytest.raises(ValueError, match="another kind"):
        DatasetWriter(other, header)


def test_flipped_byte_is_detected(dataset, capsys):
    d, _ = dataset
    f = d / "shard-00002.bin"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x01
    f.write_bytes(bytes(data))
    report = verify(d)
    assert not report["ok"] and report["n_intact"] == 3 and report["missing"] == []
    assert report["damaged"] == [{"index": 2, "file": "shard-00002.bin",
                                  "reason": "checksum mismatch (the file was modified or corrupted)"}]
    ds = Dataset.open(d)
    ds.shard(1)  # the intact shards stay readable
    with pytest.raises(ValueError, match="shard-00002.bin: checksum mismatch"):
        ds.shard(2)
    with pytest.raises(ValueError, match="shard-00002.bin"):
        ds.sequence(6)
    capsys.readouterr()
    assert cli(["verify", str(d)]) == 1
    assert "damaged shard-00002.bin" in capsys.readouterr().out
    assert cli(["verify", str(d), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["damaged"][0]["index"] == 2


def test_truncated_and_missing_shards(dataset, capsys):
    d, _ = dataset
    f = d / "shard-00001.bin"
    f.write_bytes(f.read_bytes()[:-10])
    (d / "shard-00003.bin").unlink()
    report = verify(d)
    assert not report["ok"] and report["missing"] == [{"index": 3, "file": "shard-00003.bin"}]
    assert report["damaged"][0]["file"] == "shard-00001.bin" and "truncated" in report["damaged"][0]["reason"]
    ds = Dataset.open(d)
    with pytest.raises(ValueError, match="shard-00001.bin: size"):
        ds.shard(1)
    with pytest.raises(ValueError, match="shard-00003.bin: shard file is missing"):
        ds.shard(3)
    with pytest.raises(ValueError, match="shard-00001.bin: size"):
        Dataset.open(d, check_checksums=False).shard(1)
    assert cli(["verify", str(d)]) == 1
    assert DatasetWriter(d, ds.header).missing_shards() == [1, 3]


def test_edited_manifest_is_refused(dataset, capsys):
    d, _ = dataset
    mpath = d / MANIFEST
    good = mpath.read_text()
    mpath.write_text(good[: len(good) // 2])
    with pytest.raises(ValueError, match="manifest.json: manifest is not valid JSON"):
        Dataset.open(d)
    assert verify(d)["manifest_error"] and cli(["verify", str(d)]) == 1
    m = json.loads(good)
    mpath.write_text(json.dumps({**m, "schema_version": 99}))
    with pytest.raises(ValueError, match="unsupported schema_version 99"):
        Dataset.open(d)
    mpath.write_text(json.dumps({**m, "n_sequences": 9}))
    with pytest.raises(ValueError, match="header hash mismatch"):
        Dataset.open(d)
    shards = [dict(e) for e in m["shards"]]
    shards[1]["bytes"] += 1
    mpath.write_text(json.dumps({**m, "shards": shards}))
    with pytest.raises(ValueError, match="shard entry 1"):
        Dataset.open(d)
    mpath.unlink()
    with pytest.raises(ValueError, match="missing manifest"):
        Dataset.open(d)


def test_bad_columns_name_the_column(tmp_path):
    header = make_header()
    w = DatasetWriter(tmp_path / "ds", header)
    good = make_columns(header, 0)
    cases = {
        "obs": good["obs"].astype(np.int16),                 # wrong dtype
        "reward": good["reward"][:, :-1],                    # wrong length
        "action": np.full((3, 12), 5, np.uint8),             # above the end marker A = 4
        "tag": np.full((3, 12), 8, np.uint8),                # not a prior id
        "sequence_index": good["sequence_index"] + 1,       # not this shard's sequences
        "task_hash": good["task_hash"][:, :16],              # not a SHA-256
    }
    for name, bad in cases.items():
        with pytest.raises(ValueError, match=f"columns\\['{name}'\\]"):
            w.write_shard(0, {**good, name: bad})
    with pytest.raises(ValueError, match="columns\\['label'\\] is missing"):
        w.write_shard(0, {k: v for k, v in good.items() if k != "label"})
    with pytest.raises(ValueError, match="unknown column 'extra'"):
        w.write_shard(0, {**good, "extra": good["obs"]})
    with pytest.raises(ValueError, match="columns\\['reward'\\] must be finite"):
        w.write_shard(0, {**good, "reward": np.full((3, 12), np.nan, np.float32)})
    with pytest.raises(ValueError, match="shape \\(1, 12\\)"):
        w.write_shard(3, good)  # the last shard holds one sequence
    with pytest.raises(ValueError, match="index"):
        w.write_shard(4, good)
    assert w.missing_shards() == [0, 1, 2, 3]
    assert not any(p.suffix in (".bin", ".json") and p.name != "claim.json" for p in (tmp_path / "ds").iterdir())


@pytest.mark.parametrize("fail_on", ["bin", "sidecar"])
def test_disk_full_leaves_nothing_behind(tmp_path, monkeypatch, fail_on):
    header = make_header()
    d = tmp_path / "ds"
    w = write_all(d, header, shards=[0])
    real_fdopen = os.fdopen

    class FullDisk:
        """A file that accepts a few bytes, then fails like a full disk."""

        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.f.write(bytes(memoryview(data).cast("B")[:7]))
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.f, name)

    calls = []
    fail_at = 1 if fail_on == "bin" else 2  # the shard is written first, its sidecar second

    def fdopen(fd, mode="r", *args, **kwargs):
        f = real_fdopen(fd, mode, *args, **kwargs)
        calls.append(fd)
        return FullDisk(f) if len(calls) == fail_at else f

    monkeypatch.setattr(os, "fdopen", fdopen)
    with pytest.raises(OSError, match="shard-00001.bin: could not write shard 1.*resume") as e:
        w.write_shard(1, make_columns(header, 1))
    assert e.value.errno == errno.ENOSPC
    monkeypatch.undo()
    names = sorted(p.name for p in d.iterdir())
    assert names == ["claim.json", "shard-00000.bin", "shard-00000.json"]  # no temporary file, no sidecar
    w2 = DatasetWriter(d, header)
    assert w2.missing_shards() == [1, 2, 3]
    for s in w2.missing_shards():
        w2.write_shard(s, make_columns(header, s))
    w2.finalize()
    assert verify(d)["ok"]


def test_cli_bad_arguments(tmp_path, capsys):
    assert cli(["verify", str(tmp_path / "nope")]) == 2
    with pytest.raises(SystemExit) as e:
        cli(["verify"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        cli([])
    assert e.value.code == 2
    (tmp_path / "empty").mkdir()
    assert cli(["verify", str(tmp_path / "empty")]) == 1
    assert "missing manifest" in capsys.readouterr().out


def test_layout_is_aligned_and_matches_file_size():
    header = make_header(n_obs=300, length=17)
    cols, size = shard_layout(header, 5)
    assert all(c["offset"] % 64 == 0 for c in cols.values())
    assert cols["obs"] == {"offset": 0, "dtype": "<i2", "shape": [5, 17]}
    ends = [c["offset"] + np.dtype(c["dtype"]).itemsize * int(np.prod(c["shape"])) for c in cols.values()]
    assert max(ends) <= size < max(ends) + 64


def test_open_shard_fills_in_place(tmp_path):
    header = make_header()
    d = tmp_path / "ds"
    w = DatasetWriter(d, header)
    for s in range(header.n_shards):
        want = make_columns(header, s)
        with w.open_shard(s) as sh:
            assert not (d / f"shard-{s:05d}.bin").exists()  # nothing committed before commit()
            for name, col in sh.columns.items():
                assert isinstance(col, np.memmap) and col.shape == want[name].shape
                for r in range(col.shape[0]):  # row by row, as a batched generator does
                    col[r] = want[name][r]
            entry = sh.commit()
        assert entry["index"] == s and not sh.columns["obs"].flags.writeable
        with pytest.raises(ValueError, match="already committed"):
            sh.commit()
    assert not [p for p in d.iterdir() if p.name.endswith(".tmp")]
    w.finalize()
    ds = Dataset.open(d)
    for s in range(header.n_shards):
        want = make_columns(header, s)
        assert all(ds.shard(s)[k].tobytes() == want[k].tobytes() for k in want)
    # the same bytes as write_shard
    write_all(tmp_path / "ds2", header).finalize()
    assert snapshot(d) == snapshot(tmp_path / "ds2")


def test_open_shard_discards_on_error_or_without_commit(tmp_path, monkeypatch):
    header = make_header()
    d = tmp_path / "ds"
    w = DatasetWriter(d, header)
    with w.open_shard(0):
        pass  # never committed
    with pytest.raises(ValueError, match=r"columns\['sequence_index'\]"):
        with w.open_shard(1) as sh:
            sh.columns["obs"][:] = 1
            sh.commit()  # zeroed sequence_index is not 3..5
    with pytest.raises(RuntimeError):
        with w.open_shard(2):
            raise RuntimeError("generator crashed")

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(OSError, match="shard-00003.bin: could not write shard 3") as e:
        w.open_shard(3)
    assert e.value.errno == errno.ENOSPC
    assert [p.name for p in d.iterdir()] == ["claim.json"]
    assert w.missing_shards() == [0, 1, 2, 3]
