"""AnyMDPEnv: Gymnasium API, registration, seeding protocol and errors."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env

from omnirl.tasks import AnyMDPEnv, MDPTask, sample_anymdp, sample_bandit, sample_garnet
from omnirl.tasks import dynamics
from tests.helpers import two_state_task
from omnirl.tasks.env import ENV_ID
from omnirl.tasks.rng import seed_to_key

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def task16() -> MDPTask:
    return sample_anymdp(16, 5, seed=1, min_states=8)


def rollout(env: AnyMDPEnv, seed, actions) -> list[tuple]:
    """Reset with ``seed``, apply ``actions``, reset without a seed after every episode end."""
    out = [env.reset(seed=seed)]
    for a in actions:
        step = env.step(int(a))
        out.append(step)
        if step[2] or step[3]:
            out.append(env.reset())
    return out


def _check_env_quietly(env, allowed=()):
    """Run ``check_env`` and return the warnings that are not in ``allowed``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)
    return [str(w.message) for w in caught if not any(a in str(w.message) for a in allowed)]


# ----------------------------------------------------------------- registration and checker


def test_registered_without_step_limit():
    spec = gymnasium.registry[ENV_ID]
    assert ENV_ID == "omnirl/AnyMDP-v0"
    assert spec.entry_point == "omnirl.tasks.env:AnyMDPEnv"
    assert spec.max_episode_steps is None


def test_reimport_does_not_warn_or_reregister():
    # in a fresh interpreter, so this process keeps its own module and class objects
    code = ("import importlib, gymnasium, omnirl.tasks, omnirl.tasks.env as e; "
            "before = gymnasium.registry['omnirl/AnyMDP-v0']; importlib.reload(e); "
            "importlib.reload(omnirl.tasks); assert gymnasium.registry['omnirl/AnyMDP-v0'] is before")
    done = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True,
                          text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr


def test_make_builds_the_env(task16):
    env = gymnasium.make(ENV_ID, task=task16)
    assert isinstance(env.unwrapped, AnyMDPEnv)
    assert env.unwrapped.task is task16
    obs, info = env.reset(seed=3)
    assert obs in set(task16.state_ids.tolist()) and info == {"steps": 0}
    obs, reward, terminated, truncated, info = env.step(0)
    assert info == {"steps": 1} and isinstance(reward, float)


@pytest.mark.parametrize("maker", [lambda: sample_anymdp(16, 5, seed=1, min_states=8),
                                   lambda: sample_garnet(12, 3, seed=2)])
def test_check_env_passes(maker):
    env = AnyMDPEnv(maker())
    # a directly built env has no spec, so the checker cannot build the other render modes
    assert _check_env_quietly(env, allowed=["not having a spec"]) == []
    env = AnyMDPEnv(maker(), render_mode="ansi")
    assert _check_env_quietly(env, allowed=["not having a spec"]) == []


def test_check_env_through_make(task16):
    env = gymnasium.make(ENV_ID, task=task16)
    # the unwrapped env carries the spec, so the checker also asserts reset determinism
    assert env.unwrapped.spec is not None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped, skip_render_check=True, skip_close_check=True)


def test_check_env_through_make_full(task16):
    # the checker re-makes the env from a deep copy of the spec kwargs, which hold the task
    check_env(gymnasium.make(ENV_ID, task=task16).unwrapped)


def test_task_pickles_and_copies_as_a_value(task16):
    import copy
    import pickle
    assert copy.deepcopy(task16) is task16
    clone = pickle.loads(pickle.dumps(task16))
    assert clone == task16 and clone.content_hash() == task16.content_hash()
    assert dict(clone.params) == dict(task16.params)


# ----------------------------------------------------------------- spaces and tasks


def test_spaces_follow_the_task(task16):
    assert task16.n_states < task16.n_obs  # min_states made some ids unused
    env = AnyMDPEnv(task16)
    assert env.observation_space == spaces.Discrete(task16.n_obs)
    assert env.action_space == spaces.Discrete(5)
    ids = set(task16.state_ids.tolist())
    seen = {env.reset(seed=0)[0]}
    for a in np.random.default_rng(0).integers(0, 5, 200):
        obs, _, term, trunc, _ = env.step(int(a))
        seen.add(obs)
        assert env.observation_space.contains(obs)
        if term or trunc:
            seen.add(env.reset()[0])
    assert seen <= ids and len(seen) > 3


def test_placeholder_spaces_and_reset_without_task():
    env = AnyMDPEnv()
    assert env.observation_space == spaces.Discrete(1)
    assert env.action_space == spaces.Discrete(1)
    assert env.task is None
    with pytest.raises(RuntimeError, match="set_task"):
        env.reset(seed=0)
    with pytest.raises(RuntimeError, match="set_task"):
        env.step(0)
    with pytest.raises(RuntimeError, match="set_task"):
        gymnasium.make(ENV_ID).reset(seed=0)


def test_set_task_on_unwrapped_env(task16):
    other = sample_garnet(12, 3, seed=4)
    env = gymnasium.make(ENV_ID, task=task16)
    env.reset(seed=0)
    env.unwrapped.set_task(other)
    assert env.observation_space == spaces.Discrete(12)
    assert env.action_space == spaces.Discrete(3)
    with pytest.raises(RuntimeError, match="reset"):
        env.unwrapped.step(0)
    actions = np.random.default_rng(1).integers(0, 3, 150)
    got = rollout(env, 9, actions)
    assert got == rollout(AnyMDPEnv(other), 9, actions)
    with pytest.raises(ValueError, match="task"):
        env.unwrapped.set_task("not a task")


