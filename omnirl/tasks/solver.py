"""Exact solver for tabular MDPs, vectorised and batched.

Array functions take ``P[..., n, A, n]`` and ``R[..., n, A, n]`` with any number of leading batch
dimensions (tasks padded to a common ``n`` batch naturally: a padded state with an all-zero row is
an absorbing, zero-value, unreachable state). Terminal states have zero rows, so values are
*episodic*: the episode stops when a terminal state is entered.

* ``value_iteration``      Bellman optimality iteration in matrix form over all (s, a) at once.
* ``policy_iteration``     exact optimal values: policy evaluation by linear solves + greedy improvement.
* ``policy_evaluation``    values of any stochastic policy by a direct linear solve.
* ``stationary_distribution`` long-run state distribution of a Markov chain from an initial law.
* ``expected_return``      expected undiscounted (or discounted) return over a finite horizon.

Task-level helpers (``solve``, ``reset_chain``, ``reference_returns``, ...) wrap them for an
``MDPTask``; everything is in hidden-rank order.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from omnirl._validate import check_float, check_int
from omnirl.tasks.task import MDPTask

# ---------------------------------------------------------------------------- array level


def expected_reward(P: np.ndarray, R: np.ndarray) -> np.ndarray:
    """``r[..., s, a] = sum_s' P[s, a, s'] R[s, a, s']``."""
    return (P * R).sum(-1)


def _check_gamma(gamma: float) -> float:
    return check_float("gamma", gamma, min_value=0.0, max_value=1.0, max_inclusive=False)


def bellman_q(P: np.ndarray, r: np.ndarray, V: np.ndarray, gamma: float) -> np.ndarray:
    """``Q[..., s, a] = r[..., s, a] + gamma * sum_s' P[s, a, s'] V[..., s']``."""
    n, A = P.shape[-3], P.shape[-2]
    PV = (P.reshape(*P.shape[:-3], n * A, n) @ V[..., None])[..., 0]  # (..., n*A)
    return r + gamma * PV.reshape(*P.shape[:-3], n, A)


def value_iteration(P: np.ndarray, R: np.ndarray, gamma: float, tol: float = 1e-10,
                    max_iter: int = 1_000_000) -> tuple[np.ndarray, int]:
    """Optimal ``Q[..., n, A]`` by value iteration; returns ``(Q, iterations)``.

    Stops when the sup-norm change of V is below ``tol * (1 - gamma) / gamma`` for every task of the
    batch, which bounds the error of V by ``tol``.
    """
    gamma = _check_gamma(gamma)
    tol = check_float("tol", tol, min_value=0.0, min_inclusive=False)
    max_iter = check_int("max_iter", max_iter, min_value=1)
    P = np.asarray(P, dtype=np.float64)
    r = expected_reward(P, np.asarray(R, dtype=np.float64))
    V = np.zeros(P.shape[:-2])
    stop = tol * (1.0 - gamma) / max(gamma, 1e-300)
    for it in range(1, max_iter + 1):
        Q = bellman_q(P, r, V, gamma)
        V_new = Q.max(-1)
        delta = np.abs(V_new - V).max()
        V = V_new
        if delta <= stop:
            return bellman_q(P, r, V, gamma), it
    raise RuntimeError(f"value_iteration did not converge in max_iter={max_iter} iterations")


def policy_transition(P: np.ndarray, policy: np.ndarray) -> np.ndarray:
    """State-to-state kernel ``P_pi[..., s, s'] = sum_a pi[s, a] P[s, a, s']``; policy ``(..., n, A)``."""
    return (policy[..., None] * P).sum(-2)


def policy_evaluation(P: np.ndarray, R: np.ndarray, policy: np.ndarray, gamma: float) -> np.ndarray:
    """``V[..., n]`` of a stochastic ``policy[..., n, A]`` by solving ``(I - gamma P_pi) V = r_pi``."""
    gamma = _check_gamma(gamma)
    P = np.asarray(P, dtype=np.float64)
    policy = np.asarray(policy, dtype=np.float64)
    r_pi = (policy * expected_reward(P, np.asarray(R, dtype=np.float64))).sum(-1)  # (..., n)
    M = np.eye(P.shape[-1]) - gamma * policy_transition(P, policy)
    return np.linalg.solve(M, r_pi[..., None])[..., 0]


def one_hot_policy(actions: np.ndarray, n_actions: int) -> np.ndarray:
    """Deterministic policy ``(..., n)`` of action ids as probabilities ``(..., n, A)`` (built in
    place: memory grows with ``A``, not ``A ** 2``)."""
    actions = np.asarray(actions)
    out = np.zeros((*actions.shape, n_actions))
    np.put_along_axis(out, actions[..., None], 1.0, axis=-1)
    return out


def uniform_policy(n_states: int, n_actions: int) -> np.ndarray:
    """The uniform random policy ``(n, A)``."""
    return np.full((n_states, n_actions), 1.0 / n_actions)


def greedy_actions(Q: np.ndarray) -> np.ndarray:
    """``argmax_a Q[..., s, a]``, ties broken towards the lowest action id."""
    return np.argmax(Q, axis=-1)


def policy_iteration(P: np.ndarray, R: np.ndarray, gamma: float, actions: np.ndarray | None = None,
                     max_iter: int = 10_000) -> tuple[np.ndarray, np.ndarray]:
    """Exact optimal ``(Q[..., n, A], greedy actions[..., n])`` by policy iteration.

    ``actions`` (``(..., n)``) warm-starts the iteration, e.g. with the solution of a nearby MDP;
    by default it starts from the greedy policy of the immediate reward. The policy only switches
    action where another one is better by more than a rounding margin, so the iteration cannot
    cycle between tied actions.
    """
    P = np.asarray(P, dtype=np.float64)
    return policy_iteration_r(P, expected_reward(P, np.asarray(R, dtype=np.float64)), gamma,
                              actions, max_iter)


def policy_iteration_r(P: np.ndarray, r: np.ndarray, gamma: float, actions: np.ndarray | None = None,
                       max_iter: int = 10_000) -> tuple[np.ndarray, np.ndarray]:
    """``policy_iteration`` from the expected rewards ``r[..., n, A]`` (see ``expected_reward``),
    for callers that solve one MDP at several discounts."""
    gamma = _check_gamma(gamma)
    P = np.asarray(P, dtype=np.float64)
    Q, actions, _ = _policy_iteration(P, r, gamma, actions, max_iter)
    return Q, actions


def _raise_singular(err, flag):
    raise np.linalg.LinAlgError("Singular matrix")


_SOLVE_ERRSTATE = dict(call=_raise_singular, invalid="call", over="ignore",
                       divide="ignore", under="ignore")


try:  # the gufunc behind np.linalg.solve (numpy's own; the public wrapper where it is missing)
    from numpy.linalg import _umath_linalg
except ImportError:  # pragma: no cover
    _umath_linalg = None


def _solve(M: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``np.linalg.solve(M, b)`` for float64 stacks ``M[..., n, n]``, ``b[..., n, k]``: the same
    LAPACK call and error handling, without the wrapper's per-call argument inspection."""
    if _umath_linalg is None:  # pragma: no cover
        return np.linalg.solve(M, b)
    with np.errstate(**_SOLVE_ERRSTATE):
        return _umath_linalg.solve(M, b, signature="dd->d")


_EYE: dict[int, np.ndarray] = {}


def _eye(n: int) -> np.ndarray:
    """A cached, read-only ``np.eye(n)``."""
    eye = _EYE.get(n)
    if eye is None:
        eye = np.eye(n)
        eye.flags.writeable = False
        _EYE[n] = eye
    return eye


def _policy_iteration(P: np.ndarray, r: np.ndarray, gamma: float, actions: np.ndarray | None,
                      max_iter: int, valid_actions: bool = False
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``policy_iteration_r`` after validation (``P`` float64, ``0 <= gamma < 1``); also returns
    ``V = Q.max(-1)``. ``valid_actions`` promises that ``actions`` (if given) are integer action
    ids in ``[0, A)``, e.g. the result of an earlier call."""
    if gamma == 0.0:  # Q* is the immediate reward
        return r.copy(), greedy_actions(r), np.max(r, axis=-1)
    if actions is None:
        actions, valid_actions = greedy_actions(r), True
    else:
        actions = np.asarray(actions)
    if P.ndim == 3 and r.ndim == 2 and r.shape == P.shape[:2] and actions.shape == P.shape[:1]:
        n, A = r.shape
        kind, size = actions.dtype.kind, actions.dtype.itemsize
        if valid_actions or ((kind == "i" or (kind == "u" and size < 8)) and n
                             and 0 <= actions.min() and actions.max() < A):
            return _policy_iteration_flat(P.reshape(n * A, n), r, gamma, actions, max_iter)
    batch, n, A = P.shape[:-3], P.shape[-3], P.shape[-2]
    Pf = P.reshape(-1, n, A, n)  # (K, n, A, n): batch dims flattened for the gathers below
    rf = r.reshape(-1, n, A)
    k_idx, s_idx = np.arange(Pf.shape[0])[:, None], np.arange(n)[None, :]
    eye = _eye(n)
    for _ in range(max_iter):
        # evaluate the deterministic policy: (I - gamma P_pi) V = r_pi
        act = actions.reshape(-1, n)
        P_pi = Pf[k_idx, s_idx, act]  # (K, n, n)
        r_pi = rf[k_idx, s_idx, act]  # (K, n)
        V = _solve(eye - gamma * P_pi, r_pi[..., None])[..., 0].reshape(*batch, n)
        Q = bellman_q(P, r, V, gamma)
        best = np.maximum.reduce(Q, axis=-1)
        if actions.shape == Q.shape[:-1]:  # the gather of take_along_axis, by plain indexing
            Qf = Q.reshape(-1, n, A)
            current = Qf[np.arange(Qf.shape[0])[:, None], s_idx, act].reshape(actions.shape)
        else:
            current = np.take_along_axis(Q, actions[..., None], -1)[..., 0]
        improve = current < best - 1e-12 * np.maximum(1.0, np.abs(best))
        if not improve.any():
            return Q, actions, best
        actions = np.where(improve, greedy_actions(Q), actions)
    raise RuntimeError(f"policy_iteration did not converge in max_iter={max_iter} iterations")


_ROW_START: dict[tuple[int, int], np.ndarray] = {}


def _row_start(n: int, A: int) -> np.ndarray:
    """A cached, read-only ``arange(n) * A``: the flat id of ``(s, 0)`` in an ``(n, A)`` array."""
    row = _ROW_START.get((n, A))
    if row is None:
        row = _ROW_START[(n, A)] = np.arange(0, n * A, A)
        row.flags.writeable = False
    return row


def _policy_iteration_flat(P2: np.ndarray, r: np.ndarray, gamma: float, actions: np.ndarray,
                           max_iter: int, neg_gP2: np.ndarray | None = None
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``_policy_iteration`` of one MDP given as ``P2 = P.reshape(n * A, n)`` (float64), ``r[n, A]``
    and integer ``actions[n]`` in ``[0, A)``, with ``0 < gamma < 1``; ``neg_gP2``, if given, is
    ``P2 * -gamma`` (for callers that solve the same ``P2`` and ``gamma`` repeatedly).

    The values of the batched loop, computed with flat gathers and in-place updates: ``eye - gamma
    P_pi`` as ``(-gamma P2)[pi] + eye`` and ``r + gamma PV`` as ``gamma PV + r`` round the same."""
    n, A = r.shape
    r1 = r.reshape(n * A, 1)
    row = _row_start(n, A)
    eye = _eye(n)
    for _ in range(max_iter):
        # evaluate the deterministic policy: (I - gamma P_pi) V = r_pi
        idx = row + actions  # (n,) flat (s, a) ids
        if neg_gP2 is None:
            M = P2.take(idx, axis=0)  # P_pi
            M *= -gamma
        else:
            M = neg_gP2.take(idx, axis=0)  # -gamma P_pi
        M += eye
        V = _solve(M, r1.take(idx, axis=0))  # (n, 1)
        Q = P2 @ V  # (n * A, 1): bellman_q
        Q *= gamma
        Q = Q.reshape(n, A)
        Q += r
        greedy = Q.argmax(-1)
        best = np.maximum.reduce(Q, axis=-1)
        if not np.count_nonzero(greedy != actions):  # every current action attains the max
            return Q, actions, best
        current = Q.reshape(n * A).take(idx)
        improve = current < best - 1e-12 * np.maximum(1.0, np.abs(best))
        if not np.count_nonzero(improve):
            return Q, actions, best
        actions = np.where(improve, greedy, actions)
    raise RuntimeError(f"policy_iteration did not converge in max_iter={max_iter} iterations")


def stationary_distribution(M: np.ndarray, init: np.ndarray, tol: float = 1e-13,
                            max_squarings: int = 60) -> np.ndarray:
    """Long-run distribution ``lim_t init @ L^t`` of the lazy chain ``L = (I + M) / 2``.

    ``M[..., n, n]`` is row-stochastic (every row must have positive mass), ``init[..., n]`` a distribution. The lazy chain has the same
    stationary distributions as ``M`` and is aperiodic, so the limit exists; for an irreducible chain
    it is *the* stationary distribution, for a reducible one the mixture reached from ``init``.
    Computed by repeated squaring (``2^k`` steps after ``k`` squarings) until it stops changing.
    """
    M = np.asarray(M, dtype=np.float64)
    L = 0.5 * (_eye(M.shape[-1]) + M / M.sum(-1, keepdims=True))
    d = np.asarray(init, dtype=np.float64)
    for _ in range(max_squarings):
        L = L @ L
        L /= np.add.reduce(L, axis=-1, keepdims=True)  # rounding would otherwise compound over 2^k steps
        d_new = (d[..., None, :] @ L)[..., 0, :]
        done = np.maximum.reduce(np.abs(d_new - d), axis=None) <= tol
        d = d_new
        if done:
            break
    return d / d.sum(-1, keepdims=True)


def finite_horizon_values(P: np.ndarray, R: np.ndarray, policy: np.ndarray, horizon: int,
                          gamma: float = 1.0) -> np.ndarray:
    """``V_H[..., n]``: expected (discounted) return of ``policy`` over ``horizon`` steps."""
    horizon = check_int("horizon", horizon, min_value=0)
    gamma = check_float("gamma", gamma, min_value=0.0, max_value=1.0)
    P = np.asarray(P, dtype=np.float64)
    policy = np.asarray(policy, dtype=np.float64)
    r_pi = (policy * expected_reward(P, np.asarray(R, dtype=np.float64))).sum(-1)  # (..., n)
    P_pi = policy_transition(P, policy)  # (..., n, n)
    V = np.zeros_like(r_pi)
    for _ in range(horizon):
        V = r_pi + gamma * (P_pi @ V[..., None])[..., 0]
    return V


# ---------------------------------------------------------------------------- task level


def start_distribution(task: MDPTask) -> np.ndarray:
    """``(n,)`` probability of starting in each hidden rank."""
    d = np.zeros(task.n_states)
    d[task.start_states] = task.start_probs
    return d


def task_arrays(task: MDPTask) -> tuple[np.ndarray, np.ndarray]:
    """``(P, R)`` of the task as float64 arrays ``(n, A, n)``."""
    return task.transition.astype(np.float64), task.reward.astype(np.float64)


@dataclasses.dataclass(frozen=True)
class Solution:
    """Optimal values of a task at a discount ``gamma`` (hidden-rank order)."""

    gamma: float
    """Discount factor the values were computed with."""
    q: np.ndarray
    """``(n, A)`` optimal action values ``Q*``."""
    v: np.ndarray
    """``(n,)`` optimal state values ``V* = max_a Q*``."""
    policy: np.ndarray
    """``(n,)`` greedy (oracle) action of each rank."""


def solve(task: MDPTask, gamma: float) -> Solution:
    """Exact ``Q*``, ``V*`` and the greedy oracle policy of ``task`` at discount ``gamma``."""
    P, R = task_arrays(task)
    Q, actions = policy_iteration(P, R, gamma)
    return Solution(gamma=float(gamma), q=Q, v=Q.max(-1), policy=actions)


def random_values(task: MDPTask, gamma: float) -> np.ndarray:
    """``(n,)`` state values of the uniform random policy at discount ``gamma``."""
    P, R = task_arrays(task)
    return policy_evaluation(P, R, uniform_policy(task.n_states, task.n_actions), gamma)


def reset_chain(task: MDPTask, policy: np.ndarray) -> np.ndarray:
    """``(n, n)`` Markov chain of ``policy`` (``(n, A)`` probabilities) in which every terminal
    state leads back to the start distribution, i.e. the chain of a never-ending episode stream."""
    P, _ = task_arrays(task)
    M = policy_transition(P, np.asarray(policy, dtype=np.float64))
    M[task.terminal] = start_distribution(task)
    return M


def random_stationary_distribution(task: MDPTask) -> np.ndarray:
    """``(n,)`` stationary distribution of the uniform random policy with terminal resets."""
    M = reset_chain(task, uniform_policy(task.n_states, task.n_actions))
    return stationary_distribution(M, start_distribution(task))


def oracle_stationary_distribution(task: MDPTask, gamma: float) -> np.ndarray:
    """``(n,)`` long-run distribution of the greedy oracle at ``gamma``, started from the start law."""
    sol = solve(task, gamma)
    M = reset_chain(task, one_hot_policy(sol.policy, task.n_actions))
    return stationary_distribution(M, start_distribution(task))


def expected_return(task: MDPTask, policy: np.ndarray, horizon: int | None = None,
                    gamma: float = 1.0) -> float:
    """Expected episodic return of ``policy`` (``(n, A)`` probabilities) from the start law, over
    ``horizon`` steps (default: the task's ``max_steps``), undiscounted unless ``gamma < 1``."""
    P, R = task_arrays(task)
    H = task.max_steps if horizon is None else horizon
    V = finite_horizon_values(P, R, policy, H, gamma)
    return float(start_distribution(task) @ V)


def reference_returns(task: MDPTask, gamma: float = 0.994) -> tuple[float, float]:
    """``(random, oracle)`` expected episodic returns: the normalisation points of a score.

    The oracle is the greedy policy of ``Q*`` at ``gamma`` (the reference policy's discount)."""
    sol = solve(task, gamma)
    rnd = expected_return(task, uniform_policy(task.n_states, task.n_actions))
    opt = expected_return(task, one_hot_policy(sol.policy, task.n_actions))
    return rnd, opt


def normalised_score(ret, random_return: float, oracle_return: float):
    """``(R - R_random) / (R_oracle - R_random)``: 0 at random level, 1 at oracle level."""
    span = float(oracle_return) - float(random_return)
    if abs(span) < 1e-12:
        raise ValueError(f"oracle_return={oracle_return} equals random_return={random_return}: "
                         "the score is undefined for this task")
    return (np.asarray(ret, dtype=np.float64) - random_return) / span
