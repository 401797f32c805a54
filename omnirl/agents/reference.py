"""The measuring stick: an (approximately) Bayes-optimal in-context learner on stored sequences.

Array in, array out: every function takes the step columns of ``B`` stored sequences (the schema
of ``omnirl.data.schema``: ``obs``, ``action`` with ``A`` at episode-end markers, ``reward``,
``prompt``, ``label``, all ``(B, T)``) and returns per-step outputs ``(B, T, ...)``. The output at
step ``t`` depends only on what a model sees when it predicts step ``t``: the steps before ``t``
(observations, actions, rewards, hence the next states of the earlier steps) and the current
observation ``obs[t]`` (and whether ``t`` is a decision step or an end marker). Nothing at or
after ``t`` (its action, reward, label, later steps) enters.

Policy reference (``reference_policy``): the probability that each action is the label, i.e. the
label oracle's action in the true task, under a posterior over tasks given the context.

* Bandits (``S = 1``, ``bandit_policy``): the posterior probability that each arm is the best one
  under the bandit generator's prior (``omnirl.tasks.anymdp.sample_bandit``): ``base`` =
  clip(Exp(1), 0.05, 2) (atoms at both ends), ``noise_base`` = max(U(-0.3, 0.3), 0) (0, the
  *noiseless* branch, with probability 1/2), arm means iid U(base / 2, base), a pull's reward
  N(mu, (noise_base * mu)^2). The generator's redraw of the arms while their standard deviation is
  <= 0.01 is ignored (it only matters for bases below ~0.15). Noiseless branch: a pulled arm's
  mean is known exactly, ``base`` lies in ``[max mu, 2 min mu]`` with density ``p(base) (2 /
  base)^pulled``; P(best) is a 1-D quadrature over ``base`` (exact up to the quadrature). Noisy
  branch: a grid over (``base``, ``noise_base``) (exact prior masses per cell); the likelihood of
  an arm's pulls given (base, noise) is integrated over its mean by Gauss-Legendre quadrature in
  ``1 / mu`` (in which the likelihood is ``lambda^n`` times a Gaussian) on an interval adapted to
  the arm's data; P(best) given the posterior is a Rao-Blackwellised Monte Carlo average over
  ``bandit_draws`` draws of the grid cell and the other arms' means. A sequence that shows an arm
  with two different rewards is noisy; one that shows an arm pulled twice with equal rewards is
  noiseless; otherwise the branches are weighed by their marginal likelihoods.
* MDPs (``mdp_policy``): posterior sampling over the observed ids. Transitions of each (s, a):
  Dirichlet(``transition_prior`` + next-state counts). Expected reward of each (s, a): normal,
  mean ``(k0 m0 + sum r) / (k0 + n)`` and variance ``v / (k0 + n)`` with ``v = (k0 s0^2 + SS) /
  (k0 + n)`` (``SS``: the pair's sum of squared deviations), ``k0`` = ``reward_prior``, and ``m0``,
  ``s0^2`` the mean and variance of all rewards of the context so far (0 and 1 before two rewards).
  Episode ends: an id seen at an end marker and never acted from is terminal (an absorbing,
  zero-value state: zero transition row and reward, as in the solver); an end marker's id that is
  acted from elsewhere was a truncation. ``samples`` models are drawn and solved exactly
  (``omnirl.tasks.solver.policy_iteration_r``) at the label oracle's discount (the sequence's
  first ``prompt``, ``omnirl.agents.prior.ORACLE_GAMMAS``; the reference gamma 0.994 for a prompt
  that is not an oracle); the output is the frequency with which each action is optimal in
  ``obs[t]`` (with ``vote_prior`` pseudo-votes per action). The models are re-drawn and re-solved
  at every step of the first ``dense_steps`` and then every ``refresh`` steps; in between the last
  solve (from an earlier, shorter context) is reused. Actions whose values tie (or nearly) in the true task are split by the reference, while
  the label oracle breaks exact ties towards the lowest id.

Both are mixed with the uniform distribution, ``(1 - smoothing) p + smoothing / A`` (the Monte
Carlo frequencies can be 0). At end markers the output is uniform and the loss 0.

World-model references (``world_model_reference``): count-based predictors of the next observed id
keyed on the state and on the (state, action) pair, ``(N(s') + alpha) / (N + S alpha)`` with
``alpha`` = ``count_prior``, and running means of a reward target keyed the same way (the pair's
mean, else the state's, else the context's, else 0). The reward target is passed in, already
transformed as the model's reward head sees it.

``learning_gain`` turns the first- and last-quarter losses of a model and of the reference into the
share of the reference's in-context improvement that the model achieves.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from omnirl._validate import check_float, check_int
from omnirl.agents.prior import ORACLE_GAMMAS, REFERENCE
from omnirl.tasks.solver import policy_iteration_r

BASE_MIN, BASE_MAX = 0.05, 2.0
"""Clip range of the bandit generator's ``base`` (``clip(Exp(1), 0.05, 2)``)."""
NOISE_MAX = 0.3
"""Upper end of the bandit generator's ``noise_base`` (``max(U(-0.3, 0.3), 0)``)."""
NOISELESS_PRIOR = 0.5
"""Prior probability of ``noise_base = 0`` (the noiseless bandit branch)."""
NOISELESS_POINTS = 128
"""Quadrature points over ``base`` in the noiseless branch."""
INTERVAL_SIGMAS = 5.0
"""Half-width, in posterior standard deviations, of the quadrature interval of an arm's mean."""
MIN_GAIN_DROP = 1e-3
"""A reference drop (nats) below this makes ``learning_gain`` NaN: there is nothing to learn."""


