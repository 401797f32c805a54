"""Bandit behaviours (``S = 1``, one pull per episode), batched over rows, and their mixture.

The learners keep per-row arm statistics (``ArmStats``: pulls ``N (B, A)`` and reward sums
``R (B, A)``) and choose with:

* ``ucb1_actions``: an untried arm if there is one (uniformly among them), else
  ``argmax_a mean_a + c * sqrt(2 ln t / N_a)`` with ``t = sum_a N_a`` (Auer et al. 2002; ``c``
  in reward units, since rewards are not in [0, 1]);
* ``thompson_actions``: Gaussian Thompson sampling. Prior: every arm's mean reward
  ``mu_a ~ N(prior_mean, prior_std^2)`` independently; likelihood: a pull of arm ``a`` pays
  ``N(mu_a, noise_std^2)``. The posterior of ``mu_a`` is normal with precision
  ``1 / prior_std^2 + N_a / noise_std^2`` and mean ``(prior_mean / prior_std^2 + R_a /
  noise_std^2) / precision``; each pull plays the argmax of one draw per arm;
* ``greedy_actions``: ``argmax_a R_a / max(N_a, 1)`` (untried arms count 0), the exploiting
  half of epsilon-greedy.

Defaults fit the bandit generator (``omnirl.tasks.sample_bandit``: arm means in
``[0.5 b, b]`` with ``b ~ Exp(1)`` clipped to ``[0.05, 2]``, noise std ``k * mean`` with
``k = max(U(-0.3, 0.3), 0)``, so half the bandits are noise-free): Thompson prior ``N(0.75, 1)``
with noise std 0.05 (``THOMPSON_PRIOR``) and UCB ``c = 0.05`` (``UCB_C``). Measured on 400 generator
bandits of training seeds with 5 arms, mean cumulative regret after 500 pulls (uniform random: 66.7):
UCB1 ``c`` = 0.01 / 0.02 / 0.03 / 0.05 / 0.1 / 0.2 / 0.5 / 1: 5.2 / 4.3 / 4.2 / 3.3 / 5.4 / 8.0 /
18.8 / 31.2; Thompson ``noise_std`` = 0.02 / 0.03 / 0.05 / 0.1 / 0.3 (prior std 1): 4.0 / 4.4 / 3.4
/ 4.4 / 10.2 (prior std 0.5 was no better).

The mixture (``BanditMix``) gives each row (sequence) one component for the whole sequence,
drawn by weight at ``reset``:

| component | weight | behaviour | tag |
|---|---|---|---|
| ``oracle`` | 0.05 | the best arm (largest mean reward) | 3 (``ORACLE_G0994``) |
| ``epsilon_greedy`` | 0.25 | greedy on the sample means, uniform arm w.p. ``eps_t`` | 5 (``Q_LEARNING``) / 6 |
| ``ucb1`` | 0.20 | UCB1, ``c ~ U(0.02, 0.2)`` per sequence (``ucb_c``) | 4 (``MODEL_BASED``) |
| ``thompson`` | 0.20 | Gaussian Thompson sampling (prior above) | 4 (``MODEL_BASED``) |
| ``uniform`` | 0.30 | uniform random arm | 6 (``RANDOM``) |
| ``posterior`` | 0 | posterior sampling under the generator's prior: an arm drawn with the Bayes-optimal reference's probability that it is the best (``omnirl.agents.reference.BanditPosterior``), i.e. exact Thompson sampling | 4 (``MODEL_BASED``) |
| ``switch`` | 0 | uniform random arms for the first ``k`` pulls, ``k ~ U(switch)`` per sequence, then Gaussian Thompson sampling (which counts the uniform pulls too): contexts that concentrate part way, like a learner's | 6, then 4 |

``posterior`` recomputes the posterior at each of the first ``posterior_dense`` pulls of a sequence
and then every ``posterior_refresh`` pulls (in between it samples from the last one), with the
reference's default settings (``ReferenceConfig``); its Monte Carlo draws come from each row's own
stream. Components of weight 0 are used only by pipelines that name them.

Epsilon decays with the pull count ``t`` of the sequence: ``eps_t = eps0 / (1 + t / tau)`` with
``eps0 ~ U(eps_start)`` and ``tau ~ A * U(eps_tau)`` drawn per sequence.

Prior-information ids (``omnirl.agents.prior``), reused where the meaning matches: in a bandit
every oracle discount gives the same policy (the best arm), so the oracle acts with the reference
id 3, the same id the labels carry as their prompt; UCB1 and Thompson sampling keep a count-based
model of the arms and act optimistically or by posterior sampling: ``MODEL_BASED`` (4); the sample
means of epsilon-greedy are Q-learning at discount 0 with step size ``1 / N``: ``Q_LEARNING`` (5),
its uniform exploration ``RANDOM`` (6), like the uniform component.

Every row draws from its own counter-based stream (``RowStreams``), so its pulls depend on its
task and seed only.
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Mapping, Sequence

import numpy as np

from omnirl._validate import check_float, check_int
from omnirl.agents.mixture import MixtureViews, _check_range, _uniform, check_weights
from omnirl.agents.oracle import batch_sizes, check_rows_tasks_seeds, oracle_tables
from omnirl.agents.prior import REFERENCE, PriorInfo
from omnirl.agents.reference import BanditPosterior, ReferenceConfig
from omnirl.agents.streams import LANES, RowStreams
from omnirl.tasks import MDPTask

BANDIT_COMPONENTS: tuple[str, ...] = ("oracle", "epsilon_greedy", "ucb1", "thompson", "uniform", "posterior",
                                       "switch")
"""Component names of the bandit mixture, in the order of their index (``BanditMix.kind``)."""

BANDIT_WEIGHTS: Mapping[str, float] = MappingProxyType({
    "oracle": 0.05, "epsilon_greedy": 0.25, "ucb1": 0.20, "thompson": 0.20, "uniform": 0.30})
"""The default component weights (sum to 1)."""

BANDIT_TAGS: Mapping[str, tuple[PriorInfo, ...]] = MappingProxyType({
    "oracle": (REFERENCE,), "epsilon_greedy": (PriorInfo.Q_LEARNING, PriorInfo.RANDOM),
    "ucb1": (PriorInfo.MODEL_BASED,), "thompson": (PriorInfo.MODEL_BASED,), "uniform": (PriorInfo.RANDOM,),
    "posterior": (PriorInfo.MODEL_BASED,), "switch": (PriorInfo.RANDOM, PriorInfo.MODEL_BASED)})
"""The prior-information ids each component's actions carry (see the module docstring)."""

