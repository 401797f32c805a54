"""The Ray backend writes the same dataset as the local process pool (on a local Ray instance)."""

import pytest

from omnirl.data.generate import DatasetSpec, generate_dataset, prepare_task_set
from omnirl.data.store import Dataset

ray = pytest.importorskip("ray", reason="the Ray backend needs the `ray` extra")


def test_ray_backend_matches_local(tmp_path):
    task_dir = prepare_task_set(tmp_path / "local", 3, "8:16", 5, task_seed=1)
    spec = DatasetSpec(pipeline="omnirl", n_sequences=6, length=200, n_obs=16, n_actions=5, seed=3,
                       task_set=str(task_dir), shard_size=2)
    local = generate_dataset(spec, tmp_path / "local", workers=1)
    remote = generate_dataset(spec, tmp_path / "ray", workers=2, backend="ray", batch=5)
    assert not ray.is_initialized()  # the backend shut down the instance it started
    assert remote["content_hash"] == local["content_hash"]
    assert [s["sha256"] for s in remote["shards"]] == [s["sha256"] for s in local["shards"]]
    assert len(Dataset.open(tmp_path / "ray")) == 6
