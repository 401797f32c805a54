"""Baselines (TQL-UCB, PPO, CQL) on small tasks: they learn, they are reproducible, rows are
independent learners, and bad configurations fail loudly."""

from __future__ import annotations

import numpy as np
import pytest

from omnirl.config import config_to_dict
from omnirl.evaluate.baselines import (BANDIT_BASELINES, BASELINES, CQLConfig, PPOConfig, TQLUCBConfig,
                                       collect_dataset, evaluate_policy, make_config, run_baseline, run_cql, run_ppo,
                                       run_tql_ucb, train_cql)
from omnirl.evaluate.baselines.ppo import gae
from omnirl.evaluate.envs import make_batch
from omnirl.evaluate.envs.base import MDPBatch, StepResult
from omnirl.evaluate.records import COLUMNS
from omnirl.tasks import sample_anymdp


@pytest.fixture(scope="module")
def anymdp_tasks():
    """16 AnyMDP tasks with S = 16 (and one with S = 24 for padding checks)."""
    return [sample_anymdp(16, 5, seed=(7, i)) for i in range(16)], sample_anymdp(24, 5, seed=(8, 0))


def anymdp_batch(tasks) -> MDPBatch:
    return MDPBatch(tasks)


def early(episodes, n: int = 3) -> float:
    """Mean score of the first ``n`` episodes of every row."""
    return float(np.mean(episodes.score[episodes.episode < n]))


def same(a, b) -> bool:
    return len(a) == len(b) and all(np.array_equal(getattr(a, c), getattr(b, c), equal_nan=True)
                                    for c in COLUMNS)


def row_columns(episodes, row: int) -> dict:
    """The columns (but ``row``) of one row's episodes."""
    sel = episodes.select(episodes.row == row)
    return {c: getattr(sel, c) for c in COLUMNS if c != "row"}


class ConcatBatch:
    """Rows of several batches side by side (rows may then differ in ``n_actions``); each part
    is reset with the run's seed, so its rows keep the seeds they have alone."""

    def __init__(self, *parts) -> None:
        self.parts = parts
        self.infos = tuple(i for p in parts for i in p.infos)
        self._cuts = np.cumsum([0] + [p.n_envs for p in parts])
        self.obs = np.zeros(len(self.infos), dtype=np.int64)

    @property
    def n_envs(self) -> int:
        return len(self.infos)

    def reset(self, seed: int) -> np.ndarray:
        self.obs = np.concatenate([p.reset(seed) for p in self.parts])
        return self.obs.copy()

    def step(self, actions) -> StepResult:
        res = [p.step(actions[lo:hi]) for p, lo, hi in zip(self.parts, self._cuts[:-1], self._cuts[1:])]
        self.obs = np.concatenate([p.obs for p in self.parts])
        return StepResult(*(np.concatenate(f) for f in zip(*res)))

    def oracle_actions(self) -> np.ndarray:
        return np.concatenate([p.oracle_actions() for p in self.parts])


# --------------------------------------------------------------------------- TQL-UCB
def test_tql_ucb_solves_lake():
    ep = run_tql_ucb(make_batch("lake4x4", 8, seed=0), 3000, seed=0)
    assert ep.final() > 0.8
    assert early(ep) < 0.5  # it had to learn


def test_tql_ucb_learns_anymdp(anymdp_tasks):
    log: list = []
    ep = run_tql_ucb(anymdp_batch(anymdp_tasks[0]), 2048, seed=0, log=log)
    assert ep.final() > 0.25
    assert ep.final() > early(ep) + 0.2
    assert [e["step"] for e in log] == list(range(256, 2049, 256))
    assert log[-1]["tried"] > log[0]["tried"]


def test_tql_ucb_rows_are_independent(anymdp_tasks):
    tasks, big = anymdp_tasks
    together = run_tql_ucb(anymdp_batch(tasks[:3]), 600, seed=3)
    alone = run_tql_ucb(anymdp_batch(tasks[:1]), 600, seed=3)
    for c, v in row_columns(alone, 0).items():
        np.testing.assert_array_equal(v, row_columns(together, 0)[c], err_msg=c)
    # row 1 next to a different, larger task (padding changes) runs exactly as before
    other = run_tql_ucb(anymdp_batch([big, tasks[1]]), 600, seed=3)
    for c, v in row_columns(together, 1).items():
        np.testing.assert_array_equal(v, row_columns(other, 1)[c], err_msg=c)