@dataclasses.dataclass(frozen=True)
class ReferenceConfig:
    """Settings of the Bayes-optimal reference learner (see the module docstring)."""

    samples: int = 32
    """MDPs: posterior models drawn and solved per refresh."""
    vote_prior: float = 0.5
    """MDPs: pseudo-count added to every action's count of optimal votes among the ``samples``
    models (``(votes + c) / (samples + A c)``): few Monte Carlo votes alone would put zero or
    inflated probabilities on actions and inflate the cross-entropy of a vague posterior."""
    transition_prior: float = 0.1
    """MDPs: Dirichlet pseudo-count of every next observed id of every (s, a)."""
    reward_prior: float = 1.0
    """MDPs: pseudo-count ``k0`` of the normal prior of a pair's expected reward (centred on the
    context's mean reward, with the context's reward variance)."""
    refresh: int = 32
    """MDPs and bandits: steps between posterior recomputations after ``dense_steps``."""
    dense_steps: int = 16
    """MDPs and bandits: the posterior is recomputed at every one of the first this-many steps."""
    bandit_draws: int = 128
    """Bandits: Monte Carlo draws of (base, noise, arm means) per recomputation (noisy branch)."""
    base_points: int = 40
    """Bandits: grid cells of ``base`` in (0.05, 2) (log-spaced), besides its two atoms."""
    noise_points: int = 10
    """Bandits: grid cells of ``noise_base`` in (0, 0.3) (noisy branch)."""
    mean_nodes: int = 12
    """Bandits: Gauss-Legendre nodes of the integral over an arm's mean."""
    smoothing: float = 0.01
    """Weight of the uniform distribution mixed into the action probabilities."""
    count_prior: float = 0.1
    """World-model reference: add-alpha pseudo-count of every next observed id."""
    chunk: int = 64
    """Sequences processed at once (bounds memory; results do not depend on it for bandits'
    noiseless branch and world models, the Monte Carlo draws are per chunk)."""
    seed: int = 0
    """Seed of the Monte Carlo draws (``numpy.random.default_rng((seed, chunk index))``)."""

    def __post_init__(self) -> None:
        for f in ("samples", "refresh", "bandit_draws", "base_points", "noise_points", "mean_nodes", "chunk"):
            check_int(f, getattr(self, f), min_value=1)
        for f in ("dense_steps", "seed"):
            check_int(f, getattr(self, f), min_value=0)
        for f in ("transition_prior", "reward_prior", "count_prior", "vote_prior"):
            check_float(f, getattr(self, f), min_value=0.0, min_inclusive=False)
        check_float("smoothing", self.smoothing, min_value=0.0, max_value=1.0, max_inclusive=False)


@dataclasses.dataclass(frozen=True)
class PolicyReference:
    """The policy reference of ``B`` sequences of ``T`` steps."""

    probs: np.ndarray
    """``(B, T, A)`` float64 action probabilities (uniform at end markers)."""
    loss: np.ndarray
    """``(B, T)`` float64 cross-entropy against the label (0 at end markers)."""


@dataclasses.dataclass(frozen=True)
class WorldModelReference:
    """The count-based world-model references of ``B`` sequences of ``T`` steps (0 at end markers
    and at the last step, which has no next state)."""

    next_state_state: np.ndarray
    """``(B, T)`` cross-entropy of the next observed id under the state-keyed counts."""
    next_state_pair: np.ndarray
    """``(B, T)`` cross-entropy of the next observed id under the (state, action)-keyed counts."""
    reward_state: np.ndarray
    """``(B, T)`` the state-keyed running-mean prediction of the reward target."""
    reward_pair: np.ndarray
    """``(B, T)`` the pair-keyed running-mean prediction of the reward target."""
    reward_state_error: np.ndarray
    """``(B, T)`` squared error of ``reward_state``."""
    reward_pair_error: np.ndarray
    """``(B, T)`` squared error of ``reward_pair``."""


# ---------------------------------------------------------------------------- helpers


