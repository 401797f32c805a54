"""BatchedSimulator: equality with AnyMDPEnv, row independence, statistics, episode ends, errors."""

from __future__ import annotations

import numpy as np
import pytest

from omnirl.tasks import (AnyMDPEnv, BatchedSimulator, MDPTask, sample_anymdp, sample_bandit,
                          sample_garnet)
from omnirl.tasks import dynamics
from tests.helpers import small_task, two_state_task


@pytest.fixture(scope="module")
def mixed_tasks() -> list[MDPTask]:
    """AnyMDP tasks of different sizes, a Garnet and a bandit, all with 5 actions."""
    tasks = [sample_anymdp(16, 5, seed=1, min_states=8), sample_anymdp(16, 5, seed=2, min_states=8),
             sample_anymdp(32, 5, seed=3, min_states=8), sample_anymdp(32, 5, seed=4, min_states=8),
             sample_garnet(16, 5, seed=5), sample_bandit(5, seed=6)]
    assert len({t.n_states for t in tasks}) >= 4
    return tasks


def gym_stream(task, seed, actions):
    """Per-step ``(next_obs, reward, terminated, truncated, obs_after)`` of ``AnyMDPEnv``, reset
    without a seed after every episode end (the simulator's automatic reset)."""
    env = AnyMDPEnv(task)
    obs, _ = env.reset(seed=seed)
    out = [(obs,)]
    for a in actions:
        nxt, r, term, trunc, info = env.step(int(a))
        if term or trunc:
            obs, info = env.reset()
        else:
            obs = nxt
        out.append((nxt, r, term, trunc, obs, info["steps"]))
    return out


def sim_stream(sim, actions):
    out = [(int(o),) for o in sim.obs]
    streams = [[x] for x in out]
    for a in actions:
        nxt, r, term, trunc = sim.step(a)
        obs, steps = sim.obs, sim.steps
        for i, s in enumerate(streams):
            s.append((nxt[i], r[i], term[i], trunc[i], obs[i], steps[i]))
    return streams


# ----------------------------------------------------------------- equality with the Gym env


def test_matches_gym_env_bit_for_bit(mixed_tasks):
    seeds = [11, (12, 3), 13, 14, 15, 16]
    n_steps = 600
    actions = np.random.default_rng(0).integers(0, 5, (n_steps, len(mixed_tasks)))
    sim = BatchedSimulator(mixed_tasks, seeds)
    streams = sim_stream(sim, actions)
    for i, (task, seed) in enumerate(zip(mixed_tasks, seeds)):
        expect = gym_stream(task, seed, actions[:, i])
        got = streams[i]
        assert len(got) == len(expect)
        assert got[0] == expect[0]
        for t in range(1, n_steps + 1):
            nxt, r, term, trunc, obs, steps = got[t]
            e = expect[t]
            # exact equality, reward bits included
            assert (int(nxt), float(r).hex(), bool(term), bool(trunc), int(obs), int(steps)) == \
                (e[0], e[1].hex(), e[2], e[3], e[4], e[5] if not (e[2] or e[3]) else 0), (i, t)
        ends = sum(1 for x in expect[1:] if x[2] or x[3])
        assert ends >= 3, f"row {i} ended only {ends} episodes"
    # terminations were compared too (AnyMDP rows; the bandit's one-step episodes are truncations)
    assert any(x[2] for i in range(4) for x in gym_stream(mixed_tasks[i], seeds[i], actions[:, i])[1:])
    assert any(x[3] for x in gym_stream(mixed_tasks[4], 15, actions[:, 4])[1:])  # truncations


def test_rank_property_matches_gym_env(mixed_tasks):
    task = mixed_tasks[2]
    sim = BatchedSimulator([task], [5])
    env = AnyMDPEnv(task)
    env.reset(seed=5)
    for a in np.random.default_rng(1).integers(0, 5, 300):
        assert sim.rank[0] == env.rank
        assert sim.obs[0] == task.state_ids[env.rank]
        *_, term, trunc, _ = env.step(int(a))
        sim.step(np.array([a]))
        if term or trunc:
            env.reset()


def test_row_does_not_depend_on_the_batch(mixed_tasks):
    task, seed = mixed_tasks[3], (9, 9)
    n_steps = 400
    rng = np.random.default_rng(2)
    actions = rng.integers(0, 5, (n_steps, 8))
    tasks8 = [mixed_tasks[i % 5] for i in range(8)]
    seeds8 = list(range(100, 108))
    tasks8[5], seeds8[5] = task, seed
    alone = sim_stream(BatchedSimulator([task], [seed]), actions[:, 5:6])[0]
    batch = sim_stream(BatchedSimulator(tasks8, seeds8), actions)
    assert repr(alone) == repr(batch[5])
    # and a different batch around it changes nothing either
    other = actions.copy()
    other[:, :5] = rng.integers(0, 5, (n_steps, 5))
    assert repr(alone) == repr(sim_stream(BatchedSimulator(tasks8, seeds8), other)[5])


