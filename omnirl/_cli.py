"""The common body of the ``python -m omnirl.<package>`` command lines."""

from __future__ import annotations

import argparse
import sys


def run(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    """Parse ``argv`` with ``parser`` and run the chosen subcommand ``args.fn(args)``; its exit
    code, or 2 after printing ``error: ...`` to stderr if it raises ``ValueError``."""
    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
