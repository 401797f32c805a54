"""Task sets: N tasks as one object, stored as checksummed shards with a JSON manifest.

A task set made by ``generate`` is fully determined by ``(generator, params, n, seed)``: task ``i``
is sampled from the stream ``(seed, i)``, so any task can be regenerated alone and the result
does not depend on the number of workers or shards.

On disk (``save`` / ``generate``)::

    DIR/manifest.json      format, generator, params, seed, n_tasks, content hash, shard list
    DIR/shard-00000.npz    tasks [0, shard_size) as flat arrays (no pickle)
    DIR/shard-00000.json   sidecar: the shard's sha256, size and task hashes (written last)

Every file is written under a temporary name and renamed, so an interrupted ``generate`` leaves
no half-written shard; re-running it skips the shards whose sidecar and checksum are intact.
``load`` refuses a manifest, shard or single ``.npz`` file whose size, checksum or content hash
does not match, with an error naming the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from omnirl._pool import run_pool, write_behind
from omnirl._validate import check_disk, check_float, check_int, check_seed
from omnirl._threads import environment
from omnirl.fileio import CLAIM, atomic_write_bytes, atomic_write_json, claim_directory, exclusive, read_json
from omnirl.tasks.rng import make_rng
from omnirl.tasks.samplers import sample_task
from omnirl.tasks.task import MAX_ACTIONS, MDPTask

FORMAT = "omnirl.taskset"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PLOTS = "plots"
"""Where ``python -m omnirl.tasks plot DIR`` puts its pictures by default (``DIR/plots``), a directory a
task set may hold besides its own files."""


# ---------------------------------------------------------------------------- checksums


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _hash_of_hashes(hashes: Iterable[str]) -> str:
    h = hashlib.sha256()
    for x in hashes:
        h.update(x.encode())
    return h.hexdigest()


# ---------------------------------------------------------------------------- encoding


def encode_tasks(tasks: Sequence[MDPTask]) -> dict[str, np.ndarray]:
    """Flat, pickle-free arrays holding ``tasks`` (inverse: ``decode_tasks``)."""
    meta = [json.dumps({"generator": t.generator, "params": dict(t.params), "seed": list(t.seed)},
                       sort_keys=True) for t in tasks]
    cat = lambda xs, dt: (np.concatenate([np.ravel(x) for x in xs], dtype=dt, casting="unsafe")  # noqa: E731
                          if xs else np.zeros(0, dt))
    return {
        "n_states": np.array([t.n_states for t in tasks], np.int64),
        "n_actions": np.array([t.n_actions for t in tasks], np.int64),
        "n_obs": np.array([t.n_obs for t in tasks], np.int64),
        "max_steps": np.array([t.max_steps for t in tasks], np.int64),
        "goal": np.array([-1 if t.goal is None else t.goal for t in tasks], np.int64),
        "n_start": np.array([t.start_states.size for t in tasks], np.int64),
        "transition": cat([t.transition for t in tasks], np.float32),
        "reward": cat([t.reward for t in tasks], np.float32),
        "reward_noise": cat([t.reward_noise for t in tasks], np.float32),
        "terminal": cat([t.terminal for t in tasks], bool),
        "state_ids": cat([t.state_ids for t in tasks], np.int64),
        "start_states": cat([t.start_states for t in tasks], np.int64),
        "start_probs": cat([t.start_probs for t in tasks], np.float64),
        "meta": np.array(meta, dtype=np.str_),
    }


def decode_tasks(arrays: dict[str, np.ndarray]) -> list[MDPTask]:
    """Tasks from the arrays of ``encode_tasks``."""
    n, A = arrays["n_states"], arrays["n_actions"]
    cube = n * A * n
    o_cube = np.concatenate([[0], np.cumsum(cube)])
    o_vec = np.concatenate([[0], np.cumsum(n)])
    o_start = np.concatenate([[0], np.cumsum(arrays["n_start"])])
    tasks = []
    for i in range(len(n)):
        meta = json.loads(str(arrays["meta"][i]))
        shape = (int(n[i]), int(A[i]), int(n[i]))
        cube_of = lambda key: arrays[key][o_cube[i]:o_cube[i + 1]].reshape(shape)  # noqa: E731
        goal = int(arrays["goal"][i])
        tasks.append(MDPTask(
            n_obs=int(arrays["n_obs"][i]), transition=cube_of("transition"), reward=cube_of("reward"),
            reward_noise=cube_of("reward_noise"),
            start_states=arrays["start_states"][o_start[i]:o_start[i + 1]],
            start_probs=arrays["start_probs"][o_start[i]:o_start[i + 1]],
            terminal=arrays["terminal"][o_vec[i]:o_vec[i + 1]], goal=None if goal < 0 else goal,
            max_steps=int(arrays["max_steps"][i]), state_ids=arrays["state_ids"][o_vec[i]:o_vec[i + 1]],
            generator=meta["generator"], params=meta["params"], seed=tuple(meta["seed"])))
    return tasks


NPZ_COMPRESSLEVEL = 1
"""zlib level of the ``.npz`` files: the fastest, since compressing dominates writing a task
(``np.load`` reads any level)."""


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """``arrays`` as the bytes of an ``.npz`` file (deflated at ``NPZ_COMPRESSLEVEL``, no pickle)."""
    import io
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=NPZ_COMPRESSLEVEL) as z:
        for name, a in arrays.items():
            with z.open(f"{name}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(a), allow_pickle=False)
    return buf.getvalue()


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, EOFError, ValueError, OSError, KeyError) as e:
        raise ValueError(f"{path}: unreadable task file (truncated or corrupted): {e}") from None


# ---------------------------------------------------------------------------- the set


def parse_states(spec: Any) -> tuple[int, int | None]:
    """``"128"`` -> ``(128, None)``; ``"16:128"`` -> ``(128, 16)``: an observation space of 128 ids
    with the number of active states drawn per task in ``[16, 128]``."""
    if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        return int(spec), None
    text = str(spec)
    try:
        parts = [int(p) for p in text.split(":")]
    except ValueError:
        raise ValueError(f"states must be N or MIN:MAX with integers, got {spec!r}") from None
    if len(parts) == 1:
        return parts[0], None
    if len(parts) == 2:
        if parts[0] > parts[1]:
            raise ValueError(f"states MIN:MAX needs MIN <= MAX, got {spec!r}")
        return parts[1], parts[0]
    raise ValueError(f"states must be N or MIN:MAX, got {spec!r}")


class TaskSet(Sequence[MDPTask]):
    """An ordered, immutable collection of tasks with a content hash."""

    def __init__(self, tasks: Iterable[MDPTask], info: dict[str, Any] | None = None):
        self._tasks = tuple(tasks)
        for i, t in enumerate(self._tasks):
            if not isinstance(t, MDPTask):
                raise ValueError(f"tasks[{i}] must be an MDPTask, got {type(t).__name__}")
        self.info: dict[str, Any] = dict(info or {})
        """How the set was made (generator, params, seed), when known."""
        self._hashes: list[str] | None = None

    def __len__(self) -> int:
        return len(self._tasks)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return TaskSet(self._tasks[i], self.info)
        return self._tasks[i]

    def __iter__(self) -> Iterator[MDPTask]:
        return iter(self._tasks)

    def __repr__(self) -> str:
        return f"TaskSet({len(self)} tasks, hash={self.content_hash()[:12]})"

    def task_hashes(self) -> list[str]:
        if self._hashes is None:
            self._hashes = [t.content_hash() for t in self._tasks]
        return self._hashes

    def content_hash(self) -> str:
        """SHA-256 over the ordered task hashes: equal sets have equal hashes."""
        return _hash_of_hashes(self.task_hashes())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TaskSet) and self.content_hash() == other.content_hash()

    # ------------------------------------------------------------------ selection
    def sample(self, k: int, seed=0, replace: bool = False) -> "TaskSet":
        """``k`` tasks drawn uniformly (without replacement unless ``replace``) with ``seed``."""
        k = check_int("k", k, min_value=0, max_value=None if replace else len(self))
        idx = make_rng(seed).choice(len(self), size=k, replace=replace)
        return TaskSet([self._tasks[i] for i in idx], self.info)

    def shuffle(self, seed=0) -> "TaskSet":
        """The same tasks in a seeded random order."""
        return TaskSet([self._tasks[i] for i in make_rng(seed).permutation(len(self))], self.info)

    def split(self, train: int | float, test: int | float | None = None) -> tuple["TaskSet", "TaskSet"]:
        """``(first train tasks, next test tasks)``; a float is a fraction of the set. ``test``
        defaults to the rest. Tasks are i.i.d., so a prefix split is unbiased (``shuffle`` first to
        re-draw it)."""
        def count(name, x):
            if isinstance(x, float):
                return int(round(check_float(name, x, min_value=0.0, max_value=1.0) * len(self)))
            return check_int(name, x, min_value=0, max_value=len(self))
        n_train = count("train", train)
        n_test = len(self) - n_train if test is None else count("test", test)
        if n_train + n_test > len(self):
            raise ValueError(f"train + test = {n_train + n_test} exceeds the {len(self)} tasks of the set")
        return self[:n_train], self[n_train:n_train + n_test]

    # ------------------------------------------------------------------ storage
    def save(self, path: str | os.PathLike, shard_size: int = 256) -> Path:
        """Save to ``path``: a single ``.npz`` file, or a directory of shards with a manifest."""
        path = Path(path)
        shard_size = check_int("shard_size", shard_size, min_value=1)
        if path.suffix == ".npz":
            arrays = encode_tasks(self._tasks)
            arrays["manifest"] = np.array(json.dumps(self._manifest([])), dtype=np.str_)
            atomic_write_bytes(path, _npz_bytes(arrays))
            return path
        path.mkdir(parents=True, exist_ok=True)
        shards = []
        for s, lo in enumerate(range(0, len(self), shard_size)):
            chunk = self._tasks[lo:lo + shard_size]
            shards.append(_write_shard(path, s, lo, chunk, self.task_hashes()[lo:lo + shard_size],
                                       _spec_hash(self.info)))
        atomic_write_json(path / MANIFEST, self._manifest(shards))
        return path

    def _manifest(self, shards: list[dict]) -> dict[str, Any]:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "n_tasks": len(self),
                "content_hash": self.content_hash(), "info": self.info, "shards": shards}

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TaskSet":
        """Load and verify a task set saved by ``save`` or ``generate``."""
        path = Path(path)
        if not path.exists():
            raise ValueError(f"path {str(path)!r} does not exist")
        if path.is_dir():
            return cls._from_directory(path, {})
        arrays = _read_npz(path)
        if "manifest" not in arrays:
            raise ValueError(f"{path}: not an omnirl task set (no manifest)")
        manifest = _check_manifest(json.loads(str(arrays.pop("manifest"))), path)
        return _matching(cls(decode_tasks(arrays), manifest["info"]), manifest, path)

    @classmethod
    def _from_directory(cls, path: Path, sampled: dict[int, list[MDPTask]]) -> "TaskSet":
        """The task set in directory ``path``: the shards in ``sampled`` (shard index -> its tasks,
        sampled by this process as it wrote them) taken as they are, every other shard loaded and
        verified; the whole set checked against the manifest's content hash either way."""
        manifest = read_manifest(path)
        tasks: list[MDPTask] = []
        for entry in manifest["shards"]:
            mine = sampled.get(entry["index"])
            tasks.extend(load_shard(path, entry) if mine is None else mine)
        return _matching(cls(tasks, manifest["info"]), manifest, path)

    # ------------------------------------------------------------------ generation
    @classmethod
    def generate(cls, n: int, n_states: Any, n_actions: int, seed: int = 0, generator: str = "anymdp",
                 out: str | os.PathLike | None = None, workers: int = 1, shard_size: int = 64,
                 progress: bool = False, **params: Any) -> "TaskSet":
        """Sample ``n`` tasks; task ``i`` uses the stream ``(seed, i)``.

        ``n_states`` is ``S`` or ``"MIN:MAX"`` (see ``parse_states``). With ``out`` the set is
        written to disk shard by shard (resumable) over ``workers`` processes; the tasks this
        process sampled are returned as they are, and the shards it did not sample (made by worker
        processes, or by an earlier, interrupted run) are loaded back and verified. Without ``out``
        it is built in memory.
        """
        spec = generation_spec(n, n_states, n_actions, seed, generator, shard_size, params)
        if out is None:
            tasks = [_sample(spec, i) for i in range(spec["n_tasks"])]
            return cls(tasks, spec)
        sampled: dict[int, list[MDPTask]] = {}
        generate_to_disk(spec, Path(out), workers=workers, progress=progress, sampled=sampled)
        return cls._from_directory(Path(out), sampled)


