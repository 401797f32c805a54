"""Random streams for the world.

Two kinds of randomness, neither touching numpy's global state:

* **Sampling a task** uses a numpy ``Generator`` built from a ``SeedSequence`` (``make_rng``):
  PCG64 streams are reproducible across machines, and ``seed=(root, i)`` names the ``i``-th
  child stream of ``root`` so every task of a task set has its own independent stream.
* **Simulating a task** uses a *counter-based* generator (``counter_uniform``): the ``k``-th
  random number of an environment is a hash of ``(key, k, lane)``. It is vectorised over any
  number of environments, so the batched simulator draws B numbers per step with no Python loop,
  and each row's trajectory depends only on its own key and never on the batch around it. The
  Gymnasium environment uses the same function, which is why both give bit-identical trajectories.
"""

from __future__ import annotations

import numpy as np

from omnirl._validate import check_seed

_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_LANE = np.uint64(0xD1B54A32D192ED03)

# Lanes: independent sub-streams used per simulator step.
LANE_RESET = 0
LANE_TRANSITION = 1
LANE_REWARD_U1 = 2
LANE_REWARD_U2 = 3


def make_rng(seed) -> np.random.Generator:
    """A PCG64 ``Generator`` for ``seed`` (int or tuple ``(root, i, ...)``); see ``check_seed``."""
    parts = check_seed("seed", seed)
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(parts[0], spawn_key=parts[1:])))


def seed_to_key(seed) -> np.uint64:
    """A 64-bit simulator key derived from ``seed`` through ``SeedSequence`` (stable everywhere)."""
    parts = check_seed("seed", seed)
    words = np.random.SeedSequence(parts[0], spawn_key=parts[1:]).generate_state(2, dtype=np.uint32)
    return np.uint64((int(words[0]) << 32) | int(words[1]))


def _splitmix(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on uint64 arrays (wrap-around arithmetic)."""
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def counter_uniform(key, counter, lane: int) -> np.ndarray:
    """Uniform numbers in [0, 1) as a pure function of ``(key, counter, lane)``.

    key, counter: uint64 arrays (or scalars) broadcast together; lane: small int.
    Returns float64 with 53 random bits, shape of the broadcast.
    """
    key = np.asarray(key, dtype=np.uint64)
    counter = np.asarray(counter, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = _splitmix(key ^ (np.uint64(lane + 1) * _LANE))
        x = _splitmix(x + (counter + np.uint64(1)) * _GOLDEN)
    return (x >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def counter_normal(key, counter) -> np.ndarray:
    """Standard normal numbers as a pure function of ``(key, counter)`` (Box-Muller)."""
    u1 = counter_uniform(key, counter, LANE_REWARD_U1)
    u2 = counter_uniform(key, counter, LANE_REWARD_U2)
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)
