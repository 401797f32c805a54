"""W&B sweep files, expanded and run here without W&B's server (offline, one run after another).

    python -m omnirl.sweep sweeps/NAME.yaml --local [--seed S] [--max-runs N] [--out DIR] [--dry-run]
                                                    [--out-dir-arg=--logging.out_dir] [-- EXTRA ARGS]

A file in ``sweeps/`` is a plain W&B sweep configuration, so on a cluster

    wandb sweep sweeps/NAME.yaml          # registers it, prints ENTITY/PROJECT/ID
    wandb agent ENTITY/PROJECT/ID         # on every machine that should take runs

runs it unchanged. Its ``command`` starts the run with ``${args}``, so every hyperparameter reaches
the run on its command line (``--train.lr=0.001``), where every DDP rank sees it, never through
``wandb.config`` alone. W&B's controller lives on its server, so a sweep cannot run offline;
``--local`` expands the same file with W&B's own sweep engine (the ``sweeps`` package behind
``wandb[sweeps]``, pinned ``sweeps==0.2.0``: ``pip install -e '.[sweep]'``), seeded, and runs each
configuration as a subprocess with ``WANDB_MODE=offline``, building the command line exactly as
``wandb agent`` does (``command_line``). After every run it rewrites ``<out>/sweep_manifest.json``
(atomically): the sweep file and its sha256, seed and method, and per run its index, parameters,
argv, exit code, seconds, run directory and result metric. Rerunning the same command resumes:
runs that finished with exit code 0 with identical parameters are skipped.

Runs and their results. Run ``i`` gets the directory ``<out>/run-<i>`` and the environment
variables ``OMNIRL_SWEEP_RUN=<i>`` and ``OMNIRL_RUN_DIR=<out>/run-<i>`` (plus ``WANDB_DIR`` there,
unless set). The result is the sweep's ``metric.name`` read from ``<run dir>/summary.json`` (a flat
key ``"val/loss"`` or nested ``{"val": {"loss": ...}}``), else from the last line of
``<run dir>/history.jsonl`` that holds it (what ``omnirl.train`` writes). A program that takes its
output directory as an argument instead of reading ``OMNIRL_RUN_DIR`` gets it with
``--out-dir-arg=--logging.out_dir`` (appended last as ``--logging.out_dir=<out>/run-<i>``). This
option is not a key of the sweep file because W&B's sweep schema forbids unknown top-level keys
(``wandb sweep --controller`` refuses such a file; otherwise ``wandb sweep`` prints the schema
violations the server reports as "Malformed sweep config").

Methods. ``grid``: every combination, in the engine's order (``max_runs`` keeps the first ones).
``random``: ``max_runs`` configurations (required, or the file's ``run_cap``); configuration ``i``
is drawn with the seed ``(seed, i)``, so the same seed gives the same list and a longer sweep
extends a shorter one. ``bayes``: the engine proposes configuration ``i`` from the results of runs
``0..i-1``; with fewer than two results it proposes a uniformly random point of the search space,
so ``expand`` (which has no results) gives random-like configurations, and ``run_local`` feeds
each run's metric back (failed runs count as the worst result, W&B's default ``impute: worst``).
Values are plain Python (``int``, ``float``, ``str``, ``bool``, lists), never numpy scalars.

The command line (``command_line``) mirrors ``wandb agent`` (``wandb/wandb_agent.py`` and
``wandb/sdk/launch/sweeps/utils.py`` of wandb 0.31; the "Sweep configuration options" page of the
W&B docs): ``${env}`` is ``/usr/bin/env`` (nothing on Windows), ``${interpreter}`` is ``python``
(here: this interpreter), ``${program}`` the file's ``program``, ``${args}`` is ``--NAME=VALUE`` per
parameter with VALUE formatted by Python's ``str`` (``True``, ``None``, ``[1, 'a']``, ``1e-05``),
``${args_no_hyphens}`` is ``NAME=VALUE``, ``${args_no_equals}`` is ``--NAME VALUE``,
``${args_json}`` one JSON argument, ``${envvar:NAME}`` the value of the environment variable NAME
(NAME itself if unset). Parameters are flat dotted config names (``train.lr``): W&B passes a
nested ``parameters:`` section as one ``--model={'a': 1}`` argument, which would replace the whole
section, so ``load_sweep`` refuses nested sections.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import importlib
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import random
import re
import shlex
import subprocess
import sys
import time
import types
import typing
import warnings
from collections import abc
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import yaml

from omnirl._cli import Parser, run
from omnirl._validate import check_choice, check_int

MANIFEST = "sweep_manifest.json"
"""The manifest of a local sweep, in its output directory."""
SUMMARY_FILE = "summary.json"
"""What a run writes in its run directory: its results (the sweep's metric among them)."""
HISTORY_FILE = "history.jsonl"
"""The fallback source of the metric: one JSON object per line (``omnirl.train`` writes it)."""
METHODS = ("grid", "random", "bayes")
ARGS_MACROS = ("${args}", "${args_no_hyphens}", "${args_no_equals}")
"""The argument macros whose form ``omnirl.config.parse_overrides`` reads."""
MACROS = frozenset({"env", "interpreter", "program", "args", "args_no_equals", "args_no_hyphens",
                    "args_no_boolean_flags", "args_json", "args_json_file", "args_append_hydra",
                    "args_override_hydra"})
"""Whole-token macros of a W&B sweep command (``${args_dict}`` is left out: W&B splices a dict)."""
ENVVAR_MACRO = re.compile(r"\$\{envvar\:([A-Z0-9_]*)\}")
"""W&B's ``${envvar:NAME}`` (the same pattern as ``wandb.sdk.launch.sweeps.utils``)."""
GRID_LIMIT = 100_000
"""The most configurations a grid may have."""
INSTALL_HINT = "install W&B's sweep engine: pip install 'sweeps==0.2.0' (or pip install -e '.[sweep]')"


# --------------------------------------------------------------------------- the sweep engine

def _is_engine(module: Any) -> bool:
    return getattr(module, "__file__", None) is not None and hasattr(module, "next_runs")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The engine warns on import (pydantic v1-style config) and while fitting (sklearn): hush."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def engine() -> types.ModuleType:
    """W&B's sweep engine, the installed ``sweeps`` package, even when a directory named
    ``sweeps`` (this repository's sweep files, a namespace package) is on ``sys.path`` or was
    imported as ``sweeps`` first. ImportError with the install command when it is missing."""
    module = sys.modules.get("sweeps")
    if module is not None and _is_engine(module):
        return module
    if module is None:
        with _quiet():
            try:
                module = importlib.import_module("sweeps")
            except ImportError:
                module = None
        if module is not None and _is_engine(module):
            return module
    # a namespace package (a plain directory named sweeps) stands in for the engine: load the
    # installed distribution from its own location instead
    try:
        init = Path(str(importlib.metadata.distribution("sweeps").locate_file("sweeps/__init__.py")))
    except importlib.metadata.PackageNotFoundError:
        raise ImportError(f"W&B's sweep engine is not installed: {INSTALL_HINT}") from None
    if not init.is_file():
        raise ImportError(f"the installed sweeps distribution has no {init}: {INSTALL_HINT}")
    for name in [n for n in sys.modules if n == "sweeps" or n.startswith("sweeps.")]:
        del sys.modules[name]
    spec = importlib.util.spec_from_file_location("sweeps", init, submodule_search_locations=[str(init.parent)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["sweeps"] = module
    try:
        with _quiet():
            spec.loader.exec_module(module)
    except BaseException:
        del sys.modules["sweeps"]
        raise
    return module


# --------------------------------------------------------------------------- loading

def _fail(path: Any, key: str, message: str) -> ValueError:
    return ValueError(f"sweep file {path}: {key}: {message}")


def load_sweep(path: str | os.PathLike) -> dict[str, Any]:
    """The sweep configuration in the YAML file at ``path``, checked: W&B's own schema, ``method``
    one of grid/random/bayes, flat ``parameters``, a ``metric.name`` for bayes, and a ``command``
    list that runs ``${interpreter} ... -m MODULE`` with ``${args}`` (or ``${args_no_hyphens}`` or
    ``${args_no_equals}``) and only known macros. A ValueError names the file and the key."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"sweep file {str(p)!r} does not exist")
    try:
        sweep = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ValueError(f"sweep file {p}: not valid YAML: {e}") from None
    if not isinstance(sweep, dict):
        raise ValueError(f"sweep file {p} must hold a mapping at the top, got {type(sweep).__name__}")
    for key in ("method", "parameters", "command"):
        if key not in sweep:
            raise _fail(p, key, "missing (a W&B sweep file needs method, parameters and command)")
    try:
        check_choice("method", sweep["method"], METHODS)
    except ValueError as e:
        raise _fail(p, "method", str(e)) from None
    params = sweep["parameters"]
    if not isinstance(params, dict) or not params:
        raise _fail(p, "parameters", f"must be a non-empty mapping, got {params!r}")
    for name, spec in params.items():
        if not isinstance(name, str) or not name or any(not part for part in name.split(".")):
            raise _fail(p, "parameters", f"parameter name {name!r} must be a dotted config name")
        if not isinstance(spec, dict):
            raise _fail(p, f"parameters.{name}", f"must be a mapping (value:, values:, min:/max:, ...), got {spec!r}")
        if "parameters" in spec:
            raise _fail(p, f"parameters.{name}", "nested parameter sections are passed by W&B as one "
                        f"--{name}={{...}} argument that replaces the whole section; use flat dotted "
                        f"names ({name}.FIELD) instead")
    if sweep["method"] == "bayes" and not (isinstance(sweep.get("metric"), dict) and sweep["metric"].get("name")):
        raise _fail(p, "metric", "bayes search needs metric.name (and goal: minimize or maximize)")
    if "metric" in sweep and not (isinstance(sweep["metric"], dict) and isinstance(sweep["metric"].get("name"), str)):
        raise _fail(p, "metric", f"must be a mapping with a name, got {sweep['metric']!r}")
    if "run_cap" in sweep:
        try:
            check_int("run_cap", sweep["run_cap"], min_value=1)
        except ValueError as e:
            raise _fail(p, "run_cap", str(e)) from None
    _check_command(p, sweep)
    # W&B's own validation (the same the local controller of `wandb sweep --controller` runs);
    # run_cap is a documented W&B key that the schema of sweeps 0.2.0 predates
    with _quiet():
        violations = engine().schema_violations_from_proposed_config(
            {k: v for k, v in sweep.items() if k != "run_cap"})
    if violations:
        raise _fail(p, "schema", "; ".join(violations))
    return sweep


def _check_command(p: Path, sweep: Mapping[str, Any]) -> None:
    command = sweep["command"]
    if not isinstance(command, list) or not command:
        raise _fail(p, "command", f"must be a list of arguments, got {command!r}")
    tokens = []
    for token in command:
        if not isinstance(token, (str, int, float)) or isinstance(token, bool):
            raise _fail(p, "command", f"every item must be a string, got {token!r}")
        tokens.append(str(token))
    for token in tokens:
        if token.startswith("${") and token.endswith("}") and not ENVVAR_MACRO.fullmatch(token) \
                and token[2:-1] not in MACROS:
            raise _fail(p, "command", f"unknown macro {token} (W&B drops it silently); known: "
                        f"{', '.join('${' + m + '}' for m in sorted(MACROS))}, ${{envvar:NAME}}")
    if "${interpreter}" not in tokens:
        raise _fail(p, "command", "must run ${interpreter} (so `wandb agent` uses the python of its environment)")
    if "-m" not in tokens or tokens.index("-m") == len(tokens) - 1 or tokens[tokens.index("-m") + 1].startswith("$"):
        raise _fail(p, "command", "must run a module: ${interpreter} -m PACKAGE.MODULE")
    if not any(m in tokens for m in ARGS_MACROS):
        raise _fail(p, "command", "must pass the parameters on the command line with ${args} "
                    "(or ${args_no_hyphens}): every DDP rank reads them there")
    if "${program}" in tokens and not isinstance(sweep.get("program"), str):
        raise _fail(p, "program", "the command uses ${program} but the file has no program")


def sweep_sha256(path: str | os.PathLike) -> str:
    """The sha256 of the sweep file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --------------------------------------------------------------------------- expanding

def plain(value: Any) -> Any:
    """``value`` with numpy scalars and arrays as plain Python (lists for tuples and arrays)."""
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    return value


def _params(run: Any) -> dict[str, Any]:
    return {name: plain(entry["value"]) for name, entry in run.config.items()}


def _run_count(sweep: Mapping[str, Any], max_runs: int | None) -> int | None:
    if max_runs is not None:
        return check_int("max_runs", max_runs, min_value=1)
    if "run_cap" in sweep:
        return int(sweep["run_cap"])
    if sweep["method"] != "grid":
        raise ValueError(f"{sweep['method']} search never ends: give max_runs (--max-runs) or run_cap")
    return None


def _index_seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


@contextlib.contextmanager
def _seeded(seed: int, index: int) -> Iterator[None]:
    """The engine draws from ``random`` and ``np.random``'s global states: seed both with
    ``(seed, index)`` for the block, and put the caller's states back afterwards."""
    py_state, np_state = random.getstate(), np.random.get_state()
    s = _index_seed(seed, index)
    random.seed(s)
    np.random.seed(s)
    try:
        with _quiet():
            yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


def _engine_config(sweep: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in sweep.items() if k in ("method", "metric", "parameters")}


def _next_runs(sweep: Mapping[str, Any], runs: list, n: int) -> list:
    """``sweeps.next_runs`` on the sweep's method, metric and parameters (validated against W&B's
    schema), its errors as ValueError."""
    sw = engine()
    import jsonschema  # a dependency of the engine
    try:
        with _quiet():
            return sw.next_runs(_engine_config(sweep), runs, validate=True, n=n)
    except jsonschema.ValidationError as e:
        raise ValueError(f"W&B's sweep schema: {e.message}") from None


def _grid(sweep: Mapping[str, Any], n: int | None) -> list[dict[str, Any]]:
    limit = GRID_LIMIT if n is None else n
    runs = _next_runs(sweep, [], limit + (n is None))
    out = [_params(r) for r in runs if r is not None]
    if n is None and len(out) > GRID_LIMIT:
        raise ValueError(f"the grid has more than {GRID_LIMIT} configurations")
    return out[:limit]


def suggest(sweep: Mapping[str, Any], *, seed: int, index: int,
            history: Sequence[tuple[Mapping[str, Any], int | None, float | None]] = ()) -> dict[str, Any]:
    """Configuration ``index`` of a random or bayes sweep, drawn with the seed ``(seed, index)``.
    ``history`` (bayes only): the earlier runs as ``(params, exit code, metric value)``; exit code
    0 is a finished run (its metric fed to the engine as the run's summary), another a failed run,
    ``None`` a run still in flight."""
    check_choice("method", sweep["method"], ("random", "bayes"))
    sw = engine()
    runs = []
    for i, (params, exit_code, value) in enumerate(history):
        state = sw.RunState.pending if exit_code is None else \
            sw.RunState.finished if exit_code == 0 else sw.RunState.failed
        summary = {} if value is None else {sweep["metric"]["name"]: value}
        # by alias: under pydantic 2 the engine's field names do not populate (v1-style config)
        runs.append(sw.SweepRun(name=f"run-{i}", state=state, config={k: {"value": v} for k, v in params.items()},
                                summaryMetrics=summary, exitcode=exit_code))
    if sweep["method"] == "random":
        runs = []  # random search ignores the history
    with _seeded(seed, index):
        (run,) = _next_runs(sweep, runs, 1)
    return _params(run)


def expand(sweep: Mapping[str, Any], *, seed: int = 0, max_runs: int | None = None) -> list[dict[str, Any]]:
    """The configurations (``{parameter: value}``, plain Python values) a sweep runs, from W&B's
    engine: every grid combination (the first ``max_runs``), or ``max_runs`` (default: the file's
    ``run_cap``) random or bayes configurations drawn with ``seed``; bayes without results is
    random-like (see the module docstring)."""
    seed = check_int("seed", seed, min_value=0)
    n = _run_count(sweep, max_runs)
    if sweep["method"] == "grid":
        return _grid(sweep, n)
    return [suggest(sweep, seed=seed, index=i) for i in range(n)]


# --------------------------------------------------------------------------- command lines

def macro_values(params: Mapping[str, Any]) -> dict[str, list[str]]:
    """The argument macros of one configuration, formatted as ``wandb agent`` formats them
    (``create_sweep_command_args`` in ``wandb/sdk/launch/sweeps/utils.py``): ``f"{name}={value}"``,
    i.e. Python's ``str`` of the value."""
    out: dict[str, list[str]] = {k: [] for k in ("args", "args_no_equals", "args_no_hyphens",
                                                  "args_no_boolean_flags", "args_append_hydra",
                                                  "args_override_hydra")}
    for name, value in params.items():
        flag = f"{name}={value}"
        out["args"].append("--" + flag)
        out["args_no_hyphens"].append(flag)
        out["args_no_equals"] += [f"--{name}", str(value)]
        out["args_append_hydra"].append("+" + flag)
        out["args_override_hydra"].append("++" + flag)
        if isinstance(value, bool):
            if value:
                out["args_no_boolean_flags"].append("--" + name)
        else:
            out["args_no_boolean_flags"].append("--" + flag)
    out["args_json"] = [json.dumps(dict(params))]
    return out


def command_line(sweep: Mapping[str, Any], params: Mapping[str, Any], *, interpreter: str = sys.executable,
                 args_json_file: str | None = None, environ: Mapping[str, str] | None = None) -> list[str]:
    """The argv ``wandb agent`` would run for the configuration ``params`` (see the module
    docstring), with ``${interpreter}`` as ``interpreter`` (W&B: ``python``) and
    ``${envvar:NAME}`` read from ``environ`` (default ``os.environ``)."""
    environ = os.environ if environ is None else environ
    values = macro_values(params)
    values["interpreter"] = [interpreter]
    values["env"] = [] if platform.system() == "Windows" else ["/usr/bin/env"]
    argv: list[str] = []
    for token in sweep["command"]:
        token = ENVVAR_MACRO.sub(lambda m: environ.get(m.group(1), m.group(1)), str(token))
        if token.startswith("${") and token.endswith("}"):
            name = token[2:-1]
            if name == "program":
                if not isinstance(sweep.get("program"), str):
                    raise ValueError("the command uses ${program} but the sweep has no program")
                argv.append(sweep["program"])
            elif name == "args_json_file":
                if args_json_file is None:
                    raise ValueError("the command uses ${args_json_file}: give args_json_file")
                argv.append(args_json_file)
            elif name in values:
                argv += values[name]
            else:
                raise ValueError(f"unknown macro {token} in the sweep command")
        else:
            argv.append(token)
    return argv


# --------------------------------------------------------------------------- checking against a config

def _field_type(config_cls: type, name: str) -> tuple[type, str]:
    """The innermost dataclass on the dotted path ``name`` of ``config_cls`` and the rest of the
    path below it; a ValueError naming the parameter if ``name`` is not a field."""
    cls, parts = config_cls, name.split(".")
    for i, part in enumerate(parts):
        hints = typing.get_type_hints(cls)
        fields = [f.name for f in dataclasses.fields(cls) if f.init]
        if part not in fields:
            where = ".".join(parts[:i]) or config_cls.__name__
            raise ValueError(f"sweep parameter {name!r} is not a field of {config_cls.__name__}: "
                             f"{where} has no field {part!r} (its fields: {sorted(fields)})")
        tp = hints[part]
        options = typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
        inner = [o for o in options if dataclasses.is_dataclass(o)]
        if i == len(parts) - 1:
            return cls, ".".join(parts[i:])
        if inner:
            cls = inner[0]
            continue
        if any(o is Any or o in (dict, Mapping) or typing.get_origin(o) in (dict, abc.Mapping) for o in options):
            return cls, ".".join(parts[i:])  # keys inside a mapping field
        raise ValueError(f"sweep parameter {name!r} is not a field of {config_cls.__name__}: "
                         f"{'.'.join(parts[:i + 1])} is a value, not a section")
    raise AssertionError("unreachable")


def check_parameters(sweep: Mapping[str, Any], config_cls: type, *, prefixes: Sequence[str] | None = None,
                     configs: Sequence[Mapping[str, Any]] = ()) -> list[str]:
    """Check that every parameter of ``sweep`` (those whose first dotted part is in ``prefixes``,
    when given) is a real dotted field of the typed config dataclass ``config_cls``, and that
    every value in ``configs`` (as from ``expand``), read back the way the run reads it
    (``str`` on W&B's side, ``omnirl.config.parse_overrides`` on ours), is a valid value of that
    field (its section's own validation included). Returns the names checked; a ValueError names
    the first bad parameter."""
    from omnirl.config import config_from_dict, parse_overrides
    if not dataclasses.is_dataclass(config_cls):
        raise ValueError(f"config_cls must be a dataclass, got {config_cls!r}")
    names = [n for n in sweep["parameters"] if prefixes is None or n.split(".")[0] in prefixes]
    where = {name: _field_type(config_cls, name) for name in names}
    for i, params in enumerate(configs):
        for name in names:
            if name not in params:
                continue
            section, rest = where[name]
            (value,) = parse_overrides(macro_values({name: params[name]})["args"]).values()
            try:
                config_from_dict(section, {}, {rest: value})
            except ValueError as e:
                raise ValueError(f"sweep parameter {name!r}, configuration {i}: {params[name]!r} arrives "
                                 f"as --{name}={params[name]} and reads as {value!r}: {e}") from None
    return names


# --------------------------------------------------------------------------- results

_MISSING = object()


def _lookup(data: Any, name: str) -> Any:
    """``data[name]``, where ``name``'s ``/``-separated parts may also be levels of nesting."""
    if not isinstance(data, Mapping):
        return _MISSING
    if name in data:
        return data[name]
    parts = name.split("/")
    for i in range(1, len(parts)):
        head = "/".join(parts[:i])
        if isinstance(data.get(head), Mapping):
            found = _lookup(data[head], "/".join(parts[i:]))
            if found is not _MISSING:
                return found
    return _MISSING


def read_metric(run_dir: str | os.PathLike, name: str) -> tuple[float | None, str | None]:
    """The metric ``name`` of the run in ``run_dir`` and where it was found: ``summary.json``
    (flat ``"a/b"`` or nested keys), else the last line of ``history.jsonl`` holding it.
    ``(None, reason)`` when it is missing, not a number or not finite."""
    run_dir = Path(run_dir)
    summary = run_dir / SUMMARY_FILE
    value, source = _MISSING, None
    if summary.is_file():
        try:
            value, source = _lookup(json.loads(summary.read_text()), name), SUMMARY_FILE
        except ValueError as e:
            return None, f"{summary} is not valid JSON: {e}"
    if value is _MISSING and (run_dir / HISTORY_FILE).is_file():
        for line in (run_dir / HISTORY_FILE).read_text().splitlines():
            with contextlib.suppress(ValueError):
                found = _lookup(json.loads(line), name)
                if found is not _MISSING:
                    value, source = found, HISTORY_FILE
    if value is _MISSING:
        return None, f"no {name!r} in {SUMMARY_FILE} or {HISTORY_FILE} of {run_dir}"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None, f"{name!r} in {run_dir / source} is not a finite number: {value!r}"
    return float(value), source


# --------------------------------------------------------------------------- running

def _write(out_dir: Path, manifest: dict[str, Any]) -> None:
    from omnirl.fileio import atomic_write_json
    atomic_write_json(out_dir / MANIFEST, manifest)


def _previous(out_dir: Path) -> dict[int, dict[str, Any]]:
    path = out_dir / MANIFEST
    if not path.is_file():
        return {}
    from omnirl.fileio import read_json
    runs = read_json(path, "the manifest of a local sweep").get("runs", [])
    return {r["index"]: r for r in runs if isinstance(r, dict) and isinstance(r.get("index"), int)}


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def run_local(path: str | os.PathLike, *, seed: int = 0, max_runs: int | None = None,
              out_dir: str | os.PathLike, extra_args: Sequence[str] = (), dry_run: bool = False,
              out_dir_arg: str | None = None, cwd: str | os.PathLike | None = None,
              interpreter: str = sys.executable, quiet: bool = False) -> dict[str, Any]:
    """Run the sweep file at ``path`` here, one configuration after another, W&B offline (see the
    module docstring); returns the manifest (also written to ``<out_dir>/sweep_manifest.json``
    after every run). ``extra_args`` are appended to every command line (after the sweep's
    arguments, so with ``omnirl.config`` they win over them), then ``<out_dir_arg>=<run dir>`` when
    ``out_dir_arg`` is given (e.g. ``--logging.out_dir``). ``dry_run``: the planned runs (index,
    params, argv; for bayes the result-free proposals), nothing run or written. Subprocess output
    goes to ``<run dir>/sweep_run.log``; runs start in ``cwd`` (default: the current directory).
    Entries of an earlier manifest beyond this sweep's runs are kept as they were."""
    sweep = load_sweep(path)
    seed = check_int("seed", seed, min_value=0)
    n = _run_count(sweep, max_runs)
    out = Path(out_dir).absolute()  # runs may start in another directory (cwd)
    method = sweep["method"]
    metric = sweep.get("metric", {}).get("name")
    say = (lambda *a: None) if quiet else print
    try:
        plan = expand(sweep, seed=seed, max_runs=n) if method != "bayes" else None
    except ValueError as e:
        raise ValueError(f"sweep file {path}: {e}") from None
    total = len(plan) if plan is not None else n

    def argv_of(i: int, params: Mapping[str, Any]) -> tuple[list[str], Path]:
        run_dir = out / f"run-{i}"
        argv = command_line(sweep, params, interpreter=interpreter,
                            args_json_file=str(run_dir / "args.json")) + list(extra_args)
        if out_dir_arg:
            argv.append(f"{out_dir_arg}={run_dir}")
        return argv, run_dir

    if dry_run:
        runs = []
        for i, params in enumerate(plan if plan is not None else expand(sweep, seed=seed, max_runs=n)):
            argv, run_dir = argv_of(i, params)
            runs.append({"index": i, "params": params, "argv": argv, "run_dir": str(run_dir)})
        return {"sweep_file": str(path), "method": method, "seed": seed, "n_runs": len(runs), "runs": runs,
                "dry_run": True}

    previous = _previous(out)
    manifest: dict[str, Any] = {
        "sweep_file": str(path), "sweep_sha256": sweep_sha256(path), "method": method,
        "metric": sweep.get("metric"), "seed": seed, "n_runs": total, "extra_args": list(extra_args),
        "out_dir_arg": out_dir_arg, "runs": []}
    later = [previous[i] for i in sorted(previous) if i >= total]  # kept as they were
    history: list[tuple[dict, int | None, float | None]] = []
    for i in range(total):
        params = plan[i] if plan is not None else suggest(sweep, seed=seed, index=i, history=history)
        argv, run_dir = argv_of(i, params)
        before = previous.get(i)
        if before is not None and before.get("exit_code") == 0 and before.get("params") == params \
                and before.get("extra_args", []) == list(extra_args):
            say(f"[{i + 1}/{total}] done before (exit 0, {metric}={before.get('metric')}): skipped")
            manifest["runs"].append(before)
            history.append((params, 0, before.get("metric")))
            _write(out, {**manifest, "runs": manifest["runs"] + later})
            continue
        if before is not None and before.get("params") != params and run_dir.exists():
            # the directory holds another configuration's run: keep it, under another name
            k = 1
            while run_dir.with_name(f"{run_dir.name}.replaced-{k}").exists():
                k += 1
            run_dir.rename(run_dir.with_name(f"{run_dir.name}.replaced-{k}"))
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / SUMMARY_FILE).unlink(missing_ok=True)  # the result must come from this attempt
        if "${args_json_file}" in [str(t) for t in sweep["command"]]:
            (run_dir / "args.json").write_text(macro_values(params)["args_json"][0])
        entry = {"index": i, "params": params, "argv": argv, "extra_args": list(extra_args),
                 "run_dir": str(run_dir), "exit_code": None, "seconds": None, "metric": None,
                 "metric_source": None}
        manifest["runs"].append(entry)
        _write(out, {**manifest, "runs": manifest["runs"] + later})
        env = dict(os.environ, WANDB_MODE="offline", OMNIRL_SWEEP_RUN=str(i), OMNIRL_RUN_DIR=str(run_dir))
        env.setdefault("WANDB_DIR", str(run_dir))
        say(f"[{i + 1}/{total}] {shlex.join(argv)}")
        log = run_dir / "sweep_run.log"
        start = time.perf_counter()
        try:
            with open(log, "wb") as f:
                code = subprocess.run(argv, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT).returncode
        except OSError as e:  # the program could not start at all
            log.write_text(f"could not start {argv[0]!r}: {e}\n")
            code = 127
        entry["seconds"] = round(time.perf_counter() - start, 3)
        entry["exit_code"] = code
        if metric is not None:
            value, source = read_metric(run_dir, metric)
            entry["metric"] = value
            entry["metric_source"] = source
        history.append((params, code, entry["metric"]))
        _write(out, {**manifest, "runs": manifest["runs"] + later})
        result = f", {metric}={entry['metric']}" if metric is not None else ""
        say(f"[{i + 1}/{total}] exit {code} in {entry['seconds']:.1f}s{result} (log: {log})")
        if code != 0:
            say(_tail(log))
    manifest["runs"] += later
    _write(out, manifest)
    return manifest


# --------------------------------------------------------------------------- command line

def cmd_sweep(a: argparse.Namespace) -> int:
    sweep = load_sweep(a.sweep)
    if not a.local:
        print(f"{a.sweep} is a W&B sweep: W&B's controller runs on its server, so on a machine with W&B "
              f"credentials (wandb login):\n"
              f"    wandb sweep {a.sweep}          # prints the sweep's ENTITY/PROJECT/ID\n"
              f"    wandb agent ENTITY/PROJECT/ID  # on every machine that should take runs\n"
              f"To run it here, offline, one configuration after another:\n"
              f"    python -m omnirl.sweep {a.sweep} --local [--max-runs N] [--dry-run]", file=sys.stderr)
        return 2
    extra = list(a.extra)
    out = a.out or str(Path("runs") / "sweeps" / Path(a.sweep).stem)
    if a.dry_run:
        m = run_local(a.sweep, seed=a.seed, max_runs=a.max_runs, out_dir=out, extra_args=extra, dry_run=True,
                      out_dir_arg=a.out_dir_arg)
        for r in m["runs"]:
            print(f"[{r['index']}] {shlex.join(r['argv'])}")
        note = " (bayes: proposals without results; a real run feeds each result back)" \
            if sweep["method"] == "bayes" else ""
        print(f"{m['n_runs']} runs{note}")
        return 0
    m = run_local(a.sweep, seed=a.seed, max_runs=a.max_runs, out_dir=out, extra_args=extra,
                  out_dir_arg=a.out_dir_arg)
    failed = [r["index"] for r in m["runs"] if r.get("exit_code") != 0]
    print(f"{len(m['runs']) - len(failed)} of {len(m['runs'])} runs succeeded; manifest: {Path(out) / MANIFEST}")
    if failed:
        print(f"failed runs: {failed}")
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m omnirl.sweep", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sweep", help="a W&B sweep file (sweeps/NAME.yaml)")
    p.add_argument("--local", action="store_true", help="run it here, W&B offline, one run after another")
    p.add_argument("--seed", type=int, default=0, help="seed of the random and bayes proposals")
    p.add_argument("--max-runs", type=int, default=None,
                   help="configurations to run (required for random and bayes unless run_cap is set)")
    p.add_argument("--out", default=None, help="output directory (default runs/sweeps/NAME)")
    p.add_argument("--dry-run", action="store_true", help="print the command lines and the run count only")
    p.add_argument("--out-dir-arg", default=None,
                   help="pass each run its directory as OUT_DIR_ARG=DIR too (e.g. --logging.out_dir)")
    p.set_defaults(fn=cmd_sweep, extra=[])
    return p


def main(argv: list[str] | None = None) -> int:
    """The command line; arguments after ``--`` are appended to every run's command line."""
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        argv, extra = argv[:argv.index("--")], argv[argv.index("--") + 1:]
    parser = build_parser()
    parser.set_defaults(extra=extra)
    return run(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