def _matching(ts: TaskSet, manifest: dict[str, Any], path: Path) -> TaskSet:
    """``ts``, after checking that it is the task set ``manifest`` describes (its size and content hash)."""
    if len(ts) != manifest["n_tasks"] or ts.content_hash() != manifest["content_hash"]:
        raise ValueError(f"{path}: content hash mismatch: the task data does not match its manifest")
    return ts


def generation_spec(n: Any, n_states: Any, n_actions: Any, seed: Any, generator: str,
                    shard_size: Any, params: dict[str, Any]) -> dict[str, Any]:
    """Validated description of a task set to generate (stored as the manifest's ``info``)."""
    S, min_states = parse_states(n_states)
    spec = {"generator": generator, "n_tasks": check_int("n", n, min_value=1),
            "n_states": S, "min_states": min_states,
            "n_actions": check_int("actions", n_actions, min_value=1, max_value=MAX_ACTIONS),
            "seed": check_seed("seed", seed)[0] if not isinstance(seed, (tuple, list)) else None,
            "shard_size": check_int("shard_size", shard_size, min_value=1), "params": dict(params)}
    if spec["seed"] is None:
        raise ValueError(f"seed must be a single non-negative integer for a task set, got {seed!r}")
    sample_task(generator, S, n_actions, (spec["seed"], 0), min_states, **params)  # validates all
    return spec