def test_tql_ucb_masks_actions_of_mixed_rows(anymdp_tasks):
    """A 4-action lake next to a 5-action AnyMDP task: the lake is never sent action 4 (the batch
    would raise) and runs exactly as alone."""
    lake = lambda: make_batch("lake4x4", 1, seed=0)  # noqa: E731
    mixed = run_tql_ucb(ConcatBatch(lake(), anymdp_batch(anymdp_tasks[0][:1])), 800, seed=1)
    alone = run_tql_ucb(lake(), 800, seed=1)
    for c, v in row_columns(alone, 0).items():
        np.testing.assert_array_equal(v, row_columns(mixed, 0)[c], err_msg=c)
    assert (mixed.row == 1).any()


# --------------------------------------------------------------------------- PPO
def test_ppo_improves_on_anymdp(anymdp_tasks):
    log: list = []
    ep = run_ppo(anymdp_batch(anymdp_tasks[0]), 2048, seed=0, log=log)
    assert ep.final() > early(ep) + 0.15
    assert len(log) == 2048 // PPOConfig().n_steps
    for key in ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "grad_norm"):
        assert all(np.isfinite(e[key]) for e in log), key
    assert log[-1]["entropy"] < log[0]["entropy"]  # the policies became more decided


def test_ppo_improves_on_lake():
    ep = run_ppo(make_batch("lake4x4", 16, seed=0), 2500, seed=0)
    assert ep.final() > early(ep) + 0.2


def test_ppo_mixed_action_counts(anymdp_tasks):
    ep = run_ppo(ConcatBatch(make_batch("lake4x4", 1, seed=0), anymdp_batch(anymdp_tasks[0][:1])), 300,
                 seed=0, config={"n_steps": 64, "n_epochs": 2})
    assert set(np.unique(ep.row)) == {0, 1}


def test_gae_bootstraps_truncation_not_termination():
    # one row, 3 steps: reward 1 each; step 0 truncated, step 1 terminated, step 2 runs on
    r = np.ones((1, 3))
    v, v_next = np.full((1, 3), 0.5), np.full((1, 3), 2.0)
    term = np.array([[False, True, False]])
    done = np.array([[True, True, False]])
    adv = gae(r, v, v_next, term, done, gamma=0.9, lam=0.5)
    np.testing.assert_allclose(adv, [[1 + 0.9 * 2 - 0.5, 1 - 0.5, 1 + 0.9 * 2 - 0.5]])
    done = np.zeros((1, 3), bool)
    term = np.zeros((1, 3), bool)
    adv = gae(r, v, v_next, term, done, gamma=0.9, lam=0.5)
    d = 1 + 0.9 * 2 - 0.5
    np.testing.assert_allclose(adv[0], [d + 0.45 * (d + 0.45 * d), d + 0.45 * d, d])


# --------------------------------------------------------------------------- CQL
def test_cql_learns_from_noisy_oracle_data(anymdp_tasks):
    batch = anymdp_batch(anymdp_tasks[0][:12])
    cfg = CQLConfig(epochs=30)
    noisy = collect_dataset(batch, 1024, seed=0, behaviour="noisy_oracle", epsilon=0.3)
    rand = collect_dataset(batch, 1024, seed=0, behaviour="random")
    assert noisy.obs.shape == (12, 1024) and noisy.terminated.dtype == bool
    behaviour_level, random_level = noisy.episodes.final(), rand.episodes.final()
    assert behaviour_level > random_level + 0.2  # the teacher is imperfect but informative
    log: list = []
    learned = train_cql(noisy, cfg, seed=0, log=log)
    assert learned.q.shape == (12, 16, 5) and learned.policy.shape == (12, 16)
    assert len(log) == 30 and all(np.isfinite(v) for e in log for v in e.values())
    score = evaluate_policy(batch, learned.policy, 1024, seed=5).final()
    assert score > random_level + 0.2
    assert score > behaviour_level - 0.1  # at least near the behaviour's level


