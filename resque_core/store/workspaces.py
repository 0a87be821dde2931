"""Workspaces: a comparison being edited in the dashboard, with its uploads, kept on the server.

A workspace lives in ``<cache dir>/workspaces/<id>/``: ``workspace.json`` (the plan's dict, the
folder its relative paths resolve against, the last stored ranking, its name and times) and
``uploads/<16 hex of the SHA-256>/<file name>`` for every uploaded file. The id is random and
unguessable (128 bits), so knowing it is what opens a workspace: the dashboard puts it in its
URL (``?ws=ID``) and a reload or a copied link restores the work.

Uploads are stored once per content, keep their original name for display
(:meth:`WorkspaceStore.display`), and are capped per file and for the whole server. Deleting a
workspace deletes its uploads. Writes go to a temporary file that is then renamed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .cache import default_cache_dir

__all__ = ["Upload", "WorkspaceStore", "new_workspace_id", "without_upload_folders"]

_ID = re.compile(r"^[A-Za-z0-9_-]{22}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_DOC = "workspace.json"
_MISSING = "no such workspace (it was deleted, or the link is incomplete)"


# Where any workspace keeps an upload, whatever the cache folder: what a shared document hides.
_ANY_UPLOAD_FOLDER = re.compile(r"[^\s'\"]*/workspaces/[A-Za-z0-9_-]{22}/uploads/[0-9a-f]{16}/")


def without_upload_folders(value: Any) -> Any:
    """``value`` (a document: dicts, lists, strings) with every upload path reduced to the
    file's name: a shared report or export never names the server's folders or a workspace id
    (which would open that workspace)."""
    if isinstance(value, str):
        return _ANY_UPLOAD_FOLDER.sub("", value)
    if isinstance(value, dict):
        return {k: without_upload_folders(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [without_upload_folders(v) for v in value]
    return value


def new_workspace_id() -> str:
    """22 URL-safe characters (128 random bits)."""
    return secrets.token_urlsafe(16)


@dataclass(frozen=True)
class Upload:
    """One uploaded file of a workspace."""

    name: str  # as the user's file was called
    sha256: str  # first 16 hex digits
    size: int
    path: Path


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1, default=str)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class WorkspaceStore:
    """Workspaces under ``<cache dir>/workspaces`` with upload caps in bytes."""

    def __init__(
        self,
        cache_dir: str | os.PathLike | None = None,
        *,
        max_upload_bytes: int | None = None,
        max_total_bytes: int | None = None,
    ):
        base = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.directory = base / "workspaces"
        self.max_upload_bytes = max_upload_bytes
        self.max_total_bytes = max_total_bytes
        # An upload path, up to and including its content folder: what display() removes.
        folders = sorted({str(self.directory), str(self.directory.resolve())}, key=len)
        self._upload_prefix = re.compile(
            "(?:" + "|".join(re.escape(f) for f in reversed(folders)) + ")"
            r"/[A-Za-z0-9_-]{22}/uploads/[0-9a-f]{16}/"
        )

    # ------------------------------------------------------------------ workspaces
    def _folder(self, ws_id: str) -> Path:
        if not isinstance(ws_id, str) or not _ID.match(ws_id):
            raise ConfigError(_MISSING)
        return self.directory / ws_id

    def create(self, name: str = "") -> str:
        """A new, empty workspace; returns its id."""
        ws_id = new_workspace_id()
        folder = self._folder(ws_id)
        (folder / "uploads").mkdir(parents=True)
        now = _now()
        _write_json(
            folder / _DOC,
            {"id": ws_id, "name": name, "created": now, "updated": now, "plan": None},
        )
        return ws_id

    def exists(self, ws_id: str) -> bool:
        try:
            return (self._folder(ws_id) / _DOC).is_file()
        except ConfigError:
            return False

    def load(self, ws_id: str) -> dict[str, Any]:
        """The workspace's document: ``plan`` (a plan dict or None), ``base``, ``last_run``,
        ``name``, ``created``, ``updated``, ``uploads`` (sha -> {name, file, size}).
        ConfigError (one message for an invalid id and a missing one) if there is none."""
        path = self._folder(ws_id) / _DOC
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            raise ConfigError(_MISSING) from None
        if not isinstance(doc, dict):
            raise ConfigError(_MISSING)
        doc.setdefault("uploads", {})
        return doc

    def save(self, ws_id: str, **fields: Any) -> None:
        """Update fields of the workspace's document (``plan``, ``base``, ``last_run``,
        ``name``, ...); the workspace must exist."""
        doc = self.load(ws_id)
        doc.update(fields, id=ws_id, updated=_now())
        _write_json(self._folder(ws_id) / _DOC, doc)

    def delete(self, ws_id: str) -> bool:
        """Remove the workspace and its uploads; False if there was none."""
        try:
            folder = self._folder(ws_id)
        except ConfigError:
            return False
        if not folder.is_dir():
            return False
        # Renamed first, so a half-deleted folder is never taken for a workspace.
        doomed = folder.with_name(f".deleted-{ws_id}-{secrets.token_hex(3)}")
        folder.rename(doomed)
        shutil.rmtree(doomed, ignore_errors=True)
        return True

    def expire(self, max_age_days: float) -> list[str]:
        """Delete the workspaces (and uploads) not updated for ``max_age_days``; their ids."""
        cutoff = datetime.now(UTC).timestamp() - max_age_days * 86400
        gone = []
        for ws in self.list():
            try:
                updated = datetime.fromisoformat(str(ws["updated"])).replace(tzinfo=UTC)
            except ValueError:
                continue
            if updated.timestamp() < cutoff and self.delete(ws["id"]):
                gone.append(ws["id"])
        return gone

    def list(self) -> list[dict[str, Any]]:
        """Every workspace's document without its plan body: id, name, created, updated,
        candidates, uploads (count and bytes); most recently updated first."""
        if not self.directory.is_dir():
            return []
        out = []
        for folder in self.directory.iterdir():
            if not _ID.match(folder.name):
                continue
            try:
                doc = self.load(folder.name)
            except ConfigError:
                continue
            plan = doc.get("plan") or {}
            uploads = doc.get("uploads") or {}
            out.append(
                {
                    "id": folder.name,
                    "name": (plan.get("name") if isinstance(plan, dict) else "") or "",
                    "created": doc.get("created", ""),
                    "updated": doc.get("updated", ""),
                    "candidates": len(plan.get("candidates") or [])
                    if isinstance(plan, dict)
                    else 0,
                    "uploads": len(uploads),
                    "upload_bytes": sum(int(u.get("size", 0)) for u in uploads.values()),
                }
            )
        return sorted(out, key=lambda d: d["updated"], reverse=True)

    # ------------------------------------------------------------------ uploads
    def uploads(self, ws_id: str) -> list[Upload]:
        """The workspace's uploads (those whose file is still there), by name."""
        folder = self._folder(ws_id) / "uploads"
        found = []
        for sha, info in self.load(ws_id).get("uploads", {}).items():
            path = folder / sha / str(info.get("file", ""))
            if path.is_file():
                found.append(Upload(str(info.get("name")), sha, int(info.get("size", 0)), path))
        return sorted(found, key=lambda u: u.name.lower())

    def upload_bytes(self) -> int:
        """Bytes of every workspace's uploads on this server."""
        total = 0
        if self.directory.is_dir():
            for root, _dirs, files in os.walk(self.directory):
                if "uploads" not in Path(root).parts:
                    continue
                for name in files:
                    try:
                        total += os.lstat(os.path.join(root, name)).st_size
                    except OSError:
                        continue
        return total

    def add_upload(self, ws_id: str, name: str, content: bytes) -> Path:
        """Store an uploaded file in the workspace; returns its path.

        Equal content is stored once (a folder per content hash); the file keeps a sanitised
        form of its name, and its original name is recorded for display. ConfigError if the
        file is over the per-upload cap or the server's uploads would exceed theirs.
        """
        size = len(content)
        if self.max_upload_bytes is not None and size > self.max_upload_bytes:
            raise ConfigError(
                f"{name} is {size / 2**20:,.1f} MB, over this server's limit of "
                f"{self.max_upload_bytes / 2**20:,.0f} MB per upload"
            )
        doc = self.load(ws_id)
        sha = hashlib.sha256(content).hexdigest()[:16]
        safe = _UNSAFE.sub("_", Path(name).name).strip("._")[:100] or "upload"
        folder = self._folder(ws_id) / "uploads" / sha
        path = folder / safe
        known = doc["uploads"].get(sha)
        if known and (folder / str(known.get("file"))).is_file():
            return folder / str(known["file"])
        if self.max_total_bytes is not None and self.upload_bytes() + size > self.max_total_bytes:
            raise ConfigError(
                f"the server's uploads would exceed its limit of "
                f"{self.max_total_bytes / 2**20:,.0f} MB: delete workspaces you no longer need "
                "(History page), or ask whoever runs the server to raise the limit"
            )
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        tmp.write_bytes(content)
        tmp.replace(path)
        doc["uploads"][sha] = {"name": Path(name).name or safe, "file": safe, "size": size}
        self.save(ws_id, uploads=doc["uploads"])
        return path

    def display(self, text: str, ws_id: str | None = None) -> str:
        """``text`` with every upload path replaced by the uploaded file's name: what the
        pages, tables and errors show. The uploads of ``ws_id`` get their original names; any
        other upload path its stored (sanitised) file name."""
        text = str(text)
        if ws_id is not None and self.exists(ws_id):
            for upload in self.uploads(ws_id):
                for form in {str(upload.path), str(upload.path.resolve())}:
                    text = text.replace(form, upload.name)
        return self._upload_prefix.sub("", text)

    def is_upload(self, path: str | os.PathLike) -> bool:
        """Whether ``path`` is a file stored as an upload of some workspace."""
        return bool(self._upload_prefix.match(str(Path(path).resolve())))

    def uploads_folder(self, ws_id: str) -> Path:
        """The folder of this workspace's uploads (what its paths may point into)."""
        return self._folder(ws_id) / "uploads"