UCB_C = 0.05
"""The UCB1 coefficient measured best on generator bandits (see the module docstring)."""
THOMPSON_PRIOR: Mapping[str, float] = MappingProxyType({"prior_mean": 0.75, "prior_std": 1.0, "noise_std": 0.05})
"""Thompson sampling's prior and assumed noise measured best on generator bandits."""

_ORACLE, _EPS, _UCB, _TS, _UNIFORM, _POSTERIOR, _SWITCH = range(len(BANDIT_COMPONENTS))
_N_PARAMS = 4  # per-sequence uniforms: eps0, tau, ucb c, switch point


class _StreamDraws:
    """``rng.random(shape)`` (``shape[0]`` = the rows) from per-row streams: each call of a step takes
    the next ``prod(shape[1:])`` lanes from ``lane`` on (``restart`` before each step's first call)."""

    def __init__(self, streams: RowStreams, lane: int) -> None:
        self.streams, self.lane, self.offset = streams, lane, 0

    def restart(self) -> None:
        self.offset = 0

    def random(self, shape: tuple[int, ...]) -> np.ndarray:
        k = int(np.prod(shape[1:]))
        u = self.streams.uniform(self.lane + self.offset, k)
        self.offset += k
        return u.reshape(shape)


def pick(score: np.ndarray, valid: np.ndarray, u: np.ndarray) -> np.ndarray:
    """``(B,)`` argmax of ``score (B, A)`` over ``valid (B, A)`` actions, ties broken uniformly by
    the uniforms ``u (B, A)`` (a per-row draw, so the choice is the row's own)."""
    s = np.where(valid, score, -np.inf)
    best = s.max(axis=1, keepdims=True)
    tie = s >= best - 1e-12 * np.maximum(1.0, np.abs(best))
    return np.argmax(np.where(tie, u, -1.0), axis=1)


