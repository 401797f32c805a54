"""``OmniRLAgent``: the OmniRL model acting in ``B`` environments, with per-environment state.

    agent = OmniRLAgent(model, n_envs=B, seed=0)
    agent.load_context(demonstrations)          # optional: prefill from (B, T) trajectories
    a = agent.act(obs, prompt=REFERENCE_PROMPT, tag=UNKNOWN_PRIOR, temperature=1.0)
    agent.observe(obs, a, reward, done, terminal_obs)   # commit the step (and end markers where done)
    agent.end_episode(terminal_obs, rows)       # or commit end markers on their own
    agent.reset(rows)                           # empty context for new tasks
    agent.last_logits                           # (B, A) policy logits of the last act
    agent.memory()                              # (B, D) each row's recurrent state, flattened

``act`` runs only the tokens of the step up to the policy's read point and keeps that state
pending; ``observe`` continues from it with the rest of the step's tokens, so a step costs one
pass over its tokens. A commit to some rows only (``rows``, or the end markers of the rows whose
episode ended) runs the model on those rows only. The context lives in the recurrent state, never
in a growing cache: a step costs the same after 1K or 1M steps of context. Inference runs without
gradients.
"""

from __future__ import annotations

import torch
from torch import Tensor

from omnirl._validate import check_float, check_int
from omnirl.agents.prior import N_PRIOR, REFERENCE
from omnirl.model.backbone import reset_rows, select_rows
from omnirl.model.omnirl import UNKNOWN_PRIOR, OmniRL

REFERENCE_PROMPT = int(REFERENCE)
"""Prompt of the reference (oracle) policy: what the agent asks the model to imitate."""


def _where_rows(mask: Tensor, new, old):
    """``new`` for rows in ``mask``, ``old`` elsewhere, over a (nested tuple) state."""
    if isinstance(new, Tensor):
        m = mask.view(-1, *([1] * (new.dim() - 1)))
        return torch.where(m, new, old)
    return tuple(_where_rows(mask, n, o) for n, o in zip(new, old))


def _scatter_rows(idx: Tensor, new, old):
    """``old`` with rows ``idx`` replaced by ``new`` (which holds only those rows), over a (nested
    tuple) state."""
    if isinstance(new, Tensor):
        return old.index_copy(0, idx, new)
    return tuple(_scatter_rows(idx, n, o) for n, o in zip(new, old))


