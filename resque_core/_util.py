"""Small helpers shared by the engine's modules (private)."""

from __future__ import annotations

import difflib
import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

_CHUNK = 1 << 20


def closest(name: str, choices: Iterable[str], n: int = 5) -> list[str]:
    """The up-to-``n`` entries of ``choices`` most similar to ``name`` (best first)."""
    choices = list(choices)
    close = difflib.get_close_matches(name, choices, n=n, cutoff=0.4)
    if len(close) < n:
        lowered = name.lower()
        close += [c for c in choices if lowered in c.lower() and c not in close][: n - len(close)]
    return close


def unknown_name_message(what: str, name: str, choices: Iterable[str], n: int = 5) -> str:
    """``unknown <what> 'x'; closest: a, b; available: ...`` — one line a user can act on."""
    choices = sorted(choices)
    near = closest(name, choices, n=n)
    msg = f"unknown {what} {name!r}"
    if near:
        msg += f"; closest: {', '.join(near)}"
    if len(choices) <= 30:
        msg += f"; available: {', '.join(choices)}"
    else:
        msg += f" ({len(choices)} available)"
    return msg


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def file_stamp(path: str | os.PathLike) -> tuple[str, int, int]:
    """(absolute path, size, mtime_ns): cheap identity used to memoise content hashes."""
    p = Path(path).resolve()
    st = p.stat()
    return (str(p), st.st_size, st.st_mtime_ns)