def test_reset_restarts_every_row(mixed_tasks):
    sim = BatchedSimulator(mixed_tasks, list(range(6)))
    actions = np.random.default_rng(3).integers(0, 5, (120, 6))
    first = sim_stream(sim, actions)
    assert sim.reset().tolist() == [s[0][0] for s in first]
    assert repr(sim_stream(sim, actions)) == repr(first)


# ----------------------------------------------------------------- statistics


def chi_square(counts: np.ndarray, probs: np.ndarray) -> tuple[float, int]:
    """Pearson statistic and degrees of freedom over the support of ``probs``."""
    support = probs > 0
    assert counts[~support].sum() == 0, "a zero-probability outcome was drawn"
    expect = counts.sum() * probs[support] / probs[support].sum()
    return float(((counts[support] - expect) ** 2 / expect).sum()), int(support.sum()) - 1


def within_chi_square(stat: float, df: int) -> bool:
    """Generous acceptance bound (about 6 standard deviations of the chi-square law)."""
    return stat <= df + 6.0 * np.sqrt(2.0 * max(df, 1)) + 5.0


def test_next_state_frequencies_follow_P():
    task = sample_anymdp(16, 5, seed=7)
    B, T, a = 1000, 200, 2
    sim = BatchedSimulator([task] * B, [(3, i) for i in range(B)])
    n = task.n_states
    counts = np.zeros((n, n), dtype=np.int64)
    rank_of_obs = task.rank_of_obs
    for _ in range(T):
        s = sim.rank
        nxt, *_ = sim.step(np.full(B, a))
        np.add.at(counts, (s, rank_of_obs[nxt]), 1)
    P = task.transition[:, a].astype(np.float64)
    tested = 0
    for s in range(n):
        if counts[s].sum() >= 2000:
            stat, df = chi_square(counts[s], P[s])
            assert within_chi_square(stat, df), (s, stat, df)
            tested += 1
    assert tested >= 3
    # pooled over all visited states
    visited = counts.sum(1) > 0
    expect = counts.sum(1, keepdims=True) * P
    mask = expect > 0
    assert counts[~mask].sum() == 0
    stat = float((((counts - expect) ** 2)[mask] / expect[mask]).sum())
    df = int(mask[visited].sum() - visited.sum())
    assert within_chi_square(stat, df)


def test_reward_mean_and_std_follow_the_task():
    P = np.full((2, 2, 2), 0.5)
    R = np.array([[[1.0, -2.0], [0.5, 3.0]], [[0.0, 4.0], [-1.0, 2.5]]])
    noise = np.array([[[0.5, 1.0], [0.0, 2.0]], [[0.25, 1.5], [3.0, 0.1]]])
    task = small_task(P, R, noise, start_states=(0, 1), start_probs=(0.5, 0.5))
    B, T = 500, 80
    sim = BatchedSimulator([task] * B, list(range(B)))
    rng = np.random.default_rng(4)
    s_all, a_all, n_all, r_all = [], [], [], []
    for _ in range(T):
        a = rng.integers(0, 2, B)
        s = sim.rank
        nxt, r, *_ = sim.step(a)
        s_all.append(s), a_all.append(a), n_all.append(nxt), r_all.append(r)
    s, a, nx, r = map(np.concatenate, (s_all, a_all, n_all, r_all))
    for key in np.ndindex(2, 2, 2):
        sel = (s == key[0]) & (a == key[1]) & (nx == key[2])
        N = int(sel.sum())
        assert N > 3000
        mu, sd = R[key], noise[key]
        assert abs(r[sel].mean() - mu) <= 6 * sd / np.sqrt(N) + 1e-6, key
        if sd == 0:
            assert np.all(r[sel] == np.float32(mu))
        else:
            assert abs(r[sel].std() - sd) <= 6 * sd / np.sqrt(2 * N), key


def test_start_frequencies_follow_start_probs():
    # four states, three of them starts; max_steps=1 makes every step end (and reset) every row
    P = np.full((4, 2, 4), 0.25)
    probs = np.array([0.2, 0.5, 0.3])
    task = small_task(P, start_states=(3, 0, 2), start_probs=probs, max_steps=1)
    B, T = 1000, 40
    sim = BatchedSimulator([task] * B, list(range(B)))
    counts = np.bincount(sim.rank, minlength=4)
    for _ in range(T):
        _, _, term, trunc = sim.step(np.zeros(B, dtype=np.int64))
        assert trunc.all() and not term.any()
        assert (sim.steps == 0).all()
        counts += np.bincount(sim.rank, minlength=4)
    expect = np.zeros(4)
    expect[[3, 0, 2]] = probs
    stat, df = chi_square(counts, expect)
    assert within_chi_square(stat, df), (counts, stat)


