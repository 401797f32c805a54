"""The sequence store: step-wise-supervision sequences in checksummed, memory-mappable shards.

On disk (``DatasetWriter`` / ``Dataset``)::

    DIR/manifest.json     schema name and version, S, A, T, n_sequences, shard size, task-set hash,
                          synthesis config, header hash, field table, shard list with checksums
    DIR/shard-00000.bin   sequences [0, shard_size): the columns of ``schema.FIELDS`` one after
                          another, each a C-order array (``(n, T)`` step fields, then the ``(n,)``
                          / ``(n, 32)`` sequence fields), each starting on a 64-byte boundary
    DIR/shard-00000.json  sidecar: the shard's sha256, size, first sequence, n sequences, column
                          layout and header hash (written after the .bin)

The column layout (offset, dtype, shape) is a pure function of the header and the shard's
sequence count; it is recorded in each sidecar and manifest entry, and a reader checks the
recorded layout against the computed one before it maps a column without copying.

A writer first claims the directory (``omnirl.fileio.claim_directory``: ``DIR/claim.json``, created
atomically, holds the header), so two writers of different datasets never share a directory; a
run holds it exclusively while it writes (``DatasetWriter.exclusive``).

Every file is written under a temporary name and renamed (``omnirl.fileio`` for in-memory columns,
``DatasetWriter.open_shard`` for a shard filled in place through a memory map of its temporary
file), so an interrupted writer leaves no half-written shard; a new writer with the same header resumes with the shards
whose sidecar and checksum are intact (``missing_shards``). A writer refuses a directory that
holds another dataset; a reader refuses a damaged shard with an error naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import tempfile
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from omnirl._validate import check_int
from omnirl.data.schema import (FIELD_NAMES, MAX_ACTIONS, MAX_OBS, SCHEMA_NAME, SCHEMA_VERSION,
                                SEQUENCE_FIELDS, STEP_FIELDS, SUPPORTED_VERSIONS, column_specs,
                                field_table, value_bounds)
from omnirl.fileio import atomic_write_bytes, atomic_write_json, claim_directory, exclusive, read_json
from omnirl.tasks.taskset import _hash_of_hashes, _sha256

MANIFEST = "manifest.json"
ALIGN = 64
"""Every column starts at a multiple of this many bytes in its shard file."""


# ---------------------------------------------------------------------------- header


@dataclass(frozen=True, kw_only=True)
class DatasetHeader:
    """Everything that defines a dataset's shape and provenance; equal headers, same dataset."""

    n_obs: int
    """S: number of observation ids (``obs`` is uint8 if S <= 256, else int16)."""
    n_actions: int
    """A: number of actions; the action/label value A marks an episode end."""
    length: int
    """T: steps per sequence, episode-end markers included."""
    n_sequences: int
    """Number of sequences in the dataset."""
    shard_size: int
    """Sequences per shard (the last shard may hold fewer)."""
    task_set_hash: str | None = None
    """Content hash of the task set the sequences were drawn from (None: fresh tasks only)."""
    config: dict[str, Any] = field(default_factory=dict)
    """The full synthesis configuration (any JSON object), stored verbatim in the manifest."""
    schema_version: int = SCHEMA_VERSION
    """Version of the on-disk schema (``schema.SCHEMA_VERSION``)."""

    def __post_init__(self) -> None:
        v = check_int("schema_version", self.schema_version)
        if v not in SUPPORTED_VERSIONS:
            raise ValueError(f"schema_version {v} is not supported (this code reads {list(SUPPORTED_VERSIONS)})")
        set_ = lambda k, x: object.__setattr__(self, k, x)  # noqa: E731
        set_("schema_version", v)
        set_("n_obs", check_int("n_obs", self.n_obs, min_value=1, max_value=MAX_OBS))
        set_("n_actions", check_int("n_actions", self.n_actions, min_value=1, max_value=MAX_ACTIONS))
        set_("length", check_int("length", self.length, min_value=1))
        set_("n_sequences", check_int("n_sequences", self.n_sequences, min_value=1))
        set_("shard_size", check_int("shard_size", self.shard_size, min_value=1))
        h = self.task_set_hash
        if h is not None and not (isinstance(h, str) and len(h) == 64
                                  and all(c in "0123456789abcdef" for c in h)):
            raise ValueError(f"task_set_hash must be None or a 64-digit lowercase hex SHA-256, got {h!r}")
        if not isinstance(self.config, Mapping):
            raise ValueError(f"config must be a dict, got {type(self.config).__name__}")
        try:  # a private, JSON-normalised copy: the header equals itself after a save and load
            config = json.loads(json.dumps(dict(self.config), sort_keys=True, allow_nan=False))
        except (TypeError, ValueError) as e:
            raise ValueError(f"config must be a JSON-serializable dict: {e}") from None
        set_("config", config)

    def __hash__(self) -> int:
        return hash(self.header_hash())

    @property
    def n_shards(self) -> int:
        return -(-self.n_sequences // self.shard_size)

    def shard_first(self, s: int) -> int:
        """Global index of the first sequence of shard ``s``."""
        return s * self.shard_size

    def shard_rows(self, s: int) -> int:
        """Number of sequences in shard ``s``."""
        return min(self.shard_size, self.n_sequences - s * self.shard_size)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "DatasetHeader":
        """The header stored in a manifest or sidecar (extra keys are ignored)."""
        names = ("n_obs", "n_actions", "length", "n_sequences", "shard_size", "task_set_hash",
                 "config", "schema_version")
        missing = [k for k in names if k not in d]
        if missing:
            raise ValueError(f"header has no {missing[0]!r}")
        return cls(**{k: d[k] for k in names})

    def header_hash(self) -> str:
        """SHA-256 of the canonical JSON of the header (stable across runs and machines)."""
        text = json.dumps({"format": SCHEMA_NAME, **self.to_dict()}, sort_keys=True,
                          separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(text.encode()).hexdigest()


def _header_diff(new: dict[str, Any], old: Any) -> list[str]:
    """Human-readable differences between two header dicts, down to the differing leaf
    (``config['spec']['seed'] 4 -> 5``); ``old`` may be malformed."""
    if not isinstance(old, Mapping):
        return ["header (unreadable)"]
    short = lambda x: (r if len(r := repr(x)) <= 60 else r[:57] + "...")  # noqa: E731

    def walk(path: str, a: Any, b: Any) -> list[str]:
        if a == b:
            return []
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            return [d for k in sorted(set(a) | set(b), key=str)
                    for d in walk(f"{path}[{k!r}]" if path else str(k), a.get(k), b.get(k))]
        return [f"{path} {short(b)} -> {short(a)}"]

    return [d for k in new for d in walk(str(k), new[k], old.get(k))]


# ---------------------------------------------------------------------------- layout


def _shard_name(s: int) -> str:
    return f"shard-{s:05d}"


def shard_layout(header: DatasetHeader, n: int) -> tuple[dict[str, dict[str, Any]], int]:
    """``({column: {"offset", "dtype", "shape"}}, file size)`` of a shard of ``n`` sequences."""
    columns, offset = {}, 0
    for name, (dtype, shape) in column_specs(header.n_obs, header.length).items():
        full = [n, *shape]
        columns[name] = {"offset": offset, "dtype": dtype.str, "shape": full}
        nbytes = dtype.itemsize * int(np.prod(full))
        offset = -(-(offset + nbytes) // ALIGN) * ALIGN
    return columns, offset


def pending_bytes(header: DatasetHeader, out_dir: str | os.PathLike) -> int:
    """Bytes a writer of ``header`` still puts into ``out_dir``: every shard file not already there at
    its final size, its sidecar, and the manifest (what ``omnirl._validate.check_disk`` weighs
    against the free disk before a run starts). Takes time in the files present, not in the shards."""
    n, last = header.n_shards, header.n_shards - 1
    meta = len(json.dumps(header.to_dict())) + 4096  # a sidecar: the header and the shard's entry
    full = shard_layout(header, header.shard_rows(0))[1]
    size = {0: full, last: shard_layout(header, header.shard_rows(last))[1]}
    total = n * 1024 + meta + (n - 1) * (full + meta) + size[last] + meta  # the manifest, then every shard
    for f in Path(out_dir).glob("shard-*.bin") if Path(out_dir).is_dir() else ():
        try:
            s = int(f.stem.split("-")[1])
            if 0 <= s < n and f.stat().st_size == size.get(s, full):
                total -= size.get(s, full) + meta
        except (ValueError, IndexError, OSError):
            continue
    return total


def _nbytes(col: dict[str, Any]) -> int:
    return np.dtype(col["dtype"]).itemsize * int(np.prod(col["shape"]))


def _expected_entry(header: DatasetHeader, s: int) -> dict[str, Any]:
    n = header.shard_rows(s)
    columns, size = shard_layout(header, n)
    return {"file": f"{_shard_name(s)}.bin", "index": s, "first_sequence": header.shard_first(s),
            "n_sequences": n, "bytes": size, "columns": columns}


def _file_problem(path: Path, entry: Mapping[str, Any]) -> str | None:
    """Why the shard file at ``path`` does not match ``entry`` (None if it matches)."""
    if not path.is_file():
        return "shard file is missing"
    size = path.stat().st_size
    if size != entry["bytes"]:
        return f"size {size} != {entry['bytes']} in the manifest (truncated?)"
    if _sha256(path) != entry["sha256"]:
        return "checksum mismatch (the file was modified or corrupted)"
    return None


# ---------------------------------------------------------------------------- writer


def _check_columns(header: DatasetHeader, s: int, columns: Any) -> None:
    """Raise ValueError naming the column unless ``columns`` is exactly shard ``s``'s data."""
    if not isinstance(columns, Mapping):
        raise ValueError(f"columns must be a dict of numpy arrays, got {type(columns).__name__}")
    unknown = sorted(set(columns) - set(FIELD_NAMES), key=str)
    if unknown:
        raise ValueError(f"columns: unknown column {unknown[0]!r}; the schema has {list(FIELD_NAMES)}")
    n, first = header.shard_rows(s), header.shard_first(s)
    for name, (dtype, shape) in column_specs(header.n_obs, header.length).items():
        if name not in columns:
            raise ValueError(f"columns[{name!r}] is missing; shard {s} needs all of {list(FIELD_NAMES)}")
        a = columns[name]
        if not isinstance(a, np.ndarray):
            raise ValueError(f"columns[{name!r}] must be a numpy array, got {type(a).__name__}")
        if a.dtype != dtype:
            raise ValueError(f"columns[{name!r}] must have dtype {dtype} (n_obs={header.n_obs}), got {a.dtype}")
        if a.shape != (n, *shape):
            raise ValueError(f"columns[{name!r}] must have shape {(n, *shape)} (shard {s} holds "
                             f"{n} sequences of length {header.length}), got {a.shape}")
    problem = _value_problem(header, columns)
    if problem is not None:
        raise ValueError(problem)
    idx = columns["sequence_index"]
    if not np.array_equal(idx, np.arange(first, first + n)):
        raise ValueError(f"columns['sequence_index'] must be {first}..{first + n - 1} for shard {s}, "
                         f"got {idx[:3].tolist()}...")


def _value_problem(header: DatasetHeader, columns: Mapping[str, np.ndarray]) -> str | None:
    """Why the values of ``columns`` do not fit ``header`` (ids beyond its ``n_obs`` / ``n_actions``,
    non-finite rewards), or None."""
    for name, (lo, hi) in value_bounds(header.n_obs, header.n_actions).items():
        mn, mx = int(columns[name].min()), int(columns[name].max())
        if mn < lo or mx > hi:
            return f"columns[{name!r}] values must be in [{lo}, {hi}], got min {mn}, max {mx}"
    if not np.isfinite(columns["reward"]).all():
        return "columns['reward'] must be finite, got NaN or inf"
    return None


class DatasetWriter:
    """Writes a dataset shard by shard; resumable, and never touches another dataset.

    ``missing_shards()`` lists the shards still to write (all of them in a new directory); any
    order and any number of writer processes over disjoint shards are fine. ``finalize()``
    writes ``manifest.json`` once every shard is present.
    """

    def __init__(self, out_dir: str | os.PathLike, header: DatasetHeader):
        if not isinstance(header, DatasetHeader):
            raise ValueError(f"header must be a DatasetHeader, got {type(header).__name__}")
        self.path = Path(out_dir)
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(f"out_dir {str(self.path)!r} exists and is not a directory")
        self.header = header
        self._hash = header.header_hash()
        self._check_existing()
        claim_directory(self.path, {"format": SCHEMA_NAME, "header_hash": self._hash, "header": header.to_dict()},
                        "dataset", lambda new, held: _header_diff(new["header"], held.get("header")
                                                                  if isinstance(held, dict) else None))
        self._intact: dict[int, dict[str, Any]] = {}

    @contextlib.contextmanager
    def exclusive(self):
        """The directory for this process alone during the block (``omnirl.fileio.exclusive``: a
        second run on it is refused, worker processes of this one are not affected), cleared of
        the temporary shard files a killed run left, and again when the block fails (what its
        stopped workers left: a worker terminated mid-write may not unwind in time)."""
        with exclusive(self.path, "dataset", temporaries=("shard-",)):
            yield self

    def _refuse(self, what: str) -> None:
        raise ValueError(f"{self.path}: already holds {what}; refusing to write into it "
                         "(choose another directory, or delete it yourself)")

    def _check_existing(self) -> None:
        """Raise if the directory holds a manifest or sidecars of another dataset."""
        if not self.path.is_dir():
            return
        new = self.header.to_dict()
        mpath = self.path / MANIFEST
        if mpath.exists():
            try:
                m = json.loads(mpath.read_text())
            except (OSError, ValueError) as e:
                self._refuse(f"an unreadable {MANIFEST} ({e})")
            if not isinstance(m, dict) or m.get("format") != SCHEMA_NAME:
                fmt = m.get("format") if isinstance(m, dict) else None
                self._refuse(f"a {MANIFEST} of another kind (format {fmt!r}, not {SCHEMA_NAME!r})")
            if m.get("header_hash") != self._hash or _header_diff(new, m):
                self._refuse(f"a dataset with a different header: {'; '.join(_header_diff(new, m)) or 'header_hash'}")
        for side in sorted(self.path.glob("shard-*.json")):
            try:
                sc = json.loads(side.read_text())
            except (OSError, ValueError):
                continue  # an unreadable sidecar marks its shard as missing: it is rewritten
            if not isinstance(sc, dict) or sc.get("format") != SCHEMA_NAME:
                self._refuse(f"{side.name} of another kind (not an {SCHEMA_NAME} shard)")
            if sc.get("header_hash") != self._hash:
                diff = _header_diff(new, sc.get("header"))
                self._refuse(f"shards of a dataset with a different header ({side.name}: "
                             f"{'; '.join(diff) or 'header_hash'})")

    def _sidecar_entry(self, s: int) -> dict[str, Any] | None:
        """Shard ``s``'s manifest entry if its sidecar and file are intact, else None."""
        side = self.path / f"{_shard_name(s)}.json"
        try:
            sc = json.loads(side.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(sc, dict) or sc.get("header_hash") != self._hash:
            return None
        entry = {k: sc.get(k) for k in ("file", "index", "first_sequence", "n_sequences", "bytes",
                                        "sha256", "columns", "header_hash")}
        expected = _expected_entry(self.header, s)
        if any(entry[k] != v for k, v in expected.items()):
            return None
        if _file_problem(self.path / entry["file"], entry) is not None:
            return None
        return entry

    def missing_shards(self) -> list[int]:
        """Shards without an intact sidecar and checksum, in order (checks each shard once)."""
        out = []
        for s in range(self.header.n_shards):
            if s not in self._intact:
                entry = self._sidecar_entry(s)
                if entry is None:
                    out.append(s)
                else:
                    self._intact[s] = entry
        return out

    def write_shard(self, index: int, columns: Mapping[str, np.ndarray]) -> dict[str, Any]:
        """Validate and atomically commit shard ``index`` from in-memory ``columns``; returns its
        manifest entry. Needs one shard-sized buffer besides ``columns`` (``open_shard`` needs none).

        On an OSError (e.g. a full disk) no temporary file, sidecar or shard file is left for
        ``index`` and the error is re-raised with the file named.
        """
        s = check_int("index", index, min_value=0, max_value=self.header.n_shards - 1)
        _check_columns(self.header, s, columns)
        entry = _expected_entry(self.header, s)
        buf = np.zeros(entry["bytes"], np.uint8)
        for name, col in entry["columns"].items():
            data = np.ascontiguousarray(columns[name]).reshape(-1).view(np.uint8)
            buf[col["offset"]:col["offset"] + data.size] = data
        entry["sha256"] = hashlib.sha256(buf).hexdigest()
        return self._commit(s, entry, lambda binary: atomic_write_bytes(binary, memoryview(buf)))

    def open_shard(self, index: int) -> "ShardBuffer":
        """Shard ``index`` to fill in place: ``with writer.open_shard(s) as sh: ...; sh.commit()``.

        ``sh.columns`` are writable memory-mapped (zeroed) columns of a temporary file, so a shard
        is written in batches without holding it in memory; leaving the block without
        ``commit()`` discards the file.
        """
        s = check_int("index", index, min_value=0, max_value=self.header.n_shards - 1)
        return ShardBuffer(self, s)

    def _commit(self, s: int, entry: dict[str, Any], put_file) -> dict[str, Any]:
        """Put shard ``s``'s file in place with ``put_file(path)``, then write its sidecar."""
        entry["header_hash"] = self._hash
        binary = self.path / entry["file"]
        side = self.path / f"{_shard_name(s)}.json"
        self._intact.pop(s, None)
        try:
            side.unlink(missing_ok=True)  # a stale sidecar must never describe the new file
            put_file(binary)
            atomic_write_json(side, {"format": SCHEMA_NAME, **entry, "header": self.header.to_dict()})
        except OSError as e:
            for p in (side, binary):
                with contextlib.suppress(OSError):
                    p.unlink()
            raise self._write_error(s, e) from e
        self._intact[s] = entry
        return entry

    def _write_error(self, s: int, e: OSError) -> OSError:
        msg = (f"{self.path / (_shard_name(s) + '.bin')}: could not write shard {s} "
               f"({e.strerror or e}); nothing was kept for this shard, re-run the writer to resume")
        return OSError(e.errno, msg) if e.errno is not None else OSError(msg)

    def finalize(self) -> dict[str, Any]:
        """Write ``manifest.json`` (atomically) once every shard is present; returns it."""
        self._check_existing()  # never over another dataset's manifest
        missing = self.missing_shards()
        if missing:
            raise ValueError(f"{self.path}: cannot finalize, {len(missing)} of {self.header.n_shards} "
                             f"shards missing or damaged: {missing[:20]}{' ...' if len(missing) > 20 else ''}")
        shards = [self._intact[s] for s in range(self.header.n_shards)]
        manifest = {"format": SCHEMA_NAME, **self.header.to_dict(), "header_hash": self._hash,
                    "n_shards": len(shards), "content_hash": _hash_of_hashes(e["sha256"] for e in shards),
                    "fields": field_table(), "shards": shards}
        atomic_write_json(self.path / MANIFEST, manifest)
        return manifest


def _reserve(fd: int, size: int) -> None:
    """Allocate ``size`` bytes of disk for ``fd`` now, so a full disk raises OSError here rather
    than failing a later write through the memory map (SIGBUS)."""
    try:
        os.posix_fallocate(fd, 0, size)
        return
    except (AttributeError, OSError) as e:
        if isinstance(e, OSError) and e.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise
    zeros = bytes(min(size, 1 << 20))
    for lo in range(0, size, len(zeros)):
        os.write(fd, zeros[:min(len(zeros), size - lo)])


class ShardBuffer:
    """A shard being written in place (see ``DatasetWriter.open_shard``)."""

    def __init__(self, writer: DatasetWriter, s: int):
        self.index = s
        self._writer = writer
        self._entry = _expected_entry(writer.header, s)
        self._mm: np.memmap | None = None
        self.columns: dict[str, np.memmap] = {}
        """Writable memory-mapped columns (read-only once committed)."""
        name = self._entry["file"]
        fd, tmp = tempfile.mkstemp(dir=writer.path, prefix=f".{name}.", suffix=".tmp")
        self._tmp: Path | None = Path(tmp)
        try:
            try:
                _reserve(fd, self._entry["bytes"])
            finally:
                os.close(fd)
            mm = np.memmap(self._tmp, dtype=np.uint8, mode="r+", shape=(self._entry["bytes"],))
        except OSError as e:
            self.discard()
            raise writer._write_error(s, e) from e
        self._mm = mm
        self.columns = {name: mm[c["offset"]:c["offset"] + _nbytes(c)].view(np.dtype(c["dtype"])).reshape(c["shape"])
                        for name, c in self._entry["columns"].items()}

    def __enter__(self) -> "ShardBuffer":
        return self

    def __exit__(self, *exc) -> None:
        self.discard()

    def _release(self) -> None:
        for a in self.columns.values():
            a.flags.writeable = False
        self._mm = None

    def commit(self) -> dict[str, Any]:
        """Validate the columns and commit the shard (file renamed into place, then its sidecar);
        returns its manifest entry. Errors as in ``DatasetWriter.write_shard``."""
        if self._mm is None or self._tmp is None:
            raise ValueError(f"shard {self.index} was already committed or discarded")
        _check_columns(self._writer.header, self.index, self.columns)
        tmp = self._tmp
        try:
            self._mm.flush()
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            self._entry["sha256"] = _sha256(tmp)
        except OSError as e:
            self.discard()
            raise self._writer._write_error(self.index, e) from e
        self._release()
        self._tmp = None
        try:
            return self._writer._commit(self.index, self._entry, lambda binary: os.replace(tmp, binary))
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()

    def discard(self) -> None:
        """Drop an uncommitted shard: its temporary file is deleted (no-op after ``commit``)."""
        if self._mm is not None:
            self._release()
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                self._tmp.unlink()
            self._tmp = None


# ---------------------------------------------------------------------------- reader


def read_manifest(root: str | os.PathLike) -> tuple[dict[str, Any], DatasetHeader]:
    """The manifest of a dataset directory and its header, after checking every entry."""
    path = Path(root) / MANIFEST
    m = read_json(path, "not a dataset, or writing did not finish")
    if not isinstance(m, dict) or m.get("format") != SCHEMA_NAME:
        raise ValueError(f"{path}: not an {SCHEMA_NAME} dataset manifest")
    if m.get("schema_version") not in SUPPORTED_VERSIONS:
        raise ValueError(f"{path}: unsupported schema_version {m.get('schema_version')!r} "
                         f"(this code reads {list(SUPPORTED_VERSIONS)})")
    for key in ("header_hash", "fields", "shards"):
        if key not in m:
            raise ValueError(f"{path}: manifest has no {key!r}")
    try:
        header = DatasetHeader.from_dict(m)
    except ValueError as e:
        raise ValueError(f"{path}: invalid header: {e}") from None
    if header.header_hash() != m["header_hash"]:
        raise ValueError(f"{path}: header hash mismatch (the manifest was edited)")
    if m["fields"] != field_table():
        raise ValueError(f"{path}: field table differs from schema version {header.schema_version}")
    shards = m["shards"]
    if not isinstance(shards, list) or len(shards) != header.n_shards:
        raise ValueError(f"{path}: expected {header.n_shards} shard entries, got "
                         f"{len(shards) if isinstance(shards, list) else type(shards).__name__}")
    for s, entry in enumerate(shards):
        expected = _expected_entry(header, s)
        if not isinstance(entry, dict) or any(entry.get(k) != v for k, v in expected.items()) \
                or not isinstance(entry.get("sha256"), str):
            raise ValueError(f"{path}: shard entry {s} does not match the header (edited manifest?)")
    return m, header


class Dataset:
    """A read-only dataset: memory-mapped shards, each verified the first time it is opened."""

    def __init__(self, path: Path, manifest: dict[str, Any], header: DatasetHeader,
                 check_checksums: bool = True, max_open_shards: int = 16):
        self.path = path
        self.manifest = manifest
        self.header = header
        self.check_checksums = check_checksums
        self.max_open_shards = check_int("max_open_shards", max_open_shards, min_value=1)
        self._verified: set[int] = set()
        self._open: OrderedDict[int, dict[str, np.memmap]] = OrderedDict()

    @classmethod
    def open(cls, path: str | os.PathLike, check_checksums: bool = True,
             max_open_shards: int = 16) -> "Dataset":
        """Open the dataset at ``path``. ``check_checksums=False`` checks only shard sizes (for a
        dataset already verified with ``verify``); at most ``max_open_shards`` stay mapped."""
        path = Path(path)
        if not path.is_dir():
            raise ValueError(f"path {str(path)!r} is not a dataset directory")
        manifest, header = read_manifest(path)
        return cls(path, manifest, header, check_checksums, max_open_shards)

    def __len__(self) -> int:
        return self.header.n_sequences

    def __repr__(self) -> str:
        h = self.header
        return (f"Dataset({str(self.path)!r}, {h.n_sequences} sequences x {h.length} steps, "
                f"S={h.n_obs}, A={h.n_actions}, {h.n_shards} shards)")

    @property
    def n_shards(self) -> int:
        return self.header.n_shards

    def shard(self, i: int) -> dict[str, np.memmap]:
        """Read-only memory-mapped columns of shard ``i`` (no copy): ``(n, T)`` step fields,
        ``(n,)`` / ``(n, 32)`` sequence fields. Raises ValueError naming a damaged file."""
        i = check_int("shard", i, min_value=0, max_value=self.n_shards - 1)
        if i in self._open:
            self._open.move_to_end(i)
            return dict(self._open[i])
        entry = self.manifest["shards"][i]
        f = self.path / entry["file"]
        if i not in self._verified:
            self._check_shard(i)
        whole = np.memmap(f, dtype=np.uint8, mode="r", shape=(entry["bytes"],))
        cols = {name: whole[c["offset"]:c["offset"] + _nbytes(c)].view(np.dtype(c["dtype"])).reshape(c["shape"])
                for name, c in entry["columns"].items()}
        self._open[i] = cols
        while len(self._open) > self.max_open_shards:
            self._open.popitem(last=False)
        return dict(cols)

    def _check_shard(self, i: int) -> None:
        """Raise ValueError naming shard ``i``'s file unless it is there with the manifest's size (and,
        when ``check_checksums``, its sha256)."""
        entry = self.manifest["shards"][i]
        f = self.path / entry["file"]
        try:
            if self.check_checksums:
                problem = _file_problem(f, entry)
            elif not f.is_file():
                problem = "shard file is missing"
            elif f.stat().st_size != entry["bytes"]:
                problem = f"size {f.stat().st_size} != {entry['bytes']} in the manifest (truncated?)"
            else:
                problem = None
        except OSError as e:
            problem = f"unreadable ({e.strerror or e})"
        if problem is not None:
            raise ValueError(f"{f}: {problem}")
        self._verified.add(i)

    def check_files(self) -> None:
        """Check every shard now (size, and the checksum when ``check_checksums``), instead of when it
        is first read: a damaged shard is named before any work is done."""
        for i in range(self.n_shards):
            if i not in self._verified:
                self._check_shard(i)

    def locate(self, j: int) -> tuple[int, int]:
        """``(shard, row)`` of sequence ``j``."""
        j = check_int("sequence", j, min_value=0, max_value=len(self) - 1)
        return divmod(j, self.header.shard_size)

    def sequence(self, j: int) -> dict[str, Any]:
        """Sequence ``j``: ``(T,)`` views for the step fields, its ``task_index`` and
        ``sequence_index`` scalars and its ``(32,)`` ``task_hash``."""
        return self.window(j, 0, self.header.length)

    def window(self, j: int, start: int, length: int) -> dict[str, Any]:
        """Steps ``[start, start + length)`` of sequence ``j`` as read-only views (the step
        fields), with the sequence fields as in ``sequence``."""
        s, r = self.locate(j)
        T = self.header.length
        start = check_int("start", start, min_value=0, max_value=T - 1)
        length = check_int("length", length, min_value=1, max_value=T - start)
        cols = self.shard(s)
        out: dict[str, Any] = {name: cols[name][r, start:start + length] for name in STEP_FIELDS}
        out.update({name: cols[name][r] for name in SEQUENCE_FIELDS})
        return out


def verify(path: str | os.PathLike) -> dict[str, Any]:
    """Recompute every shard's size and checksum against the manifest, and check its values and the
    task set beside it.

    Returns ``{"path", "ok", "manifest_error", "n_sequences", "n_shards", "n_intact", "damaged":
    [{"index", "file", "reason"}], "missing": [{"index", "file"}], "tasks", "tasks_error"}``; a shard
    is intact when its size and checksum match and its ids fit the header's sizes; ``tasks`` is the
    task set checked beside the dataset (``DIR/tasks``, or None), ``tasks_error`` its problem. ``ok``
    is True only for an intact manifest, intact shards and an intact task set of the right hash.
    """
    path = Path(path)
    report: dict[str, Any] = {"path": str(path), "ok": False, "manifest_error": None, "n_sequences": 0,
                              "n_shards": 0, "n_intact": 0, "damaged": [], "missing": [], "tasks": None,
                              "tasks_error": None}
    try:
        manifest, header = read_manifest(path)
    except (OSError, ValueError) as e:
        report["manifest_error"] = str(e)
        return report
    report.update(n_sequences=header.n_sequences, n_shards=header.n_shards)
    for entry in manifest["shards"]:
        f = path / entry["file"]
        if not f.is_file():
            report["missing"].append({"index": entry["index"], "file": entry["file"]})
            continue
        try:
            problem = _file_problem(f, entry)
        except OSError as e:
            problem = f"unreadable: {e}"
        if problem is None:
            whole = np.memmap(f, dtype=np.uint8, mode="r", shape=(entry["bytes"],))
            problem = _value_problem(header, {
                name: whole[c["offset"]:c["offset"] + _nbytes(c)].view(np.dtype(c["dtype"])).reshape(c["shape"])
                for name, c in entry["columns"].items()})
            del whole
        if problem is None:
            report["n_intact"] += 1
        else:
            report["damaged"].append({"index": entry["index"], "file": entry["file"], "reason": problem})
    report["tasks"], report["tasks_error"] = _verify_tasks(path, header)
    report["ok"] = not report["damaged"] and not report["missing"] and report["tasks_error"] is None
    return report


def _verify_tasks(path: Path, header: DatasetHeader) -> tuple[str | None, str | None]:
    """``(task-set directory checked, its problem)`` for ``verify``: ``DIR/tasks`` (where ``python -m
    omnirl.data generate`` puts it) must load intact and have the header's task-set hash; ``(None,
    None)`` when there is none."""
    tasks = path / "tasks"
    if not tasks.exists():
        return None, None
    if header.task_set_hash is None:
        return str(tasks), "the dataset has fresh tasks, but holds a task set"
    from omnirl.tasks.taskset import TaskSet
    try:
        found = TaskSet.load(tasks).content_hash()
    except (OSError, ValueError) as e:
        return str(tasks), str(e)
    if found != header.task_set_hash:
        return str(tasks), f"content hash {found} is not the dataset's task set {header.task_set_hash}"
    return str(tasks), None


__all__ = ["ALIGN", "Dataset", "DatasetHeader", "DatasetWriter", "MANIFEST", "SCHEMA_VERSION",
           "ShardBuffer", "pending_bytes", "read_manifest", "shard_layout", "verify"]
