"""Content-keyed result cache on disk (diskcache: SQLite + files, safe across processes).

Keys are SHA-256 digests of a canonical JSON document of everything a result depends on (content
hashes of the checkpoint and data, preprocessing, shift, layer, seed, sampling, engine version).
Values are stored as bytes: a JSON header plus numpy arrays in ``.npz`` form, loaded with
``allow_pickle=False``. diskcache commits each entry in one SQLite transaction after its file is
written: a crash mid-write leaves no entry, never a corrupt one.

The store reads only its own format, so reading a cache never executes code: diskcache's pickle
mode is refused unread (when writing and reading), value files must be diskcache's own names
inside the folder, and any row that does not decode as this store wrote it (pickle mode, garbage
bytes, a JSON header that is not an object, the wrong type) is a miss: it is deleted, logged on
the ``resque_core.store.cache`` logger, and the caller computes the result again.

The store heals: if its folder is deleted or moved while a process holds it (the app keeps one
store per process), the next call recreates the folder and a fresh database. A cache dir that
cannot be used (a file, a device, a folder without write access) is a
:class:`~resque_core.errors.ConfigError` naming the folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import sqlite3
import stat
import struct
import tempfile
import threading
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import diskcache
import numpy as np
from diskcache.core import DBNAME, MODE_BINARY, MODE_PICKLE, MODE_RAW, MODE_TEXT, UNKNOWN

from .._util import file_sha256, file_stamp
from .._version import __version__
from ..errors import ConfigError

__all__ = ["ResultStore", "canonical_key", "default_cache_dir"]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

_HINT = "point --cache-dir or RESQUE_CACHE_DIR at a writable folder"
# diskcache names value files <2 hex>/<2 hex>/<28 hex>.val under the cache folder (Disk.filename).
_VALUE_FILE = re.compile(r"^[0-9a-f]{2}[/\\][0-9a-f]{2}[/\\][0-9a-f]{28}\.val$")
_HEX_DIGEST = re.compile(r"^[0-9a-f]{64}$")
# Every setting given here, so none is taken from the database's Settings table (which a foreign
# writer could fill with an unknown eviction policy or pragma values).
_SETTINGS = {**diskcache.DEFAULT_SETTINGS, "size_limit": 2**34}
# What a foreign blob can raise inside np.load / json.loads (never a pickle: allow_pickle=False).
_UNDECODABLE = (
    ValueError,
    KeyError,
    TypeError,
    EOFError,
    OSError,
    zipfile.BadZipFile,
    zlib.error,
    struct.error,
)


def default_cache_dir() -> Path:
    """``$RESQUE_CACHE_DIR`` if set, else ``~/.cache/resque``."""
    env = os.environ.get("RESQUE_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "resque"


def canonical_key(namespace: str, parts: dict[str, Any]) -> str:
    """Hex digest of ``namespace`` + sorted-key JSON of ``parts`` + the engine version."""
    doc = json.dumps(
        {"ns": namespace, "engine": __version__, "parts": parts},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(doc.encode()).hexdigest()


def _encode(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, __meta__=np.array(json.dumps(meta)), **arrays)
    return buf.getvalue()


class _NotOurs(Exception):
    """A cache row in a format this store never writes; read as a miss, never decoded."""


def _decode(blob: object) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(meta, arrays) of a blob written by :func:`_encode`; :class:`_NotOurs` for anything else."""
    if not isinstance(blob, bytes):
        raise _NotOurs(f"a {type(blob).__name__} value, not npz bytes")
    try:
        z = np.load(io.BytesIO(blob), allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise _NotOurs("a bare array, not an npz archive")
        with z:
            arrays = {k: z[k] for k in z.files if k != "__meta__"}
            meta = json.loads(str(z["__meta__"]))
    except _UNDECODABLE as e:
        raise _NotOurs(f"undecodable npz/JSON: {type(e).__name__}: {e}") from None
    if not isinstance(meta, dict):
        raise _NotOurs(f"a JSON {type(meta).__name__} header, not an object")
    return meta, arrays


class _OwnFormatDisk(diskcache.Disk):
    """diskcache's serializer limited to this store's values: bytes (npz) and text (hashes).

    It never unpickles: a pickle-mode row raises :class:`_NotOurs` unread, a pickled key is
    handed back as its raw bytes, and writing anything that diskcache would pickle is a
    TypeError. Value files are opened or removed only when they carry diskcache's own names
    inside the folder and are regular files (a row naming ``/dev/zero`` or ``../x`` is foreign).
    """

    def store(self, value, read, key=UNKNOWN):
        if read or type(value) not in (bytes, str):
            raise TypeError(f"the result store keeps bytes or text, not {type(value).__name__}")
        return super().store(value, read, key)

    def fetch(self, mode, filename, value, read):
        if mode == MODE_PICKLE:
            raise _NotOurs("a pickle-mode row")
        if mode not in (MODE_RAW, MODE_BINARY, MODE_TEXT):
            raise _NotOurs(f"an unknown diskcache mode {mode!r}")
        if mode != MODE_RAW:
            self._own_file(filename)
        return super().fetch(mode, filename, value, read)

    def get(self, key, raw):
        return super().get(key, True)

    def remove(self, file_path):
        if isinstance(file_path, str) and _VALUE_FILE.match(file_path):
            super().remove(file_path)

    def _own_file(self, filename: object) -> None:
        if not isinstance(filename, str) or not _VALUE_FILE.match(filename):
            raise _NotOurs(f"a value file named {filename!r}, not one of diskcache's")
        try:
            mode = os.lstat(os.path.join(self._directory, filename)).st_mode
        except FileNotFoundError:
            return  # removed meanwhile: diskcache's own fetch turns this into a miss
        if not stat.S_ISREG(mode):
            raise _NotOurs(f"a value file {filename!r} that is not a regular file")


def _usable_dir(directory: Path) -> None:
    """Create ``directory`` if missing; ConfigError unless it is a folder this process can write."""
    try:
        st = directory.stat()
    except (FileNotFoundError, NotADirectoryError):  # missing, or under a file: mkdir says which
        try:
            directory.mkdir(parents=True, exist_ok=True)
            st = directory.stat()
        except OSError as e:
            raise ConfigError(
                f"cannot create cache dir {directory} ({e.strerror or e}); {_HINT}"
            ) from None
    except OSError as e:
        why = e.strerror or e
        raise ConfigError(f"cannot use cache dir {directory} ({why}); {_HINT}") from None
    if stat.S_ISREG(st.st_mode):
        raise ConfigError(f"cache dir {directory} is a file; {_HINT}")
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError(
            f"cache dir {directory} is a device, FIFO or socket, not a folder; {_HINT}"
        )
    # Mode bits do not tell (root ignores them; /proc refuses root): try to write.
    try:
        fd, probe = tempfile.mkstemp(dir=directory, prefix=".write-probe-")
    except OSError as e:
        raise ConfigError(
            f"cache dir {directory} is not writable ({e.strerror or e}); {_HINT}"
        ) from None
    os.close(fd)
    os.unlink(probe)


def _drop_foreign_settings(db: Path) -> None:
    """Delete rows of the database's Settings table that this store does not set itself:
    diskcache sets each one as an attribute of the cache (and ``disk_*`` of its serializer), so
    a foreign ``get`` or ``disk_fetch`` row would replace a method."""
    if not db.is_file():
        return
    known = [*_SETTINGS, *diskcache.core.METADATA]
    marks = ",".join("?" * len(known))
    with contextlib.closing(sqlite3.connect(db, timeout=60)) as con:
        try:
            foreign = con.execute(
                f"SELECT key FROM Settings WHERE key NOT IN ({marks})", known
            ).fetchall()
        except sqlite3.OperationalError:  # no Settings table yet: diskcache creates it
            return
        if foreign:
            _log.warning(
                "result cache %s: dropping unknown settings %s",
                db.parent,
                ", ".join(repr(k) for (k,) in foreign),
            )
            with con:
                con.execute(f"DELETE FROM Settings WHERE key NOT IN ({marks})", known)


def _identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of ``path``, or None if it is gone."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


class ResultStore:
    """A directory of cached results; open as many as you like on the same directory.

    Raises :class:`~resque_core.errors.ConfigError` if ``directory`` cannot hold a cache.
    """

    def __init__(self, directory: str | os.PathLike | None = None):
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self._lock = threading.Lock()
        self._cache, self._db = self._open()

    def _open(self) -> tuple[diskcache.Cache, tuple[int, int] | None]:
        _usable_dir(self.directory)
        try:
            _drop_foreign_settings(self.directory / DBNAME)
            cache = diskcache.Cache(str(self.directory), disk=_OwnFormatDisk, **_SETTINGS)
        except (sqlite3.Error, OSError) as e:
            raise ConfigError(
                f"cannot open the cache in {self.directory} ({e}); delete "
                f"{self.directory / DBNAME} to start it afresh, or {_HINT}"
            ) from None
        return cache, _identity(self.directory / DBNAME)

    def _reopen(self, why: str, *, if_stale: bool = False) -> None:
        with self._lock:
            # Another thread may have reopened it while this one waited.
            if if_stale and _identity(self.directory / DBNAME) == self._db:
                return
            _log.warning("result cache %s: %s; reopening it", self.directory, why)
            old = self._cache
            self._cache, self._db = self._open()
            old.close()

    def _live(self) -> diskcache.Cache:
        """The open cache; reopened first if its database file was deleted, moved or replaced
        (an open SQLite connection keeps writing to a deleted file nobody else sees)."""
        if _identity(self.directory / DBNAME) != self._db:
            self._reopen("its database was deleted, moved or replaced", if_stale=True)
        return self._cache

    def _call(self, op: Callable[[diskcache.Cache], _T]) -> _T:
        try:
            return op(self._live())
        except sqlite3.DatabaseError as e:
            # The folder vanished between the check and the statement, the database was damaged
            # or the disk failed: one fresh start, then the error is the user's to see.
            self._reopen(f"SQLite error ({e})")
            try:
                return op(self._cache)
            except sqlite3.DatabaseError as again:
                raise ConfigError(
                    f"cannot use the cache in {self.directory} ({again}); delete "
                    f"{self.directory / DBNAME} to start it afresh, or {_HINT}"
                ) from None

    def _read(self, key: str, decode: Callable[[object], _T]) -> _T | None:
        """``decode`` of the value under ``key``, or None; a foreign row is deleted and logged."""

        def op(cache: diskcache.Cache):
            try:
                raw = cache.get(key)
                return None if raw is None else decode(raw)
            except _NotOurs as e:
                _log.warning(
                    "result cache %s: entry %s is not this store's format (%s); deleted, it "
                    "will be computed again",
                    self.directory,
                    key,
                    e,
                )
                cache.delete(key)
                return None

        return self._call(op)

    def get(self, key: str) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
        """(meta, arrays) stored under ``key``, or None (also for a foreign row, then deleted)."""
        return self._read(key, _decode)

    def put(self, key: str, meta: dict[str, Any], arrays: dict[str, np.ndarray] | None = None):
        """Store a JSON-able ``meta`` dict and named arrays under ``key`` (atomically)."""
        blob = _encode(meta, arrays or {})
        self._call(lambda cache: cache.set(key, blob))

    def file_sha256(self, path: str | os.PathLike) -> str:
        """SHA-256 of a file, remembered by (path, size, mtime) so unchanged files hash once."""
        stamp = "sha256:" + json.dumps(file_stamp(path))
        digest = self._read(stamp, _hex_digest)
        if digest is None:
            digest = file_sha256(path)
            self._call(lambda cache: cache.set(stamp, digest))
        return digest

    def size_bytes(self) -> int:
        return int(self._call(lambda cache: cache.volume()))

    def __len__(self) -> int:
        return self._call(len)

    def clear(self) -> int:
        """Remove every entry; returns how many were removed."""
        return int(self._call(lambda cache: cache.clear()))

    def close(self) -> None:
        self._cache.close()


def _hex_digest(raw: object) -> str:
    if not isinstance(raw, str) or not _HEX_DIGEST.match(raw):
        raise _NotOurs(f"a {type(raw).__name__} value, not a hex SHA-256")
    return raw
