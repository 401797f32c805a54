"""Dataset generation: shards of synthesised sequences over a process pool or a Ray cluster.

A dataset is ``n_sequences`` sequences of ``length`` steps from one pipeline, over a task set of
exactly ``N`` tasks (sequence ``j`` plays task ``j mod N``) or over a fresh task per sequence.
Sequence ``j`` is seeded ``(seed, j)``, so the dataset is bit-identical whatever the number of
workers, the backend or the batch size. Shards are committed atomically; a rerun resumes and
skips intact shards; an output directory holding another dataset is refused.
"""

from __future__ import annotations

import dataclasses
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from omnirl._validate import check_choice, check_int
from omnirl.data.pipelines import PipelineConfig, pipeline
from omnirl.data.schema import SCHEMA_VERSION, STEP_FIELDS, task_hash_bytes
from omnirl.data.store import DatasetHeader, DatasetWriter
from omnirl.data.synthesis import synthesize
from omnirl.tasks import MDPTask, sample_anymdp
from omnirl.tasks.taskset import TaskSet, parse_states

BACKENDS = ("local", "ray")


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """Everything that defines a dataset's content (stored in its manifest)."""

    pipeline: str
    """Data pipeline name (``omnirl``, ``omnirl_noprior``, ``ad``, ``ad_epsilon``, ``dpt``,
    ``random_probe``)."""
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
    shard_size: int = 64
    """Sequences per shard."""

    def __post_init__(self) -> None:
        pipeline(self.pipeline)  # validates the name
        check_int("n_sequences", self.n_sequences, min_value=1)
        check_int("length", self.length, min_value=2)
        check_int("seed", self.seed, min_value=0)
        check_int("shard_size", self.shard_size, min_value=1)


def _fresh_task(spec: DatasetSpec, j: int) -> MDPTask:
    return sample_anymdp(spec.n_obs, spec.n_actions, seed=(spec.seed, 1_000_003, j), min_states=spec.min_states)


def _shard_tasks(spec: DatasetSpec, tasks: TaskSet | None, lo: int, hi: int) -> tuple[list[MDPTask], np.ndarray]:
    if tasks is None:
        return [_fresh_task(spec, j) for j in range(lo, hi)], np.full(hi - lo, -1, dtype=np.int64)
    idx = np.arange(lo, hi) % len(tasks)
    return [tasks[int(i)] for i in idx], idx.astype(np.int64)


def generate_shard(spec: DatasetSpec, config: PipelineConfig, out: str, s: int, batch: int,
                   tasks: TaskSet | None = None) -> dict[str, Any]:
    """Synthesise shard ``s`` into ``out`` (memory-mapped, then committed atomically)."""
    if tasks is None and spec.task_set is not None:
        tasks = TaskSet.load(spec.task_set)
    writer = DatasetWriter(out, header(spec, config, tasks))
    lo = s * spec.shard_size
    hi = min(lo + spec.shard_size, spec.n_sequences)
    t0 = time.perf_counter()
    steps = 0
    with writer.open_shard(s) as shard:
        cols = shard.columns
        for b0 in range(lo, hi, batch):
            b1 = min(b0 + batch, hi)
            task_list, task_index = _shard_tasks(spec, tasks, b0, b1)
            rows = slice(b0 - lo, b1 - lo)
            out_rows = {f: cols[f][rows] for f in STEP_FIELDS}
            stats = synthesize(task_list, [(spec.seed, j) for j in range(b0, b1)], config, spec.length, out_rows)
            steps += stats["steps"]
            cols["task_index"][rows] = task_index
            cols["sequence_index"][rows] = np.arange(b0, b1)
            cols["task_hash"][rows] = np.stack([task_hash_bytes(t.content_hash()) for t in task_list])
        shard.commit()
    return {"shard": s, "sequences": hi - lo, "seconds": time.perf_counter() - t0, "steps": steps}


def header(spec: DatasetSpec, config: PipelineConfig, tasks: TaskSet | None) -> DatasetHeader:
    return DatasetHeader(
        schema_version=SCHEMA_VERSION, n_obs=spec.n_obs, n_actions=spec.n_actions, length=spec.length,
        n_sequences=spec.n_sequences, shard_size=spec.shard_size,
        task_set_hash=None if tasks is None else tasks.content_hash(),
        config={"spec": dataclasses.asdict(spec), "pipeline": config.to_dict()})


