"""Command line: ``python -m resque_core <command> ...`` over the same engine as the app.

Exit codes: 0 success, 2 bad input (one ``error: ...`` line on stderr, no traceback),
3 a candidate is predicted over a budget (``rank --max-kwh / --max-co2-kg``), 130 interrupted.
Each command lives in its own module and registers itself with
:func:`resque_core.cli._registry.command`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .._version import __version__
from ..errors import ResqueError

# Each command module registers its subcommand when imported.
from . import calibrate, layers, rank, report, score, validate  # noqa: F401
from ._registry import _COMMANDS, _Parser

__all__ = ["build_parser", "main", "main_entry"]


def build_parser() -> argparse.ArgumentParser:
    prog = "resque" if Path(sys.argv[0]).name == "resque" else "python -m resque_core"
    parser = _Parser(prog=prog, description="RESQUE model-reuse estimates")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, (help_text, configure, _fn) in _COMMANDS.items():
        configure(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _COMMANDS[args.command][2](args)
    except ResqueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        # Permissions, a read-only or invalid cache dir, a full disk: the user's to fix.
        where = f" {e.filename}" if e.filename else ""
        print(f"error: cannot use{where}: {e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


def main_entry() -> None:
    """Console-script entry point (``resque``): exits with :func:`main`'s code."""
    sys.exit(main())
