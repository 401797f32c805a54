"""The behaviour mixture: which policy acts in each row of a data-synthesis batch.

Each row (sequence) follows one *component* at a time, drawn by weight from:

| component | weight | behaviour | tags |
|---|---|---|---|
| ``random`` | 0.10 | drifting random softmax policy (``RandomPolicy``) | 6 |
| ``noisy_model_based`` | 0.10 | model-based learner, epsilon-greedy with decaying noise | 6 / 4 |
| ``noisy_q_learning`` | 0.10 | Q-learner, epsilon-greedy with decaying noise | 6 / 5 |
| ``model_based_oracle_i`` (i = 0..3) | 4 x 0.10 | noise, oracle ``i`` or the model-based learner | 6 / i / 4 |
| ``noisy_oracle_2``, ``noisy_oracle_3`` | 2 x 0.10 | epsilon-greedy around oracle 2 / 3, epsilon 1 -> 0 | 6 / 2, 3 |
| ``oracle_1``, ``oracle_2``, ``oracle_3`` | 0.02 / 0.03 / 0.05 | pure oracle | 1 / 2 / 3 |

Per-sequence draws (at ``reset``), with ``SA = n_obs * n_actions``:

* ``noisy_model_based``: w.p. 1/2 ``c = c0, gamma ~ U(0.90, 0.99)``, noise 0; else
  ``c = c0 * Exp(1), gamma = 0.99``, noise ``~ U(0.1, 0.5)``. ``noisy_q_learning``: the same with
  ``alpha = alpha0`` or ``alpha0 * Exp(1)`` (and ``c = c0``). Noise decreases by ``U(0, 0.1 / SA)``
  (drawn once) per step.
* ``model_based_oracle_i`` (learner ``gamma = 0.99, c = c0``): noise starts ``U(0, 1)`` and
  decreases by ``U(0, 0.1 / SA)`` per step down to ``U(-0.5, 0.5)``; the oracle probability starts
  ``U(-2, -0.5)`` and increases by ``U(0, 0.1 / SA)`` per step up to ``U(0, 0.2)``. Each step: noise
  w.p. the noise level, else the oracle w.p. the oracle probability, else the learner.
* ``noisy_oracle_j``: epsilon starts at 1 and decreases by ``U(0, 1 / SA)`` per step, unbounded.

Every schedule is a function of the step count of the sequence (it advances whoever acts), and
every learner learns from every transition (whoever acted), so a component switched in
mid-sequence is already trained. Learners share one count model; there are separate value tables
only where hyper-parameters differ (the noisy model-based learner, the model-based learner of the
oracle mixes, the Q-learner). Per sequence, w.p. ``resample_sequence_prob`` the component is
redrawn at each episode end w.p. ``resample_episode_prob`` (``on_episode_end``).

All randomness comes from per-row counter-based streams, so a row's behaviour depends on its task
and seed only, never on the rest of the batch.
"""

from __future__ import annotations

import dataclasses
import numbers
from types import MappingProxyType
from typing import Mapping, Sequence

import numpy as np

from omnirl._validate import check_float, check_int
from omnirl.agents._tabular import CountModel
from omnirl.agents.model_based import ModelValues, run_sweeps
from omnirl.agents.oracle import check_rows_tasks_seeds, oracle_tables
from omnirl.agents.prior import ORACLE_GAMMAS, REFERENCE, PriorInfo
from omnirl.agents.qlearning import QLearner
from omnirl.agents.random_policy import RandomConfig, RandomPolicy
from omnirl.agents.streams import LANES, RowStreams
from omnirl.tasks import MDPTask

COMPONENTS: tuple[str, ...] = (
    "random", "noisy_model_based", "noisy_q_learning",
    "model_based_oracle_0", "model_based_oracle_1", "model_based_oracle_2", "model_based_oracle_3",
    "noisy_oracle_2", "noisy_oracle_3", "oracle_1", "oracle_2", "oracle_3",
)
"""Component names, in the order of their index (``BehaviourMix.kind``)."""

DEFAULT_WEIGHTS: Mapping[str, float] = MappingProxyType({
    "random": 0.10, "noisy_model_based": 0.10, "noisy_q_learning": 0.10,
    "model_based_oracle_0": 0.10, "model_based_oracle_1": 0.10, "model_based_oracle_2": 0.10,
    "model_based_oracle_3": 0.10, "noisy_oracle_2": 0.10, "noisy_oracle_3": 0.10,
    "oracle_1": 0.02, "oracle_2": 0.03, "oracle_3": 0.05,
})
"""The reference behaviour weights (sum to 1)."""

