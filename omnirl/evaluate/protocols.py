"""The model's evaluation protocols: online RL, offline RL and imitation, in one batched loop.

    from omnirl.evaluate.protocols import ProtocolConfig, evaluate_model
    config = ProtocolConfig(protocol="imitation", steps=2000, demo_steps=1000, memory_steps=(0, 2000))
    result = evaluate_model(model, batch, config, seed=0)
    result.episodes.summary()        # Table-1 columns of the acting phase
    result.entropy_steps, result.entropy   # the policy's entropy against steps in context
    result.memory[2000]              # (B, D) recurrent memory of every row after 2000 steps

One ``OmniRLAgent`` drives every row of an ``EnvBatch`` (``omnirl.evaluate.envs.base``); each row
has its own context, carried in the model's recurrent state only, so a step costs the same at any
context length. A run has up to two phases:

1. **Demonstrations** (``offline`` and ``imitation``; the reference's ``learn_from_data``): the
   batch is reset with a seed derived from ``seed`` and a demonstrator acts in it until every row
   has ``demo_steps`` context entries (environment steps and episode-end markers). Each step enters
   the context as in the training data: the run's ``prompt`` (3, the reference policy, unless
   set), the tag of whoever chose the
   action (3 = the oracle, 6 = a random action), the native action and the shaped reward; an ended
   episode adds its end marker (terminal observation, action ``A``, reward 0, prompt and tag 7).
   The demonstrator is the oracle (``imitation``), or for ``offline`` an oracle whose every action
   is replaced by a uniformly random one with probability ``demo_epsilon`` (``noisy_oracle``) or
   the uniform random policy (``random``). The entries are pushed through the model in chunks
   (``OmniRLAgent.load_context``, equal to committing them one at a time); a row whose last entry
   is not an end marker then gets one (the demonstration is cut there), so the acting phase starts
   a new episode in every row. The demonstrations' finished episodes are recorded on their own
   (``EvalResult.demo_episodes``).
2. **Acting** (every protocol; ``online`` has only this phase): the batch is reset with ``seed``
   itself, so the acting phases of different protocols with one seed start from the same states.
   For ``steps`` steps: the agent acts with ``prompt`` and tag ``own_tag`` (default 6) at the scheduled
   temperature; its action ``a`` in ``[0, A)`` goes to the environment as ``a % n_actions``
   (``remap_actions``) while the unmapped ``a`` enters the context with the shaped reward; where
   an episode ended, its end marker follows with the terminal observation
   (``StepResult.next_obs``). Every step is recorded (``EvalResult.episodes``).

Temperature schedule (the reference's ``GeneratorBase._scheduler``), at acting step ``t`` (from 0):
``linear``: ``T = T_ini + min(t, T_steps) (T_fin - T_ini) / T_steps``; ``exponential``:
``T = T_ini (T_fin / T_ini) ** (min(t, T_steps) / T_steps)``. The policy logits are divided by
``T`` before the softmax (``T = 0``: greedy).

Entropy (the paper's Appendix D.1): at every acting step the entropy of the model's action
distribution (over its ``A`` actions, the end marker excluded, so at most ``log A``), averaged over
rows, both of the model's own policy (temperature 1: ``entropy``) and of the distribution actually
sampled from (at the scheduled temperature: ``sampling_entropy``), binned against the step in
context (acting step plus ``demo_steps``).

Memory: at the acting steps in ``memory_steps`` (after that many steps; 0 = before the first, after
the demonstrations) every row's recurrent state is stored flattened (``OmniRLAgent.memory``), e.g.
for t-SNE plots of the memory across tasks. ``D`` is the size of the whole state: small for the
tiny presets (a few thousand floats), about 0.6M floats per row for the paper's sizes.

Randomness: the agent samples from a generator seeded with ``seed``; the demonstrator's noise and
random actions come from their own stream of ``seed``; the environments from ``seed`` (acting) and
a seed derived from it (demonstrations). No global random state is used, so a run is reproduced by
its seed.

``imitation_gap(model, batch_factory, steps, seed)`` compares the early score after oracle
demonstrations with the online one: a model that learns in context from demonstrations scores
higher with them.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable

import numpy as np
import torch

from omnirl._validate import check_choice, check_float, check_int
from omnirl.agents.prior import N_PRIOR, ORACLE_GAMMAS, REFERENCE, PriorInfo
from omnirl.evaluate.envs.base import EnvBatch, EnvInfo, remap_actions
from omnirl.evaluate.records import EpisodeRecorder, Episodes
from omnirl.model.agent import OmniRLAgent
from omnirl.model.omnirl import OmniRL
from omnirl.tasks.rng import make_rng, seed_to_key

PROTOCOLS = ("online", "offline", "imitation")
DEMO_POLICIES = {"imitation": ("oracle",), "offline": ("noisy_oracle", "random"), "online": ()}
"""Demonstrators each protocol allows (the first is its default)."""
SCHEDULES = ("linear", "exponential")
ORACLE_TAG = int(REFERENCE)
"""Tag of steps the oracle chose (3), and the default prompt of every step (the reference policy)."""
RANDOM_TAG = int(PriorInfo.RANDOM)
"""Tag of steps a random action was taken, and the default tag of the agent's own steps (6)."""
UNKNOWN_TAG = int(PriorInfo.UNKNOWN)
"""Tag of end markers (7)."""
PREFILL_STEPS = 1 << 16
"""Steps (rows times chunk length) the model reads per call while loading demonstrations."""
_DEMO_STREAM = 0xDE30
"""Sub-stream of ``seed`` for the demonstrations (environment reset seed and the demonstrator)."""


