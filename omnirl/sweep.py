"""W&B sweep files (``sweeps/*.yaml``) run here, offline, one configuration after another.

    python -m omnirl.sweep sweeps/NAME.yaml --local [--seed S] [--max-runs N] [--out DIR] [--dry-run]
                                                    [--out-dir-arg=--logging.out_dir] [-- EXTRA ARGS]
    python -m omnirl.sweep --config OPTIONS.yaml [--print_config]     # these options from YAML by name

The same file runs on a cluster unchanged (``wandb sweep FILE``, then ``wandb agent
ENTITY/PROJECT/ID`` on every machine). W&B's controller lives on its server, so ``--local``
expands the file with W&B's own sweep engine (the ``sweeps`` package, pinned ``sweeps==0.2.0``:
``pip install -e '.[sweep]'``), seeded, and runs each configuration as a subprocess with
``WANDB_MODE=offline`` and the command line ``wandb agent`` builds (W&B's ``create_sweep_command``
and ``create_sweep_command_args``; ``${interpreter}`` is this interpreter, W&B's is ``python``).
Every hyperparameter reaches the run on its command line (``${args}``: ``--train.lr=0.001``, the
value as Python's ``str``), where every DDP rank sees it.

Run ``i`` gets ``OMNIRL_SWEEP_RUN=<i>`` and ``OMNIRL_RUN_DIR=<out>/run-<i>`` in its environment
(and ``WANDB_DIR`` there, unless set); ``--out-dir-arg=--logging.out_dir`` also appends
``--logging.out_dir=<out>/run-<i>`` (not a key of the sweep file: W&B's schema forbids unknown
keys), and arguments after ``--`` are appended to every command line. Its result is the sweep's
``metric.name`` from ``<run dir>/summary.json`` (flat ``"val/loss"`` or nested keys), else from
the last line of ``<run dir>/history.jsonl`` holding it. After every run ``<out>/sweep_manifest.json``
is rewritten atomically (the file and its sha256, seed, method, and per run its index, parameters,
argv, exit code, seconds, run directory and metric); rerunning resumes, skipping runs that exited 0
with the same parameters.

``grid``: every combination, in the engine's order. ``random``: ``max_runs`` (or ``run_cap``)
configurations, configuration ``i`` drawn with the seed ``(seed, i)``. ``bayes``: configuration
``i`` is proposed from the results of runs ``0..i-1`` (a uniformly random point with fewer than
two, so a dry run shows random-like proposals; a failed run counts as the worst result, W&B's
``impute: worst``). Values are plain Python, never numpy scalars. Parameters are flat dotted config
names (``train.lr``): W&B passes a nested section as one ``--model={...}`` argument, which would
replace the whole section.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib
import importlib.util
import json
import math
import os
import platform
import random
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
from wandb.sdk.launch.sweeps.utils import (SWEEP_COMMAND_ENV_VAR_REGEX, create_sweep_command,
                                           create_sweep_command_args)

from omnirl._validate import check_choice, check_int
from omnirl.config import POSITIONAL, Command, run_command
from omnirl.fileio import atomic_write_json, read_json, read_yaml_mapping
from omnirl.rundir import HISTORY_FILE, SUMMARY_FILE

MANIFEST = "sweep_manifest.json"
"""The manifest of a local sweep, in its output directory."""
METHODS = ("grid", "random", "bayes")
ARGS_MACROS = ("${args}", "${args_no_hyphens}", "${args_no_equals}")
"""The argument macros whose form ``omnirl.config.parse_overrides`` reads."""
GRID_LIMIT = 100_000
"""The most configurations a grid may have."""
INSTALL_HINT = "pip install 'sweeps==0.2.0' (or pip install -e '.[sweep]')"


# --------------------------------------------------------------------------- W&B's code

@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The engine warns on import (pydantic v1-style config) and while fitting (sklearn): hush."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def engine() -> types.ModuleType:
    """W&B's sweep engine, the installed ``sweeps`` package. Python takes a regular package (one
    with ``__init__.py``) before any namespace portion of the same name wherever they sit on
    ``sys.path``, so this repository's ``sweeps/`` folder (sweep files only, no ``__init__.py``)
    can be found as ``sweeps`` only when the engine is missing: that is an ImportError with the
    install command, never the folder."""
    spec = importlib.util.find_spec("sweeps")
    if spec is None or spec.origin is None:
        found = "" if spec is None else f" (only folders named sweeps: {sorted(set(spec.submodule_search_locations))})"
        raise ImportError(f"W&B's sweep engine is not installed{found}: {INSTALL_HINT}")
    with _quiet():
        return importlib.import_module("sweeps")


def macro_values(params: Mapping[str, Any]) -> dict[str, Any]:
    """The argument macros (``args``, ``args_no_hyphens``, ..., ``args_json``) of one configuration:
    W&B's ``create_sweep_command_args``, what ``wandb agent`` substitutes."""
    return create_sweep_command_args({"args": {k: {"value": v} for k, v in params.items()}})