# who acts in a row at a step
_RANDOM, _MB_NOISY, _MB_ORACLE, _Q, _ORACLE, _NOISE = range(6)
_ACTOR_TAG = np.array([PriorInfo.RANDOM, PriorInfo.MODEL_BASED, PriorInfo.MODEL_BASED,
                       PriorInfo.Q_LEARNING, -1, PriorInfo.RANDOM], dtype=np.int64)
# per component: the actor when neither noise nor the mixed-in oracle acts, and its oracle index
_BASE = np.array([_RANDOM, _MB_NOISY, _Q, _MB_ORACLE, _MB_ORACLE, _MB_ORACLE, _MB_ORACLE,
                  _ORACLE, _ORACLE, _ORACLE, _ORACLE, _ORACLE], dtype=np.int64)
_ORACLE_OF = np.array([0, 0, 0, 0, 1, 2, 3, 2, 3, 1, 2, 3], dtype=np.int64)
_N_ORACLES = len(ORACLE_GAMMAS)
_ORACLE_GAMMA = [ORACLE_GAMMAS[PriorInfo(i)] for i in range(_N_ORACLES)]
_N_PARAMS = 36  # per-sequence uniforms drawn for the schedules and learners


class Weights(dict):
    """A read-only ``dict`` of component weights (copyable, picklable and hashable as a value)."""

    def _read_only(self, *args, **kwargs):
        raise TypeError("BehaviourMixConfig.weights is read-only; build a new config instead")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _read_only  # type: ignore[assignment]
    __ior__ = _read_only  # type: ignore[assignment]

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items())))

    def __copy__(self) -> "Weights":
        return self

    def __deepcopy__(self, memo: dict) -> "Weights":
        return self

    def __reduce__(self):
        return (Weights, (dict(self),))


def _check_range(name: str, value) -> None:
    ok = isinstance(value, (tuple, list)) and len(value) == 2 and all(
        isinstance(x, numbers.Real) and not isinstance(x, bool) and np.isfinite(x) for x in value)
    if not ok or value[0] > value[1]:
        raise ValueError(f"{name} must be a pair (lo, hi) of finite numbers with lo <= hi, got {value!r}")


def check_weights(w, components: Sequence[str]) -> Weights:
    """``w`` (a mapping of component name to weight) checked against ``components`` (names known,
    weights finite and non-negative, positive sum) as read-only ``Weights``."""
    if not isinstance(w, Mapping):
        raise ValueError(f"weights must be a mapping of component name to weight, got {w!r}")
    clean: dict[str, float] = {}
    for name, value in w.items():
        if name not in components:
            raise ValueError(f"weights has unknown component {name!r}; known: {list(components)}")
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
            raise ValueError(f"weights[{name!r}] must be a finite number, got {value!r}")
        if value < 0:
            raise ValueError(f"weights[{name!r}] must be >= 0, got {value!r}")
        clean[name] = float(value)
    if sum(clean.values()) <= 0:
        raise ValueError(f"weights must have a positive sum, got {dict(w)!r}")
    return Weights(clean)


def _uniform(bounds: tuple[float, float], u: np.ndarray) -> np.ndarray:
    """``U(lo, hi)`` from uniforms ``u`` in [0, 1)."""
    return bounds[0] + (bounds[1] - bounds[0]) * u


def _c(name: str) -> int:
    return COMPONENTS.index(name)