class OmniRLAgent:
    """See the module docstring. ``n_envs`` rows, each with its own context."""

    def __init__(self, model: OmniRL, n_envs: int, seed: int = 0, chunk: int = 1024) -> None:
        if not isinstance(model, OmniRL):
            raise ValueError(f"model must be an OmniRL model, got {type(model).__name__}")
        self.model = model.eval()
        self.n_envs = check_int("n_envs", n_envs, min_value=1)
        self.chunk = check_int("chunk", chunk, min_value=1)
        self.device = next(model.parameters()).device
        self.generator = torch.Generator(device=self.device).manual_seed(check_int("seed", seed, min_value=0))
        self.state = model.init_state(n_envs, self.device)
        self._pending = None  # (state after the prefix tokens, obs, prompt) of the last act
        self.last_logits: Tensor | None = None
        """Policy logits ``(B, A)`` (end marker excluded, before the temperature) of the last
        ``act``; ``None`` before the first."""

    # ------------------------------------------------------------------ helpers
    def _ids(self, name: str, x, high: int) -> Tensor:
        t = torch.as_tensor(x, device=self.device)
        if t.dim() == 0:
            t = t.expand(self.n_envs)
        if t.shape != (self.n_envs,):
            raise ValueError(f"{name} must have shape ({self.n_envs},), got {tuple(t.shape)}")
        if t.dtype.is_floating_point or t.dtype == torch.bool:
            raise ValueError(f"{name} must hold integer ids, got dtype {t.dtype}")
        if (t < 0).any() or (t >= high).any():
            raise ValueError(f"{name} ids must lie in [0, {high}), got {t.tolist()}")
        return t.long()

    def _run(self, tokens: Tensor, bstate):
        return self.model.backbone(tokens, bstate)

    # ------------------------------------------------------------------ acting
    @torch.no_grad()
    def act(self, obs, prompt=REFERENCE_PROMPT, tag=UNKNOWN_PRIOR, temperature: float = 1.0) -> Tensor:
        """Actions ``(B,)`` in ``[0, A)`` sampled from ``softmax(logits / temperature)`` (greedy at 0);
        the end marker is never chosen."""
        c = self.model.config
        temperature = check_float("temperature", temperature, min_value=0.0)
        obs = self._ids("obs", obs, c.n_obs + 1)
        prompt = self._ids("prompt", prompt, N_PRIOR)
        tag = self._ids("tag", tag, N_PRIOR)
        B = self.n_envs
        bstate, memory = self.state
        placeholder = torch.full((B, 1), self.model.unknown_action, device=self.device)
        slots = self.model.slots(obs[:, None], prompt[:, None], tag[:, None], placeholder,
                                 torch.zeros(B, 1, device=self.device), memory)[0][:, 0]  # (B, k, D)
        policy_at, _ = self.model.read_points
        y, pending = self._run(slots[:, :policy_at + 1], bstate)  # (B, policy_at + 1, D)
        logits = self.model.policy_head(y[:, -1])[:, :c.n_actions]  # (B, A): no end marker
        self._pending = (pending, obs, prompt)
        self.last_logits = logits
        if temperature == 0.0:
            return logits.argmax(-1)
        probs = torch.softmax(logits / temperature, dim=-1)
        return torch.multinomial(probs, 1, generator=self.generator)[:, 0]

    @torch.no_grad()
    def observe(self, obs, action, reward, done=None, terminal_obs=None, prompt=REFERENCE_PROMPT,
                tag=UNKNOWN_PRIOR, rows=None) -> None:
        """Commit a step ``(obs, action, reward)`` to the context of ``rows`` (default: all);
        where ``done`` (bool ``(B,)``) is true, then commit the episode-end marker with
        ``terminal_obs`` (the observation the episode ended in), as ``end_episode`` does.
        ``action`` may itself be ``A``, the end marker."""
        self._commit(obs, action, reward, prompt, tag, rows)
        if done is not None:
            done = torch.as_tensor(done, device=self.device, dtype=torch.bool)
            if done.shape != (self.n_envs,):
                raise ValueError(f"done must have shape ({self.n_envs},), got {tuple(done.shape)}")
            if done.any():
                if terminal_obs is None:
                    raise ValueError("terminal_obs is required where done is true")
                self.end_episode(terminal_obs, done & self._rows(rows))

    def _commit(self, obs, action, reward, prompt, tag, rows) -> None:
        c = self.model.config
        obs = self._ids("obs", obs, c.n_obs + 1)
        action = self._ids("action", action, c.n_actions + 1)
        prompt = self._ids("prompt", prompt, N_PRIOR)
        tag = self._ids("tag", tag, N_PRIOR)
        reward = torch.as_tensor(reward, device=self.device, dtype=torch.float32).expand(self.n_envs)
        mask = self._rows(rows)
        bstate, memory = self.state
        slots, _, new_memory = self.model.slots(obs[:, None], prompt[:, None], tag[:, None], action[:, None],
                                                reward[:, None], memory)
        slots = slots[:, 0]  # (B, k, D)
        policy_at, _ = self.model.read_points
        p = self._pending
        resume = p is not None and torch.equal(p[1], obs) and torch.equal(p[2], prompt)
        start, tokens = (p[0], slots[:, policy_at + 1:]) if resume else (bstate, slots)
        n = int(mask.sum())
        if n == self.n_envs:
            _, bnew = self._run(tokens, start)
        elif n:  # run only the rows that commit (e.g. the few whose episode ended)
            idx = mask.nonzero()[:, 0]
            _, new = self._run(tokens[idx], select_rows(start, idx))
            bnew = _scatter_rows(idx, new, bstate)
        else:
            bnew = bstate
        self.state = (bnew, torch.where(mask[:, None], new_memory, memory))
        self._pending = None

    @torch.no_grad()
    def end_episode(self, terminal_obs, rows) -> None:
        """Commit episode-end markers (terminal observation, action ``A``, reward 0, prompt and
        tag unknown) for ``rows``, as in the training data."""
        c = self.model.config
        self._commit(terminal_obs, torch.full((self.n_envs,), c.n_actions), 0.0,
                     UNKNOWN_PRIOR, UNKNOWN_PRIOR, rows)

    def _rows(self, rows) -> Tensor:
        mask = torch.zeros(self.n_envs, dtype=torch.bool, device=self.device)
        if rows is None:
            mask[:] = True
            return mask
        r = torch.as_tensor(rows, device=self.device)
        if r.dtype == torch.bool:
            if r.shape != (self.n_envs,):
                raise ValueError(f"rows mask must have shape ({self.n_envs},), got {tuple(r.shape)}")
            return r
        if r.numel() and (r.min() < 0 or r.max() >= self.n_envs):
            raise ValueError(f"rows must lie in [0, {self.n_envs}), got {r.tolist()}")
        mask[r.long()] = True
        return mask

    # ------------------------------------------------------------------ context
    @torch.no_grad()
    def load_context(self, trajectory: dict) -> None:
        """Prefill every row's context from ``(B, T)`` arrays ``obs``, ``prompt``, ``tag``,
        ``action``, ``reward`` (e.g. demonstrations), ``chunk`` steps at a time."""
        missing = {"obs", "prompt", "tag", "action", "reward"} - set(trajectory)
        if missing:
            raise ValueError(f"trajectory is missing {sorted(missing)}")
        fields = {k: torch.as_tensor(trajectory[k], device=self.device) for k in
                  ("obs", "prompt", "tag", "action", "reward")}
        T = fields["obs"].shape[-1]
        for lo in range(0, T, self.chunk):
            part = {k: v[:, lo:lo + self.chunk] for k, v in fields.items()}
            part = {k: (v.float() if k == "reward" else v.long()) for k, v in part.items()}
            _, self.state = self.model(part["obs"], part["prompt"], part["tag"], part["action"],
                                       part["reward"], self.state)
        self._pending = None

    def memory(self) -> Tensor:
        """Each row's recurrent memory as a flat float32 vector: ``(B, D)``, the backbone state
        tensors of every block flattened and concatenated (the reward memory left out). ``D`` is the
        same at any context length (e.g. for t-SNE plots of the memory across tasks)."""
        bstate, _ = self.state
        return torch.cat([t.detach().reshape(self.n_envs, -1).float() for layer in bstate for t in layer], dim=1)

    def reset(self, rows=None) -> None:
        """Give ``rows`` (default: all) an empty context."""
        mask = self._rows(rows)
        bstate, memory = self.state
        self.state = (reset_rows(bstate, mask), torch.where(mask[:, None], torch.zeros_like(memory), memory))
        self._pending = None
