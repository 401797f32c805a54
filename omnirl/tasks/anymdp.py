"""The AnyMDP task sampler (paper Section 3.1 and Appendix B.1), vectorised.

A task is built over a hidden ordering of ``n`` states (ranks ``0 .. n-1``):

1. **Start and terminal states.** Start states are drawn among the lowest ``start_range`` ranks.
   Each other rank becomes a *pitfall* with a per-task rate ``max(U(-0.2, 0.4), 0)``; with
   probability ``goal_prob`` the top rank is a terminal *goal*.
2. **Banded transition kernel.** From rank ``i`` the state-level kernel reaches the ranks
   ``[i - back_i, i + fwd_i]``: the backward reach is uniform in ``[2, band_minus]`` (default
   ``n // 2 + 1``), the forward reach uniform in ``[0, band_plus - 2]`` (default ``band_plus =
   n // 4 + 1``), and the forward end is extended until the band holds two non-terminal ranks above
   ``i`` (to the top rank when fewer exist), so no state is isolated. Band weights are
   ``clip(N(0,1), 0.1, 1)`` (self-loops halved; the top rank has none). The band reaches several
   times further back than forward, so under a random policy the chain drifts down: its stationary
   distribution (SD) decays at least exponentially with rank (Theorem 1), and blind exploration
   rarely reaches the top.
3. **Actions split the band.** Each action has a centre in the band and the state's width
   ``sigma ~ clip(Exp(1), 0.2, 1.6)``; the band's mass at rank ``j`` is shared among actions in
   proportion to ``exp(-(centre_a - j)^2 / sigma^2)`` (all to the nearest action where every weight
   is below 1e-10), so each action concentrates around its own centre.
4. **Composite reward.** ``R[i, a, j] = phi(i) - phi(j) + rs(j) + c(i, a) + r_step + r_term(j)``:
   a random low-order Fourier potential ``phi`` (shaping; zero in about three tasks of four), a
   non-decreasing state-wise reward ``rs``, a sparse random state-action cost ``c``, a per-step
   reward, and terminal rewards ``r_term`` that are repaired (at most ``max_repairs`` rounds, all
   pitfalls lowered together) until every pitfall's terminal reward lies ``pit_margin`` below every
   non-terminal value (a task without pitfalls passes only when every non-terminal value reaches
   ``pit_margin``) and the rank below the goal (the top rank without one) is worth more than the
   start states.
5. **Validity checks, with resampling on failure**: rows of ``P`` sum to 1 for non-terminal states;
   every state is reachable from the start and leads back to it (ergodic with terminal resets); the
   oracle beats random play at every start state by ``min_value_gap`` in average reward over an
   episode; and the oracle's long-run state distribution is not degenerate (normalised entropy
   ``> min_oracle_entropy``, Gini impurity ``> min_oracle_gini``).

Observed ids are a random injective map of the ranks into ``[0, S)``; ``min_states`` samples the
number of active states ``n`` in ``[min_states, S]``. All randomness comes from one PCG64 stream
per task (``seed``), so a task is bit-identical on any machine.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from omnirl._validate import check_float, check_int
from omnirl.tasks.rng import make_rng
from omnirl.tasks.solver import (_eye, _policy_iteration, _policy_iteration_flat, _solve, bellman_q,
                                 expected_reward, policy_transition, stationary_distribution,
                                 uniform_policy)
from omnirl.tasks.task import MDPTask

GENERATOR_VERSION = "2"


@dataclasses.dataclass(frozen=True)
class AnyMDPConfig:
    """Parameters of the AnyMDP sampler (defaults follow the reference generator, xenoverse 0.1.14)."""

    start_range: int = 3
    """Start states are drawn among the lowest ``start_range`` ranks."""
    pitfall_rate_low: float = -0.2
    """Pitfall rate is ``max(U(pitfall_rate_low, pitfall_rate_high), 0)`` per task."""
    pitfall_rate_high: float = 0.4
    """Upper end of the pitfall-rate draw (at most 40% of states are pitfalls)."""
    goal_prob: float = 0.3
    """Probability that the top rank is a terminal goal."""
    band_plus: int | None = None
    """The band's drawn forward reach is uniform in ``[0, max(2, band_plus) - 2]`` (then extended to
    two non-terminal ranks); ``None`` means ``n // 4 + 1``."""
    band_minus: int | None = None
    """Largest backward reach of the band (uniform in ``[2, max(2, band_minus)]``); ``None`` means
    ``n // 2 + 1``."""
    action_width_min: float = 0.2
    """Lower clip of the per-state action width ``sigma ~ Exp(1)``."""
    action_width_max: float = 1.6
    """Upper clip of the per-state action width."""
    repair_gamma: float = 0.99
    """Discount of the values used to repair terminal rewards."""
    pit_margin: float = 1.0
    """Every pitfall's terminal reward ends up below every non-terminal value by this much."""
    max_repairs: int = 4
    """Terminal-reward repair rounds before the draw is rejected (values are checked
    ``max_repairs + 1`` times)."""
    min_value_gap: float = 2.0
    """Oracle minus random average reward over an episode, required at every start state."""
    min_oracle_entropy: float = 0.35
    """Minimum normalised entropy of the oracle's long-run state distribution."""
    min_oracle_gini: float = 0.70
    """Minimum Gini impurity of the oracle's long-run state distribution."""
    max_attempts: int = 10_000
    """Give up (``RuntimeError``) after this many rejected draws."""

    def __post_init__(self) -> None:
        check_int("start_range", self.start_range, min_value=1)
        check_float("pitfall_rate_low", self.pitfall_rate_low, max_value=1.0)
        check_float("pitfall_rate_high", self.pitfall_rate_high, min_value=self.pitfall_rate_low,
                    max_value=0.9)
        check_float("goal_prob", self.goal_prob, min_value=0.0, max_value=1.0)
        if self.band_plus is not None:
            check_int("band_plus", self.band_plus, min_value=1)
        if self.band_minus is not None:
            check_int("band_minus", self.band_minus, min_value=1)
        check_float("action_width_min", self.action_width_min, min_value=0.0, min_inclusive=False)
        check_float("action_width_max", self.action_width_max, min_value=self.action_width_min)
        check_float("repair_gamma", self.repair_gamma, min_value=0.0, max_value=1.0, max_inclusive=False)
        check_float("pit_margin", self.pit_margin, min_value=0.0)
        check_int("max_repairs", self.max_repairs, min_value=0)
        check_float("min_value_gap", self.min_value_gap)
        check_float("min_oracle_entropy", self.min_oracle_entropy, min_value=0.0, max_value=1.0)
        check_float("min_oracle_gini", self.min_oracle_gini, min_value=0.0, max_value=1.0)
        check_int("max_attempts", self.max_attempts, min_value=1)