def _known_macros() -> set[str]:
    """The whole-token macros of a sweep command (``${args_dict}`` left out: W&B splices a dict)."""
    return set(macro_values({})) - {"args_dict"} | {"env", "interpreter", "program", "args_json_file"}


def command_line(sweep: Mapping[str, Any], params: Mapping[str, Any], *, interpreter: str = sys.executable,
                 args_json_file: str | None = None) -> list[str]:
    """The argv ``wandb agent`` runs for the configuration ``params`` (its ``_command_run``):
    ``${envvar:NAME}`` from the environment by W&B's ``create_sweep_command`` (NAME itself if
    unset), each whole-token macro replaced by its values; ``${env}`` is ``/usr/bin/env`` (nothing
    on Windows), ``${interpreter}`` is ``interpreter``, ``${program}`` the sweep's ``program``."""
    values = macro_values(params)
    values["interpreter"] = [interpreter]
    values["env"] = [] if platform.system() == "Windows" else ["/usr/bin/env"]
    if isinstance(sweep.get("program"), str):
        values["program"] = [sweep["program"]]
    if args_json_file is not None:
        values["args_json_file"] = [args_json_file]
    argv: list[str] = []
    for token in map(str, create_sweep_command(list(sweep["command"]))):
        if not (token.startswith("${") and token.endswith("}")):
            argv.append(token)
        elif token[2:-1] in values and token != "${args_dict}":
            argv += values[token[2:-1]]
        else:
            raise ValueError(f"the sweep command's {token} has no value (a ${{program}} needs the sweep's "
                             f"program, ${{args_json_file}} a file name; other macros are not W&B's)")
    return argv


# --------------------------------------------------------------------------- loading

def _fail(path: Any, key: str, message: str) -> ValueError:
    return ValueError(f"sweep file {path}: {key}: {message}")


