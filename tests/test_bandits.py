"""Bandits as a domain: the bandit behaviours and their mixture, the bandit pipeline, the bandit
baselines and the regret measurement."""

import json

import numpy as np
import pytest

from omnirl.agents import PriorInfo
from omnirl.agents.bandit import (BANDIT_COMPONENTS, BANDIT_WEIGHTS, ArmStats, BanditMix, BanditMixConfig, best_arms,
                                  thompson_actions, ucb1_actions)
from omnirl.data.generate import DatasetSpec, generate_dataset, prepare_task_set
from omnirl.data.store import Dataset
from omnirl.evaluate.__main__ import main as eval_main
from omnirl.evaluate.baselines import BASELINES, run_baseline
from omnirl.evaluate.envs import make_batch
from omnirl.evaluate.envs.anymdp import bandit_batch
from omnirl.evaluate.regret import RegretBatch, arm_means, regret_numbers, state_blind_scores
from omnirl.tasks import sample_anymdp, sample_bandit
from omnirl.tasks.solver import expected_reward

A = 5


def bandits(n, root=11):
    return [sample_bandit(A, seed=(root, i)) for i in range(n)]


def play(mix, tasks, steps, seed=0):
    """``(actions, tags)`` ``(B, steps)`` of ``mix`` pulling the arms of ``tasks`` (noise-free rewards)."""
    means = arm_means(tasks)
    rows = np.arange(len(tasks))
    acts, tags = [], []
    obs = np.zeros(len(tasks), dtype=np.int64)
    for _ in range(steps):
        a = mix.act(obs)
        acts.append(a)
        tags.append(mix.last_tags.copy())
        mix.observe(obs, a, means[rows, a], obs, np.zeros(len(tasks), bool))
    return np.stack(acts, 1), np.stack(tags, 1)


def only(name, **kw):
    return BanditMixConfig(weights={name: 1.0}, **kw)


def test_each_component_acts_as_documented():
    tasks = bandits(32)
    best = best_arms(tasks)
    assert (best == np.argmax(arm_means(tasks), axis=1)).all()
    seeds = [(0, i) for i in range(32)]
    acts, tags = play(BanditMix(only("oracle"), tasks, seeds), tasks, 20)
    assert (acts == best[:, None]).all() and (tags == int(PriorInfo.ORACLE_G0994)).all()
    acts, tags = play(BanditMix(only("uniform"), tasks, seeds), tasks, 400)
    share = np.bincount(acts.ravel(), minlength=A) / acts.size
    assert np.abs(share - 1 / A).max() < 0.02 and (tags == int(PriorInfo.RANDOM)).all()
    for name in ("ucb1", "thompson"):
        acts, tags = play(BanditMix(only(name, ucb_c=(0.05, 0.05)), tasks, seeds), tasks, 300)
        assert (tags == int(PriorInfo.MODEL_BASED)).all()
        late = (acts[:, -100:] == best[:, None]).mean()
        assert late > 0.8, (name, late)  # arm gaps can be tiny: UCB1 still tries the others
    mix = BanditMix(only("epsilon_greedy", eps_start=(1.0, 1.0), eps_tau=(1.0, 1.0)), tasks, seeds)
    acts, tags = play(mix, tasks, 400)
    explored = tags == int(PriorInfo.RANDOM)
    assert set(np.unique(tags)) == {int(PriorInfo.Q_LEARNING), int(PriorInfo.RANDOM)}
    assert explored[:, :10].mean() > 0.5 > 0.1 > explored[:, -100:].mean()  # eps = 1 / (1 + t / 5)
    assert mix.epsilon() == pytest.approx(1 / (1 + 400 / A))


def test_a_row_depends_on_its_task_and_seed_only():
    tasks = bandits(12)
    seeds = [(3, i) for i in range(12)]
    together, tags = play(BanditMix(BanditMixConfig(), tasks, seeds), tasks, 60)
    alone = play(BanditMix(BanditMixConfig(), tasks[5:6], seeds[5:6]), tasks[5:6], 60)[0]
    assert (together[5] == alone[0]).all()
    again = play(BanditMix(BanditMixConfig(), tasks, seeds), tasks, 60)[0]
    assert (together == again).all()
    assert len(set(BanditMix(BanditMixConfig(), bandits(400), [(1, i) for i in range(400)]).kind)) == \
        len(BANDIT_WEIGHTS)  # the components of positive default weight
    for name in ("posterior", "switch"):  # the components with per-row random draws of their own
        mixed = BanditMixConfig(weights={name: 1.0, "uniform": 1.0})
        together = play(BanditMix(mixed, tasks, seeds), tasks, 40)[0]
        alone = play(BanditMix(mixed, tasks[5:6], seeds[5:6]), tasks[5:6], 40)[0]
        assert (together[5] == alone[0]).all(), name


