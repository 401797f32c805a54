"""Dataset generation: shards of synthesised sequences over a process pool or a Ray cluster.

A dataset is ``n_sequences`` sequences of ``length`` steps from one pipeline, over a task set of
exactly ``N`` tasks (sequence ``j`` plays task ``j mod N``) or over a fresh task per sequence.
Sequence ``j`` is seeded ``(seed, j)``, so the dataset is bit-identical whatever the number of
workers, the backend or the batch size. Shards are committed atomically; a rerun resumes and
skips intact shards; an output directory holding another dataset is refused.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from omnirl._pool import run_pool
from omnirl._validate import check_choice, check_disk, check_int, check_memory
from omnirl.data.pipelines import PROBES, PipelineConfig, pipeline
from omnirl.data.schema import SCHEMA_VERSION, STEP_FIELDS, task_hash_bytes
from omnirl.data.store import DatasetHeader, DatasetWriter, pending_bytes
from omnirl.data.synthesis import ActorFactory, synthesize
from omnirl.fileio import held_content
from omnirl.tasks import MDPTask, sample_anymdp
from omnirl.tasks.samplers import check_task_memory
from omnirl.tasks.taskset import TaskSet, parse_states
from omnirl.tasks.taskset import read_manifest as read_task_manifest

BACKENDS = ("local", "ray")
DEFAULT_BATCH = 1024
"""Sequences simulated together per worker by default, whatever the shard size: batching is most
of the speed (README, Speed), and memory grows with the batch, not with the sequence length."""
DEFAULT_SHARD_SIZE = 256
"""Sequences per shard by default (speed does not depend on it; a shard is the unit of resuming)."""


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """Everything that defines a dataset's content (stored in its manifest)."""

    pipeline: str
    """Data pipeline name (``omnirl``, ``omnirl_noprior``, ``ad``, ``ad_epsilon``, ``dpt``, the probes
    ``random_probe``, ``uniform_probe``, ``myopic_probe``, or ``bandit``: bandit tasks, ``n_obs = 1``)."""
    n_sequences: int
    """Number of sequences."""
    length: int
    """Steps per sequence ``T`` (episode-end markers included)."""
    n_obs: int
    """Observation space ``S`` of every task."""
    n_actions: int
    """Actions ``A`` of every task (``A`` is also the end-marker action)."""
    seed: int
    """Root seed: sequence ``j`` uses the streams of ``(seed, j)``."""
    task_set: str | None = None
    """Directory of the task set (sequence ``j`` plays task ``j mod N``); ``None``: a fresh task per sequence."""
    min_states: int | None = None
    """For fresh tasks: active states drawn in ``[min_states, n_obs]``."""
    shard_size: int = DEFAULT_SHARD_SIZE
    """Sequences per shard (the unit of writing and resuming; the content does not depend on it)."""

    def __post_init__(self) -> None:
        if pipeline(self.pipeline).bandit and self.n_obs != 1:  # validates the name
            raise ValueError(f"pipeline={self.pipeline!r} needs bandit tasks (n_obs = 1, states '1'), got "
                             f"n_obs={self.n_obs}")
        check_int("n_sequences", self.n_sequences, min_value=1)
        check_int("length", self.length, min_value=2)
        check_int("seed", self.seed, min_value=0)
        check_int("shard_size", self.shard_size, min_value=1)
        check_task_memory(self.n_obs, self.n_actions)  # fresh tasks are sampled with these sizes


def _fresh_task(spec: DatasetSpec, j: int) -> MDPTask:
    return sample_anymdp(spec.n_obs, spec.n_actions, seed=(spec.seed, 1_000_003, j), min_states=spec.min_states)


def _sequence_tasks(spec: DatasetSpec, tasks: TaskSet | None, js: Sequence[int]) -> tuple[list[MDPTask], np.ndarray]:
    """The tasks of sequences ``js`` and their indices in the task set (-1: a fresh task)."""
    if tasks is None:
        return [_fresh_task(spec, j) for j in js], np.full(len(js), -1, dtype=np.int64)
    idx = np.asarray(js, dtype=np.int64) % len(tasks)
    return [tasks[int(i)] for i in idx], idx


