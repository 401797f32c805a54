"""The training configuration: one typed dataclass tree, loaded by ``omnirl.config.load_config``.

    python -m omnirl.train --config experiments/configs/tiny.yaml --model.backbone=gdn --train.segment_len=256

Sections: ``model`` (what to build), ``data`` (where sequences come from), ``train`` (the
segment-wise optimisation), ``reference`` (the Bayes-optimal reference beside the validation
curves), ``logging`` (W&B and checkpoints). Every field has a default; a YAML
file sets only what differs.
"""

from __future__ import annotations

import dataclasses

from omnirl._validate import check_choice, check_float, check_int
from omnirl.agents.reference import ReferenceConfig
from omnirl.model.backbone import ALL_BACKBONES, SIZES, sized
from omnirl.model.omnirl import OmniRLConfig


RENAMED = {"model": {"preset": "size", "n_states": "n_obs"}}
"""Settings renamed since runs were first recorded, by section: ``{old: new}``. A recorded
configuration (a checkpoint's, an experiment step's) is read with the new names (``migrate``)."""


def migrate(config: dict) -> dict:
    """``config`` (a recorded ``TrainConfig`` as plain data) with ``RENAMED`` settings under their
    new names, changed in place and returned."""
    for section, renames in RENAMED.items():
        fields = config.get(section) if isinstance(config, dict) else None
        for old, new in renames.items() if isinstance(fields, dict) else ():
            if old in fields and new not in fields:
                fields[new] = fields.pop(old)
    return config


POLICY_TARGETS = ("oracle", "reference")
"""What the policy head can be trained against (``DataSection.policy_target``)."""

PRECISIONS = ("32-true", "64-true", "16-true", "16-mixed", "bf16-true", "bf16-mixed", "transformer-engine",
              "transformer-engine-float16")
"""The precisions Lightning accepts by name (``train.precision``)."""


@dataclasses.dataclass(frozen=True)
class ModelSection:
    """The OmniRL model to train."""

    backbone: str = "gdn"
    """Backbone kind: ``rwkv7``, ``gdn``, ``gsa``, ``mamba2`` or the control ``transformer``."""
    size: str = "tiny"
    """Backbone size: ``tiny`` or ``small`` (laptop CPU) or ``paper`` (Table 6); ``SIZES`` in ``omnirl.model.backbone``."""
    heads: int | None = None
    """Heads of every mixer (``None``: the size's); with ``head_dim``, changes how many separate
    memories a layer keeps, not the model's width."""
    head_dim: int | None = None
    """Dimension of every head (``None``: the size's)."""
    layout: str = "compact"
    """Tokens per step: ``compact`` (2), ``paired`` (2, the reward in its action's token; needs
    ``world_model: false``) or ``paper`` (5)."""
    n_obs: int = 16
    """Observation ids ``S`` the model reads: at least the data's ``n_obs``."""
    n_actions: int = 5
    """Actions ``A`` of the data."""
    world_model: bool = True
    """Train the next-state and reward heads too."""
    policy_weight: float = 1.0
    """Weight of the policy loss."""
    state_weight: float = 0.1
    """Weight of the next-state loss."""
    reward_weight: float = 0.1
    """Weight of the reward loss."""
    reward_transform: str = "causal"
    """What the model sees of a reward: ``none``, ``symlog``, ``causal`` or ``range``
    (``omnirl.model.rewards``;
    the default was chosen by measurement: README, "Reward handling")."""
    reward_loss: str = "mse"
    """Loss of the reward head: ``mse`` or ``huber``."""
    value_weight: float = 0.0
    """Weight of the action-value loss (0: no action-value head; ``OmniRLConfig.value_weight``)."""
    action_rewards: bool = False
    """Each reward also enters along its action's direction (``OmniRLConfig.action_rewards``)."""

    def __post_init__(self) -> None:
        check_choice("backbone", self.backbone, ALL_BACKBONES)
        check_choice("size", self.size, SIZES)
        self.build()  # the model's own checks (layout, reward handling, weights, sizes), at parse time

    @property
    def backbone_overrides(self) -> dict[str, int]:
        """The fields that override the size's backbone settings."""
        return {k: v for k, v in (("heads", self.heads), ("head_dim", self.head_dim)) if v is not None}

    def build(self) -> OmniRLConfig:
        """The model configuration this section describes."""
        return OmniRLConfig(n_obs=self.n_obs, n_actions=self.n_actions,
                            backbone=sized(self.size, self.backbone, **self.backbone_overrides), layout=self.layout,
                            world_model=self.world_model, policy_weight=self.policy_weight,
                            state_weight=self.state_weight, reward_weight=self.reward_weight,
                            reward_transform=self.reward_transform, reward_loss=self.reward_loss,
                            value_weight=self.value_weight, action_rewards=self.action_rewards)


