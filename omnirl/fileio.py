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
    (and removed otherwise), so ``path`` is always either its old content or the new, complete one;
    an OSError while writing (a full disk) names ``path``. Streams, so large files (checkpoints)
    never sit in memory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        try:
            with os.fdopen(fd, "wb") as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as e:
            if e.filename is not None or e.errno is None:
                raise
            raise OSError(e.errno, e.strerror, str(path)) from e  # name the file (a full disk, say)
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


def read_yaml_mapping(path: str | os.PathLike, what: str, loader: Any = None) -> dict | None:
    """The mapping at the top of the YAML file ``path`` (``None`` for an empty file), or a
    ``ValueError`` of one line naming ``what`` (e.g. ``config file``) and the path: missing, not
    valid YAML, or not a mapping. ``loader``: the PyYAML loader class (default ``yaml.SafeLoader``)."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{what} {str(p)!r} does not exist")
    try:
        data = yaml.load(p.read_text(), Loader=loader or yaml.SafeLoader)
    except yaml.YAMLError as e:
        raise ValueError(f"{what} {p}: not valid YAML: {' '.join(str(e).split())}") from None
    if data is not None and not isinstance(data, dict):
        raise ValueError(f"{what} {p} must hold a mapping at the top, got {type(data).__name__}")
    return data


def held_content(directory: str | os.PathLike) -> str | None:
    """What ``directory`` holds that a writer of something else must not write into, named by the file
    that shows it: a dataset or task set (``manifest.json``), a training run (``run.json``, a
    checkpoint or a validation history) or an evaluation (``scores.csv``); None for a missing
    directory or one holding none of these."""
    directory = Path(directory)
    for rel, what in (("manifest.json", "a dataset or task set"), ("run.json", "a training run"),
                      ("checkpoints/last.ckpt", "a training run"), ("history.jsonl", "a training run"),
                      ("scores.csv", "an evaluation")):
        if (directory / rel).is_file():
            return f"{what} ({rel})"
    return None


CLAIM = "claim.json"
"""The file that claims a directory for one dataset or task set (``claim_directory``)."""


def claim_directory(directory: str | os.PathLike, identity: dict[str, Any], what: str,
                    differences: Any = None) -> Path:
    """Claim ``directory`` for the content ``identity`` describes (a JSON object), atomically: the
    claim file ``directory/CLAIM`` is written under a temporary name and hard-linked into place,
    which fails if it exists, so of two writers racing for one directory exactly one claims it. A
    directory claimed for the same ``identity`` is accepted (resuming, or a worker process of the
    same run); one claimed for anything else raises ValueError naming the directory (``what`` says
    what is written, ``differences(identity, held)`` lists the differing fields). Returns the
    claim file's path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / CLAIM
    text = json.dumps(identity, indent=1, sort_keys=True) + "\n"
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{CLAIM}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.link(tmp, path)
        except FileExistsError:
            pass  # claimed by another writer meanwhile: compared below
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    try:
        held = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{directory}: unreadable {CLAIM} ({e}); refusing to write a {what} into it "
                         "(choose another directory, or delete it yourself)") from None
    if held != json.loads(text):
        diff = differences(identity, held) if differences is not None else []
        raise ValueError(f"{directory}: claimed by another {what}"
                         f"{' (' + '; '.join(diff) + ')' if diff else ''}; refusing to write into it "
                         "(choose another directory, or delete it yourself)")
    return path


@contextlib.contextmanager
def exclusive(directory: str | os.PathLike, what: str, lock_file: str = CLAIM,
              then: str = "rerunning the same command afterwards resumes or confirms it",
              temporaries: tuple[str, ...] = ()) -> Iterator[None]:
    """Hold an exclusive lock on ``directory``'s claim file (or ``lock_file``, created if missing)
    for the block: a second process asking for it meanwhile gets a ValueError naming the directory
    (and what to do ``then``) instead of writing beside the first. The lock dies with its process
    (``flock``), so a killed run never leaves it held. ``temporaries``: target-name prefixes whose
    temporary files (``remove_temporaries``) are removed once the lock is held (what a killed run
    left) and again when the block fails (what this run's stopped writers left: a worker
    terminated mid-write may not unwind in time)."""
    import fcntl

    directory = Path(directory)
    fd = os.open(directory / lock_file, os.O_RDONLY | (os.O_CREAT if lock_file != CLAIM else 0), 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(f"{directory}: another process is writing this {what} right now; wait for it "
                             f"to finish ({then})") from None
        remove_temporaries(directory, temporaries)
        try:
            yield
        except BaseException:
            remove_temporaries(directory, temporaries)
            raise
    finally:
        os.close(fd)


def remove_temporaries(directory: str | os.PathLike, prefixes: tuple[str, ...]) -> list[str]:
    """Delete the temporary files (``.NAME.XXXX.tmp`` of ``atomic_open``) in ``directory`` whose
    target name starts with one of ``prefixes``: what a killed writer left. Only for a writer that
    holds the directory (``exclusive``). Returns the names removed."""
    removed = []
    if not prefixes:
        return removed
    for p in Path(directory).glob(".*.tmp"):
        if p.name[1:].startswith(prefixes) and p.is_file():
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
            removed.append(p.name)
    return removed
