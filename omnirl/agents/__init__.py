"""Behaviour policies for data synthesis, batched over rows: oracles, random policies, tabular
learners and the behaviour mixture that switches between them; bandit learners and their mixture.
"""

from omnirl.agents.bandit import BANDIT_COMPONENTS, BANDIT_WEIGHTS, BanditMix, BanditMixConfig
from omnirl.agents.base import BatchedAgent
from omnirl.agents.mixture import COMPONENTS, DEFAULT_WEIGHTS, BehaviourMix, BehaviourMixConfig
from omnirl.agents.model_based import ModelBasedAgent, ModelBasedConfig
from omnirl.agents.oracle import OracleAgent, clear_oracle_cache, oracle_table
from omnirl.agents.prior import N_PRIOR, ORACLE_GAMMAS, REFERENCE, PriorInfo
from omnirl.agents.qlearning import QLearningAgent, QLearningConfig
from omnirl.agents.random_policy import RandomAgent, RandomConfig
from omnirl.agents.streams import LANES, RowStreams

__all__ = [
    "BANDIT_COMPONENTS", "BANDIT_WEIGHTS", "BanditMix", "BanditMixConfig", "BatchedAgent", "BehaviourMix", "BehaviourMixConfig", "COMPONENTS", "DEFAULT_WEIGHTS", "LANES",
    "ModelBasedAgent", "ModelBasedConfig", "N_PRIOR", "ORACLE_GAMMAS", "OracleAgent", "PriorInfo",
    "QLearningAgent", "QLearningConfig", "REFERENCE", "RandomAgent", "RandomConfig", "RowStreams",
    "clear_oracle_cache", "oracle_table",
]
