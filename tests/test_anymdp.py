"""Property tests of the AnyMDP generator: every property the paper names, measured."""

import numpy as np
import pytest

from omnirl.tasks import AnyMDPConfig, MDPTask, sample_anymdp, sample_bandit, sample_garnet, sample_task
from omnirl.tasks.anymdp import validity_report
from omnirl.tasks.solver import random_stationary_distribution, solve
from omnirl.tasks.stats import spearman, task_properties

SIZES = {16: 40, 32: 30, 64: 20, 128: 8}


@pytest.fixture(scope="module")
def tasks():
    return {S: [sample_anymdp(S, 5, seed=(100 + S, i)) for i in range(k)] for S, k in SIZES.items()}


def all_tasks(tasks):
    return [t for ts in tasks.values() for t in ts]


def test_rows_sum_to_one_and_terminal_rows_are_empty(tasks):
    for t in all_tasks(tasks):
        P = t.transition.astype(np.float64)
        np.testing.assert_allclose(P.sum(-1)[~t.terminal], 1.0, atol=1e-6)
        assert not P[t.terminal].any()
        assert (P >= 0).all()


def forward_limit(t: MDPTask, i: int, b_plus: int) -> int:
    """Highest rank the band of ``i`` may reach: ``i + max(2, b_plus) - 2`` or, if further, the rank
    holding the second non-terminal state above ``i`` (the top rank when there is none)."""
    above = [j for j in range(i + 1, t.n_states) if not t.terminal[j]]
    need = above[1] if len(above) >= 2 else t.n_states - 1
    return max(min(i + max(2, b_plus) - 2, t.n_states - 1), need)


def test_band_is_respected_in_hidden_order(tasks):
    for t in all_tasks(tasks):
        n = t.n_states
        b_minus, b_plus = n // 2 + 1, n // 4 + 1
        reach = t.transition.sum(1) > 0  # (n, n) state-level support
        for i in np.flatnonzero(~t.terminal):
            js = np.flatnonzero(reach[i])
            assert js.min() >= i - b_minus, (t, i, js)
            assert js.min() <= max(i - 2, 0), (t, i, js)  # at least two ranks back
            assert js.max() <= forward_limit(t, i, b_plus), (t, i, js)
            # the band is contiguous and always reaches one rank up and one rank down (if any)
            assert np.array_equal(js, np.arange(js.min(), js.max() + 1)) or i == n - 1
            assert js.max() > i or i == n - 1
            assert js.min() < i or i == 0


def test_actions_split_the_band_differently(tasks):
    tv = []
    for t in all_tasks(tasks):
        P = t.transition.astype(np.float64)[~t.terminal]  # (m, A, n)
        mean_rank = (P * np.arange(t.n_states)).sum(-1)  # (m, A)
        assert (mean_rank.std(1) > 0).mean() > 0.9  # actions lead to different places
        pair = 0.5 * np.abs(P[:, :, None, :] - P[:, None, :, :]).sum(-1)  # (m, A, A)
        tv.append(pair.mean())
    assert np.mean(tv) > 0.3  # mass of different actions is concentrated in different places


def reachable_from(M: np.ndarray, sources) -> np.ndarray:
    seen = np.zeros(len(M), bool)
    stack = list(sources)
    seen[stack] = True
    while stack:
        s = stack.pop()
        for j in np.flatnonzero(M[s] > 0):
            if not seen[j]:
                seen[j] = True
                stack.append(j)
    return seen


def test_ergodic_with_terminal_resets(tasks):
    for t in all_tasks(tasks):
        M = t.transition.astype(np.float64).mean(1)
        M[t.terminal] = 0.0
        M[np.ix_(t.terminal, t.start_states)] = 1.0
        assert reachable_from(M, t.start_states).all(), t  # every state is reachable
        back = reachable_from(M.T, t.start_states)  # every state leads back to a start state
        assert back.all(), t
        sd = random_stationary_distribution(t)
        assert (sd > 0).all() and sd.sum() == pytest.approx(1.0)


def test_stationary_distribution_decays_with_rank(tasks):
    for S, ts in tasks.items():
        ratios = []
        for t in ts:
            sd = random_stationary_distribution(t)
            q = t.n_states // 4
            ratios.append(sd[:q].sum() / sd[-q:].sum())
        ratios = np.array(ratios)
        assert np.median(ratios) > 10, (S, np.median(ratios))  # far more mass low than high
        assert (ratios > 2).mean() >= 0.9, (S, ratios)
    # and the decay steepens with size: the top quarter of S=128 is almost never visited
    top = [random_stationary_distribution(t)[-32:].sum() for t in tasks[128]]
    assert np.median(top) < 0.01


