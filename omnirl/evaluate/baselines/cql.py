"""Discrete CQL: conservative Q-learning (Kumar et al. 2020) for the offline setting, the paper's
Table 2 baseline, one independent learner per row of the batch.

Three phases, each a function:

1. ``collect_dataset``: a behaviour policy runs online for ``steps`` steps per row and its
   transitions ``(s, a, r, s', terminated, truncated)`` are kept (``r`` the shaped reward). The
   behaviours are ``"noisy_oracle"`` (with probability ``epsilon`` a uniform random action, else
   the environment's ``oracle_actions()``: the "disturbed oracle" teacher) and ``"random"``
   (uniform); ``"oracle"`` is ``epsilon = 0``. The behaviour's own episodes are kept too: they are
   the teacher's level that Table 2 reports next to CQL.
2. ``train_cql``: per row, a Q-network ``one_hot(s) -> hidden (ReLU) -> Q(s, .)`` (``BatchedMLP``:
   per-row weights trained together, as the reference trained one 256-hidden network per task)
   minimises, over ``epochs`` passes of minibatches of ``batch_size`` of the row's transitions,

       Huber(Q(s, a) - (r + gamma (1 - terminated) max_a' Q_target(s', a')))
       + alpha * (logsumexp_a Q(s, .) - Q(s, a))

   (the CQL(H) regulariser: push down all actions, push up the data's), with Adam (``lr``) and a
   Polyak-averaged target network (``tau`` per step). Truncated transitions bootstrap. Padded
   actions are excluded from the maximum and the logsumexp.
3. ``evaluate_policy``: the greedy policy of the learned ``Q`` runs online for ``eval_steps`` steps
   per row (no learning, no exploration) on a fresh reset of the batch, recorded like any agent.

``run_cql`` chains the three. Defaults are the reference's (gamma 0.99, alpha 1.0, lr 3e-4, buffer
1e5, batch 64, tau 0.005, 100 epochs, 256 hidden units), with one documented choice: the network
has a single hidden layer (the reference's depth is not recorded; with one-hot inputs one layer
already represents any table, and a second 256x256 layer would multiply the CPU cost by ~50).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from omnirl._threads import torch_threads
from omnirl._validate import check_choice, check_float, check_int
from omnirl.evaluate.baselines._common import (TAG_CQL_BEHAVIOUR, TAG_CQL_EVAL, TAG_CQL_INIT,
                                               TAG_CQL_SHUFFLE, action_mask, check_config, check_run,
                                               derived_seed, row_sizes, streams, uniform_actions)
from omnirl.evaluate.baselines._nets import BatchedMLP
from omnirl.evaluate.records import EpisodeRecorder, Episodes

BEHAVIOURS = ("noisy_oracle", "oracle", "random")
"""Behaviour policies of ``collect_dataset``."""


@dataclasses.dataclass(frozen=True)
class CQLConfig:
    """Hyper-parameters of discrete CQL and of its dataset."""

    behaviour: str = "noisy_oracle"
    """Behaviour policy that collects the dataset (one of ``BEHAVIOURS``)."""
    epsilon: float = 0.3
    """Probability of a uniform random action of the ``noisy_oracle`` behaviour, in [0, 1]."""
    dataset_steps: int = 2048
    """Steps per row of the dataset when ``run_baseline("cql", ...)`` is not told
    ``dataset_steps`` (the run's ``steps`` are the evaluation steps)."""
    gamma: float = 0.99
    """Discount factor in [0, 1)."""
    alpha: float = 1.0
    """Weight of the conservative regulariser ``logsumexp_a Q(s, a) - Q(s, a_data)`` (>= 0; 0 gives
    plain offline DQN)."""
    lr: float = 3e-4
    """Adam learning rate."""
    buffer_size: int = 100_000
    """Most transitions per row kept (the latest ones)."""
    batch_size: int = 64
    """Transitions of a row per gradient step."""
    tau: float = 0.005
    """Polyak rate of the target network per gradient step, in (0, 1]."""
    epochs: int = 100
    """Passes over the dataset."""
    hidden: int = 256
    """Hidden units of the (single-hidden-layer) Q-network."""
    torch_threads: int = 1
    """Torch intra-op threads during training (0: leave torch's setting alone); restored after."""

    def __post_init__(self) -> None:
        check_choice("behaviour", self.behaviour, BEHAVIOURS)
        check_float("epsilon", self.epsilon, min_value=0.0, max_value=1.0)
        check_int("dataset_steps", self.dataset_steps, min_value=1)
        check_float("gamma", self.gamma, min_value=0.0, max_value=1.0, max_inclusive=False)
        check_float("alpha", self.alpha, min_value=0.0)
        check_float("lr", self.lr, min_value=0.0, min_inclusive=False)
        check_int("buffer_size", self.buffer_size, min_value=1)
        check_int("batch_size", self.batch_size, min_value=1)
        check_float("tau", self.tau, min_value=0.0, max_value=1.0, min_inclusive=False)
        check_int("epochs", self.epochs, min_value=1)
        check_int("hidden", self.hidden, min_value=1)
        check_int("torch_threads", self.torch_threads, min_value=0)


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Transitions of ``B`` rows, ``N`` per row (arrays ``(B, N)``), and how they were made."""

    obs: np.ndarray
    """int64 observation the action was taken in."""
    action: np.ndarray
    """int64 native action."""
    reward: np.ndarray
    """float64 shaped reward (what the learner sees)."""
    next_obs: np.ndarray
    """int64 observation the step led to."""
    terminated: np.ndarray
    """bool: the step entered a terminal state (no bootstrap)."""
    truncated: np.ndarray
    """bool: the episode hit its limit at this step."""
    infos: tuple
    """``EnvInfo`` of each row."""
    behaviour: str
    """Behaviour policy (one of ``BEHAVIOURS``)."""
    epsilon: float
    """Random-action probability of the behaviour (1 for ``random``)."""
    episodes: Episodes
    """The behaviour's own episodes while collecting (its level)."""

    @property
    def n_rows(self) -> int:
        return self.obs.shape[0]

    @property
    def n_steps(self) -> int:
        return self.obs.shape[1]


def collect_dataset(batch, steps: int, seed: int, behaviour: str = "noisy_oracle",
                    epsilon: float = 0.3) -> Dataset:
    """Run ``behaviour`` (see the module docstring) for ``steps`` steps per row on ``batch``
    (reset with ``seed``) and return its transitions."""
    steps, seed = check_run(batch, steps, seed)
    check_choice("behaviour", behaviour, BEHAVIOURS)
    eps = {"noisy_oracle": check_float("epsilon", epsilon, min_value=0.0, max_value=1.0),
           "oracle": 0.0, "random": 1.0}[behaviour]
    _, n_actions = row_sizes(batch.infos)
    B = len(n_actions)
    rng = streams(seed, TAG_CQL_BEHAVIOUR, B)
    cols = {k: np.zeros((B, steps), dtype=d) for k, d in
            (("obs", np.int64), ("action", np.int64), ("reward", np.float64), ("next_obs", np.int64),
             ("terminated", bool), ("truncated", bool))}
    recorder = EpisodeRecorder(batch.infos)
    obs = np.array(batch.reset(seed), dtype=np.int64)  # (B,)
    for t in range(steps):
        u = rng.uniform(0, 2)  # (B, 2): the noise test, the random action
        actions = uniform_actions(u[:, 1], n_actions)
        if eps < 1.0:
            try:
                oracle = np.asarray(batch.oracle_actions(), dtype=np.int64)
            except NotImplementedError as e:
                raise ValueError(f"behaviour={behaviour!r} needs oracle actions: {e}") from None
            actions = np.where(u[:, 0] < eps, actions, oracle)
        rng.advance()
        res = batch.step(actions)
        recorder.record(res)
        cols["obs"][:, t], cols["action"][:, t] = obs, actions
        cols["reward"][:, t], cols["next_obs"][:, t] = res.reward, res.next_obs
        cols["terminated"][:, t], cols["truncated"][:, t] = res.terminated, res.truncated
        obs = np.array(batch.obs, dtype=np.int64)  # a copy: batch.obs may change in place
    return Dataset(**cols, infos=tuple(batch.infos), behaviour=behaviour, epsilon=eps,
                   episodes=recorder.episodes())


@dataclasses.dataclass(frozen=True)
class CQLResult:
    """What ``train_cql`` learned: the rows' ``Q (B, S, A)`` tables (the network evaluated in every
    state; padded actions hold -inf) and the greedy ``policy (B, S)``."""

    q: np.ndarray
    policy: np.ndarray


def train_cql(dataset: Dataset, config: CQLConfig | dict | None = None, *, seed: int = 0,
              log: list | None = None) -> CQLResult:
    """Train one CQL Q-network per row of ``dataset`` (see the module docstring); weights and
    minibatches come from ``seed``. ``log`` (optional list) receives one dict per epoch: ``epoch``,
    ``td_loss``, ``cql_loss`` (``logsumexp - Q(s, a)``), ``q_data`` (mean ``Q(s, a)``), means over
    rows and minibatches."""
    if not isinstance(dataset, Dataset):
        raise ValueError(f"dataset must be a Dataset (from collect_dataset), got {type(dataset).__name__}")
    cfg = check_config(config, CQLConfig)
    check_int("seed", seed, min_value=0)
    with torch_threads(cfg.torch_threads):
        return _train(dataset, cfg, seed, log)


def _train(data: Dataset, cfg: CQLConfig, seed: int, log: list | None) -> CQLResult:
    n_obs, n_actions = row_sizes(data.infos)
    B, S, A = len(n_obs), int(n_obs.max()), int(n_actions.max())
    keep = slice(max(0, data.n_steps - cfg.buffer_size), data.n_steps)  # the latest buffer_size
    obs, act, rew, nxt, term = (torch.as_tensor(np.ascontiguousarray(x[:, keep])) for x in
                                (data.obs, data.action, data.reward.astype(np.float32), data.next_obs,
                                 data.terminated))
    N = obs.shape[1]
    valid = torch.as_tensor(action_mask(n_actions))  # (B, A)
    qnet = BatchedMLP(B, S, [cfg.hidden], A, seed=seed, tag=TAG_CQL_INIT, activation="relu",
                      out_gain=1.0)
    tnet = BatchedMLP(B, S, [cfg.hidden], A, seed=seed, tag=TAG_CQL_INIT, activation="relu",
                      out_gain=1.0)  # the target network starts equal to the online one
    for p in tnet.parameters():
        p.requires_grad_(False)
    opt = torch.optim.Adam(qnet.parameters(), lr=cfg.lr, foreach=True)
    shuffle = streams(seed, TAG_CQL_SHUFFLE, B)
    neg = torch.tensor(-1e9)
    for epoch in range(1, cfg.epochs + 1):
        perm = torch.as_tensor(np.argsort(shuffle.uniform(0, N), axis=1, kind="stable"))  # (B, N)
        shuffle.advance()
        sums, n = np.zeros(3), 0
        for k in range(0, N, cfg.batch_size):
            idx = perm[:, k:k + cfg.batch_size]  # (B, m)
            o, a, r, o2, d = (x.gather(1, idx) for x in (obs, act, rew, nxt, term))  # (B, m) each
            with torch.no_grad():
                q2 = torch.where(valid[:, None, :], tnet(o2), neg).max(-1).values  # (B, m)
                y = r + cfg.gamma * torch.where(d, torch.zeros_like(q2), q2)
            q = torch.where(valid[:, None, :], qnet(o), neg)  # (B, m, A)
            q_data = q.gather(2, a[..., None])[..., 0]  # (B, m)
            td = torch.nn.functional.smooth_l1_loss(q_data, y, reduction="none").mean(1)  # (B,)
            gap = (torch.logsumexp(q, dim=-1) - q_data).mean(1)  # (B,)
            loss = (td + cfg.alpha * gap).sum()  # rows do not mix
            opt.zero_grad(set_to_none=False)
            loss.backward()
            opt.step()
            with torch.no_grad():  # Polyak averaging of the target network
                for p_target, p in zip(tnet.parameters(), qnet.parameters()):
                    p_target.lerp_(p, cfg.tau)
            sums += (float(td.detach().mean()), float(gap.detach().mean()), float(q_data.detach().mean()))
            n += 1
        if log is not None:
            log.append({"epoch": epoch, **{k: float(v) for k, v in zip(("td_loss", "cql_loss", "q_data"),
                                                                        sums / n)}})
    with torch.no_grad():
        q_all = torch.where(valid[:, None, :], qnet.table(), -torch.inf).double().numpy()  # (B, S, A)
    return CQLResult(q=q_all, policy=q_all.argmax(axis=-1))


def evaluate_policy(batch, policy: np.ndarray, steps: int, seed: int) -> Episodes:
    """Run the fixed deterministic ``policy (B, S)`` (an action per row and observation) on
    ``batch`` reset with ``seed`` for ``steps`` steps per row; no learning."""
    steps, seed = check_run(batch, steps, seed)
    n_obs, n_actions = row_sizes(batch.infos)
    policy = np.asarray(policy)
    if policy.ndim != 2 or policy.shape[0] != len(n_obs) or policy.shape[1] < n_obs.max():
        raise ValueError(f"policy must have shape ({len(n_obs)}, >= {int(n_obs.max())}), "
                         f"got {policy.shape}")
    rows = np.arange(len(n_obs))
    recorder = EpisodeRecorder(batch.infos)
    obs = np.array(batch.reset(seed), dtype=np.int64)
    for _ in range(steps):
        recorder.record(batch.step(policy[rows, obs].astype(np.int64)))
        obs = np.array(batch.obs, dtype=np.int64)  # a copy: batch.obs may change in place
    return recorder.episodes()


def run_cql(batch, dataset_steps: int, eval_steps: int, seed: int, config: CQLConfig | dict | None = None,
            *, log: list | None = None) -> Episodes:
    """Collect ``dataset_steps`` steps per row with ``config.behaviour`` (batch reset with
    ``seed``), train CQL on them, and return the episodes of its greedy policy over ``eval_steps``
    steps per row (batch reset with a seed derived from ``seed``). ``log`` gets the training log
    (see ``train_cql``)."""
    check_int("dataset_steps", dataset_steps, min_value=1)
    eval_steps, seed = check_run(batch, eval_steps, seed)
    cfg = check_config(config, CQLConfig)
    data = collect_dataset(batch, dataset_steps, seed, cfg.behaviour, cfg.epsilon)
    result = train_cql(data, cfg, seed=seed, log=log)
    return evaluate_policy(batch, result.policy, eval_steps, derived_seed(seed, TAG_CQL_EVAL))


__all__ = ["BEHAVIOURS", "CQLConfig", "Dataset", "CQLResult", "collect_dataset", "train_cql",
           "evaluate_policy", "run_cql"]