def uniform_arms(u: np.ndarray, n_actions) -> np.ndarray:
    """``(B,)`` uniform random arms in ``[0, n_actions)`` from the uniforms ``u (B,)``; ``n_actions``
    is one count or one per row ``(B,)``."""
    return np.minimum((u * n_actions).astype(np.int64), n_actions - 1)


class ArmStats:
    """Pulls ``N (B, A)`` and reward sums ``R (B, A)`` of ``B`` rows of ``A``-armed bandits."""

    def __init__(self, B: int, A: int) -> None:
        self.N = np.zeros((B, A))  # (B, A) pulls of each arm
        self.R = np.zeros((B, A))  # (B, A) sum of the rewards of each arm
        self._rows = np.arange(B)

    def update(self, actions: np.ndarray, rewards: np.ndarray, rows: np.ndarray | None = None) -> None:
        """Count one pull per row: ``actions (B,)`` paid ``rewards (B,)`` (``rows``: of these rows
        instead, distinct, one per action)."""
        rows = self._rows if rows is None else rows
        self.N[rows, actions] += 1.0
        self.R[rows, actions] += rewards

    def select(self, rows: np.ndarray) -> "ArmStats":
        """A copy holding only ``rows`` (in that order)."""
        out = ArmStats(len(rows), self.N.shape[1])
        out.N, out.R = self.N[rows], self.R[rows]
        return out

    def reset(self, rows: np.ndarray) -> None:
        """Forget ``rows``' pulls (new sequences)."""
        self.N[rows] = 0.0
        self.R[rows] = 0.0

    def means(self) -> np.ndarray:
        """``(B, A)`` sample mean reward of each arm (0 for untried arms)."""
        return self.R / np.maximum(self.N, 1.0)


def greedy_actions(stats: ArmStats, u: np.ndarray) -> np.ndarray:
    """``(B,)`` arms of largest sample mean; ``u (B, A)`` uniforms break ties."""
    return pick(stats.means(), np.ones_like(stats.N, dtype=bool), u)


def ucb1_actions(stats: ArmStats, c: np.ndarray | float, u: np.ndarray) -> np.ndarray:
    """``(B,)`` UCB1 arms with coefficient ``c`` (scalar or ``(B,)``); ``u (B, A)`` break ties."""
    n = stats.N
    untried = n == 0
    any_untried = untried.any(axis=1, keepdims=True)  # (B, 1)
    log_t = np.log(np.maximum(n.sum(axis=1, keepdims=True), 1.0))  # (B, 1)
    c = np.reshape(np.asarray(c, dtype=np.float64), (-1, 1))
    score = stats.means() + c * np.sqrt(2.0 * log_t / np.maximum(n, 1.0))
    return pick(np.where(any_untried, 0.0, score), np.where(any_untried, untried, True), u)


def thompson_actions(stats: ArmStats, z: np.ndarray, prior_mean: float, prior_std: float,
                     noise_std: float) -> np.ndarray:
    """``(B,)`` Gaussian Thompson-sampling arms (see the module docstring); ``z (B, A)`` standard
    normals make the posterior draws."""
    precision = 1.0 / prior_std ** 2 + stats.N / noise_std ** 2  # (B, A)
    mean = (prior_mean / prior_std ** 2 + stats.R / noise_std ** 2) / precision
    return np.argmax(mean + z / np.sqrt(precision), axis=1)