@dataclasses.dataclass(frozen=True)
class BehaviourMixConfig:
    """Configuration of ``BehaviourMix`` (defaults: the reference behaviour mix)."""

    weights: Mapping[str, float] = dataclasses.field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    """Component name (one of ``COMPONENTS``) -> non-negative weight; components left out have
    weight 0 and the weights are normalised by their (positive) sum."""
    resample_sequence_prob: float = 0.85
    """Probability that a sequence redraws its component at episode ends at all."""
    resample_episode_prob: float = 0.20
    """In such a sequence, probability of a redraw at each episode end."""
    c: float = 0.005
    """Base exploration-bonus coefficient ``c0`` of the learners."""
    q_alpha: float = 0.01
    """Base learning rate ``alpha0`` of the Q-learner, in (0, 1] (``alpha0 * Exp(1)`` is clipped to 1)."""
    sweep_every: int = 256
    """Steps between value-iteration sweeps of the model-based learners (0: never)."""
    sweep_iters: int = 1
    """Value-iteration sweeps each time (>= 1)."""
    random_scale_mean: float = 2.0
    """Mean of the random policy's per-sequence logit scale ``~ Exp``."""
    random_drift_mean: float = 1e-3
    """Mean of the random policy's per-sequence logit drift per step ``~ Exp``."""
    label_oracle: int = int(REFERENCE)
    """``PriorInfo`` id (0-3) of the oracle whose actions ``label_actions`` returns: the reference
    oracle (3, gamma 0.994) by default; 0 (gamma 0) labels the best immediate reward."""
    noisy_clean_prob: float = 0.5
    """Probability that a noisy learner (``noisy_model_based``, ``noisy_q_learning``) is drawn in
    its noise-free flavour (bonus ``c0``, learning rate ``alpha0``, noise 0); otherwise its bonus
    and learning rate are scaled by ``Exp(1)`` and it starts with noise."""
    noisy_clean_gamma: tuple[float, float] = (0.90, 0.99)
    """Range of ``U(lo, hi)`` for the discount of a noise-free noisy learner."""
    noisy_gamma: float = 0.99
    """Discount of a noisy learner in its noisy flavour."""
    noisy_noise: tuple[float, float] = (0.1, 0.5)
    """Range of ``U(lo, hi)`` for a noisy learner's initial noise (noisy flavour)."""
    noise_step: float = 0.1
    """Noise levels fall, and the mixed-in oracle probability rises, by ``U(0, noise_step / (S A))``
    per step (drawn once per sequence)."""
    mix_gamma: float = 0.99
    """Discount of the model-based learner in the ``model_based_oracle_i`` mixes."""
    mix_noise: tuple[float, float] = (0.0, 1.0)
    """Range of the initial noise of a ``model_based_oracle_i`` mix."""
    mix_noise_floor: tuple[float, float] = (-0.5, 0.5)
    """Range of the level the mix's noise stops falling at (below 0: no noise from then on)."""
    mix_oracle_start: tuple[float, float] = (-2.0, -0.5)
    """Range of the mix's initial oracle probability (negative: the oracle joins later)."""
    mix_oracle_ceiling: tuple[float, float] = (0.0, 0.2)
    """Range of the level the mix's oracle probability stops rising at."""
    eps_start: float = 1.0
    """Initial epsilon of the ``noisy_oracle_j`` components."""
    eps_step: float = 1.0
    """Their epsilon falls by ``U(0, eps_step / (S A))`` per step (drawn once per sequence)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "weights", check_weights(self.weights, COMPONENTS))
        check_float("resample_sequence_prob", self.resample_sequence_prob, min_value=0.0, max_value=1.0)
        check_float("resample_episode_prob", self.resample_episode_prob, min_value=0.0, max_value=1.0)
        check_float("c", self.c, min_value=0.0)
        check_float("q_alpha", self.q_alpha, min_value=0.0, max_value=1.0, min_inclusive=False)
        check_int("sweep_every", self.sweep_every, min_value=0)
        check_int("sweep_iters", self.sweep_iters, min_value=1)
        check_float("random_scale_mean", self.random_scale_mean, min_value=0.0)
        check_float("random_drift_mean", self.random_drift_mean, min_value=0.0)
        check_int("label_oracle", self.label_oracle, min_value=0, max_value=_N_ORACLES - 1)
        check_float("noisy_clean_prob", self.noisy_clean_prob, min_value=0.0, max_value=1.0)
        for name in ("noisy_clean_gamma", "noisy_noise", "mix_noise", "mix_noise_floor",
                     "mix_oracle_start", "mix_oracle_ceiling"):
            _check_range(name, getattr(self, name))
        for name in ("noisy_gamma", "mix_gamma"):
            check_float(name, getattr(self, name), min_value=0.0, max_value=1.0, max_inclusive=False)
        if not (0.0 <= self.noisy_clean_gamma[0] and self.noisy_clean_gamma[1] < 1.0):
            raise ValueError(f"noisy_clean_gamma must lie in [0, 1), got {self.noisy_clean_gamma!r}")
        for name in ("noise_step", "eps_step"):
            check_float(name, getattr(self, name), min_value=0.0)
        check_float("eps_start", self.eps_start)

    @property
    def probabilities(self) -> np.ndarray:
        """``(len(COMPONENTS),)`` normalised weights in component order."""
        p = np.array([self.weights.get(n, 0.0) for n in COMPONENTS])
        return p / p.sum()



class MixtureViews:
    """What every behaviour mixture shows of its rows (from its ``_kind`` and ``_tags`` arrays)."""

    _kind: np.ndarray
    _tags: np.ndarray

    @property
    def kind(self) -> np.ndarray:
        """``(B,)`` index (into the mixture's component names) of each row's current component."""
        return self._kind.copy()

    @property
    def last_tags(self) -> np.ndarray:
        """``(B,)`` ``PriorInfo`` id of whoever chose each action of the last ``act``."""
        return self._tags


class BehaviourMix(MixtureViews):
    """The behaviour mixture for ``B = len(tasks)`` rows (see the module docstring).

    ``act(obs) -> actions``, ``last_tags`` (who acted), ``observe(...)`` (every transition; ``done``
    = terminated), ``on_episode_end(rows)`` (maybe redraw the component), ``reset(rows, tasks,
    seeds)`` (new sequences), ``kind`` (component index per row) and ``label_actions(obs)`` (the
    reference oracle's actions, the step-wise labels).
    """

    def __init__(self, config: BehaviourMixConfig, tasks: Sequence[MDPTask], seeds: Sequence,
                 n_obs: int, n_actions: int) -> None:
        if not isinstance(config, BehaviourMixConfig):
            raise ValueError(f"config must be a BehaviourMixConfig, got {type(config).__name__}")
        tasks, seeds = list(tasks), list(seeds)
        if len(tasks) == 0:
            raise ValueError("tasks must hold at least one MDPTask, got an empty sequence")
        if len(seeds) != len(tasks):
            raise ValueError(f"seeds must have one seed per task: got {len(seeds)} seeds for {len(tasks)} tasks")
        self.config = config
        self.n_envs = B = len(tasks)
        self.n_obs = S = check_int("n_obs", n_obs, min_value=1)
        self.n_actions = A = check_int("n_actions", n_actions, min_value=1)
        p = config.probabilities
        self._cdf = np.cumsum(p)
        self._cdf[-1] = 1.0
        used = p > 0
        # which parts exist (components of weight 0 cost nothing)
        self._has_random = bool(used[_c("random")])
        self._has_mb_noisy = bool(used[_c("noisy_model_based")])
        self._has_mb_oracle = bool(used[3:7].any())
        self._has_q = bool(used[_c("noisy_q_learning")])
        self.label_oracle = int(config.label_oracle)
        self._oracles = sorted({self.label_oracle} | {int(_ORACLE_OF[k]) for k in np.flatnonzero(used)
                                                    if _BASE[k] in (_ORACLE, _MB_ORACLE)})
        self.streams = RowStreams(seeds)
        self._rows = np.arange(B, dtype=np.int64)
        self._oracle_flat = np.zeros(B * _N_ORACLES * S, dtype=np.int64)  # (B, 4, S) flat
        has_mb = self._has_mb_noisy or self._has_mb_oracle
        self.model = CountModel(B, S, A, full=has_mb) if (has_mb or self._has_q) else None
        # model-based value heads: the noisy learner and the learner of the oracle mixes
        self._head = {}
        for code, present in ((_MB_NOISY, self._has_mb_noisy), (_MB_ORACLE, self._has_mb_oracle)):
            if present:
                self._head[code] = len(self._head)
        self._mb = ModelValues(B, S, A, heads=len(self._head)) if self._head else None
        self._q = QLearner(B, S, A) if self._has_q else None
        self._random = (RandomPolicy(B, S, A, RandomConfig(config.random_scale_mean, config.random_drift_mean))
                        if self._has_random else None)
        C = len(COMPONENTS)
        # per row and component: noise level eps0 - eps_dec * t floored at eps_floor, and oracle
        # probability op0 + op_inc * t capped at op_ceil (flat (B*C,) arrays)
        self._eps0, self._eps_dec, self._eps_floor = (np.zeros(B * C) for _ in range(3))
        self._op0, self._op_inc, self._op_ceil = (np.zeros(B * C) for _ in range(3))
        self.t = np.zeros(B, dtype=np.int64)  # (B,) steps since each row's sequence began
        self._kind = np.zeros(B, dtype=np.int64)
        self._resample = np.zeros(B, dtype=bool)
        self._tags = np.full(B, int(PriorInfo.UNKNOWN), dtype=np.int64)
        self._actor = np.full(B, _NOISE, dtype=np.int64)
        self.reset(self._rows, tasks, seeds)

    # ----------------------------------------------------------------- views
    @property
    def resamples(self) -> np.ndarray:
        """``(B,)`` whether each row's sequence redraws its component at episode ends."""
        return self._resample.copy()

    def oracle_actions(self, obs: np.ndarray, oracle: int | np.ndarray) -> np.ndarray:
        """``(B,)`` actions of oracle ``oracle`` (a ``PriorInfo`` id 0-3, or one per row) in ``obs``."""
        obs = np.asarray(obs, dtype=np.int64)
        return self._oracle_flat[(self._rows * _N_ORACLES + oracle) * self.n_obs + obs]

    def label_actions(self, obs: np.ndarray) -> np.ndarray:
        """``(B,)`` actions of the label oracle (``config.label_oracle``; by default the reference
        oracle, gamma 0.994) in ``obs``: the step labels."""
        return self.oracle_actions(obs, self.label_oracle)

    # ----------------------------------------------------------------- stepping
    def act(self, obs: np.ndarray) -> np.ndarray:
        """``(B,)`` behaviour actions in ``obs (B,)``; ``last_tags`` then says who chose them."""
        obs = np.asarray(obs, dtype=np.int64)
        st, A = self.streams, self.n_actions
        at = self._rows * len(COMPONENTS) + self._kind
        t = self.t.astype(np.float64)
        eps = np.maximum(self._eps0[at] - self._eps_dec[at] * t, self._eps_floor[at])
        op = np.minimum(self._op0[at] + self._op_inc[at] * t, self._op_ceil[at])
        u = st.uniform(LANES["mix_step"], 3)  # (B, 3): noise test, oracle test, noise action
        noise = u[:, 0] < eps
        use_oracle = ~noise & (u[:, 1] < op)
        actor = np.where(noise, _NOISE, np.where(use_oracle, _ORACLE, _BASE[self._kind]))
        oracle = _ORACLE_OF[self._kind]
        actions = np.where(noise, np.minimum((u[:, 2] * A).astype(np.int64), A - 1),
                           self.oracle_actions(obs, oracle))
        tags = np.where(actor == _ORACLE, oracle, _ACTOR_TAG[actor])
        for code, present in ((_RANDOM, self._random is not None), (_MB_NOISY, _MB_NOISY in self._head),
                              (_MB_ORACLE, _MB_ORACLE in self._head), (_Q, self._q is not None)):
            if not present:
                continue
            idx = np.flatnonzero(actor == code)
            if idx.size == 0:
                continue
            if code == _RANDOM:
                actions[idx] = self._random.act_rows(idx, obs[idx], st)
            elif code == _Q:
                z = st.normal(LANES["q_bonus"], A, rows=idx)
                actions[idx] = self._q.act_rows(idx, obs[idx], self.model, z)
            else:
                z = st.normal(LANES["mb_bonus"], A, rows=idx)
                actions[idx] = self._mb.act_rows(idx, obs[idx], self.model, z, head=self._head[code])
        self._actor, self._tags = actor, tags
        return actions

    def observe(self, obs, action, reward, next_obs, done) -> None:
        """Show every row's transition to every learner; ``done`` is *terminated*."""
        if self.model is not None:
            s = np.asarray(obs, dtype=np.int64)
            cell = self.model.cells(s, np.asarray(action, dtype=np.int64))
            s2 = np.asarray(next_obs, dtype=np.int64)
            r = np.asarray(reward, dtype=np.float64)
            term = np.asarray(done, dtype=bool)
            self.model.update(cell, r, s2, term)
            if self._q is not None:
                self._q.update(cell, r, s2, term)
            if self._mb is not None:
                counts = np.take(self.model.N.reshape(-1, self.n_obs), cell, axis=0)  # (B, S)
                self._mb.update(cell, s, self.model, counts, s2, term)
        self.t += 1
        if self._mb is not None:
            run_sweeps(self.t, self.config.sweep_every, self.config.sweep_iters, self.model, self._mb)
        self.streams.advance()

    def on_episode_end(self, rows) -> None:
        """Episodes ended in ``rows``: in resampling sequences, redraw the component w.p.
        ``resample_episode_prob``."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size == 0:
            return
        u = self.streams.uniform(LANES["mix_resample"], 2, rows=rows)  # redraw test, choice
        redraw = self._resample[rows] & (u[:, 0] < self.config.resample_episode_prob)
        r = rows[redraw]
        self._kind[r] = self._choose(u[redraw, 1])

    def _choose(self, u: np.ndarray) -> np.ndarray:
        return np.minimum(np.searchsorted(self._cdf, u, side="right"), len(COMPONENTS) - 1)

    # ----------------------------------------------------------------- new sequences
    def reset(self, rows, tasks: Sequence[MDPTask], seeds: Sequence) -> None:
        """Start new sequences in ``rows``: new tasks, seeds, learners, schedules and components."""
        tasks, seeds = list(tasks), list(seeds)
        r = check_rows_tasks_seeds(rows, tasks, seeds, self.n_envs, self.n_obs, self.n_actions)
        if r.size == 0:
            return
        S, A, C, k = self.n_obs, self.n_actions, len(COMPONENTS), r.size
        SA = float(S * A)
        st = self.streams
        st.reset(r, seeds)
        self.t[r] = 0
        tables = self._oracle_flat.reshape(self.n_envs, _N_ORACLES, S)
        gammas = [_ORACLE_GAMMA[i] for i in self._oracles]
        for i in self._oracles:
            tables[r, i] = oracle_tables(tasks, _ORACLE_GAMMA[i], S, also=gammas)

        u = st.uniform(LANES["params"], _N_PARAMS, rows=r)  # (k, 36) per-sequence uniforms
        eps0, eps_dec = np.zeros((k, C)), np.zeros((k, C))
        eps_floor = np.full((k, C), -np.inf)
        op0, op_inc, op_ceil = np.full((k, C), -1.0), np.zeros((k, C)), np.full((k, C), -1.0)
        cfg = self.config
        c0 = cfg.c
        step = cfg.noise_step / SA
        # noisy learners: two flavours each
        for comp, j in (("noisy_model_based", 0), ("noisy_q_learning", 5)):
            col = _c(comp)
            clean = u[:, j] < cfg.noisy_clean_prob
            gamma = np.where(clean, _uniform(cfg.noisy_clean_gamma, u[:, j + 1]), cfg.noisy_gamma)
            scale = np.where(clean, 1.0, -np.log1p(-u[:, j + 2]))  # Exp(1) in the noisy flavour
            eps0[:, col] = np.where(clean, 0.0, _uniform(cfg.noisy_noise, u[:, j + 3]))
            eps_dec[:, col] = u[:, j + 4] * step
            if comp == "noisy_model_based" and _MB_NOISY in self._head:
                h = self._head[_MB_NOISY]
                self._mb.gamma[h, r], self._mb.c[h, r] = gamma, c0 * scale
            if comp == "noisy_q_learning" and self._q is not None:
                self._q.gamma[r], self._q.c[r] = gamma, c0
                self._q.alpha[r] = np.minimum(cfg.q_alpha * scale, 1.0)
        # model-based learner mixed with oracle i
        cols = slice(_c("model_based_oracle_0"), _c("model_based_oracle_3") + 1)
        eps0[:, cols] = _uniform(cfg.mix_noise, u[:, 10:14])
        eps_dec[:, cols] = u[:, 14:18] * step
        eps_floor[:, cols] = _uniform(cfg.mix_noise_floor, u[:, 18:22])
        op0[:, cols] = _uniform(cfg.mix_oracle_start, u[:, 22:26])
        op_inc[:, cols] = u[:, 26:30] * step
        op_ceil[:, cols] = _uniform(cfg.mix_oracle_ceiling, u[:, 30:34])
        if _MB_ORACLE in self._head:
            h = self._head[_MB_ORACLE]
            self._mb.gamma[h, r], self._mb.c[h, r] = cfg.mix_gamma, c0
        # epsilon-greedy oracles
        cols = slice(_c("noisy_oracle_2"), _c("noisy_oracle_3") + 1)
        eps0[:, cols] = cfg.eps_start
        eps_dec[:, cols] = u[:, 34:36] * (cfg.eps_step / SA)
        at = (r[:, None] * C + np.arange(C)).reshape(-1)
        for dst, src in ((self._eps0, eps0), (self._eps_dec, eps_dec), (self._eps_floor, eps_floor),
                         (self._op0, op0), (self._op_inc, op_inc), (self._op_ceil, op_ceil)):
            dst[at] = src.reshape(-1)

        if self.model is not None:
            self.model.reset(r)
        for v in (self._mb, self._q):
            if v is not None:
                v.reset(r, tasks)
        if self._random is not None:
            self._random.redraw(r, st)
        first = st.uniform(LANES["mix_initial"], 2, rows=r)  # component choice, resampling flag
        self._kind[r] = self._choose(first[:, 0])
        self._resample[r] = first[:, 1] < self.config.resample_sequence_prob
