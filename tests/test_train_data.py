"""Training data: windows equal the stored data at a per-(seed, epoch, item) random offset,
epochs reshuffle reproducibly, DDP ranks split each epoch exactly, validation starts at step 0."""

import numpy as np
import pytest
import torch
from torch.utils.data import DistributedSampler

from omnirl.data.generate import DatasetSpec, generate_dataset, prepare_task_set
from omnirl.data.store import Dataset
from omnirl.train.config import DataSection
from omnirl.train.data import EpochSampler, OmniRLDataModule, WindowDataset

S, A, L, T = 16, 5, 60, 20
INT_FIELDS = ("obs", "prompt", "tag", "action", "label")


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("train_data")
    tasks = prepare_task_set(root / "ts", 3, "8:16", A, task_seed=1)
    out = {}
    for name, n, seed, kw in (("a", 6, 1, {"task_set": str(tasks)}), ("b", 4, 2, {"min_states": 8}),
                              ("short", 2, 3, {"length": T})):
        args = {**dict(pipeline="omnirl", n_sequences=n, length=L, n_obs=S, n_actions=A, seed=seed,
                       shard_size=4), **kw}
        generate_dataset(DatasetSpec(**args), root / name)
        out[name] = root / name
    spec = DatasetSpec(pipeline="omnirl", n_sequences=2, length=L, n_obs=S, n_actions=A - 1, seed=4)
    generate_dataset(spec, root / "other_a")
    out["other_a"] = root / "other_a"
    return out


def stored(path, j, start, n):
    w = Dataset.open(path).window(j, start, n)
    return {f: np.asarray(w[f]) for f in (*INT_FIELDS, "reward")}


def test_shapes_and_dtypes(dirs):
    ds = WindowDataset([dirs["a"], dirs["b"]], T, seed=3)
    assert len(ds) == 10 and (ds.n_obs, ds.n_actions) == (S, A)
    item = ds[7]
    for f in INT_FIELDS:
        assert item[f].dtype == torch.int64 and item[f].shape == (T + 1,)
    assert item["reward"].dtype == torch.float32 and item["reward"].shape == (T + 1,)
    assert item["start"].dtype == torch.int64 and item["start"].shape == ()


def test_windows_are_the_stored_data_at_random_offsets(dirs):
    ds = WindowDataset([dirs["a"], dirs["b"]], T, seed=3)
    starts = set()
    for epoch in range(3):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            item = ds[i]
            path, j = (dirs["a"], i) if i < 6 else (dirs["b"], i - 6)
            s = int(item["start"])
            assert 0 <= s <= L - (T + 1)
            starts.add(s)
            ref = stored(path, j, s, T + 1)
            for f, v in ref.items():
                np.testing.assert_array_equal(item[f].numpy(), v.astype(item[f].numpy().dtype))
    assert len(starts) > 10  # not always the prefix


def test_same_seed_and_epoch_same_windows(dirs):
    a = WindowDataset([dirs["a"], dirs["b"]], T, seed=3)
    b = WindowDataset([dirs["a"], dirs["b"]], T, seed=3)
    c = WindowDataset([dirs["a"], dirs["b"]], T, seed=4)
    a.set_epoch(2)
    b.set_epoch(2)
    starts = lambda d: [int(d[i]["start"]) for i in range(len(d))]  # noqa: E731
    assert starts(a) == starts(b) != starts(c)
    assert [int(a[(5, i)]["start"]) for i in range(10)] == [int(b[(5, i)]["start"]) for i in range(10)]
    before = starts(a)
    a.set_epoch(3)
    assert starts(a) != before
    torch.testing.assert_close(a[(2, 4)], b[4])  # an explicit epoch equals a set one


