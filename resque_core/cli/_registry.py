"""The subcommand registry: each command module registers ``fn(args) -> exit code`` with
:func:`command`; the parser reports argument errors in the one-line ``error: ...`` form."""

from __future__ import annotations

import argparse
from collections.abc import Callable

_COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[..., int]]] = {}


def command(name: str, help: str, configure: Callable[[argparse.ArgumentParser], None]):
    """Register ``fn(args) -> exit code`` as subcommand ``name`` with its argument setup."""

    def register(fn: Callable[[argparse.Namespace], int]):
        _COMMANDS[name] = (help, configure, fn)
        return fn

    return register


class _Parser(argparse.ArgumentParser):
    # argparse prints a usage block; users and scripts get the same one-line form as other errors.
    def error(self, message: str):
        self.exit(2, f"error: {message} (see --help)\n")
