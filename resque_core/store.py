"""Content-keyed result cache on disk (diskcache: SQLite + files, safe across processes).

Keys are SHA-256 digests of a canonical JSON document of everything a result depends on (content
hashes of the checkpoint and data, preprocessing, shift, layer, seed, sampling, engine version).
Values are stored as bytes: a JSON header plus numpy arrays in ``.npz`` form, loaded with
``allow_pickle=False``, so reading a cache never executes code. diskcache commits each entry in
one SQLite transaction after its file is written: a crash mid-write leaves no entry, never a
corrupt one.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import diskcache
import numpy as np

from ._util import file_stamp, sha256_file
from ._version import __version__

__all__ = ["ResultStore", "canonical_key", "default_cache_dir"]


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


def _decode(blob: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if k != "__meta__"}
        meta = json.loads(str(z["__meta__"]))
    return meta, arrays


class ResultStore:
    """A directory of cached results; open as many as you like on the same directory."""

    def __init__(self, directory: str | os.PathLike | None = None):
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self._cache = diskcache.Cache(str(self.directory), size_limit=2**34)

    def get(self, key: str) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
        """(meta, arrays) stored under ``key``, or None."""
        blob = self._cache.get(key)
        return None if blob is None else _decode(blob)

    def put(self, key: str, meta: dict[str, Any], arrays: dict[str, np.ndarray] | None = None):
        """Store a JSON-able ``meta`` dict and named arrays under ``key`` (atomically)."""
        self._cache.set(key, _encode(meta, arrays or {}))

    def file_sha256(self, path: str | os.PathLike) -> str:
        """SHA-256 of a file, remembered by (path, size, mtime) so unchanged files hash once."""
        stamp = "sha256:" + json.dumps(file_stamp(path))
        digest = self._cache.get(stamp)
        if digest is None:
            digest = sha256_file(path)
            self._cache.set(stamp, digest)
        return digest

    def size_bytes(self) -> int:
        return int(self._cache.volume())

    def __len__(self) -> int:
        return len(self._cache)

    def clear(self) -> int:
        """Remove every entry; returns how many were removed."""
        return int(self._cache.clear())

    def close(self) -> None:
        self._cache.close()