def test_value_ascends_with_rank(tasks):
    for S, ts in tasks.items():
        corr = []
        for t in ts:
            v = solve(t, 0.994).v
            nonterm = np.flatnonzero(~t.terminal)
            corr.append(spearman(nonterm, v[nonterm]))
        assert np.median(corr) > 0.7, (S, corr)
        assert (np.array(corr) > 0).mean() >= 0.9, (S, corr)


def test_pitfalls_below_everything_and_top_above_start(tasks):
    n_pits = 0
    for t in all_tasks(tasks):
        props = task_properties(t)
        assert props["pit_below"], t
        assert props["top_above_start"], t
        n_pits += len(t.pitfalls)
    assert n_pits > 0
    goals = [t.goal is not None for t in all_tasks(tasks)]
    assert 0.1 < np.mean(goals) < 0.6  # the goal appears in ~30% of tasks


def test_repair_puts_pitfalls_below_every_state_and_the_top_above_the_start():
    from omnirl.tasks.anymdp import (_repair_terminal_rewards, _sample_reward_parts, _sample_starts,
                                     _sample_terminals, _sample_transition)
    from omnirl.tasks.solver import policy_iteration
    cfg = AnyMDPConfig()
    rng = np.random.default_rng(3)
    repaired = with_pits = 0
    for _ in range(60):
        n = 16
        starts, _probs = _sample_starts(rng, n, cfg)
        terminal, goal = _sample_terminals(rng, n, starts, cfg)
        P = _sample_transition(rng, n, 5, terminal, cfg)
        raw, _noise = _sample_reward_parts(rng, n, 5, terminal, goal)
        r_term = _repair_terminal_rewards(rng, P, raw, terminal, goal, starts, cfg)
        if r_term is None:
            continue
        repaired += 1
        V = policy_iteration(P, raw + r_term[None, None, :], cfg.repair_gamma)[0].max(-1)
        nonterm = np.flatnonzero(~terminal)
        pits = terminal.copy()
        if goal is not None:
            pits[goal] = False
        with_pits += bool(pits.any())
        # every terminal reward (and 0 for the others) lies a margin below every non-terminal value
        assert r_term.min() <= V[nonterm].min() - cfg.pit_margin + 1e-6
        top = n - 2 if goal is not None else n - 1
        assert V[top] >= V[starts].max() + 2.0 - 1e-6
    assert repaired >= 20 and with_pits >= 5


def test_accepted_tasks_pass_the_validity_checks(tasks):
    cfg = AnyMDPConfig()
    for t in all_tasks(tasks):
        rep = validity_report(t.transition.astype(np.float64), t.reward.astype(np.float64),
                              t.terminal, t.start_states, t.start_probs, t.max_steps)
        assert rep["row_sum_error"] < 1e-6 and rep["ergodic"] == 1.0
        assert rep["value_gap"] >= cfg.min_value_gap
        assert rep["oracle_entropy"] > cfg.min_oracle_entropy
        assert rep["oracle_gini"] > cfg.min_oracle_gini


def test_rejection_happens_and_is_reported():
    stats = {}
    sample_anymdp(16, 5, seed=0, stats=stats)
    assert stats["attempts"] >= 1
    # an impossible threshold is rejected on every draw and fails loudly
    with pytest.raises(RuntimeError, match="max_attempts=3"):
        sample_anymdp(16, 5, seed=0, config=AnyMDPConfig(min_value_gap=1e9, max_attempts=3))


def test_observed_ids_do_not_leak_the_rank():
    corr = []
    for i in range(60):
        t = sample_anymdp(32, 5, seed=(7, i))
        assert sorted(t.state_ids) == list(range(32))
        corr.append(spearman(np.arange(32), t.state_ids))
    assert abs(np.mean(corr)) < 0.1
    # the observed id of the start region is spread over the whole id range
    ids = [sample_anymdp(32, 5, seed=(8, i)).state_ids[0] for i in range(60)]
    assert np.std(ids) > 6


def test_min_states_samples_the_active_size():
    ns = [sample_anymdp(64, 5, seed=(9, i), min_states=16).n_states for i in range(40)]
    assert min(ns) >= 16 and max(ns) <= 64 and np.std(ns) > 5
    t = sample_anymdp(64, 5, seed=(9, 0), min_states=16)
    assert t.n_obs == 64 and len(set(t.state_ids)) == t.n_states and t.state_ids.max() < 64


def test_determinism_and_no_global_rng():
    np.random.seed(1)
    state = np.random.get_state()[1].copy()
    a = sample_anymdp(32, 5, seed=(4, 2), min_states=8)
    assert np.array_equal(np.random.get_state()[1], state)  # global RNG neither read nor changed
    np.random.seed(999)
    b = sample_anymdp(32, 5, seed=(4, 2), min_states=8)
    assert a == b and a.content_hash() == b.content_hash()
    for f in ("transition", "reward", "reward_noise"):
        assert getattr(a, f).tobytes() == getattr(b, f).tobytes()
    assert sample_anymdp(32, 5, seed=(4, 3)) != a