@dataclasses.dataclass(frozen=True)
class BanditMixConfig:
    """Configuration of ``BanditMix`` (defaults: the bandit pipeline's mixture)."""

    weights: Mapping[str, float] = dataclasses.field(default_factory=lambda: dict(BANDIT_WEIGHTS))
    """Component name (one of ``BANDIT_COMPONENTS``) -> non-negative weight; components left out
    have weight 0 and the weights are normalised by their (positive) sum."""
    eps_start: tuple[float, float] = (0.5, 1.0)
    """Range of ``U(lo, hi)`` for epsilon-greedy's initial epsilon ``eps0`` (in [0, 1])."""
    eps_tau: tuple[float, float] = (1.0, 20.0)
    """Range of ``U(lo, hi)`` for epsilon's decay time in units of ``A`` pulls:
    ``eps_t = eps0 / (1 + t / (A * U(lo, hi)))``."""
    ucb_c: tuple[float, float] = (0.02, 0.2)
    """Range of ``U(lo, hi)`` for the UCB1 coefficient of a sequence (reward units)."""
    prior_mean: float = THOMPSON_PRIOR["prior_mean"]
    """Thompson sampling: prior mean of every arm's mean reward."""
    prior_std: float = THOMPSON_PRIOR["prior_std"]
    """Thompson sampling: prior standard deviation of every arm's mean reward (> 0)."""
    noise_std: float = THOMPSON_PRIOR["noise_std"]
    """Thompson sampling: the reward noise's standard deviation assumed by the likelihood (> 0)."""
    switch: tuple[float, float] = (0.0, 256.0)
    """``switch``: range of ``U(lo, hi)`` for the pull at which a sequence turns from uniform pulls
    to Thompson sampling."""
    posterior_dense: int = 16
    """``posterior``: pulls of a sequence before each of which the posterior is recomputed."""
    posterior_refresh: int = 8
    """``posterior``: pulls between recomputations after the first ``posterior_dense``."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "weights", check_weights(self.weights, BANDIT_COMPONENTS))
        for name in ("eps_start", "eps_tau", "ucb_c"):
            _check_range(name, getattr(self, name))
        if not (0.0 <= self.eps_start[0] and self.eps_start[1] <= 1.0):
            raise ValueError(f"eps_start must lie in [0, 1], got {self.eps_start!r}")
        if self.eps_tau[0] <= 0:
            raise ValueError(f"eps_tau must be positive, got {self.eps_tau!r}")
        if self.ucb_c[0] < 0:
            raise ValueError(f"ucb_c must be >= 0, got {self.ucb_c!r}")
        check_float("prior_mean", self.prior_mean)
        check_float("prior_std", self.prior_std, min_value=0.0, min_inclusive=False)
        check_float("noise_std", self.noise_std, min_value=0.0, min_inclusive=False)
        _check_range("switch", self.switch)
        if self.switch[0] < 0:
            raise ValueError(f"switch must be >= 0, got {self.switch!r}")
        check_int("posterior_dense", self.posterior_dense, min_value=0)
        check_int("posterior_refresh", self.posterior_refresh, min_value=1)

    @property
    def probabilities(self) -> np.ndarray:
        """``(len(BANDIT_COMPONENTS),)`` normalised weights in component order."""
        p = np.array([self.weights.get(n, 0.0) for n in BANDIT_COMPONENTS])
        return p / p.sum()


def best_arms(tasks: Sequence[MDPTask]) -> np.ndarray:
    """``(len(tasks),)`` the arm of largest mean reward of each bandit (the oracle's action)."""
    return oracle_tables(list(tasks), 0.0, 1)[:, 0]


def check_bandits(tasks: Sequence[MDPTask], name: str = "tasks") -> None:
    """Raise unless every task is a bandit (one observation id)."""
    for i, t in enumerate(tasks):
        if t.n_obs != 1:
            raise ValueError(f"{name}[{i}] has n_obs={t.n_obs}: the bandit behaviours need bandit tasks (n_obs = 1)")


class BanditMix(MixtureViews):
    """The bandit behaviour mixture for ``B = len(tasks)`` rows (see the module docstring).

    The same interface as ``omnirl.agents.BehaviourMix``: ``act(obs) -> actions``, ``last_tags``,
    ``observe(...)``, ``on_episode_end(rows)`` (nothing: a sequence keeps its component),
    ``reset(rows, tasks, seeds)``, ``kind``, ``label_oracle`` and ``label_actions(obs)`` (the best
    arm, the step labels).
    """

    label_oracle = int(REFERENCE)
    """Prompt of the labels: the reference id (every oracle discount picks the best arm)."""

    def __init__(self, config: BanditMixConfig, tasks: Sequence[MDPTask], seeds: Sequence,
                 n_obs: int = 1, n_actions: int | None = None) -> None:
        if not isinstance(config, BanditMixConfig):
            raise ValueError(f"config must be a BanditMixConfig, got {type(config).__name__}")
        tasks, seeds = list(tasks), list(seeds)
        check_int("n_obs", n_obs, min_value=1, max_value=1)
        self.n_envs, self.n_obs, self.n_actions = B, _, A = batch_sizes(tasks, seeds, n_obs, n_actions)
        check_bandits(tasks)
        self.config = config
        self._cdf = np.cumsum(config.probabilities)
        self._cdf[-1] = 1.0
        self.streams = RowStreams(seeds)
        self.stats = ArmStats(B, A)
        self._rows = np.arange(B)
        self._best = np.zeros(B, dtype=np.int64)  # (B,) best arm of each row's task
        self._kind = np.zeros(B, dtype=np.int64)  # (B,) component of each row
        self._eps0, self._tau, self._c, self._switch = np.zeros(B), np.ones(B), np.zeros(B), np.zeros(B)  # (B,) each
        self.posterior: BanditPosterior | None = None
        """The ``posterior`` rows' statistics (all rows), made when a row first draws that component."""
        self._draws = _StreamDraws(self.streams, LANES["bandit_posterior"])
        self._p = np.full((B, A), 1.0 / A)  # (B, A) each row's last posterior (``posterior`` rows)
        self.t = np.zeros(B, dtype=np.int64)  # (B,) pulls since each row's sequence began
        self._tags = np.full(B, int(PriorInfo.UNKNOWN), dtype=np.int64)
        self.reset(self._rows, tasks, seeds)

    def epsilon(self) -> np.ndarray:
        """``(B,)`` each row's current epsilon (epsilon-greedy rows; the schedule of the others)."""
        return self._eps0 / (1.0 + self.t / self._tau)

    def label_actions(self, obs: np.ndarray) -> np.ndarray:
        """``(B,)`` the best arm of every row (``obs`` is always 0)."""
        return self._best.copy()

    def act(self, obs: np.ndarray) -> np.ndarray:
        """``(B,)`` arms pulled in ``obs (B,)`` (all 0); ``last_tags`` then says who chose them."""
        st, A, cfg, kind = self.streams, self.n_actions, self.config, self._kind
        ties = st.uniform(LANES["bandit_ties"], A)  # (B, A)
        step = st.uniform(LANES["bandit_step"], 2)  # (B, 2): exploration test, uniform arm
        uniform = uniform_arms(step[:, 1], A)
        explore = (kind == _UNIFORM) | ((kind == _EPS) & (step[:, 0] < self.epsilon()))
        actions = np.where(kind == _ORACLE, self._best, greedy_actions(self.stats, ties))
        tags = np.where(kind == _ORACLE, int(REFERENCE), int(PriorInfo.Q_LEARNING))
        learner = kind == _UCB
        if learner.any():
            actions = np.where(learner, ucb1_actions(self.stats, self._c, ties), actions)
        sampler = kind == _TS
        switch = kind == _SWITCH
        sampler |= switch
        if sampler.any():
            z = st.normal(LANES["bandit_normal"], A)  # (B, A)
            actions = np.where(sampler, thompson_actions(self.stats, z, cfg.prior_mean, cfg.prior_std,
                                                         cfg.noise_std), actions)
        explore |= switch & (self.t < self._switch)
        bayes = kind == _POSTERIOR
        if bayes.any():
            due = bayes & ((self.t < cfg.posterior_dense) | (self.t % cfg.posterior_refresh == 0))
            if due.any():
                self._draws.restart()
                self._p = np.where(due[:, None], self.posterior.posterior(self._draws), self._p)
            u = st.uniform(LANES["bandit_step"] + 2)  # (B,) the arm drawn from the posterior
            cdf = np.cumsum(self._p, axis=1)
            drawn = np.minimum((u[:, None] * cdf[:, -1:] >= cdf).sum(1), A - 1)
            actions = np.where(bayes, drawn, actions)
            learner |= bayes
        tags = np.where(learner | sampler, int(PriorInfo.MODEL_BASED), tags)
        self._tags = np.where(explore, int(PriorInfo.RANDOM), tags)
        return np.where(explore, uniform, actions)

    def observe(self, obs, action, reward, next_obs, done) -> None:
        """Count every row's pull (whoever chose it) and move to the next step."""
        self.stats.update(np.asarray(action, dtype=np.int64), np.asarray(reward, dtype=np.float64))
        if self.posterior is not None and (self._kind == _POSTERIOR).any():
            self.posterior.pull(np.asarray(action, dtype=np.int64), np.asarray(reward, dtype=np.float64))
        self.t += 1
        self.streams.advance()

    def on_episode_end(self, rows) -> None:
        """Nothing: a bandit sequence keeps its component (every pull ends an episode)."""

    def reset(self, rows, tasks: Sequence[MDPTask], seeds: Sequence) -> None:
        """Start new sequences in ``rows``: new tasks, seeds, statistics, parameters and components."""
        tasks, seeds = list(tasks), list(seeds)
        r = check_rows_tasks_seeds(rows, tasks, seeds, self.n_envs, self.n_obs, self.n_actions)
        if r.size == 0:
            return
        check_bandits(tasks)
        self.streams.reset(r, seeds)
        self.stats.reset(r)
        if self.posterior is not None:
            self.posterior.reset(r)
        self._p[r] = 1.0 / self.n_actions
        self.t[r] = 0
        self._best[r] = best_arms(tasks)
        cfg = self.config
        u = self.streams.uniform(LANES["bandit_params"], _N_PARAMS, rows=r)  # (k, 4)
        self._eps0[r] = _uniform(cfg.eps_start, u[:, 0])
        self._tau[r] = self.n_actions * _uniform(cfg.eps_tau, u[:, 1])
        self._c[r] = _uniform(cfg.ucb_c, u[:, 2])
        self._switch[r] = _uniform(cfg.switch, u[:, 3])
        first = self.streams.uniform(LANES["bandit_initial"], rows=r)  # (k,) component choice
        self._kind[r] = np.minimum(np.searchsorted(self._cdf, first, side="right"), len(BANDIT_COMPONENTS) - 1)
        if self.posterior is None and (self._kind[r] == _POSTERIOR).any():
            self.posterior = BanditPosterior(self.n_envs, self.n_actions, ReferenceConfig())


__all__ = ["ArmStats", "BANDIT_COMPONENTS", "BANDIT_TAGS", "BANDIT_WEIGHTS", "BanditMix", "BanditMixConfig",
           "THOMPSON_PRIOR", "UCB_C", "best_arms", "check_bandits", "greedy_actions", "pick", "thompson_actions",
           "ucb1_actions", "uniform_arms"]