@dataclasses.dataclass(frozen=True)
class DataSection:
    """Training and validation sequences (datasets written by ``python -m omnirl.data generate``)."""

    train: tuple[str, ...] = ()
    """Dataset directories to train on (sequences of all of them are mixed)."""
    validation: dict = dataclasses.field(default_factory=dict)
    """Validation sets by name, e.g. ``{seen: DIR, unseen: DIR}``: each is reported under its name."""
    window: int = 1024
    """Steps ``T`` of one training sequence: a random window of a stored sequence."""
    batch_size: int = 8
    """Sequences per batch (per process under DDP)."""
    num_workers: int = 0
    """Data-loader worker processes."""
    seed: int = 0
    """Seed of the window sampling and shuffling (per epoch: ``(seed, epoch)``)."""
    policy_target: str = "oracle"
    """What the policy head is trained against: ``oracle``, the stored label (the label oracle's
    action, a hard target); or ``reference``, the Bayes-optimal reference's probability that each
    action is the label given the window's context (``omnirl.agents.reference.policy_probs`` with
    ``reference.learner``: the exact posterior on bandits, posterior sampling on MDPs; computed per
    training batch: ``omnirl.train.data.SoftTargets``), a soft target whose cross-entropy is
    minimised by the posterior itself. Validation always scores the stored labels."""
    verify_checksums: bool = True
    """Recompute every shard's checksum before the first step (shard sizes are checked whatever
    this says); turn off for datasets too large to hash at every start, after ``python -m
    omnirl.data verify``."""

    def __post_init__(self) -> None:
        for i, path in enumerate(self.train):
            if not isinstance(path, str) or not path:
                raise ValueError(f"train[{i}] must be a dataset directory, got {path!r}")
        if isinstance(self.validation, dict):
            for name, path in self.validation.items():
                if not isinstance(path, str) or not path:
                    raise ValueError(f"validation[{name!r}] must be a dataset directory, got {path!r} "
                                     "(write NAME: DIR, with a space after the colon)")
        if not isinstance(self.verify_checksums, bool):
            raise ValueError(f"verify_checksums must be true or false, got {self.verify_checksums!r}")
        check_choice("policy_target", self.policy_target, POLICY_TARGETS)
        check_int("window", self.window, min_value=2)
        check_int("batch_size", self.batch_size, min_value=1)
        check_int("num_workers", self.num_workers, min_value=0)
        check_int("seed", self.seed, min_value=0)