def _sample(spec: dict[str, Any], i: int) -> MDPTask:
    return sample_task(spec["generator"], spec["n_states"], spec["n_actions"], (spec["seed"], i),
                       spec["min_states"], **spec["params"])


def _shard_name(s: int) -> str:
    return f"shard-{s:05d}"


def _write_shard(root: Path, s: int, lo: int, tasks: Sequence[MDPTask], hashes: list[str] | None = None,
                 spec_hash: str | None = None) -> dict[str, Any]:
    """Write shard ``s`` (its ``.npz``, then its sidecar) holding ``tasks``, the set's tasks from
    ``lo`` on (``hashes``: their content hashes, computed if ``None``); its manifest entry."""
    hashes = [t.content_hash() for t in tasks] if hashes is None else hashes
    npz = root / f"{_shard_name(s)}.npz"
    data = _npz_bytes(encode_tasks(tasks))
    atomic_write_bytes(npz, data)
    entry = {"file": npz.name, "index": s, "first_task": lo, "n_tasks": len(tasks),
             "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
             "content_hash": _hash_of_hashes(hashes), "spec_hash": spec_hash}
    atomic_write_json(root / f"{_shard_name(s)}.json", {**entry, "task_hashes": hashes})
    return entry


def pending_bytes(spec: dict[str, Any], out: str | os.PathLike) -> int:
    """A bound on the bytes ``generate_to_disk(spec, out)`` still writes: every shard whose ``.npz``
    is not in ``out`` yet, its sidecar and the manifest (what ``omnirl._validate.check_disk`` weighs
    against the free disk before a run starts). A task is counted as twice the compressed size of
    task 0, scaled to the largest state count, and never more than its arrays uncompressed (plus
    1 % and the headers, more than deflate can ever make of them)."""
    S, A, n = spec["n_states"], spec["n_actions"], spec["n_tasks"]
    meta = 4 * (400 + len(json.dumps(spec["params"], sort_keys=True)))  # a task's meta string, 4-byte chars
    raw = (12 * S * S * A + 33 * S + 48 + meta) * 101 // 100
    t0 = _sample(spec, 0)
    measured = 2 * len(_npz_bytes(encode_tasks([t0]))) * (S / t0.n_states) ** 2
    per_task = int(min(raw, measured)) + 70  # and the task's hash in the sidecar
    k = spec["shard_size"]
    total = 1024 + len(json.dumps(spec)) + n * per_task + -(-n // k) * (8192 + 512)  # headers, sidecars, manifest
    for f in Path(out).glob("shard-*.npz") if Path(out).is_dir() else ():  # written already
        try:
            s = int(f.stem.split("-")[1])
        except (ValueError, IndexError):
            continue
        if 0 <= s * k < n:
            total -= min(k, n - s * k) * per_task + 8192 + 512
    return total


def _generate_shard(spec: dict[str, Any], root: str, s: int,
                    sampled: dict[int, list[MDPTask]] | None = None) -> dict[str, Any]:
    """Sample shard ``s`` of ``spec`` and write it to ``root``; its sidecar entry. ``sampled``
    (in this process only): also keeps the shard's tasks there, under ``s``."""
    lo, tasks = _sample_shard(spec, s)
    entry = _write_shard(Path(root), s, lo, tasks, spec_hash=_spec_hash(spec))
    if sampled is not None:
        sampled[s] = tasks
    return entry


def _sample_shard(spec: dict[str, Any], s: int) -> tuple[int, list[MDPTask]]:
    """The index of shard ``s``'s first task and its tasks."""
    lo = s * spec["shard_size"]
    return lo, [_sample(spec, i) for i in range(lo, min(lo + spec["shard_size"], spec["n_tasks"]))]


def _spec_hash(spec: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def _intact_shard(root: Path, s: int, spec_hash: str) -> dict[str, Any] | None:
    side = root / f"{_shard_name(s)}.json"
    if not side.exists():
        return None
    try:
        entry = json.loads(side.read_text())
        entry.pop("task_hashes")
    except (ValueError, KeyError):
        return None
    npz = root / entry.get("file", "")
    if entry.get("spec_hash") != spec_hash or not npz.is_file() or npz.stat().st_size != entry["bytes"]:
        return None
    return entry if _sha256(npz) == entry["sha256"] else None


def _check_out_holds_only(out: Path, spec: dict[str, Any], spec_hash: str) -> None:
    """Refuse (``ValueError`` naming ``out``) a directory holding anything but this task set or an
    interrupted run of it: another task set, a dataset, or other files are never overwritten."""
    if not out.exists():
        return
    if not out.is_dir():
        raise ValueError(f"out={str(out)!r} is not a directory")
    manifest = out / MANIFEST
    if manifest.exists():
        try:
            m = json.loads(manifest.read_text())
        except ValueError:
            m = None
        if not isinstance(m, dict) or m.get("format") != FORMAT or m.get("info") != spec:
            raise ValueError(f"out={str(out)!r} holds another task set or a dataset ({MANIFEST}); "
                             "choose an empty directory")
    for p in out.iterdir():
        if p.name in (MANIFEST, CLAIM) or (p.name == PLOTS and p.is_dir()):  # the claim is compared by claim_directory
            continue
        shard = (p.name.startswith("shard-") and p.suffix in (".npz", ".json")) or (
            p.name.startswith((".shard-", f".{MANIFEST}.", f".{CLAIM}.")) and p.name.endswith(".tmp"))  # a killed run's
        if not shard:
            raise ValueError(f"out={str(out)!r} holds {p.name!r}, which is not part of this task set; "
                             "choose an empty directory")
        if p.suffix == ".json":
            try:
                own = json.loads(p.read_text()).get("spec_hash") == spec_hash
            except (ValueError, AttributeError):
                own = False
            if not own:
                raise ValueError(f"out={str(out)!r} holds {p.name!r} of another task set; "
                                 "choose an empty directory")


def generate_to_disk(spec: dict[str, Any], out: Path, workers: int = 1, progress: bool = False,
                     sampled: dict[int, list[MDPTask]] | None = None) -> Path:
    """Write the task set ``spec`` to ``out`` shard by shard; resumes an interrupted run. A
    directory holding anything else (another task set, a dataset, other files) is refused before
    anything is written. ``sampled``: filled with the tasks of every shard sampled in this
    process (shard index -> its tasks), so a caller that wants the set need not read them back;
    by default each shard's tasks are dropped once written (memory does not grow with the set)."""
    workers = check_int("workers", workers, min_value=1)
    spec_hash = _spec_hash(spec)
    _check_out_holds_only(out, spec, spec_hash)
    check_disk("out", out, pending_bytes(spec, out))
    claim_directory(out, {"format": FORMAT, "spec_hash": spec_hash, "info": spec}, "task set",
                    lambda new, held: _spec_diff(new["info"], held.get("info") if isinstance(held, dict) else None))
    # a second run on it is refused; a killed run's temporary files go, and those of this run's stopped workers
    with exclusive(out, "task set", temporaries=("shard-", MANIFEST)):
        return _generate_claimed(spec, spec_hash, out, workers, progress, sampled)


def _spec_diff(new: dict[str, Any], held: Any) -> list[str]:
    """The generation settings in which ``held`` (a claim's, possibly malformed) differs from ``new``."""
    if not isinstance(held, dict):
        return ["settings (unreadable)"]
    return [f"{k} {held.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(new) | set(held)) if new.get(k) != held.get(k)]


def _generate_claimed(spec: dict[str, Any], spec_hash: str, out: Path, workers: int, progress: bool,
                      sampled: dict[int, list[MDPTask]] | None = None) -> Path:
    """``generate_to_disk``'s work, in the directory it has claimed."""
    n_shards = -(-spec["n_tasks"] // spec["shard_size"])
    entries: dict[int, dict] = {}
    for s in range(n_shards):
        entry = _intact_shard(out, s, spec_hash)
        if entry is not None:
            entries[s] = entry
    todo = [s for s in range(n_shards) if s not in entries]
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=spec["n_tasks"], unit="task", desc="generate",
                   initial=sum(e["n_tasks"] for e in entries.values()))

    def done(e: dict[str, Any]) -> None:
        entries[e["index"]] = e
        if bar is not None:
            bar.update(e["n_tasks"])

    try:
        if workers == 1 or len(todo) <= 1:  # one process: a shard is written while the next is sampled
            with write_behind(done) as write:
                for s in todo:
                    lo, tasks = _sample_shard(spec, s)
                    if sampled is not None:
                        sampled[s] = tasks
                    write(_write_shard, out, s, lo, tasks, None, spec_hash)
        else:
            with environment(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1"):  # the pool uses the cores
                run_pool(_generate_shard, [(spec, str(out), s) for s in todo], workers, done)
    finally:
        if bar is not None:
            bar.close()
    shards = [entries[s] for s in range(n_shards)]
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "n_tasks": spec["n_tasks"],
                "content_hash": _hash_of_hashes(h for s in range(n_shards) for h in _sidecar_hashes(out, s)),
                "info": spec, "shards": shards}
    atomic_write_json(out / MANIFEST, manifest)
    return out


def _sidecar_hashes(root: Path, s: int) -> list[str]:
    return json.loads((root / f"{_shard_name(s)}.json").read_text())["task_hashes"]


def _check_manifest(manifest: Any, path: Path) -> dict[str, Any]:
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{path}: not an omnirl task set manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported task set format_version {manifest.get('format_version')!r}")
    for key in ("n_tasks", "content_hash", "info", "shards"):
        if key not in manifest:
            raise ValueError(f"{path}: manifest has no {key!r}")
    held = {e.get("spec_hash") for e in manifest["shards"] if isinstance(e, dict)} - {None}
    if held and held != {_spec_hash(manifest["info"])}:  # the shards record a hash of the info they were made with
        raise ValueError(f"{path}: 'info' does not match the settings the shards were made with (edited manifest?)")
    return manifest


def read_manifest(root: str | os.PathLike) -> dict[str, Any]:
    """The verified-format manifest of a task set directory."""
    path = Path(root) / MANIFEST
    return _check_manifest(read_json(path, "not a task set, or generation did not finish"), path)


def load_shard(root: str | os.PathLike, entry: dict[str, Any]) -> list[MDPTask]:
    """The tasks of one shard, after checking its size and checksum against the manifest entry."""
    npz = Path(root) / entry["file"]
    if not npz.is_file():
        raise ValueError(f"{npz}: shard file is missing")
    if npz.stat().st_size != entry["bytes"]:
        raise ValueError(f"{npz}: size {npz.stat().st_size} != {entry['bytes']} in the manifest (truncated?)")
    if _sha256(npz) != entry["sha256"]:
        raise ValueError(f"{npz}: checksum mismatch (the file was modified or corrupted)")
    tasks = decode_tasks(_read_npz(npz))
    if len(tasks) != entry["n_tasks"]:
        raise ValueError(f"{npz}: holds {len(tasks)} tasks, manifest says {entry['n_tasks']}")
    return tasks


def iter_tasks(root: str | os.PathLike) -> Iterator[MDPTask]:
    """Stream the tasks of a task set directory one shard at a time (bounded memory)."""
    manifest = read_manifest(root)
    for entry in manifest["shards"]:
        yield from load_shard(root, entry)


__all__ = ["TaskSet", "generate_to_disk", "generation_spec", "iter_tasks", "load_shard",
           "parse_states", "read_manifest"]