def test_posterior_sampling_draws_arms_with_the_reference_posterior():
    """``posterior`` pulls arm ``a`` with the reference's P(best = a) given the pulls so far: at the
    first pull uniformly; later, row by row, with the probabilities ``bandit_policy`` gives its context."""
    from omnirl.agents.reference import ReferenceConfig, bandit_policy

    tasks = bandits(300)
    seeds = [(7, i) for i in range(300)]
    mix = BanditMix(only("posterior", posterior_dense=6), tasks, seeds)
    acts, tags = play(mix, tasks, 6)
    assert (tags == int(PriorInfo.MODEL_BASED)).all()
    assert np.abs(np.bincount(acts[:, 0], minlength=A) / 300 - 1 / A).max() < 0.08  # no pull seen: uniform
    rewards = np.take_along_axis(arm_means(tasks), acts, 1)
    p = bandit_policy(acts, rewards, A, ReferenceConfig(smoothing=1e-9, bandit_draws=512))[:, 5]  # (300, A)
    expected, observed = p.sum(0), np.bincount(acts[:, 5], minlength=A)
    assert np.all(np.abs(observed - expected) < 4 * np.sqrt(expected) + 1), (observed, expected)
    likely = p[np.arange(300), acts[:, 5]].mean()  # the drawn arm's posterior probability
    assert likely == pytest.approx((p * p).sum(1).mean(), abs=0.05) and likely > 1.5 / A
    tasks = bandits(16)
    acts = play(BanditMix(only("posterior"), tasks, [(0, i) for i in range(16)]), tasks, 100)[0]
    assert (acts[:, -30:] == best_arms(tasks)[:, None]).mean() > 0.9  # noise-free rewards: it settles


def test_switch_pulls_uniformly_then_samples():
    tasks = bandits(64)
    mix = BanditMix(only("switch", switch=(20.0, 60.0)), tasks, [(2, i) for i in range(64)])
    acts, tags = play(mix, tasks, 200)
    k = np.ceil(mix._switch).astype(int)  # the first pull of Thompson sampling
    assert (k >= 20).all() and (k <= 60).all() and len(set(k.tolist())) > 10
    for row in range(64):
        assert (tags[row, :k[row]] == int(PriorInfo.RANDOM)).all()
        assert (tags[row, k[row]:] == int(PriorInfo.MODEL_BASED)).all()
    assert np.abs(np.bincount(acts[:, :20].ravel(), minlength=A) / acts[:, :20].size - 1 / A).max() < 0.05
    assert (acts[:, -50:] == best_arms(tasks)[:, None]).mean() > 0.8


def test_learners_by_hand():
    st = ArmStats(1, 3)
    u = np.array([[0.1, 0.9, 0.5]])
    assert ucb1_actions(st, 1.0, u)[0] == 1  # untried arms first, ties by u
    for a, r in ((0, 1.0), (1, 0.0), (2, 0.5), (0, 1.0)):
        st.update(np.array([a]), np.array([r]))
    assert ucb1_actions(st, 0.0, u)[0] == 0  # greedy on the means
    score = st.means() + 1.0 * np.sqrt(2 * np.log(4) / st.N)
    assert ucb1_actions(st, 1.0, u)[0] == int(np.argmax(score))
    # the posterior mean with z = 0: (m0 / s0^2 + R / s^2) / (1 / s0^2 + N / s^2)
    post = (0.0 / 1.0 + st.R / 0.5 ** 2) / (1.0 + st.N / 0.5 ** 2)
    assert post[0].tolist() == pytest.approx([8 / 9, 0.0, 0.4])
    assert thompson_actions(st, np.zeros((1, 3)), 0.0, 1.0, 0.5)[0] == 0