def generate_shards(spec: DatasetSpec, config: PipelineConfig, out: str, shards: Sequence[int], batch: int,
                    tasks: TaskSet | None = None, actor: ActorFactory | None = None) -> dict[str, Any]:
    """Synthesise the shards ``shards`` into ``out``: their sequences one after another,
    ``batch`` of them simulated together whatever the shard size (a batch may span shards);
    each shard is filled through a memory map and committed atomically once all are written.
    ``actor``: makes the policy that plays each batch instead of the pipeline's behaviour."""
    if tasks is None and spec.task_set is not None:
        tasks = TaskSet.load(spec.task_set)
    writer = DatasetWriter(out, header(spec, config, tasks, actor))
    t0 = time.perf_counter()
    steps = 0
    with contextlib.ExitStack() as stack:
        opened = [stack.enter_context(writer.open_shard(s)) for s in shards]
        # (global sequence index, shard buffer, row in the shard) of every sequence of the group
        seqs = [(sh.index * spec.shard_size + r, sh, r) for sh in opened for r in range(_shard_len(spec, sh.index))]
        for b0 in range(0, len(seqs), batch):
            part = seqs[b0:b0 + batch]
            js = [j for j, _, _ in part]
            blocks = []  # (shard buffer, its rows in this batch), in the batch's order
            for sh, run in itertools.groupby(part, key=lambda x: x[1]):
                rs = [r for _, _, r in run]
                blocks.append((sh, slice(rs[0], rs[-1] + 1)))
            task_list, task_index = _sequence_tasks(spec, tasks, js)
            stats = synthesize(task_list, [(spec.seed, j) for j in js], config, spec.length,
                               [{f: sh.columns[f][rows] for f in STEP_FIELDS} for sh, rows in blocks],
                               actor=None if actor is None else actor(len(js), js[0]))
            steps += stats["steps"]
            hashes = np.stack([task_hash_bytes(t.content_hash()) for t in task_list])
            i = 0
            for sh, rows in blocks:
                n = rows.stop - rows.start
                sh.columns["task_index"][rows] = task_index[i:i + n]
                sh.columns["sequence_index"][rows] = js[i:i + n]
                sh.columns["task_hash"][rows] = hashes[i:i + n]
                i += n
        for sh in opened:
            sh.commit()
    return {"shards": list(shards), "sequences": len(seqs), "seconds": time.perf_counter() - t0, "steps": steps}


