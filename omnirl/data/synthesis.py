"""Step-wise-supervision synthesis: many sequences at once, in bounded memory.

One sequence is one task played for exactly ``T`` steps across many episodes. ``B`` sequences run
together: the batched simulator steps all their tasks, the behaviour mixture acts for all rows,
and each step appends to every row

    obs      the state the action was taken in (observed id)
    action   the behaviour action actually taken
    reward   the reward received
    tag      prior id of who acted (``unk`` when masked)
    prompt   prior id of the label policy
    label    the label action (the reference oracle's action on ``obs``: step-wise supervision)

and, when the episode ends (terminated or truncated), an extra *end marker*: the terminal
observation with action ``A``, reward 0, tag and prompt ``unk`` and label ``A``. The end markers
count towards ``T``. Because the simulator, the agents and the masks draw their randomness from
per-row streams derived from the sequence's seed, a sequence's content depends only on its task
and seed, never on which other sequences shared its batch or which worker made it.

An *actor* (``Actor``; e.g. a trained model, for on-policy data) can play instead of the
behaviour mixture: its actions are the ones taken and its ``tag`` the stored tag, while the
pipeline's label oracle still labels every step.

Rows are staged in small in-memory buffers (``B x chunk`` steps) and flushed into the output
columns (memory-mapped shard files), so memory does not grow with ``T``.
"""

from __future__ import annotations

from typing import Any, Mapping, Protocol, Sequence

import numpy as np

from omnirl._validate import check_int
from omnirl.agents import BanditMix, BehaviourMix, PriorInfo
from omnirl.agents.streams import LANES, RowStreams
from omnirl.data.pipelines import PipelineConfig
from omnirl.data.schema import STEP_FIELDS
from omnirl.tasks import BatchedSimulator, MDPTask

UNK = int(PriorInfo.UNKNOWN)


class Actor(Protocol):
    """A policy playing ``B`` sequences in step with each other (see the module docstring)."""

    tag: int
    """Prior id its steps are stored with (``omnirl.agents.PriorInfo``)."""

    def act(self, obs: np.ndarray) -> np.ndarray:
        """``(B,)`` actions in ``obs (B,)``."""

    def observe(self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, next_obs: np.ndarray,
                done: np.ndarray) -> None:
        """The outcome of the last ``act`` (``done``: the episode ended, terminated or truncated)."""


class ActorFactory(Protocol):
    """Makes the actor of each batch of sequences a dataset is played in."""

    def __call__(self, n_rows: int, first: int) -> Actor:
        """The actor of ``n_rows`` sequences, the first of them sequence ``first`` of the dataset."""

    def describe(self) -> dict[str, Any]:
        """What plays (JSON), stored in the dataset's manifest."""


