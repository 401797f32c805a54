"""Meta-training: the typed training configuration, the data module over memory-mapped sequence
windows, and the LightningModule with segment-wise truncated back-propagation
(``python -m omnirl.train``)."""
