"""Behaviour policies: oracles, random policy, tabular learners and the behaviour mixture."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from omnirl.agents import (COMPONENTS, DEFAULT_WEIGHTS, BehaviourMix, BehaviourMixConfig,
                           ModelBasedAgent, ModelBasedConfig, OracleAgent, PriorInfo,
                           QLearningAgent, QLearningConfig, RandomAgent, RandomConfig, RowStreams,
                           oracle_table)
from omnirl.agents.prior import ORACLE_GAMMAS
from omnirl.tasks import (BatchedSimulator, normalised_score, reference_returns, sample_anymdp,
                          solve)
from omnirl.tasks.rng import counter_uniform
from tests.helpers import two_state_task

S, A = 16, 5


@pytest.fixture(scope="module")
def tasks() -> list:
    # min_states < S: some tasks leave observed ids unused
    return [sample_anymdp(S, A, seed=(11, i), min_states=8) for i in range(16)]


def run(agent, tasks, seeds, steps, on_end=False):
    """Play ``agent`` in a ``BatchedSimulator``; returns actions, tags, obs ``(steps, B)`` and
    each row's list of episode returns."""
    sim = BatchedSimulator(tasks, seeds)
    acts, tags, obs_log = [], [], []
    ret = np.zeros(len(tasks))
    episodes = [[] for _ in tasks]
    for _ in range(steps):
        obs = sim.obs
        a = agent.act(obs)
        acts.append(a.copy())
        tags.append(np.array(agent.last_tags).copy())
        obs_log.append(obs)
        nxt, r, term, trunc = sim.step(a)
        agent.observe(obs, a, r, nxt, term)
        ret += r
        for i in np.flatnonzero(term | trunc):
            episodes[i].append(ret[i])
            ret[i] = 0.0
        if on_end and (term | trunc).any():
            agent.on_episode_end(np.flatnonzero(term | trunc))
    return np.array(acts), np.array(tags), np.array(obs_log), episodes


# ----------------------------------------------------------------------------- streams
def test_streams_match_counter_uniform_for_subsets_and_reseeds():
    st = RowStreams([(3, i) for i in range(6)])
    st.advance()
    st.advance()
    u = st.uniform(40, 4)
    ref = np.stack([counter_uniform(st.key, st.counter, 40 + j) for j in range(4)], axis=1)
    assert np.array_equal(u, ref)
    rows = np.array([4, 1])
    assert np.array_equal(st.uniform(40, 4, rows=rows), ref[rows])
    assert np.array_equal(st.normal(90, 3, rows=rows), st.normal(90, 3)[rows])
    st.reset(np.array([1]), [(99,)])
    fresh = RowStreams([(99,)])
    assert np.array_equal(st.uniform(40, 4)[1], fresh.uniform(40, 4)[0])
    z = RowStreams(range(20000)).normal(7, 3)
    assert np.all(np.abs(z.mean(0)) < 0.05) and np.all(np.abs(z.std(0) - 1) < 0.05)


# ----------------------------------------------------------------------------- oracle
def test_oracle_table_is_the_solver_policy_by_observed_id(tasks):
    task = next(t for t in tasks if t.n_states < t.n_obs)
    for gamma in ORACLE_GAMMAS.values():
        table = oracle_table(task, gamma)
        assert table.shape == (task.n_obs,)
        assert np.array_equal(table[task.state_ids], solve(task, gamma).policy)
        unused = np.setdiff1d(np.arange(task.n_obs), task.state_ids)
        assert np.all(table[unused] == 0)
        assert oracle_table(task, gamma) is table  # cached
    with pytest.raises(ValueError, match="gamma"):
        oracle_table(task, 1.0)


def test_oracle_agent_acts_by_table_with_its_tag(tasks):
    for tag, gamma in ORACLE_GAMMAS.items():
        agent = OracleAgent(tasks, gamma, range(len(tasks)))
        acts, tags, obs, _ = run(agent, tasks, range(len(tasks)), 50)
        tables = np.stack([oracle_table(t, gamma) for t in tasks])
        assert np.array_equal(acts, tables[np.arange(len(tasks)), obs])
        assert np.all(tags == int(tag))
    with pytest.raises(ValueError, match="gamma"):
        OracleAgent(tasks, 0.7, range(len(tasks)))


