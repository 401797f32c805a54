"""Training data: random windows of stored sequences, batched for Lightning.

``WindowDataset`` maps item ``i`` to a window of ``T + 1`` steps of one stored sequence (the
extra step gives the last position its next-state target). With ``random_start`` the window's
offset is drawn from ``numpy.random.default_rng((seed, epoch, i))``: reproducible whatever the
process, worker or batch that reads it, and different every epoch. Without it (validation) every
window starts at step 0, so the loss can be reported against position in the context.

``OmniRLDataModule`` builds the training set (all ``DataSection.train`` directories, mixed) and
one validation set per ``DataSection.validation`` name. Its samplers are ``DistributedSampler``
subclasses (shuffled by ``(seed, epoch)`` for training, in order for validation) that split the
items across DDP ranks and yield ``(epoch, i)`` pairs, so a window never depends on an epoch
counter held by a (possibly persistent) data-loader worker.

Resuming: the training loader is a ``ResumableDataLoader``, whose ``state_dict`` (stored by Lightning
in every checkpoint, under ``loops.fit_loop.state_dict.combined_loader``) is the data cursor: the
sampler's epoch and the batches of it the trainer has trained on. ``load_state_dict`` makes the next
pass over that epoch start right after them, so a run resumed mid-epoch sees exactly the batches an
uninterrupted run would have.

Soft policy targets (``DataSection.policy_target = "reference"``): the training loader's collate
function (``SoftTargets``) adds ``policy_target``, ``(B, T, A)`` float32, to every batch: the
Bayes-optimal reference's probability that each action is the label (``policy_probs`` with the
``ReferenceSection``'s learner settings: the exact bandit posterior on bandit data, posterior
sampling with ``samples`` models on MDP data) at each of the window's first ``T`` steps, given the
steps of the window before it, i.e. exactly the context the model sees (its memory starts empty
at the window's first step, wherever the window starts in its stored sequence). They are computed
per batch rather than stored with the data: a target depends on where the window starts, so a
precomputed one (given the stored sequence from its step 0) would be right only for windows from
step 0; computing them per batch needs no new shard field, works on every existing dataset, and
vectorises over the batch (a batch costs much less than its windows one by one; the cost is
measured in the README, "Soft policy targets"). With ``data.num_workers > 0`` they are computed in
the loader's workers, beside training.

Reference: with a ``ReferenceSection`` (enabled), each validation set computes the Bayes-optimal
reference (``omnirl.agents.reference``) once, on its windows (from step 0), before its loader is
built, and every item then also holds the reference's per-step losses, ``(T,)`` float32 aligned with
the model's ``T`` positions (0 at end markers): ``REFERENCE_FIELDS``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import lightning
import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler, default_collate

from omnirl._validate import check_choice, check_int
from omnirl.agents.reference import ReferenceConfig, policy_probs, reference_policy, world_model_reference
from omnirl.data.store import Dataset
from omnirl.model.omnirl import REWARD_LOSSES
from omnirl.model.rewards import REWARD_TRANSFORMS, init_memory, transform_rewards
from omnirl.train.config import DataSection, ModelSection, ReferenceSection

INT_FIELDS = ("obs", "prompt", "tag", "action", "label")
"""Step fields returned as int64 tensors (``reward`` is float32)."""
REFERENCE_FIELDS = ("ref_policy", "ref_next_state_state", "ref_next_state_pair", "ref_reward_state",
                    "ref_reward_pair")
"""Per-step reference losses of a validation item: policy cross-entropy, next-state cross-entropy
of the state- and pair-keyed counts, reward loss of the state- and pair-keyed running means."""


def reference_losses(steps: dict[str, np.ndarray], n_obs: int, n_actions: int, config: ReferenceConfig,
                     reward_transform: str = "none", reward_loss: str = "mse") -> dict[str, np.ndarray]:
    """``REFERENCE_FIELDS`` of windows of ``T + 1`` steps: ``(n, T)`` float32 each.

    steps: ``(n, T + 1)`` step columns (``obs``, ``action``, ``reward``, ``prompt``, ``label``) of
    windows starting at step 0. The reward references predict the reward as the model's reward head
    does: transformed by ``reward_transform`` (from a fresh reward memory) and scored with
    ``reward_loss`` (``mse`` or ``huber``, delta 1).
    """
    check_choice("reward_transform", reward_transform, REWARD_TRANSFORMS)
    check_choice("reward_loss", reward_loss, REWARD_LOSSES)
    obs, action = steps["obs"].astype(np.int64), steps["action"].astype(np.int64)
    reward = steps["reward"].astype(np.float64)
    policy = reference_policy(obs, action, reward, steps["prompt"], steps["label"], n_obs, n_actions, config)
    raw = torch.from_numpy(reward)
    target, _ = transform_rewards(reward_transform, raw, torch.from_numpy(action < n_actions),
                                  init_memory(raw.shape[0]))  # (n, T + 1)
    world = world_model_reference(obs, action, target.numpy(), n_obs, n_actions, config.count_prior)
    live = torch.from_numpy(action < n_actions)

    def loss(prediction: np.ndarray) -> np.ndarray:
        pred = torch.from_numpy(prediction).float()
        if reward_loss == "huber":
            out = torch.nn.functional.huber_loss(pred, target, reduction="none", delta=1.0)
        else:
            out = (pred - target).square()
        return (out * live).numpy()

    T = obs.shape[1] - 1
    out = {"ref_policy": policy.loss, "ref_next_state_state": world.next_state_state,
           "ref_next_state_pair": world.next_state_pair, "ref_reward_state": loss(world.reward_state),
           "ref_reward_pair": loss(world.reward_pair)}
    return {k: np.ascontiguousarray(v[:, :T], dtype=np.float32) for k, v in out.items()}


class WindowDataset(torch.utils.data.Dataset):
    """Windows of ``window + 1`` steps of the sequences of one or more datasets.

    Item ``i`` is sequence ``i`` of the concatenation of ``paths`` (in order). ``dataset[i]``
    uses the epoch set by ``set_epoch``; ``dataset[(epoch, i)]`` names the epoch explicitly (what
    ``EpochSampler`` yields). Returns ``{obs, prompt, tag, action, label}`` int64 ``(T + 1,)``,
    ``reward`` float32 ``(T + 1,)`` and ``start`` int64 ``()``, the window's offset in its sequence.
    """

    def __init__(self, paths: str | os.PathLike | Sequence[str | os.PathLike], window: int, *,
                 seed: int = 0, random_start: bool = True, check_checksums: bool = True):
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise ValueError("paths must name at least one dataset directory, got none")
        self.window = check_int("window", window, min_value=1)
        self.seed = check_int("seed", seed, min_value=0)
        self.random_start = bool(random_start)
        self.check_checksums = bool(check_checksums)
        self.epoch = 0
        self._datasets: list[Dataset] | None = [Dataset.open(p, check_checksums) for p in self.paths]
        for ds in self._datasets:
            ds.check_files()  # every shard now: damage is named before training's first step
        first = self._datasets[0].header
        for p, ds in zip(self.paths, self._datasets):
            h = ds.header
            if h.length < self.window + 1:
                raise ValueError(f"window={self.window} needs {self.window + 1} steps (one extra for the "
                                 f"next-state target) but dataset {p} stores sequences of {h.length} steps")
            if (h.n_obs, h.n_actions) != (first.n_obs, first.n_actions):
                raise ValueError(f"dataset {p} has n_obs={h.n_obs}, n_actions={h.n_actions}; dataset "
                                 f"{self.paths[0]} has n_obs={first.n_obs}, n_actions={first.n_actions}")
        self.n_obs, self.n_actions = first.n_obs, first.n_actions
        self.lengths = [ds.header.length for ds in self._datasets]
        self._ends = np.cumsum([len(ds) for ds in self._datasets])
        self.reference: dict[str, np.ndarray] | None = None
        """``REFERENCE_FIELDS`` of every item, ``(len, window)`` each, once ``compute_reference``
        has run (windows from step 0 only)."""

    def __len__(self) -> int:
        return int(self._ends[-1])

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_datasets"] = None  # memory maps are reopened in the receiving process, not copied
        return state

    def set_epoch(self, epoch: int) -> None:
        """Epoch used by ``dataset[i]`` (an int index)."""
        self.epoch = check_int("epoch", epoch, min_value=0)

    def locate(self, i: int) -> tuple[int, int]:
        """``(dataset, sequence)`` of item ``i``."""
        i = check_int("index", i, min_value=0, max_value=len(self) - 1)
        k = int(np.searchsorted(self._ends, i, side="right"))
        return k, i - (int(self._ends[k - 1]) if k else 0)

    def start_of(self, i: int, epoch: int | None = None) -> int:
        """Offset in its sequence of item ``i``'s window in ``epoch`` (default: the current one)."""
        k, _ = self.locate(i)
        if not self.random_start:
            return 0
        epoch = self.epoch if epoch is None else check_int("epoch", epoch, min_value=0)
        rng = np.random.default_rng((self.seed, epoch, int(i)))
        return int(rng.integers(0, self.lengths[k] - (self.window + 1), endpoint=True))

    def compute_reference(self, config: ReferenceConfig, reward_transform: str = "none",
                          reward_loss: str = "mse") -> dict[str, np.ndarray]:
        """Compute (once) and attach the reference losses of every item (``reference_losses``);
        items then also hold ``REFERENCE_FIELDS``. Only for windows from step 0."""
        if self.random_start:
            raise ValueError("compute_reference needs windows from step 0 (random_start=False)")
        if self.reference is None:
            items = [self[i] for i in range(len(self))]
            steps = {f: torch.stack([x[f] for x in items]).numpy() for f in (*INT_FIELDS, "reward")}
            self.reference = reference_losses(steps, self.n_obs, self.n_actions, config, reward_transform,
                                              reward_loss)
        return self.reference

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        epoch, i = key if isinstance(key, tuple) else (self.epoch, key)
        k, j = self.locate(i)
        start = self.start_of(i, epoch)
        if self._datasets is None:
            self._datasets = [Dataset.open(p, self.check_checksums) for p in self.paths]
        w = self._datasets[k].window(j, start, self.window + 1)
        out = {f: torch.from_numpy(np.asarray(w[f], dtype=np.int64)) for f in INT_FIELDS}
        out["reward"] = torch.from_numpy(np.array(w["reward"], dtype=np.float32))
        out["start"] = torch.tensor(start, dtype=torch.int64)
        if self.reference is not None:
            out.update({f: torch.from_numpy(v[i]) for f, v in self.reference.items()})
        return out


