"""Where the dashboard may read server files: the data roots, and the check every typed path passes.

A shared server must not let a browser user read or probe the machine's files. The dashboard
therefore accepts a path typed into it only when, with every symlink resolved, it lies inside one
of the configured *data roots* (or inside the folder of the user's own uploads). Every path that
is outside them, and every path that does not exist, gets the same message
(:data:`NOT_ALLOWED`), so the answer never tells whether a file exists. Inside a root only
regular files and folders are accepted (no devices, FIFOs or sockets), checked without reading.

The roots come from, in order: ``$RESQUE_DATA_ROOTS`` (folders separated by ``os.pathsep``; set
by whoever starts the server, and then fixed), else the server settings file
``<cache dir>/server.json`` (edited on the Settings page), else ``<cache dir>/data``. The command
line does not use this module: it is the user's own shell and keeps full access.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .cache import default_cache_dir

__all__ = [
    "ENV_ROOTS",
    "NOT_ALLOWED",
    "ServerSettings",
    "confine",
    "confine_spec",
    "data_entries",
    "server_settings",
]

ENV_ROOTS = "RESQUE_DATA_ROOTS"
ENV_MAX_UPLOAD = "RESQUE_MAX_UPLOAD_MB"
ENV_MAX_UPLOADS = "RESQUE_MAX_UPLOADS_MB"
NOT_ALLOWED = (
    "this path is not an allowed location: give a file or folder inside one of the data roots "
    "listed on the Settings page, or upload the file"
)
DEFAULT_MAX_UPLOAD_MB = 1024
DEFAULT_MAX_UPLOADS_MB = 8192
_DATA_SUFFIXES = (".zip", ".npz")
_MODEL_SUFFIXES = (".pt", ".pth", ".pt2", ".bin", ".ckpt")
_SETTINGS_FILE = "server.json"


@dataclass(frozen=True)
class ServerSettings:
    """The server-wide settings of the dashboard (not of a comparison)."""

    roots: tuple[Path, ...]
    max_upload_bytes: int
    max_uploads_bytes: int
    fixed: bool  # True when $RESQUE_DATA_ROOTS sets the roots: the Settings page cannot change them
    source: str  # where the roots come from, in words

    def to_file(self, cache_dir: str | os.PathLike | None = None) -> None:
        """Write these settings to ``<cache dir>/server.json`` (ConfigError if they are fixed)."""
        if self.fixed:
            raise ConfigError(
                f"the data roots are set by ${ENV_ROOTS} when the server starts and cannot be "
                "changed here"
            )
        base = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        base.mkdir(parents=True, exist_ok=True)
        doc = {
            "data_roots": [str(r) for r in self.roots],
            "max_upload_mb": self.max_upload_bytes // 2**20,
            "max_uploads_mb": self.max_uploads_bytes // 2**20,
        }
        tmp = base / f".{_SETTINGS_FILE}.tmp"
        tmp.write_text(json.dumps(doc, indent=1), encoding="utf-8")
        tmp.replace(base / _SETTINGS_FILE)


def _megabytes(value: Any, default: int, what: str) -> int:
    if value is None or value == "":
        return default * 2**20
    try:
        mb = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be a whole number of MB, not {value!r}") from None
    if mb < 1:
        raise ConfigError(f"{what} must be at least 1 MB")
    return mb * 2**20


def _file_settings(base: Path) -> dict[str, Any]:
    path = base / _SETTINGS_FILE
    try:
        if not path.is_file():
            return {}
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}  # a damaged settings file: the defaults (nothing extra allowed)
    return doc if isinstance(doc, dict) else {}


def server_settings(cache_dir: str | os.PathLike | None = None) -> ServerSettings:
    """The data roots and upload caps in force (environment, else settings file, else defaults)."""
    base = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    doc = _file_settings(base)
    env = os.environ.get(ENV_ROOTS)
    if env is not None:
        roots = tuple(Path(p).expanduser() for p in env.split(os.pathsep) if p.strip())
        fixed, source = True, f"${ENV_ROOTS}"
    elif isinstance(doc.get("data_roots"), list):
        roots = tuple(Path(str(p)).expanduser() for p in doc["data_roots"] if str(p).strip())
        fixed, source = False, f"{base / _SETTINGS_FILE}"
    else:
        roots, fixed, source = (base / "data",), False, "the default (the cache folder's data/)"
    max_upload = _megabytes(
        os.environ.get(ENV_MAX_UPLOAD) or doc.get("max_upload_mb"),
        DEFAULT_MAX_UPLOAD_MB,
        "the upload cap",
    )
    max_uploads = _megabytes(
        os.environ.get(ENV_MAX_UPLOADS) or doc.get("max_uploads_mb"),
        DEFAULT_MAX_UPLOADS_MB,
        "the server's upload cap",
    )
    return ServerSettings(roots, max_upload, max_uploads, fixed, source)


def _resolved_roots(roots: tuple[Path, ...] | list[Path]) -> list[Path]:
    out = []
    for root in roots:
        try:
            out.append(Path(root).resolve(strict=True))
        except (OSError, RuntimeError):
            continue  # a root that does not exist allows nothing
    return out


def confine(path: str | os.PathLike, roots: tuple[Path, ...] | list[Path]) -> Path:
    """``path`` resolved (symlinks followed) if it lies inside one of ``roots`` and is a regular
    file or a folder; else ConfigError(:data:`NOT_ALLOWED`) — the same words for a path outside
    the roots and a missing one. Nothing is opened or read."""
    text = str(path).strip()
    if not text or "\x00" in text:
        raise ConfigError(NOT_ALLOWED)
    try:
        resolved = Path(text).expanduser().resolve(strict=True)
    except (OSError, RuntimeError):  # missing, a symlink loop, no permission on a parent
        raise ConfigError(NOT_ALLOWED) from None
    if not any(resolved == r or resolved.is_relative_to(r) for r in _resolved_roots(roots)):
        raise ConfigError(NOT_ALLOWED)
    try:
        mode = resolved.stat().st_mode
    except OSError:
        raise ConfigError(NOT_ALLOWED) from None
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise ConfigError(
            "this path is not a regular file or folder (a device, FIFO or socket): give a file"
        )
    return resolved


def confine_spec(spec: str, roots: tuple[Path, ...] | list[Path]) -> str:
    """A data spec whose server path (the spec itself, or a torchvision ROOT) passes
    :func:`confine`; built-in data sets need no path. Returns the spec unchanged."""
    text = spec.strip()
    if text.startswith("builtin:"):
        return spec
    if text.startswith("torchvision:"):
        parts = text.split(":")
        if len(parts) >= 3:
            confine(parts[2], roots)
        return spec
    confine(text, roots)
    return spec


def data_entries(
    roots: tuple[Path, ...] | list[Path], *, kind: str = "data", limit: int = 500
) -> list[str]:
    """What the roots offer, for a picker: each root, and the folders, data files (``kind`` =
    "data": .zip, .npz) or model files (``kind`` = "model") up to two levels below it; sorted,
    at most ``limit``. Hidden entries are skipped; symlinks leading out of the roots too."""
    allowed = _resolved_roots(roots)
    suffixes = _DATA_SUFFIXES if kind == "data" else _MODEL_SUFFIXES
    found: list[str] = []

    def inside(p: Path) -> bool:
        try:
            r = p.resolve(strict=True)
        except (OSError, RuntimeError):
            return False
        return any(r == a or r.is_relative_to(a) for a in allowed)

    def walk(folder: Path, depth: int) -> None:
        try:
            children = sorted(folder.iterdir())
        except OSError:
            return
        for child in children:
            if len(found) >= limit or child.name.startswith(".") or not inside(child):
                continue
            try:
                mode = child.stat().st_mode
            except OSError:
                continue
            if stat.S_ISDIR(mode):
                if kind == "data":
                    found.append(str(child))
                if depth < 2:
                    walk(child, depth + 1)
            elif stat.S_ISREG(mode) and child.suffix.lower() in suffixes:
                found.append(str(child))

    for root in allowed:
        if kind == "data":
            found.append(str(root))
        walk(root, 1)
    return found[:limit]
