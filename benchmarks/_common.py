"""What the benchmark scripts share: one BLAS thread, argparse types, progress log, machine record,
timed command lines.

Every script imports this module first, before anything imports numpy: importing it sets
``THREAD_VARS`` to "1". The scripts run as ``python benchmarks/bench_*.py``, which puts this
folder on ``sys.path``.
"""

from __future__ import annotations

import os

# One core for ours and the reference: numpy/BLAS must not spread omnirl's array work over several
# threads while the reference runs on one, or a ratio would partly measure the thread count rather
# than the algorithms. These must be set before numpy is first imported.
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
for _var in THREAD_VARS:
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
from importlib import metadata  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from omnirl.fileio import atomic_write_bytes  # noqa: E402


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text!r}")
    return value


def int_list(text: str, flag: str, minimum: int, *, allow_empty: bool = False) -> list[int]:
    """The comma-separated integers of ``text``, each ``>= minimum``; ``flag`` names the option in
    the error message."""
    try:
        values = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{flag} must be comma-separated integers, got {text!r}")
    if (not values and not allow_empty) or any(v < minimum for v in values):
        raise argparse.ArgumentTypeError(f"{flag} must be integers >= {minimum}, got {text!r}")
    return values


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def machine_info(dists: tuple[str, ...], thread_vars: tuple[str, ...] = THREAD_VARS) -> dict:
    """Python, platform, cores, numpy, the ``thread_vars`` as set, and the versions of ``dists``
    and omnirl (``None`` where not installed)."""
    try:
        cores_available = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores_available = os.cpu_count()
    info = {"python": platform.python_version(), "implementation": platform.python_implementation(),
            "platform": platform.platform(), "machine": platform.machine(),
            "processor": platform.processor() or None, "cpu_count": os.cpu_count(),
            "cpus_available": cores_available, "numpy": np.__version__,
            "threads_env": {v: os.environ.get(v) for v in thread_vars}}
    for dist in (*dists, "omnirl"):
        try:
            info[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            info[dist] = None
    if info["omnirl"] is None:
        import omnirl
        info["omnirl"] = getattr(omnirl, "__version__", None)
    return info


def run_command(cmd: list[str], cwd: Path, name: str, env: dict[str, str] | None = None) -> dict:
    """Run ``cmd`` as a whole process in ``cwd`` (inheriting this process's environment, one BLAS
    thread included, updated with ``env``) and time it: wall seconds from start to exit and the
    child's CPU seconds (``os.wait4``). Its stdout and stderr go to ``cwd/<name>.stdout`` and
    ``.stderr``; a failing command exits the benchmark with its stderr."""
    import subprocess
    import time
    cwd.mkdir(parents=True, exist_ok=True)
    out_path, err_path = cwd / f"{name}.stdout", cwd / f"{name}.stderr"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                env=None if env is None else {**os.environ, **env})
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{Path(sys.argv[0]).name}: the command line {' '.join(cmd)} failed "
                 f"(exit {proc.returncode}):\n{err_path.read_text()}")
    return {"command": [Path(cmd[0]).name, *cmd[1:]], "seconds": seconds,
            "cpu_seconds": usage.ru_utime + usage.ru_stime, "stdout": out_path.read_text()[-2000:]}


def emit(report: dict, out: Path | None) -> dict:
    """Print ``report`` as indented JSON to stdout, and write it to ``out`` (atomically) if given."""
    text = json.dumps(report, indent=2) + "\n"
    if out is not None:
        atomic_write_bytes(out, text.encode())
    sys.stdout.write(text)
    sys.stdout.flush()
    return report
