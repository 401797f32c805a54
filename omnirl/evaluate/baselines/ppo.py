"""PPO: proximal policy optimisation (Schulman et al. 2017, the paper's Table 1 baseline "PPO"),
one independent learner per row of the batch.

The authors ran Stable-Baselines3's PPO once per task. Here every row of an ``EnvBatch`` is one
such learner with its own actor and critic (``BatchedMLP``: per-row weights, evaluated together
by batched matrix products), its own rollout buffer, advantage normalisation, gradient clipping
and Adam moments, so ``B`` tasks train at the cost of one and no information passes between rows.

Per row, as in SB3's ``PPO("MlpPolicy")``:

* observation ``s`` -> one-hot (padded to the largest ``n_obs``) -> separate actor and critic
  MLPs (``layers x hidden``, tanh, orthogonal init with gains sqrt(2) / 0.01 actor / 1 critic);
  padded actions get a logit of -1e9 (never sampled, no entropy);
* every ``n_steps`` environment steps the rollout is used for ``n_epochs`` epochs of minibatches
  of ``batch_size``: advantages by GAE(``gamma``, ``gae_lambda``) normalised per minibatch, the
  clipped surrogate ``-min(rho A, clip(rho, 1 - clip, 1 + clip) A)``, the value loss
  ``(V - G)^2`` weighted ``vf_coef``, an entropy bonus ``ent_coef``, the row's gradient clipped to
  norm ``max_grad_norm``, Adam (``lr``, eps 1e-5);
* the agent learns from the shaped reward; a terminated episode stops the bootstrap, a truncated
  one bootstraps from ``V`` of the observation it stopped in (SB3's time-limit handling).

Defaults follow SB3 except where its values are meant for millions of steps: ``n_steps`` 2048 ->
128 (one rollout per 2048-step budget would be a single update), ``batch_size`` 64 -> 32,
``lr`` 3e-4 -> 1e-3 and ``ent_coef`` 0 -> 0.01 (with a few thousand steps per task PPO otherwise
barely moves; the paper's PPO needs ~10^5 steps on these tasks, Figure 9). ``SB3_DEFAULTS`` holds
SB3's own values for comparison.

Like TQL-UCB (and unlike the paper's periodic test episodes) it is measured on its training
episodes. Actions are sampled from per-row counter streams and minibatches are per-row
permutations drawn the same way, so a row's run does not depend on the batch around it (up to
floating-point differences of batched kernels).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from omnirl._threads import torch_threads
from omnirl._validate import check_float, check_int
from omnirl.evaluate.baselines._common import (TAG_PPO_ACT, TAG_PPO_INIT, TAG_PPO_SHUFFLE, action_mask,
                                               check_config, check_run, row_sizes, streams)
from omnirl.evaluate.baselines._nets import BatchedMLP, clip_rows, masked_logits
from omnirl.evaluate.records import EpisodeRecorder, Episodes


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """Hyper-parameters of PPO (the same in every row)."""

    n_steps: int = 128
    """Environment steps per row between two updates (the rollout length)."""
    batch_size: int = 32
    """Minibatch size (transitions of one row); at least 2 and at most ``n_steps``."""
    n_epochs: int = 10
    """Passes over each rollout."""
    lr: float = 1e-3
    """Adam learning rate."""
    gamma: float = 0.99
    """Discount factor in [0, 1]."""
    gae_lambda: float = 0.95
    """GAE lambda in [0, 1]."""
    clip: float = 0.2
    """Clipping range of the probability ratio (> 0)."""
    ent_coef: float = 0.01
    """Weight of the entropy bonus (>= 0)."""
    vf_coef: float = 0.5
    """Weight of the value loss (>= 0)."""
    max_grad_norm: float = 0.5
    """Per-row gradient norm limit (> 0)."""
    hidden: int = 64
    """Width of every hidden layer of the actor and of the critic."""
    layers: int = 2
    """Hidden layers of the actor and of the critic."""
    torch_threads: int = 1
    """Torch intra-op threads during the run (0: leave torch's setting alone); restored after."""

    def __post_init__(self) -> None:
        check_int("n_steps", self.n_steps, min_value=2)
        check_int("batch_size", self.batch_size, min_value=2, max_value=self.n_steps)
        check_int("n_epochs", self.n_epochs, min_value=1)
        check_float("lr", self.lr, min_value=0.0, min_inclusive=False)
        check_float("gamma", self.gamma, min_value=0.0, max_value=1.0)
        check_float("gae_lambda", self.gae_lambda, min_value=0.0, max_value=1.0)
        check_float("clip", self.clip, min_value=0.0, min_inclusive=False)
        check_float("ent_coef", self.ent_coef, min_value=0.0)
        check_float("vf_coef", self.vf_coef, min_value=0.0)
        check_float("max_grad_norm", self.max_grad_norm, min_value=0.0, min_inclusive=False)
        check_int("hidden", self.hidden, min_value=1)
        check_int("layers", self.layers, min_value=1)
        check_int("torch_threads", self.torch_threads, min_value=0)


SB3_DEFAULTS = PPOConfig(n_steps=2048, batch_size=64, n_epochs=10, lr=3e-4, gamma=0.99,
                         gae_lambda=0.95, clip=0.2, ent_coef=0.0, vf_coef=0.5, max_grad_norm=0.5,
                         hidden=64, layers=2)
"""Stable-Baselines3's ``PPO`` defaults (for reference; too slow for a few thousand steps)."""


class PPOLearners:
    """Actors, critics and optimiser of ``B`` independent PPO learners."""

    def __init__(self, n_obs: np.ndarray, n_actions: np.ndarray, config: PPOConfig, seed: int) -> None:
        self.config = config
        B, S, A = len(n_obs), int(n_obs.max()), int(n_actions.max())
        widths = [config.hidden] * config.layers
        self.actor = BatchedMLP(B, S, widths, A, seed=seed, tag=TAG_PPO_INIT, out_gain=0.01)
        self.critic = BatchedMLP(B, S, widths, 1, seed=seed, tag=TAG_PPO_INIT + 1000, out_gain=1.0)
        self.params = self.actor.parameters() + self.critic.parameters()
        self.opt = torch.optim.Adam(self.params, lr=config.lr, eps=1e-5, foreach=True)
        self.valid = torch.as_tensor(action_mask(n_actions))  # (B, A)
        self.n_actions = n_actions

    def log_probs(self, obs: torch.Tensor) -> torch.Tensor:
        """obs ``(B, N)`` -> log-probabilities ``(B, N, A)`` (padded actions ~ -1e9)."""
        return torch.log_softmax(masked_logits(self.actor(obs), self.valid), dim=-1)

    def values(self, obs: torch.Tensor) -> torch.Tensor:
        """obs ``(B, N)`` -> ``(B, N)`` state values."""
        return self.critic(obs)[..., 0]

    @torch.no_grad()
    def act(self, obs: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sample ``(actions (B,), log-probabilities (B,))`` in ``obs (B,)`` by inverse CDF of the
        per-row uniforms ``u (B,)``."""
        logp = self.log_probs(torch.as_tensor(obs)[:, None])[:, 0]  # (B, A)
        cdf = np.cumsum(logp.exp().double().numpy(), axis=1)  # (B, A)
        a = np.minimum((cdf < u[:, None] * cdf[:, -1:]).sum(axis=1), self.n_actions - 1)
        return a.astype(np.int64), logp.numpy()[np.arange(len(a)), a]

    def update(self, buf: dict[str, np.ndarray], shuffle) -> dict[str, float]:
        """``n_epochs`` of minibatch updates on one rollout (arrays ``(B, T)``); returns the mean
        losses and diagnostics."""
        cfg = self.config
        obs = torch.as_tensor(buf["obs"])  # (B, T)
        actions = torch.as_tensor(buf["action"])  # (B, T)
        old_logp = torch.as_tensor(buf["logp"])  # (B, T)
        with torch.no_grad():
            v = self.values(obs).double().numpy()  # (B, T)
            v_next = self.values(torch.as_tensor(buf["next_obs"])).double().numpy()  # (B, T)
        adv = gae(buf["reward"], v, v_next, buf["terminated"], buf["done"], cfg.gamma, cfg.gae_lambda)
        ret = torch.as_tensor(adv + v, dtype=torch.float32)  # (B, T)
        adv_t = torch.as_tensor(adv, dtype=torch.float32)  # (B, T)
        B, T = obs.shape
        stats = {k: 0.0 for k in ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction",
                                  "grad_norm")}
        n = 0
        for _ in range(cfg.n_epochs):
            perm = torch.as_tensor(np.argsort(shuffle.uniform(0, T), axis=1, kind="stable"))  # (B, T)
            shuffle.advance()
            for k in range(0, T, cfg.batch_size):
                idx = perm[:, k:k + cfg.batch_size]  # (B, m)
                if idx.shape[1] < 2:
                    continue
                o = obs.gather(1, idx)  # (B, m)
                logp_all = self.log_probs(o)  # (B, m, A)
                logp = logp_all.gather(2, actions.gather(1, idx)[..., None])[..., 0]  # (B, m)
                entropy = -(logp_all.exp() * logp_all).sum(-1)  # (B, m)
                a = adv_t.gather(1, idx)
                a = (a - a.mean(1, keepdim=True)) / (a.std(1, keepdim=True) + 1e-8)
                log_ratio = logp - old_logp.gather(1, idx)
                ratio = log_ratio.exp()
                pg = -torch.min(ratio * a, ratio.clamp(1 - cfg.clip, 1 + cfg.clip) * a).mean(1)  # (B,)
                vloss = (self.values(o) - ret.gather(1, idx)).pow(2).mean(1)  # (B,)
                ent = entropy.mean(1)  # (B,)
                loss = (pg + cfg.vf_coef * vloss - cfg.ent_coef * ent).sum()  # rows do not mix
                self.opt.zero_grad(set_to_none=False)
                loss.backward()
                norm = clip_rows(self.params, cfg.max_grad_norm)
                self.opt.step()
                with torch.no_grad():
                    stats["policy_loss"] += float(pg.mean())
                    stats["value_loss"] += float(vloss.mean())
                    stats["entropy"] += float(ent.mean())
                    stats["approx_kl"] += float(((ratio - 1) - log_ratio).mean())
                    stats["clip_fraction"] += float(((ratio - 1).abs() > cfg.clip).float().mean())
                    stats["grad_norm"] += float(norm.mean())
                n += 1
        return {k: s / max(n, 1) for k, s in stats.items()}


def gae(reward: np.ndarray, v: np.ndarray, v_next: np.ndarray, terminated: np.ndarray, done: np.ndarray,
        gamma: float, lam: float) -> np.ndarray:
    """Generalised advantage estimates ``(B, T)``: ``delta_t = r_t + gamma (1 - terminated_t)
    V(s'_t) - V(s_t)`` (``s'_t`` the observation the step led to, so truncation bootstraps), summed
    with weights ``(gamma lam)^k`` up to the end of the episode (``done`` = terminated or truncated)
    or of the rollout."""
    delta = reward + gamma * np.where(terminated, 0.0, v_next) - v  # (B, T)
    adv = np.zeros_like(delta)
    last = np.zeros(delta.shape[0])
    for t in range(delta.shape[1] - 1, -1, -1):
        last = delta[:, t] + gamma * lam * np.where(done[:, t], 0.0, last)
        adv[:, t] = last
    return adv


def run_ppo(batch, steps: int, seed: int, config: PPOConfig | dict | None = None, *,
            log: list | None = None) -> Episodes:
    """Run ``B`` independent PPO learners for ``steps`` steps per row on ``batch`` (reset with
    ``seed``) and return their episodes.

    ``log`` (optional list) receives one dict per update: ``update``, ``step``, and the means over
    rows and minibatches of ``policy_loss``, ``value_loss``, ``entropy``, ``approx_kl``,
    ``clip_fraction`` and ``grad_norm`` (before clipping).
    """
    steps, seed = check_run(batch, steps, seed)
    cfg = check_config(config, PPOConfig)
    with torch_threads(cfg.torch_threads):
        return _run(batch, steps, seed, cfg, log)


def _run(batch, steps: int, seed: int, cfg: PPOConfig, log: list | None) -> Episodes:
    n_obs, n_actions = row_sizes(batch.infos)
    B, T = len(n_obs), cfg.n_steps
    learners = PPOLearners(n_obs, n_actions, cfg, seed)
    act_rng = streams(seed, TAG_PPO_ACT, B)
    shuffle = streams(seed, TAG_PPO_SHUFFLE, B)
    buf = {"obs": np.zeros((B, T), np.int64), "action": np.zeros((B, T), np.int64),
           "logp": np.zeros((B, T), np.float32), "reward": np.zeros((B, T)),
           "next_obs": np.zeros((B, T), np.int64), "terminated": np.zeros((B, T), bool),
           "done": np.zeros((B, T), bool)}
    recorder = EpisodeRecorder(batch.infos)
    obs = np.array(batch.reset(seed), dtype=np.int64)  # (B,)
    updates = 0
    for t in range(steps):
        actions, logp = learners.act(obs, act_rng.uniform(0))
        act_rng.advance()
        res = batch.step(actions)
        recorder.record(res)
        k = t % T
        buf["obs"][:, k], buf["action"][:, k], buf["logp"][:, k] = obs, actions, logp
        buf["reward"][:, k] = res.reward
        buf["next_obs"][:, k] = res.next_obs
        buf["terminated"][:, k] = res.terminated
        buf["done"][:, k] = np.asarray(res.terminated) | np.asarray(res.truncated)
        obs = np.array(batch.obs, dtype=np.int64)  # a copy: batch.obs may change in place
        if k == T - 1:
            stats = learners.update(buf, shuffle)
            updates += 1
            if log is not None:
                log.append({"update": updates, "step": t + 1, **stats})
    return recorder.episodes()


__all__ = ["PPOConfig", "SB3_DEFAULTS", "PPOLearners", "gae", "run_ppo"]
