"""Fault injection: what a careless or hostile user does must lose nothing, hang nothing, and be
refused with one ``error:`` line.

Classes: silent data loss (concurrent writers of one directory, a moved dataset), hangs and
leaks (diverging training, interrupted and orphaned worker processes, temporary files of a killed
run), damage found late (before training's first step, by ``data verify``, edited manifests,
changed settings on resume), and tracebacks where one error line belongs. Interrupt and
concurrency cases run real processes and send real signals, each bounded by a timeout.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from omnirl.data.generate import DatasetSpec, generate_dataset
from omnirl.data.store import DatasetWriter, verify

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 60
"""Seconds any one command of these tests may take."""


def env() -> dict[str, str]:
    return {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled",
            "PYTHONPATH": str(ROOT)}


def start(module: str, *args: str, cwd: Path) -> subprocess.Popen:
    """``python -m module args`` in its own session (its own process group), output captured."""
    return subprocess.Popen([sys.executable, "-m", module, *args], cwd=cwd, env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def cli(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env(), capture_output=True,
                          text=True, timeout=TIMEOUT)


def assert_refused(r: subprocess.CompletedProcess | tuple[int, str], *words: str) -> str:
    """Exit code 2 and a stderr of one ``error:`` line (no traceback) holding ``words``; returns it."""
    code, err = (r.returncode, r.stderr) if isinstance(r, subprocess.CompletedProcess) else r
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (from /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_until(condition, seconds: float, what: str) -> None:
    end = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        time.sleep(0.05)


def stop(p: subprocess.Popen) -> None:
    """Kill what is left of ``p``'s process group (a test's clean-up)."""
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.communicate(timeout=TIMEOUT)


def race(module: str, args: list[str], seed_option: str, cwd: Path) -> tuple[int, tuple[int, str]]:
    """Start ``python -m MODULE ARGS`` twice at once with seeds 0 and 1; exactly one must succeed.
    Returns the winning seed and the loser's ``(exit code, stderr)``."""
    procs = {seed: start(module, *args, f"{seed_option}={seed}", cwd=cwd) for seed in (0, 1)}
    try:
        results = {seed: (p.wait(TIMEOUT), p.communicate(timeout=TIMEOUT)[1]) for seed, p in procs.items()}
    finally:
        for p in procs.values():
            stop(p)
    winners = [seed for seed, (code, _) in results.items() if code == 0]
    assert len(winners) == 1, results
    return winners[0], results[1 - winners[0]]


def small_spec(**kw) -> DatasetSpec:
    return DatasetSpec(**{"pipeline": "omnirl", "n_sequences": 6, "length": 24, "n_obs": 8, "n_actions": 3,
                          "seed": 0, "shard_size": 2, **kw})


LONG_GENERATE = ("--tasks", "4", "--sequences", "2048", "--length", "512", "--states", "16", "--shard-size", "16",
                 "--batch", "16", "--workers", "2", "--quiet")
"""A ``data generate`` taking about a minute on two workers: long enough to be interrupted."""


# ---------------------------------------------------------------------------- 1. silent data loss


def test_concurrent_generates_into_one_directory_one_wins_whole(tmp_path):
    """Two ``data generate`` runs of different seeds into one directory (holding their common task
    set), started together: one finishes, the other is refused; the manifest is the winner's (both
    used to pass the header check and exit 0, the last writer replacing the other's dataset)."""
    from omnirl.tasks.taskset import TaskSet
    TaskSet.generate(2, 8, 5, seed=0, out=tmp_path / "ds" / "tasks")
    common = ("--tasks", "2", "--sequences", "64", "--length", "64", "--states", "8", "--shard-size", "4",
              "--batch", "4", "--quiet", "--out", "ds")
    winner, loser = race("omnirl.data", ["generate", *common], "--seed", tmp_path)
    assert_refused(loser, "ds")
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert manifest["config"]["spec"]["seed"] == winner
    assert verify(tmp_path / "ds")["ok"]


def test_writer_of_another_dataset_is_refused_before_any_shard(tmp_path):
    """A directory claimed by one dataset's writer, before it wrote anything, refuses another's."""
    from omnirl.data.generate import header
    from omnirl.data.pipelines import pipeline
    a, b = small_spec(), small_spec(seed=1)
    DatasetWriter(tmp_path / "d", header(a, pipeline("omnirl"), None))
    with pytest.raises(ValueError, match="claimed by another dataset.*seed"):
        generate_dataset(b, tmp_path / "d")
    assert not list((tmp_path / "d").glob("shard-*"))
    generate_dataset(a, tmp_path / "d")  # the claim's own dataset goes ahead
    assert verify(tmp_path / "d")["ok"]


