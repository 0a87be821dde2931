"""Cache records made by workers and written by the driver, the only writer of the cache.

A remote worker's scorer or energy probe gets a :class:`WorkerStore` where it would get the
result cache: ``get`` answers from the records it was given (``known``, e.g. the source-side
class sums another worker computed) and from its own, ``put`` records. The executor returns the
records with each unit's value and the driver writes them with :func:`write_records`, so the
diskcache/SQLite files are opened by one process on one machine only.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import numpy as np

from .._util import file_sha256

__all__ = ["Record", "WorkerStore", "write_records"]

Record = tuple[str, dict[str, Any], dict[str, np.ndarray]]
"""(cache key, meta, arrays), as :meth:`~resque_core.store.cache.ResultStore.put` takes them."""


class WorkerStore:
    """The result-cache interface a scorer and an energy probe use, kept in memory."""

    def __init__(self, known: Iterable[Record] = ()):
        self._entries: dict[str, tuple[dict[str, Any], dict[str, np.ndarray]]] = {}
        self._made: list[Record] = []
        self.add(known)

    def add(self, records: Iterable[Record]) -> None:
        """Make ``records`` readable (not returned by :meth:`take`: the driver has them)."""
        for key, meta, arrays in records:
            self._entries[key] = (meta, arrays)

    def get(self, key: str) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
        return self._entries.get(key)

    def put(self, key: str, meta: dict[str, Any], arrays: dict[str, np.ndarray] | None = None):
        arrays = dict(arrays or {})
        self._entries[key] = (meta, arrays)
        self._made.append((key, meta, arrays))

    def file_sha256(self, path: str | os.PathLike) -> str:
        return file_sha256(path)

    def take(self) -> list[Record]:
        """The records put since the last call (what the driver must write)."""
        made, self._made = self._made, []
        return made


def write_records(store: Any, records: Iterable[Record]) -> int:
    """Write workers' ``records`` into the driver's ``store`` (None: nothing); how many."""
    if store is None:
        return 0
    n = 0
    for key, meta, arrays in records:
        store.put(key, meta, arrays or None)
        n += 1
    return n