@dataclasses.dataclass(frozen=True)
class TrainSection:
    """Segment-wise truncated back-propagation and the optimiser."""

    segment_len: int = 256
    """Steps ``L`` per segment: gradients never cross a segment boundary, the state does."""
    max_steps: int = 2000
    """Optimiser steps (batches) to train for."""
    lr: float = 1e-3
    """Peak learning rate (AdamW)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    warmup_steps: int = 200
    """Optimiser steps of linear learning-rate warm-up; then inverse-square-root decay."""
    grad_clip: float = 1.0
    """Global gradient-norm clip (0: none)."""
    max_skipped: int = 50
    """Consecutive batches with a non-finite loss or gradient (skipped, weights untouched) after which
    the run stops with an error: the weights have diverged (e.g. too high a ``lr``) and every later
    batch would be skipped too. ``last.ckpt`` keeps the last checkpoint written before. 0: no limit."""
    context_warmup: int = 0
    """Position-dependent loss weight: rises linearly from ~0 to 1 over the first this-many steps of
    a sequence (0: uniform weights)."""
    position_bins: int = 16
    """Bins of the per-position validation losses (loss against position in the context)."""
    val_every: int = 200
    """Optimiser steps between validations."""
    precision: str = "32-true"
    """Lightning precision, one of ``PRECISIONS`` (``bf16-mixed`` on CUDA)."""
    compile: bool = False
    """Compile the model's forward pass with ``torch.compile`` (``nn.Module.compile``: weights and
    checkpoints are unchanged). Off by default: see the README's "Training speed" for what it gains
    and where it fails (``benchmarks/bench_training.py``, section ``compile``)."""
    devices: int | str = "auto"
    """Devices per node (``auto``, or a count: more than one runs DDP, one process each)."""
    num_nodes: int = 1
    """Machines (DDP across nodes, launched by torchrun or SLURM)."""
    seed: int = 0
    """Seed of the model initialisation."""
    resume: str | None = None
    """Checkpoint to resume from: a ``.ckpt`` path, or ``last`` (``<logging.out_dir>/checkpoints/
    last.ckpt``, starting afresh when there is none); ``None``: start afresh."""
    init_from: str | None = None
    """Checkpoint (a ``.ckpt`` file or a training run directory) whose model weights start this run
    instead of a random initialisation: a warm start, e.g. from a model trained on an easier
    curriculum stage. The optimiser, learning-rate schedule and step count start afresh; the
    network must be the same (backbone, size, layout, actions, heads: a mismatch is an error naming
    both), but for its observation ids, which may be fewer than this run's (a stage of fewer
    states: the new ids start from this run's initialisation, ``omnirl.train.trainer.warm_start``).
    A resumed run takes its weights from ``resume`` instead."""

    def __post_init__(self) -> None:
        for f in ("segment_len", "max_steps", "position_bins", "val_every", "num_nodes"):
            check_int(f, getattr(self, f), min_value=1)
        for f in ("warmup_steps", "context_warmup", "seed", "max_skipped"):
            check_int(f, getattr(self, f), min_value=0)
        check_float("lr", self.lr, min_value=0.0, min_inclusive=False)
        check_float("weight_decay", self.weight_decay, min_value=0.0)
        check_float("grad_clip", self.grad_clip, min_value=0.0)
        check_choice("precision", self.precision, PRECISIONS)
        if self.devices != "auto" and (not isinstance(self.devices, int) or isinstance(self.devices, bool)
                                       or self.devices < 1):
            raise ValueError(f"devices must be 'auto' or a count >= 1, got {self.devices!r}")
        if not isinstance(self.compile, bool):
            raise ValueError(f"compile must be true or false, got {self.compile!r}")
        if self.init_from is not None and (not isinstance(self.init_from, str) or not self.init_from):
            raise ValueError(f"init_from must be a checkpoint path, got {self.init_from!r}")


@dataclasses.dataclass(frozen=True)
class ReferenceSection:
    """The Bayes-optimal reference learner (``omnirl.agents.reference``) logged beside every
    validation curve: computed once per validation set, on exactly the windows validation
    evaluates, and cached (it does not change during training)."""

    enabled: bool = True
    """Compute the reference and log ``val/NAME/reference_*`` and ``val/NAME/gain``."""
    learner: ReferenceConfig = dataclasses.field(default_factory=ReferenceConfig)
    """The reference's settings (posterior samples, priors, refresh interval, ...)."""

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise ValueError(f"enabled must be true or false, got {self.enabled!r}")
        if not isinstance(self.learner, ReferenceConfig):
            raise ValueError(f"learner must be a ReferenceConfig, got {type(self.learner).__name__}")


@dataclasses.dataclass(frozen=True)
class LoggingSection:
    """Where the run writes."""

    out_dir: str = "runs/train"
    """Run directory (checkpoints, offline W&B runs, summary)."""
    wandb_project: str = "omnirl"
    """W&B project."""
    wandb_mode: str = "auto"
    """``auto`` (online with credentials, else offline), ``online``, ``offline`` or ``disabled``."""
    quiet: bool = False
    """Hold back Lightning's console output (model summary, device and seed lines, progress bar,
    library warnings); the run directory and W&B get the same records. Experiments that train
    several models set it."""

    def __post_init__(self) -> None:
        check_choice("wandb_mode", self.wandb_mode, ("auto", "online", "offline", "disabled"))
        if not isinstance(self.quiet, bool):
            raise ValueError(f"quiet must be true or false, got {self.quiet!r}")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs."""

    model: ModelSection = dataclasses.field(default_factory=ModelSection)
    """The model."""
    data: DataSection = dataclasses.field(default_factory=DataSection)
    """The data."""
    train: TrainSection = dataclasses.field(default_factory=TrainSection)
    """The optimisation."""
    reference: ReferenceSection = dataclasses.field(default_factory=ReferenceSection)
    """The reference learner of the validation sets."""
    logging: LoggingSection = dataclasses.field(default_factory=LoggingSection)
    """Outputs."""

    def __post_init__(self) -> None:
        if self.data.window < self.train.segment_len:
            raise ValueError(f"data.window={self.data.window} must be >= train.segment_len="
                             f"{self.train.segment_len}")