def sequence_seeds(seed: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """The streams of one sequence, derived from its seed: simulator, agents and tag masks."""
    return {"sim": (*seed, 0), "agent": (*seed, 1), "mask": (*seed, 2)}


def _row_blocks(out: Mapping[str, np.ndarray] | Sequence[Mapping[str, np.ndarray]], B: int,
                T: int) -> tuple[list[Mapping[str, np.ndarray]], np.ndarray, np.ndarray]:
    """``(blocks, block of each row, row within its block)`` of ``out``: one mapping of ``(B, T)``
    columns, or mappings of ``(n_k, T)`` columns whose rows, one after another, are the ``B`` rows."""
    if isinstance(out, Mapping):
        for f in STEP_FIELDS:
            if out[f].shape != (B, T):
                raise ValueError(f"out[{f!r}] must have shape ({B}, {T}), got {out[f].shape}")
        return [out], np.zeros(B, dtype=np.int64), np.arange(B)
    blocks = list(out)
    sizes = []
    for k, block in enumerate(blocks):
        first = block[STEP_FIELDS[0]]
        n = first.shape[0] if first.ndim == 2 else -1
        for f in STEP_FIELDS:
            if block[f].shape != (n, T) or n < 1:
                raise ValueError(f"out[{k}][{f!r}] must have shape (n, {T}) with the n >= 1 rows of "
                                 f"out[{k}][{STEP_FIELDS[0]!r}], got {block[f].shape}")
            if block[f].dtype != blocks[0][f].dtype:
                raise ValueError(f"out[{k}][{f!r}] must have the dtype of out[0][{f!r}], "
                                 f"{blocks[0][f].dtype}, got {block[f].dtype}")
        sizes.append(n)
    if sum(sizes) != B:
        raise ValueError(f"out must hold {B} rows (one per task) in its blocks, got {' + '.join(map(str, sizes)) or 0}")
    block_of = np.repeat(np.arange(len(blocks)), sizes)
    row_in = np.arange(B) - np.repeat(np.cumsum([0, *sizes[:-1]]), sizes)
    return blocks, block_of, row_in


def synthesize(tasks: Sequence[MDPTask], seeds: Sequence[tuple[int, ...]], config: PipelineConfig,
               length: int, out: Mapping[str, np.ndarray] | Sequence[Mapping[str, np.ndarray]],
               chunk: int = 2048, actor: Actor | None = None) -> dict[str, int]:
    """Play ``B = len(tasks)`` sequences of ``length`` steps and write them into ``out``.

    tasks: one task per sequence (same ``n_actions`` and ``n_obs``); seeds: one seed tuple per
    sequence; out: column arrays ``(B, length)`` per name in ``STEP_FIELDS``, or a list of such
    mappings with ``(n_k, length)`` columns whose rows, one after another, are the ``B`` rows (e.g.
    the memory-mapped columns of several shards, simulated together); actor: plays instead of the
    pipeline's behaviour (see the module docstring). Returns counts (steps simulated, episodes, end
    markers written).
    """
    B = len(tasks)
    T = check_int("length", length, min_value=2)
    chunk = check_int("chunk", chunk, min_value=2)
    if B == 0 or len(seeds) != B:
        raise ValueError(f"need one seed per task and at least one task, got {len(tasks)} tasks "
                         f"and {len(seeds)} seeds")
    blocks, block_of, row_in = _row_blocks(out, B, T)
    A = tasks[0].n_actions
    n_obs = tasks[0].n_obs
    streams = [sequence_seeds(tuple(s)) for s in seeds]
    sim = BatchedSimulator(tasks, [s["sim"] for s in streams])
    mix = BanditMix if config.bandit else BehaviourMix
    agent = mix(config.behaviour, tasks, [s["agent"] for s in streams], n_obs, A)
    masks = RowStreams([s["mask"] for s in streams])
    mask_seq = masks.uniform(LANES["mask_sequence"]) < config.mask_sequence_prob  # (B,)
    mask_ep = masks.uniform(LANES["mask_episode"]) < config.mask_episode_prob  # (B,)

    stage = {f: np.zeros((B, chunk + 2), dtype=blocks[0][f].dtype) for f in STEP_FIELDS}  # (B, chunk+2)
    fill = np.zeros(B, dtype=np.int64)  # (B,) entries staged per row
    done_upto = np.zeros(B, dtype=np.int64)  # (B,) entries already flushed per row
    rows = np.arange(B)
    prompt_oracle = np.full(B, agent.label_oracle, dtype=np.int64)  # (B,) prior id of the label oracle
    steps = episodes = 0

    def flush(idx: np.ndarray) -> None:
        for r in idx.tolist():
            n = min(int(fill[r]), T - int(done_upto[r]))
            if n > 0:
                lo = int(done_upto[r])
                block, i = blocks[block_of[r]], row_in[r]
                for f in STEP_FIELDS:
                    block[f][i, lo:lo + n] = stage[f][r, :n]
            done_upto[r] += fill[r]
            fill[r] = 0

    while (done_upto + fill < T).any():
        obs = sim.obs  # (B,)
        action = agent.act(obs)  # (B,)
        who = agent.last_tags  # (B,)
        if actor is not None:
            action = np.asarray(actor.act(obs), dtype=np.int64)  # (B,)
            who = np.full(B, actor.tag, dtype=np.int64)
        if config.label == "oracle":
            label, prompt = agent.label_actions(obs), prompt_oracle
        else:
            label, prompt = action, who
        next_obs, reward, terminated, truncated = sim.step(action)
        agent.observe(obs, action, reward, next_obs, terminated)
        if actor is not None:
            actor.observe(obs, action, reward, next_obs, terminated | truncated)
        tag = np.where(mask_seq | mask_ep | (not config.prior), UNK, who)
        # the step itself
        p = fill
        stage["obs"][rows, p] = obs
        stage["action"][rows, p] = action
        stage["reward"][rows, p] = reward
        stage["tag"][rows, p] = tag
        stage["prompt"][rows, p] = prompt
        stage["label"][rows, p] = label
        fill += 1
        steps += 1
        # the end marker of every finished episode
        ended = np.flatnonzero(terminated | truncated)
        if ended.size:
            q = fill[ended]
            stage["obs"][ended, q] = next_obs[ended]
            stage["action"][ended, q] = A
            stage["reward"][ended, q] = 0.0
            stage["tag"][ended, q] = UNK
            stage["prompt"][ended, q] = UNK
            stage["label"][ended, q] = A
            fill[ended] += 1
            episodes += ended.size
            agent.on_episode_end(ended)
            redraw = masks.uniform(LANES["mask_episode"]) < config.mask_episode_prob
            mask_ep[ended] = redraw[ended]
        masks.advance()
        full = np.flatnonzero((fill >= chunk) | ((done_upto + fill >= T) & (done_upto < T)))
        if full.size:
            flush(full)
    flush(rows[fill > 0])
    return {"steps": steps * B, "episodes": episodes}
