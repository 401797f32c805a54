"""Typed configuration on jsonargparse: dataclasses filled from YAML files and dotted overrides.

    cfg = parse_config(TrainConfig, sys.argv[1:], prog="python -m omnirl.train")   # a command line
    cfg = load_config(TrainConfig, "experiments/configs/tiny.yaml", ["--model.backbone=gdn"])
    cfg = config_from_dict(TrainConfig, {"model": {"backbone": "gdn"}}, {"train.lr": 3e-4})

* A configuration is a (frozen) dataclass whose fields may be other dataclasses; every field has a
  default and a docstring (the attribute docstring under it), and the dataclass validates itself in
  ``__post_init__``. jsonargparse reads the fields, their types and their docstrings: ``--help``
  lists every field with its docstring, type and default.
* ``--config FILE`` reads a YAML file that sets only what differs from the defaults; dotted
  overrides (``--model.backbone=gdn`` or ``--model.backbone gdn``, the form W&B sweep agents pass
  with ``${args}``) are applied on top, in order. ``--print_config`` prints the resolved
  configuration as YAML and exits.
* An unknown key, a value of the wrong type or a value a dataclass refuses is a ``ValueError``
  of one line naming the dotted key (``parse_config`` turns it into ``error: ...``, exit 2).
* ``config_to_dict`` gives the resolved configuration as plain data (for logging and for writing
  it back; ``config_from_dict`` reads it again).
* The other command lines (``python -m omnirl.data``, ``omnirl.tasks``, ``omnirl.sweep``) are flat
  options, a dataclass per command or subcommand (``Command``, ``run_command``): argparse's option
  names (``--task-seed``, flags, positional and repeated options), the same ``--config FILE``,
  ``--print_config`` and ``--help``, and argument errors as one ``PROG: error: ...`` line.
* Values and files are read as YAML without YAML 1.1's base-60 numbers (``YamlLoader``): ``16:32``
  is a ``MIN:MAX`` range, not 992.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import inspect
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, TypeVar

import jsonargparse
import yaml

from omnirl._cli import fail
from omnirl.fileio import read_yaml_mapping
from omnirl.rundir import plain

C = TypeVar("C")

jsonargparse.set_parsing_settings(docstring_parse_attribute_docstrings=True)


class YamlLoader(yaml.SafeLoader):
    """YAML as PyYAML's safe loader reads it, but without YAML 1.1's base-60 numbers (``16:32`` is
    the text ``"16:32"``, a ``MIN:MAX`` range, as in YAML 1.2, not the number 992) and timestamps,
    and with ``1e-05`` a float (YAML 1.1 wants a dot; W&B's ``${args}`` writes it so): how
    configuration files and command-line values are read."""


def _without_base_60() -> None:
    int_tag, float_tag = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
    YamlLoader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag not in (int_tag, float_tag, "tag:yaml.org,2002:timestamp")]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    YamlLoader.add_implicit_resolver(int_tag, re.compile(
        r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"), list("-+0123456789"))
    YamlLoader.add_implicit_resolver(float_tag, re.compile(
        r"^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+"
        r"|[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"), list("-+0123456789."))


_without_base_60()


def yaml_load(text: str) -> Any:
    """``text`` read as YAML with ``YamlLoader``."""
    return yaml.load(text, Loader=YamlLoader)


def _jsonargparse_yaml_load(text: str) -> Any:
    """How jsonargparse reads a value or a file: ``yaml_load``, where (as with jsonargparse's own
    loader) text that reads as keys without values (``{unseen:/val}``, ``name:``) stays text."""
    value = yaml_load(text)
    if isinstance(value, dict) and value and all(v is None for v in value.values()):
        if len(value) == 1 and text.strip() == f"{next(iter(value))}:":
            return text
        if set(text.strip(" {}").replace(" ", "").split(",")) == set(value):
            return text
    return value


jsonargparse.set_loader("yaml", _jsonargparse_yaml_load, exceptions=(yaml.YAMLError,))


def parse_value(text: str) -> Any:
    """A command-line value as YAML reads it (``YamlLoader``), plus what W&B's ``${args}`` writes
    with Python's ``str()``: ``None`` is null."""
    if text == "":
        return ""
    if text == "None":
        return None
    try:
        return yaml_load(text)
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


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, jsonargparse.DefaultHelpFormatter):
    """jsonargparse's help (every option's docstring, then its type and default) under a description
    printed as written."""