@dataclasses.dataclass(frozen=True)
class ProtocolConfig:
    """One evaluation run of the model (see the module docstring)."""

    protocol: str = "online"
    """``online`` (empty context), ``offline`` (noisy or random demonstrations first) or
    ``imitation`` (oracle demonstrations first)."""
    steps: int = 1000
    """Environment steps per row of the acting phase."""
    demo_steps: int = 0
    """Context entries per row (steps and end markers) of demonstrations before acting: 0 for
    ``online``, at least 1 for ``offline`` and ``imitation``."""
    demo_policy: str | None = None
    """Demonstrator: ``oracle`` (``imitation``, the default there), ``noisy_oracle`` (``offline``'s
    default) or ``random`` (``offline``); ``None`` takes the protocol's default."""
    demo_epsilon: float = 0.5
    """``noisy_oracle``: probability that a demonstration step takes a uniformly random native
    action (tag 6) instead of the oracle's (tag 3)."""
    t_initial: float = 1.0
    """Sampling temperature at the first acting step (the reference's ``T_ini``)."""
    t_final: float = 0.1
    """Sampling temperature from step ``t_steps`` on (``T_fin``)."""
    t_steps: int = 10000
    """Acting steps over which the temperature moves from ``t_initial`` to ``t_final``."""
    schedule: str = "linear"
    """Temperature schedule: ``linear`` or ``exponential`` (geometric; both temperatures > 0)."""
    own_tag: int = RANDOM_TAG
    """Tag (prior id, ``omnirl.agents.prior``) the agent's own actions enter its context with: 6
    (random, the tag of the training data's exploratory actions; measured best, README "Online
    decoding"), 7 (unknown, the reference's choice) or another behaviour's id, e.g. 4 (a learner)."""
    prompt: int = ORACLE_TAG
    """Prompt of every step (acting and demonstrations): the id of the oracle whose action the model
    is asked for (``omnirl.agents.prior``): 3, the reference policy (gamma 0.994), as in the paper;
    0, the best immediate action, for a model trained on gamma-0 labels (the contextual bandit's
    ``myopic_probe``). A model asked for an oracle its training data never labelled answers for
    whatever that prompt meant in training."""
    memory_steps: tuple[int, ...] = ()
    """Acting steps (in ``[0, steps]``) after which every row's recurrent memory is stored."""
    entropy_bins: int = 20
    """Bins of the entropy curves over the acting steps (at most ``steps``)."""

    def __post_init__(self) -> None:
        check_choice("protocol", self.protocol, PROTOCOLS)
        check_int("steps", self.steps, min_value=1)
        check_int("demo_steps", self.demo_steps, min_value=0)
        if self.protocol == "online" and self.demo_steps:
            raise ValueError(f"demo_steps must be 0 for protocol='online', got {self.demo_steps}")
        if self.protocol != "online" and not self.demo_steps:
            raise ValueError(f"demo_steps must be >= 1 for protocol={self.protocol!r}, got 0")
        if self.demo_policy is not None:
            allowed = DEMO_POLICIES[self.protocol]
            if self.demo_policy not in allowed:
                raise ValueError(f"demo_policy must be one of {list(allowed)!r} for protocol="
                                 f"{self.protocol!r} (or None), got {self.demo_policy!r}")
        check_float("demo_epsilon", self.demo_epsilon, min_value=0.0, max_value=1.0)
        check_float("t_initial", self.t_initial, min_value=0.0)
        check_float("t_final", self.t_final, min_value=0.0)
        check_int("t_steps", self.t_steps, min_value=1)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_int("own_tag", self.own_tag, min_value=0, max_value=N_PRIOR - 1)
        check_int("prompt", self.prompt, min_value=0, max_value=len(ORACLE_GAMMAS) - 1)
        if self.schedule == "exponential":
            for name in ("t_initial", "t_final"):
                check_float(name, getattr(self, name), min_value=0.0, min_inclusive=False)
        if isinstance(self.memory_steps, (str, bytes)) or not hasattr(self.memory_steps, "__iter__"):
            raise ValueError(f"memory_steps must be a sequence of integers, got {self.memory_steps!r}")
        steps = tuple(sorted({check_int("memory_steps", s, min_value=0, max_value=self.steps)
                              for s in self.memory_steps}))
        object.__setattr__(self, "memory_steps", steps)
        check_int("entropy_bins", self.entropy_bins, min_value=1)

    @property
    def demonstrator(self) -> str | None:
        """The demonstrator this run uses (``None`` for ``online``)."""
        allowed = DEMO_POLICIES[self.protocol]
        if not allowed:
            return None
        return self.demo_policy if self.demo_policy is not None else allowed[0]

    def temperature(self, step: int) -> float:
        """Sampling temperature at acting step ``step`` (from 0; see the module docstring)."""
        step = check_int("step", step, min_value=0)
        frac = min(step, self.t_steps) / self.t_steps
        if self.schedule == "linear":
            return self.t_initial + frac * (self.t_final - self.t_initial)
        return self.t_initial * (self.t_final / self.t_initial) ** frac


