"""Meta-training: the typed training configuration, the data module over memory-mapped sequence
windows, and the LightningModule with segment-wise truncated back-propagation.

    from omnirl.train import TrainConfig, fit      # or: python -m omnirl.train --config FILE
"""

from omnirl.train.config import TrainConfig


def fit(config: TrainConfig):
    """``omnirl.train.trainer.fit``: train the model ``config`` describes; returns its ``TrainResult``
    (imported on first use: Lightning loads only when training)."""
    from omnirl.train.trainer import fit as _fit

    return _fit(config)


__all__ = ["TrainConfig", "fit"]