def generate_dataset(spec: DatasetSpec, out: str | os.PathLike, workers: int = 1, backend: str = "local",
                     batch: int = 256, progress: bool = False, ray_address: str | None = None) -> dict:
    """Write the dataset ``spec`` to ``out`` (resuming an interrupted run); returns the manifest."""
    workers = check_int("workers", workers, min_value=1)
    batch = check_int("batch", batch, min_value=1)
    check_choice("backend", backend, BACKENDS)
    config = pipeline(spec.pipeline)
    tasks = TaskSet.load(spec.task_set) if spec.task_set is not None else None
    if tasks is not None:
        t0 = tasks[0]
        if (t0.n_obs, t0.n_actions) != (spec.n_obs, spec.n_actions):
            raise ValueError(f"task set {spec.task_set} has n_obs={t0.n_obs}, n_actions={t0.n_actions}; "
                             f"the dataset asks for {spec.n_obs} and {spec.n_actions}")
    writer = DatasetWriter(out, header(spec, config, tasks))  # refuses another dataset's directory
    todo = writer.missing_shards()
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=spec.n_sequences, unit="seq", desc="synthesise",
                   initial=spec.n_sequences - sum(_shard_len(spec, s) for s in todo))
    try:
        if backend == "ray":
            _run_ray(spec, config, str(out), todo, batch, workers, ray_address, bar)
        elif workers == 1 or len(todo) <= 1:
            for s in todo:
                r = generate_shard(spec, config, str(out), s, batch, tasks)
                if bar is not None:
                    bar.update(r["sequences"])
        else:
            with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
                futures = [pool.submit(generate_shard, spec, config, str(out), s, batch) for s in todo]
                for fut in as_completed(futures):
                    r = fut.result()
                    if bar is not None:
                        bar.update(r["sequences"])
    finally:
        if bar is not None:
            bar.close()
    return writer.finalize()


def _shard_len(spec: DatasetSpec, s: int) -> int:
    return min(spec.shard_size, spec.n_sequences - s * spec.shard_size)


def _run_ray(spec, config, out, todo, batch, workers, address, bar) -> None:
    try:
        import ray
    except ImportError:
        raise ValueError("backend 'ray' needs Ray: pip install -e '.[ray]'") from None
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, num_cpus=None if address else workers, include_dashboard=False,
                 log_to_driver=False)
    try:
        remote = ray.remote(num_cpus=1)(generate_shard)
        pending = [remote.remote(spec, config, out, s, batch) for s in todo]
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            r = ray.get(ready[0])
            if bar is not None:
                bar.update(r["sequences"])
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
    out = Path(out)
    task_dir = out / "tasks"
    n_tasks = check_int("tasks", n_tasks, min_value=1)
    if (task_dir / "manifest.json").exists():
        info = TaskSet.load(task_dir).info
        want = {"n_tasks": n_tasks, "seed": task_seed, "n_actions": n_actions}
        have = {k: info.get(k) for k in want}
        if have != want or parse_states(states) != (info.get("n_states"), info.get("min_states")):
            raise ValueError(f"{task_dir} holds another task set ({have}, states "
                             f"{info.get('min_states')}:{info.get('n_states')}); use another --out")
        return task_dir
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"output directory {str(out)!r} is not empty and holds no task set of this "
                         "dataset; use an empty or new directory")
    TaskSet.generate(n_tasks, states, n_actions, seed=task_seed, out=task_dir, workers=workers)
    return task_dir


PROBE = "probe"
"""Name of the in-context-RL probe among the validation sets (``make_validation_sets(probe=True)``)."""


def make_validation_sets(train_dir: str | os.PathLike, out: str | os.PathLike, n_sequences: int,
                         workers: int = 1, backend: str = "local", batch: int = 256,
                         probe: bool = False) -> dict[str, dict]:
    """Validation datasets for a training dataset, same pipeline, sizes and length:
    ``out/seen`` (new sequences on the training tasks) and ``out/unseen`` (new tasks, one per
    sequence, never in the training task set); with ``probe``, also ``out/probe`` (``PROBE``):
    the unseen tasks played by one random policy per sequence (the ``random_probe`` pipeline),
    oracle-labelled, where only the rewards in the context can tell the good actions."""
    from omnirl.data.store import read_manifest
    _, head = read_manifest(train_dir)
    spec = DatasetSpec(**head.config["spec"])
    n_sequences = check_int("sequences", n_sequences, min_value=1)
    out = Path(out)
    seed = spec.seed + 1  # other sequence seeds than training
    result = {}
    if spec.task_set is not None:
        seen = dataclasses.replace(spec, n_sequences=n_sequences, seed=seed)
        result["seen"] = generate_dataset(seen, out / "seen", workers, backend, batch)
    unseen = dataclasses.replace(spec, n_sequences=n_sequences, seed=seed, task_set=None)
    result["unseen"] = generate_dataset(unseen, out / "unseen", workers, backend, batch)
    if probe:
        result[PROBE] = generate_dataset(dataclasses.replace(unseen, pipeline="random_probe"), out / PROBE, workers,
                                         backend, batch)
    return result