def test_two_ranks_cover_each_epoch_exactly_once(dirs):
    ds = WindowDataset([dirs["a"], dirs["b"]], T, seed=3)
    orders = []
    for epoch in (0, 1):
        per_rank = []
        for r in range(2):
            sampler = DistributedSampler(ds, num_replicas=2, rank=r, shuffle=True, seed=7)
            sampler.set_epoch(epoch)
            per_rank.append(list(sampler))
        assert sorted(per_rank[0] + per_rank[1]) == list(range(len(ds)))
        orders.append(per_rank[0] + per_rank[1])
        again = DistributedSampler(ds, num_replicas=2, rank=0, shuffle=True, seed=7)
        again.set_epoch(epoch)
        assert list(again) == per_rank[0]
    assert orders[0] != orders[1]
    # the module's sampler: the same split, with the epoch attached to each index
    s = EpochSampler(ds, num_replicas=2, rank=1, shuffle=True, seed=7)
    s.set_epoch(1)
    plain = DistributedSampler(ds, num_replicas=2, rank=1, shuffle=True, seed=7)
    plain.set_epoch(1)
    assert list(s) == [(1, i) for i in plain]


def section(dirs, **kw):
    args = dict(train=(str(dirs["a"]), str(dirs["b"])),
                validation={"seen": str(dirs["a"]), "unseen": str(dirs["b"])},
                window=T, batch_size=4, num_workers=0, seed=5)
    args.update(kw)
    return DataSection(**args)


def batches(loader, epoch):
    loader.sampler.set_epoch(epoch)
    return list(loader)


def test_datamodule_train_loader(dirs):
    dm = OmniRLDataModule(section(dirs))
    assert (dm.n_obs, dm.n_actions) == (S, A)
    loader = dm.train_dataloader()
    e0 = batches(loader, 0)
    assert [b["obs"].shape for b in e0] == [(4, T + 1), (4, T + 1), (2, T + 1)]
    assert e0[0]["start"].shape == (4,)
    e0_again = batches(dm.train_dataloader(), 0)
    for x, y in zip(e0, e0_again):
        torch.testing.assert_close(x, y)
    e1 = batches(loader, 1)
    assert not all(torch.equal(x["obs"], y["obs"]) for x, y in zip(e0, e1))
    # worker processes (persistent across epochs) read the very same windows
    workers = OmniRLDataModule(section(dirs, num_workers=2)).train_dataloader()
    for epoch, ref in ((0, e0), (1, e1)):
        for x, y in zip(batches(workers, epoch), ref):
            torch.testing.assert_close(x, y)