class _Parser(jsonargparse.ArgumentParser):
    """jsonargparse's parser with one-line errors: a ``ValueError`` in the library calls (built with
    ``exit_on_error=False``), ``error: ...`` and exit 2 on the command line; with ``named_errors``
    (the command lines of ``command_parser``) ``PROG: error: ...``, argparse's form, where ``PROG``
    names the subcommand and an option is named as it is typed (``argument --task-seed: ...``)."""

    def __init__(self, *args: Any, named_errors: bool = False, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.named_errors = named_errors
        self.subcommand_parsers: dict[str, _Parser] = {}
        """The parser of each subcommand (``command_parser``)."""
        self.repeated: set[str] = set()
        """Options given once per item (``add_options``): ``--param a --param b`` is jsonargparse's
        ``--param+ a --param+ b``."""

    def repeat(self, argv: Sequence[str]) -> list[str]:
        """``argv`` with every repeated option (of the subcommand named first) in jsonargparse's
        appending form ``--param+``."""
        argv = list(argv)
        parser = self.subcommand_parsers.get(argv[0], self) if argv else self
        out = []
        for a in argv:
            flag, eq, value = a.partition("=")
            out.append(f"{flag}+{eq}{value}" if flag in parser.repeated else a)
        return out

    def error(self, message: str, ex: Exception | None = None):
        line = " ".join(str(message).split())
        if not self.exit_on_error:
            raise ValueError(line) from None
        if not self.named_errors:
            self.exit(2, f"error: {line}\n")
        parser = getattr(ex, "subcommand_parser", None) or self
        required = "the following arguments are required: "
        if line.startswith(required):  # checked last, by the top parser: keys like generate.out
            keys = line[len(required):].split(", ")
            heads = {k.split(".", 1)[0] for k in keys if "." in k}
            if len(heads) == 1 and len(keys) == sum("." in k for k in keys) and heads <= set(self.subcommand_parsers):
                parser = self.subcommand_parsers[heads.pop()]
                keys = [k.split(".", 1)[1] for k in keys]
            line = required + ", ".join(map(parser._option_name, keys))
        line = re.sub(r'^Parser key "([^"]+)":', lambda m: f"argument {parser._option_name(m[1])}:", line)
        self.exit(2, f"{parser.prog.replace(' [options]', '')}: error: {line}\n")

    def _option_name(self, key: str) -> str:
        """The option of ``key`` as it is typed (``--task-seed``, or ``path`` for a positional)."""
        for a in self._actions:
            if a.dest == key:
                return max(a.option_strings, key=len) if a.option_strings else key
        return key


CONFIG_HELP = "YAML file of the settings that differ from the defaults (then the other options)"


def config_parser(cls: type, prog: str | None = None, description: str | None = None,
                  exit_on_error: bool = True, defaults: Any = None) -> jsonargparse.ArgumentParser:
    """The command-line parser of dataclass ``cls``: ``--config FILE``, ``--print_config`` and one
    dotted option per field (``--section.field``), each with its docstring; ``defaults`` (an
    instance of ``cls``) replaces the dataclass defaults (an experiment's preset)."""
    if not dataclasses.is_dataclass(cls):
        raise ValueError(f"cls must be a dataclass, got {cls!r}")
    p = _Parser(prog=prog, description=description, exit_on_error=exit_on_error, formatter_class=_HelpFormatter)
    p.add_argument("--config", action=jsonargparse.ActionConfigFile, help=CONFIG_HELP)
    p.add_class_arguments(cls, nested_key=None, fail_untyped=True)
    if defaults is not None:
        p.set_defaults(_field_values(defaults))
    return p


def _field_values(cfg: Any, prefix: str = "") -> dict[str, Any]:
    """``{"section.field": value}`` of a dataclass instance, down to its non-dataclass fields."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if dataclasses.is_dataclass(v):
            out.update(_field_values(v, f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = plain(v)
    return out


def _normalise(argv: Sequence[str]) -> list[str]:
    """Overrides in every form W&B's macros write: ``key=value`` gets its ``--``; ``None`` (Python's
    ``str``) is YAML's ``null``."""
    out = []
    for a in argv:
        if not a.startswith("-") and "=" in a and not out[-1:] == ["--config"]:
            a = f"--{a}"
        if a.startswith("--") and a.endswith("=None"):
            a = a[:-len("None")] + "null"
        out.append(a)
    return out