# ----------------------------------------------------------------------------- row independence
def _agents(tasks, seeds):
    return {
        "random": RandomAgent(tasks, seeds),
        "q": QLearningAgent(tasks, seeds),
        "mb": ModelBasedAgent(tasks, seeds, ModelBasedConfig(sweep_every=16)),
        "mix": BehaviourMix(BehaviourMixConfig(sweep_every=16, resample_sequence_prob=1.0,
                                               resample_episode_prob=0.5), tasks, seeds, S, A),
    }


def test_a_row_acts_the_same_alone_and_in_a_batch(tasks):
    batch_tasks, seeds = tasks[:8], [(5, i) for i in range(8)]
    sim_seeds = [(6, i) for i in range(8)]
    batched = _agents(batch_tasks, seeds)
    for name in batched:
        alone = _agents(batch_tasks[3:4], seeds[3:4])[name]
        on_end = name == "mix"
        a_b, t_b, _, _ = run(batched[name], batch_tasks, sim_seeds, 300, on_end)
        a_1, t_1, _, _ = run(alone, batch_tasks[3:4], sim_seeds[3:4], 300, on_end)
        assert np.array_equal(a_b[:, 3], a_1[:, 0]), name
        assert np.array_equal(t_b[:, 3], t_1[:, 0]), name


def test_reset_rows_mid_run_equals_a_fresh_agent(tasks):
    """After ``reset`` a row behaves as a new agent, while others keep going (sweeps then run on
    a subset of rows, since the rows' step counts differ)."""
    seeds, sim_seeds = [(5, i) for i in range(6)], [(6, i) for i in range(6)]
    for name in ("mb", "mix"):
        agent = _agents(tasks[:6], seeds)[name]
        sim = BatchedSimulator(tasks[:6], sim_seeds)
        for step in range(140):
            if step == 37:
                agent.reset(np.array([2, 4]), [tasks[9], tasks[10]], [(7, 0), (7, 1)])
                sim.set_tasks(np.array([2, 4]), [tasks[9], tasks[10]], [(8, 0), (8, 1)])
                fresh = _agents([tasks[9], tasks[10]], [(7, 0), (7, 1)])[name]
                fresh_sim = BatchedSimulator([tasks[9], tasks[10]], [(8, 0), (8, 1)])
            obs = sim.obs
            a = agent.act(obs)
            if step >= 37:
                f_obs = fresh_sim.obs
                assert np.array_equal(f_obs, obs[[2, 4]])
                f_a = fresh.act(f_obs)
                assert np.array_equal(f_a, a[[2, 4]]), (name, step)
                f_nxt, f_r, f_term, f_trunc = fresh_sim.step(f_a)
                fresh.observe(f_obs, f_a, f_r, f_nxt, f_term)
            nxt, r, term, trunc = sim.step(a)
            agent.observe(obs, a, r, nxt, term)


# ----------------------------------------------------------------------------- random policy
def test_random_agent_is_random_and_tagged_random(tasks):
    agent = RandomAgent(tasks, range(len(tasks)), RandomConfig(scale_mean=0.01))
    acts, tags, _, _ = run(agent, tasks, range(len(tasks)), 400)
    assert np.all(tags == int(PriorInfo.RANDOM))
    freq = np.bincount(acts.ravel(), minlength=A) / acts.size
    assert np.all(np.abs(freq - 1 / A) < 0.03)  # tiny logit scale: near uniform
    peaked = RandomAgent(tasks, range(len(tasks)), RandomConfig(scale_mean=50.0, drift_mean=0.0))
    obs = np.zeros(len(tasks), dtype=np.int64)
    draws = []
    for _ in range(50):
        draws.append(peaked.act(obs))
        peaked.streams.advance()
    draws = np.array(draws)
    # a large scale makes most rows nearly deterministic in a state
    modal = [np.bincount(draws[:, b], minlength=A).max() / len(draws) for b in range(len(tasks))]
    assert np.median(modal) > 0.9


def test_random_logits_drift(tasks):
    agent = RandomAgent(tasks[:2], [0, 1], RandomConfig(drift_mean=0.1))
    before = agent.policy.logits.copy()
    obs = np.array([3, 5])
    for _ in range(20):
        agent.act(obs)
        agent.observe(obs, obs, obs, obs, obs == -1)
    changed = np.abs(agent.policy.logits - before).sum(-1) > 0
    assert changed[0, 3] and changed[1, 5] and changed.sum() == 2


