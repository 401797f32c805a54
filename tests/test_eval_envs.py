"""Evaluation environments: registry, spaces, shaping, normalisation constants, oracle returns,
seeding and batch semantics (``omnirl.evaluate.envs``)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from gymnasium import spaces

from omnirl.evaluate.envs import ENVIRONMENTS, SUITES, make_batch, make_env
from omnirl.evaluate.envs import anymdp, cliff, darkroom, lake, pendulum, switch
from omnirl.evaluate.envs.base import GymBatch, MDPBatch, remap_actions
from omnirl.evaluate.records import EpisodeRecorder
from omnirl.tasks.taskset import TaskSet

GYM = SUITES["gym"] + SUITES["darkroom"]
SINGLE = tuple(n for n in GYM if n != "switch2")
TABULAR = ("lake4x4", "lake4x4_slippery", "cliff", "darkroom6", "darkroom8", "darkroom10")
ALL = tuple(ENVIRONMENTS)


# --------------------------------------------------------------------------- helpers
def random_actions(rng: np.random.Generator, batch) -> np.ndarray:
    return rng.integers(0, np.array([i.n_actions for i in batch.infos]))


def run_episodes(batch, policy: str, episodes: int, seed: int, max_steps: int = 100_000):
    """The first ``episodes`` finished episodes of every row under ``policy`` ('oracle'/'random')."""
    rng = np.random.default_rng(seed)
    rec = EpisodeRecorder(batch.infos)
    count = np.zeros(batch.n_envs, dtype=np.int64)
    batch.reset(seed)
    for _ in range(max_steps):
        a = batch.oracle_actions() if policy == "oracle" else random_actions(rng, batch)
        res = batch.step(a)
        rec.record(res)
        count += res.terminated | res.truncated
        if count.min() >= episodes:
            break
    ep = rec.episodes()
    return ep.select(ep.episode < episodes)


def mc_returns(env, policy: str, episodes: int, seed: int) -> np.ndarray:
    """Raw returns ``(episodes,)`` (``(episodes, n_agents)`` for several agents) of one adapter."""
    rng = np.random.default_rng(seed)
    k = env.n_agents
    out = np.zeros((episodes, k))
    env.reset(seed=seed)
    for e in range(episodes):
        if e:
            env.reset()
        while True:
            if policy == "oracle":
                a = env.oracle_action()
            else:
                a = rng.integers(0, env.info.n_actions, k).tolist()
                a = a if k > 1 else a[0]
            _, _, term, trunc, info = env.step(a)
            out[e] += info["raw_reward"]
            if term or trunc:
                break
    return out[:, 0] if k == 1 else out


def assert_close(sample: np.ndarray, expected: float, sigmas: float = 4.0, floor: float = 1e-9):
    """``mean(sample)`` equals ``expected`` within ``sigmas`` standard errors."""
    se = float(np.std(sample, ddof=1) / math.sqrt(sample.size)) if sample.size > 1 else 0.0
    assert abs(float(np.mean(sample)) - expected) <= sigmas * se + floor, (np.mean(sample), expected, se)


def trajectory(batch, seed: int, steps: int, action_seed: int = 0) -> list[tuple]:
    rng = np.random.default_rng(action_seed)
    out = [tuple(batch.reset(seed).tolist())]
    for _ in range(steps):
        r = batch.step(random_actions(rng, batch))
        out.append(tuple(np.concatenate([r.next_obs, r.reward, r.raw_reward, r.terminated,
                                         r.truncated, batch.obs]).tolist()))
    return out


# --------------------------------------------------------------------------- registry
def test_registry_names_and_suites():
    expected = {"anymdp8", "anymdp16", "anymdp32", "anymdp64", "anymdp128", "bandit5", "lake4x4",
                "lake4x4_slippery", "cliff", "pendulum_g1", "pendulum_g5", "pendulum_g9.8",
                "darkroom6", "darkroom8", "darkroom10", "switch2"}
    assert set(ENVIRONMENTS) == expected
    assert set(SUITES) == {"anymdp", "gym", "darkroom", "ladder"}
    assert SUITES["ladder"] == ("anymdp8",) and "anymdp8" not in SUITES["anymdp"]  # not in the paper's suite
    names = [n for suite in SUITES.values() for n in suite]
    assert sorted(names) == sorted(expected)  # every name in exactly one suite
    assert SUITES["darkroom"] == ("darkroom6", "darkroom8", "darkroom10")
    for name in GYM:
        env = make_env(name)
        assert env.info.name == name and env.info.family == ENVIRONMENTS[name].family
        assert env.info.max_episode_steps == 200


def test_unknown_names_and_bad_arguments_are_loud():
    with pytest.raises(ValueError, match=r"name must be one of .*'cliff'.*got 'lake8x8'"):
        make_batch("lake8x8", 2, seed=0)
    with pytest.raises(ValueError, match=r"name must be one of .*got 'nope'"):
        make_env("nope")
    with pytest.raises(ValueError, match="make_batch"):
        make_env("anymdp16")
    with pytest.raises(ValueError, match="n_envs must be a multiple of 2 .*got 3"):
        make_batch("switch2", 3, seed=0)
    with pytest.raises(ValueError, match="n_envs must be >= 1, got 0"):
        make_batch("cliff", 0, seed=0)
    with pytest.raises(ValueError, match="seed must be >= 0, got -1"):
        make_batch("cliff", 1, seed=-1)
    with pytest.raises(ValueError, match="task_dir is only for"):
        make_batch("cliff", 1, seed=0, task_dir="x")
    with pytest.raises(ValueError, match="shaping must be a bool"):
        make_env("cliff", shaping=1)
    with pytest.raises(ValueError, match=r"size must be one of \[6, 8, 10\], got 7"):
        darkroom.DarkRoomAdapter(7)
    with pytest.raises(ValueError, match=r"g must be one of \[1.0, 5.0, 9.81\], got 9.8"):
        pendulum.PendulumAdapter(9.8)
    with pytest.raises(ValueError, match="slippery must be a bool"):
        lake.LakeAdapter("yes")
    env = darkroom.DarkRoomEnv(6)
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(0)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action must be an integer in \[0, 4\), got 4"):
        env.step(4)
    sw = switch.Switch2Env()
    sw.reset(seed=0)
    with pytest.raises(ValueError, match="actions must be 2 integers"):
        sw.step([0])
    with pytest.raises(ValueError, match="two distinct free cells"):
        sw.reset(options={"positions": ((0, 1), (0, 1))})


# --------------------------------------------------------------------------- spaces and ids
@pytest.mark.parametrize("name", SINGLE)
def test_spaces_and_id_ranges(name):
    env = make_env(name)
    info = env.info
    assert env.observation_space == spaces.Discrete(info.n_obs)
    assert env.action_space == spaces.Discrete(info.n_actions)
    sizes = {"lake": (16, 4), "cliff": (48, 4), "pendulum": (60, 5)}
    expected = sizes[info.family] if info.family in sizes else (int(name[len("darkroom"):]) ** 2, 4)
    assert (info.n_obs, info.n_actions) == expected
    batch = make_batch(name, 3, seed=0)
    rng = np.random.default_rng(0)
    seen = [batch.reset(1)]
    for _ in range(300):
        r = batch.step(random_actions(rng, batch))
        seen += [r.next_obs, batch.obs]
    seen = np.concatenate(seen)
    assert seen.dtype == np.int64 and seen.min() >= 0 and seen.max() < info.n_obs


def test_switch2_spaces_and_ids():
    env = make_env("switch2")
    assert env.n_agents == 2
    assert env.observation_space == spaces.Tuple([spaces.Discrete(105)] * 2)
    assert env.action_space == spaces.Tuple([spaces.Discrete(5)] * 2)
    assert len(switch.CELLS) == 15 and switch.N_STATES == 105
    # the bridge is one cell wide: row 1, columns 2..4 are the only free cells of those columns
    assert [c for c in switch.CELLS if 2 <= c[1] <= 4] == [(1, 2), (1, 3), (1, 4)]
    obs, _ = env.reset(seed=0)
    # agent 0 in cell (0, 1) = number 1, agent 1 in column 5; agent 1 in (0, 5) = 2, agent 0 in column 1
    assert obs == [15 * 5 + 1, 15 * 1 + 2]
    ids = {i for a in switch.CELLS for b in switch.CELLS if a != b for i in switch.observation_ids((a, b))}
    assert min(ids) >= 0 and max(ids) < 105


def test_anymdp_and_bandit_batches():
    batch = make_batch("anymdp16", 3, seed=0)
    assert isinstance(batch, MDPBatch)
    assert [i.name for i in batch.infos] == ["anymdp16"] * 3
    assert {(i.n_obs, i.n_actions, i.family, i.exact) for i in batch.infos} == {(16, 5, "anymdp", True)}
    assert len({t.content_hash() for t in batch.tasks}) == 3  # distinct tasks
    assert all(anymdp.is_eval_task(t) for t in batch.tasks)
    obs = batch.reset(0)
    assert obs.max() < 16
    b = make_batch("bandit5", 4, seed=0)
    assert {(i.name, i.family, i.n_obs, i.max_episode_steps) for i in b.infos} == {("bandit5", "bandit", 1, 1)}
    b.reset(0)
    res = b.step(b.oracle_actions())
    assert (res.terminated | res.truncated).all()  # one-step episodes


# --------------------------------------------------------------------------- shaping
def _steps(env, actions, seed=0, options=None):
    env.reset(seed=seed, options=options)
    return [env.step(a) for a in actions]


def test_lake_shaping():
    env = lake.LakeAdapter(False)
    assert env.shape(0, True, False, {}) == -1.0  # hole
    assert env.shape(1, True, False, {}) == 1.0  # goal
    assert env.shape(0, False, True, {}) == -1.0  # time limit
    assert env.shape(0, False, False, {}) == 0.0
    # into the hole at 5: down (0 -> 4), right (4 -> 5)
    *_, (obs, r, term, trunc, info) = _steps(env, [1, 2])
    assert (obs, r, term, info["raw_reward"]) == (5, -1.0, True, 0)
    # to the goal: down, down, right, right, down, right
    out = _steps(env, [1, 1, 2, 2, 1, 2])
    assert [o[1] for o in out] == [0.0] * 5 + [1.0] and out[-1][:3] == (15, 1.0, True)
    # time limit: 200 steps left in the start cell
    out = _steps(env, [0] * 200)
    assert out[-1][3] and not out[-1][2] and out[-1][1] == -1.0 and [o[1] for o in out[:-1]] == [0.0] * 199
    raw = lake.LakeAdapter(False, shaping=False)
    assert _steps(raw, [1, 2])[-1][1] == 0 and _steps(raw, [0] * 200)[-1][1] == 0


def test_cliff_shaping_and_fall():
    env = cliff.CliffAdapter()
    assert env.shape(-1, False, False, {}) == -0.03
    assert env.shape(-1, True, False, {}) == 1.0  # goal
    assert env.shape(-100, True, False, {}) == -1.0  # cliff
    assert env.shape(-1, False, True, {}) == -1.0  # time limit
    obs, r, term, trunc, info = _steps(env, [1])[0]  # right from the start: the cliff
    assert (obs, r, term, trunc, info["raw_reward"]) == (37, -1.0, True, False, -100)
    out = _steps(env, [0] + [1] * 11 + [2])  # up, along row 2, down into the goal
    assert [o[1] for o in out] == [-0.03] * 12 + [1.0] and out[-1][0] == cliff.GOAL and out[-1][2]
    assert sum(o[4]["raw_reward"] for o in out) == -13
    out = _steps(env, [3] * 200)
    assert out[-1][3] and out[-1][1] == -1.0 and out[-1][4]["raw_reward"] == -1
    raw = cliff.CliffAdapter(shaping=False)
    assert [o[1] for o in _steps(raw, [0, 1])] == [-1, -1] and _steps(raw, [1])[0][1] == -100


def test_pendulum_shaping_and_observation():
    assert pendulum.shape_reward(0.0) == pytest.approx(0.1)
    assert pendulum.shape_reward(-3.0) == pytest.approx(0.0)
    assert pendulum.shape_reward(-6.0) == pytest.approx(-0.1)
    assert pendulum.shape_reward(-16.27) == -0.1  # clipped
    env, raw = make_env("pendulum_g5"), make_env("pendulum_g5", shaping=False)
    rng = np.random.default_rng(0)
    acts = rng.integers(0, 5, 50).tolist()
    for (o1, r1, *_, i1), (o2, r2, *_, i2) in zip(_steps(env, acts, seed=3), _steps(raw, acts, seed=3)):
        assert o1 == o2 and i1["raw_reward"] == i2["raw_reward"] == r2
        assert r1 == pytest.approx(max(r2 / 30 + 0.1, -0.1))
    np.testing.assert_allclose(pendulum.TORQUES, [-2, -1, 0, 1, 2])
    # ids: 5 * angle bin (12 over [0, 2 pi)) + speed bin (5 over [-8, 8])
    assert pendulum.observation_id(1.0, 0.0, 0.0) == 2  # upright, still
    assert pendulum.observation_id(-1.0, 1e-9, -8.0) == 5 * 5 + 0  # angle just below pi, fastest negative
    assert pendulum.observation_id(1.0, -1e-9, 8.0) == 5 * 11 + 4  # angle just below 2 pi
    assert pendulum.observation_id(0.0, 1.0, 3.3) == 5 * 3 + 3  # pi / 2 -> bin 3, 3.3 in [1.6, 4.8)
    assert pendulum.observation_id(0.0, -1.0, 50.0) == 5 * 9 + 4  # 3 pi / 2 -> bin 9, clipped speed


def test_darkroom_rewards_are_raw():
    env = darkroom.DarkRoomAdapter(6)
    env.env.unwrapped.reset(seed=0)
    env.env.unwrapped.state = 34  # (5, 4): one step y + 1 from the goal (5, 5)
    obs, r, term, trunc, info = env.step(2)
    assert (obs, r, term, trunc, info["raw_reward"]) == (35, 1.0, True, False, 1.0)
    env.reset(seed=1)
    env.env.unwrapped.state = 0
    assert env.step(1)[:3] == (0, -0.1, False)  # a wall stops x - 1 at x = 0
    assert env.step(0)[:3] == (6, -0.1, False)  # x + 1
    assert darkroom.DarkRoomAdapter(6, shaping=False).shape(-0.1, False, False, {}) == -0.1


def test_switch2_shaping():
    env = switch.Switch2Adapter()
    # agent 0 one step left of its goal (0, 6), agent 1 on the bridge at (1, 3)
    start = {"positions": ((0, 5), (1, 3))}
    # agent 0 steps right onto its goal (shaped 1.0), agent 1 steps left (closer: +0.08): both get 1.08
    _, r, term, trunc, info = _steps(env, [[3, 1]], options=start)[0]
    assert info["raw_reward"] == [5.0, 0.0] and r == pytest.approx([1.08, 1.08]) and not term
    # agent 0 is done: it gets 0; agent 1 steps right (farther: -0.12) and gets its own only
    obs, r, term, trunc, info = env.step([1, 3])
    assert r == pytest.approx([0.0, -0.12]) and info["raw_reward"] == [0.0, 0.0]
    assert env.env.unwrapped.positions[0] == switch.GOALS[0]  # a done agent does not move
    # both active: agent 0 moves away (-0.12), agent 1 bumps into a wall (-0.04): both -0.16
    _, r, *_ = _steps(env, [[1, 2]], options={"positions": ((1, 4), (1, 2))})[0]
    assert r == pytest.approx([-0.16, -0.16])
    # agents cannot swap on the bridge: each is blocked by the other, both distances unchanged
    _, r, _, _, info = _steps(env, [[3, 1]], options={"positions": ((1, 2), (1, 3))})[0]
    assert info["positions"] == ((1, 2), (1, 3)) and r == pytest.approx([-0.08, -0.08])
    # agent 1 reaches its goal and the episode ends: raw 5, shaped 1.0 + agent 0's own
    _, r, term, _, info = _steps(env, [[4, 2]], options={"positions": ((0, 6), (1, 0))})[0]
    assert term and info["raw_reward"] == [0.0, 5.0] and r == pytest.approx([0.0, 1.0])
    raw = switch.Switch2Adapter(shaping=False)
    assert _steps(raw, [[3, 1]], options=start)[0][1] == [5.0, 0.0]


# --------------------------------------------------------------------------- normalisation constants
@pytest.mark.parametrize("name,episodes", [("lake4x4", 3000), ("lake4x4_slippery", 3000), ("cliff", 2000),
                                           ("darkroom6", 600), ("darkroom10", 300)])
def test_exact_random_return_matches_monte_carlo(name, episodes):
    env = make_env(name)
    assert env.info.exact
    assert_close(mc_returns(env, "random", episodes, seed=11), env.info.random_return)


@pytest.mark.parametrize("name,episodes", [("lake4x4", 5), ("lake4x4_slippery", 1500), ("cliff", 5),
                                           ("darkroom8", 400)])
def test_exact_oracle_return_matches_monte_carlo(name, episodes):
    env = make_env(name)
    assert_close(mc_returns(env, "oracle", episodes, seed=12), env.info.oracle_return)


@pytest.mark.parametrize("name", TABULAR)
def test_model_matches_gymnasium_adapter(name):
    """``to_task()`` reproduces the adapter's transitions: every (state, action) of the table leads
    where the Gymnasium environment goes, with the same raw reward and termination."""
    env = make_env(name)
    task = env.to_task()
    assert task.max_steps == env.info.max_episode_steps and task.n_obs == env.info.n_obs
    assert (env.info.random_return, env.info.oracle_return) == (env.model.random_return, env.model.oracle_return)
    slippery = name == "lake4x4_slippery"
    rng = np.random.default_rng(0)
    for s in np.flatnonzero(~task.terminal):
        for a in range(task.n_actions):
            seen = {}
            for _ in range(40 if slippery else 1):
                env.reset(seed=int(rng.integers(1 << 30)))
                if name.startswith("darkroom"):
                    env.env.unwrapped.state = int(s)
                else:
                    env.env.unwrapped.s = int(s)
                obs, _, term, _, info = env.step(a)
                seen[obs] = (info["raw_reward"], term)
            support = np.flatnonzero(task.transition[s, a])
            assert set(seen) <= set(support.tolist()) and (slippery or set(seen) == set(support.tolist()))
            for s2, (r, term) in seen.items():
                assert r == pytest.approx(float(task.reward[s, a, s2])) and term == bool(task.terminal[s2])


def test_switch2_exact_references_match_monte_carlo():
    model = switch.switch_model()
    assert model.task.n_states == 210 and model.task.n_actions == 25
    assert model.oracle_returns == (5.0, 5.0)
    env = make_env("switch2")
    assert env.info.exact and env.info.random_return == pytest.approx(np.mean(model.random_returns))
    ret = mc_returns(env, "random", 400, seed=13)  # (400, 2)
    for i in range(2):
        assert_close(ret[:, i], model.random_returns[i])
    np.testing.assert_array_equal(mc_returns(env, "oracle", 3, seed=14), 5.0)


def test_published_constants():
    assert pendulum.ORACLE_RETURN == {1.0: -40.0, 5.0: -200.0, 9.81: -385.0}
    assert pendulum.GRAVITIES == {"pendulum_g1": 1.0, "pendulum_g5": 5.0, "pendulum_g9.8": 9.81}
    for name, g in pendulum.GRAVITIES.items():
        info = make_env(name).info
        assert (info.random_return, info.oracle_return, info.exact) == (
            pendulum.RANDOM_RETURN[g], pendulum.ORACLE_RETURN[g], False)
    assert lake.PUBLISHED_ORACLE_RETURN == {False: 1.0, True: 0.833}
    assert make_env("lake4x4").info.oracle_return == pytest.approx(1.0)
    assert make_env("cliff").info.oracle_return == pytest.approx(-13.0)
    # the darkroom references the paper's Table 2 reports for 10x10 (oracle 0.22, random -15.07)
    info = make_env("darkroom10").info
    assert info.oracle_return == pytest.approx(0.191, abs=1e-3)
    assert info.random_return == pytest.approx(-15.93, abs=0.01)


def test_pendulum_random_constant_replica():
    for g, value in pendulum.RANDOM_RETURN.items():
        mean, se = pendulum.measure_random_return(g, 20_000, seed=1)
        assert abs(mean - value) <= 4 * se + 0.05


@pytest.mark.parametrize("name", tuple(pendulum.GRAVITIES))
def test_pendulum_random_constant_through_the_adapter(name):
    env = make_env(name)
    assert_close(mc_returns(env, "random", 120, seed=15), env.info.random_return)


@pytest.mark.parametrize("name", tuple(pendulum.GRAVITIES))
def test_pendulum_controller_return(name):
    g = pendulum.GRAVITIES[name]
    published = pendulum.ORACLE_RETURN[g]
    # the stored constant, re-measured on the replica with other starts
    mean, se = pendulum.measure_controller_return(g, 500, seed=2)
    assert abs(mean - pendulum.CONTROLLER_RETURN[g]) <= 4 * se + 0.1
    # at least as good as the published oracle, up to 5% (-40.8 against -40 at g = 1)
    assert mean >= published - 0.05 * abs(published)
    # through the adapter and the batch (oracle_action on the true state)
    ret = run_episodes(make_batch(name, 8, seed=0), "oracle", 2, seed=16).raw_return
    assert_close(ret, pendulum.CONTROLLER_RETURN[g], sigmas=4.0, floor=2.0)


# --------------------------------------------------------------------------- oracle and random scores
@pytest.mark.parametrize("name", ("anymdp16", "bandit5") + SINGLE + ("switch2",))
def test_oracle_scores_one_and_random_zero(name):
    # AnyMDP returns are heavy-tailed (rare long, rich episodes): more episodes per row
    episodes = 100 if name in ("anymdp16", "bandit5") else 2 if name.startswith("pendulum") else 12
    n_envs = 8
    for policy, target in (("oracle", 1.0), ("random", 0.0)):
        ep = run_episodes(make_batch(name, n_envs, seed=3), policy, episodes, seed=17)
        assert len(ep) == n_envs * episodes
        score = ep.score
        assert np.isfinite(score).all()
        if policy == "oracle" and name.startswith("pendulum"):
            assert score.mean() >= 0.95  # the controller beats the published oracle (see pendulum)
        else:
            assert_close(score, target, sigmas=4.0, floor=1e-9 if policy == "oracle" else 0.02)


# --------------------------------------------------------------------------- seeding and batches
@pytest.mark.parametrize("name", ("anymdp16",) + GYM)
def test_same_seed_same_trajectory(name):
    a, b = make_batch(name, 4, seed=2), make_batch(name, 4, seed=2)
    assert trajectory(a, 7, 250) == trajectory(b, 7, 250)
    if name not in ("lake4x4", "cliff", "switch2"):  # the others have random starts or moves
        assert trajectory(a, 7, 250) != trajectory(b, 8, 250)


@pytest.mark.parametrize("name", ("anymdp16", "lake4x4_slippery", "darkroom6", "pendulum_g1"))
def test_episodes_do_not_repeat_their_start(name):
    """Each row is seeded once: its later episodes continue its stream, so under a fixed action
    they do not replay the same opening (the reference reset Pendulum with seed=123 before every
    episode, which replayed it), and rows open differently."""
    batch = make_batch(name, 2, seed=0)
    first = batch.reset(5)
    episodes = [[[int(x)]] for x in first]  # per row, per episode: observations
    actions = np.zeros(2, dtype=np.int64)
    while min(len(e) for e in episodes) < 8:
        res = batch.step(actions)
        for row in range(2):
            episodes[row][-1].append(int(res.next_obs[row]))
            if res.terminated[row] or res.truncated[row]:
                episodes[row].append([int(batch.obs[row])])
    openings = [[tuple(ep[:5]) for ep in row[:8]] for row in episodes]
    for row in openings:
        assert len(set(row)) > 1, row
    assert openings[0] != openings[1]


def test_gym_batch_auto_reset():
    batch = make_batch("cliff", 2, seed=0)
    assert isinstance(batch, GymBatch)
    np.testing.assert_array_equal(batch.reset(0), [36, 36])
    res = batch.step(np.array([1, 0]))  # row 0 walks into the cliff, row 1 steps up
    np.testing.assert_array_equal(res.next_obs, [37, 24])
    np.testing.assert_array_equal(res.terminated, [True, False])
    np.testing.assert_array_equal(res.raw_reward, [-100, -1])
    np.testing.assert_allclose(res.reward, [-1.0, -0.03])
    np.testing.assert_array_equal(batch.obs, [36, 24])  # row 0 is already in its next episode
    # truncation after exactly 200 steps, then a fresh episode
    batch = make_batch("darkroom6", 1, seed=0)
    batch.reset(3)
    for t in range(1, 201):
        res = batch.step(np.array([1]) if t % 2 else np.array([3]))  # x - 1, y - 1: never the goal
        assert bool(res.truncated[0]) == (t == 200) and not res.terminated[0]
    with pytest.raises(RuntimeError, match="reset"):
        make_batch("cliff", 1, seed=0).step(np.array([0]))
    with pytest.raises(ValueError, match=r"actions\[0\]=4 is outside \[0, 4\) of cliff"):
        batch = make_batch("cliff", 1, seed=0)
        batch.reset(0)
        batch.step(np.array([4]))


def test_action_remapping_for_four_action_environments():
    batch = make_batch("lake4x4", 5, seed=0)
    n = np.array([i.n_actions for i in batch.infos])
    model_actions = np.array([0, 1, 2, 3, 4])
    native = remap_actions(model_actions, n)
    np.testing.assert_array_equal(native, [0, 1, 2, 3, 0])
    batch.reset(0)
    res = batch.step(native)
    np.testing.assert_array_equal(res.next_obs, [0, 4, 1, 0, 0])  # left, down, right, up, left


def test_switch2_rows_and_summed_rewards():
    batch = make_batch("switch2", 4, seed=0)
    assert batch.n_envs == 4 and len(batch.envs) == 2
    assert [i.name for i in batch.infos] == ["switch2"] * 4
    np.testing.assert_array_equal(batch.reset(0), [76, 17, 76, 17])
    rng = np.random.default_rng(0)
    both_active = np.ones(2, dtype=bool)
    for _ in range(400):
        res = batch.step(random_actions(rng, batch))
        r = res.reward.reshape(2, 2)
        raw = res.raw_reward.reshape(2, 2)
        for e in range(2):
            if both_active[e]:  # both agents were playing: each sees the sum
                assert r[e, 0] == r[e, 1]
            done = res.terminated.reshape(2, 2)[e, 0] or res.truncated.reshape(2, 2)[e, 0]
            both_active[e] = True if done else both_active[e] and not (raw[e] > 0).any()
        assert (res.terminated.reshape(2, 2)[:, 0] == res.terminated.reshape(2, 2)[:, 1]).all()
    oracle = batch.oracle_actions()
    assert oracle.shape == (4,) and oracle.max() < 5


# --------------------------------------------------------------------------- unseen AnyMDP tasks
def test_unseen_tasks_are_reproducible_and_disjoint_from_training(tmp_path):
    tasks = anymdp.unseen_tasks(16, 4, seed=0)
    again = anymdp.unseen_tasks(16, 4, seed=0)
    assert [t.content_hash() for t in tasks] == [t.content_hash() for t in again]
    assert all(t.seed == (anymdp.EVAL_ROOT, 16, 5, 0, i) for i, t in enumerate(tasks))
    other = anymdp.unseen_tasks(16, 4, seed=1)
    hashes = {t.content_hash() for t in tasks}
    assert len(hashes) == 4 and not hashes & {t.content_hash() for t in other}
    for root in (0, 1, anymdp.EVAL_ROOT):
        train = TaskSet.generate(4, 16, 5, seed=root)
        assert not hashes & set(train.task_hashes())
        assert not any(anymdp.is_eval_task(t) for t in train) or root == anymdp.EVAL_ROOT
    assert len({t.content_hash() for t in anymdp.bandit_tasks(6, seed=0)}) == 6


def test_tasks_from_a_saved_task_set(tmp_path):
    saved = anymdp.generate_eval_taskset(tmp_path / "eval16", 16, 5, seed=0)
    batch = make_batch("anymdp16", 3, seed=4, task_dir=tmp_path / "eval16")
    assert {t.content_hash() for t in batch.tasks} <= set(saved.task_hashes())
    assert len({t.content_hash() for t in batch.tasks}) == 3
    again = make_batch("anymdp16", 3, seed=4, task_dir=tmp_path / "eval16")
    assert [t.content_hash() for t in again.tasks] == [t.content_hash() for t in batch.tasks]
    assert len(make_batch("anymdp16", 7, seed=0, task_dir=tmp_path / "eval16").tasks) == 7  # cycled
    TaskSet.generate(3, 16, 5, seed=0).save(tmp_path / "train")
    with pytest.raises(ValueError, match="not drawn from the evaluation root.*training set"):
        make_batch("anymdp16", 2, seed=0, task_dir=tmp_path / "train")
    assert anymdp.anymdp_batch(16, 2, seed=0, task_dir=tmp_path / "train", check_root=False).n_envs == 2
    with pytest.raises(ValueError, match="holds no task with n_obs=32"):
        make_batch("anymdp32", 2, seed=0, task_dir=tmp_path / "eval16")


@pytest.mark.slow
@pytest.mark.parametrize("name", ("anymdp32", "anymdp64", "anymdp128"))
def test_larger_anymdp_batches(name):
    S = int(name[len("anymdp"):])
    batch = make_batch(name, 2, seed=0)
    assert {(i.n_obs, i.n_actions) for i in batch.infos} == {(S, 5)}
    ep = run_episodes(batch, "oracle", 3, seed=0)
    assert np.isfinite(ep.score).all() and ep.score.mean() > 0.5
