"""Batched per-row MLPs: ``B`` independent small networks evaluated together.

Row ``b`` owns its own weights (every parameter has a leading row dimension ``B``); a forward pass
of ``N`` inputs per row is a gather (the first layer of a one-hot input is a row of its weight
matrix) followed by batched matrix products (``torch.baddbmm``) over the row dimension. Rows never
mix: the gradient of a sum of per-row losses with respect to row ``b``'s weights is the gradient of
row ``b``'s loss alone, and Adam (element-wise) keeps them apart, so ``B`` learners train at the
cost of one.

Weights are initialised per row from ``numpy`` generators seeded ``(seed, tag, row)``
(orthogonal, as Stable-Baselines3 does), never from torch's global generator.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from omnirl.evaluate.baselines._common import row_rng


def orthogonal(rng: np.random.Generator, n_in: int, n_out: int, gain: float) -> np.ndarray:
    """An ``(n_in, n_out)`` (semi-)orthogonal matrix times ``gain`` (as ``torch.nn.init.orthogonal_``)."""
    a = rng.standard_normal((max(n_in, n_out), min(n_in, n_out)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))[None, :]
    q = q if n_in >= n_out else q.T
    return gain * q[:n_in, :n_out]


class BatchedMLP:
    """``B`` MLPs ``one_hot(S) -> hidden (tanh or relu) ... -> n_out``; parameters are plain
    tensors with a leading row dimension (see the module docstring)."""

    def __init__(self, B: int, S: int, widths: Sequence[int], n_out: int, *, seed: int, tag: int,
                 activation: str = "tanh", hidden_gain: float = float(np.sqrt(2.0)),
                 out_gain: float = 1.0) -> None:
        self.act = torch.tanh if activation == "tanh" else torch.relu
        dims = [S, *widths, n_out]
        gains = [hidden_gain] * len(widths) + [out_gain]
        weights = [np.zeros((B, i, o), dtype=np.float32) for i, o in zip(dims[:-1], dims[1:])]
        for b in range(B):
            rng = row_rng(seed, tag, b)
            for w, g in zip(weights, gains):
                w[b] = orthogonal(rng, w.shape[1], w.shape[2], g)
        self.weights = [torch.tensor(w, requires_grad=True) for w in weights]  # (B, in, out) each
        self.biases = [torch.zeros(B, o, requires_grad=True) for o in dims[1:]]  # (B, out) each
        self._rows = torch.arange(B)[:, None]

    def parameters(self) -> list[torch.Tensor]:
        return [*self.weights, *self.biases]

    def _layers(self, h: torch.Tensor) -> torch.Tensor:
        """First-layer pre-activations ``(B, N, H)`` -> outputs ``(B, N, n_out)``."""
        for w, bias in zip(self.weights[1:], self.biases[1:]):
            h = torch.baddbmm(bias[:, None, :], self.act(h), w)  # (B, N, out)
        return h

    def table(self) -> torch.Tensor:
        """The outputs in every observation: ``(B, S, n_out)``."""
        return self._layers(self.weights[0] + self.biases[0][:, None, :])

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        """obs ``(B, N)`` int64 observation ids -> ``(B, N, n_out)``.

        With at least as many inputs as observations (``N >= S``) the network is evaluated once
        per observation (``table``) and gathered: the same function, at a fraction of the cost."""
        S = self.weights[0].shape[1]
        if obs.shape[1] >= S:
            out = self.table()  # (B, S, n_out)
            return out.gather(1, obs[..., None].expand(-1, -1, out.shape[-1]))
        return self._layers(self.weights[0][self._rows, obs] + self.biases[0][:, None, :])

    def state(self) -> list[torch.Tensor]:
        """Detached copies of every parameter (e.g. for a target network)."""
        return [p.detach().clone() for p in self.parameters()]

    def load(self, values: Sequence[torch.Tensor]) -> None:
        with torch.no_grad():
            for p, v in zip(self.parameters(), values):
                p.copy_(v)


def clip_rows(params: Sequence[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Scale each row's gradients so that their joint norm is at most ``max_norm`` (gradient
    clipping per learner); returns the norms before clipping ``(B,)``."""
    sq = sum(p.grad.pow(2).flatten(1).sum(1) for p in params)  # (B,)
    norm = sq.sqrt()
    scale = (max_norm / (norm + 1e-6)).clamp(max=1.0)  # (B,)
    for p in params:
        p.grad.mul_(scale.view(-1, *([1] * (p.grad.dim() - 1))))
    return norm


def masked_logits(logits: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``logits (B, N, A)`` with the padded actions (``valid (B, A)`` False) at a large negative
    value (finite, so entropies stay finite)."""
    return torch.where(valid[:, None, :], logits, torch.full_like(logits, -1e9))