def _check_steps(n_actions: int, **arrays: np.ndarray) -> tuple[int, int]:
    """Validate ``(B, T)`` step arrays of one shape; returns ``(B, T)``."""
    check_int("n_actions", n_actions, min_value=2)
    shape = None
    for name, x in arrays.items():
        x = np.asarray(x)
        if x.ndim != 2:
            raise ValueError(f"{name} must be a (B, T) array, got shape {x.shape}")
        if shape is None:
            shape = x.shape
        elif x.shape != shape:
            raise ValueError(f"{name} has shape {x.shape}, expected {shape} like the other step arrays")
    a = np.asarray(arrays["action"])
    if a.size and (a.min() < 0 or a.max() > n_actions):
        raise ValueError(f"action must lie in [0, {n_actions}] (n_actions={n_actions} marks an episode "
                         f"end), got values in [{a.min()}, {a.max()}]")
    return shape


def refresh_mask(T: int, config: ReferenceConfig) -> np.ndarray:
    """``(T,)`` bool: the steps at which the posterior is recomputed (every step of the first
    ``dense_steps``, then every ``refresh``-th step)."""
    t = np.arange(T)
    return (t < config.dense_steps) | (t % config.refresh == 0)


def _smooth(p: np.ndarray, eps: float) -> np.ndarray:
    return (1.0 - eps) * p + eps / p.shape[-1]


def policy_cross_entropy(probs: np.ndarray, label: np.ndarray) -> np.ndarray:
    """``(B, T)`` ``-log probs[label]``; 0 where the label is the end marker ``A``.

    probs ``(B, T, A)``, label ``(B, T)`` in ``[0, A]``."""
    A = probs.shape[-1]
    label = np.asarray(label, dtype=np.int64)
    step = label < A
    p = np.take_along_axis(probs, np.minimum(label, A - 1)[..., None], -1)[..., 0]
    return np.where(step, -np.log(np.maximum(p, 1e-300)), 0.0)


def _chunks(B: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, B)) for i in range(0, B, size)]


def _logsumexp(x: np.ndarray, axis) -> np.ndarray:
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return np.log(np.exp(x - m).sum(axis=axis, keepdims=True)) + m


# ---------------------------------------------------------------------------- bandits


def _base_grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(n + 2,)`` nodes of ``base`` and their exact prior masses: the atom at 0.05, ``n``
    log-spaced cells of the Exp(1) density on (0.05, 2) (geometric midpoints), the atom at 2."""
    edges = BASE_MIN * (BASE_MAX / BASE_MIN) ** (np.arange(n + 1) / n)
    nodes = np.concatenate([[BASE_MIN], np.sqrt(edges[:-1] * edges[1:]), [BASE_MAX]])
    mass = np.concatenate([[1.0 - np.exp(-BASE_MIN)], np.exp(-edges[:-1]) - np.exp(-edges[1:]),
                           [np.exp(-BASE_MAX)]])
    return nodes, mass


def _noiseless_best(first: np.ndarray, pulled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Noiseless branch. first, pulled ``(B, A)``: each arm's (exact) mean when pulled.

    Returns ``(P(best = a) (B, A), log marginal density of the pulled means (B,))`` (-inf where the
    means are inconsistent with any base)."""
    B, A = first.shape
    k = pulled.sum(1)  # (B,) pulled arms
    M = np.where(pulled, first, -np.inf).max(1)  # (B,)
    m = np.where(pulled, first, np.inf).min(1)
    lo = np.maximum(np.where(k > 0, M, BASE_MIN), BASE_MIN)
    hi = np.minimum(np.where(k > 0, 2.0 * m, BASE_MAX), BASE_MAX)
    ok = lo <= hi
    # continuous part: midpoints of [lo, hi] (clipped to (0.05, 2)), density exp(-b)
    u = (np.arange(NOISELESS_POINTS) + 0.5) / NOISELESS_POINTS
    width = np.where(ok, hi - lo, 0.0)  # (B,)
    b = lo[:, None] + width[:, None] * u[None, :]  # (B, Q)
    logw = -b + np.log(np.maximum(width, 1e-300))[:, None] - np.log(NOISELESS_POINTS)
    logw = np.where(ok[:, None] & (width[:, None] > 0), logw, -np.inf)
    # atoms at 0.05 and 2 (inside [lo, hi])
    atoms = np.array([BASE_MIN, BASE_MAX])
    atom_mass = np.log(np.array([1.0 - np.exp(-BASE_MIN), np.exp(-BASE_MAX)]))
    b = np.concatenate([b, np.broadcast_to(atoms, (B, 2))], 1)  # (B, Q + 2)
    inside = (atoms[None, :] >= lo[:, None] - 1e-12) & (atoms[None, :] <= hi[:, None] + 1e-12) & ok[:, None]
    logw = np.concatenate([logw, np.where(inside, atom_mass[None, :], -np.inf)], 1)
    logw = logw + k[:, None] * np.log(2.0 / b)  # density 2 / b of each pulled mean
    logz = _logsumexp(logw, 1)[:, 0]  # (B,)
    w = np.exp(logw - np.where(np.isfinite(logz), logz, 0.0)[:, None])  # (B, Q + 2)
    # P(every unpulled arm < M | b) = ((M - b/2) / (b/2))^U
    U = A - k
    q = np.clip((M[:, None] - 0.5 * b) / (0.5 * b), 0.0, 1.0)
    top = (w * q ** U[:, None]).sum(1)  # (B,) P(the best pulled arm is the best)
    best_pulled = np.argmax(np.where(pulled, first, -np.inf), 1)
    p = np.where(~pulled, ((1.0 - top) / np.maximum(U, 1))[:, None], 0.0)
    p[np.arange(B), best_pulled] = np.where(k > 0, top, p[np.arange(B), best_pulled])
    p = np.where((k == 0)[:, None], 1.0 / A, p)
    return p, np.where(ok, logz, -np.inf)