@dataclasses.dataclass(frozen=True)
class Demonstrations:
    """Demonstrations as context: ``(B, T)`` arrays, ``T`` entries per row (steps and end markers),
    ready for ``OmniRLAgent.load_context``, and what it took to make them."""

    trajectory: dict[str, np.ndarray]
    """``obs``, ``prompt``, ``tag``, ``action`` (int64) and ``reward`` (float32, shaped), ``(B, T)``."""
    episodes: Episodes
    """The demonstrations' episodes that finished within each row's ``T`` entries."""
    last_next_obs: np.ndarray
    """``(B,)`` the observation each row's last step led to (where its demonstration is cut)."""
    ends_with_marker: np.ndarray
    """``(B,)`` bool: the row's last entry is an end marker."""
    env_steps: np.ndarray
    """``(B,)`` environment steps in each row's ``T`` entries."""


@dataclasses.dataclass(frozen=True)
class EvalResult:
    """What ``evaluate_model`` returns (see the module docstring)."""

    episodes: Episodes
    """Finished episodes of the acting phase."""
    demo_episodes: Episodes
    """Finished episodes of the demonstrations (none for ``online``)."""
    entropy_steps: np.ndarray
    """``(bins,)`` centres of the entropy bins, in steps in context (acting step + ``demo_steps``)."""
    entropy: np.ndarray
    """``(bins,)`` mean entropy (nats) of the model's policy at temperature 1 in each bin."""
    sampling_entropy: np.ndarray
    """``(bins,)`` mean entropy of the distribution sampled from (scheduled temperature)."""
    step_entropy: np.ndarray
    """``(steps,)`` the model's policy entropy at each acting step, averaged over rows."""
    step_sampling_entropy: np.ndarray
    """``(steps,)`` the sampled distribution's entropy at each acting step, averaged over rows."""
    memory: dict[int, np.ndarray]
    """Acting step -> ``(B, D)`` float32 recurrent memory of every row (``memory_steps``)."""
    infos: tuple[EnvInfo, ...]
    """The rows' environments."""
    config: ProtocolConfig
    """The run's configuration."""
    seed: int
    """The run's seed."""
    timing: dict[str, float]
    """Seconds: ``demo_s`` (making the demonstrations), ``prefill_s`` (loading them into the
    context), ``acting_s`` (the acting phase), ``env_s`` (of which in the environments and the
    recorder); ``env_steps_per_s`` = rows x steps / ``acting_s``."""