# ----------------------------------------------------------------- episode ends


def test_truncation_exactly_at_max_steps():
    task = sample_garnet(16, 5, seed=8)  # no terminal states
    m = task.max_steps
    B = 4
    sim = BatchedSimulator([task] * B, [1, 2, 3, 4])
    rng = np.random.default_rng(5)
    for episode in range(2):
        for t in range(1, m + 1):
            nxt, _, term, trunc = sim.step(rng.integers(0, 5, B))
            assert not term.any()
            if t < m:
                assert not trunc.any() and (sim.steps == t).all()
                assert (sim.obs == nxt).all()
            else:
                assert trunc.all() and (sim.steps == 0).all()


def test_termination_on_entering_terminal_state():
    task = two_state_task()
    sim = BatchedSimulator([task] * 3, [0, 1, 2])
    assert sim.obs.tolist() == [4, 4, 4]
    nxt, r, term, trunc = sim.step(np.array([0, 1, 1]))
    assert nxt.tolist() == [2, 4, 4] and r.tolist() == [5.0, 0.0, 0.0]
    assert term.tolist() == [True, False, False] and not trunc.any()
    assert sim.obs.tolist() == [4, 4, 4] and sim.steps.tolist() == [0, 1, 1]
    sim.step(np.array([1, 1, 1]))
    # step 3 of rows 1, 2: terminating on the last step is termination, not truncation
    nxt, r, term, trunc = sim.step(np.array([1, 0, 1]))
    assert nxt.tolist() == [4, 2, 4]
    assert term.tolist() == [False, True, False] and trunc.tolist() == [False, False, True]
    assert sim.steps.tolist() == [2, 0, 0]


def test_output_types(mixed_tasks):
    sim = BatchedSimulator(mixed_tasks, list(range(6)))
    assert sim.n_envs == 6 and sim.n_actions == 5
    assert sim.n_pad == max(t.n_states for t in mixed_tasks)
    nxt, r, term, trunc = sim.step(np.zeros(6, dtype=np.uint8))
    assert (nxt.dtype, r.dtype, term.dtype, trunc.dtype) == (np.int64, np.float64, bool, bool)
    assert nxt.shape == r.shape == term.shape == trunc.shape == (6,)
    assert sim.obs.dtype == np.int64 and sim.rank.dtype == np.int64 and sim.steps.dtype == np.int64
    assert sim.tasks == tuple(mixed_tasks) and sim.seeds == tuple((i,) for i in range(6))


# ----------------------------------------------------------------- set_tasks


def test_set_tasks_replaces_and_resets_rows(mixed_tasks):
    old = [mixed_tasks[i] for i in (0, 1, 0, 2, 4, 0)]
    seeds = list(range(6))
    big = sample_anymdp(40, 5, seed=9)
    n_pad = big.n_states
    rng = np.random.default_rng(6)
    before = rng.integers(0, 5, (50, 6))
    after = rng.integers(0, 5, (300, 6))
    sim = BatchedSimulator(old, seeds, n_pad=n_pad)
    ref = BatchedSimulator(old, seeds, n_pad=n_pad)
    assert repr(sim_stream(sim, before)) == repr(sim_stream(ref, before))
    # rows 1 and 3 hold the only copies of their tasks, so their table slots are freed and reused
    rows, new, new_seeds = [1, 3, 5], [mixed_tasks[3], big, mixed_tasks[1]], [(5, 1), 77, 78]
    obs = sim.set_tasks(rows, new, new_seeds)
    fresh = [AnyMDPEnv(t).reset(seed=s)[0] for t, s in zip(new, new_seeds)]
    assert obs.tolist() == fresh and sim.obs[rows].tolist() == fresh
    assert (sim.steps[rows] == 0).all()
    assert sim.tasks == tuple([old[0], new[0], old[2], new[1], old[4], new[2]])
    got = sim_stream(sim, after)
    ref_after = sim_stream(ref, after)
    for i in range(6):
        if i in rows:
            j = rows.index(i)
            expect = gym_stream(new[j], new_seeds[j], after[:, i])
            assert [int(x[0]) for x in got[i][1:]] == [x[0] for x in expect[1:]]
            assert [float(x[1]) for x in got[i][1:]] == [x[1] for x in expect[1:]]
        else:
            assert repr(got[i]) == repr(ref_after[i])  # untouched rows carry on as before


