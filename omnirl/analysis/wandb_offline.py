"""Read an offline W&B run directory (``wandb/offline-run-*``) without W&B's servers.

A run's ``run-<id>.wandb`` file is a LevelDB-style record log: a 7-byte header (``:W&B``, a
magic number, a version byte), then 32 KiB blocks of chunks, each ``crc32c (4) | length (2, little
endian) | type (1: whole, 2: first, 3: middle, 4: last) | data``; the data of a whole record is a
``wandb.proto.wandb_internal_pb2.Record`` protobuf. ``read_offline_run`` turns the records into
plain Python: the config, the logged history rows, the summary and the declared metrics.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

BLOCK = 32768
CHUNK_HEADER = 7
FILE_HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def _records(data: bytes):
    """Payloads of the whole records in a ``.wandb`` file's bytes."""
    if data[:4] != b":W&B":
        raise ValueError("not a W&B transaction log (no ':W&B' header)")
    pos, pending = FILE_HEADER, b""
    while pos + CHUNK_HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < CHUNK_HEADER:  # block trailer: padding
            pos += left
            continue
        length, kind = struct.unpack_from("<HB", data, pos + 4)
        chunk = data[pos + CHUNK_HEADER:pos + CHUNK_HEADER + length]
        pos += CHUNK_HEADER + length
        if kind == FULL:
            yield chunk
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            yield pending + chunk
            pending = b""
        elif kind == 0 and length == 0:  # zero padding at the end of a block
            pos += BLOCK - pos % BLOCK if pos % BLOCK else 0
        else:
            raise ValueError(f"corrupt W&B log: chunk type {kind} at byte {pos}")


def _value(item) -> Any:
    return json.loads(item.value_json) if item.value_json else None


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)


def run_file(run_dir: str | Path) -> Path:
    """The ``run-*.wandb`` file of an offline run directory (or the file itself)."""
    p = Path(run_dir)
    if p.is_file():
        return p
    files = sorted(p.glob("run-*.wandb"))
    if not files:
        raise ValueError(f"run_dir={str(run_dir)!r} holds no run-*.wandb file (not an offline W&B run)")
    return files[0]


def read_offline_run(run_dir: str | Path) -> dict[str, Any]:
    """``{"config": dict, "history": [row dicts], "summary": dict, "metrics": {name or glob:
    step metric}, "files": [paths], "complete": bool}`` of an offline W&B run directory.

    ``complete`` says whether the log holds the run's exit record: W&B's service process writes the
    log, and may still be writing it for a moment after ``run.finish()`` returns."""
    from wandb.proto import wandb_internal_pb2 as pb

    out: dict[str, Any] = {"config": {}, "history": [], "summary": {}, "metrics": {}, "files": [],
                           "complete": False}
    for payload in _records(run_file(run_dir).read_bytes()):
        r = pb.Record()
        r.ParseFromString(payload)
        kind = r.WhichOneof("record_type")
        if kind == "config":
            for item in r.config.update:
                out["config"][_key(item)] = _value(item)
        elif kind == "run":
            for item in r.run.config.update:
                out["config"][_key(item)] = _value(item)
        elif kind == "history":
            out["history"].append({_key(i): _value(i) for i in r.history.item})
        elif kind == "summary":
            for item in r.summary.update:
                out["summary"][_key(item)] = _value(item)
        elif kind == "metric":
            out["metrics"][r.metric.name or r.metric.glob_name] = r.metric.step_metric
        elif kind == "files":
            out["files"].extend(f.path for f in r.files.files)
        elif kind == "exit":
            out["complete"] = True
    for cfg_key, v in list(out["config"].items()):  # W&B stores config values as {"value": x}
        if isinstance(v, dict) and set(v) <= {"value", "desc"} and "value" in v:
            out["config"][cfg_key] = v["value"]
    return out


__all__ = ["read_offline_run", "run_file"]
