"""Atomic file writes: every file the project writes appears whole or not at all.

Data is written to a temporary file in the target directory, flushed, and renamed over the
target, so an interrupted run never leaves a half-written file under the real name.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Iterator


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary file to write ``path`` through: the data goes to a temporary file in the same
    directory, which is flushed and renamed over ``path`` when the block ends without an error
    (and removed otherwise), so ``path`` is always either its old content or the new, complete one.
    Streams, so large files (checkpoints) never sit in memory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see ``atomic_open``); returns the path."""
    with atomic_open(path) as f:
        f.write(data)
    return Path(path)


def atomic_write_json(path: str | os.PathLike, obj: Any, sort_keys: bool = True) -> Path:
    """Write ``obj`` as indented JSON atomically, keys sorted unless ``sort_keys`` is false (then
    in the order of ``obj``'s dicts, e.g. a table's columns)."""
    return atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=sort_keys) + "\n").encode())


def read_json(path: str | os.PathLike, missing: str) -> Any:
    """The JSON document at ``path``; a ValueError naming the file if it is missing (``missing``
    says what that means) or not valid JSON (truncated or edited)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: missing manifest ({missing})")
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise ValueError(f"{path}: manifest is not valid JSON (truncated or edited): {e}") from None