# ----------------------------------------------------------------- seeding protocol


def test_reset_seed_is_deterministic(task16):
    actions = np.random.default_rng(2).integers(0, 5, 400)
    a, b = AnyMDPEnv(task16), AnyMDPEnv(task16)
    first = rollout(a, 7, actions)
    assert first == rollout(b, 7, actions)
    assert first == rollout(a, 7, actions)  # re-seeding the same env restarts the stream
    assert first != rollout(b, 8, actions)
    tup = rollout(a, (7, 1), actions)
    assert tup == rollout(b, (7, 1), actions) and tup != first
    assert sum(1 for x in first if len(x) == 2) > 2  # several episodes were played


def test_protocol_counters(task16):
    """A seeded reset draws at counter 0; each step and each unseeded reset at the next one."""
    env = AnyMDPEnv(task16)
    key = np.array([seed_to_key(5)], dtype=np.uint64)
    start = dynamics.start_cdf(task16)[None, :]
    row0 = np.zeros(1, dtype=np.int64)
    obs, _ = env.reset(seed=5)
    rank = dynamics.sample_start(start, row0, key, np.array([0], dtype=np.uint64))[0]
    assert obs == task16.state_ids[rank]
    cdf = dynamics.transition_cdf(task16).reshape(-1, task16.n_states)
    obs, reward, *_ = env.step(3)
    c1 = np.array([1], dtype=np.uint64)
    nxt = dynamics.sample_next(cdf, np.array([rank * 5 + 3]), key, c1)
    assert obs == task16.state_ids[nxt[0]]
    expect = dynamics.sample_reward(task16.reward[rank, 3, nxt], task16.reward_noise[rank, 3, nxt],
                                    key, c1)
    assert reward == expect[0]
    obs, _ = env.reset()  # unseeded: same key, counter 2
    rank = dynamics.sample_start(start, row0, key, np.array([2], dtype=np.uint64))[0]
    assert obs == task16.state_ids[rank]


def test_first_unseeded_reset_uses_np_random(task16):
    actions = np.random.default_rng(3).integers(0, 5, 100)

    def run():
        env = AnyMDPEnv(task16)
        env.np_random = np.random.default_rng(123)
        out = [env.reset()]
        for a in actions:
            out.append(env.step(int(a)))
            if out[-1][2] or out[-1][3]:
                out.append(env.reset())
        return out

    assert run() == run()


# ----------------------------------------------------------------- steps and errors


def test_termination_and_truncation():
    task = two_state_task()
    env = AnyMDPEnv(task)
    assert env.reset(seed=0) == (4, {"steps": 0})
    assert env.step(1) == (4, 0.0, False, False, {"steps": 1})
    assert env.step(1) == (4, 0.0, False, False, {"steps": 2})
    # terminating on the last allowed step is termination, not truncation
    assert env.step(0) == (2, 5.0, True, False, {"steps": 3})
    with pytest.raises(RuntimeError, match="reset"):
        env.step(1)
    env.reset()
    for t in (1, 2):
        assert env.step(1)[2:4] == (False, False)
    assert env.step(1) == (4, 0.0, False, True, {"steps": 3})
    with pytest.raises(RuntimeError, match="reset"):
        env.step(1)


def test_bandit_truncates_every_step():
    task = sample_bandit(5, seed=2)
    env = AnyMDPEnv(task)
    env.reset(seed=1)
    rewards = []
    for a in [0, 1, 2, 3, 4] * 40:
        obs, r, term, trunc, info = env.step(a)
        assert (obs, term, trunc, info) == (0, False, True, {"steps": 1})
        rewards.append(r)
        env.reset()
    means = np.array(rewards).reshape(40, 5).mean(0)
    noise = task.reward_noise[0, :, 0]
    assert np.all(np.abs(means - task.reward[0, :, 0]) <= 5 * noise / np.sqrt(40) + 1e-9)


def test_step_types(task16):
    env = AnyMDPEnv(task16)
    obs, info = env.reset(seed=0)
    assert type(obs) is int
    obs, r, term, trunc, info = env.step(np.int64(1))
    assert type(obs) is int and type(r) is float and type(term) is bool and type(trunc) is bool
    env.step(np.array(2))  # 0-d integer arrays are actions too


def test_errors(task16):
    env = AnyMDPEnv(task16)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    env.reset(seed=0)
    for bad in (-1, 5, 1.0, "1", True, None, np.array([1])):
        with pytest.raises(ValueError, match="action"):
            env.step(bad)
    with pytest.raises(ValueError, match="seed"):
        env.reset(seed=-1)
    with pytest.raises(ValueError, match="render_mode"):
        AnyMDPEnv(task16, render_mode="human")
    with pytest.raises(ValueError, match="task"):
        AnyMDPEnv(task=object())


def test_render_ansi(task16):
    env = AnyMDPEnv(task16, render_mode="ansi")
    obs, _ = env.reset(seed=0)
    assert env.render() == f"t=0 obs={obs}"
    obs, r, *_ = env.step(1)
    line = env.render()
    assert line.startswith(f"t=1 obs={obs} action=1 reward=")
    assert AnyMDPEnv(task16).render() is None
