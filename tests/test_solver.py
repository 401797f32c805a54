"""The exact solver against brute force and direct linear algebra."""

import itertools

import numpy as np
import pytest

from omnirl.tasks import sample_anymdp, sample_garnet, solver
from omnirl.tasks.solver import (expected_return, finite_horizon_values, one_hot_policy,
                                 policy_evaluation, policy_iteration, stationary_distribution,
                                 uniform_policy, value_iteration)


def random_mdp(rng, n=3, A=2, terminal=()):
    P = rng.random((n, A, n)) ** 3
    P /= P.sum(-1, keepdims=True)
    P[list(terminal)] = 0.0
    R = rng.standard_normal((n, A, n))
    return P, R


def brute_force_values(P, R, gamma):
    """V* as the best of all A^n deterministic policies, each evaluated by its own linear solve."""
    n, A, _ = P.shape
    best = np.full(n, -np.inf)
    for acts in itertools.product(range(A), repeat=n):
        pi = np.array(acts)
        P_pi = P[np.arange(n), pi]  # (n, n)
        r_pi = (P_pi * R[np.arange(n), pi]).sum(-1)
        V = np.linalg.solve(np.eye(n) - gamma * P_pi, r_pi)
        best = np.maximum(best, V)
    return best


@pytest.mark.parametrize("gamma", [0.0, 0.5, 0.93, 0.994])
@pytest.mark.parametrize("seed", range(4))
def test_optimal_values_match_brute_force(gamma, seed):
    rng = np.random.default_rng(seed)
    P, R = random_mdp(rng, n=4, A=3, terminal=(3,) if seed % 2 else ())
    V_bf = brute_force_values(P, R, gamma)
    Q_pi, act = policy_iteration(P, R, gamma)
    np.testing.assert_allclose(Q_pi.max(-1), V_bf, atol=1e-9, rtol=1e-9)
    Q_vi, iters = value_iteration(P, R, gamma, tol=1e-11)
    np.testing.assert_allclose(Q_vi.max(-1), V_bf, atol=1e-8, rtol=1e-8)
    assert iters >= 1
    # the greedy policy achieves V*
    np.testing.assert_allclose(policy_evaluation(P, R, one_hot_policy(act, 3), gamma), V_bf, atol=1e-9)


def test_policy_evaluation_is_the_linear_solve():
    rng = np.random.default_rng(7)
    P, R = random_mdp(rng, n=5, A=3)
    pi = rng.dirichlet(np.ones(3), size=5)
    gamma = 0.9
    V = policy_evaluation(P, R, pi, gamma)
    P_pi = np.einsum("sa,san->sn", pi, P)
    r_pi = np.einsum("sa,san,san->s", pi, P, R)
    np.testing.assert_allclose(V, np.linalg.solve(np.eye(5) - gamma * P_pi, r_pi), atol=1e-12)
    # and the Bellman expectation equation holds
    np.testing.assert_allclose(V, r_pi + gamma * P_pi @ V, atol=1e-12)


def test_batched_equals_per_task():
    tasks = [sample_anymdp(16, 4, seed=(3, i)) for i in range(3)]
    P = np.stack([t.transition for t in tasks]).astype(np.float64)
    R = np.stack([t.reward for t in tasks]).astype(np.float64)
    Qb, _ = value_iteration(P, R, 0.9)
    Qp, actb = policy_iteration(P, R, 0.9)
    for i, t in enumerate(tasks):
        sol = solver.solve(t, 0.9)
        np.testing.assert_allclose(Qb[i], sol.q, atol=1e-8)
        np.testing.assert_allclose(Qp[i], sol.q, atol=1e-10)
        np.testing.assert_array_equal(actb[i], sol.policy)


def test_stationary_distribution_solves_balance_equations():
    task = sample_anymdp(32, 5, seed=11)
    M = solver.reset_chain(task, uniform_policy(task.n_states, task.n_actions))
    d = stationary_distribution(M, solver.start_distribution(task))
    # repeated squaring keeps ~1e-9 of rounding on this slowly mixing chain (probabilities down to 5e-5)
    np.testing.assert_allclose(d @ M, d, rtol=0, atol=1e-8)
    # the direct solve of d (M - I) = 0, sum d = 1 agrees
    n = task.n_states
    A = np.vstack([(M - np.eye(n)).T, np.ones(n)])
    b = np.concatenate([np.zeros(n), [1.0]])
    d_lin = np.linalg.lstsq(A, b, rcond=None)[0]
    np.testing.assert_allclose(d, d_lin, rtol=1e-4, atol=1e-8)


