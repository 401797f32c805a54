"""Loud argument validation shared by every public entry point.

Every helper raises ``ValueError`` whose message names the argument and the offending value,
so a bad call fails at construction rather than deep inside a computation.
"""

from __future__ import annotations

import numbers
from typing import Any, Collection


def check_int(name: str, value: Any, *, min_value: int | None = None,
              max_value: int | None = None) -> int:
    """Return ``value`` as ``int`` if it is an integer (not bool) within the bounds, else raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if min_value is not None and value < min_value:
        raise ValueError(f"{name} must be >= {min_value}, got {value}")
    if max_value is not None and value > max_value:
        raise ValueError(f"{name} must be <= {max_value}, got {value}")
    return value


def check_float(name: str, value: Any, *, min_value: float | None = None,
                max_value: float | None = None, min_inclusive: bool = True,
                max_inclusive: bool = True) -> float:
    """Return ``value`` as ``float`` if it is a finite real number within the bounds, else raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{name} must be finite, got {value}")
    if min_value is not None and (value < min_value or (not min_inclusive and value == min_value)):
        op = ">=" if min_inclusive else ">"
        raise ValueError(f"{name} must be {op} {min_value}, got {value}")
    if max_value is not None and (value > max_value or (not max_inclusive and value == max_value)):
        op = "<=" if max_inclusive else "<"
        raise ValueError(f"{name} must be {op} {max_value}, got {value}")
    return value


def check_choice(name: str, value: Any, choices: Collection[Any]) -> Any:
    """Return ``value`` if it is one of ``choices``, else raise naming the valid choices."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)!r}, got {value!r}")
    return value


def check_seed(name: str, value: Any) -> tuple[int, ...]:
    """Normalise a seed (a non-negative int or a tuple of them) to a tuple of ints.

    A tuple ``(root, i, j, ...)`` names the stream ``SeedSequence(root, spawn_key=(i, j, ...))``,
    so task ``i`` of a task set made with seed ``root`` is reproducible on its own.
    """
    parts = value if isinstance(value, (tuple, list)) else (value,)
    if len(parts) == 0:
        raise ValueError(f"{name} must be a non-negative integer or a non-empty tuple of them, got {value!r}")
    out = []
    for p in parts:
        if isinstance(p, bool) or not isinstance(p, numbers.Integral) or int(p) < 0:
            raise ValueError(f"{name} must be a non-negative integer or a tuple of them, got {value!r}")
        out.append(int(p))
    return tuple(out)


def memory_bytes() -> int:
    """This machine's physical memory in bytes."""
    import os

    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_memory(what: str, nbytes: int) -> int:
    """Raise ValueError (naming ``what``) when ``nbytes`` would not fit in this machine's memory:
    sizes are refused before anything is allocated, not with a MemoryError midway."""
    total = memory_bytes()
    if nbytes > total:
        raise ValueError(f"{what} needs about {nbytes / 2**30:.1f} GiB of memory, more than this machine's "
                         f"{total / 2**30:.1f} GiB")
    return nbytes


DISK_MARGIN_BYTES = 16 * 2**20
"""Free disk a writer leaves untouched beyond its estimate (and at least 5 % of the estimate on top):
logs, manifests and estimates that run a little short."""


def free_disk_bytes(path) -> int:
    """Free bytes on the file system that holds ``path`` (or its nearest existing parent: the
    directory a run is about to create)."""
    import os
    import shutil
    from pathlib import Path

    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    return shutil.disk_usage(p).free


def check_disk(name: str, path, nbytes: int) -> int:
    """Raise ValueError (naming the argument ``name`` and its value ``path``, the bytes needed and
    the bytes free) when writing ``nbytes`` to ``path`` would not leave ``DISK_MARGIN_BYTES`` (or
    5 % of ``nbytes``, the larger) free: a full disk is refused before a run writes anything, not
    met midway. Nothing to write (``nbytes == 0``) always passes."""
    if nbytes <= 0:
        return nbytes
    need = nbytes + max(DISK_MARGIN_BYTES, nbytes // 20)
    free = free_disk_bytes(path)
    if free < need:
        mib = lambda b: f"{b / 2**20:.1f} MiB"  # noqa: E731
        raise ValueError(f"{name} {str(path)!r}: writing needs {need} bytes of free disk ({mib(nbytes)} and a "
                         f"margin), only {free} bytes ({mib(free)}) are free there")
    return nbytes