def _check_config_files(argv: list[str]) -> list[str]:
    """``argv`` with every ``--config FILE`` checked as ``load_config`` checks it (the file named in
    the error); an empty file sets nothing and is dropped."""
    out, i = [], 0
    while i < len(argv):
        a = argv[i]
        if a == "--config" or a.startswith("--config="):
            path = a.split("=", 1)[1] if "=" in a else (argv[i + 1] if i + 1 < len(argv) else None)
            i += 1 if "=" in a else 2
            if path is None:
                raise ValueError("--config needs a file")
            if _read_config_file(path):  # an empty file sets nothing
                out += ["--config", path]
            continue
        out.append(a)
        i += 1
    return out


def _read_config_file(path: str | Path) -> dict:
    return read_yaml_mapping(path, "config file", loader=YamlLoader) or {}


def _is_tuple(tp: Any) -> bool:
    if typing.get_origin(tp) is tuple or tp is tuple:
        return True
    return any(_is_tuple(a) for a in typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType))


def build(cls: type[C], data: Mapping[str, Any], prefix: str = "") -> C:
    """``cls`` from parsed, type-checked ``data`` (sections first); a dataclass's own refusal is a
    ``ValueError`` naming its section. A class's ``prepare_config(data)`` (if it has one) sees the
    raw mapping first."""
    prepare = getattr(cls, "prepare_config", None)
    if prepare is not None:
        try:
            data = prepare(dict(data))
        except ValueError as e:
            raise ValueError(f"{prefix}: {e}" if prefix else str(e)) from None
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if not f.init or f.name not in data:
            continue
        value, tp = data[f.name], hints[f.name]
        key = f"{prefix}.{f.name}" if prefix else f.name
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, Mapping):
                value = plain(value)
            value = build(tp, value, key)
        elif isinstance(value, list) and _is_tuple(tp):  # defaults set from plain data arrive as lists
            value = tuple(value)
        kwargs[f.name] = value
    try:
        return cls(**kwargs)
    except ValueError as e:  # the dataclass's own validation: say which section
        raise ValueError(f"{prefix}: {e}" if prefix else str(e)) from None


def parse_config(cls: type[C], argv: Sequence[str] | None = None, prog: str | None = None,
                 description: str | None = None, defaults: Any = None) -> C:
    """``cls`` from a command line (``sys.argv[1:]`` when ``argv`` is None): ``--help`` and
    ``--print_config`` print and exit 0; a bad value prints ``error: ...`` (one line) and exits 2."""
    return parse_command_line(cls, argv, prog=prog, description=description, defaults=defaults)[0]


def parse_command_line(cls: type[C], argv: Sequence[str] | None = None, *, prog: str | None = None,
                       description: str | None = None, defaults: Any = None,
                       options: Any = None) -> tuple[C, dict[str, Any]]:
    """``parse_config`` with more options than the fields of ``cls``: ``options(parser)`` adds
    them; returns the configuration and those options' values by name."""
    p = config_parser(cls, prog=prog, description=description, defaults=defaults)
    if options is not None:
        options(p)
    argv = _normalise(sys.argv[1:] if argv is None else argv)
    try:
        argv = _check_config_files(argv)
    except ValueError as e:
        p.error(str(e))
    ns = p.parse_args(argv).as_dict()
    names = {f.name for f in dataclasses.fields(cls)}
    try:
        cfg = build(cls, {k: v for k, v in ns.items() if k in names})
    except ValueError as e:
        p.error(str(e))
    return cfg, {k: v for k, v in ns.items() if k not in names and k not in ("config", "__path__")}


# --------------------------------------------------------------------------- command lines of flat options
POSITIONAL = {"positional": True}
"""Metadata of a command's option given by position: ``path: str = dataclasses.field(metadata=POSITIONAL)``."""
COMMAND_CONFIG_HELP = ("YAML file of options by name, underscores for hyphens (an option --a-b X is a_b: X); "
                       "the options after it override it, --print_config prints them all")


