"""The model's evaluation protocols (omnirl.evaluate.protocols) and checkpoint loading
(omnirl.train.checkpoint): every protocol runs; the context holds the demonstrations; the
unmapped action enters the context while the environment gets the remapped one; end markers are
committed; the temperature schedule; reproducibility; memory dumps; entropy; errors; and a model
trained to imitate in context is rewarded for it."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch

from omnirl.config import config_to_dict
from omnirl.train.checkpoint import load_model
from omnirl.evaluate.envs.base import MDPBatch
from omnirl.evaluate.protocols import (ProtocolConfig, demo_seed, demonstrations, evaluate_model,
                                       imitation_gap)
from omnirl.model.agent import OmniRLAgent
from omnirl.model.backbone import sized
from omnirl.model.omnirl import OmniRL, OmniRLConfig
from omnirl.tasks import sample_anymdp, sample_bandit
from omnirl.train.config import ModelSection, TrainConfig
from tests.helpers import small_task

S, A, B = 16, 5, 4


def make_model(backbone="gdn", n_obs=S, n_actions=A, layout="compact", seed=0) -> OmniRL:
    torch.manual_seed(seed)
    return OmniRL(OmniRLConfig(n_obs=n_obs, n_actions=n_actions, backbone=sized("tiny", backbone),
                               layout=layout))


@functools.lru_cache(maxsize=None)
def anymdp_tasks(n=B, n_states=S):
    return tuple(sample_anymdp(n_states, A, seed=i) for i in range(n))


def anymdp_batch(n=B) -> MDPBatch:
    return MDPBatch(anymdp_tasks(n))


def four_action_task():
    """A 3-state chain with 4 actions: action 0 moves right (+1 at the terminal end), others stay."""
    P = np.zeros((3, 4, 3))
    for s in range(3):
        P[s, 0, min(s + 1, 2)] = 1.0
        P[s, 1:, s] = 1.0
    R = np.zeros_like(P)
    R[1, 0, 2] = 1.0
    return small_task(P, R, terminal=np.array([False, False, True]), max_steps=6)


class SpyBatch:
    """An EnvBatch that records the native actions it is given and the results it returns."""

    def __init__(self, batch):
        self.batch = batch
        self.infos = batch.infos
        self.actions, self.results, self.resets = [], [], []

    @property
    def n_envs(self):
        return self.batch.n_envs

    @property
    def obs(self):
        return self.batch.obs

    def reset(self, seed):
        self.resets.append(seed)
        return self.batch.reset(seed)

    def step(self, actions):
        self.actions.append(np.asarray(actions).copy())
        result = self.batch.step(actions)
        self.results.append(result)
        return result

    def oracle_actions(self):
        return self.batch.oracle_actions()


def spy_agent(monkeypatch):
    """Record every OmniRLAgent.act temperature and observe call (after the demonstrations)."""
    calls = {"act": [], "observe": []}
    act, observe = OmniRLAgent.act, OmniRLAgent.observe

    def spy_act(self, obs, prompt=3, tag=7, temperature=1.0):
        calls["act"].append({"obs": np.asarray(obs).copy(), "prompt": prompt, "tag": tag,
                             "temperature": temperature})
        return act(self, obs, prompt, tag, temperature)

    def spy_observe(self, obs, action, reward, done=None, terminal_obs=None, prompt=3, tag=7, rows=None):
        calls["observe"].append({"obs": np.asarray(obs).copy(), "action": torch.as_tensor(action).clone(),
                                 "reward": np.asarray(reward).copy(), "done": np.asarray(done).copy(),
                                 "terminal_obs": np.asarray(terminal_obs).copy(), "prompt": prompt, "tag": tag})
        return observe(self, obs, action, reward, done, terminal_obs, prompt, tag, rows)

    monkeypatch.setattr(OmniRLAgent, "act", spy_act)
    monkeypatch.setattr(OmniRLAgent, "observe", spy_observe)
    return calls


def same_episodes(a, b) -> bool:
    ca, cb = a.columns(), b.columns()
    return all(np.array_equal(ca[k], cb[k], equal_nan=True) for k in ca)


# --------------------------------------------------------------------------- running
@pytest.mark.parametrize("protocol", ["online", "offline", "imitation"])
def test_every_protocol_runs_with_the_right_step_counts(protocol):
    steps, demo = 150, 0 if protocol == "online" else 120
    spy = SpyBatch(anymdp_batch())
    r = evaluate_model(make_model(), spy, ProtocolConfig(protocol, steps=steps, demo_steps=demo), seed=0)
    ep = r.episodes
    assert ep.steps == steps and len(ep) > 0
    for row in range(B):  # the finished episodes of a row tile its steps from the start
        m = ep.row == row
        assert np.array_equal(ep.episode[m], np.arange(m.sum()))
        assert np.array_equal(np.cumsum(ep.length[m]), ep.end_step[m])
        assert ep.end_step[m].max() <= steps
    assert r.step_entropy.shape == r.step_sampling_entropy.shape == (steps,)
    assert r.entropy.shape == r.sampling_entropy.shape == r.entropy_steps.shape == (20,)
    assert r.timing["acting_s"] > 0 and r.timing["env_steps_per_s"] > 0 and r.infos == spy.infos
    if protocol == "online":
        assert len(r.demo_episodes) == 0 and spy.resets == [0] and len(spy.actions) == steps
    else:  # demonstrations in a separately seeded reset, then the acting phase from seed itself
        assert spy.resets == [demo_seed(0), 0]
        assert demo // 2 <= len(spy.actions) - steps <= demo  # entries: steps and end markers
        assert len(r.demo_episodes) > 0 and r.demo_episodes.end_step.max() <= demo
        assert r.entropy_steps[0] > demo


def test_episode_scores_by_demonstrator():
    """Oracle demonstrations score about 1, random ones about 0 (checks the demonstrators and scores)."""
    batch = MDPBatch(anymdp_tasks(8))
    model = make_model()
    oracle = evaluate_model(model, batch, ProtocolConfig("imitation", steps=2, demo_steps=600), 0).demo_episodes
    rand = evaluate_model(model, batch, ProtocolConfig("offline", steps=2, demo_steps=600, demo_policy="random"),
                          0).demo_episodes
    assert oracle.score.mean() > 0.7 and abs(rand.score.mean()) < 0.35


# --------------------------------------------------------------------------- context
@pytest.mark.parametrize("policy", ["oracle", "noisy_oracle", "random"])
def test_demonstrations_as_context(policy):
    L = 300
    batch = anymdp_batch()
    oracle_table = batch._oracle  # (B, n_obs): the oracle's action in each state
    d = demonstrations(batch, L, seed=3, end_action=A, policy=policy, epsilon=0.4)
    t = d.trajectory
    assert all(v.shape == (B, L) for v in t.values())
    marker = t["action"] == A
    step = ~marker
    assert np.all(t["prompt"][step] == 3) and np.all(t["prompt"][marker] == 7) and np.all(t["tag"][marker] == 7)
    assert np.all(t["reward"][marker] == 0)
    assert np.array_equal(step.sum(1), d.env_steps)
    assert not np.any(marker[:, 1:] & marker[:, :-1])  # a marker follows a step
    assert np.array_equal(d.ends_with_marker, marker[:, -1])
    tags = t["tag"][step]
    followed = t["action"][step] == oracle_table[np.nonzero(step)[0], t["obs"][step]]
    if policy == "oracle":
        assert np.all(tags == 3) and followed.all()
    elif policy == "random":
        assert np.all(tags == 6)
    else:
        assert set(np.unique(tags)) == {3, 6} and followed[tags == 3].all()
        assert abs((tags == 6).mean() - 0.4) < 0.08
    # every episode that finished inside the context is followed by its marker (unless the context
    # ends right after its last step)
    per_row = np.bincount(d.episodes.row, minlength=B)
    assert np.all(marker.sum(1) <= per_row) and np.all(per_row <= marker.sum(1) + 1)


def test_the_context_holds_the_demonstrations():
    model, cfg = make_model(), ProtocolConfig("imitation", steps=5, demo_steps=200, memory_steps=(0,))
    r = evaluate_model(model, anymdp_batch(), cfg, seed=1)
    online = evaluate_model(model, anymdp_batch(), ProtocolConfig(steps=5, memory_steps=(0,)), seed=1)
    assert np.all(online.memory[0] == 0) and np.abs(r.memory[0]).sum(1).min() > 0
    # the memory is exactly that of the demonstrations loaded, with cut episodes ended
    d = demonstrations(anymdp_batch(), 200, 1, end_action=A, policy="oracle")
    agent = OmniRLAgent(model, B)
    agent.load_context(d.trajectory)
    agent.end_episode(d.last_next_obs, rows=~d.ends_with_marker)
    np.testing.assert_allclose(r.memory[0], agent.memory().numpy(), atol=1e-5, rtol=1e-5)


def test_imitation_acts_differently_from_online_from_the_same_states(monkeypatch):
    calls = spy_agent(monkeypatch)
    model = make_model()
    spy_online, spy_imitation = SpyBatch(anymdp_batch(16)), SpyBatch(anymdp_batch(16))
    cfg = dict(steps=10, t_initial=1.0, t_final=1.0)
    online = evaluate_model(model, spy_online, ProtocolConfig(**cfg), seed=2)
    n = len(calls["act"])
    imitation = evaluate_model(model, spy_imitation, ProtocolConfig("imitation", demo_steps=300, **cfg), seed=2)
    assert np.array_equal(calls["act"][0]["obs"], calls["act"][n]["obs"])  # same first states
    assert not np.allclose(online.step_entropy, imitation.step_entropy)  # other policies...
    first_online = np.stack(spy_online.actions[:3])
    first_imitation = np.stack(spy_imitation.actions[-10:][:3])
    assert not np.array_equal(first_online, first_imitation)  # ...and other actions


def test_the_unmapped_action_is_committed_the_remapped_one_played(monkeypatch):
    calls = spy_agent(monkeypatch)
    spy = SpyBatch(MDPBatch([four_action_task()] * 6, names=["chain"] * 6))
    cfg = ProtocolConfig(steps=80, t_initial=20.0, t_final=20.0)  # near-uniform over the model's 5 actions
    evaluate_model(make_model(), spy, cfg, seed=0)
    committed = np.stack([c["action"].numpy() for c in calls["observe"]])  # (steps, B) in [0, 5)
    played = np.stack(spy.actions)  # (steps, B)
    assert committed.max() == 4 and np.array_equal(played, committed % 4) and played.max() <= 3
    assert all(c["prompt"] == 3 and c["tag"] == 6 for c in calls["observe"] + calls["act"])  # own_tag default


def test_own_tag_is_the_tag_of_the_agents_own_steps(monkeypatch):
    calls = spy_agent(monkeypatch)
    model = make_model()
    cfg = ProtocolConfig(steps=30, own_tag=4)
    tagged = evaluate_model(model, anymdp_batch(), cfg, seed=0)
    assert calls["act"] and all(c["tag"] == 4 for c in calls["observe"] + calls["act"])
    unknown = evaluate_model(model, anymdp_batch(), ProtocolConfig(steps=30, own_tag=7), seed=0)
    assert not np.allclose(tagged.step_entropy, unknown.step_entropy)  # the tag reaches the model


def test_prompt_is_the_prompt_of_every_step_and_of_the_demonstrations(monkeypatch):
    calls = spy_agent(monkeypatch)
    model = make_model()
    myopic = evaluate_model(model, anymdp_batch(), ProtocolConfig(steps=30, prompt=0), seed=0)
    assert calls["act"] and all(c["prompt"] == 0 for c in calls["observe"] + calls["act"])
    reference = evaluate_model(model, anymdp_batch(), ProtocolConfig(steps=30), seed=0)
    assert not np.allclose(myopic.step_entropy, reference.step_entropy)  # the prompt reaches the model
    t = demonstrations(anymdp_batch(), 100, seed=3, end_action=A, prompt=0).trajectory
    assert np.all(t["prompt"][t["action"] < A] == 0) and np.all(t["prompt"][t["action"] == A] == 7)
    loaded = []
    monkeypatch.setattr(OmniRLAgent, "load_context", lambda self, traj: loaded.append(traj["prompt"].copy()))
    evaluate_model(model, anymdp_batch(), ProtocolConfig("imitation", steps=2, demo_steps=50, prompt=1), seed=0)
    assert set(np.unique(loaded[0])) <= {1, 7} and (loaded[0] == 1).any()


def test_end_markers_are_committed_with_the_terminal_observation(monkeypatch):
    calls = spy_agent(monkeypatch)
    spy = SpyBatch(MDPBatch([four_action_task()] * 6, names=["chain"] * 6))
    r = evaluate_model(make_model(), spy, ProtocolConfig(steps=60), seed=0)
    done = np.stack([c["done"] for c in calls["observe"]])
    assert np.array_equal(done, np.stack([x.terminated | x.truncated for x in spy.results]))
    assert done.sum() == len(r.episodes) > 0
    for c, x in zip(calls["observe"], spy.results):
        assert np.array_equal(c["terminal_obs"], x.next_obs)  # not the next episode's first state
        assert np.array_equal(c["reward"], x.reward)
    # and the marker changes the context: an agent replaying the run without markers differs
    model = make_model()
    with_markers, without = OmniRLAgent(model, 6), OmniRLAgent(model, 6)
    for c in list(calls["observe"]):  # (the replay's own calls are recorded too)
        with_markers.observe(c["obs"], c["action"], c["reward"], c["done"], c["terminal_obs"])
        without.observe(c["obs"], c["action"], c["reward"])
    assert not torch.allclose(with_markers.memory(), without.memory())


# --------------------------------------------------------------------------- temperature
@pytest.mark.parametrize("schedule, expected", [
    ("linear", {0: 1.0, 25: 0.775, 50: 0.55, 100: 0.1, 10_000: 0.1}),
    ("exponential", {0: 1.0, 25: 0.1 ** 0.25, 50: 0.1 ** 0.5, 100: 0.1, 10_000: 0.1}),
])
def test_temperature_schedule(schedule, expected):
    cfg = ProtocolConfig(steps=10, t_initial=1.0, t_final=0.1, t_steps=100, schedule=schedule)
    for step, value in expected.items():
        assert math.isclose(cfg.temperature(step), value, rel_tol=1e-12), (step, cfg.temperature(step))
    rising = ProtocolConfig(steps=10, t_initial=0.0, t_final=2.0, t_steps=4)
    assert [rising.temperature(s) for s in range(6)] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.0]


def test_the_loop_samples_at_the_scheduled_temperature(monkeypatch):
    calls = spy_agent(monkeypatch)
    cfg = ProtocolConfig(steps=12, t_initial=2.0, t_final=0.5, t_steps=8, schedule="exponential")
    evaluate_model(make_model(), anymdp_batch(), cfg, seed=0)
    assert [c["temperature"] for c in calls["act"]] == [cfg.temperature(t) for t in range(12)]


# --------------------------------------------------------------------------- reproducibility
@pytest.mark.parametrize("protocol", ["online", "offline"])
def test_same_seed_same_result_other_seed_other_result(protocol):
    model = make_model()
    cfg = ProtocolConfig(protocol, steps=120, demo_steps=0 if protocol == "online" else 100, memory_steps=(60,),
                     t_initial=1.0, t_final=1.0)
    a = evaluate_model(model, anymdp_batch(), cfg, seed=5)
    b = evaluate_model(model, anymdp_batch(), cfg, seed=5)
    c = evaluate_model(model, anymdp_batch(), cfg, seed=6)
    assert same_episodes(a.episodes, b.episodes) and same_episodes(a.demo_episodes, b.demo_episodes)
    assert np.array_equal(a.step_entropy, b.step_entropy) and np.array_equal(a.memory[60], b.memory[60])
    assert not same_episodes(a.episodes, c.episodes)


# --------------------------------------------------------------------------- memory and entropy
def test_memory_dumps():
    model = make_model("mamba2")
    cfg = ProtocolConfig(steps=30, memory_steps=[30, 0, 10, 10])
    r = evaluate_model(model, anymdp_batch(), cfg, seed=0)
    D = OmniRLAgent(model, 1).memory().shape[1]
    assert cfg.memory_steps == (0, 10, 30) and sorted(r.memory) == [0, 10, 30]
    for m in r.memory.values():
        assert m.shape == (B, D) and m.dtype == np.float32
    assert np.all(r.memory[0] == 0) and not np.allclose(r.memory[10], r.memory[30])


def test_entropy_is_bounded_and_falls_with_the_temperature():
    model, batch = make_model(), anymdp_batch()
    runs = {T: evaluate_model(model, batch, ProtocolConfig(steps=40, t_initial=T, t_final=T, entropy_bins=4), 0)
            for T in (0.0, 0.3, 1.0, 5.0)}
    for r in runs.values():
        assert np.all(r.step_entropy >= 0) and np.all(r.step_entropy <= math.log(A) + 1e-6)
        assert np.all(r.step_sampling_entropy <= math.log(A) + 1e-6)
        assert np.allclose(r.entropy, r.step_entropy.reshape(4, 10).mean(1))
    assert np.all(runs[0.0].step_sampling_entropy == 0)
    means = [runs[T].step_sampling_entropy.mean() for T in (0.0, 0.3, 1.0, 5.0)]
    assert means == sorted(means) and means[0] < means[1] < means[3]
    assert np.allclose(runs[1.0].step_sampling_entropy, runs[1.0].step_entropy)
    falling = evaluate_model(model, batch, ProtocolConfig(steps=40, t_initial=5.0, t_final=0.05, t_steps=40,
                                                      entropy_bins=4), 0)
    assert np.all(np.diff(falling.sampling_entropy) < 0)
    assert np.allclose(falling.entropy_steps, [4.5, 14.5, 24.5, 34.5])


# --------------------------------------------------------------------------- errors
def test_environments_larger_than_the_model_are_refused():
    with pytest.raises(ValueError, match=r"anymdp16 \(row 0\) has n_obs=16, more than the model's n_obs=8"):
        evaluate_model(make_model(n_obs=8), anymdp_batch(), ProtocolConfig(steps=2), 0)
    with pytest.raises(ValueError, match=r"anymdp16 \(row 0\) has n_actions=5, more than the model's n_actions=4"):
        evaluate_model(make_model(n_actions=4), anymdp_batch(), ProtocolConfig(steps=2), 0)


@pytest.mark.parametrize("kwargs, match", [
    ({"protocol": "bc"}, "protocol"),
    ({"steps": 0}, "steps"),
    ({"demo_steps": 5}, "demo_steps must be 0 for protocol='online'"),
    ({"protocol": "offline"}, "demo_steps must be >= 1"),
    ({"protocol": "imitation", "demo_steps": 5, "demo_policy": "random"}, "demo_policy"),
    ({"protocol": "offline", "demo_steps": 5, "demo_policy": "oracle"}, "demo_policy"),
    ({"demo_epsilon": 1.5}, "demo_epsilon"),
    ({"t_initial": -1.0}, "t_initial"),
    ({"t_steps": 0}, "t_steps"),
    ({"schedule": "cosine"}, "schedule"),
    ({"schedule": "exponential", "t_final": 0.0}, "t_final must be > 0"),
    ({"memory_steps": (11,)}, "memory_steps must be <= 10"),
    ({"memory_steps": 3}, "memory_steps must be a sequence"),
    ({"entropy_bins": 0}, "entropy_bins"),
    ({"own_tag": 8}, "own_tag must be <= 7"),
    ({"own_tag": -1}, "own_tag must be >= 0"),
    ({"prompt": 4}, "prompt must be <= 3"),
    ({"prompt": -1}, "prompt must be >= 0"),
])
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ProtocolConfig(**{"steps": 10, **kwargs})


def test_bad_arguments():
    with pytest.raises(ValueError, match="model"):
        evaluate_model(object(), anymdp_batch(), ProtocolConfig(), 0)
    with pytest.raises(ValueError, match="config"):
        evaluate_model(make_model(), anymdp_batch(), {"steps": 3}, 0)
    with pytest.raises(ValueError, match="seed"):
        evaluate_model(make_model(), anymdp_batch(), ProtocolConfig(), -1)


# --------------------------------------------------------------------------- checkpoints
def lightning_like_checkpoint(path, model, section):
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
                "hyper_parameters": {"config": config_to_dict(TrainConfig(model=section))},
                "global_step": 2}, path)


def test_load_model_from_a_checkpoint(tmp_path):
    section = ModelSection(backbone="gsa", n_obs=S, n_actions=A)
    torch.manual_seed(3)
    model = OmniRL(section.build())
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    path = tmp_path / "run" / "checkpoints" / "last.ckpt"
    lightning_like_checkpoint(path, model, section)
    for where in (path, tmp_path / "run", str(path)):
        loaded = load_model(where)
        assert not loaded.training and loaded.config == model.config
        for (k, v), (k2, v2) in zip(model.state_dict().items(), loaded.state_dict().items()):
            assert k == k2 and torch.equal(v, v2)
    cfg = ProtocolConfig(steps=20)
    a = evaluate_model(model, anymdp_batch(), cfg, 0)
    b = evaluate_model(load_model(path), anymdp_batch(), cfg, 0)
    assert same_episodes(a.episodes, b.episodes)


def test_checkpoint_with_old_setting_names_loads(tmp_path):
    """A checkpoint written before ``model.preset`` became ``size`` and ``model.n_states`` became
    ``n_obs`` loads, resumes and exports under the new names."""
    from omnirl.train.checkpoint import export_weights, read_checkpoint
    from omnirl.train.trainer import check_resume

    section = ModelSection(backbone="gdn", n_obs=S - 4, n_actions=A)  # not the default n_obs
    torch.manual_seed(5)
    model = OmniRL(section.build())
    path = tmp_path / "old.ckpt"
    lightning_like_checkpoint(path, model, section)
    ckpt = torch.load(path, weights_only=True)
    old = ckpt["hyper_parameters"]["config"]["model"]
    old["n_states"], old["preset"] = old.pop("n_obs"), old.pop("size")
    torch.save(ckpt, path)
    assert read_checkpoint(path)["hyper_parameters"]["config"]["model"]["n_obs"] == S - 4
    for loaded in (load_model(path), load_model(export_weights(path, tmp_path / "slim.pt"))):
        assert loaded.config == model.config
        for (k, v), (k2, v2) in zip(model.state_dict().items(), loaded.state_dict().items()):
            assert k == k2 and torch.equal(v, v2)
    check_resume(TrainConfig(model=section), path)  # the same settings under their new names


def test_load_model_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.ckpt"):
        load_model(tmp_path / "nope.ckpt")
    with pytest.raises(FileNotFoundError, match="without checkpoints/last.ckpt"):
        load_model(tmp_path)
    text = tmp_path / "notes.ckpt"
    text.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="notes.ckpt.*not a readable torch checkpoint"):
        load_model(text)
    other = tmp_path / "other.ckpt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(ValueError, match="other.ckpt.*not an OmniRL training checkpoint"):
        load_model(other)
    bad = tmp_path / "bad.ckpt"
    section = ModelSection(n_obs=S, n_actions=A)
    lightning_like_checkpoint(bad, OmniRL(ModelSection(n_obs=S + 1, n_actions=A).build()), section)
    with pytest.raises(ValueError, match="bad.ckpt.*weights do not fit"):
        load_model(bad)


def test_load_model_from_a_real_training_run(tmp_path, monkeypatch):
    from omnirl.data.generate import DatasetSpec, generate_dataset
    from omnirl.train.__main__ import main as train_main
    monkeypatch.setenv("WANDB_MODE", "disabled")
    generate_dataset(DatasetSpec(pipeline="omnirl", n_sequences=4, length=80, n_obs=S, n_actions=A, seed=0,
                                 shard_size=4), tmp_path / "data")
    args = [f"--data.train=[{tmp_path / 'data'}]", "--data.window=64", "--data.batch_size=2",
            "--train.segment_len=32", "--train.max_steps=2", "--train.val_every=2",
            f"--logging.out_dir={tmp_path / 'run'}", "--model.backbone=gdn"]
    assert train_main(args) == 0
    model = load_model(tmp_path / "run")
    assert model.config.backbone.name == "gdn" and model.config.n_obs == S
    r = evaluate_model(model, anymdp_batch(), ProtocolConfig(steps=10), 0)
    assert r.episodes.steps == 10


# --------------------------------------------------------------------------- in-context imitation
def train_bandit_imitator(iterations=60, seed=0) -> OmniRL:
    """A tiny OmniRL trained (here, in a few seconds) on bandit sequences whose first 1-8 steps are
    the oracle's (tag 3) and the rest random actions of an unknown actor (tag 7), with the oracle's
    arm as the label everywhere: it must find the demonstrated arm in its context."""
    model = make_model(seed=seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    rng = np.random.default_rng(seed)
    Bt, n = 16, 16  # sequences, steps (each followed by an end marker: bandit episodes last one step)
    for _ in range(iterations):
        f = {k: np.zeros((Bt, 2 * n), np.int64) for k in ("obs", "prompt", "tag", "action", "label")}
        reward = np.zeros((Bt, 2 * n), np.float32)
        f["prompt"][:], f["tag"][:], f["action"][:, 1::2], f["label"][:] = 7, 7, A, A
        for b in range(Bt):
            arms = rng.uniform(0.2, 1.0, A)
            best, k = int(arms.argmax()), int(rng.integers(1, 9))
            acts = np.where(np.arange(n) < k, best, rng.integers(0, A, n))
            f["action"][b, ::2], f["label"][b, ::2], f["prompt"][b, ::2] = acts, best, 3
            f["tag"][b, ::2] = np.where(np.arange(n) < k, 3, 7)
            reward[b, ::2] = arms[acts]
        t = {k: torch.as_tensor(v) for k, v in f.items()}
        out, _ = model(t["obs"], t["prompt"], t["tag"], t["action"], torch.as_tensor(reward))
        loss = model.losses(out, t["label"])["policy"].sum() / (Bt * n)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def test_a_model_that_imitates_in_context_is_rewarded_for_it():
    """The strongest check without a trained checkpoint: a tiny model taught to imitate the oracle's
    demonstrated arm scores about 1 after oracle demonstrations and about 0 online, through the
    protocols, the end markers of one-step episodes and the normalised scores; the untrained model
    gets no such gap."""
    tasks = [sample_bandit(A, seed=1000 + i) for i in range(24)]
    factory = lambda: MDPBatch(tasks, family="bandit")  # noqa: E731
    imitation, online = imitation_gap(train_bandit_imitator(), factory, steps=12, seed=0, demo_steps=10)
    assert imitation > 0.8 and online < 0.5 and imitation - online > 0.5
    imitation, online = imitation_gap(make_model(), factory, steps=12, seed=0, demo_steps=10)
    assert abs(imitation - online) < 0.4


# --------------------------------------------------------------------------- agent additions
def test_agent_commits_to_some_rows_as_to_all_and_exposes_logits_and_memory():
    model = make_model("gsa")
    obs, n = torch.tensor([1, 2, 3]), 3
    some, every = OmniRLAgent(model, n, seed=1), OmniRLAgent(model, n, seed=1)
    for agent in (some, every):
        assert agent.last_logits is None
        agent.act(obs)
        assert agent.last_logits.shape == (n, A)
    torch.testing.assert_close(some.last_logits, every.last_logits)
    before = some.memory()
    some.observe(obs, torch.tensor([0, 1, 2]), torch.tensor([0.5, 1.0, 0.0]), rows=[1])  # row 1 only
    every.observe(obs, torch.tensor([0, 1, 2]), torch.tensor([0.5, 1.0, 0.0]))
    after = some.memory()
    assert torch.equal(after[[0, 2]], before[[0, 2]]) and not torch.equal(after[1], before[1])
    torch.testing.assert_close(after[1], every.memory()[1], atol=1e-6, rtol=1e-5)
    assert after.shape == (n, sum(t[0].numel() for layer in some.state[0] for t in layer))
    assert not after.requires_grad and after.dtype == torch.float32