def test_set_tasks_errors(mixed_tasks):
    sim = BatchedSimulator(mixed_tasks[:2], [0, 1])
    big = sample_anymdp(32, 5, seed=10)
    assert big.n_states > sim.n_pad
    with pytest.raises(ValueError, match="n_pad"):
        sim.set_tasks([0], [big], [0])
    with pytest.raises(ValueError, match="n_actions"):
        sim.set_tasks([0], [sample_garnet(8, 3, seed=0)], [0])
    with pytest.raises(ValueError, match="distinct"):
        sim.set_tasks([0, 0], mixed_tasks[:2], [0, 1])
    with pytest.raises(ValueError, match="rows"):
        sim.set_tasks([2], mixed_tasks[:1], [0])
    with pytest.raises(ValueError, match="lengths"):
        sim.set_tasks([0, 1], mixed_tasks[:1], [0])
    with pytest.raises(ValueError, match="seeds"):
        sim.set_tasks([0], mixed_tasks[:1], [-3])
    # a failed call leaves the simulator as it was
    assert sim.tasks == tuple(mixed_tasks[:2]) and sim.seeds == ((0,), (1,))


# ----------------------------------------------------------------- construction and action errors


def test_constructor_errors(mixed_tasks):
    with pytest.raises(ValueError, match="seeds"):
        BatchedSimulator(mixed_tasks[:3], [0, 1])
    with pytest.raises(ValueError, match="tasks"):
        BatchedSimulator([], [])
    with pytest.raises(ValueError, match="n_actions"):
        BatchedSimulator([mixed_tasks[0], sample_garnet(8, 3, seed=0)], [0, 1])
    with pytest.raises(ValueError, match=r"tasks\[1\]"):
        BatchedSimulator([mixed_tasks[0], "task"], [0, 1])
    with pytest.raises(ValueError, match="seed"):
        BatchedSimulator(mixed_tasks[:2], [0, -1])
    with pytest.raises(ValueError, match="n_pad"):
        BatchedSimulator(mixed_tasks[:2], [0, 1], n_pad=2)


@pytest.mark.parametrize("bad", [np.zeros(3, dtype=np.int64), np.zeros((2, 1), dtype=np.int64),
                                 np.zeros(2), np.array([0, 5]), np.array([-1, 0]), [0, 1.5],
                                 np.array([True, False]), 1])
def test_bad_actions(mixed_tasks, bad):
    sim = BatchedSimulator(mixed_tasks[:2], [0, 1])
    obs = sim.obs
    with pytest.raises(ValueError, match="actions"):
        sim.step(bad)
    assert (sim.obs == obs).all() and (sim.steps == 0).all()


# ----------------------------------------------------------------- dynamics


def test_transition_cdf(mixed_tasks):
    for task in mixed_tasks:
        c = dynamics.transition_cdf(task)
        assert c.dtype == np.float32 and c.shape == task.transition.shape
        assert (c[..., -1] == 1.0).all()
        assert (np.diff(c, axis=-1) >= 0).all()
        assert (c[task.terminal] == 1.0).all()
        live = ~task.terminal
        ref = np.cumsum(task.transition.astype(np.float64), -1)[live]
        assert np.abs(c[live] - ref).max() < 1e-5
    P = np.zeros((2, 1, 2))
    P[0, 0, 0] = 1.0
    with pytest.raises(ValueError, match=r"transition\[1, 0, :\]"):
        dynamics.transition_cdf(small_task(P))


def test_search_cdf_equals_counting():
    rng = np.random.default_rng(7)
    for n in (1, 2, 3, 5, 8, 13, 64, 100):
        R, B = 50, 2000
        p = rng.random((R, n)) * (rng.random((R, n)) < 0.6)  # zeros make ties in the cdf
        p[:, -1] += 1e-3
        c = np.cumsum(p, 1)
        c = (c / c[:, -1:]).astype(np.float32)
        pad = rng.integers(0, 3, R)  # padded columns of 1.0
        for i, k in enumerate(pad):
            if k and n > k:
                c[i, n - k:] = 1.0
        rows = rng.integers(0, R, B)
        u = rng.random(B)
        u[:200] = c[rows[:200], rng.integers(0, n, 200)]  # exactly on cdf entries
        u[200:300] = np.nextafter(u[:100], -1.0)
        u[300:310] = 0.0
        u[310:320] = np.nextafter(1.0, 0.0)
        expect = np.minimum(np.count_nonzero(c[rows] <= u[:, None], axis=1), n - 1)
        assert (dynamics.search_cdf(c, rows, u) == expect).all(), n