# ----------------------------------------------------------------------------- learners
def test_q_learning_update_bootstraps_only_without_termination():
    task = two_state_task()  # observed ids 4 (start) and 2 (terminal), n_obs 6
    agent = QLearningAgent([task, task], [0, 1], QLearningConfig(alpha=1.0, gamma=0.5))
    agent.Q[:, 2, :] = 100.0
    agent.observe(np.array([4, 4]), np.array([0, 0]), np.array([5.0, 5.0]), np.array([2, 2]),
                  np.array([True, False]))
    assert agent.Q[0, 4, 0] == 5.0
    assert agent.Q[1, 4, 0] == 5.0 + 0.5 * 100.0


def test_model_based_backup_treats_seen_terminals_as_worthless():
    task = two_state_task()
    agent = ModelBasedAgent([task], [0], ModelBasedConfig(gamma=0.5, sweep_every=0))
    agent.values.Q[0, 0, 2, :] = 100.0
    agent.values.V[0, 0, 2] = 100.0
    agent.observe(np.array([4]), np.array([0]), np.array([5.0]), np.array([2]), np.array([True]))
    assert agent.Q[0, 4, 0] == 5.0
    # a self-loop with reward 1: the backup is r + gamma * V(s)
    agent.observe(np.array([4]), np.array([1]), np.array([1.0]), np.array([4]), np.array([False]))
    assert agent.Q[0, 4, 1] == pytest.approx(1.0 + 0.5 * 5.0)
    # a sweep propagates values to every seen (s, a)
    agent.observe(np.array([4]), np.array([1]), np.array([1.0]), np.array([4]), np.array([False]))
    agent.values.sweep(None, agent.model, 200)
    assert agent.Q[0, 4, 0] == pytest.approx(5.0)
    assert agent.Q[0, 4, 1] == pytest.approx(1.0 + 0.5 * 5.0)


def test_unvisited_actions_are_tried_first(tasks):
    agent = QLearningAgent(tasks[:1], [0])
    obs = np.array([int(tasks[0].state_ids[0])])
    tried = []
    for _ in range(A):
        a = agent.act(obs)
        tried.append(int(a[0]))
        agent.observe(obs, a, np.zeros(1), obs, np.zeros(1, bool))
    assert sorted(tried) == list(range(A))


