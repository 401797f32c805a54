"""On-policy datasets: a trained model plays, the pipeline's oracle labels (omnirl.evaluate.rollouts)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from omnirl.config import config_to_dict
from omnirl.data.generate import DatasetSpec, generate_dataset
from omnirl.data.store import Dataset, read_manifest
from omnirl.evaluate.protocols import ProtocolConfig
from omnirl.evaluate.rollouts import ModelActors, context_probe, play_like
from omnirl.model.omnirl import OmniRL
from omnirl.tasks.taskset import TaskSet  # noqa: F401  (the dataset's tasks are fresh bandits)
from omnirl.train.config import ModelSection, TrainConfig

A = 4


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A checkpoint of an untrained tiny model (its policy is some fixed function of the context)."""
    cfg = TrainConfig(model=ModelSection(backbone="gdn", n_obs=1, n_actions=A))
    torch.manual_seed(0)
    model = OmniRL(cfg.model.build())
    path = tmp_path_factory.mktemp("model") / "model.ckpt"
    torch.save({"hyper_parameters": {"config": config_to_dict(cfg)},
                "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}}, path)
    return path, model


def play(checkpoint, out, protocol, seed=0, batch=3):
    path, _ = checkpoint
    spec = DatasetSpec(pipeline="uniform_probe", n_sequences=5, length=41, n_obs=1, n_actions=A, seed=1,
                       shard_size=2)
    generate_dataset(spec, out, batch=batch, actor=ModelActors(path, protocol, seed=seed, batch=batch))
    return Dataset.open(out)


def test_the_model_plays_and_the_oracle_labels(checkpoint, tmp_path):
    path, model = checkpoint
    greedy = ProtocolConfig(protocol="online", steps=1, t_initial=0.0, t_final=0.0, own_tag=6)
    data = play(checkpoint, tmp_path / "d", greedy)
    manifest, header = read_manifest(tmp_path / "d")
    actor = header.config["actor"]
    assert actor["kind"] == "model" and actor["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (actor["own_tag"], actor["t_initial"], actor["batch"]) == (6, 0.0, 3)
    for j in range(len(data)):
        seq = {k: torch.as_tensor(np.asarray(v)) for k, v in data.sequence(j).items() if np.ndim(v) == 1}
        step = seq["action"] < A  # the pulls (each one-step episode ends with a marker)
        assert step.sum() == 21 and (seq["tag"][step] == 6).all()
        # the labels are the bandit's best arm, whoever played
        assert len(set(seq["label"][step].tolist())) == 1
        # greedy: every stored pull is the model's argmax given the stored context before it
        with torch.no_grad():
            out, _ = model(*(seq[k][None].long() if k != "reward" else seq[k][None].float()
                             for k in ("obs", "prompt", "tag", "action", "reward")))
        assert torch.equal(out["policy"][0, :, :A].argmax(-1)[step], seq["action"][step].long())


def test_sampled_play_is_reproducible_and_seeded(checkpoint, tmp_path):
    sampled = ProtocolConfig(protocol="online", steps=1, t_initial=1.0, t_final=1.0)
    a = play(checkpoint, tmp_path / "a", sampled, seed=0)
    b = play(checkpoint, tmp_path / "b", sampled, seed=0)
    c = play(checkpoint, tmp_path / "c", sampled, seed=1)
    acts = lambda d: np.stack([np.asarray(d.sequence(j)["action"]) for j in range(len(d))])  # noqa: E731
    assert np.array_equal(acts(a), acts(b)) and not np.array_equal(acts(a), acts(c))
    assert len(set(acts(a)[acts(a) < A].tolist())) > 1  # it samples, not only one arm


def test_an_actor_plays_here_only(checkpoint, tmp_path):
    path, _ = checkpoint
    spec = DatasetSpec(pipeline="uniform_probe", n_sequences=4, length=9, n_obs=1, n_actions=A, seed=1)
    actors = ModelActors(path, ProtocolConfig(protocol="online", steps=1), seed=0, batch=4)
    with pytest.raises(ValueError, match="workers must be 1"):
        generate_dataset(spec, tmp_path / "d", workers=2, actor=actors)
    assert not (tmp_path / "d").exists()
    with pytest.raises(ValueError, match="online"):
        ModelActors(path, ProtocolConfig(protocol="imitation", steps=1, demo_steps=4), seed=0, batch=4)


def test_play_like_plays_the_datasets_sequences_and_refuses_another_play(checkpoint, tmp_path):
    path, _ = checkpoint
    spec = DatasetSpec(pipeline="uniform_probe", n_sequences=4, length=41, n_obs=1, n_actions=A, seed=1)
    generate_dataset(spec, tmp_path / "uniform")
    protocol = ProtocolConfig(protocol="online", steps=1, own_tag=4, prompt=3)
    out = play_like(tmp_path / "uniform", tmp_path / "own", ModelActors(path, protocol, seed=0, batch=4))
    uniform, own = Dataset.open(tmp_path / "uniform"), Dataset.open(out)
    assert read_manifest(out)[1].config["spec"] == read_manifest(tmp_path / "uniform")[1].config["spec"]
    assert read_manifest(out)[1].config["actor"]["prompt"] == 3
    for j in range(4):
        u, o = uniform.sequence(j), own.sequence(j)
        assert u["task_hash"].tobytes() == o["task_hash"].tobytes()  # the same bandit...
        step = o["action"] < A
        assert (o["tag"][step] == 4).all() and len(set(o["label"][step].tolist())) == 1  # ...its best arm the label
        assert set(o["label"][step].tolist()) == set(u["label"][u["action"] < A].tolist())
    stamp = (out / "manifest.json").stat().st_mtime_ns
    assert play_like(tmp_path / "uniform", out, ModelActors(path, protocol, seed=0, batch=4)) == out
    assert (out / "manifest.json").stat().st_mtime_ns == stamp  # made once
    other = ProtocolConfig(protocol="online", steps=1, own_tag=6)
    with pytest.raises(ValueError, match="out: .* holds another play"):
        play_like(tmp_path / "uniform", out, ModelActors(path, other, seed=0, batch=4))


def test_context_probe_scores_the_whole_sequences_whatever_the_segment(checkpoint, tmp_path):
    _, model = checkpoint
    spec = DatasetSpec(pipeline="uniform_probe", n_sequences=6, length=81, n_obs=1, n_actions=A, seed=2)
    generate_dataset(spec, tmp_path / "d")
    whole, pieces = context_probe(model, tmp_path / "d"), context_probe(model, tmp_path / "d", segment=7)
    assert whole.keys() == pieces.keys() >= {"model_q1", "model_q4", "reference_q1", "reference_q4", "gain",
                                             "share_q4", "label_prob_q4"}
    for k in whole:
        assert whole[k] == pytest.approx(pieces[k], rel=1e-4, abs=1e-5), k  # the memory is carried across
    assert whole["reference_q4"] < whole["reference_q1"] < np.log(A)  # the reference learns the best arm
    assert 0 < whole["label_prob_q4"] < 1
    u = np.log(A)
    assert whole["share_q4"] == pytest.approx((u - whole["model_q4"]) / (u - whole["reference_q4"]))
