"""Evaluation: in-context RL protocols, environments and baselines.

    from omnirl.evaluate import EvaluateConfig, run    # or: python -m omnirl.evaluate ...
"""

from typing import Any


def run(config: Any, log: Any = None) -> dict:
    """``omnirl.evaluate.evaluation.run``: evaluate what ``config`` (an ``EvaluateConfig``) describes
    and write its outputs; returns the summary (imported on first use)."""
    from omnirl.evaluate.evaluation import run as _run

    return _run(config) if log is None else _run(config, log)


def __getattr__(name: str) -> Any:
    if name == "EvaluateConfig":  # the config without importing every environment and baseline up front
        from omnirl.evaluate.evaluation import EvaluateConfig

        return EvaluateConfig
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["EvaluateConfig", "run"]
