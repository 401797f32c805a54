"""Typed configuration: dataclasses filled from YAML files and dotted command-line overrides.

    cfg = load_config(TrainConfig, "experiments/configs/tiny.yaml", ["--model.backbone=gdn",
                      "--train.segment_len=512"])

* A configuration is a (frozen) dataclass whose fields may be other dataclasses; every field has a
  default and a docstring, and the dataclass validates itself in ``__post_init__``.
* A YAML file sets only what differs from the defaults. Overrides ``--a.b.c=value`` (or
  ``a.b.c=value``, or ``--a.b.c value``) are applied on top: this is the form W&B sweep agents pass
  with ``${args}``. Values are parsed as YAML scalars (``3``, ``0.5``, ``true``, ``null``, ``[1, 2]``).
* An unknown key, a value of the wrong type or a malformed override is a ``ValueError`` that names
  the full dotted key.
* ``config_to_dict`` gives the resolved configuration (for logging and for writing it back).
"""

from __future__ import annotations

import dataclasses
import numbers
import re
from collections import abc
import types
import typing
from pathlib import Path
from typing import Any, Mapping, Sequence, TypeVar

import yaml

C = TypeVar("C")


_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")


def parse_value(text: str) -> Any:
    """A command-line value as YAML reads it, plus what W&B's ``${args}`` writes with Python's
    ``str()``: ``1e-05`` (YAML 1.1 wants a dot) is a float and ``None`` is null."""
    if text == "":
        return ""
    if text == "None":
        return None
    if _FLOAT.match(text):
        return float(text)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def parse_overrides(args: Sequence[str]) -> dict[str, Any]:
    """``["--a.b=1", "c=x", "--d", "2"]`` -> ``{"a.b": 1, "c": "x", "d": 2}`` (values as YAML scalars)."""
    out: dict[str, Any] = {}
    items = list(args)
    i = 0
    while i < len(items):
        item = items[i]
        key = item[2:] if item.startswith("--") else item
        if "=" in key:
            key, text = key.split("=", 1)
        elif item.startswith("--") and i + 1 < len(items) and not items[i + 1].startswith("--"):
            text = items[i + 1]
            i += 1
        else:
            raise ValueError(f"override {item!r} must be --key=value (or --key value)")
        if not key or any(not part for part in key.split(".")):
            raise ValueError(f"override {item!r} has an empty key part")
        out[key] = parse_value(text)
        i += 1
    return out


def _set_dotted(data: dict, key: str, value: Any) -> None:
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            raise ValueError(f"override {key!r}: {part!r} is a value, not a section")
        node = child
    node[parts[-1]] = value


def _check_type(key: str, value: Any, tp: Any) -> Any:
    """``value`` converted to the annotation ``tp`` where lossless, else a ValueError naming ``key``."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _check_type(key, value, option)
            except ValueError as e:
                errors.append(str(e))
        raise ValueError(f"{key} must be {_name(tp)}, got {value!r}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ValueError(f"{key} must be a section (mapping) for {tp.__name__}, got {value!r}")
        return _build(tp, value, key)
    if origin in (tuple, list, abc.Sequence) or tp in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{key} must be a list, got {value!r}")
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ValueError(f"{key} must have {len(args)} items, got {value!r}")
            return tuple(_check_type(f"{key}[{i}]", v, a) for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        conv = [_check_type(f"{key}[{i}]", v, item) for i, v in enumerate(value)]
        return tuple(conv) if origin is tuple or tp is tuple else conv
    if origin in (dict, abc.Mapping) or tp in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ValueError(f"{key} must be a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{key} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ValueError(f"{key} must be an integer, got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(f"{key} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"{key} must be a string, got {value!r}")
        return value
    raise ValueError(f"{key}: unsupported field type {_name(tp)}")


def _name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _build(cls: type[C], data: Mapping[str, Any], prefix: str = "") -> C:
    prepare = getattr(cls, "prepare_config", None)  # a class's own step from raw mapping to fields
    if prepare is not None and isinstance(data, Mapping):
        try:
            data = prepare(dict(data))
        except ValueError as e:
            raise ValueError(f"{prefix}: {e}" if prefix else str(e)) from None
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ValueError(f"unknown config key {where}{unknown[0]!r} (known in {cls.__name__}: "
                         f"{sorted(fields)})")
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        kwargs[name] = _check_type(key, value, hints[name])
    try:
        return cls(**kwargs)
    except ValueError as e:  # the dataclass's own validation: say which section
        raise ValueError(f"{prefix}: {e}" if prefix else str(e)) from None


def config_from_dict(cls: type[C], data: Mapping[str, Any] | None = None,
                     overrides: Sequence[str] | Mapping[str, Any] = ()) -> C:
    """Build ``cls`` from a nested mapping plus overrides (dotted keys)."""
    if not dataclasses.is_dataclass(cls):
        raise ValueError(f"cls must be a dataclass, got {cls!r}")
    merged: dict = _deep_copy(data or {})
    items = overrides.items() if isinstance(overrides, Mapping) else parse_overrides(overrides).items()
    for key, value in items:
        _set_dotted(merged, key, value)
    return _build(cls, merged)


def _deep_copy(data: Mapping) -> dict:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in data.items()}


def load_config(cls: type[C], path: str | Path | None = None, overrides: Sequence[str] = ()) -> C:
    """``cls`` from the YAML file at ``path`` (optional) and command-line ``overrides``."""
    data: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ValueError(f"config file {str(p)!r} does not exist")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ValueError(f"config file {p}: not valid YAML: {e}") from None
        if not isinstance(data, dict):
            raise ValueError(f"config file {p} must hold a mapping at the top, got {type(data).__name__}")
    return config_from_dict(cls, data, overrides)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """The resolved configuration as plain data (tuples become lists): for logging or YAML."""
    def plain(x):
        if dataclasses.is_dataclass(x):
            return {f.name: plain(getattr(x, f.name)) for f in dataclasses.fields(x)}
        if isinstance(x, Mapping):
            return {k: plain(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [plain(v) for v in x]
        return x
    return plain(cfg)
