"""What every ``python -m omnirl.<package>`` command line shares: one ``error: ...`` line per expected
failure (``fail``), and a plain argparse parser of one-line errors for what reads a few options
before the typed command line does (``Parser``); the command lines themselves are
``omnirl.config``'s (jsonargparse)."""

from __future__ import annotations

import argparse
import signal
import sys

class Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are one ``PROG: error: ...`` line (no usage block
    before it), exit code 2; ``--help`` still shows the usage. It reads options ahead of the typed
    command line (``parse_known_args``, which jsonargparse refuses): ``python -m omnirl.evaluate``'s
    shorthands and an experiment's ``--preset``."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def error_line(message: object) -> str:
    """``message`` on one line (a multi-line message, e.g. a YAML parser's, joined with spaces)."""
    return " ".join(part.strip() for part in str(message).splitlines() if part.strip())


def fail(e: BaseException) -> int:
    """Print the one ``error: ...`` line of an expected failure ``e`` to stderr and return the exit
    code of the command: 2 for a ValueError (bad input) or an OSError about a path (an existing file
    where a directory belongs, a directory where a file belongs, no permission, no such
    directory), 1 for another OSError (a full disk) or a missing optional package (ImportError), 130
    for an interrupt (Ctrl-C). Anything else is re-raised: a bug keeps its traceback."""
    if isinstance(e, KeyboardInterrupt):  # the workers are stopped already (omnirl._pool); no traceback
        print("error: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    if isinstance(e, ValueError):
        print(f"error: {error_line(e)}", file=sys.stderr)
        return 2
    if isinstance(e, ImportError):
        print(f"error: {error_line(e)}", file=sys.stderr)
        return 1
    if isinstance(e, OSError):
        where = f"{e.filename}: " if e.filename is not None else ""
        print(f"error: {where}{error_line(e.strerror or e)}", file=sys.stderr)
        return 2 if isinstance(e, (FileExistsError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
                                   PermissionError)) else 1
    raise e