def test_stationary_distribution_of_a_periodic_chain():
    M = np.array([[0.0, 1.0], [1.0, 0.0]])  # period 2: plain powers never converge
    np.testing.assert_allclose(stationary_distribution(M, np.array([1.0, 0.0])), [0.5, 0.5], atol=1e-12)


def test_expected_return_matches_monte_carlo_and_recursion():
    task = sample_anymdp(16, 3, seed=5)
    pi = uniform_policy(task.n_states, task.n_actions)
    exact = expected_return(task, pi, horizon=20)
    # explicit recursion over the horizon with the raw arrays
    P, R = solver.task_arrays(task)
    V = finite_horizon_values(P, R, pi, 20)
    assert exact == pytest.approx(float(solver.start_distribution(task) @ V))
    # Monte Carlo with plain numpy sampling
    rng = np.random.default_rng(0)
    total = 0.0
    runs = 4000
    for _ in range(runs):
        s = rng.choice(task.start_states, p=task.start_probs)
        for _ in range(20):
            a = rng.integers(task.n_actions)
            s2 = rng.choice(task.n_states, p=P[s, a] / P[s, a].sum())
            total += R[s, a, s2]
            if task.terminal[s2]:
                break
            s = s2
    mc = total / runs
    assert abs(mc - exact) < 0.05 * max(1.0, abs(exact)) + 4 * abs(exact) / np.sqrt(runs)


def test_oracle_beats_random_and_score_normalisation():
    task = sample_anymdp(32, 5, seed=2)
    rnd, opt = solver.reference_returns(task)
    assert opt > rnd
    assert solver.normalised_score(rnd, rnd, opt) == pytest.approx(0.0)
    assert solver.normalised_score(opt, rnd, opt) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="oracle_return"):
        solver.normalised_score(1.0, 2.0, 2.0)


def test_garnet_and_bandit_solve():
    g = sample_garnet(16, 4, seed=0, branching=3)
    assert solver.solve(g, 0.9).v.shape == (16,)
    from omnirl.tasks import sample_bandit
    b = sample_bandit(5, seed=0)
    sol = solver.solve(b, 0.5)
    assert sol.policy[0] == int(np.argmax(b.reward[0, :, 0]))
    assert solver.reference_returns(b)[1] == pytest.approx(float(b.reward.max()), rel=1e-6)


@pytest.mark.parametrize("gamma", [-0.1, 1.0, 1.5, float("nan")])
def test_bad_gamma(gamma):
    P, R = random_mdp(np.random.default_rng(0))
    with pytest.raises(ValueError, match="gamma"):
        value_iteration(P, R, gamma)
    with pytest.raises(ValueError, match="gamma"):
        policy_iteration(P, R, gamma)


from hypothesis import given, settings
from hypothesis import strategies as st


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 4), A=st.integers(2, 3), gamma=st.floats(0.0, 0.99),
       seed=st.integers(0, 2**32 - 1), n_term=st.integers(0, 2))
def test_policy_iteration_is_optimal_on_random_small_mdps(n, A, gamma, seed, n_term):
    rng = np.random.default_rng(seed)
    P, R = random_mdp(rng, n=n, A=A, terminal=range(min(n_term, n - 1)))
    Q, act = policy_iteration(P, R, gamma)
    V_bf = brute_force_values(P, R, gamma)
    np.testing.assert_allclose(Q.max(-1), V_bf, atol=1e-8 * max(1.0, np.abs(V_bf).max()))
    # no policy beats the greedy one anywhere (optimality of the returned policy)
    V_act = policy_evaluation(P, R, one_hot_policy(act, A), gamma)
    np.testing.assert_allclose(V_act, V_bf, atol=1e-8 * max(1.0, np.abs(V_bf).max()))
