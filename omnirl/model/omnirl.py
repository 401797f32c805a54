"""The OmniRL sequence model: step tokens in, policy (and world-model) logits out, explicit state.

Each environment step ``t`` carries the observed state ``o_t``, the prompt ``p_t`` (prior id of
the label policy), the tag ``g_t`` (prior id of who acted), the action ``a_t`` and the reward
``r_t``. A *layout* turns a step into tokens for the backbone:

* ``paper`` (5 tokens per step): ``[o_t] [p_t] [g_t] [a_t] [r_t]``. The policy is read at
  ``p_t`` (it has seen the state and the prompt, not the tag or the action); the world model is
  read at ``a_t`` (it has seen the action, not the reward or the next state).
* ``compact`` (2 tokens per step): ``[o_t + p_t + r_{t-1}] [g_t + a_t]``. The policy is read at the
  first token, the world model at the second; the previous reward rides on the next step's first
  token, so the model state carries the last reward across segments.
* ``paired`` (2 tokens per step): ``[o_t + p_t] [g_t + a_t + r_t]``: each reward enters in the same
  token as the action it follows, so the pair and its outcome are bound in one token. The policy is
  read at the first token. There is no world model (``world_model`` must be false): its read point,
  the second token, already holds the reward it would predict.

With ``action_rewards``, a reward's embedding also has a term along its own action's direction,
``r * E[a]`` (a learned vector ``E[a]`` per action id, for the action ``a`` the reward followed): a
memory keyed on the state can then keep each action's rewards apart without first having to learn
the product of the action and the reward.

Each token is the sum of its embeddings and a learned slot-type embedding. Heads return logits
(never probabilities): the policy over ``A + 1`` actions (the end marker included), the next
state over ``S`` ids and the reward as a scalar. Everything after the read point of step ``t``
(its action, its reward, later steps) cannot change the policy output at ``t``: the backbones
are causal and the read points come first.

Rewards enter through the config's reward transform (``omnirl.model.rewards``: ``none``,
``symlog``, ``causal`` or ``range``), and the reward head predicts the transformed reward.

State: ``(backbone state, step memory (B, MEMORY + 1))``: the reward memory of
``omnirl.model.rewards`` (the last transformed reward and the running reward statistics) and the
last action id (what the next step's first token pairs the last reward with in ``compact``). Shapes: ``B`` batch, ``T`` steps, ``D`` width,
``S`` observation ids (``n_obs``), ``A`` actions.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from omnirl._validate import check_choice, check_float, check_int
from omnirl.agents.prior import N_PRIOR, PriorInfo
from omnirl.model.backbone import Backbone, BackboneConfig, State, sized
from omnirl.model.rewards import MEMORY, REWARD_TRANSFORMS, init_memory, transform_rewards

UNKNOWN_PRIOR = int(PriorInfo.UNKNOWN)
"""The prior id of an unknown actor (``omnirl.agents.prior``, the ids' one home)."""
LAYOUTS = ("paper", "compact", "paired")
REWARD_LOSSES = ("mse", "huber")


@dataclasses.dataclass(frozen=True)
class OmniRLConfig:
    """The OmniRL model: sizes of the vocabularies, the backbone, the layout and the heads."""

    n_obs: int = 128
    """Observation ids ``S``, the observation space the model embeds and predicts (id ``S`` is the
    "missing" observation); a task's active states are at most ``S``."""
    n_actions: int = 5
    """Actions ``A``; id ``A`` is the episode-end marker, ``A + 1`` the unknown/placeholder action."""
    backbone: BackboneConfig = dataclasses.field(default_factory=lambda: sized("tiny", "rwkv7"))
    """The sequence backbone (``omnirl.model.backbone``)."""
    layout: str = "compact"
    """Tokens per step: ``compact`` (2, the default: it learned faster per step and per second in
    ``benchmarks/compare_layouts.py``), ``paired`` (2, the reward in its action's token; no world
    model) or ``paper`` (5); see the module docstring."""
    world_model: bool = True
    """Whether to build the next-state and reward heads."""
    policy_weight: float = 1.0
    """Weight of the policy loss (cross-entropy against the label action)."""
    state_weight: float = 0.1
    """Weight of the next-state loss (cross-entropy; world model only)."""
    reward_weight: float = 0.1
    """Weight of the reward loss (``reward_loss``; world model only)."""
    reward_transform: str = "causal"
    """What the model sees of a reward and its reward head predicts: ``none`` (raw), ``symlog`` or
    ``causal`` (standardised by the running statistics of the context; ``omnirl.model.rewards``).
    The default was chosen by measurement (README, "Reward handling")."""
    reward_loss: str = "mse"
    """Loss of the reward head against the transformed reward: ``mse`` (squared error) or ``huber``
    (squared within 1 of the target, linear beyond: heavy-tailed raw rewards dominate it less)."""
    action_rewards: bool = False
    """Whether each reward also enters along its action's direction, ``r * E[a]`` (a learned vector
    per action id; see the module docstring), so that the rewards of the actions taken in a state
    can be told apart by a memory keyed on the state."""
    value_weight: float = 0.0
    """Weight of the action-value loss (0: no action-value head). The head reads the policy's
    token and predicts, for every action, the mean transformed reward the action has had in the
    current state earlier in the context (``omnirl.train.module.pair_reward_means``): a per-action
    summary of the context the policy can read from, trained on the actions the context has tried
    in that state (squared error, averaged over them)."""

    def __post_init__(self) -> None:
        for name in ("policy_weight", "state_weight", "reward_weight", "value_weight"):
            check_float(name, getattr(self, name), min_value=0.0)
        check_int("n_obs", self.n_obs, min_value=1)
        check_int("n_actions", self.n_actions, min_value=2)
        check_choice("layout", self.layout, LAYOUTS)
        check_choice("reward_transform", self.reward_transform, REWARD_TRANSFORMS)
        check_choice("reward_loss", self.reward_loss, REWARD_LOSSES)
        if self.layout == "paired" and self.world_model:
            raise ValueError("layout='paired' puts each reward in its action's token, where the world model would "
                             "read the reward it predicts: set world_model=False (--model.world_model=false)")
        if not isinstance(self.backbone, BackboneConfig):
            raise ValueError(f"backbone must be a BackboneConfig, got {type(self.backbone).__name__}")

    @property
    def tokens_per_step(self) -> int:
        return 5 if self.layout == "paper" else 2


class ResidualHead(nn.Module):
    """``out(x + mlp(norm(x)))``: a residual MLP then a linear read-out (logits or a scalar)."""

    def __init__(self, dim: int, out: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, dim)
        self.fc2 = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, out)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(x + self.fc2(F.gelu(self.fc1(self.norm(x)))))


