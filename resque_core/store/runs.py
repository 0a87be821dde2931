"""Stored runs: every ranking (and later validation) is kept as one JSON document on disk.

Runs live in ``<cache dir>/runs/<run id>.json`` (written to a temporary file and renamed, so a
crash never leaves half a run). A run id is ``YYYYMMDD-HHMMSS-<6 hex>``: sortable and unique.
A stored file that is not JSON (truncated by hand, another program's file) stays listed by
:meth:`RunStore.entries`; :meth:`RunStore.load` refuses it with a ConfigError naming the run.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import stat
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .cache import default_cache_dir

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
        self,
        doc: dict[str, Any],
        run_id: str | None = None,
        *,
        content_key: str | None = None,
        version_key: str | None = None,
    ) -> str:
        """Store ``doc``; returns its run id.

        ``content_key``: what makes two runs the same (e.g. the same plan with the same cached
        results): if a stored run has this key, its id is returned and nothing is written, so a
        dashboard reopened many times does not fill the history with copies.

        ``version_key``: what may differ within one content (the order, the cost settings):
        with it, a stored run of the same content but another version is *updated in place*
        (same id, the new document), and one of the same version is left as it is.
        """
        marker = self.directory / "by_content" / f"{content_key}" if content_key else None
        known = _read_marker(marker) if marker is not None else None
        # A damaged stored copy is written again rather than pointed at forever.
        if known is not None and self._readable(known):
            if version_key is None or _read_text(_version_file(marker)) == version_key:
                return known
            run_id = known
        run_id = run_id or new_run_id()
        path = self._path(run_id)
        self.directory.mkdir(parents=True, exist_ok=True)
        _write_atomic(path, json.dumps({**doc, "run_id": run_id}, indent=1, default=str))
        if marker is not None:
            marker.parent.mkdir(exist_ok=True)
            _write_atomic(marker, run_id)
            if version_key is not None:
                _write_atomic(_version_file(marker), version_key)
        return run_id

    def delete(self, run_id: str) -> bool:
        """Remove a stored run (and the content markers that point at it); False if none."""
        path = self._path(run_id)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        markers = self.directory / "by_content"
        if markers.is_dir():
            for marker in markers.iterdir():
                if marker.suffix != ".version" and _read_marker(marker) == run_id:
                    _version_file(marker).unlink(missing_ok=True)
                    marker.unlink(missing_ok=True)
        return True

    def load(self, run_id: str) -> dict[str, Any]:
        """The stored document of ``run_id`` (as written; check it with
        :func:`~resque_core.store.documents.check_run`).

        Raises ConfigError for an invalid id, a missing run, or a file that is not readable
        JSON: ``stored run '…' is unreadable (not complete JSON: …); …``.
        """
        path = self._path(run_id)
        if not path.exists():
            raise ConfigError(f"no stored run {run_id!r} in {self.directory}")
        try:
            # A FIFO or device named like a run would block or never end: never opened.
            if not stat.S_ISREG(path.stat().st_mode):
                raise _Unreadable("not a regular file")
            return json.loads(path.read_text(encoding="utf-8"))
        except _Unreadable as e:
            why = str(e)
        except OSError as e:
            why = str(e.strerror or e)
        except UnicodeDecodeError:
            why = "not UTF-8 text"
        except json.JSONDecodeError as e:
            why = f"not complete JSON: {e.msg} at line {e.lineno} column {e.colno}"
        except RecursionError:
            why = "nested too deeply to be a run"
        raise ConfigError(
            f"stored run {run_id!r} is unreadable ({why}); delete {path} or import the run again"
        )

    def _readable(self, run_id: str) -> bool:
        try:
            self.load(run_id)
        except ConfigError:
            return False
        return True

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


class _Unreadable(Exception):
    """Why a stored run file cannot be read (turned into ConfigError by RunStore.load)."""


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _version_file(marker: Path) -> Path:
    return marker.with_name(marker.name + ".version")


def _read_marker(marker: Path) -> str | None:
    """The run id a content marker points at, or None if there is none or it is damaged."""
    known = _read_text(marker)
    return known if known is not None and _RUN_ID.match(known) else None


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` and rename it over ``path``: a crash
    (kill -9 included) leaves the old file or the new one, never half of one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