@pytest.mark.parametrize("kw, name", [
    (dict(weights={"greedy": 1.0}), "weights"), (dict(weights={"ucb1": -1.0}), "weights"),
    (dict(eps_start=(0.5, 1.5)), "eps_start"), (dict(eps_tau=(0.0, 1.0)), "eps_tau"),
    (dict(ucb_c=(-1.0, 1.0)), "ucb_c"), (dict(noise_std=0.0), "noise_std"), (dict(prior_std=-1.0), "prior_std"),
    (dict(switch=(-1.0, 5.0)), "switch"), (dict(switch=(5.0, 1.0)), "switch"),
    (dict(posterior_refresh=0), "posterior_refresh"), (dict(posterior_dense=-1), "posterior_dense"),
])
def test_bad_config(kw, name):
    with pytest.raises(ValueError, match=name):
        BanditMixConfig(**kw)


def test_the_mix_refuses_mdps():
    with pytest.raises(ValueError, match="bandit"):
        BanditMix(BanditMixConfig(), [sample_anymdp(16, A, seed=0)], [(0,)], n_obs=1)


def bandit_dataset(tmp_path, pipeline: str, n: int, length: int, task_seed: int, seed: int):
    """A dataset of ``n`` sequences of the bandit ``pipeline`` on a task set of ``n`` bandits, and
    that task set."""
    from omnirl.tasks.taskset import TaskSet

    tasks_dir = prepare_task_set(tmp_path / "bandits", n, "1", A, task_seed=task_seed)
    spec = DatasetSpec(pipeline=pipeline, n_sequences=n, length=length, n_obs=1, n_actions=A, seed=seed,
                       task_set=str(tasks_dir))
    generate_dataset(spec, tmp_path / "d")
    return Dataset.open(tmp_path / "d"), TaskSet.load(tasks_dir)


def test_bandit_pipeline_data(tmp_path):
    ds, tasks = bandit_dataset(tmp_path, "bandit", 16, 200, task_seed=3, seed=2)
    seen_tags = set()
    for j in range(len(ds)):
        seq = ds.sequence(j)
        pulls = seq["action"] < A  # every other entry is an episode-end marker
        assert pulls.mean() == pytest.approx(0.5, abs=0.01)
        best = int(np.argmax(tasks[int(seq["task_index"])].reward[0, :, 0]))
        assert (seq["label"][pulls] == best).all() and (seq["prompt"][pulls] == 3).all()
        seen_tags |= set(seq["tag"][pulls].tolist())
    assert seen_tags <= {3, 4, 5, 6, 7} and len(seen_tags) >= 3
    with pytest.raises(ValueError, match="n_obs"):
        DatasetSpec(pipeline="bandit", n_sequences=4, length=20, n_obs=16, n_actions=A, seed=0)


def test_bandit_thompson_pipeline_data(tmp_path):
    """Half uniform pulls (tag 6), half Thompson sampling (tag 4, one behaviour per sequence, never
    masked): the Thompson sequences concentrate their pulls on the best arm, the labels are the best arm."""
    ds, tasks = bandit_dataset(tmp_path, "bandit_thompson", 24, 300, task_seed=4, seed=1)
    share = {4: [], 6: []}
    for j in range(len(ds)):
        seq = ds.sequence(j)
        pulls = seq["action"] < A
        best = int(np.argmax(tasks[int(seq["task_index"])].reward[0, :, 0]))
        assert (seq["label"][pulls] == best).all() and (seq["prompt"][pulls] == 3).all()
        tags = set(seq["tag"][pulls].tolist())
        assert len(tags) == 1 and tags <= {4, 6}
        share[tags.pop()].append(float((seq["action"][pulls][50:] == best).mean()))
    assert share[4] and share[6]
    assert np.mean(share[4]) > 0.6 > 0.35 > np.mean(share[6])


@pytest.mark.parametrize("pipeline, tags", [("bandit_posterior", {4}), ("bandit_switch", {6, 4})])
def test_posterior_and_switch_pipeline_data(tmp_path, pipeline, tags):
    """Best-arm labels, never-masked tags of who acted, pulls that concentrate on the best arm."""
    ds, tasks = bandit_dataset(tmp_path, pipeline, 12, 700, task_seed=5, seed=2)
    late = []
    for j in range(len(ds)):
        seq = ds.sequence(j)
        pulls = seq["action"] < A
        best = int(np.argmax(tasks[int(seq["task_index"])].reward[0, :, 0]))
        assert (seq["label"][pulls] == best).all() and (seq["prompt"][pulls] == 3).all()
        assert set(seq["tag"][pulls].tolist()) <= tags
        if tags == {6, 4}:  # uniform first, then Thompson sampling: 6s never follow a 4
            t = seq["tag"][pulls]
            assert not ((t[:-1] == 4) & (t[1:] == 6)).any()
        late.append(float((seq["action"][pulls][-60:] == best).mean()))
    assert np.mean(late) > 0.6