@dataclasses.dataclass(frozen=True)
class Command:
    """One command line (or subcommand) of flat options: ``python -m omnirl.data generate ...``."""

    options: type
    """The dataclass of its options, a docstring under every field (see ``add_options``); its own
    docstring is the command's ``--help`` description, its first line the subcommand's summary."""
    run: Callable[[Any], int]
    """What runs the parsed options (an instance of ``options``); returns the exit code."""


def add_options(parser: jsonargparse.ArgumentParser, cls: type) -> None:
    """One option of ``parser`` per field of the flat dataclass ``cls``, named as argparse names
    them (``task_seed`` is ``--task-seed``; the key in a ``--config`` file is the field name), with
    the field's type (jsonargparse checks it), default (none: required) and docstring. A ``bool``
    field defaulting to False is a flag (``--quiet``); a ``tuple[T, ...]`` field is an option given
    once per item (``--param a=1 --param b=2``); a field with ``POSITIONAL`` metadata is positional;
    ``metavar`` metadata names the value in the usage; ``names`` metadata (a collection) lists the
    values the command knows in the help (checked where they are used, not while parsing)."""
    import docstring_parser

    if not dataclasses.is_dataclass(cls):
        raise ValueError(f"cls must be a dataclass, got {cls!r}")
    docs = {d.arg_name: " ".join((d.description or "").split()) for d in docstring_parser.parse_from_object(cls).params}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp, doc, meta = hints[f.name], docs.get(f.name) or None, dict(f.metadata)
        if "names" in meta:
            doc = f"{doc or ''} One of: {', '.join(sorted(meta['names']))}.".strip()
        default = f.default if f.default is not dataclasses.MISSING else \
            f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING
        kwargs: dict[str, Any] = {"help": doc, **({"metavar": meta["metavar"]} if "metavar" in meta else {})}
        kwargs.update({"required": True} if default is dataclasses.MISSING else {"default": plain(default)})
        if meta.get("positional"):
            if default is not dataclasses.MISSING:
                raise ValueError(f"{cls.__name__}.{f.name}: a positional option has no default")
            parser.add_argument(f.name, type=tp, help=doc)
            continue
        flag = "--" + f.name.replace("_", "-")
        if tp is bool and default is False:
            parser.add_argument(flag, action="store_true", help=doc)
        elif typing.get_origin(tp) is tuple and typing.get_args(tp)[1:] == (...,):
            parser.add_argument(flag, type=list[typing.get_args(tp)[0]], **kwargs)  # --flag+ appends
            if isinstance(parser, _Parser):
                parser.repeated.add(flag)
        else:
            parser.add_argument(flag, type=tp, **kwargs)


def command_parser(prog: str, description: str | None, command: Command | Mapping[str, Command]) -> _Parser:
    """The parser of a command line of flat options (``add_options``) with ``--config FILE`` and
    ``--print_config``, or of one subcommand per item of a mapping (``python -m omnirl.data generate
    ...``), each with its options, ``--config`` and ``--print_config``. Argument errors are one
    ``PROG: error: ...`` line, exit 2 (``PROG`` with the subcommand)."""
    def options_parser(cmd: Command, **kwargs: Any) -> _Parser:
        p = _Parser(named_errors=True, formatter_class=_HelpFormatter, **kwargs)
        p.add_argument("--config", action=jsonargparse.ActionConfigFile, help=COMMAND_CONFIG_HELP)
        add_options(p, cmd.options)
        return p

    if isinstance(command, Command):
        return options_parser(command, prog=prog, description=description)
    root = _Parser(prog=prog, description=description, named_errors=True, formatter_class=_HelpFormatter)
    sub = root.add_subcommands(dest="command", required=True)
    for name, cmd in command.items():
        doc = inspect.cleandoc(cmd.options.__doc__ or "")
        root.subcommand_parsers[name] = sub.add_subcommand(name, options_parser(cmd, description=doc or None),
                                                           help=doc.split("\n")[0] or None)
    return root