def test_task_is_immutable():
    t = sample_anymdp(16, 5, seed=0)
    with pytest.raises(ValueError):
        t.transition[0, 0, 0] = 1.0
    with pytest.raises(AttributeError):
        t.max_steps = 3
    with pytest.raises(TypeError):
        t.params["x"] = 1


def test_bandit():
    t = sample_task("anymdp", 1, 4, seed=3)
    assert t.generator == "bandit" and t.n_states == 1 and t.max_steps == 1
    assert t.transition.shape == (1, 4, 1) and (t.transition == 1).all()
    assert t.reward.std() > 0.01
    assert t == sample_bandit(4, seed=3)


def test_garnet():
    t = sample_garnet(32, 4, seed=1, branching=3, reward_sigma=0.5)
    nnz = (t.transition > 0).sum(-1)
    assert (nnz == 3).all()
    np.testing.assert_allclose(t.transition.sum(-1), 1.0, atol=1e-6)
    assert not t.terminal.any() and list(t.start_states) == [0]
    assert 0.3 < t.reward.std() < 0.7
    assert t == sample_task("garnet", 32, 4, seed=1, branching=3, reward_sigma=0.5)


@pytest.mark.parametrize("kwargs, name", [
    (dict(n_states=4, n_actions=5), "n_states"),
    (dict(n_states=0, n_actions=5), "n_states"),
    (dict(n_states=7, n_actions=5), "n_states"),
    (dict(n_states=16.0, n_actions=5), "n_states"),
    (dict(n_states="16", n_actions=5), "n_states"),
    (dict(n_states=True, n_actions=5), "n_states"),
    (dict(n_states=16, n_actions=1), "n_actions"),
    (dict(n_states=16, n_actions=2.5), "n_actions"),
    (dict(n_states=16, n_actions=5, seed=-1), "seed"),
    (dict(n_states=16, n_actions=5, seed=(1, -2)), "seed"),
    (dict(n_states=16, n_actions=5, seed=1.5), "seed"),
    (dict(n_states=16, n_actions=5, min_states=32), "min_states"),
    (dict(n_states=16, n_actions=5, min_states=4), "min_states"),
])
def test_bad_input_names_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        sample_anymdp(**kwargs)
    with pytest.raises(ValueError, match=name):
        sample_task("anymdp", **kwargs)


def test_bad_generator_and_params():
    with pytest.raises(ValueError, match="generator"):
        sample_task("gridworld", 16, 5)
    with pytest.raises(ValueError, match="unexpected_param"):
        sample_task("anymdp", 16, 5, unexpected_param=1)
    with pytest.raises(ValueError, match="branching"):
        sample_garnet(16, 5, branching=0)
    with pytest.raises(ValueError, match="branching"):
        sample_garnet(16, 5, branching=17)
    with pytest.raises(ValueError, match="goal_prob"):
        AnyMDPConfig(goal_prob=1.5)
    with pytest.raises(ValueError, match="n_states"):
        sample_task("bandit", 16, 5)


# Bit-identical tasks on any machine: a fixed seed must keep giving the same bytes. A change of
# these hashes is a change of the generator, and needs a new GENERATOR_VERSION.
GOLDEN = {
    ("anymdp", 16, 5, (0,)): "b02ed620e6c4d23db83073162621279fdf62868cde53ec5e558e065f1b72309a",
    ("anymdp", 64, 5, (3, 7)): "dfb4ed23c3e3316f5e2820946366776824fb0637b63154e1689045f43829cb59",
    ("garnet", 16, 4, (1,)): "db85debd16ff524eb6ca99948b8480e42bf1761e7349813b07f6c919e66ddefa",
}


@pytest.mark.parametrize("key", list(GOLDEN))
def test_golden_task_hashes(key):
    gen, S, A, seed = key
    assert sample_task(gen, S, A, seed=seed).content_hash() == GOLDEN[key]


