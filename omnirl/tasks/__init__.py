"""The world: AnyMDP tasks, their exact solutions, and environments to run them in.

>>> from omnirl.tasks import sample_anymdp, solve
>>> task = sample_anymdp(16, 5, seed=0)
>>> solve(task, gamma=0.994).policy.shape
(16,)
"""

from omnirl.tasks.anymdp import AnyMDPConfig, sample_anymdp, sample_bandit
from omnirl.tasks.batched import BatchedSimulator
from omnirl.tasks.env import AnyMDPEnv
from omnirl.tasks.garnet import sample_garnet
from omnirl.tasks.samplers import GENERATORS, sample_task
from omnirl.tasks.solver import (Solution, expected_return, normalised_score,
                                 oracle_stationary_distribution, policy_evaluation,
                                 policy_iteration, random_stationary_distribution, random_values,
                                 reference_returns, solve, stationary_distribution, value_iteration)
from omnirl.tasks.task import MDPTask

__all__ = [
    "AnyMDPConfig", "AnyMDPEnv", "BatchedSimulator", "GENERATORS", "MDPTask", "Solution",
    "expected_return", "normalised_score", "oracle_stationary_distribution", "policy_evaluation",
    "policy_iteration", "random_stationary_distribution", "random_values", "reference_returns",
    "sample_anymdp", "sample_bandit", "sample_garnet", "sample_task", "solve",
    "stationary_distribution", "value_iteration",
]