def check_sizes(n_states: Any, n_actions: Any, min_states: Any = None,
                allow_bandit: bool = True) -> tuple[int, int, int | None]:
    """Validate ``(S, A, min_states)``: ``S >= 8`` (or ``S == 1``, the bandit), ``A >= 2``,
    ``8 <= min_states <= S``."""
    S = check_int("n_states", n_states, min_value=1)
    if S < 8 and not (allow_bandit and S == 1):
        raise ValueError(f"n_states must be >= 8{' or 1 (bandit)' if allow_bandit else ''}, got {S}")
    A = check_int("n_actions", n_actions, min_value=2)
    if min_states is not None:
        min_states = check_int("min_states", min_states, min_value=8)
        if min_states > S:
            raise ValueError(f"min_states must be <= n_states={S}, got {min_states}")
    return S, A, min_states


def sample_max_steps(rng: np.random.Generator, S: int) -> int:
    """Episode limit ``U(max(4S, 100), max(min(8S, 500), lower + 1))``, rounded."""
    lower = max(4.0 * S, 100.0)
    upper = max(min(8.0 * S, 500.0), lower + 1.0)
    return int(round(rng.uniform(lower, upper)))


def sample_active_states(rng: np.random.Generator, S: int, min_states: int | None) -> int:
    """Number of active states ``n``: ``S``, or uniform in ``[min_states, S]``."""
    return S if min_states is None else int(rng.integers(min_states, S + 1))