# The same, over more seeds: the first 16 hex digits of the content hash of task ``i`` sampled with
# seed ``(2024, S, i)``. Any change to how a task is computed that moves a single bit of one of them
# (a reordered sum, another linear solver, one random draw more or less) fails here.
SEED_HASHES = {
    8: (
        "e81b04c6714fa9db", "cc0bde0e73af6d4c", "ffa33d7c1933dad0", "58e0c426a489cd4f", "4971996534af4956",
        "34d559c1c1694f36", "fea72736540e953a", "ea5cf887550c68c8", "ab53cd93c3dad311", "b70344472b259743",
        "6ae0873387270194", "fe74e1b8203c1737", "e769835a64ab88cd", "1d34ba7c9d822b84", "b9fe4f2199aef9dc",
        "54ea24f661690c48", "74319055a5d0e8a3", "8f455934b309b04b", "7b256029181f2d5f", "f3f1f8cb7fa8e076",
        "be44d10ba298c8dc", "1fab02edc83842a5", "30c131d3bdc5d582", "7dac4f6ba05a13cb", "37d57a74acdaae7a",
        "5cfd8b6eedd4f764", "6b4e99e3305c356c", "2467e9f76cfb692c", "df6826cecd270484", "539d073d51ee65c4",
        "9d7c6c955a1e7321", "1068a667cbbca025", "8c8bac2762fe6f0e", "37fda3af2fb48b12", "e7d44cadd0ae4691",
        "cd7012b2be9bad25", "9bbb11e529d2360f", "34bacde9a72a2a5c", "7cb873e8ab1a5079", "d09cce1a621046d6",
    ),
    16: (
        "bf67ce2960fb6e35", "d775a244d17b8691", "6737119ef35276a9", "6450854a440d04e4", "1e5192fc6be5a1a3",
        "6479542acecc2034", "11953811d2b689a6", "d9839c6ac99bb65c", "f6336657e3ecf696", "61c580dc6964757d",
    ),
}


@pytest.mark.parametrize("S", list(SEED_HASHES))
def test_tasks_are_bit_identical_over_many_seeds(S):
    got = tuple(sample_anymdp(S, 5, seed=(2024, S, i)).content_hash()[:16]
                for i in range(len(SEED_HASHES[S])))
    changed = [i for i, (g, want) in enumerate(zip(got, SEED_HASHES[S])) if g != want]
    assert not changed, f"tasks changed at S={S}, seeds (2024, {S}, i) for i in {changed}"


@pytest.mark.slow
def test_properties_hold_over_many_tasks_with_random_sizes():
    pit_below = []
    for i in range(150):
        t = sample_anymdp(128, 5, seed=(55, i), min_states=16)
        props = task_properties(t)
        assert props["row_sum_error"] < 1e-6
        pit_below.append(props["pit_below"])
        assert props["top_above_start"]
        assert props["sd_min"] > 0
    # the repair bounds each pitfall's terminal reward; the shaping terms of the reward for entering
    # it can lift that reward above the lowest value in a few tasks
    assert np.mean(pit_below) >= 0.95


def test_distribution_statistics_by_hand():
    from omnirl.tasks.stats import DISTRIBUTION_STATISTICS, distribution_statistics
    from tests.helpers import small_task
    # rank 0 (start) --a0, +1--> rank 1 --a0, -1--> pitfall rank 2; a1 leads back to rank 0 (reward 0)
    P = np.zeros((3, 2, 3))
    P[0, 0, 1] = P[0, 1, 0] = P[1, 0, 2] = P[1, 1, 0] = 1.0
    R = np.zeros_like(P)
    R[0, 0, 1], R[1, 0, 2] = 1.0, -1.0
    t = small_task(P, R, terminal=np.array([False, False, True]), max_steps=200)
    st = distribution_statistics(t)
    assert set(st) == set(DISTRIBUTION_STATISTICS)
    # random walk with resets: pi = (4, 2, 1) / 7
    assert st["sd_ratio"] == pytest.approx(4.0)
    assert st["sd_slope"] == pytest.approx(-3 * np.log(2))  # halves per rank, x = rank / 3
    assert st["terminal_share"] == pytest.approx(1 / 3)
    assert st["steps_between_resets"] == pytest.approx(7.0)
    # E0 = 1 + E0/2 + E1/2, E1 = 1 + E0/2: 6 steps; the oracle cycles 0 -> 1 -> 0 until truncated
    assert st["episode_length_random"] == pytest.approx(6.0)
    assert st["episode_length_oracle"] == pytest.approx(200.0)
    assert st["oracle_entropy"] == pytest.approx(np.log(2) / np.log(3))
    assert st["value_rank_spearman"] == pytest.approx(-1.0)  # V1 = gamma V0 < V0
    assert (st["reward_min"], st["reward_max"]) == (-1.0, 1.0)
    g = 2.0 ** (-1 / 3)
    v_opt0 = 1 / (1 - g * g)
    # random: V0 = (1 + g V1) / 2 + g V0 / 2, V1 = -1/2 + g V0 / 2
    v_rnd0 = np.linalg.solve([[1 - g / 2, -g / 2], [-g / 2, 1]], [0.5, -0.5])[0]
    assert st["value_gap"] == pytest.approx((v_opt0 - v_rnd0) * (1 - g) * 200)
    # no terminal state: resets never happen
    P2 = np.zeros((2, 2, 2))
    P2[:, :, 0] = P2[:, :, 1] = 0.5
    assert distribution_statistics(small_task(P2))["steps_between_resets"] == float("inf")