def _scores(tasks, episodes):
    early, late = [], []
    for t, eps in zip(tasks, episodes):
        rnd, opt = reference_returns(t)
        k = max(len(eps) // 5, 1)
        early.append(normalised_score(np.mean(eps[:3]), rnd, opt))
        late.append(normalised_score(np.mean(eps[-k:]), rnd, opt))
    return float(np.mean(early)), float(np.mean(late))


@pytest.mark.parametrize("make", [
    lambda ts: QLearningAgent(ts, [(2, i) for i in range(len(ts))]),
    lambda ts: ModelBasedAgent(ts, [(2, i) for i in range(len(ts))]),
], ids=["q_learning", "model_based"])
def test_learners_improve_over_a_sequence(tasks, make):
    full = [sample_anymdp(S, A, seed=(12, i)) for i in range(16)]
    _, tags, _, episodes = run(make(full), full, [(3, i) for i in range(16)], 4000)
    early, late = _scores(full, episodes)
    assert late > early + 0.25, (early, late)
    assert late > 0.4, (early, late)
    assert np.all(tags == tags[0, 0])


# ----------------------------------------------------------------------------- mixture
@pytest.fixture(scope="module")
def big_batch(tasks):
    B = 3000
    return [tasks[i % len(tasks)] for i in range(B)], [(21, i) for i in range(B)]


def test_mixture_component_frequencies_match_weights(big_batch):
    tasks_b, seeds = big_batch
    mix = BehaviourMix(BehaviourMixConfig(), tasks_b, seeds, S, A)
    p = BehaviourMixConfig().probabilities
    freq = np.bincount(mix.kind, minlength=len(COMPONENTS)) / len(tasks_b)
    tol = 4.5 * np.sqrt(p * (1 - p) / len(tasks_b))
    assert np.all(np.abs(freq - p) < tol), (freq, p)
    assert abs(mix.resamples.mean() - 0.85) < 4.5 * np.sqrt(0.85 * 0.15 / len(tasks_b))
    custom = BehaviourMixConfig(weights={"random": 3.0, "oracle_3": 1.0})
    mix = BehaviourMix(custom, tasks_b, seeds, S, A)
    freq = np.bincount(mix.kind, minlength=len(COMPONENTS)) / len(tasks_b)
    assert set(np.flatnonzero(freq)) == {COMPONENTS.index("random"), COMPONENTS.index("oracle_3")}
    assert abs(freq[0] - 0.75) < 0.04
    assert mix.model is None  # no learner: no model is kept


def test_mixture_tags_say_who_acted(big_batch):
    tasks_b, seeds = big_batch
    B, T = 600, 1500  # the mixed-in oracles need ~S*A/0.1 steps to come in
    cfg = BehaviourMixConfig(resample_sequence_prob=0.0)
    mix = BehaviourMix(cfg, tasks_b[:B], seeds[:B], S, A)
    kind = mix.kind
    acts, tags, obs, _ = run(mix, tasks_b[:B], [(22, i) for i in range(B)], T, on_end=True)
    assert np.array_equal(mix.kind, kind)  # no resampling in this configuration
    allowed = {"random": {6}, "noisy_model_based": {6, 4}, "noisy_q_learning": {6, 5},
               "noisy_oracle_2": {6, 2}, "noisy_oracle_3": {6, 3},
               "oracle_1": {1}, "oracle_2": {2}, "oracle_3": {3}}
    allowed.update({f"model_based_oracle_{i}": {6, i, 4} for i in range(4)})
    for k, name in enumerate(COMPONENTS):
        rows = kind == k
        assert rows.any(), name
        assert set(np.unique(tags[:, rows])) <= allowed[name], name
    # every oracle-tagged action is that oracle's action
    tables = np.stack([[oracle_table(t, g) for g in ORACLE_GAMMAS.values()] for t in tasks_b[:B]])
    steps, rows = np.nonzero(tags <= 3)
    assert np.array_equal(acts[steps, rows], tables[rows, tags[steps, rows], obs[steps, rows]])
    # the mixed-in oracles do act, and so do the learners
    mbo = np.isin(kind, [COMPONENTS.index(f"model_based_oracle_{i}") for i in range(4)])
    assert (tags[:, mbo] == 4).mean() > 0.2 and (tags[:, mbo] <= 3).any()
    # epsilon of the noisy oracles decays: noise early, mostly the oracle late
    noisy = np.isin(kind, [COMPONENTS.index("noisy_oracle_2"), COMPONENTS.index("noisy_oracle_3")])
    assert (tags[:10, noisy] == 6).mean() > 0.9
    assert (tags[-50:, noisy] == 6).mean() < 0.3
    # labels are the reference oracle's actions
    o = obs[-1]
    assert np.array_equal(mix.label_actions(o), tables[np.arange(B), 3, o])


def test_on_episode_end_redraws_with_the_configured_probabilities(big_batch):
    tasks_b, seeds = big_batch
    cfg = BehaviourMixConfig(resample_sequence_prob=0.5, resample_episode_prob=0.3)
    mix = BehaviourMix(cfg, tasks_b, seeds, S, A)
    B = len(tasks_b)
    before, flag = mix.kind, mix.resamples
    assert abs(flag.mean() - 0.5) < 0.05
    rows = np.arange(0, B, 2)
    mix.on_episode_end(rows)
    changed = mix.kind != before
    assert not changed[1::2].any()  # rows without an episode end keep their component
    assert not changed[~flag].any()  # sequences that never resample keep theirs
    p = cfg.probabilities
    expected = 0.3 * (1 - (p ** 2).sum())  # a redraw may pick the same component again
    observed = changed[rows][flag[rows]].mean()
    assert abs(observed - expected) < 4.5 * np.sqrt(expected * (1 - expected) / flag[rows].sum())
    always = BehaviourMix(BehaviourMixConfig(resample_sequence_prob=1.0, resample_episode_prob=1.0,
                                             weights={"oracle_1": 1, "oracle_2": 1}),
                          tasks_b[:400], seeds[:400], S, A)
    first = always.kind
    always.on_episode_end(np.arange(400))
    assert 0.35 < (always.kind != first).mean() < 0.65


@pytest.mark.parametrize("kwargs, match", [
    ({"weights": {"oracle_4": 1.0}}, "oracle_4"),
    ({"weights": {"random": -0.1, "oracle_3": 1.0}}, r"weights\['random'\].*-0.1"),
    ({"weights": {"random": 0.0}}, "positive sum"),
    ({"weights": {"random": float("nan")}}, "random"),
    ({"weights": [("random", 1.0)]}, "mapping"),
    ({"resample_sequence_prob": 1.5}, "resample_sequence_prob.*1.5"),
    ({"resample_episode_prob": -0.2}, "resample_episode_prob.*-0.2"),
    ({"sweep_every": -1}, "sweep_every.*-1"),
    ({"sweep_iters": 0}, "sweep_iters.*0"),
    ({"q_alpha": 0.0}, "q_alpha"),
    ({"c": -1.0}, "c must"),
    ({"random_drift_mean": -1.0}, "random_drift_mean"),
    ({"mix_noise": (1.0, 0.0)}, "mix_noise"),
    ({"mix_oracle_ceiling": (0.0,)}, "mix_oracle_ceiling"),
    ({"noisy_clean_gamma": (0.5, 1.2)}, "noisy_clean_gamma"),
    ({"noisy_gamma": 1.0}, "noisy_gamma"),
    ({"noisy_clean_prob": 2.0}, "noisy_clean_prob"),
    ({"noise_step": -0.1}, "noise_step"),
    ({"eps_step": -1.0}, "eps_step"),
])
def test_invalid_mixture_config_is_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BehaviourMixConfig(**kwargs)


def test_mixture_config_value_semantics():
    cfg = BehaviourMixConfig(weights={"noisy_oracle_3": 1.0}, resample_sequence_prob=0.0)
    again = pickle.loads(pickle.dumps(cfg))
    assert again == cfg and hash(again) == hash(cfg)
    assert dict(BehaviourMixConfig().weights) == dict(DEFAULT_WEIGHTS)
    assert abs(sum(DEFAULT_WEIGHTS.values()) - 1.0) < 1e-12
    with pytest.raises(TypeError):
        cfg.weights["random"] = 1.0  # read-only


def test_mixture_rejects_bad_arguments(tasks):
    with pytest.raises(ValueError, match="BehaviourMixConfig"):
        BehaviourMix({"random": 1.0}, tasks, range(len(tasks)), S, A)
    with pytest.raises(ValueError, match="seeds"):
        BehaviourMix(BehaviourMixConfig(), tasks, [0], S, A)
    with pytest.raises(ValueError, match="n_obs"):
        BehaviourMix(BehaviourMixConfig(), tasks, range(len(tasks)), S - 1, A)
    with pytest.raises(ValueError, match="n_actions"):
        BehaviourMix(BehaviourMixConfig(), tasks, range(len(tasks)), S, A + 1)


def test_schedule_parameters_take_effect(tasks):
    seeds = [(31, i) for i in range(len(tasks))]
    # epsilon 0 from the start: a noisy oracle is the pure oracle; epsilon 1 forever: pure noise
    clean = BehaviourMix(BehaviourMixConfig(weights={"noisy_oracle_3": 1.0}, eps_start=0.0),
                         tasks, seeds, S, A)
    _, tags, _, _ = run(clean, tasks, seeds, 50)
    assert (tags == 3).all()
    noisy = BehaviourMix(BehaviourMixConfig(weights={"noisy_oracle_2": 1.0}, eps_step=0.0),
                         tasks, seeds, S, A)
    _, tags, _, _ = run(noisy, tasks, seeds, 50)
    assert (tags == 6).all()
    # the oracle mixes: no noise and the oracle from the first step (start = ceiling = 1)
    mix = BehaviourMix(BehaviourMixConfig(weights={"model_based_oracle_1": 1.0}, mix_noise=(0.0, 0.0),
                                          mix_noise_floor=(-1.0, -1.0), mix_oracle_start=(1.0, 1.0),
                                          mix_oracle_ceiling=(1.0, 1.0)), tasks, seeds, S, A)
    _, tags, _, _ = run(mix, tasks, seeds, 50)
    assert (tags == 1).all()


def test_oracle_tables_survive_a_full_cache_of_dead_tasks(monkeypatch):
    """Many batches of fresh tasks (a dataset of more fresh tasks than the cache holds): a new task that
    takes a dead task's id must not sit at the dead entry's old place, where the size limit drops it
    before it is read."""
    import dataclasses

    from omnirl.agents import oracle

    oracle.clear_oracle_cache()
    monkeypatch.setattr(oracle, "CACHE_SIZE", 6)
    base = [sample_anymdp(8, 3, seed=s) for s in range(40)]
    try:
        for it in range(30):
            # fresh copies each round: the previous round's die and their ids get reused
            tasks = [dataclasses.replace(base[(it * 4 + k) % 40]) for k in range(4)]
            got = oracle.oracle_tables(tasks, 0.0, 8, also=[0.9])
            want = np.stack([oracle.oracle_table(t, 0.0) for t in tasks])
            np.testing.assert_array_equal(got, want)
    finally:
        oracle.clear_oracle_cache()