# ---------------------------------------------------------------------------- pieces


def _sample_starts(rng, n: int, cfg: AnyMDPConfig) -> tuple[np.ndarray, np.ndarray]:
    k = min(cfg.start_range, n)
    while True:
        w = np.maximum(rng.standard_normal(k), 0.0)
        if w.sum() > 1e-10:
            break
    starts = (w > 1e-10).nonzero()[0]
    w = w[starts]
    return starts, w / w.sum()


def _sample_terminals(rng, n: int, starts: np.ndarray, cfg: AnyMDPConfig) -> tuple[np.ndarray, int | None]:
    rate = max(rng.uniform(cfg.pitfall_rate_low, cfg.pitfall_rate_high), 0.0)
    while True:
        terminal = rng.random(n) < rate
        if np.count_nonzero(terminal) < n * rate + 1:
            break
    terminal[starts] = False
    goal = n - 1 if rng.random() < cfg.goal_prob else None
    terminal[n - 1] = goal is not None
    return terminal, goal


def _sample_band(rng, n: int, terminal: np.ndarray, cfg: AnyMDPConfig) -> tuple[np.ndarray, np.ndarray]:
    """Band limits ``lo, hi`` (inclusive) per rank.

    The backward reach is uniform in ``[2, max(2, band_minus)]`` (clipped at rank 0), the forward
    reach uniform in ``[0, max(2, band_plus) - 2]``; the forward end is then extended until the band
    holds two non-terminal ranks above ``i``, or to the top rank when fewer exist."""
    b_plus = max(2, cfg.band_plus if cfg.band_plus is not None else n // 4 + 1)
    b_minus = max(2, cfg.band_minus if cfg.band_minus is not None else n // 2 + 1)
    from_min, from_max, to_min, to_max = _band_limits(n, b_plus, b_minus)
    lo = rng.integers(from_min, from_max)
    end = rng.integers(to_min, to_max)  # exclusive end of the band, at most n - 1
    count = np.cumsum(~terminal)  # non-terminal ranks <= j
    second = np.searchsorted(count, count + 2, side="left")  # rank of the 2nd one above i (n: none)
    end = np.maximum(end, np.minimum(second + 1, n))
    return lo, end - 1


_BAND_LIMITS: dict[tuple[int, int, int], tuple[np.ndarray, ...]] = {}


def _band_limits(n: int, b_plus: int, b_minus: int) -> tuple[np.ndarray, ...]:
    """Read-only ``(from_min, from_max, to_min, to_max)`` of the band draws (cached per size):
    ``lo`` is drawn in ``[from_min, from_max)``, the band's exclusive end in ``[to_min, to_max)``."""
    key = (n, b_plus, b_minus)
    limits = _BAND_LIMITS.get(key)
    if limits is None:
        ranks = np.arange(n)
        from_min = np.maximum(ranks - b_minus, 0)
        from_max = np.maximum(ranks - 1, from_min + 1)  # exclusive
        to_max = np.minimum(n, ranks + b_plus)
        to_min = np.minimum(ranks + 1, to_max - 1)
        limits = (from_min, from_max, to_min, to_max)
        for a in limits:
            a.flags.writeable = False
        _BAND_LIMITS[key] = limits
    return limits


def _sample_transition(rng, n: int, A: int, terminal: np.ndarray, cfg: AnyMDPConfig) -> np.ndarray:
    lo, hi = _sample_band(rng, n, terminal, cfg)
    ranks = _ranks(n)
    # (terminal rows need no mask: they are emptied below)
    band = (ranks >= lo[:, None]) & (ranks <= hi[:, None])
    w = rng.standard_normal((n, n))
    np.minimum(np.maximum(w, 0.1, out=w), 1.0, out=w)  # clip to [0.1, 1]
    w.reshape(-1)[::n + 1] *= 0.5  # the diagonal: self-loops halved
    w[n - 1, n - 1] = 0.0
    w = np.where(band, w, 0.0)
    # action centres and widths: each action's mass concentrates around its own centre
    centre = _uniform(rng, lo[:, None] - 1.0, hi[:, None] + 1.0, (n, A))  # (n, A)
    sigma = rng.exponential(1.0, n)
    np.minimum(np.maximum(sigma, cfg.action_width_min, out=sigma), cfg.action_width_max, out=sigma)
    logit = centre[:, :, None] - ranks  # (n, A, n): -((centre - rank) / sigma) ** 2
    logit /= sigma[:, None, None]
    np.square(logit, out=logit)
    np.negative(logit, out=logit)
    weight = np.exp(logit)  # (n, A, n)
    # where every action is far from a rank (total weight < 1e-10), the nearest one takes it
    total = weight.sum(1, keepdims=True)  # (n, 1, n)
    far = total < 1e-10
    if far.any():
        nearest = _ranks(A)[:, None] == logit.argmax(1)[:, None, :]
        weight = np.where(far & nearest, 1.0, weight)
        total = weight.sum(1, keepdims=True)
    P = weight  # each rank's band mass shared among actions: (n, A, n)
    P /= total
    P *= w[:, None, :]
    P[terminal] = 0.0
    # an action whose weight underflows everywhere keeps an empty row: the row-sum check rejects it
    total = P.sum(-1, keepdims=True)
    np.divide(P, total, out=P, where=total > 0)
    return P


_RANKS: dict[int, np.ndarray] = {}


def _ranks(n: int) -> np.ndarray:
    """A cached, read-only ``np.arange(n)``."""
    ranks = _RANKS.get(n)
    if ranks is None:
        ranks = _RANKS[n] = np.arange(n)
        ranks.flags.writeable = False
    return ranks


def _uniform(rng, low: np.ndarray, high: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    """``rng.uniform(low, high, size)`` for float64 arrays ``low``, ``high`` of shape ``size``:
    the same draws (one ``next_double`` per element, in C order) and the same arithmetic
    ``low + (high - low) * u``, without the per-call argument broadcasting of ``Generator``."""
    u = rng.random(size)
    u *= high - low
    u += low
    return u


def _smooth_potential(rng, n: int) -> np.ndarray:
    """A random low-order Fourier potential over ranks; zero in about three tasks of four."""
    base = 0.0 if rng.random() < 0.5 else min(max(rng.exponential(1.0), 0.2), 5.0)
    box = max(rng.uniform(-base, base), 0.0)
    k = int(rng.integers(1, 4))
    order = rng.integers(1, 6, k) + rng.standard_normal(k)  # (k,) non-integer frequencies
    coef = rng.standard_normal((k, 2)) * rng.exponential(1.0, (k, 2)) * (box / math.sqrt(k))  # (k, 2)
    ox = order * _potential_grid(n)  # (n, k)
    return (coef[:, 0] * np.sin(ox) + coef[:, 1] * np.cos(ox)).sum(-1)


_GRID: dict[int, np.ndarray] = {}


def _potential_grid(n: int) -> np.ndarray:
    """Read-only ``arange(n)[:, None] / (2 n)`` (cached per size)."""
    x = _GRID.get(n)
    if x is None:
        x = np.arange(n)[:, None] / (2.0 * n)
        x.flags.writeable = False
        _GRID[n] = x
    return x


def _sample_reward_parts(rng, n: int, A: int, terminal: np.ndarray, goal: int | None):
    """The non-terminal part of the reward ``(n, A, n)`` and its noise std."""
    raw, noise_draws = _reward_parts(rng, n, A, terminal, goal)
    return raw, _reward_noise(*noise_draws)


def _reward_noise(rs_u: np.ndarray, base_s: float, terminal: np.ndarray, c_z: np.ndarray,
                  base_sa: float, sparse: np.ndarray) -> np.ndarray:
    """The reward noise std ``(n, A, n)`` from the draws ``_reward_parts`` made for it."""
    rs_noise = np.maximum(rs_u, 0.0) * base_s
    rs_noise[terminal] = 0.0
    c_noise = 0.3 * base_sa * np.maximum(c_z, 0.0) * sparse
    return rs_noise[None, None, :] + c_noise[:, :, None]


def _reward_parts(rng, n: int, A: int, terminal: np.ndarray, goal: int | None):
    """``_sample_reward_parts`` with the noise std left as the draws it is computed from (see
    ``_reward_noise``): the sampler builds it only for the accepted draw."""
    phi = _smooth_potential(rng, n)
    # non-decreasing state-wise reward, zero on terminal states
    base_s = rng.exponential(0.2)
    inc = np.maximum(rng.standard_normal(n), 0.0)
    inc[-1] += 0.2
    rs = np.cumsum(inc * base_s)
    rs = rs - rng.uniform(0.1, 0.9) * rs[-1]
    rs_u = rng.uniform(-0.3, 0.3, n)  # rs_noise = max(rs_u, 0) * base_s, zero on terminal states
    rs[terminal] = 0.0
    # sparse random state-action cost
    base_sa = min(max(rng.exponential(0.05), 0.0), 0.1)
    sparse = rng.uniform(-0.7, 0.3, (n, A)) > 0.0
    c = base_sa * rng.standard_normal((n, A)) * sparse
    c_z = rng.standard_normal((n, A))  # c_noise = 0.3 * base_sa * max(c_z, 0) * sparse
    if goal is not None:
        r_step = min(rng.standard_normal(), 0.0) * 0.01
    elif terminal.any():
        r_step = max(rng.standard_normal(), 0.0) * 0.01
    else:
        r_step = 0.0
    raw = (phi[:, None, None] - phi[None, None, :]) + rs[None, None, :] + c[:, :, None]
    raw += r_step
    return raw, (rs_u, base_s, terminal, c_z, base_sa, sparse)


def _repair_terminal_rewards(rng, P: np.ndarray, raw: np.ndarray, terminal: np.ndarray,
                             goal: int | None, starts: np.ndarray, cfg: AnyMDPConfig):
    """Terminal rewards ``(n,)`` such that every pitfall's reward lies ``pit_margin`` below the value
    of every non-terminal state and the rank just below the goal (the top rank without a goal) is
    worth more than every start state; ``None`` if ``max_repairs`` rounds do not get there.

    Rewards start at 0 (pitfalls) and 1 (the top rank); a round lowers all pitfalls together and
    raises the top rank's reward. The pitfall condition compares the lowest terminal reward of all
    ranks (0 while no pitfall has been lowered) with the lowest non-terminal value, so a task
    without pitfalls is kept only when every non-terminal value reaches ``pit_margin``."""
    n, A = P.shape[0], P.shape[1]
    pits = terminal.copy()
    if goal is not None:
        pits[goal] = False
    pits = pits.nonzero()[0]
    nonterm = (~terminal).nonzero()[0].tolist()
    starts = np.asarray(starts).tolist()
    top = n - 2 if goal is not None else n - 1
    r_term = np.zeros(n)
    r_term[n - 1] = 1.0
    g = float(cfg.repair_gamma)
    margin = float(cfg.pit_margin)
    # each round is policy_iteration(P, raw + r_term, g, act), its expected reward computed in a
    # buffer; min / max of the values are exact, so they are taken over Python floats
    P = np.asarray(P, dtype=np.float64)
    P2 = P.reshape(n * A, n)
    neg_gP2 = P2 * -g
    R = np.empty(P.shape)  # raw + r_term, then P * (raw + r_term)
    act = None
    for _ in range(cfg.max_repairs + 1):
        np.add(raw, r_term, out=R)
        r = np.add.reduce(np.multiply(P, R, out=R), axis=-1)  # expected_reward
        if g == 0.0:
            _, act, V = _policy_iteration(P, r, g, act, 10_000, True)  # V = Q.max(-1)
        else:
            act = r.argmax(-1) if act is None else act  # greedy_actions
            _, act, V = _policy_iteration_flat(P2, r, g, act, 10_000, neg_gP2)
        V = V.tolist()
        # rounding keeps the repaired rewards bit-identical across BLAS implementations
        pit_gain = round(float(np.minimum.reduce(r_term)) - min([V[i] for i in nonterm]) + margin, 6)
        goal_fall = round(max([V[i] for i in starts]) - V[top] + rng.uniform(2.0, 5.0), 6)
        if pit_gain <= 0.0 and goal_fall <= 0.0:
            return r_term
        if pit_gain > 0.0:
            r_term[pits] -= pit_gain + rng.uniform(1.0, 10.0)
        if goal_fall > 0.0:
            lift = max(2.0 * goal_fall, rng.uniform(1.0, 10.0))
            r_term[n - 1] += lift if goal is not None else (1.0 - g) * lift
    return None


# ---------------------------------------------------------------------------- checks


def _closure(M: np.ndarray) -> np.ndarray:
    """Boolean reachability (in any number of steps, including 0) of the graph ``M > 0``."""
    R = ((M > 0) | np.eye(M.shape[0], dtype=bool)).astype(np.float64)
    count = np.count_nonzero(R)
    for _ in range(int(np.ceil(np.log2(max(M.shape[0], 2)))) + 1):
        R_next = ((R @ R) > 0).astype(np.float64)
        # R has a unit diagonal, so R_next >= R: the same count means R is closed and further
        # squarings leave it as it is
        count_next = np.count_nonzero(R_next)
        if count_next == count:
            break
        R, count = R_next, count_next
    return R > 0


def validity_report(P: np.ndarray, R: np.ndarray, terminal: np.ndarray, starts: np.ndarray,
                    start_probs: np.ndarray, max_steps: int) -> dict[str, float]:
    """The quantities the validity checks threshold (float64 arrays in hidden order)."""
    n, A, _ = P.shape
    sums = P.sum(-1)[~terminal]
    init = np.zeros(n)
    init[starts] = start_probs
    uniform = uniform_policy(n, A)
    P_rnd = policy_transition(P, uniform)
    M_rnd = P_rnd.copy()
    M_rnd[terminal] = init
    reach = _closure(M_rnd)
    ergodic = bool(reach[starts].any(0).all() and reach[:, starts].any(1).all())
    gamma = 2.0 ** (-1.0 / n)  # half-life of n steps
    r = expected_reward(P, R)
    # the solver works in float64: the arrays above are reused when they already are
    P64, R64 = np.asarray(P, dtype=np.float64), np.asarray(R, dtype=np.float64)
    r64 = r if P64 is P and R64 is R else expected_reward(P64, R64)
    _, act, V_opt = _policy_iteration(P64, r64, gamma, None, 10_000)  # policy_iteration(P, R, gamma)
    # policy_evaluation(P, R, uniform, gamma)
    P_rnd64 = P_rnd if P64 is P else policy_transition(P64, uniform)
    r_rnd = (uniform * r64).sum(-1)
    V_rnd = _solve(_eye(n) - gamma * P_rnd64, r_rnd[:, None])[:, 0]
    Q_rnd = bellman_q(P, r, V_rnd, gamma)
    scale = (1.0 - gamma) * max_steps  # value -> average reward over an episode
    gap = float((V_opt[starts] - Q_rnd.max(-1)[starts]).min() * scale)
    oracle = np.zeros((n, A))  # one_hot_policy(act, A)
    oracle[_ranks(n), act] = 1.0
    M_opt = policy_transition(P, oracle)
    M_opt[terminal] = init
    d = stationary_distribution(M_opt, np.eye(n)[starts])  # (k, n): one law per start state
    d_safe = d + 1e-12
    entropy = float((-(d_safe * np.log(d_safe)).sum(-1) / np.log(n)).min())
    gini = float((1.0 - (d ** 2).sum(-1)).min())
    return {"row_sum_error": float(np.abs(sums - 1.0).max()) if sums.size else 0.0,
            "ergodic": float(ergodic), "value_gap": gap,
            "oracle_entropy": entropy, "oracle_gini": gini}


def _failed_check(rep: dict[str, float], cfg: AnyMDPConfig) -> str | None:
    if rep["row_sum_error"] > 1e-6:
        return "row_sum"
    if not rep["ergodic"]:
        return "ergodic"
    if rep["value_gap"] < cfg.min_value_gap:
        return "value_gap"
    if rep["oracle_entropy"] <= cfg.min_oracle_entropy or rep["oracle_gini"] <= cfg.min_oracle_gini:
        return "oracle_entropy"
    return None


# ---------------------------------------------------------------------------- samplers


def sample_bandit(n_actions: int, seed=0) -> MDPTask:
    """A multi-armed bandit (``S = 1``): one state, episodes of one step, noisy arm rewards."""
    A = check_int("n_actions", n_actions, min_value=2)
    rng = make_rng(seed)
    base = np.clip(rng.exponential(1.0), 0.05, 2.0)
    noise_base = max(rng.uniform(-0.3, 0.3), 0.0)
    while True:
        arms = rng.uniform(0.5 * base, base, A)
        if arms.std() > 0.01:
            break
    return MDPTask(n_obs=1, transition=np.ones((1, A, 1)), reward=arms.reshape(1, A, 1),
                   reward_noise=(noise_base * arms).reshape(1, A, 1), start_states=[0],
                   start_probs=[1.0], terminal=[False], goal=None, max_steps=1, state_ids=[0],
                   generator="bandit", params={"version": GENERATOR_VERSION}, seed=seed)


def sample_anymdp(n_states: int, n_actions: int, seed=0, min_states: int | None = None,
                  config: AnyMDPConfig | None = None, stats: dict | None = None) -> MDPTask:
    """Sample one valid AnyMDP task with observation space ``n_states`` (``S``) and ``n_actions``.

    ``n_states == 1`` gives the bandit. ``stats``, if given, is filled with the number of draws
    and the count of rejections per failed check.
    """
    S, A, min_states = check_sizes(n_states, n_actions, min_states)
    cfg = config if config is not None else AnyMDPConfig()
    if not isinstance(cfg, AnyMDPConfig):
        raise ValueError(f"config must be an AnyMDPConfig, got {type(cfg).__name__}")
    if S == 1:
        return sample_bandit(A, seed)
    rng = make_rng(seed)
    n = sample_active_states(rng, S, min_states)
    max_steps = sample_max_steps(rng, S)
    state_ids = rng.permutation(S)[:n]
    rejected: dict[str, int] = {}
    for attempt in range(1, cfg.max_attempts + 1):
        starts, start_probs = _sample_starts(rng, n, cfg)
        terminal, goal = _sample_terminals(rng, n, starts, cfg)
        P = _sample_transition(rng, n, A, terminal, cfg)
        raw, noise_draws = _reward_parts(rng, n, A, terminal, goal)
        r_term = _repair_terminal_rewards(rng, P, raw, terminal, goal, starts, cfg)
        if r_term is None:
            rejected["repair"] = rejected.get("repair", 0) + 1
            continue
        # the checks run on exactly the float32 arrays the task will hold
        P32 = P.astype(np.float32)
        R32 = (raw + r_term[None, None, :]).astype(np.float32)
        rep = validity_report(P32.astype(np.float64), R32.astype(np.float64), terminal, starts,
                              start_probs, max_steps)
        failed = _failed_check(rep, cfg)
        if failed is not None:
            rejected[failed] = rejected.get(failed, 0) + 1
            continue
        if stats is not None:
            stats.update(attempts=attempt, rejected=rejected, **rep)
        params = dataclasses.asdict(cfg)
        params.update(n_states=S, n_actions=A, min_states=min_states, version=GENERATOR_VERSION)
        noise = _reward_noise(*noise_draws)
        return MDPTask(n_obs=S, transition=P32, reward=R32, reward_noise=noise.astype(np.float32),
                       start_states=starts, start_probs=start_probs, terminal=terminal, goal=goal,
                       max_steps=max_steps, state_ids=state_ids, generator="anymdp", params=params,
                       seed=seed)
    raise RuntimeError(f"no valid AnyMDP task after max_attempts={cfg.max_attempts} draws "
                       f"(n_states={S}, n_actions={A}, seed={seed}); rejections: {rejected}")