def test_bandit_baselines_learn_on_bandits_and_per_state_on_mdps():
    assert {"ucb1", "thompson", "uniform"} <= set(BASELINES)
    regret = {}
    for name in ("ucb1", "thompson", "uniform"):
        batch = RegretBatch(bandit_batch(24, seed=5))
        eps = run_baseline(name, batch, 300, seed=1)
        assert len(eps) == 24 * 300  # one episode per pull
        regret[name] = regret_numbers(batch.regret(), batch.gap)
    assert regret["ucb1"]["regret"] < 0.2 * regret["uniform"]["regret"]
    assert regret["thompson"]["regret"] < 0.2 * regret["uniform"]["regret"]
    assert abs(regret["uniform"]["regret_score"]) < 0.1
    a = run_baseline("thompson", bandit_batch(6, seed=5), 50, seed=1)
    b = run_baseline("thompson", bandit_batch(6, seed=5), 50, seed=1)
    assert (a.raw_return == b.raw_return).all()
    # on an MDP each state is its own bandit: UCB1 learns the best immediate action of every state
    scores = {}
    for name in ("ucb1", "uniform"):
        batch = RegretBatch(make_batch("anymdp8", 8, seed=2))
        run_baseline(name, batch, 400, seed=1)
        scores[name] = regret_numbers(batch.regret(), batch.gaps())["regret_score"]
        late = regret_numbers(batch.regret()[:, 300:], batch.gaps()[:, 300:])["regret_score"]
        if name == "ucb1":
            assert late > 0.7 and late > scores[name]  # it learns within the run
    assert scores["ucb1"] > 0.5 and abs(scores["uniform"]) < 0.15


@pytest.mark.parametrize("name", ["ucb1", "thompson", "uniform"])
def test_bandit_baseline_configs(name):
    from omnirl.evaluate.baselines import make_config
    cfg = make_config(name, {"log_every": 8})
    assert cfg.log_every == 8 and make_config(name, None) == BASELINES[name].config_cls()
    with pytest.raises(ValueError, match="log_everyy"):
        make_config(name, {"log_everyy": 8})
    log = []
    run_baseline(name, bandit_batch(2, seed=0), 20, seed=0, config=cfg, log=log)
    assert [e["step"] for e in log] == [8, 16, 20] and 0 < log[-1]["tried"] <= 1


def test_regret_by_hand():
    batch = RegretBatch(bandit_batch(3, seed=0))
    mu = batch.means[:, 0]  # (B, A): a bandit's one state
    batch.reset(0)
    best = mu.argmax(1)
    worst = mu.argmin(1)
    batch.step(best)
    batch.step(worst)
    r = batch.regret()
    assert r.shape == (3, 2)
    assert r[:, 0] == pytest.approx(0.0) and r[:, 1] == pytest.approx(mu.max(1) - mu.min(1))
    n = regret_numbers(r, batch.gap, at=(1, 5))
    assert n["regret@1"] == pytest.approx(0.0) and "regret@5" not in n
    assert n["regret"] == pytest.approx((mu.max(1) - mu.min(1)).mean())
    assert n["regret_score"] == pytest.approx(np.mean(1 - (mu.max(1) - mu.min(1)) / (2 * batch.gap)))
    with pytest.raises(ValueError, match="bandits or AnyMDP"):
        RegretBatch(make_batch("lake4x4", 2, seed=0))


def test_regret_on_anymdp_is_the_contextual_bandits():
    """On an MDP each step is scored against the best immediate mean reward of the state it was
    taken in: the myopic oracle has no regret, uniform play scores about 0."""
    batch = RegretBatch(make_batch("anymdp8", 4, seed=0))
    t = batch.batch.tasks[0]
    r = expected_reward(t.transition.astype(np.float64), t.reward.astype(np.float64))  # (n, A) by rank
    assert batch.means[0, t.state_ids] == pytest.approx(r)
    batch.reset(0)
    rows = np.arange(4)
    seen, worst = [], []
    for _ in range(30):
        obs = batch.obs.copy()
        seen.append(obs)
        batch.step(batch.means[rows, obs].argmax(-1))  # greedy for the immediate reward
    for _ in range(30):
        obs = batch.obs.copy()
        worst.append(batch.means[rows, obs].max(-1) - batch.means[rows, obs].min(-1))
        batch.step(batch.means[rows, obs].argmin(-1))
    reg, gaps = batch.regret(), batch.gaps()
    assert reg.shape == gaps.shape == (4, 60)
    assert reg[:, :30] == pytest.approx(0.0) and reg[:, 30:] == pytest.approx(np.stack(worst, axis=1))
    m = batch.means[rows[:, None], np.stack(seen, axis=1)]  # (B, 30, A)
    assert gaps[:, :30] == pytest.approx(m.max(-1) - m.mean(-1))
    n = regret_numbers(reg, gaps)
    assert n["regret_score"] == pytest.approx(np.mean(1 - reg.sum(1) / gaps.sum(1)))
    # the uniform random policy's score is 0 in expectation, whatever the states it visits
    batch.reset(1)
    rng = np.random.default_rng(0)
    for _ in range(400):
        batch.step(rng.integers(0, 5, 4))
    assert abs(regret_numbers(batch.regret(), batch.gaps())["regret_score"]) < 0.1


