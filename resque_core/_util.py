"""Small helpers shared by the engine's modules (private)."""

from __future__ import annotations

import difflib
import functools
import hashlib
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from .errors import ResqueError

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
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks (no memo: see :func:`file_sha256`)."""
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


@functools.lru_cache(maxsize=65536)
def _sha256_stamped(stamp: tuple[str, int, int]) -> str:
    return sha256_file(stamp[0])


def stat_sha256(path: str, st: os.stat_result) -> str:
    """:func:`file_sha256` of the file at the absolute ``path`` whose ``os.stat`` the caller
    already holds (a folder of many files then pays one stat per file, no path resolution)."""
    return _sha256_stamped((path, st.st_size, st.st_mtime_ns))


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, memoised per process on (path, size, mtime): the one file-hash
    memo of the engine (checkpoints, data fingerprints and the result store all use it)."""
    return _sha256_stamped(file_stamp(path))


def regular_file(
    path: str | os.PathLike, *, what: str, error: type[ResqueError], max_bytes: int | None = None
) -> Path:
    """``path`` as a Path after checking, without reading it, that it is a regular file (not a
    directory, device, FIFO or socket) of at most ``max_bytes``. Raises ``error`` with a message
    naming ``what`` and the file; a FIFO or ``/dev/zero`` is refused at once, never read."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise error(f"{what} not found: {path}") from None
    except PermissionError:
        raise error(f"cannot read {what} {path}: permission denied") from None
    except OSError as e:
        raise error(f"cannot read {what} {path}: {e.strerror or e}") from None
    if stat.S_ISDIR(st.st_mode):
        raise error(f"{what} {path} is a directory; give the file")
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{what} {path} is not a regular file (a device, FIFO or socket); give a file")
    if max_bytes is not None and st.st_size > max_bytes:
        raise error(
            f"{what} {path} is {st.st_size / 2**20:,.0f} MiB, over the limit of "
            f"{max_bytes / 2**20:,.0f} MiB"
        )
    if not os.access(p, os.R_OK):
        raise error(f"cannot read {what} {path}: permission denied")
    return p