def test_validation_of_a_moved_dataset_uses_its_own_task_set(tmp_path):
    """``data validation`` on a moved dataset whose recorded task-set path now holds another task
    set: the dataset's own ``tasks`` are used (the other set used to be taken silently)."""
    gen = ("generate", "--tasks", "3", "--sequences", "6", "--length", "16", "--states", "8", "--quiet")
    assert cli("omnirl.data", *gen, "--out", "ds", cwd=tmp_path).returncode == 0
    (tmp_path / "ds").rename(tmp_path / "moved")
    assert cli("omnirl.data", *gen, "--task-seed", "7", "--out", "ds", cwd=tmp_path).returncode == 0
    r = cli("omnirl.data", "validation", "moved", "--sequences", "4", "--out", "val", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    from omnirl.data.store import Dataset
    from omnirl.tasks.taskset import TaskSet
    seen = Dataset.open(tmp_path / "val" / "seen")
    own = TaskSet.load(tmp_path / "moved" / "tasks").task_hashes()
    for j in range(len(seen)):
        assert bytes(seen.sequence(j)["task_hash"]).hex() in own


def test_validation_refuses_a_task_set_of_another_hash(tmp_path):
    """With no ``tasks`` beside the dataset, the recorded directory must hold the dataset's task set."""
    from omnirl.data.generate import make_validation_sets
    from omnirl.tasks.taskset import TaskSet
    TaskSet.generate(3, 8, 3, seed=0, out=tmp_path / "tasks")
    generate_dataset(small_spec(task_set=str(tmp_path / "tasks")), tmp_path / "ds")
    (tmp_path / "tasks").rename(tmp_path / "old")
    TaskSet.generate(3, 8, 3, seed=5, out=tmp_path / "tasks")
    with pytest.raises(ValueError, match="another"):
        make_validation_sets(tmp_path / "ds", tmp_path / "val", 2)
    assert not (tmp_path / "val").exists()


# ---------------------------------------------------------------------------- 2. hangs and leaks


def _started_writing(d: Path):
    return lambda: d.is_dir() and any(p.name.startswith((".shard-", "shard-")) for p in d.iterdir())


@pytest.mark.parametrize("group", [True, False], ids=["terminal", "kill-INT"])
def test_ctrl_c_stops_all_generate_workers_promptly(tmp_path, group):
    """An interrupt stops ``data generate --workers 2`` within seconds, workers included, with one
    ``error: interrupted`` line (no traceback) and exit code 130: Ctrl-C (SIGINT to the process
    group, as a terminal sends it) or SIGINT to the main process alone (it used to wait for the pool
    to finish all submitted shards)."""
    p = start("omnirl.data", "generate", *LONG_GENERATE, "--out", "ds", cwd=tmp_path)
    try:
        wait_until(_started_writing(tmp_path / "ds"), TIMEOUT, "the first shard")
        workers = children(p.pid)
        assert len(workers) >= 2
        t0 = time.monotonic()
        (os.killpg if group else os.kill)(p.pid, signal.SIGINT)
        p.wait(TIMEOUT)
        assert time.monotonic() - t0 < 10
        err = p.communicate(timeout=TIMEOUT)[1]
        assert p.returncode == 130 and err.strip().splitlines() == ["error: interrupted"], err  # no traceback
        wait_until(lambda: not any(alive(w) for w in workers), 10, "the workers to exit")
        assert not (tmp_path / "ds" / "manifest.json").exists()
    finally:
        stop(p)


@pytest.mark.parametrize("module,args", [
    ("omnirl.data", ("generate", *LONG_GENERATE, "--out", "out")),
    ("omnirl.tasks", ("generate", "--n", "4000", "--states", "64", "--shard-size", "16", "--workers", "2",
                      "--quiet", "--out", "out")),
], ids=["data", "tasks"])
def test_workers_die_with_their_parent(tmp_path, module, args):
    """Killing the main process (SIGKILL: no clean-up of its own) takes its workers and the
    resource tracker with it (they used to go on writing, re-parented)."""
    p = start(module, *args, cwd=tmp_path)
    try:
        out = tmp_path / "out"
        wait_until(_started_writing(out), TIMEOUT, "the first shard")
        helpers = children(p.pid)
        assert len(helpers) >= 2
        os.kill(p.pid, signal.SIGKILL)
        p.wait(TIMEOUT)
        wait_until(lambda: not any(alive(w) for w in helpers), 15, "the workers to die")
    finally:
        stop(p)


def descendants(pid: int) -> list[int]:
    """Process ids below ``pid`` (children, theirs, ...)."""
    out, todo = [], [pid]
    while todo:
        found = children(todo.pop())
        out += found
        todo += found
    return out


RAY_GENERATE = ("generate", "--tasks", "4", "--sequences", "512", "--length", "512", "--states", "16", "--shard-size",
                "16", "--batch", "16", "--workers", "2", "--quiet", "--backend", "ray")


@pytest.mark.slow
def test_ctrl_c_stops_a_ray_generate_and_the_rerun_completes(tmp_path):
    """Ctrl-C during ``data generate --backend ray`` (a local Ray instance it started): within
    seconds it exits with one ``error: interrupted`` line, its Ray processes gone and no manifest
    written; the rerun removes what the cancelled tasks left and completes an intact dataset."""
    p = start("omnirl.data", *RAY_GENERATE, "--out", "ds", cwd=tmp_path)
    try:
        ds = tmp_path / "ds"
        wait_until(lambda: ds.is_dir() and any(f.suffix == ".json" for f in ds.glob("shard-*")), 120,
                   "the first shard")
        ray_processes = descendants(p.pid)
        assert len(ray_processes) >= 3  # Ray's own processes and its workers
        t0 = time.monotonic()
        os.killpg(p.pid, signal.SIGINT)
        p.wait(TIMEOUT)
        assert time.monotonic() - t0 < 15
        err = p.communicate(timeout=TIMEOUT)[1]
        assert p.returncode == 130 and err.strip().splitlines()[-1] == "error: interrupted", err
        assert "Traceback" not in err, err
        wait_until(lambda: not any(alive(w) for w in ray_processes), 15, "Ray's processes to exit")
        assert not (ds / "manifest.json").exists()
    finally:
        stop(p)
    r = cli("omnirl.data", *RAY_GENERATE[:-5], "--workers", "1", "--quiet", "--out", "ds", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert not list(ds.glob(".*.tmp"))
    assert verify(ds)["ok"]


@pytest.mark.slow
def test_a_failed_ray_task_cancels_the_others(tmp_path):
    """On a Ray instance the caller started (so it outlives the call), the first failed task
    force-cancels the outstanding ones and its own error is raised (not Ray's wrapper): no shard
    is written after the call returned, behind the back of a caller that no longer holds the
    directory (the other tasks used to run on)."""
    code = """if True:
        import os, sys, time
        from pathlib import Path
        import ray
        from omnirl.data.generate import DatasetSpec, generate_dataset
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        spec = DatasetSpec(pipeline="omnirl", n_sequences=256, length=512, n_obs=16, n_actions=5, seed=0,
                           shard_size=16)
        out = Path("ds")
        out.mkdir()
        (out / "shard-00003.bin").mkdir()  # shard 3 cannot be put in place
        try:
            generate_dataset(spec, out, workers=2, backend="ray", batch=16)
        except Exception as e:
            print(type(e).__name__, str(e).splitlines()[0], sep="|")
        before = sorted(p.name for p in out.glob("shard-*.json"))
        time.sleep(4)
        print(before == sorted(p.name for p in out.glob("shard-*.json")), len(before))
        ray.shutdown()
    """
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={**env(), "RAY_AUTH_MODE": "disabled"},
                       capture_output=True, text=True, timeout=120)
    lines = r.stdout.strip().splitlines()
    assert r.returncode == 0 and len(lines) == 2, r.stdout + r.stderr
    kind, message = lines[0].split("|")
    assert kind == "IsADirectoryError" and "shard-00003.bin" in message, lines[0]
    assert lines[1].startswith("True") and int(lines[1].split()[1]) < 16, lines[1]


def test_rerun_removes_a_killed_runs_temporary_shards(tmp_path):
    """A temporary shard file a killed writer left (SIGKILL: no chance to remove it) is gone after
    the rerun (it used to stay in the finished dataset)."""
    d = tmp_path / "ds"
    spec = small_spec()
    generate_dataset(spec, d)
    stale = [d / ".shard-00001.bin.k1ll3d.tmp", d / ".shard-00002.json.x.tmp"]
    for f in stale:
        f.write_bytes(b"\0" * 100)
    (d / "shard-00001.json").unlink()  # that shard is redone
    generate_dataset(spec, d)
    assert not list(d.glob(".*.tmp"))
    assert verify(d)["ok"]


def test_a_failed_run_removes_what_its_stopped_writers_left(tmp_path, monkeypatch):
    """A writer stopped mid-write may leave its temporary shard (a worker killed before it could
    unwind): the failing run itself removes it, dataset and task set alike, and the error is the
    writer's."""
    from omnirl.data import generate
    from omnirl.tasks import taskset

    def dies_mid_write(out, suffix):
        (Path(out) / f".shard-00000.{suffix}.k1ll3d.tmp").write_bytes(b"\0")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(generate, "generate_shards", lambda spec, config, out, *a, **k: dies_mid_write(out, "bin"))
    with pytest.raises(OSError, match="No space"):
        generate_dataset(small_spec(), tmp_path / "ds")
    assert not list((tmp_path / "ds").glob(".*.tmp"))
    monkeypatch.setattr(taskset, "_write_shard", lambda root, *a, **k: dies_mid_write(root, "npz"))
    with pytest.raises(OSError, match="No space"):
        taskset.TaskSet.generate(4, 16, 3, seed=0, out=tmp_path / "ts", shard_size=2)
    assert not list((tmp_path / "ts").glob(".*.tmp"))


def test_task_set_rerun_removes_temporaries(tmp_path):
    from omnirl.tasks.taskset import TaskSet
    out = tmp_path / "ts"
    TaskSet.generate(4, 8, 3, out=out, shard_size=2)
    (out / ".shard-00001.npz.dead.tmp").write_bytes(b"x")
    (out / ".manifest.json.dead.tmp").write_bytes(b"x")
    TaskSet.generate(4, 8, 3, out=out, shard_size=2)
    assert not list(out.glob(".*.tmp"))


# ---------------------------------------------------------------------------- full disk


VALIDATION_OF = ("generate", "--tasks", "2", "--sequences", "4", "--length", "16", "--states", "8", "--quiet")


@pytest.mark.parametrize("module,args", [
    ("omnirl.data", ("generate", "--tasks", "3", "--sequences", "8", "--length", "16", "--states", "8", "--quiet",
                     "--out", "out")),
    ("omnirl.data", ("generate", "--tasks", "fresh", "--sequences", "8", "--length", "16", "--states", "8",
                     "--quiet", "--out", "out")),
    ("omnirl.tasks", ("generate", "--n", "3", "--states", "8", "--quiet", "--out", "out")),
    ("omnirl.data", ("validation", "ds", "--sequences", "4", "--probe", "--out", "out")),
], ids=["data", "data-fresh", "tasks", "validation"])
def test_a_full_disk_is_refused_before_anything_is_written(tmp_path, monkeypatch, capsys, module, args):
    """Too little free disk for the run's estimate: one error line naming ``out``, the bytes needed and
    free, exit 2, and nothing written (a full disk used to end the run with exit 1 after partial work)."""
    import importlib

    import omnirl._validate
    monkeypatch.chdir(tmp_path)
    if args[0] == "validation":
        assert importlib.import_module("omnirl.data.__main__").main([*VALIDATION_OF, "--out", "ds"]) == 0
        capsys.readouterr()
    monkeypatch.setattr(omnirl._validate, "free_disk_bytes", lambda path: 12345)
    code = importlib.import_module(f"{module}.__main__").main(list(args))
    line = assert_refused((code, capsys.readouterr().err), "out", "needs", "only 12345 bytes")
    assert int(line.split("needs ")[1].split()[0]) > 12345
    assert not (tmp_path / "out").exists()
    monkeypatch.setattr(omnirl._validate, "free_disk_bytes", lambda path: 1 << 40)  # with room, it goes ahead
    assert importlib.import_module(f"{module}.__main__").main(list(args)) == 0


def test_disk_estimates_bound_what_is_written(tmp_path):
    """The estimates ``check_disk`` weighs are upper bounds of the bytes a run writes, and count
    only what is left to write when resuming."""
    from omnirl.data.generate import dataset_bytes, load_task_set, task_set_bytes

    def used(d: Path) -> int:
        return sum(f.stat().st_size for f in d.rglob("*") if f.is_file())

    out = tmp_path / "ds"
    need_tasks = task_set_bytes(out, 70, "8:24", 4, 3)
    task_dir, tasks = load_task_set(out, 70, "8:24", 4, 3)
    assert used(task_dir) <= need_tasks < 20 * used(task_dir)
    assert task_set_bytes(out, 70, "8:24", 4, 3) == 0
    spec = DatasetSpec(pipeline="omnirl", n_sequences=40, length=32, n_obs=24, n_actions=4, seed=0, shard_size=8,
                       task_set=str(task_dir))
    need = dataset_bytes(spec, out)
    generate_dataset(spec, out, tasks=tasks)
    written = used(out) - used(task_dir)
    assert written <= need < 2 * written
    (out / "shard-00002.bin").unlink()
    left = dataset_bytes(spec, out)
    assert (out / "shard-00003.bin").stat().st_size < left < need / 2


def _unshare_works() -> bool:
    try:
        return subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"], capture_output=True,
                              timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@pytest.mark.skipif(not _unshare_works(), reason="needs unprivileged user and mount namespaces (unshare)")
@pytest.mark.parametrize("module,args,suffix", [
    ("omnirl.data", ("generate", "--tasks", "3", "--sequences", "64", "--length", "2048", "--states", "8",
                     "--shard-size", "8", "--batch", "8", "--quiet"), ".bin"),
    ("omnirl.data", ("generate", "--tasks", "3", "--sequences", "64", "--length", "2048", "--states", "8",
                     "--shard-size", "8", "--batch", "8", "--workers", "2", "--quiet"), ".bin"),
    ("omnirl.tasks", ("generate", "--n", "200", "--states", "64", "--shard-size", "8", "--quiet"), ".npz"),
], ids=["data", "data-workers", "tasks"])
def test_a_disk_that_fills_midway_leaves_no_partial_shard(tmp_path, module, args, suffix):
    """A real full disk (a 600 kB tmpfs) met midway, past the up-front check (switched off here):
    one error line naming the file, exit 1, every shard under its final name whole and described by
    its sidecar (the ones written before the disk filled), no temporary file left."""
    disk = tmp_path / "disk"
    disk.mkdir()
    code = ("import sys, runpy, omnirl._validate as v; v.free_disk_bytes = lambda path: 1 << 60; "
            f"sys.argv = ['{module}', *sys.argv[1:]]; runpy.run_module('{module}', run_name='__main__')")
    script = (f"mount -t tmpfs -o size=600k tmpfs {disk} && cd {disk} || exit 99; "
              f"{sys.executable} -c \"{code}\" {' '.join(args)} --out out 2> {tmp_path / 'err'}; "
              f"echo $? > {tmp_path / 'rc'}; ls -la out; for f in out/shard-*.json; do tr -d '\\n' < $f; echo; done")
    listing = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script], env=env(),
                             capture_output=True, text=True, timeout=TIMEOUT).stdout
    err = (tmp_path / "err").read_text()
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert (tmp_path / "rc").read_text().strip() == "1", err
    assert len(lines) == 1 and lines[0].startswith("error: out/shard-"), err
    assert "No space left on device" in lines[0], lines[0]
    assert ".tmp" not in listing, listing  # the tmpfs vanishes with its namespace: listed from inside
    names = [ln.split() for ln in listing.splitlines() if ln.split()[-1:] and ln.split()[-1].endswith(suffix)]
    sizes = {f[-1]: int(f[4]) for f in names if f[-1].startswith("shard-")}
    described = {sc["file"]: sc["bytes"] for sc in (json.loads(ln) for ln in listing.splitlines()
                                                     if ln.startswith("{"))}
    assert sizes == described, (sizes, described)


