"""The step-wise-supervision schema: one table of fields, used by the store and printed in docs.

A *sequence* is one task's data: exactly ``T`` steps, episode-end markers included. At an
episode-end marker the step holds the terminal state, the end action ``A``, zero reward and the
``UNKNOWN`` prior id (7). Each step field is stored per shard as a C-order ``(n, T)`` array; each
sequence field as an ``(n,)`` (or ``(n, 32)``) array, ``n`` being the sequences of the shard.

``FIELDS`` is the single source of truth: ``column_specs`` gives the exact dtype and shape of
every column for a given ``(S, T)``, ``field_table`` is the JSON copy stored in each manifest, and
``schema_markdown`` renders the table for the README.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from omnirl._validate import check_int
from omnirl.agents.prior import N_PRIOR, PriorInfo
from omnirl.tasks.task import MAX_ACTIONS  # noqa: F401  (the world's limit, stored as uint8 here)

SCHEMA_NAME = "omnirl.sws"
"""Format name written into every manifest and sidecar (step-wise supervision)."""

SCHEMA_VERSION = 1
"""Version of the on-disk layout; a reader refuses any other version."""

SUPPORTED_VERSIONS = (SCHEMA_VERSION,)

HASH_BYTES = 32
"""A task content hash (SHA-256) is stored as its 32 raw bytes."""

MAX_OBS = 32768
"""Largest S: observation ids above 256 are stored as int16."""


UNKNOWN = int(PriorInfo.UNKNOWN)


@dataclass(frozen=True)
class Field:
    """One column of the store."""

    name: str
    """Column name (the key of the arrays a reader returns)."""
    dtype: str
    """numpy dtype name; ``"obs"`` means uint8 if S <= 256 else int16 (see ``obs_dtype``)."""
    per: str
    """``"step"``: an ``(n, T)`` column; ``"sequence"``: one value (or hash) per sequence."""
    shape: str
    """Shape of the column in a shard of ``n`` sequences, as text."""
    meaning: str
    """What the value is, including its value at an episode-end marker."""


FIELDS: tuple[Field, ...] = (
    Field("obs", "obs", "step", "(n, T)",
          "observed state id in [0, S); at an episode-end marker, the terminal state"),
    Field("action", "uint8", "step", "(n, T)",
          "behaviour action actually taken, in [0, A); A at an episode-end marker"),
    Field("reward", "float32", "step", "(n, T)",
          "reward received for the action; 0 at an episode-end marker"),
    Field("tag", "uint8", "step", "(n, T)",
          "prior id of the policy that acted (omnirl.agents.prior); 7 = unknown/masked and at end markers"),
    Field("prompt", "uint8", "step", "(n, T)",
          "prior id of the label policy; 7 at an episode-end marker"),
    Field("label", "uint8", "step", "(n, T)",
          "label action: the reference oracle's action on obs, in [0, A); A at an episode-end marker"),
    Field("task_index", "int64", "sequence", "(n,)",
          "index of the sequence's task in the task set, or -1 for a freshly sampled task"),
    Field("sequence_index", "int64", "sequence", "(n,)",
          "global index of the sequence in the dataset (shard first index + row)"),
    Field("task_hash", "uint8", "sequence", f"(n, {HASH_BYTES})",
          "the task's content hash (SHA-256) as 32 raw bytes; hex via task_hash_hex"),
)
"""Every column, in on-disk order."""

STEP_FIELDS = tuple(f.name for f in FIELDS if f.per == "step")
SEQUENCE_FIELDS = tuple(f.name for f in FIELDS if f.per == "sequence")
FIELD_NAMES = tuple(f.name for f in FIELDS)


def obs_dtype(n_obs: int) -> np.dtype:
    """dtype of ``obs`` for ``n_obs`` observation ids: uint8 up to 256, else int16."""
    n_obs = check_int("n_obs", n_obs, min_value=1, max_value=MAX_OBS)
    return np.dtype(np.uint8 if n_obs <= 256 else np.int16)


def column_specs(n_obs: int, length: int) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
    """``{name: (dtype, shape of one sequence's entry)}``: ``(T,)`` for step fields."""
    length = check_int("length", length, min_value=1)
    out = {}
    for f in FIELDS:
        dtype = obs_dtype(n_obs) if f.dtype == "obs" else np.dtype(f.dtype)
        if f.per == "step":
            shape: tuple[int, ...] = (length,)
        elif f.name == "task_hash":
            shape = (HASH_BYTES,)
        else:
            shape = ()
        out[f.name] = (dtype, shape)
    return out


def value_bounds(n_obs: int, n_actions: int) -> dict[str, tuple[int, int]]:
    """Inclusive ``(min, max)`` of the integer columns whose range the schema fixes."""
    return {"obs": (0, n_obs - 1), "action": (0, n_actions), "label": (0, n_actions),
            "tag": (0, N_PRIOR - 1), "prompt": (0, N_PRIOR - 1), "task_index": (-1, 2**63 - 1)}


def field_table() -> list[dict[str, str]]:
    """The schema as JSON-ready rows (stored in every manifest)."""
    return [{"name": f.name, "dtype": f.dtype, "per": f.per, "shape": f.shape, "meaning": f.meaning}
            for f in FIELDS]


def schema_markdown() -> str:
    """The schema as a Markdown table."""
    rows = ["| field | dtype | shape | meaning |", "|---|---|---|---|"]
    for f in FIELDS:
        dtype = "uint8 if S <= 256 else int16" if f.dtype == "obs" else f.dtype
        rows.append(f"| `{f.name}` | {dtype} | `{f.shape}` | {f.meaning} |")
    return "\n".join(rows)


def task_hash_bytes(hex_hash: str) -> np.ndarray:
    """A hex SHA-256 (``MDPTask.content_hash()``) as the 32-byte ``uint8`` row stored on disk."""
    try:
        raw = bytes.fromhex(hex_hash)
    except (TypeError, ValueError):
        raw = b""
    if len(raw) != HASH_BYTES:
        raise ValueError(f"hex_hash must be a {2 * HASH_BYTES}-digit hex string, got {hex_hash!r}")
    return np.frombuffer(raw, dtype=np.uint8).copy()


def task_hash_hex(row: np.ndarray) -> str:
    """The hex string of a stored 32-byte ``task_hash`` row."""
    return np.asarray(row, dtype=np.uint8).tobytes().hex()


__all__ = ["FIELDS", "FIELD_NAMES", "Field", "HASH_BYTES", "SCHEMA_NAME", "SCHEMA_VERSION",
           "SEQUENCE_FIELDS", "STEP_FIELDS", "column_specs", "field_table", "obs_dtype",
           "schema_markdown", "task_hash_bytes", "task_hash_hex", "value_bounds"]