class SoftTargets:
    """A collate function: the default collation of ``WindowDataset`` items, plus ``policy_target``
    ``(B, T, A)`` float32, the reference's probabilities that each action is the label at the
    window's first ``T`` steps (see the module docstring)."""

    def __init__(self, n_obs: int, n_actions: int, config: ReferenceConfig = ReferenceConfig()) -> None:
        if not isinstance(config, ReferenceConfig):
            raise ValueError(f"config must be a ReferenceConfig, got {type(config).__name__}")
        self.n_obs = check_int("n_obs", n_obs, min_value=1)
        self.n_actions = check_int("n_actions", n_actions, min_value=2)
        self.config = config

    def targets(self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, prompt: np.ndarray) -> np.ndarray:
        """``(B, T, A)`` float32 targets of windows whose steps are ``obs``, ``action``, ``reward``,
        ``prompt`` ``(B, T + 1)``."""
        obs, action, reward, prompt = (np.asarray(x)[:, :-1] for x in (obs, action, reward, prompt))
        return policy_probs(obs, action, reward, prompt, self.n_obs, self.n_actions, self.config).astype(np.float32)

    def __call__(self, items: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        batch = default_collate(list(items))
        batch["policy_target"] = torch.from_numpy(self.targets(*(batch[k].numpy() for k in
                                                                  ("obs", "action", "reward", "prompt"))))
        return batch


class EpochSampler(DistributedSampler):
    """A ``DistributedSampler`` that yields ``(epoch, i)``, so the window of item ``i`` follows the
    sampler's epoch (set by Lightning, or by ``set_epoch``) in every worker process.

    ``resume_at(epoch, n)`` makes the next pass start at this rank's ``n``-th item of ``epoch``
    (if that pass is over ``epoch``; it is forgotten either way)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._resume: tuple[int, int] | None = None

    def resume_at(self, epoch: int, n: int) -> None:
        """Skip the first ``n`` items of this rank in the next pass if it is over ``epoch``."""
        self._resume = (check_int("epoch", epoch, min_value=0), check_int("n", n, min_value=0))

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        indices = list(super().__iter__())
        if self._resume is not None:
            resume_epoch, skip = self._resume
            self._resume = None
            if resume_epoch == epoch:
                indices = indices[skip:]
        return ((epoch, int(i)) for i in indices)


class ResumableDataLoader(DataLoader):
    """A ``DataLoader`` over an ``EpochSampler`` whose position Lightning saves and restores.

    ``batches_done``: a callable returning how many batches of the current epoch have been trained on
    (the data module reads it from the trainer: the loader itself runs ahead of training, prefetching).
    ``state_dict()`` is ``{"epoch", "batches"}``; ``load_state_dict`` sets the sampler's epoch and makes
    its next pass over that epoch skip the ``batches * batch_size`` items already trained on.
    """

    def __init__(self, *args: Any, batches_done: Callable[[], int] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.sampler, EpochSampler):
            raise ValueError(f"ResumableDataLoader needs an EpochSampler, got {type(self.sampler).__name__}")
        self.batches_done = batches_done

    def state_dict(self) -> dict[str, int]:
        """The data cursor: ``{"epoch": sampler epoch, "batches": batches of it trained on}``."""
        done = 0 if self.batches_done is None else int(self.batches_done())
        return {"epoch": int(self.sampler.epoch), "batches": done}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue from a cursor of ``state_dict()``: the next pass over ``state["epoch"]`` starts at
        batch ``state["batches"]``."""
        epoch, batches = int(state["epoch"]), int(state["batches"])
        self.sampler.set_epoch(epoch)
        self.sampler.resume_at(epoch, batches * int(self.batch_size or 1))


class OmniRLDataModule(lightning.LightningDataModule):
    """Training and validation loaders of a ``DataSection``.

    ``n_obs`` / ``n_actions`` are those of the data (all datasets must agree; a ``model`` given must
    fit them: ``model.n_obs >= n_obs``, ``model.n_actions == n_actions``); every shard is checked
    (size; checksum unless ``check_checksums`` or ``data.verify_checksums`` is off) before training
    starts; ``val_names`` lists
    the validation sets in the order of ``val_dataloader()``. With ``reference`` enabled, the
    validation sets carry the reference's losses (computed at the first ``val_dataloader()``), its
    reward references following ``model``'s reward transform and loss.
    """

    def __init__(self, data: DataSection, check_checksums: bool = True,
                 reference: ReferenceSection | None = None, model: ModelSection | None = None):
        super().__init__()
        if not isinstance(data, DataSection):
            raise ValueError(f"data must be a DataSection, got {type(data).__name__}")
        if not data.train:
            raise ValueError("data.train must name at least one dataset directory, got none")
        if not isinstance(data.validation, dict):
            raise ValueError(f"data.validation must be a dict of name -> directory, got "
                             f"{type(data.validation).__name__}")
        if reference is not None and not isinstance(reference, ReferenceSection):
            raise ValueError(f"reference must be a ReferenceSection, got {type(reference).__name__}")
        if model is not None and not isinstance(model, ModelSection):
            raise ValueError(f"model must be a ModelSection, got {type(model).__name__}")
        self.data = data
        self.reference = reference
        self.model = model if model is not None else ModelSection()
        check_checksums = check_checksums and data.verify_checksums
        self.train_set = WindowDataset(list(data.train), data.window, seed=data.seed,
                                       check_checksums=check_checksums)
        self.n_obs, self.n_actions = self.train_set.n_obs, self.train_set.n_actions
        if model is not None and (model.n_obs < self.n_obs or model.n_actions != self.n_actions):
            raise ValueError(f"model.n_obs={model.n_obs}, model.n_actions={model.n_actions} do not fit the "
                             f"data (data.train[0]={str(data.train[0])!r}: n_obs={self.n_obs}, n_actions="
                             f"{self.n_actions}); model.n_obs must be >= {self.n_obs} and model.n_actions "
                             f"= {self.n_actions}")
        self.val_names: list[str] = [str(n) for n in data.validation]
        self.val_sets: list[WindowDataset] = []
        for name, path in data.validation.items():
            ds = WindowDataset([path], data.window, seed=data.seed, random_start=False,
                               check_checksums=check_checksums)
            if (ds.n_obs, ds.n_actions) != (self.n_obs, self.n_actions):
                raise ValueError(f"data.validation[{name!r}]: dataset {path} has n_obs={ds.n_obs}, "
                                 f"n_actions={ds.n_actions}; the training data has n_obs={self.n_obs}, "
                                 f"n_actions={self.n_actions}")
            self.val_sets.append(ds)
        self.soft_targets: SoftTargets | None = None
        """The training loader's collate function when ``data.policy_target`` is ``reference``."""
        if data.policy_target == "reference":
            learner = reference.learner if reference is not None else ReferenceConfig()
            self.soft_targets = SoftTargets(self.n_obs, self.n_actions, learner)

    def _replicas(self) -> tuple[int, int]:
        trainer = self.trainer
        if trainer is None:
            return 1, 0
        return int(trainer.world_size), int(trainer.global_rank)

    def _loader(self, dataset: WindowDataset, shuffle: bool, cls: type[DataLoader] = DataLoader,
                **kwargs: Any) -> DataLoader:
        n, rank = self._replicas()
        sampler = EpochSampler(dataset, num_replicas=n, rank=rank, shuffle=shuffle, seed=self.data.seed)
        workers = self.data.num_workers
        return cls(dataset, batch_size=self.data.batch_size, sampler=sampler,
                   num_workers=workers, persistent_workers=workers > 0, **kwargs)

    def _batches_done(self) -> int:
        """Batches of the current epoch the trainer has trained on (0 without a trainer)."""
        trainer = self.trainer
        if trainer is None:
            return 0
        return int(trainer.fit_loop.epoch_loop.batch_progress.current.processed)

    def train_dataloader(self) -> ResumableDataLoader:
        """Shuffled by ``(seed, epoch)``, this rank's share of the training windows; its position is
        checkpointed (see the module docstring)."""
        extra = {} if self.soft_targets is None else {"collate_fn": self.soft_targets}
        return self._loader(self.train_set, shuffle=True, cls=ResumableDataLoader,
                            batches_done=self._batches_done, **extra)

    def val_dataloader(self) -> list[DataLoader]:
        """One loader per validation set (``val_names``), windows from step 0, in order."""
        if self.reference is not None and self.reference.enabled:
            for ds in self.val_sets:
                ds.compute_reference(self.reference.learner, self.model.reward_transform, self.model.reward_loss)
        return [self._loader(ds, shuffle=False) for ds in self.val_sets]


__all__ = ["EpochSampler", "OmniRLDataModule", "REFERENCE_FIELDS", "ResumableDataLoader", "SoftTargets",
           "WindowDataset", "reference_losses"]
