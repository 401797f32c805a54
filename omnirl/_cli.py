"""The common body of the ``python -m omnirl.<package>`` command lines."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

class Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are one ``PROG: error: ...`` line (no usage block
    before it), exit code 2; ``--help`` still shows the usage."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


OUTPUT_ARGS = ("out",)
"""Parsed arguments naming an output directory: refused when they name an existing file."""


def output_problem(args: argparse.Namespace) -> str | None:
    """Why an output directory argument of ``args`` cannot be written (an existing file), or None."""
    for name in OUTPUT_ARGS:
        value = getattr(args, name, None)
        if value is not None and Path(value).exists() and not Path(value).is_dir():
            return f"--{name.replace('_', '-')} {str(value)!r} is an existing file, not a directory"
    return None


def run(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    """Parse ``argv`` with ``parser`` and run the chosen subcommand ``args.fn(args)``; its exit
    code, or 2 after printing one ``error: ...`` line to stderr: for an output directory that is
    an existing file (before anything runs), or when the subcommand raises ``ValueError`` (bad
    input) or an ``OSError`` about a path (an existing file where a directory belongs, a
    directory where a file belongs, no permission); 1 after one ``error: ...`` line for another
    ``OSError`` (a full disk) or a missing optional package (an ``ImportError`` whose message names
    the install command); 130 after ``error: interrupted`` on Ctrl-C (``fail``)."""
    args = parser.parse_args(argv)
    try:
        problem = output_problem(args)
        if problem is not None:
            raise ValueError(problem)
        return args.fn(args)
    except (KeyboardInterrupt, ValueError, OSError, ImportError) as e:
        return fail(e)


def error_line(message: object) -> str:
    """``message`` on one line (a multi-line message, e.g. a YAML parser's, joined with spaces)."""
    return " ".join(part.strip() for part in str(message).splitlines() if part.strip())


def fail(e: BaseException) -> int:
    """Print the one ``error: ...`` line of an expected failure ``e`` to stderr and return the exit
    code of ``run``: 2 for a ValueError (bad input) or an OSError about a path (an existing file
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