def test_datamodule_validation_loaders(dirs):
    dm = OmniRLDataModule(section(dirs, validation={"unseen": str(dirs["b"]), "seen": str(dirs["a"])}))
    assert dm.val_names == ["unseen", "seen"]
    loaders = dm.val_dataloader()
    assert isinstance(loaders, list) and len(loaders) == 2
    for loader, path, n in zip(loaders, (dirs["b"], dirs["a"]), (4, 6)):
        got = [b for epoch in (0, 3) for b in batches(loader, epoch)]
        assert sum(len(b["start"]) for b in got) == 2 * n
        assert all((b["start"] == 0).all() for b in got)
        obs = torch.cat([b["obs"] for b in got[:len(got) // 2]])
        for j in range(n):  # in order, the whole context from step 0
            np.testing.assert_array_equal(obs[j].numpy(), stored(path, j, 0, T + 1)["obs"])
    assert OmniRLDataModule(section(dirs, validation={})).val_dataloader() == []


def test_bad_inputs(dirs):
    with pytest.raises(ValueError, match=rf"window={L}.*{dirs['a']}"):
        WindowDataset([dirs["a"]], L)
    with pytest.raises(ValueError, match=rf"window={T}.*short"):
        OmniRLDataModule(section(dirs, train=(str(dirs["a"]), str(dirs["short"]))))
    with pytest.raises(ValueError, match=r"other_a.*n_actions=4"):
        OmniRLDataModule(section(dirs, train=(str(dirs["a"]), str(dirs["other_a"]))))
    with pytest.raises(ValueError, match=r"data.validation\['x'\].*other_a"):
        OmniRLDataModule(section(dirs, validation={"x": str(dirs["other_a"])}))
    with pytest.raises(ValueError, match="data.train"):
        OmniRLDataModule(section(dirs, train=()))
    with pytest.raises(ValueError, match="window"):
        WindowDataset([dirs["a"]], 0)
    with pytest.raises(ValueError, match="paths"):
        WindowDataset([], T)


@pytest.fixture(scope="module")
def bandit_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("bandit_data")
    tasks = prepare_task_set(root / "ts", 6, "1", A, task_seed=2)
    spec = DatasetSpec(pipeline="uniform_probe", n_sequences=6, length=L, n_obs=1, n_actions=A, seed=3,
                       task_set=str(tasks))
    generate_dataset(spec, root / "d")
    return root / "d"


def test_soft_targets_are_the_reference_posterior_of_the_window(bandit_dir):
    from omnirl.agents.reference import ReferenceConfig, bandit_policy
    from omnirl.train.config import ReferenceSection

    learner = ReferenceConfig(bandit_draws=32, refresh=4)
    dm = OmniRLDataModule(DataSection(train=(str(bandit_dir),), window=T, batch_size=4, seed=1,
                                      policy_target="reference"), reference=ReferenceSection(learner=learner))
    got = batches(dm.train_dataloader(), 0)
    assert [b["policy_target"].shape for b in got] == [(4, T, A), (2, T, A)]
    assert any((b["start"] > 0).any() for b in got)
    for b in got:
        # the posterior given the window's own steps (the model's context), not the stored sequence's
        expect = bandit_policy(b["action"][:, :T].numpy(), b["reward"][:, :T].numpy(), A, learner)
        np.testing.assert_allclose(b["policy_target"].numpy(), expect, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(b["policy_target"].sum(-1).numpy(), 1.0, atol=1e-5)
        late = b["policy_target"][:, T // 2:][b["label"][:, T // 2:T] < A]  # (steps, A) mid-window on
        labels = b["label"][:, T // 2:T][b["label"][:, T // 2:T] < A]
        assert late.gather(1, labels[:, None]).mean() > 1.5 / A  # the rewards point at the best arm
        # the other fields are the stored windows, as without soft targets
        plain = dm.train_set[0]
        assert set(plain) | {"policy_target"} == set(b)
    plain = batches(OmniRLDataModule(DataSection(train=(str(bandit_dir),), window=T, batch_size=4,
                                                 seed=1)).train_dataloader(), 0)
    for x, y in zip(got, plain):
        assert "policy_target" not in y
        torch.testing.assert_close({k: v for k, v in x.items() if k != "policy_target"}, y)


def test_soft_targets_on_mdps_are_the_posterior_sampling_reference_of_the_window(dirs):
    from omnirl.agents.reference import ReferenceConfig, mdp_policy
    from omnirl.train.config import ReferenceSection

    learner = ReferenceConfig(samples=8, refresh=4)
    dm = OmniRLDataModule(section(dirs, policy_target="reference"), reference=ReferenceSection(learner=learner))
    got = batches(dm.train_dataloader(), 0)
    assert any((b["start"] > 0).any() for b in got)
    for b in got:
        B = b["obs"].shape[0]
        assert b["policy_target"].shape == (B, T, A)
        f = {k: b[k][:, :T].numpy() for k in ("obs", "action", "reward", "prompt")}
        expect = mdp_policy(f["obs"], f["action"], f["reward"], f["prompt"], S, A, learner)
        np.testing.assert_allclose(b["policy_target"].numpy(), expect, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(b["policy_target"].sum(-1).numpy(), 1.0, atol=1e-5)
        # uniform at end markers, where there is no decision
        ends = b["action"][:, :T] == A
        np.testing.assert_allclose(b["policy_target"][ends].numpy(), 1.0 / A, atol=1e-7)


def test_soft_targets_refuse_bad_settings(dirs, bandit_dir):
    with pytest.raises(ValueError, match="policy_target"):
        section(dirs, policy_target="soft")
    from omnirl.train.data import SoftTargets
    with pytest.raises(ValueError, match="n_obs"):
        SoftTargets(0, A)
    with pytest.raises(ValueError, match="ReferenceConfig"):
        SoftTargets(S, A, config={"samples": 8})
    # the validation loaders score the labels: no soft targets there
    dm = OmniRLDataModule(DataSection(train=(str(bandit_dir),), validation={"v": str(bandit_dir)}, window=T,
                                      batch_size=4, policy_target="reference"))
    assert all("policy_target" not in b for loader in dm.val_dataloader() for b in loader)
