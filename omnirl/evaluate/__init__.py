"""Evaluation: in-context RL protocols, environments and baselines."""
