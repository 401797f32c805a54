"""Torch's intra-op thread count, and environment variables, for the length of a block."""

from __future__ import annotations

import contextlib
import os
from typing import Iterator


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads (0: leave the setting alone), restoring the
    previous setting afterwards. Small models and per-row baselines gain little from a second
    thread, and on a busy machine OpenMP's spinning threads made a PPO run 5x slower than one."""
    import torch

    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"n must be an int >= 0 (0: unchanged), got {n!r}")
    old = torch.get_num_threads()
    if n and n != old:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n and n != old:
            torch.set_num_threads(old)


@contextlib.contextmanager
def environment(**values: str | None) -> Iterator[None]:
    """Environment variables set (``None``: unset) for the length of the block, restored after it
    (worker processes started inside it inherit them)."""
    old = {k: os.environ.get(k) for k in values}
    for k, v in values.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