class OmniRL(nn.Module):
    """See the module docstring. ``forward(obs, prompt, tag, action, reward, state)``."""

    def __init__(self, config: OmniRLConfig) -> None:
        super().__init__()
        if not isinstance(config, OmniRLConfig):
            raise ValueError(f"config must be an OmniRLConfig, got {type(config).__name__}")
        self.config = c = config
        D = c.backbone.dim
        self.obs_embed = nn.Embedding(c.n_obs + 1, D)
        self.action_embed = nn.Embedding(c.n_actions + 2, D)
        self.prompt_embed = nn.Embedding(N_PRIOR, D)
        self.tag_embed = nn.Embedding(N_PRIOR, D)
        self.reward_embed = nn.Linear(1, D)
        self.action_reward_embed = nn.Embedding(c.n_actions + 2, D) if c.action_rewards else None
        self.slot_embed = nn.Parameter(torch.randn(c.tokens_per_step, D) * 0.02)
        self.backbone = Backbone(c.backbone)
        self.policy_head = ResidualHead(D, c.n_actions + 1)
        self.state_head = ResidualHead(D, c.n_obs) if c.world_model else None
        self.reward_head = ResidualHead(D, 1) if c.world_model else None
        self.value_head = ResidualHead(D, c.n_actions) if c.value_weight > 0 else None

    @property
    def missing_obs(self) -> int:
        return self.config.n_obs

    @property
    def unknown_action(self) -> int:
        return self.config.n_actions + 1

    def init_state(self, batch: int, device=None) -> tuple[State, Tensor]:
        """The state of an empty context: ``(backbone state, step memory (B, MEMORY + 1))`` (see the
        module docstring)."""
        memory = init_memory(batch, device)
        return self.backbone.init_state(batch, device), torch.cat([memory, memory[:, :1]], dim=1)

    def _check(self, name: str, x: Tensor, B: int, T: int, high: int | None) -> Tensor:
        if x.shape != (B, T):
            raise ValueError(f"{name} must have shape ({B}, {T}), got {tuple(x.shape)}")
        if high is not None:
            if x.dtype.is_floating_point:
                raise ValueError(f"{name} must hold integer ids, got dtype {x.dtype}")
            if x.numel() and (x.min() < 0 or x.max() >= high):
                raise ValueError(f"{name} ids must lie in [0, {high}), got [{int(x.min())}, {int(x.max())}]")
        return x

    @property
    def read_points(self) -> tuple[int, int]:
        """Token slots ``(policy, world model)`` are read at within a step."""
        return (1, 3) if self.config.layout == "paper" else (0, 1)

    def slots(self, obs: Tensor, prompt: Tensor, tag: Tensor, action: Tensor, reward: Tensor,
              memory: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Step fields ``(B, T)`` and the step memory ``(B, MEMORY + 1)`` before them -> token slots
        ``(B, T, k, D)`` (embeddings plus slot types), the transformed rewards ``(B, T)`` and the
        step memory after the steps."""
        B, T = obs.shape
        c = self.config
        for name, x, high in (("obs", obs, c.n_obs + 1), ("prompt", prompt, N_PRIOR),
                              ("tag", tag, N_PRIOR), ("action", action, c.n_actions + 2),
                              ("reward", reward, None)):
            self._check(name, x, B, T, high)
        eo, ep, eg = self.obs_embed(obs), self.prompt_embed(prompt), self.tag_embed(tag)  # (B, T, D)
        ea = self.action_embed(action)
        r_out, after = transform_rewards(c.reward_transform, reward, action < c.n_actions, memory[:, :MEMORY])
        after = torch.cat([after, action[:, -1:].to(after.dtype)], dim=1) if T else memory  # (B, MEMORY + 1)
        r = r_out  # (B, T) transformed rewards
        if c.layout == "compact":  # the previous step's reward and action ride on step t's first token
            r = torch.cat([memory[:, :1].to(r.dtype), r[:, :-1]], dim=1)  # (B, T): r_{t-1} at step t
            action = torch.cat([memory[:, MEMORY:].long(), action[:, :-1]], dim=1)  # (B, T): a_{t-1}
        er = self.reward_embed(r[..., None])  # (B, T, D)
        if self.action_reward_embed is not None:
            er = er + r[..., None] * self.action_reward_embed(action)  # (B, T, D): r along its action's direction
        if c.layout == "paper":
            slots = torch.stack([eo, ep, eg, ea, er], dim=2)  # (B, T, 5, D)
        elif c.layout == "paired":
            slots = torch.stack([eo + ep, eg + ea + er], dim=2)  # (B, T, 2, D)
        else:
            slots = torch.stack([eo + ep + er, eg + ea], dim=2)
        return slots + self.slot_embed, r_out, after  # (B, T, k, D)

    def forward(self, obs: Tensor, prompt: Tensor, tag: Tensor, action: Tensor, reward: Tensor,
                state: tuple[State, Tensor] | None = None) -> tuple[dict[str, Tensor], tuple[State, Tensor]]:
        """All fields ``(B, T)``. Returns ``({"policy": (B, T, A + 1), "next_state": (B, T, S),
        "reward": (B, T)}, new state)`` (the world-model entries only if it is built)."""
        B, T = obs.shape
        bstate, memory = self.init_state(B, obs.device) if state is None else state
        k = self.config.tokens_per_step
        slots, r, new_memory = self.slots(obs, prompt, tag, action, reward, memory)
        tokens = slots.reshape(B, T * k, -1)  # (B, T k, D)
        y, bstate = self.backbone(tokens, bstate)  # (B, T k, D)
        y = y.view(B, T, k, -1)  # (B, T, k, D)
        policy_at, world_at = self.read_points
        out = {"policy": self.policy_head(y[:, :, policy_at])}  # (B, T, A + 1) logits
        if self.value_head is not None:
            out["values"] = self.value_head(y[:, :, policy_at])  # (B, T, A) per-action reward means
        if self.state_head is not None:
            out["next_state"] = self.state_head(y[:, :, world_at])  # (B, T, S) logits
            out["reward"] = self.reward_head(y[:, :, world_at])[..., 0]  # (B, T)
            out["reward_target"] = r  # (B, T) the transformed reward the reward head predicts
        return out, (bstate, new_memory)

    def losses(self, out: dict[str, Tensor], label: Tensor, next_obs: Tensor | None = None,
               reward: Tensor | None = None, policy_target: Tensor | None = None,
               value_target: Tensor | None = None) -> dict[str, Tensor]:
        """Per-position losses ``(B, T)`` and their weighted mean ``total``.

        label: ``(B, T)`` label actions (``A`` at end markers, which carry no policy loss);
        policy_target: ``(B, T, A)`` action probabilities (a soft target); when given, the policy
        loss is the cross-entropy ``-sum_a q_a log p_a`` against them (``p`` the model's
        probabilities over the ``A + 1`` outputs) instead of against ``label``, which then only
        marks the end markers;
        next_obs ``(B, T)`` and reward ``(B, T)``: world-model targets (next observed state and the
        raw reward of the step, which the reward head predicts transformed: ``out["reward_target"]``
        when ``forward`` made ``out``; ignored without the world model);
        value_target: ``(B, T, A)`` the action-value head's targets, NaN for the actions it is not
        scored on (ignored without the head). Masked positions are 0 in the per-position losses and
        excluded from the means.
        """
        c = self.config
        B, T = label.shape
        step = label < c.n_actions  # (B, T) not an end marker
        if policy_target is None:
            policy = F.cross_entropy(out["policy"].reshape(B * T, -1), label.reshape(-1).clamp(max=c.n_actions),
                                     reduction="none").view(B, T) * step
        else:
            if policy_target.shape != (B, T, c.n_actions):
                raise ValueError(f"policy_target must have shape {(B, T, c.n_actions)} (B, T, A), got "
                                 f"{tuple(policy_target.shape)}")
            logp = F.log_softmax(out["policy"].float(), dim=-1)[..., :c.n_actions]  # (B, T, A)
            policy = -(policy_target.to(logp.dtype) * logp).sum(-1) * step
        n = step.sum().clamp(min=1)
        result = {"policy": policy, "step_mask": step}
        total = c.policy_weight * policy.sum() / n
        if self.state_head is not None and next_obs is not None and reward is not None:
            state = F.cross_entropy(out["next_state"].reshape(B * T, -1),
                                    next_obs.reshape(-1).clamp(max=c.n_obs - 1), reduction="none").view(B, T) * step
            target = out["reward_target"] if "reward_target" in out else reward.float()
            if c.reward_loss == "huber":
                rew = F.huber_loss(out["reward"], target, reduction="none", delta=1.0) * step
            else:
                rew = (out["reward"] - target).square() * step
            result.update(next_state=state, reward=rew)
            total = total + (c.state_weight * state.sum() + c.reward_weight * rew.sum()) / n
        if self.value_head is not None and value_target is not None:
            if value_target.shape != (B, T, c.n_actions):
                raise ValueError(f"value_target must have shape {(B, T, c.n_actions)} (B, T, A), got "
                                 f"{tuple(value_target.shape)}")
            known = torch.isfinite(value_target) & step[..., None]  # (B, T, A)
            err = torch.where(known, out["values"].float() - value_target.nan_to_num(), 0.0).square()
            values = err.sum(-1) / known.sum(-1).clamp(min=1)  # (B, T) mean over the scored actions
            result["values"] = values
            total = total + c.value_weight * values.sum() / n
        result["total"] = total
        return result