def output_problem(options: Any) -> str | None:
    """Why the output directory ``out`` of ``options`` cannot be written (it is an existing file), or None."""
    value = getattr(options, "out", None)
    if value is not None and Path(value).exists() and not Path(value).is_dir():
        return f"--out {str(value)!r} is an existing file, not a directory"
    return None


def run_command(prog: str, description: str | None, command: Command | Mapping[str, Command],
                argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (``sys.argv[1:]`` when None) with ``command_parser`` and run the command (or the
    subcommand named first) on its options; its exit code. ``--help`` and ``--print_config`` print
    and exit 0 (``SystemExit``), an argument error exits 2 after one ``PROG: error: ...`` line. Then,
    before anything runs, an output directory ``--out`` that is an existing file is refused; from
    there on a bad value is one ``error: ...`` line and exit code 2, and other expected failures
    (an ``OSError``, a missing optional package, Ctrl-C) are ``omnirl._cli.fail``'s line and code."""
    parser = command_parser(prog, description, command)
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        argv = _check_config_files(argv)
    except ValueError as e:
        parser.subcommand_parsers.get(argv[0] if argv else "", parser).error(str(e))
    ns = parser.parse_args(parser.repeat(argv))
    chosen, values = (command[ns.command], ns[ns.command]) if isinstance(command, Mapping) else (command, ns)
    names = {f.name for f in dataclasses.fields(chosen.options)}
    try:
        options = build(chosen.options, {k: v for k, v in values.as_dict().items() if k in names})
        problem = output_problem(options)
        if problem is not None:
            raise ValueError(problem)
        return chosen.run(options)
    except (KeyboardInterrupt, ValueError, OSError, ImportError) as e:
        return fail(e)


def config_from_dict(cls: type[C], data: Mapping[str, Any] | None = None,
                     overrides: Sequence[str] | Mapping[str, Any] = ()) -> C:
    """``cls`` from a nested mapping (what ``config_to_dict`` gives) plus overrides: dotted
    command-line items, or a mapping of dotted keys to values. ``ValueError`` naming the key."""
    merged = _deep_copy(plain(data or {}))
    items = overrides.items() if isinstance(overrides, Mapping) else parse_overrides(overrides).items()
    for key, value in items:
        _set_dotted(merged, key, plain(value))
    _check_sections(cls, merged)
    ns = _library_parser(cls).parse_object(merged)
    data = {k: v for k, v in ns.as_dict().items() if k not in ("config", "__path__")}
    return build(cls, data)


def _check_sections(cls: type, data: Mapping[str, Any], prefix: str = "") -> None:
    """A ``ValueError`` naming the key where ``data`` gives a value for a section (a dataclass field)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp, key = hints[f.name], f"{prefix}{f.name}"
        if f.name in data and dataclasses.is_dataclass(tp):
            if not isinstance(data[f.name], Mapping):
                raise ValueError(f"{key} must be a section (mapping) for {tp.__name__}, got {data[f.name]!r}")
            _check_sections(tp, data[f.name], f"{key}.")


@functools.lru_cache(maxsize=None)
def _library_parser(cls: type) -> jsonargparse.ArgumentParser:
    return config_parser(cls, exit_on_error=False)


def _deep_copy(data: Mapping) -> dict:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in data.items()}


def _set_dotted(data: dict, key: str, value: Any) -> None:
    if not key or any(not part for part in key.split(".")):
        raise ValueError(f"override {key!r} has an empty key part")
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


def load_config(cls: type[C], path: str | Path | None = None, overrides: Sequence[str] = ()) -> C:
    """``cls`` from the YAML file at ``path`` (optional) and command-line ``overrides``."""
    data = _read_config_file(path) if path is not None else {}
    return config_from_dict(cls, data, overrides)


def _flat_settings(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in data.items():
        if isinstance(v, Mapping) and k != "validation":  # validation sets by name: one setting
            out.update(_flat_settings(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def changed_settings(new: Mapping[str, Any], old: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(dotted key, new value, old value)`` of every setting in which two configurations (nested
    mappings, ``config_to_dict``'s form) differ, sorted by key; a missing setting reads ``None``."""
    a, b = _flat_settings(new), _flat_settings(old)
    return [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """The resolved configuration as plain data (tuples become lists): for logging or YAML."""
    return plain(cfg)