def load_sweep(path: str | os.PathLike) -> dict[str, Any]:
    """The sweep configuration in the YAML file at ``path``, checked: ``method`` one of
    grid/random/bayes, flat ``parameters``, a ``metric.name`` for bayes, a ``command`` list that
    runs ``${interpreter} ... -m MODULE`` with ``${args}`` (or ``${args_no_hyphens}`` or
    ``${args_no_equals}``) and only W&B's macros, then W&B's own schema. A ValueError names the
    file and the key."""
    p = Path(path)
    sweep = read_yaml_mapping(p, "sweep file")
    if sweep is None:
        raise ValueError(f"sweep file {p} must hold a mapping at the top, got an empty file")
    for key in ("method", "parameters", "command"):
        if key not in sweep:
            raise _fail(p, key, "missing (a W&B sweep file needs method, parameters and command)")
    if sweep["method"] not in METHODS:
        raise _fail(p, "method", f"must be one of {list(METHODS)}, got {sweep['method']!r}")
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
    metric = sweep.get("metric")
    if sweep["method"] == "bayes" and not (isinstance(metric, dict) and metric.get("name")):
        raise _fail(p, "metric", "bayes search needs metric.name (and goal: minimize or maximize)")
    if "metric" in sweep and not (isinstance(metric, dict) and isinstance(metric.get("name"), str)):
        raise _fail(p, "metric", f"must be a mapping with a name, got {metric!r}")
    if "run_cap" in sweep:
        try:
            check_int("run_cap", sweep["run_cap"], min_value=1)
        except ValueError as e:
            raise _fail(p, "run_cap", str(e)) from None
    _check_command(p, sweep)
    # W&B's own validation (what the local controller of `wandb sweep --controller` runs); run_cap
    # is a documented W&B key that the schema of sweeps 0.2.0 predates
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
    if any(not isinstance(t, (str, int, float)) or isinstance(t, bool) for t in command):
        raise _fail(p, "command", f"every item must be a string, got {command!r}")
    tokens, known = [str(t) for t in command], _known_macros()
    for token in tokens:
        if token.startswith("${") and token.endswith("}") and token[2:-1] not in known \
                and not SWEEP_COMMAND_ENV_VAR_REGEX.fullmatch(token):
            raise _fail(p, "command", f"unknown macro {token} (W&B drops it silently); known: "
                        f"{', '.join('${' + m + '}' for m in sorted(known))}, ${{envvar:NAME}}")
    if "${interpreter}" not in tokens:
        raise _fail(p, "command", "must run ${interpreter} (so `wandb agent` uses the python of its environment)")
    if "-m" not in tokens or tokens.index("-m") == len(tokens) - 1 or tokens[tokens.index("-m") + 1].startswith("$"):
        raise _fail(p, "command", "must run a module: ${interpreter} -m PACKAGE.MODULE")
    if not any(m in tokens for m in ARGS_MACROS):
        raise _fail(p, "command", "must pass the parameters on the command line with ${args} "
                    "(or ${args_no_hyphens}): every DDP rank reads them there")
    if "${program}" in tokens and not isinstance(sweep.get("program"), str):
        raise _fail(p, "program", "the command uses ${program} but the file has no program")


# --------------------------------------------------------------------------- expanding

def _params(run: Any) -> dict[str, Any]:
    """A run's configuration as plain Python (numpy scalars and arrays as numbers and lists)."""
    return json.loads(json.dumps({name: entry["value"] for name, entry in run.config.items()},
                                 default=lambda v: v.tolist()))


def _run_count(sweep: Mapping[str, Any], max_runs: int | None) -> int | None:
    if max_runs is not None:
        return check_int("max_runs", max_runs, min_value=1)
    if "run_cap" in sweep:
        return int(sweep["run_cap"])
    if sweep["method"] != "grid":
        raise ValueError(f"{sweep['method']} search never ends: give max_runs (--max-runs) or run_cap")
    return None


@contextlib.contextmanager
def _seeded(seed: int, index: int) -> Iterator[None]:
    """The engine draws from ``random`` and ``np.random``'s global states: seed both with
    ``(seed, index)`` for the block, and put the caller's states back afterwards."""
    py_state, np_state = random.getstate(), np.random.get_state()
    s = int(np.random.SeedSequence([seed, index]).generate_state(1)[0])
    random.seed(s)
    np.random.seed(s)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


def _next_runs(sweep: Mapping[str, Any], runs: list, n: int) -> list:
    """W&B's ``sweeps.next_runs`` on the sweep's method, metric and parameters (validated against
    W&B's schema), its schema errors as ValueError."""
    sw = engine()
    import jsonschema  # a dependency of the engine
    try:
        with _quiet():
            return sw.next_runs({k: v for k, v in sweep.items() if k in ("method", "metric", "parameters")},
                                runs, validate=True, n=n)
    except jsonschema.ValidationError as e:
        raise ValueError(f"W&B's sweep schema: {e.message}") from None