def shard_groups(spec: DatasetSpec, todo: Sequence[int], batch: int, workers: int = 1) -> list[list[int]]:
    """The shards ``todo`` in runs that ``generate_shards`` simulates together: as many shards as
    fit in ``batch`` sequences (at least one), and at least ``workers`` runs when there are as
    many shards, so every worker has work."""
    per = max(1, batch // spec.shard_size)
    if workers > 1:
        per = min(per, -(-len(todo) // workers))
    return [list(todo[i:i + per]) for i in range(0, len(todo), per)]


def header(spec: DatasetSpec, config: PipelineConfig, tasks: TaskSet | None,
           actor: ActorFactory | None = None) -> DatasetHeader:
    return DatasetHeader(
        schema_version=SCHEMA_VERSION, n_obs=spec.n_obs, n_actions=spec.n_actions, length=spec.length,
        n_sequences=spec.n_sequences, shard_size=spec.shard_size,
        task_set_hash=None if tasks is None else tasks.content_hash(),
        config={"spec": dataclasses.asdict(spec), "pipeline": config.to_dict(),
                **({} if actor is None else {"actor": actor.describe()})})


def check_batch_memory(spec: DatasetSpec, batch: int) -> None:
    """Refuse (ValueError naming ``batch`` and the sizes) a batch whose simulator tables cannot fit
    in memory: the rows simulated together hold at least their tasks' ``(S, A, S)`` float32
    transition kernels (the learners' models and the oracles' tables come on top)."""
    rows = min(check_int("batch", batch, min_value=1), spec.n_sequences)
    check_memory(f"batch={rows} sequences of n_obs={spec.n_obs}, n_actions={spec.n_actions} simulated together "
                 "(lower --batch)", 4 * rows * spec.n_obs ** 2 * spec.n_actions)


def dataset_bytes(spec: DatasetSpec, out: str | os.PathLike) -> int:
    """The bytes writing the dataset ``spec`` still puts into ``out`` (shards not there yet, their
    sidecars, the manifest): for ``check_disk`` before a run starts."""
    return pending_bytes(header(spec, pipeline(spec.pipeline), None), out)  # the layout ignores the task set


RAY_CONNECT_SECONDS = 5.0
"""How long ``check_backend`` waits for a Ray cluster's address to accept a connection."""


def check_backend(backend: str, ray_address: str | None = None) -> str:
    """Validate ``backend`` before anything is written: for ``ray``, that Ray is installed and that a
    ``HOST:PORT`` ``ray_address`` accepts a connection within ``RAY_CONNECT_SECONDS`` (Ray itself
    retries an unreachable cluster for minutes); ValueError naming the argument otherwise."""
    check_choice("backend", backend, BACKENDS)
    if backend != "ray":
        if ray_address is not None:
            raise ValueError(f"ray_address={ray_address!r} is for backend 'ray', got backend={backend!r}")
        return backend
    import importlib.util
    if importlib.util.find_spec("ray") is None:
        raise ValueError("backend 'ray' needs Ray: pip install -e '.[ray]'")
    if ray_address is not None and ray_address != "auto":
        import socket
        host, _, port = ray_address.split("://")[-1].rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"ray_address must be HOST:PORT (or 'auto'), got {ray_address!r}")
        try:
            socket.create_connection((host, int(port)), timeout=RAY_CONNECT_SECONDS).close()
        except OSError as e:
            raise ValueError(f"ray_address={ray_address!r}: no Ray cluster answers there ({e.strerror or e})") from None
    return backend


def generate_dataset(spec: DatasetSpec, out: str | os.PathLike, workers: int = 1, backend: str = "local",
                     batch: int = DEFAULT_BATCH, progress: bool = False, ray_address: str | None = None,
                     tasks: TaskSet | None = None, actor: ActorFactory | None = None) -> dict:
    """Write the dataset ``spec`` to ``out`` (resuming an interrupted run); returns the manifest.

    ``tasks``: the task set at ``spec.task_set`` when the caller has it loaded already (it must
    have the content hash of that directory's manifest); by default it is loaded from there.
    ``actor``: plays the sequences instead of the pipeline's behaviour (``omnirl.data.synthesis``;
    what it describes is stored in the manifest), here, in ``batch``-sequence batches (its
    sequences may depend on the batch, so ``batch`` belongs in its description)."""
    workers = check_int("workers", workers, min_value=1)
    batch = check_int("batch", batch, min_value=1)
    if actor is not None and (workers != 1 or backend != "local"):
        raise ValueError(f"an actor plays in this process: workers must be 1 and backend 'local', got {workers} "
                         f"and {backend!r}")
    check_batch_memory(spec, batch)
    check_backend(backend, ray_address)
    config = pipeline(spec.pipeline)
    if spec.task_set is None:
        if tasks is not None:
            raise ValueError("tasks were given for a dataset of fresh tasks (spec.task_set is None)")
    elif tasks is None:
        tasks = TaskSet.load(spec.task_set)
    elif tasks.content_hash() != read_task_manifest(spec.task_set)["content_hash"]:
        raise ValueError(f"the tasks given are not the task set {spec.task_set} (content hash differs)")
    if tasks is not None:
        t0 = tasks[0]
        if (t0.n_obs, t0.n_actions) != (spec.n_obs, spec.n_actions):
            raise ValueError(f"task set {spec.task_set} has n_obs={t0.n_obs}, n_actions={t0.n_actions}; "
                             f"the dataset asks for {spec.n_obs} and {spec.n_actions}")
    check_disk("out", out, dataset_bytes(spec, out))
    writer = DatasetWriter(out, header(spec, config, tasks, actor))  # refuses another dataset's directory
    with writer.exclusive():  # and a second run on this one; removes a killed run's temporary files
        todo = writer.missing_shards()
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=spec.n_sequences, unit="seq", desc="synthesise",
                       initial=spec.n_sequences - sum(_shard_len(spec, s) for s in todo))

        def done(r: dict[str, Any]) -> None:
            if bar is not None:
                bar.update(r["sequences"])

        try:
            groups = shard_groups(spec, todo, batch, workers)
            if backend == "ray":
                _run_ray(spec, config, str(out), groups, batch, workers, ray_address, bar)
            elif workers == 1 or len(groups) <= 1:
                for group in groups:
                    done(generate_shards(spec, config, str(out), group, batch, tasks, actor))
            else:
                run_pool(generate_shards, [(spec, config, str(out), group, batch) for group in groups], workers,
                         done)
        finally:
            if bar is not None:
                bar.close()
        return writer.finalize()


def _shard_len(spec: DatasetSpec, s: int) -> int:
    return min(spec.shard_size, spec.n_sequences - s * spec.shard_size)


def _run_ray(spec, config, out, groups, batch, workers, address, bar) -> None:
    """Run ``generate_shards`` over ``groups`` as Ray tasks, on a local Ray instance started here
    (``workers`` CPUs) or the cluster at ``address``. As with the process pool (``omnirl._pool``),
    an interrupt or the first failed task force-cancels every outstanding task (its worker is
    killed; a temporary shard it leaves is removed by the rerun, which resumes) and is re-raised,
    the failure as the task's own exception (a full disk's OSError, say), and a Ray instance
    started here is shut down."""
    import ray  # checked by check_backend
    started = not ray.is_initialized()
    if started:
        try:
            ray.init(address=address, num_cpus=None if address else workers, include_dashboard=False,
                     log_to_driver=False)
        except Exception as e:  # a cluster that refuses the connection, a machine where Ray cannot start
            what = f"ray_address={address!r}: cannot connect to the Ray cluster" if address else "cannot start Ray"
            raise ValueError(f"{what} ({type(e).__name__}: {e})") from None
    pending: list = []
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(generate_shards)
        pending = [remote.remote(spec, config, out, group, batch) for group in groups]
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            try:
                r = ray.get(ready[0])
            except ray.exceptions.RayTaskError as e:
                cause = getattr(e, "cause", None)
                if isinstance(cause, Exception):
                    raise cause from None
                raise
            if bar is not None:
                bar.update(r["sequences"])
    except BaseException:
        for ref in pending:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        raise
    finally:
        if started:
            ray.shutdown()


def build_task_set(n_tasks: int, states: Any, n_actions: int, seed: int, out: Path, workers: int = 1) -> TaskSet:
    """The task set of exactly ``n_tasks`` tasks a dataset cycles over, stored under ``out``."""
    n_tasks = check_int("tasks", n_tasks, min_value=1)
    return TaskSet.generate(n_tasks, states, n_actions, seed=seed, out=out, workers=workers)


def prepare_task_set(out: str | os.PathLike, n_tasks: int, states: Any, n_actions: int, task_seed: int,
                     workers: int = 1) -> Path:
    """Make (or find) the task set a dataset in ``out`` cycles over, at ``out/tasks``.

    Refuses to write into a non-empty ``out`` that does not already hold this very task set, so a
    directory holding something else is never touched.
    """
    return load_task_set(out, n_tasks, states, n_actions, task_seed, workers)[0]


def load_task_set(out: str | os.PathLike, n_tasks: int, states: Any, n_actions: int, task_seed: int,
                  workers: int = 1) -> tuple[Path, TaskSet]:
    """``prepare_task_set``'s directory and its task set, loaded (and verified) once, for
    ``generate_dataset(..., tasks=)``."""
    out = Path(out)
    task_dir = out / "tasks"
    n_tasks = check_int("tasks", n_tasks, min_value=1)
    if (task_dir / "manifest.json").exists():
        tasks = TaskSet.load(task_dir)
        info = tasks.info
        want = {"n_tasks": n_tasks, "seed": task_seed, "n_actions": n_actions}
        have = {k: info.get(k) for k in want}
        if have != want or parse_states(states) != (info.get("n_states"), info.get("min_states")):
            raise ValueError(f"{task_dir} holds another task set ({have}, states "
                             f"{info.get('min_states')}:{info.get('n_states')}); use another --out")
        return task_dir, tasks
    if out.exists() and any(p.name != "tasks" for p in out.iterdir()):  # tasks/: a killed run's, resumed
        raise ValueError(f"output directory {str(out)!r} is not empty and holds no task set of this "
                         "dataset; use an empty or new directory")
    return task_dir, TaskSet.generate(n_tasks, states, n_actions, seed=task_seed, out=task_dir, workers=workers,
                                      shard_size=TASK_SHARD_SIZE)


TASK_SHARD_SIZE = 64
"""Tasks per shard of the task set ``load_task_set`` writes."""


def task_set_bytes(out: str | os.PathLike, n_tasks: int, states: Any, n_actions: int, task_seed: int) -> int:
    """The bytes ``load_task_set`` still writes to ``out/tasks`` (an upper bound; 0 when the task set is
    there): for ``check_disk`` before a run starts."""
    from omnirl.tasks.taskset import generation_spec
    from omnirl.tasks.taskset import pending_bytes as pending_task_bytes
    task_dir = Path(out) / "tasks"
    if (task_dir / "manifest.json").exists():
        return 0
    spec = generation_spec(n_tasks, states, n_actions, task_seed, "anymdp", TASK_SHARD_SIZE, {})
    return pending_task_bytes(spec, task_dir)


def dataset_task_set(dataset: str | os.PathLike, recorded: str, content_hash: str | None) -> tuple[Path, TaskSet]:
    """The task set a dataset was drawn from, and its directory: ``DATASET/tasks`` when it is there
    (where ``python -m omnirl.data generate`` puts it, so a moved dataset brings it along), else the
    directory ``recorded`` in its manifest; either way it must have the dataset's task-set
    ``content_hash``, or ValueError names both."""
    local = Path(dataset) / "tasks"
    path = local if (local / "manifest.json").is_file() else Path(recorded)
    if not (path / "manifest.json").is_file():
        raise ValueError(f"dataset {str(dataset)!r}: its task set is neither in {str(local)!r} nor at the "
                         f"recorded {recorded!r}")
    found = read_task_manifest(path)["content_hash"]
    if found != content_hash:
        raise ValueError(f"dataset {str(dataset)!r} was drawn from the task set with content hash "
                         f"{content_hash}; {str(path)!r} holds another ({found})")
    return path, TaskSet.load(path)


PROBE = "probe"
"""Name of the in-context-RL probe among the validation sets (``make_validation_sets(probe=True)``)."""


def make_validation_sets(train_dir: str | os.PathLike, out: str | os.PathLike, n_sequences: int,
                         workers: int = 1, backend: str = "local", batch: int = DEFAULT_BATCH,
                         probe: bool = False, probes: Sequence[str] = ()) -> dict[str, dict]:
    """Validation datasets for a training dataset, same pipeline, sizes and length:
    ``out/seen`` (new sequences on the training tasks) and ``out/unseen`` (new tasks, one per
    sequence, never in the training task set); with ``probe``, also ``out/probe`` (``PROBE``):
    the unseen tasks played by one random policy per sequence (the ``random_probe`` pipeline),
    oracle-labelled, where only the rewards in the context can tell the good actions. Each name of
    ``probes`` (``omnirl.data.pipelines.PROBES``) adds ``out/NAME``: the unseen tasks under that
    probe pipeline."""
    probes = tuple(probes)
    for name in probes:
        check_choice("probes", name, PROBES)
    from omnirl.data.store import read_manifest
    _, head = read_manifest(train_dir)
    spec = DatasetSpec(**head.config["spec"])
    n_sequences = check_int("sequences", n_sequences, min_value=1)
    out = Path(out)
    held = held_content(out)
    if held is not None:  # out holds the validation sets, each in a directory of its own
        raise ValueError(f"out {str(out)!r} holds {held}; validation sets go to a directory of their own")
    seed = spec.seed + 1  # other sequence seeds than training
    sets: dict[str, tuple[DatasetSpec, TaskSet | None]] = {}
    if spec.task_set is not None:
        task_dir, tasks = dataset_task_set(train_dir, spec.task_set, head.task_set_hash)
        moved = Path(spec.task_set).resolve() != task_dir.resolve()
        sets["seen"] = (dataclasses.replace(spec, n_sequences=n_sequences, seed=seed,
                                            task_set=str(task_dir) if moved else spec.task_set), tasks)
    unseen = dataclasses.replace(spec, n_sequences=n_sequences, seed=seed, task_set=None)
    sets["unseen"] = (unseen, None)
    if probe:
        sets[PROBE] = (dataclasses.replace(unseen, pipeline="random_probe"), None)
    for name in dict.fromkeys(probes):
        sets[name] = (dataclasses.replace(unseen, pipeline=name), None)
    check_disk("out", out, sum(dataset_bytes(s, out / name) for name, (s, _) in sets.items()))  # all, before the first
    return {name: generate_dataset(s, out / name, workers, backend, batch, tasks=tasks)
            for name, (s, tasks) in sets.items()}