def _arm_quadrature(n: np.ndarray, s1: np.ndarray, s2: np.ndarray, base: np.ndarray, noise: np.ndarray,
                    nodes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noisy branch: the likelihood of ``M`` pulled arms' rewards, integrated over their means.

    n, s1, s2 ``(M,)`` pull count (>= 1), reward sum and sum of squares; base ``(Nb,)``, noise
    ``(Nc,)``. With ``lambda = 1 / mu`` the likelihood of n pulls is ``(2 pi)^(-n/2) c^-n lambda^n
    exp(-(s2 (lambda - s1/s2)^2 + n - s1^2/s2) / (2 c^2))``; the prior of mu is ``2 / b`` on
    ``[b/2, b]``, ``d mu = d lambda / lambda^2``. Gauss-Legendre nodes cover ``[1/b, 2/b]``
    intersected with ``INTERVAL_SIGMAS`` posterior standard deviations around the mode. Returns
    ``log L (M, Nb, Nc)``, the nodes ``lambda (M, Nb, Nc, K)`` and their log posterior weights
    (normalised over the nodes).
    """
    x, wq = np.polynomial.legendre.leggauss(nodes)
    n3 = n[:, None, None]  # (M, 1, 1)
    s2 = np.maximum(s2, 1e-300)
    lam0 = (s1 / s2)[:, None, None]
    c = noise[None, None, :]  # (1, 1, Nc)
    a = s2[:, None, None] / (2.0 * c * c)  # (M, 1, Nc)
    disc = lam0 * lam0 + 2.0 * (n3 - 2.0) / a
    mode = np.where(disc >= 0, 0.5 * (lam0 + np.sqrt(np.maximum(disc, 0.0))), lam0)
    mode = np.where(mode > 0, mode, lam0)
    curv = 2.0 * a + (n3 - 2.0) / np.maximum(mode * mode, 1e-300)
    sigma = 1.0 / np.sqrt(np.maximum(curv, a))
    b = base[None, :, None]  # (1, Nb, 1)
    full_lo, full_hi = 1.0 / b, 2.0 / b
    lo = np.maximum(full_lo, mode - INTERVAL_SIGMAS * sigma)  # (M, Nb, Nc)
    hi = np.minimum(full_hi, mode + INTERVAL_SIGMAS * sigma)
    empty = lo >= hi
    lo = np.where(empty, full_lo, lo)
    half = 0.5 * (np.where(empty, full_hi, hi) - lo)
    lam = (lo + half)[..., None] + half[..., None] * x  # (M, Nb, Nc, K)
    resid = np.maximum((n * s2 - s1 * s1) / s2, 0.0)[:, None, None, None]  # n - s1^2 / s2 >= 0
    dev = lam - lam0[..., None]
    logt = (n3[..., None] - 2.0) * np.log(lam) - (s2[:, None, None, None] * dev * dev + resid) / (2.0 * c[..., None] ** 2)
    logt += np.log(wq)
    logt += np.log(half)[..., None]  # (M, Nb, Nc, K)
    logint = _logsumexp(logt, -1)  # (M, Nb, Nc, 1)
    logt -= logint
    const = -0.5 * n3 * np.log(2.0 * np.pi) - n3 * np.log(c) + np.log(2.0 / b)
    return logint[..., 0] + const, lam, logt


class BanditPosterior:
    """Pull statistics of ``B`` bandit sequences and the per-arm quadratures of the noisy branch
    (recomputed only for the arms pulled since the last posterior): ``pull`` adds a step,
    ``posterior(rng)`` gives P(best) (what ``bandit_policy`` reports), ``reset`` forgets rows. The
    draws ``rng.random(shape)`` of the noisy branch are row by row (leading axis ``B``), so a
    per-row stream keeps each row's posterior independent of the others."""

    def __init__(self, B: int, A: int, config: ReferenceConfig) -> None:
        self.config = config
        self.base, self.base_mass = _base_grid(config.base_points)  # (Nb,)
        Nc = config.noise_points
        self.noise = NOISE_MAX * (np.arange(Nc) + 0.5) / Nc  # (Nc,) midpoints, mass 1 / Nc each
        self.n, self.s1, self.s2, self.first = (np.zeros((B, A)) for _ in range(4))
        self.varied = np.zeros((B, A), dtype=bool)  # the arm showed two different rewards
        self.dirty = np.zeros((B, A), dtype=bool)  # pulled since its quadrature
        Nb, K = len(self.base), config.mean_nodes
        self.logL = np.zeros((B, A, Nb, Nc))
        self.lam = np.ones((B, A, Nb, Nc, K))
        self.logw = np.full((B, A, Nb, Nc, K), -np.log(K))
        self.rows = np.arange(B)

    def reset(self, rows: np.ndarray) -> None:
        """Forget ``rows``' pulls (new sequences)."""
        K = self.config.mean_nodes
        for x in (self.n, self.s1, self.s2, self.first, self.logL):
            x[rows] = 0.0
        self.varied[rows] = False
        self.dirty[rows] = False
        self.lam[rows] = 1.0
        self.logw[rows] = -np.log(K)

    def pull(self, a: np.ndarray, r: np.ndarray) -> None:
        """Add the pulls ``a (B,)`` with rewards ``r (B,)`` (rows with ``a == A`` are end markers)."""
        pull = a < self.n.shape[1]
        i, j, r = self.rows[pull], a[pull], r[pull]
        new = self.n[i, j] == 0
        self.first[i[new], j[new]] = r[new]
        self.varied[i, j] |= ~new & (r != self.first[i, j])
        self.n[i, j] += 1.0
        self.s1[i, j] += r
        self.s2[i, j] += r * r
        self.dirty[i, j] = True

    def posterior(self, rng: np.random.Generator) -> np.ndarray:
        """``(B, A)`` P(best = a) given the pulls so far."""
        i, j = np.nonzero(self.dirty)
        if i.size:
            self.logL[i, j], self.lam[i, j], self.logw[i, j] = _arm_quadrature(
                self.n[i, j], self.s1[i, j], self.s2[i, j], self.base, self.noise, self.config.mean_nodes)
            self.dirty[:] = False
        pulled = self.n > 0
        p0, logz0 = _noiseless_best(self.first, pulled)
        p1, logz1 = self._noisy_best(rng)
        noisy = self.varied.any(1) | ~np.isfinite(logz0)
        exact = ((self.n >= 2) & ~self.varied).any(1) & ~noisy
        w0 = 1.0 / (1.0 + np.exp(np.clip(logz1 - logz0, -700.0, 700.0)))
        w0 = np.where(noisy, 0.0, np.where(exact, 1.0, w0))
        return w0[:, None] * p0 + (1.0 - w0[:, None]) * p1

    def _noisy_best(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Noisy branch: ``(P(best = a) (B, A), log marginal density of the rewards (B,))``."""
        B, A = self.n.shape
        Nc, D = len(self.noise), self.config.bandit_draws
        logpost = np.log(self.base_mass)[None, :, None] - np.log(Nc) + self.logL.sum(1)  # (B, Nb, Nc)
        flat = logpost.reshape(B, -1)
        logz = _logsumexp(flat, 1)  # (B, 1)
        cdf = np.cumsum(np.exp(flat - logz), 1)  # (B, cells)
        # draws of the (base, noise) cell: the rows' cdfs laid end to end, one searchsorted for all
        offset = np.arange(B)[:, None]
        u = rng.random((B, D)) * cdf[:, -1:] + offset
        cell = np.searchsorted((cdf + offset).ravel(), u.ravel(), side="right").reshape(B, D)
        cell = np.clip(cell - offset * cdf.shape[1], 0, cdf.shape[1] - 1)  # (B, D)
        ib, ic = cell // Nc, cell % Nc
        at = (np.arange(B)[:, None, None], np.arange(A)[None, None, :], ib[..., None], ic[..., None])
        lam_d = self.lam[at]  # (B, D, A, K)
        w_d = np.exp(self.logw[at])  # (B, D, A, K)
        # every arm's mean given the cell: a node of its quadrature, or U(b/2, b) if unpulled
        pick = (rng.random((B, D, A, 1)) > np.cumsum(w_d, -1)).sum(-1)
        pick = np.minimum(pick, lam_d.shape[-1] - 1)  # (B, D, A)
        mu = 1.0 / np.take_along_axis(lam_d, pick[..., None], -1)[..., 0]  # (B, D, A)
        b_d = self.base[ib][..., None]  # (B, D, 1)
        pulled = (self.n > 0)[:, None, :]
        mu = np.where(pulled, mu, b_d * (0.5 + 0.5 * rng.random((B, D, A))))
        # Rao-Blackwellised: P(mu_a > max of the others | the others, cell)
        order = np.sort(mu, -1)
        first_max, second_max = order[..., -1:], order[..., -2:-1]
        others = np.where(mu >= first_max, second_max, first_max)  # (B, D, A)
        p_pulled = (w_d * (1.0 / lam_d > others[..., None])).sum(-1)
        p_unpulled = np.clip((b_d - others) / (0.5 * b_d), 0.0, 1.0)
        p = np.where(pulled, p_pulled, p_unpulled).mean(1)  # (B, A)
        total = p.sum(1, keepdims=True)
        p = np.where(total > 0, p / np.where(total > 0, total, 1.0), 1.0 / A)
        return p, logz[:, 0]


def bandit_policy(action: np.ndarray, reward: np.ndarray, n_actions: int,
                  config: ReferenceConfig = ReferenceConfig()) -> np.ndarray:
    """``(B, T, A)`` posterior probability that each arm is the best one, at every step.

    action ``(B, T)`` (``A`` at end markers), reward ``(B, T)``: bandit sequences (``S = 1``).
    Step ``t`` uses the pulls before ``t``; the posterior is recomputed at the steps of
    ``refresh_mask`` (and reused in between). Uniform (before smoothing) with no pull seen.
    """
    B, T = _check_steps(n_actions, action=action, reward=reward)
    A = n_actions
    action = np.asarray(action, dtype=np.int64)
    reward = np.asarray(reward, dtype=np.float64)
    out = np.full((B, T, A), 1.0 / A)
    due = refresh_mask(T, config)
    for k, sl in enumerate(_chunks(B, config.chunk)):
        rng = np.random.default_rng((config.seed, k))
        a_c, r_c = action[sl], reward[sl]
        Bc = a_c.shape[0]
        state = BanditPosterior(a_c.shape[0], A, config)
        p = np.full((a_c.shape[0], A), 1.0 / A)
        for t in range(T):
            if t > 0:  # the pull of step t - 1 joins the context
                state.pull(a_c[:, t - 1], r_c[:, t - 1])
            if due[t] and state.dirty.any():
                p = state.posterior(rng)
            out[sl, t] = p
    out = _smooth(out, config.smoothing)
    out[action == A] = 1.0 / A
    return out


# ---------------------------------------------------------------------------- MDPs


def label_gammas(prompt: np.ndarray, action: np.ndarray, n_actions: int) -> np.ndarray:
    """``(B,)`` the label oracle's discount of each sequence: ``ORACLE_GAMMAS`` of the prompt of its
    first decision step (the reference gamma when that prompt is not an oracle)."""
    prompt = np.asarray(prompt, dtype=np.int64)
    step = np.asarray(action) < n_actions
    first = np.argmax(step, 1)
    ids = prompt[np.arange(prompt.shape[0]), first]
    gammas = {int(k): v for k, v in ORACLE_GAMMAS.items()}
    return np.array([gammas.get(int(i), ORACLE_GAMMAS[REFERENCE]) for i in ids], dtype=np.float64)


class _Posterior:
    """Context statistics of ``B`` sequences over ``S`` ids and ``A`` actions, and posterior draws."""

    def __init__(self, B: int, S: int, A: int) -> None:
        self.B, self.S, self.A = B, S, A
        self.N = np.zeros((B, S, A, S), dtype=np.float64)  # next-id counts
        self.n = np.zeros((B, S, A))
        self.rsum = np.zeros((B, S, A))
        self.rsq = np.zeros((B, S, A))
        self.acted = np.zeros((B, S), dtype=bool)
        self.ended = np.zeros((B, S), dtype=bool)
        self.rows = np.arange(B)

    def add(self, s: np.ndarray, a: np.ndarray, r: np.ndarray, s2: np.ndarray, live: np.ndarray) -> None:
        """Count the transitions ``s, a, r -> s2`` of the rows where ``live`` (all ``(B,)``)."""
        i = self.rows[live]
        s, a, r, s2 = s[live], a[live], r[live], s2[live]
        self.N[i, s, a, s2] += 1.0
        self.n[i, s, a] += 1.0
        self.rsum[i, s, a] += r
        self.rsq[i, s, a] += r * r

    def sample(self, K: int, config: ReferenceConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``K`` posterior models: ``P (K, B, S, A, S)`` and expected rewards ``r (K, B, S, A)``."""
        alpha = (self.N + config.transition_prior).astype(np.float32)  # (B, S, A, S)
        P = rng.standard_gamma(np.broadcast_to(alpha, (K, *alpha.shape)), dtype=np.float32)
        P /= np.maximum(P.sum(-1, keepdims=True), np.float32(1e-30))  # (K, B, S, A, S)
        tot_n = self.n.sum((1, 2))  # (B,)
        tot = self.rsum.sum((1, 2))
        m0 = np.where(tot_n >= 2, tot / np.maximum(tot_n, 1.0), 0.0)
        v0 = np.where(tot_n >= 2, self.rsq.sum((1, 2)) / np.maximum(tot_n, 1.0) - m0 * m0, 1.0)
        v0 = np.maximum(v0, 1e-6)[:, None, None]
        k0, m0 = config.reward_prior, m0[:, None, None]
        ss = np.maximum(self.rsq - self.rsum ** 2 / np.maximum(self.n, 1.0), 0.0)
        mean = (k0 * m0 + self.rsum) / (k0 + self.n)
        var = (k0 * v0 + ss) / (k0 + self.n) / (k0 + self.n)
        r = mean + np.sqrt(var) * rng.standard_normal((K, *mean.shape))
        terminal = self.ended & ~self.acted  # (B, S)
        P[:, terminal] = 0.0
        r[:, terminal] = 0.0
        return P, r


def mdp_policy(obs: np.ndarray, action: np.ndarray, reward: np.ndarray, prompt: np.ndarray,
               n_obs: int, n_actions: int, config: ReferenceConfig = ReferenceConfig()) -> np.ndarray:
    """``(B, T, A)`` posterior-sampling probability that each action is the label oracle's action
    in ``obs[t]`` (see the module docstring); uniform at end markers."""
    B, T = _check_steps(n_actions, obs=obs, action=action, reward=reward, prompt=prompt)
    S = check_int("n_obs", n_obs, min_value=1)
    A = n_actions
    obs = np.asarray(obs, dtype=np.int64)
    action = np.asarray(action, dtype=np.int64)
    reward = np.asarray(reward, dtype=np.float64)
    if obs.size and (obs.min() < 0 or obs.max() >= S):
        raise ValueError(f"obs must lie in [0, {S}) (n_obs={S}), got values in [{obs.min()}, {obs.max()}]")
    gammas = label_gammas(prompt, action, A)
    out = np.full((B, T, A), 1.0 / A)
    due = refresh_mask(T, config)
    K = config.samples
    for k, sl in enumerate(_chunks(B, config.chunk)):
        rng = np.random.default_rng((config.seed, k))
        o, a, r, g = obs[sl], action[sl], reward[sl], gammas[sl]
        Bc = o.shape[0]
        post = _Posterior(Bc, S, A)
        freq = np.full((Bc, S, A), 1.0 / A)
        warm = np.zeros((K, Bc, S), dtype=np.int64)  # last greedy actions: warm start
        rows = np.arange(Bc)
        for t in range(T):
            if t > 0:
                post.add(o[:, t - 1], np.minimum(a[:, t - 1], A - 1), r[:, t - 1], o[:, t], a[:, t - 1] < A)
            post.acted[rows, o[:, t]] |= a[:, t] < A  # a decision is asked in obs[t]
            post.ended[rows, o[:, t]] |= a[:, t] == A
            if due[t]:
                P, rr = post.sample(K, config, rng)
                for gamma in np.unique(g):
                    sel = g == gamma
                    _, act = policy_iteration_r(P[:, sel], rr[:, sel], float(gamma), warm[:, sel])
                    warm[:, sel] = act
                votes = np.stack([(warm == j).sum(0) for j in range(A)], -1)  # (Bc, S, A)
                freq = (votes + config.vote_prior) / (K + A * config.vote_prior)
            out[sl, t] = freq[rows, o[:, t]]
    out = _smooth(out, config.smoothing)
    out[action == A] = 1.0 / A
    return out


def policy_probs(obs: np.ndarray, action: np.ndarray, reward: np.ndarray, prompt: np.ndarray, n_obs: int,
                 n_actions: int, config: ReferenceConfig = ReferenceConfig()) -> np.ndarray:
    """``(B, T, A)`` the reference's probability that each action is the label: ``bandit_policy``
    when ``n_obs`` is 1, else ``mdp_policy`` (all inputs ``(B, T)``)."""
    if not isinstance(config, ReferenceConfig):
        raise ValueError(f"config must be a ReferenceConfig, got {type(config).__name__}")
    if check_int("n_obs", n_obs, min_value=1) == 1:
        _check_steps(n_actions, obs=obs, action=action, reward=reward, prompt=prompt)
        return bandit_policy(action, reward, n_actions, config)
    return mdp_policy(obs, action, reward, prompt, n_obs, n_actions, config)


def reference_policy(obs: np.ndarray, action: np.ndarray, reward: np.ndarray, prompt: np.ndarray,
                     label: np.ndarray, n_obs: int, n_actions: int,
                     config: ReferenceConfig = ReferenceConfig()) -> PolicyReference:
    """The policy reference of ``B`` sequences (all ``(B, T)``): ``policy_probs`` and their
    cross-entropy against ``label``."""
    _check_steps(n_actions, obs=obs, action=action, reward=reward, prompt=prompt, label=label)
    probs = policy_probs(obs, action, reward, prompt, n_obs, n_actions, config)
    return PolicyReference(probs=probs, loss=policy_cross_entropy(probs, label))


# ---------------------------------------------------------------------------- world model


def world_model_reference(obs: np.ndarray, action: np.ndarray, target: np.ndarray, n_obs: int,
                          n_actions: int, count_prior: float = 0.1) -> WorldModelReference:
    """Count-based next-state and running-mean reward predictions at every step (see the module
    docstring). obs, action ``(B, T)``; target ``(B, T)`` the reward target of each step (already
    transformed). Step ``t`` predicts ``obs[t + 1]`` and ``target[t]`` from the steps before ``t``."""
    B, T = _check_steps(n_actions, obs=obs, action=action, target=target)
    S = check_int("n_obs", n_obs, min_value=1)
    alpha = check_float("count_prior", count_prior, min_value=0.0, min_inclusive=False)
    A = n_actions
    obs = np.asarray(obs, dtype=np.int64)
    action = np.asarray(action, dtype=np.int64)
    target = np.asarray(target, dtype=np.float64)
    rows = np.arange(B)
    Ns = np.zeros((B, S, S))
    Nsa = np.zeros((B, S, A, S))
    cs, csa = np.zeros((B, S)), np.zeros((B, S, A))
    ts, tsa = np.zeros((B, S)), np.zeros((B, S, A))
    c_all, t_all = np.zeros(B), np.zeros(B)
    ce_s, ce_sa = np.zeros((B, T)), np.zeros((B, T))
    pred_s, pred_sa = np.zeros((B, T)), np.zeros((B, T))
    for t in range(T):
        s, a = obs[:, t], np.minimum(action[:, t], A - 1)
        live = action[:, t] < A
        ctx = np.where(c_all > 0, t_all / np.maximum(c_all, 1.0), 0.0)
        n_s, n_sa = cs[rows, s], csa[rows, s, a]
        ps = np.where(n_s > 0, ts[rows, s] / np.maximum(n_s, 1.0), ctx)
        pred_s[:, t] = np.where(live, ps, 0.0)
        pred_sa[:, t] = np.where(live, np.where(n_sa > 0, tsa[rows, s, a] / np.maximum(n_sa, 1.0), ps), 0.0)
        if t + 1 < T:
            s2 = obs[:, t + 1]
            ps2 = (Ns[rows, s, s2] + alpha) / (n_s + S * alpha)
            psa2 = (Nsa[rows, s, a, s2] + alpha) / (n_sa + S * alpha)
            ce_s[:, t] = np.where(live, -np.log(ps2), 0.0)
            ce_sa[:, t] = np.where(live, -np.log(psa2), 0.0)
            i, s, a, s2, y = rows[live], s[live], a[live], s2[live], target[live, t]
            Ns[i, s, s2] += 1.0
            Nsa[i, s, a, s2] += 1.0
        else:
            i, s, a, y = rows[live], s[live], a[live], target[live, t]
        cs[i, s] += 1.0
        csa[i, s, a] += 1.0
        ts[i, s] += y
        tsa[i, s, a] += y
        c_all[i] += 1.0
        t_all[i] += y
    step = action < A
    err_s = np.where(step, (pred_s - target) ** 2, 0.0)
    err_sa = np.where(step, (pred_sa - target) ** 2, 0.0)
    return WorldModelReference(next_state_state=ce_s, next_state_pair=ce_sa, reward_state=pred_s,
                               reward_pair=pred_sa, reward_state_error=err_s, reward_pair_error=err_sa)


# ---------------------------------------------------------------------------- gain


def learning_gain(model_first: float, model_last: float, reference_first: float,
                  reference_last: float, min_drop: float = MIN_GAIN_DROP) -> float:
    """``(model_first - model_last) / (reference_first - reference_last)``: the share of the
    reference's in-context improvement (first-quarter minus last-quarter loss) that the model
    achieves. NaN when the reference's drop is below ``min_drop`` (nothing to learn) or an input is
    not finite."""
    vals = np.array([model_first, model_last, reference_first, reference_last], dtype=np.float64)
    drop = vals[2] - vals[3]
    if not np.isfinite(vals).all() or drop < min_drop:
        return float("nan")
    return float((vals[0] - vals[1]) / drop)


__all__ = ["BanditPosterior", "MIN_GAIN_DROP", "PolicyReference", "ReferenceConfig", "WorldModelReference",
           "bandit_policy", "label_gammas", "learning_gain", "mdp_policy", "policy_cross_entropy", "policy_probs",
           "reference_policy",
           "refresh_mask", "world_model_reference"]
