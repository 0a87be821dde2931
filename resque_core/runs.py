"""Stored runs: every ranking (and later validation) is kept as one JSON document on disk.

Runs live in ``<cache dir>/runs/<run id>.json`` (written to a temporary file and renamed, so a
crash never leaves half a run). A run id is ``YYYYMMDD-HHMMSS-<6 hex>``: sortable and unique.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .store import default_cache_dir

__all__ = ["RunStore", "new_run_id"]

_RUN_ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{6}$")


def new_run_id(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


class RunStore:
    """JSON run documents in a folder (default: ``runs/`` under the cache directory)."""

    def __init__(self, cache_dir: str | os.PathLike | None = None):
        base = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.directory = base / "runs"

    def _path(self, run_id: str) -> Path:
        if not _RUN_ID.match(run_id):
            raise ConfigError(
                f"invalid run id {run_id!r}: expected the form 20260101-120000-a1b2c3"
            )
        return self.directory / f"{run_id}.json"

    def save(
        self, doc: dict[str, Any], run_id: str | None = None, *, content_key: str | None = None
    ) -> str:
        """Store ``doc``; returns its run id.

        ``content_key``: what makes two runs the same (e.g. the same plan with the same cached
        results): if a stored run has this key, its id is returned and nothing is written, so a
        dashboard reopened many times does not fill the history with copies.
        """
        marker = self.directory / "by_content" / f"{content_key}" if content_key else None
        if marker is not None and marker.exists():
            known = marker.read_text(encoding="utf-8").strip()
            if _RUN_ID.match(known) and self._path(known).exists():
                return known
        run_id = run_id or new_run_id()
        path = self._path(run_id)
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({**doc, "run_id": run_id}, f, indent=1, default=str)
        os.replace(tmp, path)
        if marker is not None:
            marker.parent.mkdir(exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=marker.parent, suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(run_id)
            os.replace(tmp, marker)
        return run_id

    def load(self, run_id: str) -> dict[str, Any]:
        path = self._path(run_id)
        if not path.exists():
            raise ConfigError(f"no stored run {run_id!r} in {self.directory}")
        return json.loads(path.read_text(encoding="utf-8"))

    def entries(self) -> list[tuple[str, Path, int]]:
        """(run id, file, modification time in ns) of every stored run, most recently stored
        first (ids of one second are ordered by write time)."""
        if not self.directory.exists():
            return []
        stamped = []
        for p in self.directory.glob("*.json"):
            if not _RUN_ID.match(p.stem):
                continue
            try:
                stamped.append((p.stem, p, p.stat().st_mtime_ns))
            except OSError:  # removed meanwhile
                continue
        return sorted(stamped, key=lambda e: (e[2], e[0]), reverse=True)

    def list(self) -> list[str]:
        """Run ids, most recently stored first."""
        return [run_id for run_id, _, _ in self.entries()]