# --------------------------------------------------------------------------- checks and seeds
def check_model_covers(model: OmniRL, infos: tuple[EnvInfo, ...]) -> None:
    """Raise unless the model's observation and action vocabularies cover every row's environment."""
    c = model.config
    for i, info in enumerate(infos):
        if info.n_obs > c.n_obs:
            raise ValueError(f"environment {info.name} (row {i}) has n_obs={info.n_obs}, more "
                             f"than the model's n_obs={c.n_obs}")
        if info.n_actions > c.n_actions:
            raise ValueError(f"environment {info.name} (row {i}) has n_actions={info.n_actions}, more "
                             f"than the model's n_actions={c.n_actions}")


def demo_seed(seed: int) -> int:
    """The environment seed of the demonstrations of a run with ``seed`` (different from ``seed``)."""
    return int(seed_to_key((check_int("seed", seed, min_value=0), _DEMO_STREAM))) >> 1


def _entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy ``(B,)`` (nats) of ``softmax(logits)``, ``logits (B, A)``."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


def _bin_means(values: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """``(centres (bins,), means (bins,))`` of ``values (n,)`` (``n >= bins``) over ``bins`` equal
    bins of the indices ``[0, n)``; a centre is the mean index of its bin."""
    n = values.size
    idx = (np.arange(n) * bins) // n  # (n,) bin of each index
    counts = np.bincount(idx, minlength=bins)
    centres = np.bincount(idx, weights=np.arange(n, dtype=np.float64), minlength=bins) / counts
    return centres, np.bincount(idx, weights=values, minlength=bins) / counts


# --------------------------------------------------------------------------- demonstrations
def demonstrations(batch: EnvBatch, length: int, seed: int, *, end_action: int, policy: str = "oracle",
                   epsilon: float = 0.0, prompt: int = ORACLE_TAG) -> Demonstrations:
    """Run a demonstrator in ``batch`` (reset with ``demo_seed(seed)``) until every row has
    ``length`` context entries; see the module docstring. ``end_action``: the model's end-marker
    action id (its ``n_actions``); ``policy``: ``oracle``, ``noisy_oracle`` (random action with
    probability ``epsilon``) or ``random``; ``prompt``: the prompt of every entry but end markers."""
    L = check_int("length", length, min_value=1)
    check_choice("policy", policy, ("oracle", "noisy_oracle", "random"))
    epsilon = check_float("epsilon", epsilon, min_value=0.0, max_value=1.0)
    end_action = check_int("end_action", end_action, min_value=1)
    B = batch.n_envs
    n_actions = np.array([i.n_actions for i in batch.infos], dtype=np.int64)
    rng = make_rng((check_int("seed", seed, min_value=0), _DEMO_STREAM))
    traj = {"obs": np.zeros((B, L), np.int64), "prompt": np.full((B, L), prompt, np.int64),
            "tag": np.zeros((B, L), np.int64), "action": np.zeros((B, L), np.int64),
            "reward": np.zeros((B, L), np.float32)}
    pos = np.zeros(B, np.int64)  # (B,) entries written
    env_steps = np.zeros(B, np.int64)  # (B,) steps among them
    last_next = np.zeros(B, np.int64)
    marker_last = np.zeros(B, bool)
    recorder = EpisodeRecorder(batch.infos)
    rows = np.arange(B)
    obs = batch.reset(demo_seed(seed)).copy()
    while (pos < L).any():
        random_action = np.minimum((rng.random(B) * n_actions).astype(np.int64), n_actions - 1)
        noisy = rng.random(B) < epsilon
        if policy == "random":
            action, tag = random_action, np.full(B, RANDOM_TAG, np.int64)
        else:
            oracle = np.asarray(batch.oracle_actions(), dtype=np.int64)
            if policy == "oracle":
                noisy[:] = False
            action = np.where(noisy, random_action, oracle)
            tag = np.where(noisy, RANDOM_TAG, ORACLE_TAG)
        result = batch.step(action)
        recorder.record(result)
        live = rows[pos < L]
        p = pos[live]
        traj["obs"][live, p] = obs[live]
        traj["tag"][live, p] = tag[live]
        traj["action"][live, p] = action[live]
        traj["reward"][live, p] = result.reward[live]
        env_steps[live] += 1
        last_next[live] = result.next_obs[live]
        marker_last[live] = False
        pos[live] += 1
        ended = rows[(result.terminated | result.truncated) & (pos < L)]
        p = pos[ended]
        traj["obs"][ended, p] = result.next_obs[ended]
        traj["prompt"][ended, p] = UNKNOWN_TAG
        traj["tag"][ended, p] = UNKNOWN_TAG
        traj["action"][ended, p] = end_action
        traj["reward"][ended, p] = 0.0
        marker_last[ended] = True
        pos[ended] += 1
        obs = np.asarray(batch.obs).copy()
    episodes = recorder.episodes()
    episodes = dataclasses.replace(episodes.select(episodes.end_step <= env_steps[episodes.row]),
                                   steps=int(env_steps.max()))
    return Demonstrations(traj, episodes, last_next, marker_last, env_steps)


# --------------------------------------------------------------------------- the loop
def evaluate_model(model: OmniRL, batch: EnvBatch, config: ProtocolConfig, seed: int) -> EvalResult:
    """Run ``config``'s protocol with ``model`` acting in every row of ``batch`` (see the module
    docstring)."""
    if not isinstance(model, OmniRL):
        raise ValueError(f"model must be an OmniRL model, got {type(model).__name__}")
    if not isinstance(config, ProtocolConfig):
        raise ValueError(f"config must be an ProtocolConfig, got {type(config).__name__}")
    seed = check_int("seed", seed, min_value=0)
    infos = tuple(batch.infos)
    check_model_covers(model, infos)
    B = batch.n_envs
    A = model.config.n_actions
    n_actions = np.array([i.n_actions for i in infos], dtype=np.int64)  # (B,)
    agent = OmniRLAgent(model, B, seed=seed, chunk=max(16, PREFILL_STEPS // B))
    timing = {"demo_s": 0.0, "prefill_s": 0.0}

    demo_episodes = EpisodeRecorder(infos).episodes()
    if config.demonstrator is not None:
        t0 = time.perf_counter()
        demo = demonstrations(batch, config.demo_steps, seed, end_action=A, policy=config.demonstrator,
                              epsilon=config.demo_epsilon, prompt=config.prompt)
        t1 = time.perf_counter()
        agent.load_context(demo.trajectory)
        if not demo.ends_with_marker.all():  # cut episodes end here
            agent.end_episode(demo.last_next_obs, rows=~demo.ends_with_marker)
        timing.update(demo_s=t1 - t0, prefill_s=time.perf_counter() - t1)
        demo_episodes = demo.episodes

    recorder = EpisodeRecorder(infos)
    memory: dict[int, np.ndarray] = {}
    ent = np.zeros(config.steps)
    sampled_ent = np.zeros(config.steps)
    env_s = 0.0
    t0 = time.perf_counter()
    obs = np.asarray(batch.reset(seed)).copy()  # (B,)
    for t in range(config.steps):
        if t in config.memory_steps:
            memory[t] = agent.memory().cpu().numpy().astype(np.float32)
        temperature = config.temperature(t)
        action = agent.act(obs, prompt=config.prompt, tag=config.own_tag, temperature=temperature)  # (B,) in [0, A)
        logits = agent.last_logits  # (B, A)
        ent[t] = float(_entropy(logits).mean())
        sampled_ent[t] = float(_entropy(logits / temperature).mean()) if temperature > 0 else 0.0
        a = action.cpu().numpy()
        e0 = time.perf_counter()
        result = batch.step(remap_actions(a, n_actions))
        recorder.record(result)
        done = result.terminated | result.truncated
        env_s += time.perf_counter() - e0
        agent.observe(obs, action, result.reward, done=done, terminal_obs=result.next_obs,
                      prompt=config.prompt, tag=config.own_tag)
        obs = np.asarray(batch.obs).copy()
    if config.steps in config.memory_steps:
        memory[config.steps] = agent.memory().cpu().numpy().astype(np.float32)
    acting_s = time.perf_counter() - t0
    timing.update(acting_s=acting_s, env_s=env_s, env_steps_per_s=B * config.steps / acting_s)

    bins = min(config.entropy_bins, config.steps)
    centres, entropy = _bin_means(ent, bins)
    _, sampling_entropy = _bin_means(sampled_ent, bins)
    return EvalResult(episodes=recorder.episodes(), demo_episodes=demo_episodes,
                      entropy_steps=centres + config.demo_steps, entropy=entropy,
                      sampling_entropy=sampling_entropy, step_entropy=ent, step_sampling_entropy=sampled_ent,
                      memory=memory, infos=infos, config=config, seed=seed, timing=timing)


def imitation_gap(model: OmniRL, batch_factory: Callable[[], EnvBatch], steps: int, seed: int, *,
                  demo_steps: int | None = None, temperature: float = 0.1) -> tuple[float, float]:
    """``(imitation score, online score)``: the mean normalised score of the episodes finished in
    ``steps`` acting steps after ``demo_steps`` (default ``steps``) entries of oracle
    demonstrations, and with an empty context, at a constant ``temperature``. Each run gets a fresh
    batch from ``batch_factory``; both act from the same environment states (same ``seed``). A model
    that imitates in context scores higher with the demonstrations. NaN where no episode finished."""
    steps = check_int("steps", steps, min_value=1)
    demo_steps = steps if demo_steps is None else check_int("demo_steps", demo_steps, min_value=1)
    temperature = check_float("temperature", temperature, min_value=0.0)
    common = dict(steps=steps, t_initial=temperature, t_final=temperature, t_steps=1)
    scores = []
    for config in (ProtocolConfig(protocol="imitation", demo_steps=demo_steps, **common), ProtocolConfig(**common)):
        episodes = evaluate_model(model, batch_factory(), config, seed).episodes
        finite = episodes.score[np.isfinite(episodes.score)]
        scores.append(float(finite.mean()) if finite.size else math.nan)
    return scores[0], scores[1]


__all__ = ["ProtocolConfig", "EvalResult", "Demonstrations", "evaluate_model", "demonstrations",
           "imitation_gap", "check_model_covers", "demo_seed", "PROTOCOLS", "SCHEDULES"]