def suggest(sweep: Mapping[str, Any], *, seed: int, index: int,
            history: Sequence[tuple[Mapping[str, Any], int | None, float | None]] = ()) -> dict[str, Any]:
    """Configuration ``index`` of a random or bayes sweep, drawn with the seed ``(seed, index)``.
    ``history`` (bayes only): the earlier runs as ``(params, exit code, metric value)``; exit code
    0 is a finished run (its metric fed to the engine as the run's summary), another a failed run,
    ``None`` a run still in flight."""
    check_choice("method", sweep["method"], ("random", "bayes"))
    sw = engine()
    runs = [] if sweep["method"] == "random" else [  # random search ignores the history
        # by alias: under pydantic 2 the engine's field names do not populate (v1-style config)
        sw.SweepRun(name=f"run-{i}", config={k: {"value": v} for k, v in params.items()}, exitcode=code,
                    state=sw.RunState.pending if code is None else
                    sw.RunState.finished if code == 0 else sw.RunState.failed,
                    summaryMetrics={} if value is None else {sweep["metric"]["name"]: value})
        for i, (params, code, value) in enumerate(history)]
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
    if sweep["method"] != "grid":
        return [suggest(sweep, seed=seed, index=i) for i in range(n)]
    limit = GRID_LIMIT if n is None else n
    out = [_params(r) for r in _next_runs(sweep, [], limit + (n is None)) if r is not None]
    if n is None and len(out) > GRID_LIMIT:
        raise ValueError(f"the grid has more than {GRID_LIMIT} configurations")
    return out


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

def _previous(out_dir: Path) -> dict[int, dict[str, Any]]:
    path = out_dir / MANIFEST
    runs = read_json(path, "the manifest of a local sweep").get("runs", []) if path.is_file() else []
    return {r["index"]: r for r in runs if isinstance(r, dict) and isinstance(r.get("index"), int)}


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
    metric = sweep.get("metric", {}).get("name")
    say = (lambda *a: None) if quiet else print
    try:  # bayes proposes each run from the results before it (a dry run has none)
        plan = expand(sweep, seed=seed, max_runs=n) if sweep["method"] != "bayes" or dry_run else None
    except ValueError as e:
        raise ValueError(f"sweep file {path}: {e}") from None
    total = len(plan) if plan is not None else n

    def argv_of(i: int, params: Mapping[str, Any]) -> list[str]:
        run_dir = out / f"run-{i}"
        argv = command_line(sweep, params, interpreter=interpreter, args_json_file=str(run_dir / "args.json"))
        return argv + list(extra_args) + ([f"{out_dir_arg}={run_dir}"] if out_dir_arg else [])

    if dry_run:
        runs = [{"index": i, "params": p, "argv": argv_of(i, p), "run_dir": str(out / f"run-{i}")}
                for i, p in enumerate(plan)]
        return {"sweep_file": str(path), "method": sweep["method"], "seed": seed, "n_runs": len(runs),
                "runs": runs, "dry_run": True}

    previous = _previous(out)
    manifest: dict[str, Any] = {
        "sweep_file": str(path), "sweep_sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest(),
        "method": sweep["method"], "metric": sweep.get("metric"), "seed": seed, "n_runs": total,
        "extra_args": list(extra_args), "out_dir_arg": out_dir_arg, "runs": []}
    later = [previous[i] for i in sorted(previous) if i >= total]  # kept as they were

    def save() -> None:
        atomic_write_json(out / MANIFEST, {**manifest, "runs": manifest["runs"] + later})

    history: list[tuple[dict, int | None, float | None]] = []
    for i in range(total):
        params = plan[i] if plan is not None else suggest(sweep, seed=seed, index=i, history=history)
        argv, run_dir, before = argv_of(i, params), out / f"run-{i}", previous.get(i, {})
        if before.get("exit_code") == 0 and before.get("params") == params \
                and before.get("extra_args", []) == list(extra_args):
            say(f"[{i + 1}/{total}] done before (exit 0, {metric}={before.get('metric')}): skipped")
            manifest["runs"].append(before)
            history.append((params, 0, before.get("metric")))
            save()
            continue
        if before and before.get("params") != params and run_dir.exists():
            # the directory holds another configuration's run: keep it, under another name
            k = 1
            while run_dir.with_name(f"{run_dir.name}.replaced-{k}").exists():
                k += 1
            run_dir.rename(run_dir.with_name(f"{run_dir.name}.replaced-{k}"))
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / SUMMARY_FILE).unlink(missing_ok=True)  # the result must come from this attempt
        if "${args_json_file}" in map(str, sweep["command"]):
            (run_dir / "args.json").write_text(macro_values(params)["args_json"][0])
        entry = {"index": i, "params": params, "argv": argv, "extra_args": list(extra_args),
                 "run_dir": str(run_dir), "exit_code": None, "seconds": None, "metric": None,
                 "metric_source": None}
        manifest["runs"].append(entry)
        save()
        env = dict(os.environ, WANDB_MODE="offline", OMNIRL_SWEEP_RUN=str(i), OMNIRL_RUN_DIR=str(run_dir))
        env.setdefault("WANDB_DIR", str(run_dir))
        say(f"[{i + 1}/{total}] {shlex.join(argv)}")
        log, start = run_dir / "sweep_run.log", time.perf_counter()
        try:
            with open(log, "wb") as f:
                code = subprocess.run(argv, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT).returncode
        except OSError as e:  # the program could not start at all
            log.write_text(f"could not start {argv[0]!r}: {e}\n")
            code = 127
        entry.update(exit_code=code, seconds=round(time.perf_counter() - start, 3))
        if metric is not None:
            entry["metric"], entry["metric_source"] = read_metric(run_dir, metric)
        history.append((params, code, entry["metric"]))
        save()
        result = f", {metric}={entry['metric']}" if metric is not None else ""
        say(f"[{i + 1}/{total}] exit {code} in {entry['seconds']:.1f}s{result} (log: {log})")
        if code != 0:
            say("\n".join(log.read_text(errors="replace").splitlines()[-15:]))
    manifest["runs"] += later
    atomic_write_json(out / MANIFEST, manifest)
    return manifest