def test_state_blind_score_is_the_best_single_action_played_everywhere():
    """The state-blind yardstick, by hand on three AnyMDP-8 tasks: the best of the single actions'
    scores (whose mean is uniform play's 0); 1 on a bandit."""
    from omnirl.tasks.solver import random_stationary_distribution
    tasks = list(make_batch("anymdp8", 3, seed=2).tasks)
    scores = state_blind_scores(tasks + [sample_bandit(5, seed=1)])
    assert scores[3] == pytest.approx(1.0)  # on a bandit the best arm is the best action everywhere
    for t, sc in zip(tasks, scores[:3]):
        m = expected_reward(t.transition.astype(np.float64), t.reward.astype(np.float64))
        w = random_stationary_distribution(t)
        by_action = [1 - w @ (m.max(1) - m[:, a]) / (w @ (m.max(1) - m.mean(1))) for a in range(t.n_actions)]
        assert sc == pytest.approx(max(by_action)) and -np.inf < sc < 1.0
        assert np.mean(by_action) == pytest.approx(0.0, abs=1e-9)  # every action once: uniform play


def test_evaluate_reports_regret_on_bandits(tmp_path, capsys):
    code = eval_main(["--envs", "bandit5", "--run.n_envs=4", "--run.steps=120", f"--run.out_dir={tmp_path}",
                      "--run.wandb_mode=disabled", "--run.baselines=[ucb1,thompson,uniform,tql_ucb]"])
    assert code == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    methods = [r["method"] for r in summary["regret"]]
    assert methods == ["ucb1", "thompson", "uniform", "tql_ucb"]
    by = {r["method"]: r for r in summary["regret"]}
    assert by["thompson"]["regret@100"] < by["uniform"]["regret@100"]
    assert by["uniform"]["regret@500"] is None or np.isnan(by["uniform"]["regret@500"])  # beyond the run
    arrays = np.load(tmp_path / "regret.npz")
    assert arrays["bandit5/ucb1"].shape == (4, 120)
    assert "cumulative regret" in capsys.readouterr().out
    # the bandit baselines are skipped on other environments
    code = eval_main(["--envs", "anymdp16", "--run.n_envs=2", "--run.steps=20", f"--run.out_dir={tmp_path / 'm'}",
                      "--run.wandb_mode=disabled", "--run.baselines=[ucb1,tql_ucb]"])
    assert code == 0
    summary = json.loads((tmp_path / "m" / "summary.json").read_text())
    assert [r["method"] for r in summary["rows"]] == ["tql_ucb"] and summary["regret"] == []
    # ... unless AnyMDP is measured as a contextual bandit: then they run there, a bandit per state
    code = eval_main(["--envs", "anymdp8", "--run.n_envs=4", "--run.steps=300", f"--run.out_dir={tmp_path / 'c'}",
                      "--run.wandb_mode=disabled", "--run.baselines=[ucb1,uniform]", "--run.contextual_bandit=true"])
    assert code == 0
    summary = json.loads((tmp_path / "c" / "summary.json").read_text())
    by = {r["method"]: r for r in summary["regret"]}
    assert [r["method"] for r in summary["rows"]] == ["ucb1", "uniform"] and set(by) == {"ucb1", "uniform"}
    assert by["ucb1"]["regret_score"] > by["uniform"]["regret_score"] + 0.3
    arrays = np.load(tmp_path / "c" / "regret.npz")
    assert arrays["anymdp8/ucb1"].shape == arrays["anymdp8/ucb1/gap"].shape == (4, 300)
