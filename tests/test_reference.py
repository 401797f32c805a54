"""The Bayes-optimal reference learner (omnirl.agents.reference)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from omnirl.agents.reference import (ReferenceConfig, bandit_policy, learning_gain, mdp_policy,
                                     policy_cross_entropy, reference_policy, world_model_reference)
from omnirl.data.pipelines import pipeline
from omnirl.data.schema import STEP_FIELDS, column_specs
from omnirl.data.synthesis import synthesize
from omnirl.tasks.anymdp import sample_anymdp
from omnirl.tasks.solver import solve

EXACT = ReferenceConfig(smoothing=0.0)


def bandit_steps(pulls: list[tuple[int, float]], A: int) -> tuple[np.ndarray, np.ndarray]:
    """``(1, 2 * len(pulls) + 1)`` actions and rewards: each pull then its end marker, then a last
    pull (arm 0, reward 0) whose prediction is the one under test."""
    action = [x for a, _ in pulls for x in (a, A)] + [0]
    reward = [x for _, r in pulls for x in (r, 0.0)] + [0.0]
    return np.array([action]), np.array([reward], dtype=np.float64)


def quad(f, lo: float, hi: float, n: int = 200_001) -> float:
    x = np.linspace(lo, hi, n)
    y = f(x)
    return float(((y[1:] + y[:-1]) * np.diff(x)).sum() / 2)


@pytest.mark.parametrize("m", [0.8, 1.5])
def test_noiseless_two_arms_by_hand(m):
    # arm 0 pulled twice with the same reward: the noiseless branch, its mean is m exactly; arm 1
    # unpulled, mean U(b/2, b). base in [m, min(2m, 2)] with density p(b) * 2/b; P(arm 0 best | b)
    # = (m - b/2) / (b/2). For m = 1.5 the atom of base at 2 (mass e^-2) is inside.
    action, reward = bandit_steps([(0, m), (0, m)], 2)
    p = bandit_policy(action, reward, 2, EXACT)[0, -1]
    hi = min(2 * m, 2.0)
    num = quad(lambda b: np.exp(-b) * 2 / b * (2 * m / b - 1), m, hi)
    den = quad(lambda b: np.exp(-b) * 2 / b, m, hi)
    if hi == 2.0:
        num += math.exp(-2.0) * 1.0 * (m - 1.0)
        den += math.exp(-2.0) * 1.0
    assert p[0] == pytest.approx(num / den, abs=2e-3)
    assert p.sum() == pytest.approx(1.0)


def test_noiseless_both_pulled_is_certain():
    action, reward = bandit_steps([(0, 0.7), (0, 0.7), (1, 0.9)], 2)
    p = bandit_policy(action, reward, 2, EXACT)[0, -1]
    np.testing.assert_allclose(p, [0.0, 1.0], atol=1e-12)


def test_noisy_two_arms_against_prior_monte_carlo():
    # rewards that differ on arm 0: the noisy branch. Brute force: draw (base, noise, means) from
    # the prior's noisy branch, keep each draw with probability proportional to the likelihood of
    # the rewards (rejection sampling), and count how often arm 0 is the best.
    pulls = [(0, 0.62), (0, 0.70), (1, 0.60), (0, 0.66)]
    action, reward = bandit_steps(pulls, 2)
    p = bandit_policy(action, reward, 2, ReferenceConfig(smoothing=0.0, bandit_draws=4096))[0, -1]
    rng = np.random.default_rng(0)
    n = 2_000_000
    base = np.clip(rng.exponential(1.0, n), 0.05, 2.0)
    noise = rng.uniform(0.0, 0.3, n)
    mu = base[:, None] * rng.uniform(0.5, 1.0, (n, 2))
    loglik = np.zeros(n)
    for a, r in pulls:
        sd = noise * mu[:, a]
        loglik += -0.5 * ((r - mu[:, a]) / sd) ** 2 - np.log(sd)
    keep = rng.random(n) < np.exp(loglik - loglik.max())
    assert keep.sum() > 2000
    brute = (mu[keep, 0] > mu[keep, 1]).mean()
    assert p[0] == pytest.approx(brute, abs=0.03)


def random_bandit(B: int, T: int, A: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    action = np.full((B, T), A)
    action[:, 0::2] = rng.integers(0, A, (B, (T + 1) // 2))
    reward = np.where(action < A, rng.uniform(0.3, 1.0, (B, T)), 0.0)
    return action, reward


def play(n_obs: int, B: int, T: int, name: str, seed: int = 0) -> tuple[list, dict[str, np.ndarray]]:
    tasks = [sample_anymdp(n_obs, 5, seed=(seed, i)) for i in range(B)]
    specs = column_specs(n_obs, T)
    out = {f: np.zeros((B, T), dtype=specs[f][0]) for f in STEP_FIELDS}
    synthesize(tasks, [(seed, i) for i in range(B)], pipeline(name), T, out)
    return tasks, out


def perturb_after(data: dict[str, np.ndarray], t: int, A: int, seed: int) -> dict[str, np.ndarray]:
    """A copy with every step from ``t`` on changed, keeping which steps are end markers and
    ``obs[t]`` (what the reference sees at ``t``)."""
    rng = np.random.default_rng(seed)
    out = {k: v.copy() for k, v in data.items()}
    live = out["action"][:, t:] < A
    out["action"][:, t:] = np.where(live, rng.integers(0, A, live.shape), A)
    out["reward"][:, t:] = rng.normal(0.0, 3.0, live.shape)
    out["label"][:, t:] = np.where(live, rng.integers(0, A, live.shape), A)
    if "obs" in out:
        out["obs"][:, t + 1:] = rng.integers(0, out["obs"].max() + 1, out["obs"][:, t + 1:].shape)
    return out


def test_bandit_causality():
    A, t = 3, 41
    action, reward = random_bandit(6, 120, A, 1)
    base = {"action": action, "reward": reward, "label": np.zeros_like(action)}
    changed = perturb_after(base, t, A, 2)
    p1 = bandit_policy(base["action"], base["reward"], A)
    p2 = bandit_policy(changed["action"], changed["reward"], A)
    np.testing.assert_array_equal(p1[:, :t + 1], p2[:, :t + 1])
    assert not np.array_equal(p1[:, t + 2:], p2[:, t + 2:])


def test_mdp_and_world_model_causality():
    _, data = play(8, 3, 300, "uniform_probe")
    data = {k: data[k].astype(np.int64) if k != "reward" else data[k].astype(np.float64) for k in data}
    t = 137
    changed = perturb_after(data, t, 5, 3)
    cfg = ReferenceConfig(samples=4)
    p1 = mdp_policy(data["obs"], data["action"], data["reward"], data["prompt"], 8, 5, cfg)
    p2 = mdp_policy(changed["obs"], changed["action"], changed["reward"], changed["prompt"], 8, 5, cfg)
    np.testing.assert_array_equal(p1[:, :t + 1], p2[:, :t + 1])
    w1 = world_model_reference(data["obs"], data["action"], data["reward"], 8, 5)
    w2 = world_model_reference(changed["obs"], changed["action"], changed["reward"], 8, 5)
    # the world model at step u predicts from the steps before u and (obs[u], action[u]); the
    # next-state loss at t - 1 scores obs[t] (unchanged)
    np.testing.assert_array_equal(w1.reward_pair[:, :t], w2.reward_pair[:, :t])
    np.testing.assert_array_equal(w1.reward_state[:, :t + 1], w2.reward_state[:, :t + 1])
    np.testing.assert_array_equal(w1.next_state_pair[:, :t], w2.next_state_pair[:, :t])
    np.testing.assert_array_equal(w1.next_state_state[:, :t], w2.next_state_state[:, :t])


def test_posterior_sampling_converges_to_the_oracle():
    tasks, data = play(8, 3, 8000, "uniform_probe", seed=5)
    ref = reference_policy(data["obs"], data["action"], data["reward"], data["prompt"], data["label"], 8, 5)
    T = data["obs"].shape[1]
    for b, task in enumerate(tasks):
        q = np.full((8, 5), np.nan)
        q[task.state_ids] = solve(task, 0.994).q  # observed-id order
        o, label = data["obs"][b].astype(np.int64), data["label"][b].astype(np.int64)
        top = np.sort(q[o], 1)
        clear = (label < 5) & (top[:, -1] - top[:, -2] > 0.05 * np.abs(top[:, -1]).clip(min=1.0))
        late = clear & (np.arange(T) >= 3 * T // 4)
        assert late.sum() > 100
        agree = ref.probs[b].argmax(1)[late] == label[late]
        assert agree.mean() > 0.9
    step = data["label"] < 5
    first = ref.loss[:, :T // 4][step[:, :T // 4]].mean()
    last = ref.loss[:, 3 * T // 4:][step[:, 3 * T // 4:]].mean()
    assert last < first - 0.2


def test_world_model_counts_by_hand():
    # S = 3, A = 2; steps: (0,a0)->1, (1,a1)->0, (0,a0)->2, (2,a1)->0, marker at 0
    obs = np.array([[0, 1, 0, 2, 0]])
    action = np.array([[0, 1, 0, 1, 2]])
    target = np.array([[1.0, 2.0, 3.0, 4.0, 0.0]])
    w = world_model_reference(obs, action, target, 3, 2, count_prior=0.5)
    u = -math.log(1 / 3)  # nothing seen: uniform
    # step 2: state 0 seen once (-> 1); it goes to 2: (0 + .5) / (1 + 1.5)
    np.testing.assert_allclose(w.next_state_state[0], [u, u, -math.log(0.5 / 2.5), u, 0.0])
    np.testing.assert_allclose(w.next_state_pair[0], [u, u, -math.log(0.5 / 2.5), u, 0.0])
    # rewards: the pair's mean, else the state's, else the context's, else 0
    np.testing.assert_allclose(w.reward_pair[0], [0.0, 1.0, 1.0, 2.0, 0.0])
    np.testing.assert_allclose(w.reward_state[0], [0.0, 1.0, 1.0, 2.0, 0.0])
    np.testing.assert_allclose(w.reward_pair_error[0], [1.0, 1.0, 4.0, 4.0, 0.0])
    # the state key pools actions: state 0 with action 1 after (0, 0) -> 1
    w = world_model_reference(np.array([[0, 1, 0, 1]]), np.array([[0, 0, 1, 0]]),
                              np.array([[5.0, 1.0, 7.0, 0.0]]), 3, 2, count_prior=0.5)
    assert w.reward_state[0, 2] == 5.0 and w.reward_pair[0, 2] == 5.0  # pair unseen: the state's
    assert w.next_state_state[0, 2] == pytest.approx(-math.log(1.5 / 2.5))
    assert w.next_state_pair[0, 2] == pytest.approx(-math.log(1 / 3))


def test_cross_entropy_and_markers():
    probs = np.array([[[0.25, 0.75], [0.5, 0.5]]])
    np.testing.assert_allclose(policy_cross_entropy(probs, np.array([[1, 2]])), [[-math.log(0.75), 0.0]])
    action, reward = random_bandit(2, 9, 3, 0)
    p = bandit_policy(action, reward, 3)
    np.testing.assert_allclose(p[action == 3], 1 / 3)
    np.testing.assert_allclose(p.sum(-1), 1.0)


def test_learning_gain():
    assert learning_gain(2.0, 1.5, 1.6, 1.1) == pytest.approx(1.0)
    assert learning_gain(1.6, 1.5, 1.6, 1.2) == pytest.approx(0.25)
    assert learning_gain(1.6, 1.7, 1.6, 1.2) == pytest.approx(-0.25)
    assert math.isnan(learning_gain(1.6, 1.5, 1.2, 1.2))  # the reference learns nothing
    assert math.isnan(learning_gain(1.6, 1.5, 1.2, 1.3))
    assert math.isnan(learning_gain(float("nan"), 1.5, 1.6, 1.2))


def test_bad_config_and_inputs():
    with pytest.raises(ValueError, match="samples"):
        ReferenceConfig(samples=0)
    with pytest.raises(ValueError, match="smoothing"):
        ReferenceConfig(smoothing=1.0)
    with pytest.raises(ValueError, match="transition_prior"):
        ReferenceConfig(transition_prior=0.0)
    with pytest.raises(ValueError, match="action"):
        bandit_policy(np.array([[4]]), np.array([[0.0]]), 3)
    with pytest.raises(ValueError, match="obs"):
        mdp_policy(np.array([[9]]), np.array([[0]]), np.array([[0.0]]), np.array([[3]]), 8, 5)