# --------------------------------------------------------------------------- command line

PROG = "python -m omnirl.sweep"


@dataclasses.dataclass(frozen=True)
class SweepOptions:
    """Run a W&B sweep file here, offline, one configuration after another (``--local``)."""

    sweep: str = dataclasses.field(metadata=POSITIONAL)
    """A W&B sweep file (sweeps/NAME.yaml)."""
    local: bool = False
    """Run it here, W&B offline, one run after another."""
    seed: int = 0
    """Seed of the random and bayes proposals."""
    max_runs: int | None = None
    """Configurations to run (required for random and bayes unless run_cap is set)."""
    out: str | None = None
    """Output directory (default runs/sweeps/NAME)."""
    dry_run: bool = False
    """Print the command lines and the run count only."""
    out_dir_arg: str | None = None
    """Pass each run its directory as OUT_DIR_ARG=DIR too (e.g. --logging.out_dir)."""


def cmd_sweep(a: SweepOptions, extra: Sequence[str] = ()) -> int:
    sweep = load_sweep(a.sweep)
    if not a.local:
        print(f"{a.sweep} is a W&B sweep: W&B's controller runs on its server, so on a machine with W&B "
              f"credentials (wandb login):\n"
              f"    wandb sweep {a.sweep}          # prints the sweep's ENTITY/PROJECT/ID\n"
              f"    wandb agent ENTITY/PROJECT/ID  # on every machine that should take runs\n"
              f"To run it here, offline, one configuration after another:\n"
              f"    python -m omnirl.sweep {a.sweep} --local [--max-runs N] [--dry-run]", file=sys.stderr)
        return 2
    out = a.out or str(Path("runs") / "sweeps" / Path(a.sweep).stem)
    m = run_local(a.sweep, seed=a.seed, max_runs=a.max_runs, out_dir=out, extra_args=extra, dry_run=a.dry_run,
                  out_dir_arg=a.out_dir_arg)
    if a.dry_run:
        for r in m["runs"]:
            print(f"[{r['index']}] {shlex.join(r['argv'])}")
        note = " (bayes: proposals without results; a real run feeds each result back)" \
            if sweep["method"] == "bayes" else ""
        print(f"{m['n_runs']} runs{note}")
        return 0
    failed = [r["index"] for r in m["runs"] if r.get("exit_code") != 0]
    print(f"{len(m['runs']) - len(failed)} of {len(m['runs'])} runs succeeded; manifest: {Path(out) / MANIFEST}")
    if failed:
        print(f"failed runs: {failed}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """The command line; arguments after ``--`` are appended to every run's command line."""
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        argv, extra = argv[:argv.index("--")], argv[argv.index("--") + 1:]
    return run_command(PROG, __doc__, Command(SweepOptions, lambda a: cmd_sweep(a, extra)), argv)


if __name__ == "__main__":
    sys.exit(main())
