"""Data pipelines: who acts, whose action is the label, and what the tags say.

Every pipeline of the paper's Table 4 is a configuration of the same machinery (the behaviour
mixture of ``omnirl.agents`` and the synthesis loop of ``omnirl.data.synthesis``):

| pipeline | behaviour | label (prompt) | tags |
|---|---|---|---|
| ``omnirl`` | the full behaviour mix | the reference oracle (gamma 0.994) | who acted, masked to ``unk`` for 15% of sequences and 15% of episodes |
| ``omnirl_noprior`` | the full behaviour mix | the reference oracle | all ``unk`` |
| ``ad`` | one learning agent (model-based or Q-learning, with decaying noise) for the whole sequence | its own action | who acted |
| ``ad_epsilon`` | the oracle with decaying epsilon-greedy noise (noise distillation) | the behaviour's action | who acted |
| ``dpt`` | random or oracle, redrawn at episode ends | the reference oracle | who acted |

The probes are validation sets, not training pipelines of Table 4 (``PROBES``):

| pipeline | behaviour | label (prompt) | tags |
|---|---|---|---|
| ``random_probe`` | one random policy for the whole sequence (near-deterministic per state, drifting) | the reference oracle | who acted |
| ``uniform_probe`` | the uniform random policy (every action tried in every state) | the reference oracle | who acted |
| ``myopic_probe`` | the uniform random policy | the gamma-0 oracle (0): the best immediate reward in each state, a contextual bandit | who acted |

Training pipelines for the contextual bandit (the ladder's ``contextual8`` rung with its ``pipeline``
setting):

| pipeline | behaviour | label (prompt) | tags |
|---|---|---|---|
| ``myopic_mix`` | uniform random (6) or a model-based learner at gamma 0 (a contextual bandit learner: the sample mean reward of each state's actions, a small bonus, decaying epsilon noise; 4 when it acts, 6 for its noise), redrawn at episode ends as in ``omnirl``: uniform contexts beside the uneven ones of a learner that concentrates on what it found good, as the model's own online contexts do | the gamma-0 oracle (0) | who acted, masked to ``unk`` for 15% of sequences and 15% of episodes |
| ``myopic_uneven`` | one random policy per sequence (logits ``N(0, scale)`` per state, ``scale ~ Exp(1)``, no drift): from near uniform to near deterministic, so each state's actions are tried unevenly, as in the model's own online contexts, but how often an action is tried says nothing of its reward | the gamma-0 oracle (0) | who acted (6, as uniform play's) |

The bandit pipeline (``S = 1`` task sets only):

| pipeline | behaviour | label (prompt) | tags |
|---|---|---|---|
| ``bandit`` | the bandit mix (``omnirl.agents.bandit``: oracle, epsilon-greedy, UCB1, Thompson sampling, uniform random; one per sequence) | the best arm (3) | who acted, masked to ``unk`` for 15% of sequences and 15% of pulls |
| ``bandit_thompson`` | uniform random (6) or Gaussian Thompson sampling (4), half the sequences each: uniform contexts beside the uneven ones of a learner that concentrates its pulls | the best arm (3) | who acted |
| ``bandit_posterior`` | posterior sampling under the generator's prior (exact Thompson sampling: the Bayes-optimal reference's P(best) drawn from), every sequence | the best arm (3) | 4 |
| ``bandit_switch`` | uniform random (6) for the first ``k ~ U(0, 256)`` pulls of a sequence, then Gaussian Thompson sampling (4) | the best arm (3) | who acted |

No action in their context is a demonstration of good play, so a model whose loss on them falls
with position in the context infers the good actions from the rewards: in-context RL, not
imitation. On ``myopic_probe`` the rewards of each state's own actions are all it needs. On bandit
tasks (``S = 1``) ``uniform_probe`` is the bandit probe: uniform pulls labelled with the best arm.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from omnirl._validate import check_choice, check_float
from omnirl.agents import BanditMixConfig, BehaviourMixConfig
from omnirl.agents.prior import PriorInfo

LABELS = ("oracle", "behaviour")


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """How one sequence is synthesised (besides its task, length and seed)."""

    name: str
    """Pipeline name (a key of ``PIPELINES``)."""
    behaviour: BehaviourMixConfig | BanditMixConfig = dataclasses.field(default_factory=BehaviourMixConfig)
    """The behaviour-policy mixture: components, weights, noise schedules, redraw probabilities
    (a ``BanditMixConfig``: the bandit mixture, for bandit tasks only)."""
    label: str = "oracle"
    """``oracle``: the label is the label oracle's action (step-wise supervision; the reference
    oracle, prompt 3, unless ``behaviour.label_oracle`` says otherwise), its id the prompt;
    ``behaviour``: the label is the action taken, and the prompt is the tag of who took it."""
    prior: bool = True
    """Whether tags carry who acted; ``False`` writes ``unk`` (7) for every tag."""
    mask_sequence_prob: float = 0.15
    """Probability that every tag of a sequence is masked to ``unk``."""
    mask_episode_prob: float = 0.15
    """Probability, redrawn at each episode start, that every tag of the episode is masked."""

    def __post_init__(self) -> None:
        check_choice("name", self.name, PIPELINES)
        check_choice("label", self.label, LABELS)
        check_float("mask_sequence_prob", self.mask_sequence_prob, min_value=0.0, max_value=1.0)
        check_float("mask_episode_prob", self.mask_episode_prob, min_value=0.0, max_value=1.0)
        if not isinstance(self.behaviour, (BehaviourMixConfig, BanditMixConfig)):
            raise ValueError(f"behaviour must be a BehaviourMixConfig or a BanditMixConfig, got "
                             f"{type(self.behaviour).__name__}")

    @property
    def bandit(self) -> bool:
        """Whether the pipeline needs bandit tasks (``S = 1``): its behaviour is the bandit mixture."""
        return isinstance(self.behaviour, BanditMixConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _omnirl() -> PipelineConfig:
    return PipelineConfig("omnirl")


def _omnirl_noprior() -> PipelineConfig:
    return PipelineConfig("omnirl_noprior", prior=False)


def _ad() -> PipelineConfig:
    mix = BehaviourMixConfig(weights={"noisy_model_based": 0.5, "noisy_q_learning": 0.5},
                             resample_sequence_prob=0.0)
    return PipelineConfig("ad", behaviour=mix, label="behaviour", mask_sequence_prob=0.0,
                          mask_episode_prob=0.0)


def _ad_epsilon() -> PipelineConfig:
    mix = BehaviourMixConfig(weights={"noisy_oracle_3": 1.0}, resample_sequence_prob=0.0)
    return PipelineConfig("ad_epsilon", behaviour=mix, label="behaviour", mask_sequence_prob=0.0,
                          mask_episode_prob=0.0)


def _dpt() -> PipelineConfig:
    mix = BehaviourMixConfig(weights={"random": 0.5, "oracle_3": 0.5}, resample_sequence_prob=1.0,
                             resample_episode_prob=1.0)
    return PipelineConfig("dpt", behaviour=mix, mask_sequence_prob=0.0, mask_episode_prob=0.0)


def _random_probe() -> PipelineConfig:
    mix = BehaviourMixConfig(weights={"random": 1.0}, resample_sequence_prob=0.0)
    return PipelineConfig("random_probe", behaviour=mix, mask_sequence_prob=0.0, mask_episode_prob=0.0)


def _uniform(name: str, label_oracle: int) -> PipelineConfig:
    mix = BehaviourMixConfig(weights={"random": 1.0}, resample_sequence_prob=0.0, random_scale_mean=0.0,
                             random_drift_mean=0.0, label_oracle=label_oracle)
    return PipelineConfig(name, behaviour=mix, mask_sequence_prob=0.0, mask_episode_prob=0.0)


def _uniform_probe() -> PipelineConfig:
    return _uniform("uniform_probe", int(PriorInfo.ORACLE_G0994))


def _myopic_probe() -> PipelineConfig:
    return _uniform("myopic_probe", int(PriorInfo.ORACLE_G0))


def _myopic_mix() -> PipelineConfig:
    mix = BehaviourMixConfig(weights={"random": 0.5, "noisy_model_based": 0.5}, random_scale_mean=0.0,
                             random_drift_mean=0.0, noisy_clean_gamma=(0.0, 0.0), noisy_gamma=0.0,
                             label_oracle=int(PriorInfo.ORACLE_G0))
    return PipelineConfig("myopic_mix", behaviour=mix)


def _myopic_uneven() -> PipelineConfig:
    mix = BehaviourMixConfig(weights={"random": 1.0}, resample_sequence_prob=0.0, random_scale_mean=1.0,
                             random_drift_mean=0.0, label_oracle=int(PriorInfo.ORACLE_G0))
    return PipelineConfig("myopic_uneven", behaviour=mix, mask_sequence_prob=0.0, mask_episode_prob=0.0)


def _bandit() -> PipelineConfig:
    return PipelineConfig("bandit", behaviour=BanditMixConfig())


def _bandit_thompson() -> PipelineConfig:
    mix = BanditMixConfig(weights={"uniform": 0.5, "thompson": 0.5})
    return PipelineConfig("bandit_thompson", behaviour=mix, mask_sequence_prob=0.0, mask_episode_prob=0.0)


def _bandit_posterior() -> PipelineConfig:
    mix = BanditMixConfig(weights={"posterior": 1.0})
    return PipelineConfig("bandit_posterior", behaviour=mix, mask_sequence_prob=0.0, mask_episode_prob=0.0)


def _bandit_switch() -> PipelineConfig:
    mix = BanditMixConfig(weights={"switch": 1.0})
    return PipelineConfig("bandit_switch", behaviour=mix, mask_sequence_prob=0.0, mask_episode_prob=0.0)


PIPELINES: dict[str, Callable[[], PipelineConfig]] = {
    "omnirl": _omnirl, "omnirl_noprior": _omnirl_noprior, "ad": _ad, "ad_epsilon": _ad_epsilon,
    "dpt": _dpt, "random_probe": _random_probe, "uniform_probe": _uniform_probe, "myopic_probe": _myopic_probe,
    "myopic_mix": _myopic_mix, "myopic_uneven": _myopic_uneven, "bandit": _bandit, "bandit_thompson": _bandit_thompson, "bandit_posterior": _bandit_posterior,
    "bandit_switch": _bandit_switch,
}
"""Named pipelines: the paper's Table 4, the validation probes and the bandit pipeline."""
PROBES = ("random_probe", "uniform_probe", "myopic_probe")
"""The validation probes (see the module docstring)."""


def pipeline(name: str) -> PipelineConfig:
    """The named pipeline's configuration (``ValueError`` naming ``pipeline`` if unknown)."""
    return PIPELINES[check_choice("pipeline", name, PIPELINES)]()
