"""Worker processes that stop with their parent: the process pool of dataset and task-set generation.

``run_pool(fn, calls, workers, on_result)`` runs ``fn(*args)`` for every ``args`` of ``calls`` on
``workers`` spawned processes and hands each result to ``on_result`` as it arrives. Unlike a bare
``ProcessPoolExecutor``:

* an interrupt (Ctrl-C) or any error in the parent or a worker stops every worker at once: the
  work not started is cancelled and running workers are terminated (they ignore Ctrl-C
  themselves, so the parent alone decides, and unwind on SIGTERM, so their temporary files are
  removed) instead of the pool finishing all submitted work first;
* a worker dies with its parent: on Linux the kernel sends it SIGTERM when the parent dies
  (``PR_SET_PDEATHSIG``), and a worker whose parent is gone already when it starts exits at once,
  so a killed run leaves no worker writing behind it.

``write_behind(on_result)`` is the one-process counterpart for writing: compressing, hashing and
writing a finished piece of work on a background thread while the caller computes the next one
(zlib, hashlib and file writes release the GIL), with at most ``depth`` pieces waiting.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from multiprocessing import get_context
from typing import Any, Callable, Iterable, Iterator, Sequence

PR_SET_PDEATHSIG = 1
"""``prctl`` option: the signal the calling process gets when its parent dies (Linux)."""
STOP_SECONDS = 5.0
"""How long a terminated worker may take to unwind before it is killed."""


class _Terminated(BaseException):
    """Raised in a worker by SIGTERM: unwinds ``with`` and ``finally`` blocks, then the worker exits."""


_busy = False
"""In a worker: whether it is running a call (SIGTERM then unwinds it; otherwise the worker just exits)."""


def _on_sigterm(signum: int, frame: Any) -> None:
    if _busy:
        raise _Terminated()
    os._exit(128 + signum)


def _init_worker(parent: int) -> None:
    """Worker start-up: ignore Ctrl-C (the parent stops the workers), unwind on SIGTERM, die with the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_sigterm)
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the death signal was armed
        os._exit(1)


def _call(fn: Callable[..., Any], args: Sequence[Any]) -> Any:
    global _busy
    _busy = True
    try:
        return fn(*args)
    except _Terminated:
        os._exit(128 + signal.SIGTERM)  # cleaned up on the way here; no result is expected
    finally:
        _busy = False


def run_pool(fn: Callable[..., Any], calls: Iterable[Sequence[Any]], workers: int,
             on_result: Callable[[Any], None]) -> None:
    """Run ``fn(*args)`` for each ``args`` of ``calls`` on ``workers`` spawned processes, passing each
    result to ``on_result`` in completion order (see the module docstring). ``fn`` must be importable
    by name (a module-level function). The first error, or an interrupt, stops all workers and is
    re-raised."""
    pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init_worker,
                               initargs=(os.getpid(),))
    try:
        futures = [pool.submit(_call, fn, tuple(args)) for args in calls]
        for fut in as_completed(futures):
            on_result(fut.result())
    except BaseException:
        processes = list((pool._processes or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for p in processes:
            if p.is_alive():
                p.terminate()
        for p in processes:
            p.join(STOP_SECONDS)
            if p.is_alive():
                p.kill()
                p.join()
        pool.shutdown(wait=True)  # the pool's manager thread ends now, not in a noisy interpreter exit
        raise
    pool.shutdown(wait=True)


@contextmanager
def write_behind(on_result: Callable[[Any], None], depth: int = 1) -> Iterator[Callable[..., None]]:
    """A ``submit(fn, *args)`` that runs ``fn(*args)`` on one background thread, in submission order,
    handing each result to ``on_result`` (on the calling thread, in that order). ``submit`` blocks
    while more than ``depth`` calls are unfinished, so at most ``depth + 1`` pieces of work are held
    at once. Leaving the block waits for every call; an error in a call is re-raised by the next
    ``submit`` or on leaving; on an error in the block the calls not started are dropped and the
    running one is waited for (its own writes are atomic)."""
    pool = ThreadPoolExecutor(1, thread_name_prefix="write-behind")
    pending: deque[Future] = deque()

    def submit(fn: Callable[..., Any], *args: Any) -> None:
        pending.append(pool.submit(fn, *args))
        while len(pending) > depth:
            on_result(pending.popleft().result())

    try:
        yield submit
        while pending:
            on_result(pending.popleft().result())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


__all__ = ["run_pool", "write_behind"]