def test_cql_through_the_registry_and_oracle_behaviour():
    batch = make_batch("lake4x4", 2, seed=0)
    log: list = []
    ep = run_baseline("cql", batch, 400, seed=0, config={"behaviour": "oracle", "epochs": 10},
                      dataset_steps=300, log=log)
    assert len(log) == 10
    assert ep.final() > 0.9  # the oracle's data show the way to the goal
    with pytest.raises(ValueError, match="dataset"):
        train_cql("not a dataset")


# --------------------------------------------------------------------------- all baselines
SMALL = {"tql_ucb": {}, "ppo": {"n_steps": 64, "n_epochs": 2}, "cql": {"epochs": 3}}
MDP_BASELINES = sorted(set(BASELINES) - set(BANDIT_BASELINES))
"""The baselines of any discrete environment (the bandit ones are tested in test_bandits)."""


@pytest.mark.parametrize("name", MDP_BASELINES)
def test_reproducible_and_seed_dependent(name, anymdp_tasks):
    tasks = anymdp_tasks[0][:4]
    kw = {"dataset_steps": 256} if name == "cql" else {}
    run = lambda seed: run_baseline(name, anymdp_batch(tasks), 400, seed, SMALL[name], **kw)  # noqa: E731
    a, b, c = run(0), run(0), run(1)
    assert len(a) > 0 and a.steps == 400
    assert same(a, b)
    assert not same(a, c)


@pytest.mark.parametrize("name", ["ppo", "cql"])
def test_network_rows_are_independent(name, anymdp_tasks):
    """Per-row networks never mix: row 0 runs the same alone as next to other rows (exactly, on
    this platform's batched matrix kernels)."""
    tasks = anymdp_tasks[0][:3]
    kw = {"dataset_steps": 256} if name == "cql" else {}
    together = run_baseline(name, anymdp_batch(tasks), 400, 2, SMALL[name], **kw)
    alone = run_baseline(name, anymdp_batch(tasks[:1]), 400, 2, SMALL[name], **kw)
    for c, v in row_columns(alone, 0).items():
        np.testing.assert_array_equal(v, row_columns(together, 0)[c], err_msg=c)


@pytest.mark.parametrize("name", MDP_BASELINES)
def test_configs_from_dicts(name):
    cls = BASELINES[name].config_cls
    assert make_config(name, None) == cls()
    cfg = make_config(name, {"gamma": 0.9})
    assert cfg.gamma == 0.9 and isinstance(cfg, cls)
    assert make_config(name, config_to_dict(cfg)) == cfg
    assert make_config(name, cfg) is cfg
    with pytest.raises(ValueError, match="gammma"):
        make_config(name, {"gammma": 0.9})


@pytest.mark.parametrize("make, field", [
    (lambda: TQLUCBConfig(alpha=0.0), "alpha"),
    (lambda: TQLUCBConfig(gamma=1.0), "gamma"),
    (lambda: TQLUCBConfig(c=-1.0), "c"),
    (lambda: PPOConfig(batch_size=1), "batch_size"),
    (lambda: PPOConfig(n_steps=32, batch_size=64), "batch_size"),
    (lambda: PPOConfig(clip=0.0), "clip"),
    (lambda: PPOConfig(lr=-1e-3), "lr"),
    (lambda: PPOConfig(hidden=0), "hidden"),
    (lambda: CQLConfig(behaviour="expert"), "behaviour"),
    (lambda: CQLConfig(epsilon=1.5), "epsilon"),
    (lambda: CQLConfig(tau=0.0), "tau"),
    (lambda: CQLConfig(alpha=-1.0), "alpha"),
    (lambda: make_config("ppo", {"n_epochs": "ten"}), "n_epochs"),
    (lambda: run_baseline("dqn", None, 10, 0), "name"),
    (lambda: run_tql_ucb(make_batch("lake4x4", 1, seed=0), 0, 0), "steps"),
    (lambda: run_ppo(make_batch("lake4x4", 1, seed=0), 10, -1), "seed"),
    (lambda: run_cql(make_batch("lake4x4", 1, seed=0), 0, 10, 0), "dataset_steps"),
    (lambda: run_tql_ucb(make_batch("lake4x4", 1, seed=0), 10, 0, config=PPOConfig()), "config"),
    (lambda: collect_dataset(make_batch("lake4x4", 1, seed=0), 10, 0, behaviour="greedy"), "behaviour"),
])
def test_bad_arguments_name_the_field(make, field):
    with pytest.raises(ValueError, match=field):
        make()