# ---------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A training set (S = 16, A = 5, T = 40) and an unseen validation set."""
    from omnirl.data.generate import make_validation_sets
    root = tmp_path_factory.mktemp("faults")
    generate_dataset(DatasetSpec(pipeline="omnirl", n_sequences=8, length=40, n_obs=16, n_actions=5, seed=0,
                                 shard_size=4), root / "train")
    make_validation_sets(root / "train", root / "val", 4)
    return root


def train_args(tiny: Path, out: Path, *extra: str) -> list[str]:
    return [f"--data.train=[{tiny / 'train'}]", f"--data.validation={{unseen: {tiny / 'val' / 'unseen'}}}",
            "--data.window=32", "--data.batch_size=2", "--train.segment_len=16", "--train.max_steps=2",
            "--train.val_every=1", "--reference.enabled=false", f"--logging.out_dir={out}", "--logging.quiet=true",
            *extra]


def run_train(args: list[str], capsys) -> tuple[int, str]:
    from omnirl.train.__main__ import main as train_main
    code = train_main(args)
    return code, capsys.readouterr().err


@pytest.fixture(autouse=True)
def _no_wandb(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")


def test_diverging_training_stops_with_an_error(tiny, tmp_path, capsys):
    """``train.lr=1e3``: every batch after the first step is non-finite; after ``train.max_skipped``
    of them in a row the run stops with one error line, its last checkpoint kept (it used to skip
    forever: skipped batches do not count towards ``max_steps``)."""
    t0 = time.monotonic()
    code, err = run_train(train_args(tiny, tmp_path / "run", "--train.lr=1e3", "--train.max_steps=1000",
                                     "--train.max_skipped=3", "--train.warmup_steps=0"), capsys)
    assert time.monotonic() - t0 < TIMEOUT
    line = assert_refused((code, err.strip().splitlines()[-1] if err.strip() else err), "diverged", "train.lr=1000.0")
    assert "max_skipped=3" in line
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()


def _damage(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_damaged_shard_is_named_before_the_first_step(tiny, tmp_path, capsys):
    """A damaged shard of the training set stops training before anything is written (it used to
    be found when first read, after optimiser steps and a checkpoint)."""
    import shutil
    data = tmp_path / "train"
    shutil.copytree(tiny / "train", data)
    _damage(data / "shard-00001.bin")
    args = train_args(tiny, tmp_path / "run", f"--data.train=[{data}]")
    assert_refused(run_train(args, capsys), "shard-00001.bin", "checksum")
    assert not (tmp_path / "run").exists()
    # without checksums, the size is still checked
    (data / "shard-00001.bin").write_bytes((data / "shard-00001.bin").read_bytes()[:-8])
    assert_refused(run_train(args + ["--data.verify_checksums=false"], capsys), "shard-00001.bin", "size")


def test_resume_with_other_settings_is_refused_naming_them(tiny, tmp_path, capsys):
    """Resuming with another ``train.lr`` (which the restored schedule would ignore while run.json
    recorded it) or another backbone (a state-dict traceback) is refused naming the field; a
    setting a resumed run may change (``train.max_steps``) is accepted."""
    run = tmp_path / "run"
    assert run_train(train_args(tiny, run), capsys)[0] == 0
    before = (run / "run.json").read_bytes()
    assert_refused(run_train(train_args(tiny, run, "--train.resume=last", "--train.lr=0.01"), capsys),
                   "train.lr=0.01", "0.001")
    assert_refused(run_train(train_args(tiny, run, "--train.resume=last", "--model.backbone=rwkv7"), capsys),
                   "model.backbone='rwkv7'")
    assert (run / "run.json").read_bytes() == before
    assert run_train(train_args(tiny, run, "--train.resume=last", "--train.max_steps=3"), capsys)[0] == 0


def test_truncated_checkpoint_is_named_by_path(tiny, tmp_path, capsys):
    run = tmp_path / "run"
    assert run_train(train_args(tiny, run), capsys)[0] == 0
    ckpt = run / "checkpoints" / "last.ckpt"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    assert_refused(run_train(train_args(tiny, run, "--train.resume=last"), capsys), str(ckpt))
    r = cli("omnirl.evaluate", "--checkpoint", str(run), "--suite", "anymdp", "--run.out_dir", str(tmp_path / "ev"),
            cwd=tmp_path)
    assert_refused(r, str(ckpt))


@pytest.mark.parametrize("extra,words", [
    (("--model.n_obs=8",), ("model.n_obs=8", "n_obs=16")),
    (("--model.n_actions=4",), ("model.n_actions=4", "n_actions=5")),
    (("--train.precision=fp8",), ("precision", "fp8")),
    (("--train.devices=0",), ("devices", "0")),
    (("--data.window=64",), ("window=64", "40 steps")),
    (("--data.validation={unseen: /nonexistent/val}",), ("/nonexistent/val",)),
    (("--data.validation={unseen:/val}",), ("validation", "{unseen:/val}")),
    (("--train.devices=4096",), ("train.devices=4096",)),
], ids=["n_obs", "n_actions", "precision", "devices", "window", "validation", "validation-yaml", "devices-cpus"])
def test_bad_training_settings_are_one_line_before_anything_is_written(tiny, tmp_path, capsys, extra, words):
    assert_refused(run_train(train_args(tiny, tmp_path / "run", *extra), capsys), *words)
    assert not (tmp_path / "run").exists()


def test_training_out_dir_that_is_a_file(tiny, tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    assert_refused(run_train(train_args(tiny, tmp_path / "f"), capsys), "logging.out_dir")
    assert (tmp_path / "f").read_text() == "x"


# ---------------------------------------------------------------------------- damage found by verify


def test_verify_finds_ids_beyond_the_header_sizes(tmp_path):
    """A shard whose checksum was recomputed after an id was pushed beyond ``n_obs`` is damaged."""
    import hashlib
    d = tmp_path / "ds"
    generate_dataset(small_spec(), d)
    m = json.loads((d / "manifest.json").read_text())
    entry = m["shards"][0]
    f = d / entry["file"]
    data = bytearray(f.read_bytes())
    data[entry["columns"]["obs"]["offset"]] = 200  # n_obs is 8
    f.write_bytes(bytes(data))
    entry["sha256"] = hashlib.sha256(bytes(data)).hexdigest()
    (d / "manifest.json").write_text(json.dumps(m))
    report = verify(d)
    assert not report["ok"]
    assert "obs" in report["damaged"][0]["reason"]


def test_verify_checks_the_task_set_and_its_edited_manifest(tmp_path):
    gen = ("generate", "--tasks", "3", "--sequences", "4", "--length", "16", "--states", "8", "--quiet",
           "--out", "ds")
    assert cli("omnirl.data", *gen, cwd=tmp_path).returncode == 0
    assert cli("omnirl.data", "verify", "ds", cwd=tmp_path).returncode == 0
    tm = tmp_path / "ds" / "tasks" / "manifest.json"
    m = json.loads(tm.read_text())
    m["info"]["n_states"] = 9
    tm.write_text(json.dumps(m))
    r = cli("omnirl.data", "verify", "ds", cwd=tmp_path)
    assert r.returncode == 1 and "task set" in r.stdout and "edited" in r.stdout, r.stdout
    r = cli("omnirl.tasks", "show", "ds/tasks", cwd=tmp_path)
    assert_refused(r, "info", "edited")


# ---------------------------------------------------------------------------- one error line


@pytest.mark.parametrize("module,args", [
    ("omnirl.tasks", ("generate", "--n", "2", "--states", "8", "--out", "afile")),
    ("omnirl.tasks", ("plot", "tasks", "--out", "afile")),
    ("omnirl.data", ("generate", "--tasks", "2", "--sequences", "2", "--length", "8", "--out", "afile")),
    ("omnirl.data", ("validation", "ds", "--sequences", "2", "--out", "afile")),
    ("omnirl.sweep", ("sweeps/none.yaml", "--out", "afile", "--dry-run")),
], ids=["tasks-generate", "tasks-plot", "data-generate", "data-validation", "sweep"])
def test_output_path_that_is_a_file(tmp_path, module, args):
    """An ``--out`` naming an existing file: one error line, exit 2, the file untouched (the
    shared command-line wrapper used to let the OSError's traceback through)."""
    (tmp_path / "afile").write_text("keep")
    assert_refused(cli(module, *args, cwd=tmp_path), "afile")
    assert (tmp_path / "afile").read_text() == "keep"


def test_experiment_output_path_that_is_a_file(tmp_path):
    (tmp_path / "afile").write_text("keep")
    r = subprocess.run([sys.executable, str(ROOT / "experiments" / "task_difficulty.py"), "--out", "afile"],
                       cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 2 and "is an existing file" in r.stderr and "Traceback" not in r.stderr, r.stderr


@pytest.mark.parametrize("module,args", [
    ("omnirl.tasks", ("generate", "--n", "1", "--states", "1000000", "--out", "big")),
    ("omnirl.data", ("generate", "--tasks", "fresh", "--sequences", "2", "--length", "8", "--states", "1000000",
                     "--out", "big")),
], ids=["tasks", "data"])
def test_sizes_beyond_memory_are_refused_before_allocating(tmp_path, module, args):
    """A task whose kernel cannot fit in memory is refused with its sizes (it used to die with a
    MemoryError traceback)."""
    assert_refused(cli(module, *args, cwd=tmp_path), "n_states=1000000", "GiB")
    assert not (tmp_path / "big").exists()


@pytest.mark.parametrize("argv, prog, words", [
    (["-m", "omnirl.data", "generate", "--tasks", "4"], "python -m omnirl.data generate", ()),
    (["-m", "omnirl.tasks", "generate", "--n", "many"], "python -m omnirl.tasks generate", ()),
    (["-m", "experiments.decoding", "--preset", "nope"], "python -m experiments.decoding", ()),
    (["-m", "omnirl.data", "verify"], "python -m omnirl.data verify", ("required", "path")),
    (["-m", "omnirl.tasks", "show", "ts", "--limit", "x"], "python -m omnirl.tasks show", ("--limit", "x")),
    (["-m", "omnirl.tasks", "generate", "--n", "2", "--out", "ts", "--bogus"], "python -m omnirl.tasks generate",
     ("--bogus",)),
    (["-m", "omnirl.sweep", "s.yaml", "--max-runs", "many"], "python -m omnirl.sweep", ("--max-runs", "many")),
    (["-m", "experiments.anymdp_showcase", "--sim-steps", "x"], "python -m experiments.anymdp_showcase",
     ("--sim-steps", "x")),
])
def test_argument_errors_are_one_line(tmp_path, argv, prog, words):
    proc = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=120, cwd=ROOT)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), proc.stderr
    assert all(w in lines[0] for w in words), lines[0]


def test_a_batch_too_large_for_memory_is_refused_before_anything_is_written(tmp_path):
    out = tmp_path / "data"
    proc = subprocess.run([sys.executable, "-m", "omnirl.data", "generate", "--tasks", "8", "--sequences", "4096",
                           "--length", "100", "--states", "4096", "--batch", "1024", "--out", str(out)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "batch=1024" in lines[0] and "lower --batch" in lines[0]
    assert not out.exists()  # not even the task set


def test_batch_memory_check_counts_the_rows_simulated_together():
    from omnirl.data.generate import DatasetSpec, check_batch_memory

    spec = DatasetSpec(pipeline="omnirl", n_sequences=2, length=8, n_obs=4096, n_actions=5, seed=0)
    check_batch_memory(spec, 1024)  # only 2 sequences: 2 kernels of 320 MiB fit
    with pytest.raises(ValueError, match="batch=1024 sequences of n_obs=4096"):
        check_batch_memory(dataclasses.replace(spec, n_sequences=4096), 1024)


# ---------------------------------------------------------------------------- found by probing


def test_sizes_beyond_any_disk_are_refused_at_once(tmp_path):
    """``--sequences 10**11``: refused within seconds by the disk check, naming the bytes (the
    estimate takes time in the files present, not in the shards)."""
    t0 = time.monotonic()
    r = cli("omnirl.data", "generate", "--tasks", "fresh", "--sequences", str(10 ** 11), "--length", "40",
            "--states", "8", "--out", "big", cwd=tmp_path)
    assert time.monotonic() - t0 < 20
    assert_refused(r, "--out", "big", "bytes of free disk")
    assert not (tmp_path / "big").exists()


def test_an_unreachable_ray_address_is_refused_before_anything_is_written(tmp_path):
    """``--ray-address`` where no cluster answers: one error line within seconds, not even the task
    set written (Ray used to retry for minutes after the task set was written)."""
    pytest.importorskip("ray")
    t0 = time.monotonic()
    r = cli("omnirl.data", "generate", "--tasks", "2", "--sequences", "4", "--length", "16", "--states", "8",
            "--backend", "ray", "--ray-address", "127.0.0.1:1", "--out", "ds", cwd=tmp_path)
    assert time.monotonic() - t0 < 20
    assert_refused(r, "ray_address='127.0.0.1:1'")
    assert not (tmp_path / "ds").exists()
    assert_refused(cli("omnirl.data", "generate", "--tasks", "2", "--sequences", "4", "--length", "16", "--states",
                       "8", "--ray-address", "127.0.0.1:1", "--out", "ds", cwd=tmp_path), "backend 'ray'")


@pytest.mark.parametrize("module,args", [
    ("omnirl.train", ("--config", "bad.yaml")),
    ("omnirl.sweep", ("bad.yaml", "--local", "--dry-run", "--out", "sw")),
], ids=["train", "sweep"])
def test_a_multi_line_message_is_one_error_line(tmp_path, module, args):
    """A YAML parser's error spans lines; the command prints it as one ``error:`` line."""
    (tmp_path / "bad.yaml").write_text("a: [\n")
    assert_refused(cli(module, *args, cwd=tmp_path), "bad.yaml", "not valid YAML")


def test_training_into_a_directory_that_cannot_be_made(tiny, capsys):
    assert_refused(run_train(train_args(tiny, Path("/proc/omnirl-run")), capsys), "/proc/omnirl-run")


def test_task_set_plots_are_checked_first_and_kept_by_a_rerun(tmp_path):
    """``tasks plot --max-tasks 0`` is refused before a picture is written; the default pictures in
    ``DIR/plots`` do not make a rerun of the same ``tasks generate`` refuse its own directory."""
    gen = ("generate", "--n", "3", "--states", "8", "--quiet", "--out", "ts")
    assert cli("omnirl.tasks", *gen, cwd=tmp_path).returncode == 0
    assert_refused(cli("omnirl.tasks", "plot", "ts", "--max-tasks", "0", cwd=tmp_path), "--max-tasks")
    assert not (tmp_path / "ts" / "plots").exists()
    assert cli("omnirl.tasks", "plot", "ts", cwd=tmp_path).returncode == 0
    r = cli("omnirl.tasks", *gen, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "ts" / "plots" / "kernel_00000.png").is_file()


EVAL = ("--envs", "bandit5", "--run.baselines=[uniform]", "--run.steps=20", "--run.n_envs=2")


def test_an_evaluation_never_replaces_another_runs_results(tmp_path):
    """``evaluate`` into a directory holding an evaluation of other settings, a dataset or a
    training run is refused, the files untouched (they used to be overwritten, or mixed with the
    run's); the same evaluation again is rewritten."""
    assert cli("omnirl.evaluate", *EVAL, "--run.out_dir=ev", cwd=tmp_path).returncode == 0
    before = (tmp_path / "ev" / "summary.json").read_bytes()
    assert_refused(cli("omnirl.evaluate", *EVAL, "--run.seed=3", "--run.out_dir=ev", cwd=tmp_path),
                   "run.out_dir='ev'", "other settings")
    assert (tmp_path / "ev" / "summary.json").read_bytes() == before
    r = cli("omnirl.evaluate", *EVAL, "--run.out_dir=ev", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    generate_dataset(small_spec(), tmp_path / "ds")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run.json").write_text("{}")
    for d, what in (("ds", "manifest.json"), ("run", "run.json")):
        assert_refused(cli("omnirl.evaluate", *EVAL, f"--run.out_dir={d}", cwd=tmp_path), what)
    assert not (tmp_path / "ds" / "summary.json").exists() and not (tmp_path / "run" / "summary.json").exists()


def test_validation_sets_refuse_a_dataset_or_run_directory(tmp_path):
    from omnirl.data.generate import make_validation_sets
    generate_dataset(small_spec(), tmp_path / "ds")
    with pytest.raises(ValueError, match="holds a dataset or task set"):
        make_validation_sets(tmp_path / "ds", tmp_path / "ds", 2)
    assert not (tmp_path / "ds" / "unseen").exists()


def test_one_hot_policy_grows_with_the_actions_not_their_square():
    """A task with very many actions used to need an ``(A, A)`` identity while it was checked (a
    MemoryError traceback for ``--actions 100000``)."""
    from omnirl.tasks.solver import one_hot_policy
    pi = one_hot_policy(np.array([[3, 0], [1, 2]]), 10 ** 6)
    assert pi.shape == (2, 2, 10 ** 6) and pi.sum() == 4 and pi[0, 0, 3] == 1 and pi[1, 1, 2] == 1


def test_a_damaged_history_line_does_not_swallow_the_next_record(tiny, tmp_path, capsys):
    """A cut last line of ``history.jsonl`` (an edit, an unfinished copy): the resumed run's records
    stay whole lines (they used to be glued to the damaged line, unreadable)."""
    run = tmp_path / "run"
    assert run_train(train_args(tiny, run), capsys)[0] == 0
    with open(run / "history.jsonl", "a") as f:
        f.write('{"step": 1, "val')
    assert run_train(train_args(tiny, run, "--train.resume=last", "--train.max_steps=3"), capsys)[0] == 0
    records = [json.loads(ln) for ln in (run / "history.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3]


def test_two_evaluations_into_one_directory_never_mix(tmp_path):
    """Two ``evaluate`` runs of different seeds started together into one directory: one finishes, the
    other is refused, and the summary is the winner's (both used to exit 0 with their files mixed)."""
    winner, loser = race("omnirl.evaluate", [*EVAL, "--run.out_dir=ev"], "--run.seed", tmp_path)
    assert_refused(loser, "ev")
    assert json.loads((tmp_path / "ev" / "summary.json").read_text())["config"]["run"]["seed"] == winner


def test_two_trainings_into_one_directory_never_mix(tiny, tmp_path):
    """Two fresh training runs of different seeds started together into one ``logging.out_dir``: one
    trains, the other is refused; history and checkpoint are the winner's alone (both used to exit 0
    with their validation records interleaved and one's checkpoint over the other's)."""
    run = tmp_path / "run"
    args = train_args(tiny, run, "--train.max_steps=4")
    winner, loser = race("omnirl.train", args, "--train.seed", tmp_path)
    assert_refused(loser, "logging.out_dir")
    steps = [json.loads(ln)["step"] for ln in (run / "history.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    assert json.loads((run / "run.json").read_text())["config"]["train"]["seed"] == winner


def test_a_task_set_of_too_many_actions_is_refused_at_once(tmp_path):
    """``--actions`` above what stored sequences hold (255) is one error line before any sampling (a
    task of 100,000 actions used to take minutes to draw before anything was said)."""
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "omnirl.tasks", "generate", "--n", "2", "--actions", "100000",
                        "--out", "ts"], cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert_refused(r, "actions", "255", "100000")
    assert time.monotonic() - t0 < 30 and not (tmp_path / "ts").exists()


def test_training_into_a_dataset_directory_is_refused(tiny, tmp_path, capsys):
    """``logging.out_dir`` naming a dataset (or task set) is refused before anything is written there."""
    before = sorted(p.name for p in (tiny / "train").iterdir())
    assert_refused(run_train(train_args(tiny, tiny / "train"), capsys), "logging.out_dir", "dataset")
    assert sorted(p.name for p in (tiny / "train").iterdir()) == before


def test_ctrl_c_during_quiet_training_is_one_error_line(tiny, tmp_path):
    """Ctrl-C while a quiet training run trains: ``error: interrupted`` and exit code 130 (Lightning
    exits with 1 and, quiet, says nothing)."""
    args = [a for a in train_args(tiny, tmp_path / "run") if not a.startswith("--train.max_steps")]
    p = start("omnirl.train", *args, "--train.max_steps=100000", "--logging.wandb_mode=disabled", cwd=tmp_path)
    try:
        wait_until(lambda: (tmp_path / "run" / "history.jsonl").is_file(), 3 * TIMEOUT, "the first validation")
        os.killpg(p.pid, signal.SIGINT)
        p.wait(TIMEOUT)
        err = p.communicate(timeout=TIMEOUT)[1]
        lines = [ln for ln in err.strip().splitlines() if ln.strip()]
        assert p.returncode == 130 and lines[-1:] == ["error: interrupted"], err
        assert not any("Traceback" in ln for ln in lines), err
    finally:
        stop(p)


def test_an_experiment_into_a_dataset_directory_is_refused(tiny, capsys):
    """``--out`` naming a dataset (or a training run, or an evaluation) is refused before anything is
    written there: an experiment's directory holds its own steps."""
    from experiments import task_scaling

    before = sorted(p.name for p in (tiny / "train").iterdir())
    with pytest.raises(SystemExit) as e:
        task_scaling.main(["--preset", "smoke", "--out", str(tiny / "train")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--out" in err[0] and "dataset" in err[0], err
    assert sorted(p.name for p in (tiny / "train").iterdir()) == before
